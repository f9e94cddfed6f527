"""Command-line options shared by several commands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from connector.errors import Problem, UserError

#: ``--format text|json``: readable output, or one JSON document on stdout.
FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json (one document on stdout) for scripts.",
)


#: ``--format text|json|html`` for the reports (``outcomes``, ``parity``).
REPORT_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
    help="text for people, json (one document) for scripts, html: one self-contained page.",
)

#: ``--out FILE``: where a report goes instead of standard output.
OUT = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or datetime as an aware instant; a value without an offset is UTC.

    Raises:
        ValueError: not an ISO date or datetime (the message says what is expected).

    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or datetime "
            "(e.g. 2026-11-22, 2026-11-22T09:00:00Z or 2026-11-22T09:00:00-05:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


#: The years ``--now`` may name.
NOW_YEARS = (1900, 2999)


def _now_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        instant = parse_instant(value)
    except ValueError as exc:
        # One line, like every user error (the group prints it; exit status 2).
        raise UserError([Problem("--now", "", str(exc))]) from None
    if not NOW_YEARS[0] <= instant.year <= NOW_YEARS[1]:
        # Date rules count up to a hundred years back from --now: near year 1
        # (or 9999) that arithmetic would leave the calendar.
        raise UserError(
            [Problem("--now", "", f"expected a year from {NOW_YEARS[0]} to {NOW_YEARS[1]}")]
        )
    return instant


#: ``--now ISO-DATETIME``: evaluate as of this instant instead of the clock.
NOW = click.option(
    "--now",
    callback=_now_callback,
    default=None,
    metavar="ISO-DATETIME",
    help="Evaluate as of this instant (ISO 8601; no offset means UTC; default: the clock).",
)
