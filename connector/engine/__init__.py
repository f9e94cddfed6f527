"""The pure segment engine: raw CRM fields + definition + ``now`` → :class:`Assignment`.

Usage::

    from connector.mapping import load_mapping
    from connector.engine import compile_mapping

    engine = compile_mapping(load_mapping("mappings/accounts.toml"))
    assignment = engine.evaluate(record, "salesforce", now)
    assignment.outputs("salesforce", now)   # {"Segsync_Segment__c": "SMB", ...}
    print(engine.explain(record, "salesforce", now).render())

No I/O and no clock reads: ``now`` is an argument.
"""

from __future__ import annotations

from connector.engine.assignment import REASON_LIMIT, Assignment, reason_line
from connector.engine.core import Engine, LockReading, compile_mapping
from connector.engine.explain import (
    AttributeTrace,
    Decision,
    Explanation,
    RuleTrace,
    ScoreRuleTrace,
    ScoreTrace,
    TestTrace,
)

__all__ = [
    "REASON_LIMIT",
    "Assignment",
    "AttributeTrace",
    "Decision",
    "Engine",
    "Explanation",
    "LockReading",
    "RuleTrace",
    "ScoreRuleTrace",
    "ScoreTrace",
    "TestTrace",
    "compile_mapping",
    "reason_line",
]
