"""``segsync diff --outcomes``: backtest two definitions on closed deals, from exports (issue 12).

The figures are recomputed here from the same exports without the backtest
code: tiers by evaluating each definition directly, win rates by counting,
AUC by comparing every won deal with every lost one.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector import templates
from connector.analysis.backtest import auc, wilson
from connector.cli import cli
from connector.crm.ids import link_key
from connector.engine import compile_mapping
from connector.mapping import load_mapping

SAMPLE = Path(templates.__file__).resolve().parent.parent / "samples" / "salesforce_accounts.csv"
NOW = "2026-11-22"


def _rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("backtest")
    accounts = _rows()[:300]
    engine = compile_mapping(load_mapping(templates.ACCOUNTS))
    from datetime import UTC, datetime

    now = datetime(2026, 11, 22, tzinfo=UTC)
    rng = random.Random(7)
    deals: list[dict[str, Any]] = []
    for i, row in enumerate(accounts):
        # a true signal: the higher the fit, the likelier a win
        fit = engine.evaluate(row, "salesforce", now).scores["fit"]
        for j in range(rng.randint(0, 3)):
            stage = (
                "open"
                if rng.random() < 0.15
                else ("won" if rng.random() < 0.1 + fit / 150 else "lost")
            )
            deals.append(
                {
                    "Id": f"006{i:05d}{j}",
                    "AccountId": row["Id"][:15],  # 15-character ids, as some exports have them
                    "IsClosed": str(stage != "open").lower(),
                    "IsWon": str(stage == "won").lower(),
                    "Amount": str(rng.choice([5000, 20000, 80000])),
                    "CreatedDate": "2026-01-10",
                    "CloseDate": "" if stage == "open" else "2026-06-01",
                }
            )
    deals.append(
        {
            "Id": "006X",
            "AccountId": "001999999999999",
            "IsClosed": "true",
            "IsWon": "true",
            "CreatedDate": "2026-01-10",
            "CloseDate": "2026-02-01",
        }
    )
    deals.append(
        {
            "Id": "006Y",
            "AccountId": "",
            "IsClosed": "true",
            "IsWon": "false",
            "CreatedDate": "2026-01-10",
        }
    )
    accounts_file = tmp / "accounts.csv"
    with accounts_file.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(accounts[0]))
        writer.writeheader()
        writer.writerows(accounts)
    deals_file = tmp / "deals.csv"
    with deals_file.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(deals[0]))
        writer.writeheader()
        writer.writerows(deals)
    # The proposal: Tier 1 only for high fit (the warm and hot medium-fit cells drop a tier).
    text = templates.ACCOUNTS.read_text(encoding="utf-8")
    old = '[ "Tier 1",  "Tier 2",  "Tier 3" ],   # medium fit'
    assert old in text
    after = tmp / "after.toml"
    after.write_text(
        text.replace(old, '[ "Tier 2",  "Tier 3",  "Tier 3" ],   # medium fit').replace(
            'version = "2026-11-b"', 'version = "2026-11-proposal"'
        ),
        encoding="utf-8",
    )
    return {"accounts": accounts_file, "deals": deals_file, "after": after}


def _diff(exports: dict[str, Path], *options: str) -> list[str]:
    """`segsync diff` of the shipped accounts definition against the proposal, on the export."""
    return [
        "diff",
        "--before",
        str(templates.ACCOUNTS),
        "--after",
        str(exports["after"]),
        "-i",
        str(exports["accounts"]),
        "--crm",
        "salesforce",
        *options,
    ]


def _pairwise_auc(pairs: list[tuple[float, bool]]) -> float:
    won = [s for s, w in pairs if w]
    lost = [s for s, w in pairs if not w]
    total = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in won for b in lost)
    return total / (len(won) * len(lost))


def test_backtest_figures_are_reproducible_from_the_exports(exports: dict[str, Path]) -> None:
    args = _diff(exports, "--now", NOW, "--deals", str(exports["deals"]), "--outcomes")
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["outcomes"]

    from datetime import UTC, datetime

    now = datetime(2026, 11, 22, tzinfo=UTC)
    engines = {
        "before": compile_mapping(load_mapping(templates.ACCOUNTS)),
        "after": compile_mapping(load_mapping(exports["after"])),
    }
    accounts = {link_key(r["Id"], "salesforce"): r for r in _rows()[:300]}
    with exports["deals"].open(encoding="utf-8", newline="") as fh:
        deals = list(csv.DictReader(fh))
    closed = [
        d
        for d in deals
        if d["IsClosed"] == "true" and link_key(d["AccountId"], "salesforce") in accounts
    ]
    assert got["won"] + got["lost"] == len(closed)
    assert got["won"] == sum(d["IsWon"] == "true" for d in closed)
    assert got["skipped"] == {
        "no_account": 1,  # 006X; 006Y has no account at all and is reported as a bad row
        "open": sum(d["IsClosed"] == "false" for d in deals),
    }
    for side, engine in engines.items():
        tiers: Counter[tuple[str, bool]] = Counter()
        ranked: list[tuple[float, bool]] = []
        fit: list[tuple[float, bool]] = []
        names = engine.tier_names
        for d in closed:
            a = engine.evaluate(accounts[link_key(d["AccountId"], "salesforce")], "salesforce", now)
            won = d["IsWon"] == "true"
            tiers[a.tier, won] += 1
            ranked.append((len(names) - names.index(a.tier), won))
            fit.append((a.scores["fit"], won))
        report = got[side]
        for row in report["tiers"]:
            assert (row["won"], row["lost"]) == (
                tiers[row["tier"], True],
                tiers[row["tier"], False],
            )
            closed_n = row["won"] + row["lost"]
            if closed_n:
                assert row["win_rate"] == pytest.approx(row["won"] / closed_n)
                assert row["interval"] == pytest.approx(list(wilson(row["won"], closed_n) or ()))
        assert report["top_tier"] == "Tier 1"
        assert report["top_tier_won"] == tiers["Tier 1", True]
        assert report["auc_tier"] == pytest.approx(_pairwise_auc(ranked))
        assert report["auc_scores"]["fit"] == pytest.approx(_pairwise_auc(fit))
    # the seeded signal follows fit, so both tierings beat chance
    assert got["before"]["auc_tier"] > 0.55 and got["after"]["auc_tier"] > 0.55
    # the proposal puts fewer won deals in Tier 1 (medium fit moved down)
    assert got["after"]["top_tier_won"] < got["before"]["top_tier_won"]

    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert f"Backtest on {len(closed):,} closed deals" in text.stdout
    assert "ROC AUC of the tier (won vs lost)" in text.stdout
    assert "win rate after (2026-11-proposal)" in text.stdout


def test_outcomes_needs_the_deals(exports: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, _diff(exports, "--outcomes"))
    assert result.exit_code == 2
    assert "--outcomes backtests on closed deals: add --deals FILE" in result.stderr
    assert "Traceback" not in result.output


def test_auc_and_interval_edges() -> None:
    assert auc([(1.0, True), (0.0, False)]) == 1.0
    assert auc([(0.0, True), (1.0, False)]) == 0.0
    assert auc([(1.0, True), (1.0, False)]) == 0.5
    assert auc([(1.0, True)]) is None
    assert wilson(0, 0) is None
    low, high = wilson(5, 10) or (0.0, 0.0)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)


def test_the_readme_worked_example_quotes_these_figures(exports: dict[str, Path]) -> None:
    """README's measure-and-refine example is this backtest: its figures must stay true."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Measure and refine") : readme.index("## One definition")]
    args = _diff(
        exports, "--now", NOW, "--deals", str(exports["deals"]), "--outcomes", "--format", "json"
    )
    got = json.loads(CliRunner().invoke(cli, args).stdout)["outcomes"]
    before = {t["tier"]: t for t in got["before"]["tiers"]}
    after = {t["tier"]: t for t in got["after"]["tiers"]}

    def rate(row: dict[str, Any]) -> str:
        return f"{row['win_rate'] * 100:.0f} %"

    quoted = [
        f"Tier 1 wins {rate(before['Tier 1'])} ({before['Tier 1']['won']}/"
        f"{before['Tier 1']['won'] + before['Tier 1']['lost']}",
        f"Tier 2 {rate(before['Tier 2'])}",
        f"Tier 3\n   {rate(before['Tier 3'])}",
        f"AUC is {got['before']['auc_tier']:.3f}",
        f"`fit` {got['before']['auc_scores']['fit']:.3f}",
        f"`intent` {got['before']['auc_scores']['intent']:.3f}",
        f"Tier 1 now wins {rate(after['Tier 1'])} ({after['Tier 1']['won']}/"
        f"{after['Tier 1']['won'] + after['Tier 1']['lost']}",
        f"from {got['before']['auc_tier']:.3f} to {got['after']['auc_tier']:.3f}",
        f"Tier 1 holds\n   {got['after']['top_tier_won']} won deals instead of "
        f"{got['before']['top_tier_won']}",
    ]
    flat = " ".join(section.split())  # the README wraps its lines
    for text in quoted:
        assert " ".join(text.split()) in flat, text
