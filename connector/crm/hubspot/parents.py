"""A contact's company fields: from the state store where it vouches for them, else read.

A contact inherits its primary company's segment and tier. Which company
that is comes with the contacts list page itself when it was asked for
(``associations=companies``: each contact carries its first 100 company
associations, with a ``paging`` cursor when there are more), else from a v4
association batch read (search pages, including the id-range parts of a
partitioned full pull, and batch reads carry no associations).

The company's values come, in this order, from:

1. the companies modified at or after :attr:`KnownParents.since` (the last
   account run's latest stamp, in HubSpot's clock): one search walk per pull,
   read now, so a company a person edited after the account run is never
   served from the store;
2. the store (:meth:`KnownParents.values`): what the last account run read
   or wrote, for companies not modified since;
3. a batch read (100 a call) for companies the store does not know.

Without ``known`` (or with ``since`` None, or when more than
:data:`MAX_FRESH` companies changed since: the store is far behind) every
company is read, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.crm.base import CrmRecord, KnownParents
from connector.crm.hubspot.associations import primary_companies
from connector.crm.hubspot.raw import Item, listed_company
from connector.crm.hubspot.search import search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import OBJECT_TYPES, STAMP

#: Companies read fresh by the search walk, at most: past it the store is too
#: far behind the CRM to save calls, and every company is read instead.
MAX_FRESH = 10_000
#: The v3 association type of a contact's primary company (v4 type id 1).
PRIMARY_TYPE = "contact_to_company"

Fetch = Callable[[Sequence[str], Sequence[str]], list[CrmRecord]]
"""Read companies by id with the given fields (the pull module's batch read)."""


class Parents:
    """Contact id → its primary company's ``parent_fields``, for one pull."""

    def __init__(
        self,
        session: HubSpotSession,
        parent_fields: Sequence[str],
        fetch: Fetch,
        known: KnownParents | None = None,
    ) -> None:
        self._session = session
        self._fields = list(parent_fields)
        self._fetch = fetch
        self._known = known
        self._fresh: dict[str, Mapping[str, Any]] | None = None

    def of(self, items: Sequence[Item]) -> dict[str, Mapping[str, Any]]:
        """The parent values of the contacts ``items`` (raw JSON objects) that have a company."""
        company_of, rest = _inline_companies(self._session, items)
        if rest:
            company_of.update(primary_companies(self._session, [str(i["id"]) for i in rest]))
        values = self._values(sorted(set(company_of.values())))
        return {
            contact: values[company] for contact, company in company_of.items() if company in values
        }

    def _values(self, companies: list[str]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        fresh = self._fresh_companies()
        if fresh is not None and self._known is not None:
            found.update((c, fresh[c]) for c in companies if c in fresh)
            stored = self._known.values([c for c in companies if c not in found])
            found.update((c, {f: v.get(f) for f in self._fields}) for c, v in stored.items())
        missing = [c for c in companies if c not in found]
        if missing:
            found.update((r.id, r.fields) for r in self._fetch(missing, self._fields))
        return found

    def _fresh_companies(self) -> dict[str, Mapping[str, Any]] | None:
        """Companies modified since the store's vouching stamp, read now (None: store unused)."""
        if self._known is None or self._known.since is None:
            return None
        if self._fresh is None:
            fresh: dict[str, Mapping[str, Any]] = {}
            properties = sorted({*self._fields, STAMP})
            pages = search_since(
                self._session, OBJECT_TYPES["account"], properties, self._known.since
            )
            for page in pages:
                for item in page:
                    values = item.get("properties") or {}
                    fresh[str(item["id"])] = {f: values.get(f) for f in self._fields}
                if len(fresh) > MAX_FRESH:
                    self._known = None
                    return None
            self._fresh = fresh
        return self._fresh


def _inline_companies(
    session: HubSpotSession, items: Sequence[Item]
) -> tuple[dict[str, str], list[Item]]:
    """Contact → company from the associations listed with them; the contacts that need v4.

    A contact with no ``associations`` key was not listed with them (a
    search page, a batch read); one whose list carries a ``paging`` cursor
    (more than one answer holds) or names a company by something other than
    a record id goes to the v4 batch read too, which reads all of its
    associations and judges odd ids.
    """
    company_of: dict[str, str] = {}
    rest: list[Item] = []
    for item in items:
        contact = str(item["id"])
        known, company = listed_company(item, PRIMARY_TYPE)
        if not known:
            rest.append(item)
        elif company is not None:
            session.unwritable.pop(("contacts", contact), None)
            company_of[contact] = company
    return company_of, rest
