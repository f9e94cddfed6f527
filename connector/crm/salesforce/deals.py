"""Opportunities, read-only: incremental SOQL pulls as :class:`~connector.crm.base.DealRecord`.

One query, ordered by ``SystemModstamp, Id`` with an inclusive ``>=`` on the
watermark, its REST pages of up to 2,000 records followed through
``nextRecordsUrl``. The query goes to ``queryAll``, which also returns the
rows in the Recycle Bin (``IsDeleted`` true): deleting an Opportunity moves
its ``SystemModstamp``, so an incremental pull meets the deletion and the
deal leaves the store (:attr:`DealPage.gone`); an undelete moves it again,
and the deal is read back. ``IsClosed`` / ``IsWon`` are read from the record (the
platform sets them from the stage's ``OpportunityStage`` row), so a stage
name retired from the picklist is still judged right. The loss reason is not
a standard field: ``Loss_Reason__c`` is read when the org has it (one cached
describe of Opportunity per adapter). ``Type`` is the deal's type (what a
rollup's ``type`` filter reads, as in an Opportunity export); an Opportunity
has no pipeline (HubSpot's), so ``pipeline`` stays None.

Segsync never writes an Opportunity.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

from simple_salesforce.format import format_soql

from connector.crm.base import DealPage, KnownWindow, ReadClock, TimedPages, parse_stamp
from connector.crm.limits import SF_QUERY_PAGE
from connector.crm.salesforce.describe import Describer
from connector.crm.salesforce.session import NEVER, Client, SalesforceSession
from connector.state import DealProblem, DealRecord

SOBJECT = "Opportunity"
COLUMNS = (
    "Id",
    "AccountId",
    "StageName",
    "IsClosed",
    "IsWon",
    "Amount",
    "CloseDate",
    "CreatedDate",
    "Type",
    "SystemModstamp",
    "IsDeleted",
)
LOSS_REASON = "Loss_Reason__c"
"""The custom field many orgs keep the loss reason in; read when it exists."""
ENDPOINT = "queryAll"
"""Where every query of the pull goes, window count included: it sees the deleted rows too."""
PROOF_MINIMUM = SF_QUERY_PAGE // 2
"""Known deals in the look-back window from which a pull proves the window by a
count instead of reading it again (see :meth:`DealPuller.pull`)."""


def _query(client: Client, soql: str) -> Any:
    return client.sf.query(soql, include_deleted=True)


def _query_more(client: Client, url: str) -> Any:
    return client.sf.query_more(url, identifier_is_url=True)


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    day = date.fromisoformat(str(value)[:10])
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _amount(value: Any) -> tuple[float | None, bool]:
    """The amount as a number, and whether the value was readable (blank is)."""
    if value is None or value == "":
        return None, True
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int | float):
        return float(value), True
    try:
        return float(str(value)), True
    except ValueError:
        return None, False


def opportunity(row: Mapping[str, Any], loss_field: str | None) -> DealRecord | DealProblem:
    """One Opportunity row as a deal, or the problem that keeps it out."""
    deal_id = str(row["Id"])
    account = row.get("AccountId")
    if not account:
        return DealProblem(
            deal_id, "NO_ACCOUNT", "the opportunity has no AccountId: it cannot be attributed"
        )
    amount, readable = _amount(row.get("Amount"))
    closed = bool(row.get("IsClosed"))
    lost = row.get(loss_field) if loss_field and closed and not row.get("IsWon") else None
    deal = DealRecord(
        id=deal_id,
        account_id=str(account),
        pipeline=None,
        stage=str(row["StageName"]) if row.get("StageName") else None,
        is_closed=closed,
        is_won=closed and bool(row.get("IsWon")),
        amount=amount,
        created_at=parse_stamp(row.get("CreatedDate")),
        closed_at=_date(row.get("CloseDate")),
        lost_reason=str(lost) if lost else None,
        stamp=parse_stamp(row.get("SystemModstamp")),
        type=str(row["Type"]) if row.get("Type") else None,
    )
    if not readable:
        return DealProblem(
            deal_id, "AMOUNT_NOT_A_NUMBER", f"Amount {row.get('Amount')!r} is not a number"
        )
    return deal


class DealPuller:
    """Reads one org's opportunities."""

    def __init__(self, session: SalesforceSession, describer: Describer) -> None:
        self._session = session
        self._describer = describer

    def _columns(self) -> tuple[list[str], str | None]:
        fields = self._describer.fields(SOBJECT)
        loss = next((name for name in fields if name.lower() == LOSS_REASON.lower()), None)
        return [*COLUMNS, *([loss] if loss else [])], loss

    def _above_proven(
        self, text: str, since: datetime, window: KnownWindow
    ) -> dict[str, Any] | None:
        """The page above a proven look-back window, or None (then read from ``since``).

        SOQL datetime literals carry whole seconds, so the counted window is
        widened to them: ``floor(since) <= SystemModstamp < floor(upto) + 1 s``,
        and the page above starts there. The window is proven when its count
        equals the known deals less those now found above it: then it holds no
        deal this connection has not recorded at its stamp (a deal committed
        late inside it, one in the widened edges, or any other change makes the
        counts differ, and the window is read). The page above must be the whole
        answer (``done``); a larger change is read by the plain query.
        """
        start = since.replace(microsecond=0)
        end = parse_stamp(window.upto).replace(microsecond=0) + timedelta(seconds=1)
        counted = format_soql(
            f"SELECT COUNT() FROM {SOBJECT} WHERE SystemModstamp >= {{}} AND SystemModstamp < {{}}",
            start,
            end,
        )
        above = format_soql(text + " WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id", end)
        version = self._session.settings.api_version

        def sub(ref: str, soql: str) -> dict[str, str]:
            url = f"/services/data/v{version}/{ENDPOINT}/?{urlencode({'q': soql})}"
            return {"method": "GET", "url": url, "referenceId": ref}

        body = {
            "allOrNone": False,
            "compositeRequest": [sub("window", counted), sub("above", above)],
        }
        answer = self._session.call(
            "query opportunities (window count)",
            lambda c: c.sf.restful("composite", method="POST", json=body),
        )
        parts = {
            str(r.get("referenceId")): r for r in (answer or {}).get("compositeResponse") or []
        }
        if any(parts.get(ref, {}).get("httpStatusCode") != 200 for ref in ("window", "above")):
            return None
        page = parts["above"].get("body") or {}
        if not page.get("done", True):
            return None
        pairs = [
            (str(row["Id"]), parse_stamp(row.get("SystemModstamp")))
            for row in page.get("records") or []
        ]
        total = int((parts["window"].get("body") or {}).get("totalSize") or 0)
        if total != window.expected - window.moved(pairs):
            return None
        return dict(page)

    def pull(
        self, since: datetime | None, window: KnownWindow | None = None
    ) -> TimedPages[DealPage]:
        """Pages of opportunities with ``SystemModstamp >= since`` (all when None), oldest first.

        The pull began (:meth:`~connector.crm.base.TimedPages.began`) when its
        first call was served.

        Deleted ones (in the Recycle Bin) come as :attr:`DealPage.gone`.

        With ``window`` holding at least :data:`PROOF_MINIMUM` known deals, one
        composite call (two queries, one API call) counts the window and reads
        what lies above it; when the count shows the window holds only known
        deals (:meth:`_above_proven`), it is not read again. Otherwise, or when
        more than a page lies above, the plain query reads from ``since``.
        """
        clock = ReadClock()
        return TimedPages(self._pull(since, window, clock), clock)

    def _pull(
        self, since: datetime | None, window: KnownWindow | None, clock: ReadClock
    ) -> Iterator[DealPage]:
        columns, loss = self._columns()
        text = f"SELECT {', '.join(columns)} FROM {SOBJECT}"
        if since is not None:
            since = parse_stamp(since)
            query = format_soql(
                text + " WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id", since
            )
        else:
            query = text + " ORDER BY SystemModstamp, Id"
        call = self._session.call
        result = None
        if since is not None and window is not None and window.expected >= PROOF_MINIMUM:
            result = self._above_proven(text, since, window)
            proved_at = self._session.answered_at()
            clock.note(None if proved_at == NEVER else proved_at)
        if result is None:
            result = call("query opportunities", partial(_query, soql=query))
        # What this pull reads, it reads after that call was sent: each deal may
        # be known at its stamp only if its second had closed by then (sync/window.py).
        read_at = self._session.answered_at()
        clock.note(None if read_at == NEVER else read_at)
        while True:
            rows = list(result.get("records") or [])
            deals: list[DealRecord] = []
            problems: list[DealProblem] = []
            seen: list[tuple[str, datetime]] = []
            gone: list[str] = []
            for row in rows:
                stamp = parse_stamp(row.get("SystemModstamp"))
                # format_soql drops sub-second precision: the query may return a
                # few rows from just before the watermark.
                if since is not None and stamp < since:
                    continue
                seen.append((str(row["Id"]), stamp))
                if row.get("IsDeleted"):
                    gone.append(str(row["Id"]))
                    continue
                read = opportunity(row, loss)
                if isinstance(read, DealProblem):
                    problems.append(read)
                    if read.code == "AMOUNT_NOT_A_NUMBER":
                        kept = opportunity({**row, "Amount": None}, loss)
                        if isinstance(kept, DealRecord):
                            deals.append(kept)
                            problems[-1] = DealProblem(read.id, read.code, read.message, kept=True)
                else:
                    deals.append(read)
            if seen:
                yield DealPage(tuple(deals), tuple(problems), tuple(seen), tuple(gone), read_at)
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = call("query more opportunities", partial(_query_more, url=str(next_url)))


def minimum_calls(read: int) -> int:
    """Query pages: the REST floor of reading ``read`` opportunities (one call when quiet)."""
    return max(1, -(-read // SF_QUERY_PAGE))
