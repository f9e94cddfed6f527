"""The mass-change guard: refuse a sync that looks like a mistake, unless forced.

Two signs of a mistake: a full pull that suddenly returns nothing where records
existed (lost permissions, a wrong filter, an emptied sandbox), and a plan that
would rewrite an output value (segment, tier, persona, a score, the reason:
every output field but the version stamp) of more than a configured share of
records (a broken mapping, an input field gone blank). Filling blank fields is not a
rewrite, so a first sync never trips the guard.

Pure: the runner passes the numbers. :func:`check_guard` is monotone in the
summary, so a runner planning page by page may call it before writing each
page with the running summary and a known population (``previous_count``).
"""

from __future__ import annotations

from connector.errors import FatalSyncError
from connector.sync.planner import PlanSummary


class MassChangeError(FatalSyncError):
    """The guard refused the run; re-running with ``--force`` goes ahead.

    Attributes:
        reason: ``empty_pull`` or ``mass_change``.
        changed: records the plan would rewrite.
        total: the population the share is taken of.
        limit: the configured share.

    """

    def __init__(self, message: str, *, reason: str, changed: int, total: int, limit: float):
        super().__init__(message)
        self.reason = reason
        self.changed = changed
        self.total = total
        self.limit = limit


def check_guard(
    summary: PlanSummary,
    previous_count: int | None,
    max_change_share: float,
    min_records: int,
    force: bool,
    *,
    full: bool,
    label: str = "records",
) -> None:
    """Raise :class:`MassChangeError` when the plan looks like a mistake.

    Args:
        summary: the plan's summary (for the whole pull, or so far).
        previous_count: how many records the object had before this run (the
            last full pull's read count, or the store's record count); ``None``
            when unknown.
        max_change_share: the largest share of records one run may rewrite
            (``sync.max_change_share``).
        min_records: below this population the share check is skipped
            (``sync.min_records_for_guard``): in a tiny org one edit is a big share.
        force: the user passed ``--force``: never raise.
        full: whether this is a full pull; an incremental pull that returns
            nothing is normal.
        label: what the records are, for the message (``"salesforce Account records"``).

    Raises:
        MassChangeError: the pull is empty where records existed, or the plan
            rewrites more than ``max_change_share`` of at least ``min_records`` records.

    """
    if force:
        return
    counts = summary.counts
    previous = previous_count or 0
    if full and counts.read == 0 and previous > 0:
        raise MassChangeError(
            f"refusing to sync: the full pull returned no {label}, but {previous:,} existed "
            "before; check the connection's permissions and the object, or re-run with "
            "--force if the records really are gone",
            reason="empty_pull",
            changed=0,
            total=previous,
            limit=max_change_share,
        )
    total = max(counts.read, previous)
    if total == 0 or total < min_records:
        return
    share = counts.rewritten / total
    if share > max_change_share:
        raise MassChangeError(
            f"refusing to write: the plan would replace existing output values on "
            f"{counts.rewritten:,} of {total:,} {label} ({share:.0%}), more than the "
            f"configured {max_change_share:.0%} (sync.max_change_share); review it with "
            "--dry-run, then re-run with --force if it is intended",
            reason="mass_change",
            changed=counts.rewritten,
            total=total,
            limit=max_change_share,
        )
