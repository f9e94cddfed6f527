"""Fuzzing the user's files through the real command line: no traceback, ever.

Hypothesis mutates the shipped mapping files and a complete config (a value
replaced by a hostile literal: nan, inf, huge or 4,301-digit numbers, deep
nesting, odd strings, wrong types; a key renamed; a line dropped) and
generates hostile exports (random JSON objects, arrays nested deep, bad
numbers, broken CSV). Each goes through ``segsync validate`` / ``preview`` /
``diff`` as a user would run them. Whatever the input, the command ends with
its documented exit code (0 fine, 2 a problem in the user's file) and never
an unhandled exception.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import templates
from connector.cli import cli

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = {
    "account": templates.ACCOUNTS,
    "contact": templates.CONTACTS,
}
SAMPLE = ROOT / "connector" / "samples" / "salesforce_accounts.csv"
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

# --------------------------------------------------------------------------- hostile literals

_FIXED = [
    "nan", "+nan", "-nan", "inf", "-inf", "1e308", "-1e308", "1e309", "9" * 4301, "-" + "9" * 4400,
    "0", "-1", "1000000000", "2147483648", "9223372036854775808", "0.0000001", "1_000", "0x7fff",
    '""', "''", '" "', "true", "false", "[]", "{}", "[[]]", "[1, 2]", "[nan, inf]", "[1, 1e400]",
    "1979-05-27", "0001-01-01", "9999-12-31T23:59:59Z", "07:32:00",
    '"' + "a" * 5000 + '"', '"\\u0000"', '"名前"', '"🙂"', '"Tier 1"', '"employees"',
    '"Segsync_Segment__c"', '"BillingCity"', '"hubspot_owner_id"', '"Name"',
    "{ attr = \"employees\", gte = nan }", "{ attr = \"last_activity\", within_days = 999999999 }",
    "{ not = " * 600 + "{}" + " }" * 600, "[" * 3000 + "]" * 3000,
    "{ all = [" * 40 + "{ attr = \"employees\", gte = 1 }" + "] }" * 40,
]  # fmt: skip


def _toml_string(text: str) -> str:
    # JSON string syntax is TOML basic-string syntax for everything json.dumps emits
    # except lone surrogates, which TOML rejects: a parse error is a fine input too.
    return json.dumps(text)


LITERALS = st.one_of(
    st.sampled_from(_FIXED),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=40).map(_toml_string),
    st.lists(st.integers(min_value=-(10**20), max_value=10**20), max_size=4).map(str),
)

_VALUE = re.compile(r"^(?P<head>[^#\n=]*?=\s*)(?P<value>[^\n]*)$", re.M)


def _mutate(text: str, data: st.DataObject) -> str:
    """The text with one to three mutations: a value replaced, a key renamed, a line dropped."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        spots = [m for m in _VALUE.finditer(text) if not m.group("head").lstrip().startswith("#")]
        kind = data.draw(st.sampled_from(["value", "value", "value", "key", "drop"]), label="kind")
        if not spots:
            break
        spot = spots[data.draw(st.integers(min_value=0, max_value=len(spots) - 1), label="spot")]
        if kind == "value":
            literal = data.draw(LITERALS, label="literal")
            text = text[: spot.start("value")] + literal + text[spot.end("value") :]
        elif kind == "key":
            key = data.draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), label="key")
            head = spot.group("head")
            renamed = re.sub(r"[A-Za-z0-9_.\"]+(?=\s*=\s*$)", key, head, count=1)
            text = text[: spot.start("head")] + renamed + text[spot.end("head") :]
        else:
            text = text[: spot.start()] + text[spot.end() :]
    return text


# --------------------------------------------------------------------------- running


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _no_traceback(result: Result, allowed: tuple[int, ...] = (0, 2)) -> None:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"unhandled {type(exc).__name__}: {exc!s:.500}") from exc
    assert result.exit_code in allowed, result.output[-2000:]
    assert "Traceback (most recent call last)" not in result.output
    for line in result.output.splitlines():
        if line.startswith("error:"):
            assert len(line) < 2_000, line[:300]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="segsync-fuzz-") as name:
        work = Path(name)
        # A small export keeps each example fast; the records are real sample rows.
        lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:40]
        (work / "sample.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        yield work


# --------------------------------------------------------------------------- mappings


@SETTINGS
@given(data=st.data(), obj=st.sampled_from(["account", "contact"]))
def test_fuzzed_mappings_never_crash_validate_preview_or_diff(
    workdir: Path, data: st.DataObject, obj: str
) -> None:
    original = MAPPINGS[obj]
    mutated = workdir / f"fuzzed-{obj}.toml"
    mutated.write_text(_mutate(original.read_text(encoding="utf-8"), data), encoding="utf-8")
    _no_traceback(_run("validate", str(mutated)))
    crm = data.draw(st.sampled_from(["salesforce", "hubspot"]), label="crm")
    common = ["--crm", crm, "--input", str(workdir / "sample.csv"), "--now", "2026-11-01"]
    _no_traceback(_run("preview", "--mapping", str(mutated), *common, "--format", "json"))
    _no_traceback(_run("diff", "--before", str(original), "--after", str(mutated), *common))


# --------------------------------------------------------------------------- config

_CONFIG = f"""
[connections.salesforce]
crm = "salesforce"
auth = "client_credentials"
login_url = "https://login.salesforce.com"
api_version = "59.0"
client_id = "3MVG9"
client_secret = "s"
timeout_seconds = 60.0
bulk_read_threshold = 50000
bulk_write_threshold = 10000
daily_api_share = 0.5
max_concurrency = 4
allow_insecure_http = false
adopt_fields = {{ account = [], contact = [] }}

[connections.hubspot]
crm = "hubspot"
base_url = "https://api.hubapi.com"
access_token = "pat"
timeout_seconds = 60.0
requests_per_10s = 100
daily_limit = 250000
search_per_second = 4
max_concurrency = 4

[store]
url = "sqlite:///segsync.db"

[sync]
mappings = ["{MAPPINGS["account"]}", "{MAPPINGS["contact"]}"]
override_policy = "respect"
max_change_share = 0.5
min_records_for_guard = 50
lookback_seconds = 300
hysteresis_runs = 1
hysteresis_dwell_seconds = 0
retry_attempts = 6
retry_initial_wait_seconds = 0.5
retry_max_wait_seconds = 60.0

[service]
host = "127.0.0.1"
port = 9464
timezone = "UTC"
misfire_grace_seconds = 300
shutdown_timeout_seconds = 30.0
ready_max_age_minutes = 120.0
alert_failure_share = 0.05

[[service.jobs]]
connection = "salesforce"
object = "account"
interval_minutes = 15
full_every_hours = 24

[[service.jobs]]
connection = "hubspot"
object = "contact"
cron = "*/20 * * * *"
"""


def test_the_fuzzed_config_starts_valid(workdir: Path) -> None:
    config = workdir / "base.toml"
    config.write_text(_CONFIG, encoding="utf-8")
    result = _run("validate", "--config", str(config))
    assert result.exit_code == 0, result.output


@SETTINGS
@given(data=st.data())
def test_fuzzed_configs_never_crash_validate(workdir: Path, data: st.DataObject) -> None:
    config = workdir / "fuzzed-config.toml"
    config.write_text(_mutate(_CONFIG, data), encoding="utf-8")
    _no_traceback(_run("validate", "--config", str(config)))


# --------------------------------------------------------------------------- exports

_FIELDS = [
    "Id", "Name", "Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCountry",
    "Tech_Stack__c", "Intent_Score__c", "LastActivityDate", "hs_object_id", "name", "industry",
    "numberofemployees", "annualrevenue", "country", "tech_stack", "properties", "Account",
]  # fmt: skip

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["1e999", "NaN", "-0", "2026-02-30", "9" * 500, "Software;;", "١٢"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELDS), st.text(max_size=8)), inner, max_size=5
        ),
    ),
    max_leaves=20,
)
_RAW_LINES = st.sampled_from(
    [
        '{"Id": "001", "n": ' + "[" * 4000 + "]" * 4000 + "}",
        '{"Id": "001", "n": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}",
        '{"Id": "001", "NumberOfEmployees": ' + "9" * 4301 + "}",
        '{"Id": "001", "NumberOfEmployees": 1e999}',
        '{"Id": "001", "NumberOfEmployees": NaN, "AnnualRevenue": -Infinity}',
        "[1, 2, 3]",
        "not json at all",
        "\x00\x01\x02",
        '{"Id": "\\ud800"}',
        "",
    ]
)


@SETTINGS
@given(
    records=st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=8).map(json.dumps),
            _RAW_LINES,
        ),
        max_size=12,
    ),
    crm=st.sampled_from(["salesforce", "hubspot"]),
)
def test_fuzzed_json_lines_never_crash_preview_or_diff(
    workdir: Path, records: list[str], crm: str
) -> None:
    export = workdir / "fuzzed.jsonl"
    export.write_text("\n".join(records) + "\n", encoding="utf-8", errors="surrogatepass")
    account = str(MAPPINGS["account"])
    common = ["--crm", crm, "--input", str(export), "--now", "2026-11-01"]
    _no_traceback(_run("preview", "--mapping", account, *common, "--format", "json"))
    _no_traceback(_run("diff", "--before", account, "--after", account, *common))


@SETTINGS
@given(
    header=st.lists(st.one_of(st.sampled_from(_FIELDS), st.text(max_size=10)), max_size=8),
    rows=st.lists(st.lists(st.text(max_size=20), max_size=9), max_size=10),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_fuzzed_csv_never_crashes_preview(
    workdir: Path, header: list[str], rows: list[list[str]], delimiter: str
) -> None:
    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in '",;\t\n\r') else text

    lines = [delimiter.join(cell(h) for h in header)]
    lines += [delimiter.join(cell(c) for c in row) for row in rows]
    export = workdir / "fuzzed.csv"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    for crm in ("salesforce", "hubspot"):
        _no_traceback(
            _run(
                "preview", "--mapping", str(MAPPINGS["account"]), "--crm", crm,
                "--input", str(export), "--now", "2026-11-01",
            )
        )  # fmt: skip
