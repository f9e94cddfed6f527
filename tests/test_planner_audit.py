"""The planner with the CRM's audit trail: a person's value the store does not know."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.sync.audit import AuditTrail
from connector.sync.planner import Hysteresis, PlanInput, Policy, plan_record

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
SEG, TIER, UPDATED = "Segment__c", "Tier__c", "Updated__c"
POLICY = Policy(volatile=frozenset({UPDATED}), tracked=frozenset({SEG, TIER}))
DESIRED = {SEG: "Enterprise", TIER: "Tier 2", UPDATED: NOW}


def _item(current: dict[str, str], last: dict[str, str] | None = None, **kw: object) -> PlanInput:
    return PlanInput("r1", DESIRED, current, last, **kw)  # type: ignore[arg-type]


def test_a_person_s_value_without_store_memory_is_an_override() -> None:
    item = _item({SEG: "Enterprise", TIER: "Tier 1"}, set_by_person=frozenset({TIER}))
    decision = plan_record(item, POLICY, Hysteresis(), NOW)
    assert decision.write is None
    (override,) = decision.overrides
    assert (override.field, override.crm_value, override.our_last, override.action) == (
        TIER,
        "Tier 1",
        None,
        "kept",
    )
    assert override.from_audit_trail
    overwrite = plan_record(item, Policy(overrides="overwrite"), Hysteresis(), NOW)
    assert overwrite.write is not None and overwrite.write.fields[TIER] == "Tier 2"
    assert [o.action for o in overwrite.overrides] == ["overwritten"]


def test_without_a_person_the_first_sync_simply_writes() -> None:
    decision = plan_record(_item({TIER: "Tier 1"}), POLICY, Hysteresis(), NOW)
    assert decision.overrides == () and decision.write is not None


def test_the_store_s_memory_comes_first() -> None:
    # The store knows we last wrote Tier 1: the CRM still holds it, so no one
    # edited it since, whatever the audit trail's answer.
    item = _item({TIER: "Tier 1"}, {TIER: "Tier 1"}, set_by_person=frozenset({TIER}))
    decision = plan_record(item, POLICY, Hysteresis(), NOW)
    assert decision.overrides == () and decision.write is not None


def test_the_audit_trail_is_asked_only_where_it_can_change_the_plan() -> None:
    audit = AuditTrail()
    audit.bind(None, "account", POLICY)  # type: ignore[arg-type]
    assert audit.questions(_item({SEG: "Enterprise", TIER: "Tier 1"})) == {TIER: "Tier 1"}
    assert audit.questions(_item({TIER: "Tier 2"})) == {}  # already desired
    assert audit.questions(_item({TIER: ""})) == {}  # blank: nobody set anything
    assert audit.questions(_item({TIER: "Tier 1"}, {TIER: "Tier 3"})) == {}  # the store knows
    assert audit.questions(_item({TIER: "Tier 1"}, locked=True)) == {}
    assert audit.questions(_item({UPDATED: "yesterday"})) == {}  # volatile
