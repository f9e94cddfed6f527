"""Every hostile input is one line naming file, table and key, with exit code 2 and no traceback.

Config numbers (nan, inf, absurd magnitudes, a 4,301-digit integer), mapping
values (``within_days = 1e9`` that used to pass ``validate`` and overflow in
``preview``, ``points = nan``, caps, between bounds, matrix bands), ``when``
nested hundreds of levels deep, and JSON Lines records nested thousands deep.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector import templates
from connector.cli import cli

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = templates.ACCOUNTS
SAMPLE = ROOT / "connector" / "samples" / "salesforce_accounts.csv"
HUGE = "9" * 4301


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _one_error(result: Result, *needles: str) -> str:
    """The run exited 2 with exactly one ``error:`` line containing every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert len(errors[0]) < 500
    return errors[0]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("sync", "max_change_share", "nan"),
        ("sync", "max_change_share", "inf"),
        ("sync", "retry_initial_wait_seconds", "nan"),
        ("sync", "retry_max_wait_seconds", "inf"),
        ("sync", "retry_max_wait_seconds", "1e300"),
        ("sync", "retry_attempts", "1000000"),
        ("sync", "lookback_seconds", "1000000000000"),
        ("sync", "hysteresis_runs", "0"),
        ("sync", "hysteresis_dwell_seconds", "-1"),
        ("sync", "min_records_for_guard", "1e10"),
        ("service", "port", "70000"),
        ("service", "misfire_grace_seconds", "99999999999"),
        ("service", "shutdown_timeout_seconds", "nan"),
        ("service", "ready_max_age_minutes", "inf"),
        ("service", "alert_failure_share", "-inf"),
        ("connections.sf", "bulk_read_threshold", "0"),
        ("connections.sf", "bulk_write_threshold", "100000000000"),
        ("connections.sf", "daily_api_share", "nan"),
        ("connections.sf", "api_version", '"59.0/../../x"'),
        ("connections.hs", "requests_per_10s", "10000000000"),
        ("connections.hs", "daily_limit", "-5"),
        ("connections.hs", "search_per_second", "0"),
    ],
)
def test_config_numbers_out_of_bounds(tmp_path: Path, table: str, key: str, value: str) -> None:
    conns = '[connections.sf]\ncrm = "salesforce"\n[connections.hs]\ncrm = "hubspot"\n'
    body = conns.replace(f"[{table}]\n", f"[{table}]\n{key} = {value}\n")
    if f"{key} = {value}" not in body:
        body += f"[{table}]\n{key} = {value}\n"
    config = tmp_path / "c.toml"
    config.write_text(body)
    _one_error(_invoke("validate", "--config", str(config), str(ACCOUNTS)), str(config), key)


@pytest.mark.parametrize(
    "body",
    [
        f"[sync]\nretry_attempts = {HUGE}\n",
        '[[service.jobs]]\nconnection = "sf"\nobject = "account"\ninterval_minutes = 1e308\n',
        '[[service.jobs]]\nconnection = "sf"\nobject = "account"\ncron = "0 0 * * *"\n'
        "full_every_hours = nan\n",
        "[sync]\nretry_initial_wait_seconds = 30\nretry_max_wait_seconds = 1\n",
        "x = " + "[" * 2000 + "]" * 2000 + "\n",
    ],
)
def test_config_absurd_inputs_are_one_line(tmp_path: Path, body: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[connections.sf]\ncrm = "salesforce"\n' + body)
    _one_error(_invoke("validate", "--config", str(config), str(ACCOUNTS)), str(config))


# --------------------------------------------------------------------------- mappings


def _mapping(tmp_path: Path, old: str, new: str) -> Path:
    text = ACCOUNTS.read_text()
    assert old in text, old
    path = tmp_path / "m.toml"
    path.write_text(text.replace(old, new, 1))
    return path


WITHIN = 'when = { attr = "last_activity", within_days = 30 }'
POINTS = 'points = 30, label = "employees ≥ 1000"'
BETWEEN = "between = [200, 999]"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (WITHIN, WITHIN.replace("30", "1000000000"), "within_days"),
        (WITHIN, WITHIN.replace("30", HUGE), ""),
        (
            WITHIN,
            WITHIN.replace("within_days = 30", "older_than_days = 99999999"),
            "older_than_days",
        ),
        (POINTS, POINTS.replace("30", "nan"), "points"),
        (POINTS, POINTS.replace("30", "inf"), "points"),
        (POINTS, POINTS.replace("30", "1e300"), "points"),
        (POINTS, POINTS.replace("30", "-1e16"), "points"),
        ("cap = 100", "cap = nan", "cap"),
        ("cap = 100", "cap = 1e309", "cap"),
        (BETWEEN, "between = [-inf, 999]", "between"),
        (BETWEEN, "between = [200, 1e400]", "between"),
        (BETWEEN, "between = [200, nan]", "between"),
        ("gte = 1000 }", "gte = nan }", "gte"),
        ("gte = 1000 }", "gte = 1e200 }", "gte"),
    ],
)
def test_mapping_values_out_of_bounds(tmp_path: Path, old: str, new: str, where: str) -> None:
    path = _mapping(tmp_path, old, new)
    _one_error(_invoke("validate", str(path)), str(path), where)
    # preview and diff load the same way: one line too, never an overflow mid-run.
    _one_error(
        _invoke(
            "preview",
            "--mapping",
            str(path),
            "--crm",
            "salesforce",
            "--input",
            str(SAMPLE),
            "--now",
            "2026-11-01",
        ),
        str(path),
    )
    _one_error(
        _invoke(
            "diff",
            "--before",
            str(ACCOUNTS),
            "--after",
            str(path),
            "--crm",
            "salesforce",
            "--input",
            str(SAMPLE),
            "--now",
            "2026-11-01",
        ),
        str(path),
    )


def test_large_but_sane_values_still_work(tmp_path: Path) -> None:
    """The bounds are generous: a hundred years of days and a billion in revenue are fine."""
    path = _mapping(tmp_path, WITHIN, WITHIN.replace("30", "36500"))
    result = _invoke(
        "preview",
        "--mapping",
        str(path),
        "--crm",
        "salesforce",
        "--input",
        str(SAMPLE),
        "--now",
        "2026-11-01",
    )
    assert result.exit_code == 0, result.output


def _nested(levels: int) -> str:
    inner = '{ attr = "employees", gte = 1000 }'
    for i in range(levels):
        inner = "{ not = " + inner + " }" if i % 2 else "{ all = [" + inner + "] }"
    return inner


@pytest.mark.parametrize("levels", [40, 600, 5000])
def test_deeply_nested_conditions_are_one_line(tmp_path: Path, levels: int) -> None:
    path = _mapping(
        tmp_path,
        'when = { attr = "employees", gte = 1000 } },',
        f"when = {_nested(levels)} }},",
    )
    line = _one_error(_invoke("validate", str(path)), str(path))
    assert re.search(r"nested|deep", line), line


def test_nesting_within_the_limit_is_fine(tmp_path: Path) -> None:
    path = _mapping(
        tmp_path,
        'when = { attr = "employees", gte = 1000 } },',
        f"when = {_nested(20)} }},",
    )
    result = _invoke("validate", str(path))
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize(
    "line",
    [
        '{"Id": "001A", "Name": "x", "n": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"Id": "001A", "Name": "x", "n": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        '{"Id": "001A", "Name": "x", "n": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}",
        '{"Id": "001A", "NumberOfEmployees": ' + HUGE + "}",
        '{"Id": "001A", "NumberOfEmployees": 1e999}',
        '{"Id": "001A", "NumberOfEmployees": NaN}',
    ],
)
def test_hostile_json_lines_are_bad_rows_not_crashes(tmp_path: Path, line: str) -> None:
    good = json.dumps({"Id": "001B", "Name": "ok", "NumberOfEmployees": 5000})
    export = tmp_path / "e.jsonl"
    export.write_text(line + "\n" + good + "\n")
    result = _invoke(
        "preview",
        "--mapping",
        str(ACCOUNTS),
        "--crm",
        "salesforce",
        "--input",
        str(export),
        "--now",
        "2026-11-01",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    document = json.loads(result.output)
    assert document["records"] == 1
    assert document["bad_rows"]["total"] == 1
    assert document["bad_rows"]["listed"][0]["line"] == 1


@pytest.mark.parametrize("now", ["0001-01-01", "9999-12-31T23:59:59-05:00", "1899-12-31"])
def test_an_evaluation_time_off_the_calendar_is_one_line(now: str) -> None:
    result = _invoke(
        "preview", "--mapping", str(ACCOUNTS), "--crm", "salesforce", "--input", str(SAMPLE),
        "--now", now,
    )  # fmt: skip
    _one_error(result, "--now", "year")
