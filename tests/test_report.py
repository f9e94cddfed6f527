from __future__ import annotations

import io
from dataclasses import dataclass

from rich.console import Console

from connector.commands.report import (
    Distribution,
    Transitions,
    diff_document,
    diff_notices,
    distribution_notices,
    missing_field_notices,
    preview_document,
    render_diff,
    render_preview,
    share,
    summarize_score,
)


@dataclass
class Bad:
    line: int
    message: str


def make_distribution() -> Distribution:
    dist = Distribution(
        segments=("Enterprise", "Mid-Market", "Tiny", "Other"),
        tiers=("Tier 1", "Tier 2", "Tier 3"),
        scores=("fit", "intent"),
    )
    for _ in range(60):
        dist.add("Enterprise", "Tier 1", {"fit": 80, "intent": 50})
    for _ in range(39):
        dist.add("Mid-Market", "Tier 2", {"fit": 40, "intent": 10})
    dist.add("Tiny", "Tier 2", {"fit": 0, "intent": None}, blank_inputs=True)
    return dist


def test_distribution_counts_every_axis() -> None:
    dist = make_distribution()
    assert dist.total == 100
    assert dist.segment_counts == {"Enterprise": 60, "Mid-Market": 39, "Tiny": 1}
    assert dist.tier_counts == {"Tier 1": 60, "Tier 2": 40}
    assert dist.cells[("Mid-Market", "Tier 2")] == 39
    assert dist.cells[("Tiny", "Tier 2")] == 1
    assert dist.blank_inputs == 1
    # None scores are not counted.
    assert sum(dist.score_values["intent"].values()) == 99
    # Declared order is kept, unexpected names come last.
    dist.add("Surprise", "Tier 1")
    assert dist.segment_order() == ("Enterprise", "Mid-Market", "Tiny", "Other", "Surprise")


def test_distribution_notices_flag_small_empty_and_blank() -> None:
    dist = make_distribution()
    notices = distribution_notices(dist, min_segment_share=0.02)
    by_kind = {(n.kind, n.subject) for n in notices}
    assert ("small_segment", "Tiny") in by_kind
    assert ("empty_segment", "Other") in by_kind
    assert ("empty_tier", "Tier 3") in by_kind
    assert ("blank_inputs", None) in by_kind
    assert not any(n.subject in {"Enterprise", "Mid-Market"} for n in notices)
    # A lower threshold no longer calls "Tiny" too small; a higher one catches Mid-Market.
    assert not any(n.kind == "small_segment" for n in distribution_notices(dist, 0.01))
    high = {n.subject for n in distribution_notices(dist, 0.5) if n.kind == "small_segment"}
    assert high == {"Mid-Market", "Tiny"}


def test_no_records_is_the_only_notice_of_an_empty_distribution() -> None:
    dist = Distribution(segments=("A",), tiers=("T",))
    assert [n.kind for n in distribution_notices(dist, 0.02)] == ["no_records"]


def test_share_of_nothing_is_zero() -> None:
    assert share(3, 0) == 0.0
    assert share(1, 4) == 0.25


def test_summarize_score_quantiles() -> None:
    summary = summarize_score({10: 1, 20: 1, 30: 1, 40: 1})
    assert summary is not None
    assert (summary.min, summary.p25, summary.median, summary.p75, summary.max) == (
        10,
        10,
        20,
        30,
        40,
    )
    assert summary.mean == 25
    skewed = summarize_score({0: 97, 100: 3})
    assert skewed is not None
    assert skewed.median == 0 and skewed.max == 100 and skewed.count == 100
    assert summarize_score({}) is None


def test_missing_field_notices() -> None:
    needed = ("Industry", "NumberOfEmployees", "Tech_Stack__c")
    notices = missing_field_notices(needed, ["Id", "Industry", "numberofemployees"])
    subjects = {n.subject: n.message for n in notices}
    assert set(subjects) == {"NumberOfEmployees", "Tech_Stack__c"}
    assert "case-sensitive" in subjects["NumberOfEmployees"]
    assert missing_field_notices(needed, needed) == []


def test_missing_field_notices_spot_the_wrong_crm() -> None:
    notices = missing_field_notices(
        ("Industry", "NumberOfEmployees"),
        ["hs_object_id", "industry", "numberofemployees"],
        other_crm="hubspot",
        other_fields=("industry", "numberofemployees", "hs_object_id"),
    )
    assert len(notices) == 1
    assert "--crm hubspot" in notices[0].message


def test_preview_document_is_complete() -> None:
    dist = make_distribution()
    notices = distribution_notices(dist, 0.02)
    doc = preview_document({"command": "preview"}, dist, notices, [Bad(7, "oops")], 3)
    assert doc["command"] == "preview"
    assert doc["records"] == 100
    segments = {s["name"]: (s["count"], s["share"]) for s in doc["segments"]}
    assert segments == {
        "Enterprise": (60, 0.6),
        "Mid-Market": (39, 0.39),
        "Tiny": (1, 0.01),
        "Other": (0, 0.0),
    }
    cells = {(c["segment"], c["tier"]): c["count"] for c in doc["segment_tier"]}
    assert len(cells) == 4 * 3
    assert sum(cells.values()) == 100
    assert doc["scores"]["fit"]["max"] == 80
    assert doc["bad_rows"] == {"total": 3, "listed": [{"line": 7, "message": "oops"}]}
    assert {w["kind"] for w in doc["warnings"]} >= {"small_segment", "empty_segment"}


def test_render_preview_shows_names_counts_and_warnings() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=140, color_system=None)
    dist = make_distribution()
    render_preview(
        console,
        {"mapping": "m.toml"},
        dist,
        distribution_notices(dist, 0.02),
        [Bad(7, "expected 3 columns, found 2")],
        1,
    )
    out = buf.getvalue()
    for text in ("Enterprise", "Mid-Market", "Tier 3", "60.0%", "line 7", "too small"):
        assert text in out


def make_transitions(samples: int = 2) -> Transitions:
    names = {"segment": ("A", "B"), "tier": ("T1", "T2")}
    tr = Transitions(
        dimensions=("segment", "tier"),
        before_names=names,
        after_names={"segment": ("A", "B", "C"), "tier": ("T1", "T2")},
        sample_limit=samples,
    )
    for i in range(5):
        tr.add(f"id{i}", {"segment": "A", "tier": "T1"}, {"segment": "A", "tier": "T1"}, "same")
    for i in range(3):
        tr.add(
            f"mv{i}",
            {"segment": "A", "tier": "T1"},
            {"segment": "C", "tier": "T1"},
            f"why {i}",
            {"fit": 10},
            {"fit": 30},
        )
    tr.add("t0", {"segment": "B", "tier": "T1"}, {"segment": "B", "tier": "T2"}, "tier only")
    return tr


def test_transitions_count_moves_and_unchanged() -> None:
    tr = make_transitions()
    assert tr.total == 9
    assert tr.unchanged == 5
    assert tr.changed("segment") == 3
    assert tr.changed("tier") == 1
    assert tr.moves["segment"][("A", "A")] == 5
    assert tr.move_list("segment") == [("A", "C", 3)]
    # Samples are the first records of each move, capped.
    assert [s.record for s in tr.samples["segment"][("A", "C")]] == ["mv0", "mv1"]
    assert tr.samples["segment"][("A", "C")][0].reason == "why 0"
    assert tr.order("segment") == (("A", "B"), ("A", "B", "C"))
    assert tr.sizes("segment") == [("A", 8, 5), ("B", 1, 1), ("C", 0, 3)]
    assert tr.sizes("tier") == [("T1", 9, 8), ("T2", 0, 1)]


def test_diff_document_and_notices() -> None:
    tr = make_transitions(samples=5)
    doc = diff_document({"command": "diff"}, tr, diff_notices(tr, "v1", "v2"))
    assert doc["records"] == 9 and doc["unchanged"] == 5 and doc["changed"] == 4
    assert doc["transitions"]["segment"]["changed"] == 3
    (move,) = doc["transitions"]["segment"]["moves"]
    assert (move["from"], move["to"], move["count"]) == ("A", "C", 3)
    assert [s["id"] for s in move["samples"]] == ["mv0", "mv1", "mv2"]
    assert doc["transitions"]["tier"]["moves"][0]["samples"] == [
        {"id": "t0", "reason": "tier only"}
    ]
    matrix = {(m["from"], m["to"]): m["count"] for m in doc["transitions"]["segment"]["matrix"]}
    assert matrix == {("A", "A"): 5, ("A", "C"): 3, ("B", "B"): 1}
    assert doc["score_means"]["fit"] == {"before": 10.0, "after": 30.0}
    sizes = {
        s["name"]: (s["before"], s["after"], s["delta"])
        for s in doc["transitions"]["segment"]["sizes"]
    }
    assert sizes == {"A": (8, 5, -3), "B": (1, 1, 0), "C": (0, 3, 3)}
    assert doc["warnings"] == []


def test_same_version_with_changes_is_flagged() -> None:
    tr = make_transitions()
    assert [n.kind for n in diff_notices(tr, "v1", "v1")] == ["same_version"]
    still = Transitions(("segment",), {}, {})
    still.add("x", {"segment": "A"}, {"segment": "A"}, "")
    assert diff_notices(still, "v1", "v1") == []


def test_render_diff_lists_moves_with_samples() -> None:
    buf = io.StringIO()
    tr = make_transitions()
    render_diff(Console(file=buf, width=140, color_system=None), {"before": "a"}, tr, [])
    out = buf.getvalue()
    assert "A → C" in out
    assert "mv0" in out and "why 0" in out
    assert "mv2" not in out  # beyond the sample limit


def test_render_diff_shows_size_changes_of_renamed_segments() -> None:
    tr = Transitions(("segment",), {"segment": ("SMB",)}, {"segment": ("Small Business",)})
    for i in range(4):
        tr.add(f"r{i}", {"segment": "SMB"}, {"segment": "Small Business"}, "renamed")
    buf = io.StringIO()
    render_diff(Console(file=buf, width=140, color_system=None), {}, tr, [])
    out = buf.getvalue()
    assert "SMB → Small Business" in out
    assert "-4" in out and "+4" in out
