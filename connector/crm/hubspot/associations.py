"""Which company a contact belongs to, through the v4 associations API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubspot.crm.associations.v4.models import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)

from connector.crm.hubspot.session import HubSpotSession
from connector.crm.limits import HS_ASSOC_BATCH

# HubSpot's default association from a contact to its primary company.
PRIMARY_COMPANY_TYPE = 1


def primary_companies(session: HubSpotSession, contact_ids: Sequence[str]) -> dict[str, str]:
    """Contact id → its company id, for the contacts that have one.

    The company labelled primary wins; a contact linked to companies but to
    none as primary gets the lowest company id, so the choice is stable.
    """
    company_of: dict[str, str] = {}
    for start in range(0, len(contact_ids), HS_ASSOC_BATCH):
        chunk = contact_ids[start : start + HS_ASSOC_BATCH]
        request = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]
        )
        result = session.call(
            "read associations",
            session.associations.get_page_with_http_info,
            "contacts",
            "companies",
            request,
        )
        for row in result.results or []:
            contact = str(row._from.id)
            links = list(row.to or [])
            if not links:
                continue
            primary = [
                link
                for link in links
                if any(t.type_id == PRIMARY_COMPANY_TYPE for t in link.association_types or [])
            ]
            candidates = primary or links
            odd = sorted(str(link.to_object_id) for link in candidates if not _is_id(link))
            if odd:
                # The spec types toObjectId as a string; a record id is a number.
                # Which company is the contact's cannot be told: its outputs are
                # not written until it can (see HubSpotSession.unwritable).
                session.unwritable["contacts", contact] = (
                    "INVALID_ASSOCIATION",
                    f"its company association names {', '.join(odd)}, not a HubSpot record id",
                )
                continue
            session.unwritable.pop(("contacts", contact), None)
            chosen = min(candidates, key=lambda link: int(link.to_object_id))
            company_of[contact] = str(chosen.to_object_id)
    return company_of


def company_contacts(session: HubSpotSession, company_ids: Sequence[str]) -> list[str]:
    """The ids of the contacts associated with any of ``company_ids``, each once, sorted.

    Batch reads of up to 1,000 companies; a company with more contacts than
    one answer holds carries a ``paging.next.after`` token, sent back with
    its id in a later batch until it has none.
    """
    contacts: set[str] = set()
    todo: list[tuple[str, str | None]] = [(str(i), None) for i in dict.fromkeys(company_ids)]
    while todo:
        batch, todo = todo[:HS_ASSOC_BATCH], todo[HS_ASSOC_BATCH:]
        request = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i, after=after) for i, after in batch]
        )
        result = session.call(
            "read associations",
            session.associations.get_page_with_http_info,
            "companies",
            "contacts",
            request,
        )
        for row in result.results or []:
            contacts.update(str(link.to_object_id) for link in row.to or [])
            following = row.paging.next if row.paging is not None else None
            if following is not None and following.after:
                todo.append((str(row._from.id), str(following.after)))
    return sorted(contacts, key=lambda i: (len(i), i))


def _is_id(link: Any) -> bool:
    """Whether an association's target is named by a record id (digits only)."""
    return str(link.to_object_id).isdigit()
