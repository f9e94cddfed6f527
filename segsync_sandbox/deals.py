"""Seeded deals for the sandboxes: Salesforce Opportunities and HubSpot deals of the companies.

Deal ``k`` of company ``i`` has the number ``i * DEAL_STRIDE + k`` and, like
every record of :mod:`segsync_sandbox.data`, is a pure function of the seed
and its number: no clock, no state, streamed.

**The signal.** Whether a closed deal was won is drawn from a probability that
depends on the company's attributes (:func:`win_probability`: headcount,
industry, a Salesforce tech stack, a core market, strong intent), so a
segmentation that follows them has a real effect to find, and one that does
not (say, points for marketing-automation tools, which the model ignores) has
none. Bigger companies also open more deals.

**The mess.** About one deal in a hundred is a row an analysis must refuse
rather than crash on (:attr:`Deal.defect`): a deal with no account, an amount
that is not a number (HubSpot only: Salesforce's currency field cannot hold
one), a stage its pipeline does not have, a pipeline that was deleted after
the deal was created (HubSpot only: Salesforce reads ``IsClosed`` / ``IsWon``
from the record, so a retired stage name is still readable there).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from segsync_sandbox.data import (
    REFERENCE,
    Company,
    _draws,
    _hasher,
    _hs_datetime,
    _sf_datetime,
    _utc,
    companies,
    hubspot_company_id,
    salesforce_account_id,
    salesforce_id,
)

DEAL_STRIDE = 8
"""Deal numbers are ``company_index * DEAL_STRIDE + k``; at most 7 deals a company."""

Defect = Literal["no_account", "string_amount", "unknown_stage", "deleted_pipeline"]

# HubSpot's default deal pipeline (ids as HubSpot ships them) and a custom one
# (numeric ids, as HubSpot gives custom pipelines). (id, label, probability, closed)
SALES_PIPELINE = "default"
RENEWALS_PIPELINE = "2764311"
DELETED_PIPELINE = "2764400"
"""A pipeline that was deleted while deals still pointed at it (not served by the pipelines API)."""

#: HubSpot's ``dealtype`` options (internal value → label), as HubSpot defines
#: them; Salesforce's ``Type`` picklist holds the labels.
DEAL_TYPES: dict[str, str] = {
    "newbusiness": "New Business",
    "existingbusiness": "Existing Business",
}
PIPELINES: dict[str, tuple[str, tuple[tuple[str, str, float, bool], ...]]] = {
    SALES_PIPELINE: (
        "Sales Pipeline",
        (
            ("appointmentscheduled", "Appointment Scheduled", 0.2, False),
            ("qualifiedtobuy", "Qualified To Buy", 0.4, False),
            ("presentationscheduled", "Presentation Scheduled", 0.6, False),
            ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False),
            ("contractsent", "Contract Sent", 0.9, False),
            ("closedwon", "Closed Won", 1.0, True),
            ("closedlost", "Closed Lost", 0.0, True),
        ),
    ),
    RENEWALS_PIPELINE: (
        "Renewals & Expansion",
        (
            ("2764312", "Renewal Due", 0.5, False),
            ("2764313", "Committed", 0.9, False),
            ("2764314", "Renewed", 1.0, True),
            ("2764315", "Churned", 0.0, True),
        ),
    ),
}
"""The pipelines the HubSpot sandbox serves: id → (label, stages)."""

# Salesforce's standard OpportunityStage values: (name, probability %, closed, won).
SALESFORCE_STAGES: tuple[tuple[str, int, bool, bool], ...] = (
    ("Prospecting", 10, False, False),
    ("Qualification", 10, False, False),
    ("Needs Analysis", 20, False, False),
    ("Value Proposition", 50, False, False),
    ("Id. Decision Makers", 60, False, False),
    ("Perception Analysis", 70, False, False),
    ("Proposal/Price Quote", 75, False, False),
    ("Negotiation/Review", 90, False, False),
    ("Closed Won", 100, True, True),
    ("Closed Lost", 0, True, False),
)
"""The ``StageName`` picklist, in order."""

LOSS_REASONS = ("Price", "Competitor", "No budget", "No decision", "Timing", "Missing feature")
"""Why lost deals were lost (``Loss_Reason__c`` / ``closed_lost_reason``)."""

_CORE_INDUSTRIES = frozenset(
    {"COMPUTER_SOFTWARE", "INFORMATION_TECHNOLOGY_AND_SERVICES", "FINANCIAL_SERVICES", "BANKING"}
)
_CORE_COUNTRIES = frozenset({"US", "CA", "GB", "DE"})
_MAX_U16 = 65536


@dataclass(frozen=True, slots=True)
class Deal:
    """One logical deal (a Salesforce Opportunity and a HubSpot deal).

    ``stage`` is the logical stage: an index into the pipeline's stage list
    (the open stages first, then won, then lost). ``history`` lists the stages
    the deal went through with when it entered each. ``company_index`` is the
    company whose deal it is even when ``defect`` is ``"no_account"`` (the
    link is then missing in the CRM).
    """

    company_index: int
    number: int
    name: str
    renewal: bool
    is_closed: bool
    is_won: bool
    open_stage: int
    amount: float
    created_at: dt.datetime
    close_date: dt.date
    lost_reason: str | None
    history: tuple[tuple[int, dt.datetime], ...]
    defect: Defect | None


def win_probability(c: Company) -> float:
    """The true chance that a closed deal of company ``c`` was won (the seeded signal)."""
    employees = c.employees or 0
    logit = -2.0
    if employees >= 1000:
        logit += 1.3
    elif employees >= 200:
        logit += 0.9
    elif employees >= 50:
        logit += 0.4
    if c.industry in _CORE_INDUSTRIES:
        logit += 0.8
    if c.industry == "HIGHER_EDUCATION":
        logit -= 0.5
    if "Salesforce" in c.tech_stack:
        logit += 0.7
    if c.country in _CORE_COUNTRIES:
        logit += 0.3
    if (c.intent_score or 0) >= 70:
        logit += 0.6
    return 1.0 / (1.0 + math.exp(-logit))


def _deals_of(c: Company, hasher: Any, reference: dt.datetime) -> Iterator[Deal]:
    head = _draws(hasher, c.index * DEAL_STRIDE + DEAL_STRIDE - 1)
    employees = c.employees or 0
    # 0-4 deals, one more for bigger companies (about 1.3 a company).
    u = head[0] % 100
    count = 0 if u < 30 else 1 if u < 65 else 2 if u < 85 else 3 if u < 95 else 4
    if employees >= 200 and head[1] % 2:
        count += 1
    p_win = win_probability(c)
    customer = (c.account_type or "").startswith("Customer")
    size = max(1.0, math.log10(max(employees, 1) + 1))
    for k in range(count):
        number = c.index * DEAL_STRIDE + k
        d = _draws(hasher, number)
        renewal = customer and k % 2 == 1
        created = reference - dt.timedelta(days=d[0] % 730, seconds=d[1] % 86400)
        created = max(created, c.created_at)
        cycle = 14 + int((d[2] / _MAX_U16) ** 1.5 * 150 * size / 2)
        closes = created + dt.timedelta(days=cycle)
        is_closed = closes <= reference
        is_won = is_closed and d[3] / _MAX_U16 < p_win
        amount = float(round(2000 * size**2.2 * (0.5 + d[4] / _MAX_U16), -2))
        n_open = len(PIPELINES[RENEWALS_PIPELINE if renewal else SALES_PIPELINE][1]) - 2
        if is_closed:
            open_stage = n_open if is_won else n_open + 1
            reached = 1 + d[5] % n_open
        else:
            # How far an open deal got: by the share of its cycle that passed.
            passed = (reference - created) / (closes - created)
            open_stage = min(n_open - 1, int(passed * n_open))
            reached = open_stage + 1
        history: list[tuple[int, dt.datetime]] = []
        steps = reached + (1 if is_closed else 0)
        for s in range(min(reached, n_open)):
            history.append((s, created + (closes - created) * (s / steps)))
        if is_closed:
            history.append((open_stage, closes))
        lost = None if not is_closed or is_won else LOSS_REASONS[d[6] % len(LOSS_REASONS)]
        pick = d[7] % 400
        defect: Defect | None = None
        if pick < 4:
            defect = ("no_account", "string_amount", "unknown_stage", "deleted_pipeline")[pick]
        yield Deal(
            c.index,
            number,
            f"{c.name} - {'Renewal' if renewal else 'New Business'} {k + 1}",
            renewal,
            is_closed,
            is_won,
            open_stage,
            amount,
            created,
            closes.date(),
            lost,
            tuple(history),
            defect,
        )


def deals(
    seed: int, n_companies: int, *, start: int = 0, reference: dt.datetime = REFERENCE
) -> Iterator[Deal]:
    """The deals of companies ``start`` … ``n_companies - 1``, in company order, streamed."""
    reference = _utc(reference)
    hasher = _hasher(seed, b"deal")
    for c in companies(seed, n_companies, start=start, reference=reference):
        yield from _deals_of(c, hasher, reference)


def deals_of(c: Company, seed: int, *, reference: dt.datetime = REFERENCE) -> Iterator[Deal]:
    """The deals of one company (as :func:`deals` yields them)."""
    return _deals_of(c, _hasher(seed, b"deal"), _utc(reference))


def salesforce_opportunity_id(number: int) -> str:
    """The Salesforce Opportunity id of deal ``number``."""
    return salesforce_id("006", number + 1)


def salesforce_stage(deal: Deal) -> str:
    """The ``StageName`` of a deal: an open stage by progress, or Closed Won / Closed Lost."""
    if deal.is_closed:
        return "Closed Won" if deal.is_won else "Closed Lost"
    opens = [s for s in SALESFORCE_STAGES if not s[2]]
    n_open = len(PIPELINES[RENEWALS_PIPELINE if deal.renewal else SALES_PIPELINE][1]) - 2
    return opens[min(len(opens) - 1, deal.open_stage * len(opens) // n_open)][0]


def salesforce_opportunity_row(deal: Deal) -> dict[str, Any]:
    """The deal as a Salesforce Opportunity record (API names, JSON types, None = blank)."""
    stage = salesforce_stage(deal)
    probability = next(p for name, p, _, _ in SALESFORCE_STAGES if name == stage)
    return {
        "Id": salesforce_opportunity_id(deal.number),
        "AccountId": None
        if deal.defect == "no_account"
        else salesforce_account_id(deal.company_index),
        "Name": deal.name,
        "StageName": stage,
        "Amount": deal.amount,
        "CloseDate": deal.close_date.isoformat(),
        "Type": "Existing Business" if deal.renewal else "New Business",
        "Probability": float(probability),
        "IsClosed": deal.is_closed,
        "IsWon": deal.is_won,
        "Loss_Reason__c": deal.lost_reason,
        "CreatedDate": _sf_datetime(deal.created_at),
    }


def hubspot_pipeline(deal: Deal) -> str:
    """The deal's pipeline id as the HubSpot sandbox holds it."""
    if deal.defect == "deleted_pipeline":
        return DELETED_PIPELINE
    return RENEWALS_PIPELINE if deal.renewal else SALES_PIPELINE


def hubspot_stage(deal: Deal) -> str:
    """The deal's ``dealstage`` (a stage id of its pipeline, or one it never had)."""
    if deal.defect == "unknown_stage":
        return "qualifiedtobuy_legacy"
    if deal.defect == "deleted_pipeline":
        return "2764401" if deal.is_closed else "2764402"
    stages = PIPELINES[RENEWALS_PIPELINE if deal.renewal else SALES_PIPELINE][1]
    return stages[deal.open_stage][0]


def hubspot_deal_props(deal: Deal) -> dict[str, str]:
    """The deal as HubSpot deal properties (every value a string, blanks left out)."""
    amount = f"{deal.amount:.2f}".rstrip("0").rstrip(".")
    if deal.defect == "string_amount":
        amount = f"${deal.amount:,.0f}"
    props = {
        "dealname": deal.name,
        "amount": amount,
        "pipeline": hubspot_pipeline(deal),
        "dealstage": hubspot_stage(deal),
        "closedate": _hs_datetime(dt.datetime.combine(deal.close_date, dt.time(), tzinfo=dt.UTC)),
        "createdate": _hs_datetime(deal.created_at),
        "dealtype": "existingbusiness" if deal.renewal else "newbusiness",
    }
    if deal.lost_reason is not None:
        props["closed_lost_reason"] = deal.lost_reason
    return props


def hubspot_stage_history(deal: Deal) -> list[tuple[str, dt.datetime]]:
    """The ``dealstage`` values the deal went through, oldest first, with when it entered each."""
    if deal.defect in ("unknown_stage", "deleted_pipeline"):
        return [(hubspot_stage(deal), deal.created_at)]
    stages = PIPELINES[RENEWALS_PIPELINE if deal.renewal else SALES_PIPELINE][1]
    return [(stages[index][0], at) for index, at in deal.history]


def hubspot_deal_company(deal: Deal) -> str | None:
    """The company the HubSpot deal is associated with (None: no association)."""
    return None if deal.defect == "no_account" else hubspot_company_id(deal.company_index)
