"""Read a deals export (``--deals FILE``) for the offline commands.

A CSV or JSON Lines file (gzip allowed), one deal a row, in the terms of
the deal store (``id``, ``account_id``, ``is_closed``, ``is_won``,
``amount``, ``created_at``, ``closed_at``, ``pipeline``, ``type``) or a
Salesforce Opportunity export's names (``Id``, ``AccountId``, ``IsClosed``,
``IsWon``, ``Amount``, ``CreatedDate``, ``CloseDate``, ``Pipeline``,
``Type``). Instead of ``is_closed`` / ``is_won`` a ``stage`` column may say
``won``, ``lost`` or ``open``. A bad row (no id, no account, no creation
date, an unknown stage) is reported and skipped; an amount that is not a
number keeps the deal without an amount, reported too. Never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from connector.commands.exports import ExportReader
from connector.crm.ids import link_key
from connector.mapping.values import (
    is_blank,
    parse_boolean,
    parse_date,
    parse_datetime,
    parse_number,
)

#: Each deal attribute → the column names that may hold it, tried in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "Id", "hs_object_id", "deal_id"),
    "account_id": ("account_id", "AccountId", "associatedcompanyid", "company_id"),
    "is_closed": ("is_closed", "IsClosed", "hs_is_closed"),
    "is_won": ("is_won", "IsWon", "hs_is_closed_won"),
    "stage": ("stage",),
    "amount": ("amount", "Amount"),
    "created_at": ("created_at", "CreatedDate", "createdate"),
    "closed_at": ("closed_at", "CloseDate", "closedate"),
    "pipeline": ("pipeline", "Pipeline"),
    "type": ("type", "Type", "dealtype"),
}
#: Problems listed one by one; the rest are counted.
LISTED = 20


@dataclass(frozen=True, slots=True)
class FileDeal:
    """One deal of a deals export (satisfies the engine's ``DealLike``)."""

    id: str
    account_id: str
    is_closed: bool
    is_won: bool
    amount: float | None
    created_at: datetime
    closed_at: datetime | None
    pipeline: str | None
    type: str | None


@dataclass
class DealsFile:
    """The deals of one export, grouped by the link key of their account."""

    path: str
    by_account: dict[str, list[FileDeal]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    count: int = 0

    def of(self, account_id: str | None) -> list[FileDeal]:
        """The deals of one account (by its id as the account export holds it)."""
        return self.by_account.get(account_id or "", []) if account_id else []

    def report(self, message: str) -> None:
        """Keep one problem (the first :data:`LISTED` are listed, all are counted)."""
        self.problem_count += 1
        if len(self.problems) < LISTED:
            self.problems.append(message)


def _get(fields: Mapping[str, Any], key: str) -> Any:
    for column in COLUMNS[key]:
        value = fields.get(column)
        if not is_blank(value):
            return value
    return None


def _moment(raw: Any) -> datetime | None:
    """A timestamp, or a plain date taken as midnight UTC."""
    moment = parse_datetime(raw)
    if moment is not None:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    day = parse_date(raw)
    return datetime.combine(day, time(), UTC) if day is not None else None


def read_deals(path: Path, crm: str) -> DealsFile:
    """Every readable deal of ``path``, grouped by account; bad rows reported and skipped."""
    out = DealsFile(str(path))
    with ExportReader(path) as reader:
        for record in reader:
            deal = _deal(record.fields, crm, record.line, out)
            if deal is not None:
                out.by_account.setdefault(deal.account_id, []).append(deal)
                out.count += 1
        for bad in reader.bad_rows:
            out.report(f"{path}: {bad}")
        out.problem_count += max(0, reader.bad_count - len(reader.bad_rows))
    return out


def _deal(fields: Mapping[str, Any], crm: str, line: int, out: DealsFile) -> FileDeal | None:
    where = f"{out.path}: line {line}"
    deal_id = _get(fields, "id")
    if deal_id is None:
        out.report(f"{where}: no deal id (id / Id): skipped")
        return None
    deal_id = str(deal_id).strip()
    account = link_key(_get(fields, "account_id"), crm)
    if account is None:
        out.report(f"{where}: deal {deal_id} has no account (account_id / AccountId): skipped")
        return None
    stage = _get(fields, "stage")
    if stage is not None:
        text = str(stage).strip().casefold()
        if text not in ("won", "lost", "open"):
            out.report(
                f"{where}: deal {deal_id} is in unknown stage {stage!r} (won, lost or open): "
                "skipped"
            )
            return None
        is_closed, is_won = text != "open", text == "won"
    else:
        closed, won = (
            parse_boolean(_get(fields, "is_closed")),
            parse_boolean(_get(fields, "is_won")),
        )
        if closed is None:
            out.report(f"{where}: deal {deal_id} says neither is_closed nor stage: skipped")
            return None
        is_closed, is_won = closed, bool(won) and closed
    created = _moment(_get(fields, "created_at"))
    if created is None:
        out.report(f"{where}: deal {deal_id} has no readable creation date (created_at): skipped")
        return None
    raw_amount = _get(fields, "amount")
    amount = parse_number(raw_amount)
    if raw_amount is not None and amount is None:
        out.report(
            f"{where}: deal {deal_id} amount {raw_amount!r} is not a number: kept without one"
        )
    pipeline, kind = _get(fields, "pipeline"), _get(fields, "type")
    return FileDeal(
        id=deal_id,
        account_id=account,
        is_closed=is_closed,
        is_won=is_won,
        amount=float(amount) if amount is not None else None,
        created_at=created,
        closed_at=_moment(_get(fields, "closed_at")),
        pipeline=str(pipeline) if pipeline is not None else None,
        type=str(kind) if kind is not None else None,
    )
