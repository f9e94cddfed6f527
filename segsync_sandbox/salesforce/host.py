"""What the Bulk and Metadata services need from the Salesforce sandbox app.

:mod:`segsync_sandbox.salesforce.bulk` and :mod:`segsync_sandbox.salesforce.metadata`
depend on this Protocol, not on :class:`segsync_sandbox.salesforce.app.SalesforceApp`,
so the app can import them and register their routes without an import circle:
``app`` → ``bulk`` / ``metadata`` → ``host``, never back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from segsync_sandbox.common import Request, Response
from segsync_sandbox.salesforce.org import Org
from segsync_sandbox.salesforce.soql import BoundQuery

RouteHandler = Callable[[Request, "re.Match[str]"], Response]


class SalesforceHost(Protocol):
    """The sandbox app as its extensions see it: the org, routing, sessions and SOQL."""

    org: Org
    #: Path prefixes that need no bearer session (the SOAP API carries its own).
    open_prefixes: list[str]

    def route(self, method: str, pattern: str, handler: RouteHandler) -> None:
        """Register ``handler`` for ``method`` and a full-match path regex."""
        ...

    def rest(self, method: str, suffix: str, handler: RouteHandler) -> None:
        """Register a handler under ``/services/data/vXX.X``; ``suffix`` is a regex."""
        ...

    def use_session(self, token: str | None) -> bool:
        """Validate a session id for one call."""
        ...

    def count_api_call(self) -> bool:
        """Count one call against the daily allocation; False when it is used up."""
        ...

    def bind_query(self, text: str, version: str | None = None) -> BoundQuery:
        """Parse and bind a SOQL query against the org."""
        ...

    def resolve_parent(self, sobject: str, record_id: str) -> Mapping[str, Any] | None:
        """A live parent record for relationship fields (None when absent or deleted)."""
        ...
