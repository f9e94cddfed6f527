"""What the output fields look like, derived from the shipped mappings (pure)."""

from __future__ import annotations

from connector import templates
from connector.engine.core import compile_mapping
from connector.mapping.loader import load_mapping
from connector.sync.provision import HELP_MAX, output_specs

ACCOUNTS = compile_mapping(load_mapping(templates.ACCOUNTS))
CONTACTS = compile_mapping(load_mapping(templates.CONTACTS))


def test_inherited_picklists_follow_the_account_definitions_ranking() -> None:
    for crm, tier in (("salesforce", "Segsync_Tier__c"), ("hubspot", "segsync_tier")):
        contact = {o.name: o for o in output_specs(CONTACTS, crm, ACCOUNTS)}
        account = {o.name: o for o in output_specs(ACCOUNTS, crm)}
        assert contact[tier].options == ("Tier 1", "Tier 2", "Tier 3")
        assert contact[tier].options == account[tier].options
    segments = {o.name: o for o in output_specs(CONTACTS, "salesforce", ACCOUNTS)}
    assert segments["Segsync_Segment__c"].options[-1] == "Everyone else"
    assert segments["Segsync_Segment__c"].options[0] == "Enterprise SaaS"


def test_hover_help_explains_values_and_scores() -> None:
    specs = {o.name: o for o in output_specs(ACCOUNTS, "salesforce")}
    segment = specs["Segsync_Segment__c"].help
    assert "Enterprise SaaS: Large software companies" in segment
    tier = specs["Segsync_Tier__c"].help
    assert "Tier 1: A strong-fit Enterprise SaaS account" in tier
    assert "Tier 2: high fit × cold" in tier
    fit = specs["Segsync_Fit_Score__c"].help
    assert fit.startswith("How closely the account matches") and "From 0 to 100" in fit
    assert all(len(o.help) <= HELP_MAX and o.help for o in specs.values())
    persona = {o.name: o for o in output_specs(CONTACTS, "salesforce", ACCOUNTS)}
    assert "Economic Buyer: Owns the budget" in persona["Segsync_Persona__c"].help
