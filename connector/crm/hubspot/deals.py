"""HubSpot deals, read-only: pulls as :class:`~connector.crm.base.DealRecord`.

A deal holds its pipeline and stage ids only; whether a stage is closed, and
won, is in the pipelines API (``GET /crm/v3/pipelines/deals``: a stage's
``metadata.isClosed`` and ``metadata.probability``, 1.0 for won, both sent
as strings), read once per pull. Its company comes from its associations
(the one labelled primary wins, else the lowest id): listed with it on a full
pull (the list endpoint, 100 a page, ``associations=companies``), else from
the v4 batch read (1,000 deals a call) for deals found by the search windows
of :mod:`.search` (incremental pulls), or listed with more associations than
one page holds.

An archived (deleted) deal leaves search and the live list at once, and
nothing about it moves a stamp a search can see: an incremental pull
therefore also pages the archived list (``archived=true``, 100 a page, in id
order: one call while up to 100 deals sit in the recycle bin, which
keeps them 90 days) and names them :attr:`DealPage.gone`; the store drops
those it holds. A full pull lists every live deal, so the deal sync drops the
stored deals it did not list (connector/sync/deals.py).

Rows that cannot be judged are reported, never fatal (``DealProblem``): no
company, a stage its pipeline does not have, a pipeline the API no longer
lists (deleted with its deals left in it). An amount that is not a number
(``"$12,500"`` from an old import) keeps the deal, without an amount.

Segsync never writes a deal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from hubspot.crm.associations.v4.models import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)

from connector.crm.base import DealPage, KnownWindow, ReadClock, TimedPages, parse_stamp
from connector.crm.hubspot.listing import list_pages
from connector.crm.hubspot.pull import regroup
from connector.crm.hubspot.raw import listed_company, stamp_of
from connector.crm.hubspot.search import search_since
from connector.crm.hubspot.session import HubSpotSession
from connector.crm.hubspot.values import STAMP
from connector.crm.hubspot.window import search_known
from connector.crm.limits import HS_ASSOC_BATCH, HS_LIST_PAGE, HS_SEARCH_PAGE
from connector.state import DealProblem, DealRecord

OBJECT_TYPE = "deals"
PROPERTIES = (
    "amount",
    "closed_lost_reason",
    "closedate",
    "createdate",
    "dealstage",
    "dealtype",
    "pipeline",
    STAMP,
)
PRIMARY_COMPANY_TYPE = 5
"""HubSpot's association type from a deal to its primary company."""
PRIMARY_LISTED_TYPE = "deal_to_company"
"""The same association as the list endpoint names it (v3; the unlabeled one is
``deal_to_company_unlabeled``)."""

Stages = dict[tuple[str, str], tuple[bool, bool]]
"""(pipeline id, stage id) → (closed, won)."""


def stages_of(pipelines: Sequence[Any]) -> Stages:
    """Closed / won of every stage of the pipelines API's answer.

    A stage is closed when ``metadata.isClosed`` is ``"true"``, and won when it
    is closed with ``metadata.probability`` 1.0 (HubSpot's definition of a
    closed-won stage).
    """
    out: Stages = {}
    for pipeline in pipelines:
        for stage in pipeline.stages or []:
            meta = stage.metadata or {}
            closed = str(meta.get("isClosed", "")).lower() == "true"
            try:
                probability = float(meta.get("probability", "nan"))
            except ValueError:
                probability = float("nan")
            out[str(pipeline.id), str(stage.id)] = (closed, closed and probability == 1.0)
    return out


def _amount(text: Any) -> tuple[float | None, bool]:
    if text is None or str(text).strip() == "":
        return None, True
    try:
        return float(str(text)), True
    except ValueError:
        return None, False


def deal(
    record_id: str, props: Mapping[str, Any], company: str | None, stages: Stages
) -> tuple[DealRecord | None, DealProblem | None]:
    """One deal's properties as a deal record and/or the problem met reading it."""
    stamp = parse_stamp(props.get(STAMP))
    if company is None:
        return None, DealProblem(
            record_id,
            "NO_ACCOUNT",
            "the deal is associated with no company: it cannot be attributed",
        )
    pipeline, stage = str(props.get("pipeline") or ""), str(props.get("dealstage") or "")
    if pipeline and not any(p == pipeline for p, _ in stages):
        return None, DealProblem(
            record_id,
            "DELETED_PIPELINE",
            f"pipeline {pipeline!r} is not in the pipelines API (deleted?): won or lost "
            "cannot be told",
        )
    judged = stages.get((pipeline, stage))
    if judged is None:
        return None, DealProblem(
            record_id,
            "UNKNOWN_STAGE",
            f"stage {stage!r} is not a stage of pipeline {pipeline!r}: won or lost cannot be told",
        )
    amount, readable = _amount(props.get("amount"))
    closed, won = judged
    closes = props.get("closedate")
    lost = props.get("closed_lost_reason") if closed and not won else None
    record = DealRecord(
        id=record_id,
        account_id=company,
        pipeline=pipeline or None,
        stage=stage or None,
        is_closed=closed,
        is_won=won,
        amount=amount,
        created_at=parse_stamp(props.get("createdate")),
        closed_at=parse_stamp(closes) if closes else None,
        lost_reason=str(lost) if lost else None,
        stamp=stamp,
        type=str(props["dealtype"]) if props.get("dealtype") else None,
    )
    problem = None
    if not readable:
        problem = DealProblem(
            record_id,
            "AMOUNT_NOT_A_NUMBER",
            f"amount {props.get('amount')!r} is not a number: the deal counts without an amount",
            kept=True,
        )
    return record, problem


def companies_of(session: HubSpotSession, deal_ids: Sequence[str]) -> dict[str, str]:
    """Deal id → its company (primary, else the lowest id), for deals that have one."""
    out: dict[str, str] = {}
    for start in range(0, len(deal_ids), HS_ASSOC_BATCH):
        chunk = deal_ids[start : start + HS_ASSOC_BATCH]
        request = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]
        )
        result = session.call(
            "read deal associations",
            session.associations.get_page_with_http_info,
            OBJECT_TYPE,
            "companies",
            request,
        )
        for row in result.results or []:
            links = [link for link in row.to or [] if str(link.to_object_id).isdigit()]
            primary = [
                link
                for link in links
                if any(t.type_id == PRIMARY_COMPANY_TYPE for t in link.association_types or [])
            ]
            if primary or links:
                chosen = min(primary or links, key=lambda link: int(link.to_object_id))
                out[str(row._from.id)] = str(chosen.to_object_id)
    return out


def listed_companies(items: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Deal id → company from the associations listed with the deals; the deals that need v4.

    A full pull lists deals with ``associations=companies``: each carries its
    first associations (``{}`` when it has none). A deal without the key was
    found by search (which cannot list them); one whose list carries a
    ``paging`` cursor, or names a company by something other than a record
    id, is read through the v4 batch read too, which sees all of them.
    """
    company_of: dict[str, str] = {}
    rest: list[str] = []
    for item in items:
        deal_id = str(item["id"])
        known, company = listed_company(item, PRIMARY_LISTED_TYPE)
        if not known:
            rest.append(deal_id)
        elif company is not None:
            company_of[deal_id] = company
    return company_of, rest


class DealPuller:
    """Reads one portal's deals."""

    def __init__(self, session: HubSpotSession) -> None:
        self._session = session

    def stages(self) -> Stages:
        """Every pipeline stage's closed / won (one call)."""
        answer = self._session.call(
            "read deal pipelines", self._session.pipelines.get_all_with_http_info, OBJECT_TYPE
        )
        return stages_of(list(answer.results or []))

    def pull(
        self, since: datetime | None, window: KnownWindow | None = None
    ) -> TimedPages[DealPage]:
        """Pages of deals modified at or after ``since`` (all when None).

        With ``window``, a look-back window proven known is not read (:mod:`.window`).
        An incremental pull ends with the archived deals, as :attr:`DealPage.gone`.
        The pull began (:meth:`~connector.crm.base.TimedPages.began`) at the
        earliest serving time its answers' ``Date`` allows.
        """
        clock = ReadClock()
        return TimedPages(self._timed(since, window, clock), clock)

    def _timed(
        self, since: datetime | None, window: KnownWindow | None, clock: ReadClock
    ) -> Iterator[DealPage]:
        with self._session.reads(clock):
            yield from self._pull(since, window)

    def _pull(self, since: datetime | None, window: KnownWindow | None) -> Iterator[DealPage]:
        stages = self.stages()
        properties = list(PROPERTIES)
        if since is None:
            # Each listed deal carries its companies: no association reads.
            pages = list_pages(self._session, OBJECT_TYPE, properties, ("companies",))
        elif window is not None:
            pages = search_known(self._session, OBJECT_TYPE, properties, window)
        else:
            pages = search_since(self._session, OBJECT_TYPE, properties, since)
        # One association read takes 1,000 deals: gather that many first.
        for raw in regroup(pages, HS_ASSOC_BATCH):
            if not raw:
                continue
            company_of, rest = listed_companies(raw)
            if rest:
                company_of.update(companies_of(self._session, rest))
            deals: list[DealRecord] = []
            problems: list[DealProblem] = []
            seen: list[tuple[str, datetime]] = []
            for item in raw:
                record_id = str(item["id"])
                props = item.get("properties") or {}
                seen.append((record_id, parse_stamp(stamp_of(item))))
                record, problem = deal(record_id, props, company_of.get(record_id), stages)
                if record is not None:
                    deals.append(record)
                if problem is not None:
                    problems.append(problem)
            yield DealPage(tuple(deals), tuple(problems), tuple(seen))
        if since is not None:
            yield from self.archived()

    def archived(self) -> Iterator[DealPage]:
        """The archived deals, a list page at a time, as pages of ``gone`` ids only.

        The list holds every deal in the recycle bin, whenever archived: the
        store tells which it still holds. No ``seen``: the list is in id
        order, and an archive time is not a modification a search filters on.
        """
        for raw in list_pages(self._session, OBJECT_TYPE, [STAMP], archived=True):
            gone = tuple(str(item["id"]) for item in raw)
            if gone:
                yield DealPage((), (), (), gone)


def minimum_calls(read: int, *, incremental: bool) -> int:
    """Pipelines, pages and association reads: the floor of reading ``read`` deals.

    A full pull's list pages carry the companies; a search page cannot, so an
    incremental pull reads them, 1,000 deals a call, and it reads the archived
    list (one page counted: its length is the recycle bin's, not the run's).
    """
    if not incremental:
        return 1 + max(1, -(-read // HS_LIST_PAGE))
    return 1 + max(1, -(-read // HS_SEARCH_PAGE)) + -(-read // HS_ASSOC_BATCH) + 1
