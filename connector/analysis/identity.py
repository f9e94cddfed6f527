"""Which HubSpot record is which Salesforce record: identity matching across the two CRMs.

Pure: records' keys in, matches out. The keys are tried in order, each on
the records the earlier ones left unmatched:

1. ``integration_id``: the Salesforce id HubSpot's Salesforce integration
   stores on a record it synced (``salesforceaccountid`` on a company,
   ``salesforcecontactid`` on a contact) against the Salesforce record's id;
2. ``domain`` (accounts: the Salesforce ``Website`` against HubSpot's
   ``domain``, else its ``website``, normalized by :func:`normalize_domain`)
   or ``email`` (contacts, :func:`normalize_email`);
3. ``attribute``: a field the config names on each side (``[parity]
   match_on``), compared as text (case and extra whitespace ignored).

A key matches when exactly one record on each side (of those still
unmatched) holds it. Several records on a side holding one key are
*ambiguous*: none of them is matched by that key, and a record that no later
key matches either is reported with its candidates on the other side. A
record that no key matches and that was never ambiguous is *unmatched*.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["salesforce", "hubspot"]

METHODS = ("integration_id", "domain", "email", "attribute")
"""The keys, in the order they are tried (``domain`` for accounts, ``email`` for contacts)."""

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_SPACE = re.compile(r"\s+")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = _SPACE.sub(" ", str(value)).strip()
    return text or None


def normalize_domain(value: Any) -> str | None:
    """A website or domain as a bare host name, or None when it names none.

    ``https://www.Acme.com/about?x=1``, ``www.acme.com``, ``http://acme.com:8080/``,
    ``acme.com.`` and ``ACME.COM`` are all ``acme.com``: the scheme, user
    info, port, path, query and fragment go, case folds, a trailing dot (the
    DNS root) and a leading ``www.`` are dropped. A value with no dot in the
    host (``localhost``, ``n/a``) names no domain.
    """
    text = _text(value)
    if text is None:
        return None
    host = _SCHEME.sub("", text.lower())
    host = re.split(r"[/?#\\]", host, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1]
    host = host.split(":", 1)[0].strip().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if "." not in host or " " in host or host.startswith("."):
        return None
    return host


def normalize_email(value: Any) -> str | None:
    """An email address folded for matching (trimmed, lower case), or None when it is none."""
    text = _text(value)
    if text is None:
        return None
    text = text.lower()
    if text.startswith("mailto:"):
        text = text[7:]
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or " " in text:
        return None
    return f"{local}@{domain.rstrip('.')}"


def normalize_text(value: Any) -> str | None:
    """Text compared the way segsync compares text: case and extra whitespace ignored."""
    text = _text(value)
    return text.casefold() if text is not None else None


@dataclass(frozen=True, slots=True)
class Keys:
    """One record's identity keys (normalized; None where the record has none).

    ``integration_id``: for a Salesforce record its own id, for a HubSpot
    record the Salesforce id the integration stored on it (both in the
    canonical 18-character form: the caller converts).
    """

    id: str
    integration_id: str | None = None
    domain: str | None = None
    email: str | None = None
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """A Salesforce record and a HubSpot record that are one company or person."""

    salesforce_id: str
    hubspot_id: str
    by: str


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A record several records of the other CRM (or of its own) share a key with."""

    crm: Side
    id: str
    by: str
    key: str
    candidates: tuple[str, ...]


@dataclass
class Identity:
    """The outcome of matching: pairs, and what could not be paired."""

    matches: list[Match] = field(default_factory=list)
    ambiguous: list[Ambiguous] = field(default_factory=list)
    unmatched_salesforce: list[str] = field(default_factory=list)
    unmatched_hubspot: list[str] = field(default_factory=list)

    def counts_by_method(self) -> dict[str, int]:
        """How many pairs each key matched, in :data:`METHODS` order."""
        counts = dict.fromkeys(METHODS, 0)
        for m in self.matches:
            counts[m.by] = counts.get(m.by, 0) + 1
        return {k: v for k, v in counts.items() if v}


def match_records(
    salesforce: Sequence[Keys],
    hubspot: Sequence[Keys],
    methods: Sequence[str] = ("integration_id", "domain", "attribute"),
) -> Identity:
    """Pair Salesforce and HubSpot records by their keys (see the module docstring).

    Args:
        salesforce: the Salesforce records' keys.
        hubspot: the HubSpot records' keys.
        methods: the keys to try, in order (``("integration_id", "email",
            "attribute")`` for contacts).

    Returns:
        Matches in Salesforce order, ambiguous records, unmatched ids of each side.

    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown identity keys {unknown} (expected some of {METHODS})")
    left_sf: dict[str, Keys] = {k.id: k for k in salesforce}
    left_hs: dict[str, Keys] = {k.id: k for k in hubspot}
    matched: dict[str, Match] = {}
    doubt: dict[tuple[Side, str], Ambiguous] = {}
    for method in methods:
        by_sf = _index(left_sf.values(), method)
        by_hs = _index(left_hs.values(), method)
        for key, hs_ids in by_hs.items():
            sf_ids = by_sf.get(key)
            if not sf_ids and (method == "integration_id" or len(hs_ids) < 2):
                # Nothing to pair with (a stored id of a record that is gone):
                # later keys may still match it.
                continue
            if sf_ids and len(sf_ids) == 1 and len(hs_ids) == 1:
                sf_id, hs_id = sf_ids[0], hs_ids[0]
                matched[sf_id] = Match(sf_id, hs_id, method)
                del left_sf[sf_id], left_hs[hs_id]
                doubt.pop(("salesforce", sf_id), None)
                doubt.pop(("hubspot", hs_id), None)
                continue
            # Several on one side (or both): none is matched by this key.
            for hs_id in hs_ids:
                others = tuple(sf_ids or ()) or tuple(i for i in hs_ids if i != hs_id)
                doubt.setdefault(
                    ("hubspot", hs_id), Ambiguous("hubspot", hs_id, method, key, others)
                )
            for sf_id in sf_ids or ():
                doubt.setdefault(
                    ("salesforce", sf_id),
                    Ambiguous("salesforce", sf_id, method, key, tuple(hs_ids)),
                )
        for key, sf_ids in by_sf.items():
            if len(sf_ids) > 1 and key not in by_hs:
                for sf_id in sf_ids:
                    others = tuple(i for i in sf_ids if i != sf_id)
                    doubt.setdefault(
                        ("salesforce", sf_id), Ambiguous("salesforce", sf_id, method, key, others)
                    )
    order = {k.id: i for i, k in enumerate(salesforce)}
    identity = Identity(matches=sorted(matched.values(), key=lambda m: order[m.salesforce_id]))
    for side, remaining in (("salesforce", left_sf), ("hubspot", left_hs)):
        for record_id in remaining:
            doubted = doubt.get((side, record_id))  # type: ignore[arg-type]
            if doubted is not None:
                identity.ambiguous.append(doubted)
            elif side == "salesforce":
                identity.unmatched_salesforce.append(record_id)
            else:
                identity.unmatched_hubspot.append(record_id)
    return identity


def _index(records: Any, method: str) -> Mapping[str, list[str]]:
    index: dict[str, list[str]] = defaultdict(list)
    for record in records:
        key = getattr(record, method)
        if key:
            index[key].append(record.id)
    return index
