"""What the org says about its fields: cached sObject describes and FieldSpecs built from them.

A describe is kept in memory for the adapter's life and in the state store
(:class:`.cache.DescribeCache`) for the processes after it. A kept one older
than :data:`.cache.DESCRIBE_RECHECK` is re-checked with ``If-Modified-Since``:
the org answers 304 without a body when the object's metadata did not change
(docs/crm-apis.md, "Fixed costs").
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from simple_salesforce.exceptions import SalesforceGeneralError

from connector.crm.base import FieldSpec, ObjectName, carries_mark
from connector.crm.salesforce.cache import DescribeCache, compact
from connector.crm.salesforce.session import Client, SalesforceSession
from connector.crm.salesforce.soql import PARENT, SOBJECTS

Fields = dict[str, dict[str, Any]]

#: Subtracted from the last check's time in ``If-Modified-Since``: our clock
#: and the org's may differ, and a change must not fall between them.
CLOCK_SKEW = timedelta(minutes=5)


def lookup(fields: Mapping[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The describe entry of ``name``: exact spelling first, else case-insensitive (as SOQL)."""
    found = fields.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((f for n, f in fields.items() if n.lower() == lowered), None)


class Describer:
    """sObject describes, kept per object (and across processes) until they may be stale."""

    def __init__(self, session: SalesforceSession, cache: DescribeCache | None = None) -> None:
        self._session = session
        self._cache = cache or DescribeCache(None, session.connection, session.settings)
        self._describes: dict[str, Fields] = {}
        self._lock = threading.Lock()

    def fields(self, sobject: str, fresh: bool = False) -> Fields:
        """Field name → describe entry (cached; ``fresh`` asks the org again)."""
        with self._lock:
            cached = self._describes.get(sobject)
        if cached is not None and not fresh:
            return cached
        kept = None if fresh else self._cache.load(sobject)
        if kept is not None and not self._cache.stale(kept[1]):
            fields = kept[0]
        else:
            checked_at = self._cache.now()
            since = kept[1] - CLOCK_SKEW if kept is not None else None
            answer = self._session.call(
                f"describe {sobject}", lambda c: self._describe(c, sobject, since)
            )
            # None: 304, the kept describe is still the org's.
            fields = kept[0] if answer is None and kept is not None else self._parse(answer)
            self._cache.save(sobject, fields, checked_at)
        with self._lock:
            self._describes[sobject] = fields
        return fields

    def kept(self, sobject: str) -> Fields | None:
        """The describe this adapter or the state store holds, never asking the org (None: none).

        For choices that only cost calls when wrong, never records (how a
        pull splits its columns, :mod:`.pull`): a kept describe past its
        re-check time is still answered, and is not re-checked here.
        """
        with self._lock:
            cached = self._describes.get(sobject)
        if cached is not None:
            return cached
        kept = self._cache.load(sobject)
        return kept[0] if kept is not None else None

    @staticmethod
    def _describe(client: Client, sobject: str, since: datetime | None) -> dict[str, Any] | None:
        """The describe; None when asked ``If-Modified-Since`` and the org answers 304."""
        if since is None:
            return dict(client.sobject(sobject).describe())
        headers = {"If-Modified-Since": format_datetime(since, usegmt=True)}
        try:
            return dict(client.sobject(sobject).describe(headers=headers))
        except SalesforceGeneralError as exc:
            if exc.status == 304:
                return None
            raise

    @staticmethod
    def _parse(result: Mapping[str, Any] | None) -> Fields:
        return {str(f["name"]): compact(dict(f)) for f in (result or {}).get("fields", [])}

    def specs(self, obj: ObjectName, names: Sequence[str]) -> dict[str, FieldSpec]:
        """The org's view of ``names`` on the object (``Account.X`` names a contact's parent)."""
        own = self.fields(SOBJECTS[obj], fresh=True)
        parent: Mapping[str, dict[str, Any]] | None = None
        out: dict[str, FieldSpec] = {}
        for name in names:
            fields: Mapping[str, dict[str, Any]] = own
            short = name
            if obj == "contact" and name.startswith(PARENT + "."):
                if parent is None:
                    parent = self.fields(PARENT, fresh=True)
                fields, short = parent, name[len(PARENT) + 1 :]
            entry = lookup(fields, short)
            if entry is None:
                out[name] = FieldSpec(name, "", exists=False, updateable=False)
                continue
            out[name] = FieldSpec(
                name,
                str(entry.get("type") or ""),
                updateable=bool(entry.get("updateable")) and "." not in name,
                options=tuple(
                    str(p["value"]) for p in entry.get("picklistValues") or [] if p.get("active")
                ),
                length=int(entry["length"]) if entry.get("length") else None,
                managed=carries_mark(entry.get("inlineHelpText")),
                standard=not entry.get("custom"),
            )
        return out
