"""Which CRM fields segsync may write: those it provisioned, and those an operator adopted.

segsync owns a field when it created it (``segsync provision`` records the
field in the state store and marks it in the CRM: "Managed by segsync." in a
Salesforce field's description and help text, in the description of a
HubSpot property of the "Segmentation" group), or when the config adopts it
explicitly (``[connections.<name>] adopt_fields = { account = ["Rating"] }``).

Two checks, one offline and one connected:

- :func:`mapping_problems` (``validate``, and every command that loads the
  mappings with a config): an output that names a field the CRM defines (a
  Salesforce standard field, i.e. any name without ``__c``; a HubSpot default
  property) is refused unless adopted. Such a field can never be provisioned,
  so naming it is either a mistake or a deliberate adoption.
- :func:`refusals` (``provision`` and every run, before any write): an output
  field that exists in the CRM but is neither recorded nor marked as
  segsync's, nor adopted, is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from connector.config import Settings
from connector.crm.base import FieldSpec
from connector.engine import Engine
from connector.errors import FatalSyncError, Problem


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: HubSpot's default properties of companies and contacts (HubSpot-defined, in
#: every portal). Any ``hs_`` or ``hubspot_`` name is HubSpot's too.
HUBSPOT_DEFAULTS: Mapping[str, frozenset[str]] = {
    "account": _words(
        """
        about_us address address2 annualrevenue city closedate country createdate
        days_to_close description domain engagements_last_meeting_booked
        engagements_last_meeting_booked_campaign engagements_last_meeting_booked_medium
        engagements_last_meeting_booked_source facebook_company_page facebookfans
        first_contact_createdate first_conversion_date first_conversion_event_name
        first_deal_created_date founded_year googleplus_page industry is_public
        lifecyclestage linkedin_company_page linkedinbio name notes_last_contacted
        notes_last_updated notes_next_activity_date num_associated_contacts
        num_associated_deals num_contacted_notes num_conversion_events num_notes
        numberofemployees owneremail ownername phone recent_conversion_date
        recent_conversion_event_name recent_deal_amount recent_deal_close_date state
        timezone total_money_raised total_revenue twitterbio twitterfollowers
        twitterhandle type web_technologies website zip
        """
    ),
    "contact": _words(
        """
        address annualrevenue associatedcompanyid associatedcompanylastupdated city
        closedate company company_size country createdate currentlyinworkflow date_of_birth
        days_to_close degree email engagements_last_meeting_booked
        engagements_last_meeting_booked_campaign engagements_last_meeting_booked_medium
        engagements_last_meeting_booked_source fax field_of_study first_conversion_date
        first_conversion_event_name first_deal_created_date firstname gender
        graduation_date industry ip_city ip_country ip_country_code ip_latlon ip_state
        ip_state_code ip_zipcode job_function jobtitle kloutscoregeneral lastmodifieddate
        lastname lifecyclestage linkedinbio linkedinconnections marital_status message
        military_status mobilephone notes_last_contacted notes_last_updated
        notes_next_activity_date num_associated_deals num_contacted_notes
        num_conversion_events num_notes num_unique_conversion_events numemployees
        owneremail ownername phone recent_conversion_date recent_conversion_event_name
        recent_deal_amount recent_deal_close_date relationship_status salutation school
        start_date state surveymonkeyeventlastupdated total_revenue twitterbio
        twitterhandle twitterprofilephoto webinareventlastupdated website work_email zip
        """
    ),
}
_HUBSPOT_PREFIXES = ("hs_", "hubspot_")


def crm_defined(crm: str, obj: str, field: str) -> bool:
    """Whether ``field`` is one the CRM itself defines (never provisioned by segsync).

    Salesforce: any field that is not custom (custom names end in ``__c``).
    HubSpot: a default property of the object, or any ``hs_`` / ``hubspot_`` name.
    """
    name = field.strip()
    if crm == "salesforce":
        return not name.casefold().endswith("__c")
    if crm == "hubspot":
        folded = name.casefold()
        return folded in HUBSPOT_DEFAULTS.get(obj, frozenset()) or folded.startswith(
            _HUBSPOT_PREFIXES
        )
    return False


def _key(crm: str, field: str) -> str:
    # Salesforce API names are case-insensitive; HubSpot's are lowercase anyway.
    return field.strip().casefold()


def adopted_for(settings: Settings | None, crm: str, obj: str) -> frozenset[str] | None:
    """Fields every connection of ``crm`` adopts on ``obj`` (``None``: no connection of it).

    A mapping serves every connection of its CRM, so an output is adopted only
    when each of them adopts it.
    """
    if settings is None:
        return None
    sets = [c.adopted(obj) for c in settings.connections.values() if c.crm == crm]
    if not sets:
        return None
    common = set(sets[0])
    for more in sets[1:]:
        common &= more
    return frozenset(_key(crm, f) for f in common)


def mapping_problems(engines: Iterable[Engine], settings: Settings | None) -> list[Problem]:
    """Outputs naming a CRM-defined field that the config does not adopt (offline)."""
    problems: list[Problem] = []
    for engine in engines:
        outputs = engine.definition.outputs
        for crm, fields in outputs.items():
            adopted = adopted_for(settings, crm, engine.object) or frozenset()
            for logical, field in fields.items():
                if not crm_defined(crm, engine.object, field) or _key(crm, field) in adopted:
                    continue
                where = (
                    f"outputs.{crm}.scores.{logical.removeprefix('score.')}"
                    if logical.startswith("score.")
                    else f"outputs.{crm}.{logical}"
                )
                kind = (
                    "a Salesforce standard field (custom fields end in __c)"
                    if crm == "salesforce"
                    else "a HubSpot default property"
                )
                problems.append(
                    Problem(
                        engine.path,
                        where,
                        f"{field!r} is {kind}: segsync writes only fields it provisions or "
                        f"that the config adopts (connections.<name>.adopt_fields."
                        f"{engine.object} = [{field!r}], then validate with --config)",
                    )
                )
    return problems


class OwnershipError(FatalSyncError):
    """An output field is not segsync's to write: refused before any write."""


@dataclass(frozen=True)
class Verdict:
    """What the connected check found for one object's output fields.

    ``marked``: fields not yet recorded in the store that carry segsync's mark
    (record them). ``refused``: one line per field segsync may not write.
    """

    marked: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


def unrecorded(
    crm: str, outputs: Iterable[str], recorded: Iterable[str], adopted: Iterable[str]
) -> list[str]:
    """The output fields neither recorded as provisioned nor adopted (to look up in the CRM)."""
    known = {_key(crm, f) for f in recorded} | {_key(crm, f) for f in adopted}
    return [f for f in dict.fromkeys(outputs) if _key(crm, f) not in known]


def judge(crm: str, obj: str, specs: Mapping[str, FieldSpec]) -> Verdict:
    """Decide the fields :func:`unrecorded` left, from what the CRM says about them."""
    marked: list[str] = []
    refused: list[str] = []
    for name, spec in specs.items():
        if not spec.exists:
            refused.append(f"{name} does not exist (run segsync provision)")
        elif spec.standard or crm_defined(crm, obj, name):
            refused.append(f"{name} is the CRM's own field and is not adopted")
        elif spec.managed:
            marked.append(name)
        else:
            refused.append(f"{name} exists but segsync did not create it and it is not adopted")
    return Verdict(tuple(marked), tuple(refused))


def refusal_message(connection: str, crm: str, obj: str, refused: Iterable[str]) -> str:
    """One line: which fields, why, and the two ways out."""
    return (
        f"refusing to write {crm} {obj} fields of connection {connection!r}: "
        + "; ".join(refused)
        + ". segsync writes only the fields it provisions (segsync provision) and those "
        f"listed in connections.{connection}.adopt_fields.{obj}"
    )
