"""One org's token and describes, kept in the state store between processes.

- **Token** (:class:`TokenCache`): Salesforce's token response names no
  lifetime; a session ends after the org's (or the connected app's) timeout
  of inactivity, or when revoked (docs/crm-apis.md, "Tokens"). So a token is
  reused until the org refuses it (401 ``INVALID_SESSION_ID``: the session
  fetches a new one once and repeats the call), and is not even tried once
  it has been idle longer than the longest timeout Salesforce offers
  (:data:`MAX_IDLE`). It is kept encrypted (:class:`~connector.crm.cache.SecretBox`,
  keyed from the connection's credentials), never in the clear.
- **Describes** (:class:`DescribeCache`): the fields of an sObject as the
  integration user sees them, trimmed to what segsync reads. Trusted for
  :data:`DESCRIBE_RECHECK`, then asked again with ``If-Modified-Since``
  (a 304 costs no body); a write refused for a schema reason refreshes it at
  once (:func:`.write.schema_refusals`).

Keys name the connection (its name, login and instance URL, client id and
user), so two connections never share an entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.config import SalesforceConnection
from connector.crm.cache import Cache, SecretBox, cache_key, safely
from connector.crm.salesforce.auth import Token

log = logging.getLogger(__name__)

#: The longest session timeout an org or connected app can set (24 hours): a
#: token idle for longer cannot be valid, so it is not tried.
MAX_IDLE = timedelta(hours=24)
#: How long a cached describe is trusted before it is re-checked with
#: ``If-Modified-Since``. Schema changes that matter to a write show up
#: sooner, as refused writes (INVALID_FIELD…), which refresh it at once.
DESCRIBE_RECHECK = timedelta(hours=24)

Fields = dict[str, dict[str, Any]]
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _connection_parts(connection: str, settings: SalesforceConnection) -> tuple[str | None, ...]:
    return (
        connection,
        settings.auth,
        settings.login_url,
        settings.instance_url,
        settings.client_id,
        settings.username,
    )


class TokenCache:
    """The connection's last token, encrypted; nothing for ``auth = "session"`` or no cache."""

    def __init__(
        self,
        cache: Cache | None,
        connection: str,
        settings: SalesforceConnection,
        clock: Clock = _now,
    ) -> None:
        self.key = cache_key("salesforce.token", *_connection_parts(connection, settings))
        self._clock = clock
        self._cache: Cache | None = None
        self._box: SecretBox | None = None
        if cache is None or settings.auth == "session":
            return  # a given session id is not fetched: nothing to save
        material = [settings.secret(n) for n in ("client_secret", "private_key", "refresh_token")]
        if any(material):
            self._cache = cache
            self._box = SecretBox(material, self.key)

    def __repr__(self) -> str:
        return f"TokenCache(key={self.key!r})"

    def load(self) -> tuple[Token, datetime] | None:
        """The kept token and its last successful use (None: none, unreadable, or idle too long)."""
        if self._cache is None or self._box is None:
            return None
        entry = safely("reading the token", self._cache.cache_get, self.key)
        if entry is None:
            return None
        sealed, used_at = entry
        if self._clock() - used_at >= MAX_IDLE:
            return None
        plain = self._box.open(sealed, max_age=MAX_IDLE.total_seconds())
        if plain is None:
            # Other credentials (rotated), or altered: fetch a new token.
            return None
        try:
            data = json.loads(plain)
            token = Token(str(data["a"]), str(data["i"]), data.get("u"))
        except (ValueError, KeyError, TypeError):
            return None
        return token, used_at

    def save(self, token: Token) -> None:
        """Keep ``token``, known good now (sealed again, so its age counts from now)."""
        if self._cache is None or self._box is None:
            return
        plain = json.dumps(
            {"a": token.access_token, "i": token.instance_url, "u": token.identity_url}
        )
        sealed = self._box.seal(plain)
        safely("keeping the token", self._cache.cache_put, self.key, sealed, self._clock())


def compact(entry: dict[str, Any]) -> dict[str, Any]:
    """A describe field entry without its empty values (None, False, "", 0, []).

    Every reader asks ``entry.get(...)`` for truthy values, so this keeps its
    meaning at a fifth of the size; picklist values keep value, label, active.
    """
    out = {k: v for k, v in entry.items() if v not in (None, False, "", 0, [], {})}
    if "picklistValues" in out:
        out["picklistValues"] = [
            {k: p[k] for k in ("value", "label", "active") if k in p} for p in out["picklistValues"]
        ]
    return out


class DescribeCache:
    """sObject describes by connection and object, with when each was last checked."""

    def __init__(
        self,
        cache: Cache | None,
        connection: str,
        settings: SalesforceConnection,
        clock: Clock = _now,
    ) -> None:
        self._cache = cache
        self._prefix = cache_key("salesforce.describe", *_connection_parts(connection, settings))
        self._clock = clock

    def key(self, sobject: str) -> str:
        """The entry's key for ``sobject``."""
        return f"{self._prefix}:{sobject}"

    def load(self, sobject: str) -> tuple[Fields, datetime] | None:
        """The kept fields and when they were last checked against the org (None: none)."""
        if self._cache is None:
            return None
        entry = safely("reading a describe", self._cache.cache_get, self.key(sobject))
        if entry is None:
            return None
        try:
            fields = json.loads(entry[0])
        except ValueError:
            return None
        if not isinstance(fields, dict):
            return None
        return fields, entry[1]

    def save(self, sobject: str, fields: Fields, checked_at: datetime) -> None:
        """Keep ``fields`` as the org described them at ``checked_at``."""
        if self._cache is None:
            return
        text = json.dumps(fields, separators=(",", ":"))
        safely("keeping a describe", self._cache.cache_put, self.key(sobject), text, checked_at)

    def stale(self, checked_at: datetime) -> bool:
        """Whether a describe checked at ``checked_at`` is due for a re-check."""
        return self._clock() - checked_at >= DESCRIBE_RECHECK

    def now(self) -> datetime:
        """The cache's clock."""
        return self._clock()
