"""The offline commands: try a definition on a CRM export before anything touches a CRM.

``validate`` checks mapping files (and a config); ``preview`` shows how an
export spreads over segments and tiers; ``explain`` shows why one record lands
where it does; ``diff`` shows which records a definition change would move.
None of them needs a CRM connection or writes anywhere except ``--out``.

The clock is read once, here at the edge (or fixed with ``--now``); the
engine is pure. Problems the user fixes (a bad mapping, a missing file, an
unknown id) are raised as :class:`~connector.errors.UserError` and printed by
the ``segsync`` group as a list, with exit code 2.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from connector.analysis.backtest import Backtest
from connector.analysis.lint import LintWarning, lint_mapping
from connector.commands.deals_file import DealsFile, FileDeal, read_deals
from connector.commands.exports import (
    CRM_CHOICES,
    ExportReader,
    ExportRecord,
    id_fields,
    is_blank,
    parent_field,
    parent_id,
    record_id,
    same_id,
)
from connector.commands.live_inputs import pull_inputs, resolve_crm
from connector.commands.options import FORMAT, NOW
from connector.commands.report import (
    BAD_ROWS_LISTED,
    Distribution,
    Notice,
    Transitions,
    diff_document,
    diff_notices,
    distribution_notices,
    missing_field_notices,
    preview_document,
    render_backtest,
    render_diff,
    render_preview,
)
from connector.config import Settings, load_settings
from connector.crm.ids import link_key
from connector.engine import Assignment, Engine, compile_mapping
from connector.errors import EXIT_USER, MappingError, Problem, UserError
from connector.mapping import load_mapping
from connector.mapping.models import OBJECT_CRMS
from connector.mapping.values import parse_boolean
from connector.sync.ownership import mapping_problems

#: Where ``validate`` looks when no mapping file is named and no config lists any.
DEFAULT_MAPPINGS_DIR = Path("mappings")

# Progress is redrawn every this many records: cheap, and still smooth.
_PROGRESS_EVERY = 2_000

_CRM = click.option(
    "--crm",
    required=True,
    type=click.Choice(CRM_CHOICES),
    help="Which CRM the export comes from (decides the field names read).",
)
_INPUT = click.option(
    "--input",
    "-i",
    "input_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV or JSON Lines export (.csv, .jsonl, .ndjson, optionally .gz).",
)


def _now(value: datetime | None) -> datetime:
    """The evaluation time: the one given, else the clock, read once per command."""
    # Whole seconds: the time is shown to people and stamped into reports.
    return value if value is not None else datetime.now(UTC).replace(microsecond=0)


#: A field whose truth puts a record outside what sync reads, by (object, CRM):
#: a converted lead is read-only in Salesforce and never read or written.
_OUT_OF_SCOPE: dict[tuple[str, str], str] = {("lead", "salesforce"): "IsConverted"}


def _out_of_scope(engine: Engine, crm: str, fields: Mapping[str, Any]) -> bool:
    """Whether sync would leave this exported record out (a converted lead)."""
    name = _OUT_OF_SCOPE.get((engine.object, crm))
    if name is None:
        return False
    value = next((v for k, v in fields.items() if k.casefold() == name.casefold()), None)
    return parse_boolean(value) is True


def _converted_notice(engine: Engine, crm: str, skipped: int) -> list[Notice]:
    """The warning that ``skipped`` records were left out as sync leaves them out."""
    if not skipped:
        return []
    return [
        Notice(
            "other",
            f"{_plural(skipped, 'converted lead')} left out: read-only in Salesforce, "
            "sync never reads or writes them",
            _OUT_OF_SCOPE[(engine.object, crm)],
        )
    ]


def _load_engine(path: Path, crm: str | None = None) -> Engine:
    """The compiled mapping; with ``crm``, refused when that CRM has no such object."""
    engine = compile_mapping(load_mapping(path))
    crms = OBJECT_CRMS.get(engine.object)
    if crm is not None and crms is not None and crm not in crms:
        raise UserError(
            [
                Problem(
                    str(path),
                    "object",
                    f"a {engine.object} is a {' and '.join(c.title() for c in crms)} object: "
                    f"--crm {crm} has none "
                    "(HubSpot contacts at every lifecycle stage use the contact mapping)",
                )
            ]
        )
    return engine


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _label(fields_id: str | None, record: ExportRecord) -> str:
    """How a record is named in reports: its id, else its line."""
    return fields_id if fields_id is not None else f"line {record.line}"


@dataclass
class _Scan:
    """Iterates an export's records with optional progress on stderr."""

    reader: ExportReader
    show_progress: bool

    def __iter__(self) -> Iterator[ExportRecord]:
        if not self.show_progress:
            yield from self.reader
            return
        console = Console(stderr=True)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[records]:,} records"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(
                self.reader.path.name, total=self.reader.size or None, records=0
            )
            for count, record in enumerate(self.reader, start=1):
                if count % _PROGRESS_EVERY == 0:
                    progress.update(task, completed=self.reader.bytes_read, records=count)
                yield record


def _input_header(reader: ExportReader, crm: str) -> str:
    kind = "JSON Lines" if reader.kind == "jsonl" else "CSV"
    if reader.kind == "csv" and reader.delimiter != ",":
        kind += (
            " (tab-separated)" if reader.delimiter == "\t" else f" ({reader.delimiter!r}-separated)"
        )
    if reader.gzipped:
        kind += ", gzip"
    return f"{reader.path} ({kind}, {crm})"


def _mapping_header(engine: Engine) -> str:
    return f"{engine.path} ({engine.object}, version {engine.version})"


def _field_notices(engine: Engine, crm: str, reader: ExportReader) -> list[Notice]:
    if not reader.records_read:
        return []  # nothing was read: "no records" says it all
    other = next((c for c in CRM_CHOICES if c != crm), None)
    other_fields: tuple[str, ...] = ()
    if other is not None:
        other_fields = (*engine.input_fields(other), *id_fields(other))
    return missing_field_notices(
        engine.input_fields(crm), reader.fields_seen, other_crm=other, other_fields=other_fields
    )


def _emit_json(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _console() -> Console:
    # Wide enough for a segment × tier table; rich still wraps on real terminals.
    width = None if sys.stdout.isatty() else 120
    return Console(width=width, highlight=False)


# --------------------------------------------------------------------------- parent accounts

_ACCOUNTS = click.option(
    "--accounts",
    "accounts_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Contacts only: an account export of the same CRM, so contacts inherit "
    "their account's segment and tier.",
)
_DEALS = click.option(
    "--deals",
    "deals_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Accounts only: a deals export (CSV or JSON Lines); rollup attributes are "
    "computed from each account's deals in it.",
)
_ACCOUNTS_MAPPING = click.option(
    "--accounts-mapping",
    "accounts_mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The account mapping used with --accounts (default: accounts.toml next to the mapping).",
)


@dataclass
class _Parents:
    """Account assignments by account id, for contacts that inherit from their account.

    Assignments are interned by the engine, so this costs about one dict
    entry per account even for large orgs.
    """

    crm: str
    assignments: dict[str, Assignment]
    source: str
    segment_names: tuple[str, ...] = ()
    tier_names: tuple[str, ...] = ()
    bad_rows: int = 0
    unmatched: int = 0

    def of(self, record: ExportRecord) -> Assignment | None:
        """The assignment of the record's account, counting contacts whose account is unknown."""
        # Linked by link_key, like explain's lookup: a contact whose AccountId is
        # the 15-character form finds the account exported with the 18.
        account = link_key(parent_id(record.fields, self.crm), self.crm)
        found = self.assignments.get(account) if account is not None else None
        if found is None:
            self.unmatched += 1
        return found

    def notices(self) -> list[Notice]:
        """Warnings about the account export and unmatched contacts."""
        out: list[Notice] = []
        if self.bad_rows:
            out.append(
                Notice("bad_rows", f"{self.source}: {self.bad_rows:,} unreadable rows skipped")
            )
        if self.unmatched:
            out.append(
                Notice(
                    "other",
                    f"{self.unmatched:,} contact{'s' if self.unmatched != 1 else ''} "
                    f"with no account in {self.source} (by {parent_field(self.crm)}) "
                    "show their own defaults",
                )
            )
        return out


def _account_engine(
    engine: Engine,
    mapping_file: Path,
    accounts_file: Path | None,
    accounts_mapping: Path | None,
) -> Engine | None:
    """The account mapping for --accounts, checked; None without --accounts."""
    if accounts_file is None:
        if accounts_mapping is not None:
            raise UserError(
                [Problem(str(accounts_mapping), "", "--accounts-mapping needs --accounts FILE")]
            )
        return None
    if engine.object != "contact":
        raise UserError(
            [
                Problem(
                    str(mapping_file),
                    "object",
                    f"--accounts is for contact mappings; this one defines {engine.object!r}",
                )
            ]
        )
    account_mapping = accounts_mapping or mapping_file.with_name("accounts.toml")
    if accounts_mapping is None and not account_mapping.is_file():
        raise UserError(
            [Problem(str(account_mapping), "", "no account mapping here; give --accounts-mapping")]
        )
    accounts = _load_engine(account_mapping)
    if accounts.object != "account":
        raise UserError(
            [
                Problem(
                    str(account_mapping),
                    "object",
                    f"--accounts-mapping must define accounts, not {accounts.object!r}",
                )
            ]
        )
    return accounts


def parent_assignment(
    accounts: Engine, fields: Mapping[str, Any], crm: str, at: datetime
) -> Assignment | None:
    """What a contact of this account inherits, the way a sync decides it.

    A sync's contacts take their account's segment and tier as the CRM holds
    them after the account run. That is the computed assignment, except for a
    locked account, which keeps the values it has: read them from the
    export's output fields (none when blank, like the sync).
    """
    if not accounts.is_locked(fields, crm):
        return accounts.evaluate(fields, crm, at)
    outputs = accounts.output_fields(crm)
    segment = fields.get(outputs.get("segment", ""))
    tier = fields.get(outputs.get("tier", ""))
    if is_blank(segment) or is_blank(tier):
        return None
    return Assignment(str(segment), str(tier), {}, None, "")


def _load_parents(
    engine: Engine,
    mapping_file: Path,
    accounts_file: Path | None,
    accounts_mapping: Path | None,
    crm: str,
    at: datetime,
    show_progress: bool,
) -> _Parents | None:
    """Evaluate the whole account export once, for contacts that inherit from accounts."""
    accounts = _account_engine(engine, mapping_file, accounts_file, accounts_mapping)
    if accounts is None or accounts_file is None:
        return None
    assignments: dict[str, Assignment] = {}
    with ExportReader(accounts_file) as reader:
        for record in _Scan(reader, show_progress):
            key = link_key(record_id(record.fields, crm), crm)
            parent = parent_assignment(accounts, record.fields, crm, at) if key else None
            if key is not None and parent is not None:
                assignments[key] = parent
        bad = reader.bad_count
    return _Parents(
        crm,
        assignments,
        str(accounts_file),
        segment_names=accounts.segment_names,
        tier_names=accounts.tier_names,
        bad_rows=bad,
    )


@dataclass
class _Found:
    """The outcome of looking one id up in an export."""

    record: ExportRecord | None
    searched: int
    with_ids: int


def _find(path: Path, wanted: str, crm: str, show_progress: bool) -> _Found:
    """Stream an export until the record ``wanted`` (stops there)."""
    with_ids = 0
    with ExportReader(path) as reader:
        for record in _Scan(reader, show_progress):
            rid = record_id(record.fields, crm)
            if rid is None:
                continue
            with_ids += 1
            if same_id(wanted, rid, crm):
                return _Found(record, reader.records_read, with_ids)
        return _Found(None, reader.records_read, with_ids)


def _not_found(path: Path, wanted: str, crm: str, found: _Found, what: str = "record") -> UserError:
    names = " or ".join(repr(n) for n in id_fields(crm))
    message = f"no {what} with id {wanted!r} among {found.searched:,} records"
    if found.searched and not found.with_ids:
        message += f"; no record has an {names} field: is --crm {crm} right?"
    return UserError([Problem(str(path), "", message)])


def _inherit_notice(engine: Engine, parents: _Parents | None) -> list[Notice]:
    if parents is not None or not engine.inherits or engine.object != "contact":
        return []
    which = " and ".join(sorted(engine.inherits))
    return [
        Notice(
            "other",
            f"this mapping takes {which} from each contact's account: pass --accounts "
            "with an account export to see them (without it every contact shows the defaults)",
        )
    ]


# --------------------------------------------------------------------------- validate


def _load_deals(deals_file: Path | None, crm: str) -> DealsFile | None:
    """The deals export, when given (``--deals``) for a mapping with rollup attributes."""
    if deals_file is None:
        return None
    if not deals_file.is_file():
        raise UserError([Problem(str(deals_file), "", "file not found (--deals)")])
    return read_deals(deals_file, crm)


def _deal_notices(engines: Sequence[Engine], deals: DealsFile | None) -> list[Notice]:
    """Rollups without deals, and the deal rows that were skipped or kept without an amount."""
    notices: list[Notice] = []
    rollups = sorted({r for e in engines for r in e.rollups})
    if rollups and deals is None:
        notices.append(
            Notice(
                "other",
                f"rollup attributes ({', '.join(rollups)}) are blank without the deals: "
                "pass --deals FILE",
            )
        )
    if deals is not None:
        for message in deals.problems:
            notices.append(Notice("other", message))
        if deals.problem_count > len(deals.problems):
            more = deals.problem_count - len(deals.problems)
            notices.append(Notice("other", f"{deals.path}: {more:,} more deal rows reported"))
    return notices


def _with_deals(
    engine: Engine, fields: Mapping[str, Any], crm: str, at: datetime, deals: DealsFile | None
) -> Mapping[str, Any]:
    """The record's fields plus its rollup values (over its deals in the file, or none)."""
    if not engine.rollups or deals is None:
        return fields
    return engine.with_deals(fields, deals.of(link_key(record_id(fields, crm), crm)), at)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


@click.command("validate")
@click.argument("mappings", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also check this config file (and, without MAPPING arguments, the mappings it lists).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Treat lint warnings (unreachable rules, impossible conditions) as problems: exit 2.",
)
@FORMAT
def validate(mappings: tuple[Path, ...], config_file: Path | None, strict: bool, fmt: str) -> None:
    """Check mapping files (default: those in ./mappings) and, if given, a config file.

    Prints one "ok" line per valid file, or every problem found in every file,
    and exits with status 2 when there is any. A valid definition is also
    linted: rules no record can reach, conditions that can never hold, caps
    and tiers the scores cannot reach are printed as warnings (exit 0, or 2
    with --strict). With --format json: one document {"ok", "files",
    "problems", "warnings"} on stdout, the same exit status.
    """
    problems: list[Problem] = []
    warnings: list[LintWarning] = []
    files: list[dict[str, Any]] = []
    paths: Sequence[Path] = mappings
    settings: Settings | None = None
    if config_file is not None:
        try:
            settings = load_settings(config_file)
        except UserError as exc:
            problems.extend(exc.problems)
        else:
            files.append(
                {
                    "path": str(config_file),
                    "kind": "config",
                    "connections": len(settings.connections),
                    "jobs": len(settings.service.jobs),
                }
            )
            if not paths:
                paths = settings.sync.mappings
    # Neither files nor a config named: ./mappings, as `segsync init` lays it out.
    # (A config that failed to load names none; its own problems are the news.)
    if not paths and config_file is None:
        paths = sorted(DEFAULT_MAPPINGS_DIR.glob("*.toml"))
        if not paths:
            problems.append(
                Problem(
                    str(DEFAULT_MAPPINGS_DIR),
                    "",
                    "no mapping file given and none in ./mappings: name one "
                    "(segsync validate FILE), or start a project with segsync init",
                )
            )
    for path in paths:
        try:
            engine = _load_engine(path)
        except MappingError as exc:
            problems.extend(exc.problems)
            continue
        # Outputs naming a field the CRM defines (Name, OwnerId, city…) need
        # the config to adopt them: checked against --config when given.
        unowned = mapping_problems([engine], settings)
        if unowned:
            problems.extend(unowned)
            continue
        found = lint_mapping(engine.definition)
        warnings.extend(found)
        files.append(
            {
                "path": str(path),
                "kind": "mapping",
                "object": engine.object,
                "version": engine.version,
                "segments": len(engine.segment_names),
                "tiers": len(engine.tier_names),
                "scores": len(engine.score_names),
                "personas": len(engine.persona_names),
                "warnings": len(found),
                "classifications": list(engine.classification_names),
            }
        )
    failed = bool(problems) or (strict and bool(warnings))
    if fmt == "json":
        _emit_json(
            {
                "ok": not failed,
                "files": files,
                "problems": [
                    {
                        "file": p.file,
                        "location": p.location,
                        "message": p.message,
                        "suggestion": p.suggestion,
                    }
                    for p in problems
                ],
                "warnings": [
                    {"file": w.file, "location": w.location, "message": w.message, "kind": w.kind}
                    for w in warnings
                ],
            }
        )
        if failed:
            sys.exit(EXIT_USER)
        return
    for entry in files:
        click.echo(f"ok  {entry['path']}: {_validate_summary(entry)}")
    if not strict:
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
    if problems:
        raise UserError(problems)
    if strict and warnings:
        raise UserError([Problem(w.file, w.location, f"{w.message} (--strict)") for w in warnings])


def _validate_summary(entry: Mapping[str, Any]) -> str:
    """``1 connection, 0 jobs`` for a config; object, version and counts for a mapping."""
    if entry["kind"] == "config":
        return f"{_plural(entry['connections'], 'connection')}, {_plural(entry['jobs'], 'job')}"
    parts = [
        entry["object"],
        f"version {entry['version']}",
        _plural(entry["segments"], "segment"),
        _plural(entry["tiers"], "tier"),
        _plural(entry["scores"], "score"),
    ]
    if entry["personas"]:
        parts.append(_plural(entry["personas"], "persona"))
    if entry["warnings"]:
        parts.append(_plural(entry["warnings"], "warning"))
    if entry.get("classifications"):
        names = ", ".join(entry["classifications"])
        parts.append(f"{_plural(len(entry['classifications']), 'classification')} ({names})")
    return ", ".join(parts)


# --------------------------------------------------------------------------- preview


class _OutWriter:
    """Writes ``--out`` rows to a temporary file, moved into place only on success."""

    def __init__(self, path: Path, engine: Engine, *, lock: bool = False) -> None:
        self.path = path
        self._lock = lock
        self._tmp = path.with_name(f".{path.name}.tmp")
        try:
            self._file: IO[str] = self._tmp.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UserError(
                [Problem(str(path), "", f"cannot write the output: {reason}")]
            ) from None
        self._scores = engine.score_names
        self._persona = bool(engine.persona_names)
        self._writer = csv.writer(self._file)
        self._classes = tuple(engine.classification_names)
        header = ["id", "segment", "tier", *(f"{name}_score" for name in self._scores)]
        header.extend(f"{name}_tier" for name in self._classes)
        if self._persona:
            header.append("persona")
        header.append("reason")
        if lock:
            # Last, so the columns before it keep their places.
            header.append("locked")
        self._writer.writerow(header)

    def write(self, record: str | None, assignment: Assignment, locked: bool = False) -> None:
        """One record's row; ``locked``: a sync would leave the record as it is."""
        row: list[Any] = [record or "", assignment.segment, assignment.tier]
        row.extend(_cell(assignment.scores.get(name)) for name in self._scores)
        row.extend(assignment.classifications.get(name, "") for name in self._classes)
        if self._persona:
            row.append(assignment.persona or "")
        row.append(assignment.reason)
        if self._lock:
            row.append("true" if locked else "false")
        self._writer.writerow(row)

    def commit(self) -> None:
        """Close the file and move it into place."""
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Close and remove the partial file."""
        self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@click.command("preview")
@click.option(
    "--mapping",
    "-m",
    "mapping_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The mapping file to try.",
)
@_INPUT
@_CRM
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every record's id, segment, tier, scores and reason to this CSV.",
)
@_ACCOUNTS
@_ACCOUNTS_MAPPING
@_DEALS
@NOW
@click.option(
    "--min-segment-share",
    type=click.FloatRange(0.0, 1.0),
    metavar="SHARE",
    default=0.02,
    show_default=True,
    help="Warn about segments holding less than this share of the records.",
)
@FORMAT
def preview(
    mapping_file: Path,
    input_file: Path,
    crm: str,
    out_file: Path | None,
    accounts_file: Path | None,
    accounts_mapping: Path | None,
    deals_file: Path | None,
    now: datetime | None,
    min_segment_share: float,
    fmt: str,
) -> None:
    """Show how an export's records spread over the segments and tiers of a mapping.

    Reads the export as a stream (any size), evaluates every record, and
    prints the count and share per segment, per tier and per segment × tier,
    score statistics, and warnings: segments too small to act on, empty
    segments and tiers, records with no usable input, fields missing from
    the export, and unreadable rows (skipped, with their line numbers).
    For contacts, --accounts gives each contact its account's segment and tier;
    for accounts, --deals computes rollup attributes from each account's deals.
    """
    engine = _load_engine(mapping_file, crm)
    deals = _load_deals(deals_file, crm)
    at = _now(now)
    progress = fmt == "text" and _stderr_is_terminal()
    parents = _load_parents(
        engine, mapping_file, accounts_file, accounts_mapping, crm, at, progress
    )
    # The lock checkbox is "false" on nearly every record: it says nothing about
    # whether the export carried the record's data.
    lock = engine.lock_field(crm)
    inputs = tuple(f for f in engine.input_fields(crm) if f != lock)
    # Inherited names come first: they are the ones a contact shows.
    parent_segments = parents.segment_names if parents is not None else ()
    parent_tiers = parents.tier_names if parents is not None else ()
    dist = Distribution(
        segments=tuple(dict.fromkeys((*parent_segments, *engine.segment_names))),
        tiers=tuple(dict.fromkeys((*parent_tiers, *engine.tier_names))),
        personas=engine.persona_names,
        scores=engine.score_names,
    )
    missing_ids = unreadable_locks = skipped = 0
    with ExportReader(input_file) as reader:
        out = _OutWriter(out_file, engine, lock=lock is not None) if out_file is not None else None
        try:
            for record in _Scan(reader, progress):
                fields = record.fields
                if _out_of_scope(engine, crm, fields):
                    skipped += 1
                    continue
                parent = parents.of(record) if parents is not None else None
                assignment = engine.evaluate(
                    _with_deals(engine, fields, crm, at, deals), crm, at, parent
                )
                rid = record_id(fields, crm)
                missing_ids += rid is None
                dist.add(
                    assignment.segment,
                    assignment.tier,
                    assignment.scores,
                    assignment.persona,
                    blank_inputs=bool(inputs) and all(is_blank(fields.get(f)) for f in inputs),
                )
                reading = engine.lock_reading(fields, crm)
                unreadable_locks += reading.unreadable
                if out is not None:
                    out.write(rid, assignment, reading.locked)
        except BaseException:
            if out is not None:
                out.abort()
            raise
        if out is not None:
            out.commit()
        notices = _field_notices(engine, crm, reader)
        notices += _inherit_notice(engine, parents)
        if parents is not None:
            notices += parents.notices()
        notices += distribution_notices(dist, min_segment_share)
        notices += _converted_notice(engine, crm, skipped)
        notices += _deal_notices([engine], deals)
        if unreadable_locks:
            notices.append(
                Notice(
                    "other",
                    f"{_plural(unreadable_locks, 'record')} have a {lock} value that is not "
                    "true or false; sync keeps them locked (never writes them)",
                    lock,
                )
            )
        if missing_ids:
            names = " or ".join(repr(n) for n in id_fields(crm))
            notices.append(
                Notice(
                    "missing_ids",
                    f"{missing_ids:,} record{'s' if missing_ids != 1 else ''} have no {names}"
                    + ("; their --out rows have an empty id" if out_file is not None else ""),
                )
            )
        header: dict[str, Any] = {
            "mapping": _mapping_header(engine),
            "input": _input_header(reader, crm),
            **({"accounts": parents.source} if parents is not None else {}),
            "records": f"{dist.total:,} evaluated"
            + (f", {_plural(skipped, 'converted lead')} left out" if skipped else "")
            + (f", {reader.bad_count:,} unreadable rows skipped" if reader.bad_count else ""),
            "evaluated_at": at.isoformat(),
        }
        if out_file is not None:
            header["out"] = str(out_file)
        bad_rows, bad_total = reader.bad_rows, reader.bad_count
    if fmt == "json":
        doc_header = {
            "command": "preview",
            "mapping": str(engine.path),
            "object": engine.object,
            "version": engine.version,
            "input": str(input_file),
            "crm": crm,
            "evaluated_at": at.isoformat(),
            "accounts": parents.source if parents is not None else None,
            "out": str(out_file) if out_file is not None else None,
            "min_segment_share": min_segment_share,
        }
        _emit_json(preview_document(doc_header, dist, notices, bad_rows, bad_total))
        return
    render_preview(_console(), header, dist, notices, bad_rows[:BAD_ROWS_LISTED], bad_total)


# --------------------------------------------------------------------------- explain


@click.command("explain")
@click.option(
    "--mapping",
    "-m",
    "mapping_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The mapping file.",
)
@_INPUT
@click.option("--id", "wanted", required=True, help="The record's id in the export.")
@_CRM
@_ACCOUNTS
@_ACCOUNTS_MAPPING
@_DEALS
@NOW
@FORMAT
def explain(
    mapping_file: Path,
    input_file: Path,
    wanted: str,
    crm: str,
    accounts_file: Path | None,
    accounts_mapping: Path | None,
    deals_file: Path | None,
    now: datetime | None,
    fmt: str,
) -> None:
    """Explain, step by step, how one record of an export gets its segment, tier and scores.

    Salesforce ids may be given in their 15- or 18-character form. For a
    contact, --accounts looks its account up so inherited values show; for an
    account, --deals computes its rollup attributes and lists the deals each used.
    """
    engine = _load_engine(mapping_file, crm)
    deals = _load_deals(deals_file, crm)
    accounts = _account_engine(engine, mapping_file, accounts_file, accounts_mapping)
    at = _now(now)
    wanted = wanted.strip()
    progress = fmt == "text" and _stderr_is_terminal()
    found = _find(input_file, wanted, crm, progress)
    if found.record is None:
        raise _not_found(input_file, wanted, crm, found)
    record = found.record
    parent: Assignment | None = None
    account: dict[str, Any] | None = None
    if accounts is not None and accounts_file is not None:
        account_id = parent_id(record.fields, crm)
        if account_id is None:
            raise UserError(
                [
                    Problem(
                        str(input_file),
                        f"line {record.line}",
                        f"the contact has no {parent_field(crm)}: no account to inherit from",
                    )
                ]
            )
        lookup = _find(accounts_file, account_id, crm, progress)
        if lookup.record is None:
            raise _not_found(accounts_file, account_id, crm, lookup, what="account")
        parent = parent_assignment(accounts, lookup.record.fields, crm, at)
        account = {
            "id": account_id,
            "mapping": str(accounts.path),
            "locked": accounts.is_locked(lookup.record.fields, crm),
            "segment": parent.segment if parent is not None else None,
            "tier": parent.tier if parent is not None else None,
            "reason": parent.reason if parent is not None else "",
        }
    own_deals = None
    if deals is not None and engine.rollups:
        own_deals = deals.of(link_key(record_id(record.fields, crm), crm))
    explanation = engine.explain(record.fields, crm, at, parent, own_deals)
    rid = record_id(record.fields, crm)
    if fmt == "json":
        _emit_json(
            {
                "command": "explain",
                "mapping": str(engine.path),
                "object": engine.object,
                "version": engine.version,
                "input": str(input_file),
                "crm": crm,
                "evaluated_at": at.isoformat(),
                "id": rid,
                "line": record.line,
                "account": account,
                "explanation": explanation.to_dict(),
            }
        )
        return
    click.echo(f"{rid}: line {record.line} of {input_file}")
    if account is not None:
        if account["segment"] is None:
            click.echo(
                f"account {account['id']}: locked, with a blank segment or tier: "
                "the contact keeps its own defaults"
            )
        else:
            held = ", locked: as the CRM holds them" if account["locked"] else ""
            click.echo(
                f"account {account['id']}: {account['segment']} · {account['tier']} "
                f"(under {account['mapping']}{held})"
            )
    click.echo(explanation.render())


# --------------------------------------------------------------------------- diff


def _values(assignment: Assignment) -> dict[str, str | None]:
    """Segment, tier, persona and each classification's tier, by dimension name."""
    return {
        "segment": assignment.segment,
        "tier": assignment.tier,
        "persona": assignment.persona,
        **assignment.classifications,
    }


@click.command("diff")
@click.option(
    "--before",
    "before_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The current mapping file.",
)
@click.option(
    "--after",
    "after_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The changed mapping file.",
)
@click.option(
    "--input",
    "-i",
    "input_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV or JSON Lines export (.csv, .jsonl, .ndjson, optionally .gz); "
    "without it, the accounts of a configured connection are read live.",
)
@click.option(
    "--crm",
    default=None,
    type=click.Choice(CRM_CHOICES),
    help="Which CRM the export comes from (decides the field names read); "
    "live, the connection of this CRM.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Live (no --input): the settings file (default: config.toml, or $SEGSYNC_CONFIG).",
)
@click.option(
    "--connection",
    default=None,
    metavar="NAME",
    help="Live (no --input): the connection whose accounts (and stored deals) are read.",
)
@click.option(
    "--save-inputs",
    "save_inputs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Live (no --input): keep the accounts and deals read in this directory "
    "(accounts.jsonl, deals.jsonl) to reproduce the result offline.",
)
@click.option(
    "--samples",
    type=click.IntRange(0, 100),
    default=3,
    show_default=True,
    help="Sample records to list per move.",
)
@_ACCOUNTS
@_ACCOUNTS_MAPPING
@_DEALS
@click.option(
    "--outcomes",
    is_flag=True,
    help="Accounts only, with --deals: backtest both definitions on the closed deals "
    "(win rate per tier, won deals in the top tier, ROC AUC of the tier and of each score).",
)
@NOW
@FORMAT
def diff(
    before_file: Path,
    after_file: Path,
    input_file: Path | None,
    crm: str | None,
    config_file: Path | None,
    connection: str | None,
    save_inputs: Path | None,
    samples: int,
    accounts_file: Path | None,
    accounts_mapping: Path | None,
    deals_file: Path | None,
    outcomes: bool,
    now: datetime | None,
    fmt: str,
) -> None:
    """Show which records a definition change moves, before it ships.

    Evaluates every record of the export under both definitions and prints
    the transition matrices (segment → segment, tier → tier, persona →
    persona for contacts) with sample records per move and their reason under
    the new definition, and how many records do not change at all. For
    contacts, --accounts evaluates the account export once (under one
    account mapping) so both definitions inherit the same account values.

    Without --input (accounts only), the accounts of one configured
    connection are read from the CRM and their deals from the state store
    (`segsync sync --object deal`); --save-inputs DIR keeps both as exports
    that reproduce the result offline (with --now set to its evaluated_at).
    """
    options = _DiffOptions(samples, accounts_file, accounts_mapping, outcomes, now, fmt)
    if input_file is not None:
        if crm is None:
            raise UserError([Problem("--crm", "", "which CRM the export comes from is needed")])
        _diff(before_file, after_file, input_file, crm, deals_file, options)
        return
    for name, given in (("--accounts", accounts_file), ("--accounts-mapping", accounts_mapping)):
        if given is not None:
            raise UserError([Problem(name, "", "a live diff reads accounts only: give --input")])
    name, live_crm = resolve_crm(config_file, connection, crm or "all")
    engines = []
    for path in (before_file, after_file):
        engine = _load_engine(path, live_crm)
        if engine.object != "account":
            raise UserError(
                [Problem(str(path), "object", "a live diff reads accounts: give --input")]
            )
        engines.append(engine)
    need_deals = deals_file is None and (outcomes or any(e.rollups for e in engines))
    with contextlib.ExitStack() as stack:
        if save_inputs is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segsync-")))
        else:
            folder = save_inputs
        live = pull_inputs(config_file, name, engines, folder, deals=need_deals)
        _diff(
            before_file,
            after_file,
            live.accounts,
            live_crm,
            live.deals if need_deals else deals_file,
            options,
            source=(
                f"connection {name} (live: {live.account_count:,} accounts, "
                f"{live.deal_count:,} deals)"
            ),
        )


@dataclass(frozen=True)
class _DiffOptions:
    samples: int
    accounts_file: Path | None
    accounts_mapping: Path | None
    outcomes: bool
    now: datetime | None
    fmt: str


def _diff(
    before_file: Path,
    after_file: Path,
    input_file: Path,
    crm: str,
    deals_file: Path | None,
    options: _DiffOptions,
    source: str | None = None,
) -> None:
    """The diff of two definitions over an export (``source`` names a live one)."""
    samples, accounts_file, accounts_mapping = (
        options.samples,
        options.accounts_file,
        options.accounts_mapping,
    )
    outcomes, now, fmt = options.outcomes, options.now, options.fmt
    problems: list[Problem] = []
    engines: list[Engine] = []
    for path in (before_file, after_file):
        try:
            engines.append(_load_engine(path, crm))
        except MappingError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UserError(problems)
    before, after = engines
    if outcomes and deals_file is None:
        raise UserError(
            [Problem(str(after_file), "", "--outcomes backtests on closed deals: add --deals FILE")]
        )
    if outcomes and after.object != "account":
        raise UserError(
            [Problem(str(after_file), "object", "--outcomes backtests account definitions only")]
        )
    deals = _load_deals(deals_file, crm)
    if before.object != after.object:
        raise UserError(
            [
                Problem(
                    str(after_file),
                    "object",
                    f"defines {after.object!r} records but {before_file} defines "
                    f"{before.object!r}: compare two definitions of the same object",
                )
            ]
        )
    at = _now(now)
    progress = fmt == "text" and _stderr_is_terminal()
    parents = _load_parents(after, after_file, accounts_file, accounts_mapping, crm, at, progress)
    dimensions: tuple[str, ...] = ("segment", "tier")
    if before.persona_names or after.persona_names:
        dimensions += ("persona",)
    # Each classification either definition declares is one more dimension (its name).
    dimensions += tuple(dict.fromkeys([*before.classification_names, *after.classification_names]))
    transitions = Transitions(
        dimensions=dimensions,
        before_names={
            "segment": before.segment_names,
            "tier": before.tier_names,
            "persona": before.persona_names,
            **before.classification_names,
        },
        after_names={
            "segment": after.segment_names,
            "tier": after.tier_names,
            "persona": after.persona_names,
            **after.classification_names,
        },
        sample_limit=samples,
    )
    backtest = (
        Backtest(before.version, after.version, before.tier_names, after.tier_names)
        if outcomes and deals is not None
        else None
    )
    seen_accounts: set[str] = set()
    skipped = 0
    with ExportReader(input_file) as reader:
        for record in _Scan(reader, progress):
            if _out_of_scope(after, crm, record.fields):
                skipped += 1
                continue
            if backtest is not None and deals is not None:
                _backtest_account(backtest, before, after, record.fields, crm, at, deals)
                seen_accounts.add(link_key(record_id(record.fields, crm), crm) or "")
            parent = parents.of(record) if parents is not None else None
            old = before.evaluate(
                _with_deals(before, record.fields, crm, at, deals), crm, at, parent
            )
            new = after.evaluate(_with_deals(after, record.fields, crm, at, deals), crm, at, parent)
            transitions.add(
                _label(record_id(record.fields, crm), record),
                _values(old),
                _values(new),
                new.reason,
                old.scores,
                new.scores,
            )
        notices = _field_notices(after, crm, reader)
        notices += _inherit_notice(after, parents)
        notices += _deal_notices([before, after], deals)
        if parents is not None:
            notices += parents.notices()
        notices += _converted_notice(after, crm, skipped)
        input_header = f"{source}, {crm}" if source else _input_header(reader, crm)
        bad_rows, bad_total = reader.bad_rows, reader.bad_count
    notices += diff_notices(transitions, before.version, after.version)
    if fmt == "json":
        doc_header = {
            "command": "diff",
            "before": {"mapping": str(before.path), "version": before.version},
            "after": {"mapping": str(after.path), "version": after.version},
            "object": after.object,
            "input": source or str(input_file),
            "accounts": parents.source if parents is not None else None,
            "crm": crm,
            "evaluated_at": at.isoformat(),
        }
        document = diff_document(doc_header, transitions, notices, bad_rows, bad_total)
        if backtest is not None and deals is not None:
            _unmatched(backtest, deals, seen_accounts)
            document["outcomes"] = backtest.to_dict()
        _emit_json(document)
        return
    header = {
        "before": _mapping_header(before),
        "after": _mapping_header(after),
        "input": input_header,
        "evaluated_at": at.isoformat(),
    }
    console = _console()
    render_diff(console, header, transitions, notices, bad_rows[:BAD_ROWS_LISTED], bad_total)
    if backtest is not None and deals is not None:
        _unmatched(backtest, deals, seen_accounts)
        render_backtest(console, backtest)


def _backtest_account(
    backtest: Backtest,
    before: Engine,
    after: Engine,
    fields: Mapping[str, Any],
    crm: str,
    at: datetime,
    deals: DealsFile,
) -> None:
    """Add the closed deals of one account, its tier and scores under each definition.

    The account's own attributes are read as the export holds them (at
    ``--now``); rollup attributes are computed as of each deal's creation from
    the deals that had closed by then, so a deal's outcome never predicts itself.
    """
    own = deals.of(link_key(record_id(fields, crm), crm))
    cached: dict[str, tuple[str, Mapping[str, float | int]]] = {}

    def side(engine: Engine, deal: FileDeal, key: str) -> tuple[str, Mapping[str, float | int]]:
        if not engine.rollups:
            if key not in cached:
                a = engine.evaluate(fields, crm, at)
                cached[key] = (a.tier, a.scores)
            return cached[key]
        prior = [
            d
            for d in own
            if d.is_closed and d.closed_at is not None and d.closed_at < deal.created_at
        ]
        a = engine.evaluate(engine.with_deals(fields, prior, deal.created_at), crm, at)
        return a.tier, a.scores

    for deal in own:
        if not deal.is_closed:
            backtest.skip("open")
            continue
        backtest.add(deal.is_won, side(before, deal, "before"), side(after, deal, "after"))


def _unmatched(backtest: Backtest, deals: DealsFile, seen: set[str]) -> None:
    """Count the deals whose account is not in the export (once, after the scan)."""
    for account, listed in deals.by_account.items():
        if account not in seen:
            for deal in listed:
                backtest.skip("no_account" if deal.is_closed else "open")


#: The commands this module contributes to ``segsync``, in help order.
COMMANDS: tuple[click.Command, ...] = (validate, preview, explain, diff)
