"""Seeded synthetic B2B data for the sandboxes: one logical dataset, two CRM formats.

Record ``i`` is a pure function of ``(seed, i)``: a keyed BLAKE2b digest of the
record number supplies every random draw, so any slice regenerates identically
(``companies(seed, n, start=k)`` yields exactly the tail of
``companies(seed, n)``), nothing is held in memory, and a million accounts
stream out in seconds. Nothing reads the clock: dates are spread back from a
fixed ``reference`` datetime.

The logical records (:class:`Company`, :class:`Contact`) carry both the
canonical values and the messy spellings a real CRM holds (industry labels in
several forms, countries as "USA" / "U.S." / "United States", stray
whitespace, blanks). The converters turn them into each CRM's raw record
format: Salesforce rows with Salesforce field names and JSON types, HubSpot
property maps with every value a string. The same company gets the same
domain in both CRMs; about 70 % of HubSpot companies and contacts also carry
the Salesforce id that HubSpot's Salesforce integration stores on a record it
synced (``salesforceaccountid``, ``salesforcecontactid``). Both are how the two
are matched (``segsync parity``).

The two CRMs hold the same values, except where they realistically differ (a
Salesforce ``Technology`` label on a company HubSpot files under
``INFORMATION_TECHNOLOGY_AND_SERVICES``) and at :data:`SEEDED_DIFFERENCES`,
a known list of deliberate differences a test can look for.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from hashlib import blake2b
from statistics import NormalDist
from typing import Any

REFERENCE = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Default reference time: last-activity and creation dates lie before it."""

CONTACT_STRIDE = 16
"""Contact numbers are ``company_index * CONTACT_STRIDE + k``; at most 15 contacts a company."""

HUBSPOT_COMPANY_ID_BASE = 10_000_000_000
"""HubSpot company ids are ``HUBSPOT_COMPANY_ID_BASE + index + 1``.

A fresh sandbox portal numbers companies from 10,000,000,001 in load order, so
loading the companies in index order gives each exactly this id (the launcher
checks it). HubSpot contact ids are assigned by the portal in load order;
contacts are matched across CRMs by email, not id.
"""

SEEDED_DIFFERENCES: dict[int, tuple[str, str, str]] = {
    16: ("hubspot", "industry", "INTERNET"),
    51: ("hubspot", "industry", "INTERNET"),
    72: ("hubspot", "industry", "INTERNET"),
    35: ("salesforce", "Industry", "Software Development"),
    44: ("salesforce", "Industry", "Software Development"),
}
"""Deliberate cross-CRM differences: company index → (CRM, field, the value that CRM holds).

Every one is a software company whose other CRM says so; each value is one
the shipped account mapping has no synonym for, so it reads as ``Other``
there and the company's segment or tier differs between the CRMs (in every
dataset of 100 or more companies). ``segsync parity`` must find exactly
these (plus the natural differences) and name the synonym that removes them.
"""

SYNCED_SHARE = 179
"""Out of 256: the share of records HubSpot's Salesforce integration has linked (about 70 %)."""

SENIORITIES = ("Executive", "VP", "Director", "Manager", "Individual Contributor")
"""Values of the Salesforce ``Seniority__c`` picklist and the HubSpot ``seniority`` enumeration."""

TECH_STACK = (
    "Salesforce",
    "HubSpot",
    "Marketo",
    "Snowflake",
    "AWS",
    "Azure",
    "GCP",
    "Slack",
    "Zendesk",
    "Segment",
    "Workday",
    "SAP",
    "Oracle",
    "Shopify",
    "Stripe",
)
"""Values of the tech-stack multi-select, in picklist order (the order values are written)."""

# Industries: (HubSpot enumeration value, weight, Salesforce free-text labels).
# Several Salesforce spellings map to one HubSpot value, as in real orgs where
# the picklist is unrestricted and years of imports left synonyms behind.
INDUSTRIES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("COMPUTER_SOFTWARE", 22, ("Software", "Technology", "Computer Software", "SaaS")),
    ("INFORMATION_TECHNOLOGY_AND_SERVICES", 10, ("Information Technology", "Technology")),
    ("FINANCIAL_SERVICES", 8, ("Financial Services", "Finance")),
    ("BANKING", 4, ("Banking",)),
    ("INSURANCE", 4, ("Insurance",)),
    ("HOSPITAL_HEALTH_CARE", 9, ("Healthcare", "Hospital & Health Care")),
    ("MACHINERY", 12, ("Manufacturing",)),
    ("RETAIL", 9, ("Retail",)),
    ("HIGHER_EDUCATION", 5, ("Education",)),
    ("TELECOMMUNICATIONS", 4, ("Telecommunications",)),
    ("ONLINE_MEDIA", 6, ("Media",)),
)
"""Industries with their weights and Salesforce spellings."""

# Countries: (ISO code, weight, spellings with weights, states, cities).
COUNTRIES: tuple[
    tuple[str, int, tuple[tuple[str, int], ...], tuple[str, ...], tuple[str, ...]], ...
] = (
    (
        "US",
        46,
        (
            ("United States", 40),
            ("USA", 25),
            ("US", 14),
            ("U.S.", 8),
            ("United States of America", 13),
        ),
        ("CA", "NY", "TX", "MA", "WA", "IL", "GA", "CO", "FL", "NC"),
        (
            "San Francisco",
            "New York",
            "Austin",
            "Boston",
            "Seattle",
            "Chicago",
            "Atlanta",
            "Denver",
            "Miami",
            "Raleigh",
        ),
    ),
    (
        "GB",
        10,
        (("United Kingdom", 45), ("UK", 30), ("Great Britain", 10), ("GB", 15)),
        ("England", "Scotland"),
        ("London", "Manchester", "Edinburgh", "Bristol"),
    ),
    (
        "DE",
        7,
        (("Germany", 60), ("Deutschland", 25), ("DE", 15)),
        ("Berlin", "Bavaria", "Hamburg"),
        ("Berlin", "Munich", "Hamburg", "Frankfurt"),
    ),
    ("FR", 4, (("France", 1),), (), ("Paris", "Lyon", "Toulouse")),
    (
        "CA",
        6,
        (("Canada", 75), ("CA", 25)),
        ("ON", "BC", "QC"),
        ("Toronto", "Vancouver", "Montreal"),
    ),
    ("AU", 4, (("Australia", 1),), ("NSW", "VIC"), ("Sydney", "Melbourne")),
    ("NL", 3, (("Netherlands", 1),), (), ("Amsterdam", "Rotterdam")),
    ("IN", 5, (("India", 1),), ("KA", "MH"), ("Bangalore", "Mumbai", "Pune")),
    ("BR", 3, (("Brazil", 1),), ("SP", "RJ"), ("São Paulo", "Rio de Janeiro")),
    ("JP", 3, (("Japan", 1),), (), ("Tokyo", "Osaka")),
)
"""Countries with their weights, spellings, states and cities."""

_DIAL_CODES = {
    "US": "+1",
    "CA": "+1",
    "GB": "+44",
    "DE": "+49",
    "FR": "+33",
    "AU": "+61",
    "NL": "+31",
    "IN": "+91",
    "BR": "+55",
    "JP": "+81",
}

# Account Type picklist values and the HubSpot lifecycle stage each implies.
ACCOUNT_TYPES: tuple[tuple[str, int, str], ...] = (
    ("Prospect", 55, "lead"),
    ("Customer - Direct", 22, "customer"),
    ("Customer - Channel", 6, "customer"),
    ("Channel Partner / Reseller", 4, "other"),
    ("Technology Partner", 3, "other"),
    ("Other", 3, "opportunity"),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_PREFIXES = _words(
    "Acme Apex Arbor Argent Astra Atlas Aurora Beacon Birch Blue Bolt Bright Brook Cannon "
    "Cedar Cinder Clear Cobalt Comet Copper Coral Crest Crimson Crystal Cyan Delta Dune "
    "Eagle Echo Ember Emerald Everest Falcon Fern Firefly Flint Forge Fox Garnet Glacier "
    "Golden Granite Green Harbor Hawk Helix Highland Horizon Indigo Iron Ivory Jade Juniper "
    "Keystone Kinetic Lark Laurel Liberty Lumen Lunar Maple Marble Meridian Mesa Metro "
    "Midnight Mint Monarch Nimbus Noble North Nova Oak Obsidian Ocean Onyx Orbit Orchid "
    "Pacific Peak Pine Pioneer Pixel Polar Prairie Prism Quantum Quartz Radiant Raven "
    "Redwood Ridge River Rocket Ruby Sable Sage Sapphire Shore Sierra Silver Slate Solar "
    "Spruce Sterling Stone Summit Sun Swift Terra Thunder Tide Timber Titan Topaz Trail "
    "True Union Vanguard Velvet Vertex Violet Vista Wave Willow Wolf Zenith Zephyr"
)
_CORES = _words(
    "Analytics Anchor Apps Bank Bay Bio Bridge Capital Care Cloud Code Commerce Computing "
    "Consulting Craft Data Designs Devices Digital Dynamics Edge Energy Engineering Finance "
    "Fleet Foods Foundry Freight Gate Goods Grid Group Growth Health Hub Industries "
    "Insights Labs Learning Link Logic Logistics Machines Media Medical Metrics Mobile "
    "Motion Networks Partners Path Pay Point Ports Power Retail Robotics Scale Security "
    "Semantics Signal Software Solutions Sourcing Space Stack Supply Systems Telecom Thread "
    "Tools Trade Transit Ventures Vision Wares Works"
)
# Domain forms (prefix, separator, suffix, top-level domain): distinct for every
# name, .com-heavy like real B2B domains.
_DOMAIN_FORMS = (
    ("", "", "", "com"),
    ("", "-", "", "com"),
    ("get", "", "", "com"),
    ("", "", "hq", "com"),
    ("", "", "", "io"),
    ("", "", "", "co"),
    ("", "", "", "net"),
    ("", "", "", "ai"),
)
_QUALIFIERS = ("Global", "International", "Digital", "Americas", "Europe", "Worldwide", "Direct")
_LEGAL = ("", "", "", "", "Inc.", "LLC", "Ltd", "Corp", "GmbH", "Group", "Holdings", "Co.")
_PREFIXES_LOWER = tuple(p.lower() for p in _PREFIXES)
_CORES_LOWER = tuple(c.lower() for c in _CORES)
_N_FORMS, _N_CORES, _N_LEGAL = len(_DOMAIN_FORMS), len(_CORES), len(_LEGAL)
_N_QUALIFIERS = len(_QUALIFIERS)

_FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily "
    "Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah "
    "Timothy Stephanie Ronald Rebecca Jason Laura Edward Helen Jeffrey Sharon Ryan Cynthia "
    "Jacob Amy Gary Anna Nicholas Angela Eric Olivia Jonathan Emma Priya Arjun Wei Mei "
    "Hiroshi Yuki Lukas Sophie Jonas Lea Mateo Camila Lucas Julia Noah Chloe Omar Fatima "
    "Liam Ava"
)
_LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell "
    "Carter Roberts Patel Shah Kumar Singh Chen Wang Li Zhang Tanaka Sato Suzuki Müller "
    "Schmidt Schneider Fischer Weber Dubois Martin Bernard Silva Santos Oliveira Jansen "
    "Visser O'Brien Murphy Kelly Byrne Walsh Novak Kowalski Ivanova Rossi Russo"
)

# Titles: (title, seniority, department, weight at small companies, weight at larger ones).
TITLES: tuple[tuple[str, str, str, int, int], ...] = (
    ("CEO", "Executive", "Executive", 8, 1),
    ("Founder & CEO", "Executive", "Executive", 5, 0),
    ("Chief Revenue Officer", "Executive", "Sales", 2, 1),
    ("CFO", "Executive", "Finance", 2, 1),
    ("CTO", "Executive", "Engineering", 3, 1),
    ("Chief Marketing Officer", "Executive", "Marketing", 1, 1),
    ("CIO", "Executive", "IT", 1, 1),
    ("COO", "Executive", "Operations", 2, 1),
    ("VP Sales", "VP", "Sales", 3, 3),
    ("VP of Engineering", "VP", "Engineering", 2, 2),
    ("VP Marketing", "VP", "Marketing", 2, 2),
    ("VP Finance", "VP", "Finance", 1, 1),
    ("SVP Customer Success", "VP", "Customer Success", 1, 1),
    ("VP of Operations", "VP", "Operations", 1, 2),
    ("Head of Marketing Operations", "Director", "Marketing", 2, 3),
    ("Director of IT", "Director", "IT", 2, 4),
    ("Director of Sales", "Director", "Sales", 2, 3),
    ("Engineering Director", "Director", "Engineering", 1, 3),
    ("Director, Procurement", "Director", "Procurement", 1, 2),
    ("Director of Finance", "Director", "Finance", 1, 2),
    ("Sales Operations Manager", "Manager", "Sales", 3, 5),
    ("Procurement Manager", "Manager", "Procurement", 2, 4),
    ("Marketing Manager", "Manager", "Marketing", 3, 4),
    ("IT Manager", "Manager", "IT", 2, 4),
    ("Engineering Manager", "Manager", "Engineering", 2, 4),
    ("Customer Success Manager", "Manager", "Customer Success", 2, 3),
    ("Software Engineer", "Individual Contributor", "Engineering", 5, 7),
    ("Sr. Software Engineer", "Individual Contributor", "Engineering", 2, 4),
    ("Account Executive", "Individual Contributor", "Sales", 4, 6),
    ("Sales Development Representative", "Individual Contributor", "Sales", 2, 4),
    ("Data Analyst", "Individual Contributor", "Operations", 2, 4),
    ("Financial Analyst", "Individual Contributor", "Finance", 1, 3),
    ("Marketing Specialist", "Individual Contributor", "Marketing", 2, 3),
    ("Systems Administrator", "Individual Contributor", "IT", 1, 3),
    ("Buyer", "Individual Contributor", "Procurement", 1, 2),
)
"""Contact titles with seniority, department and weights (companies under 50 / from 50)."""

LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Other")
"""Values of the Contact ``LeadSource`` picklist."""

_EMAIL_PATTERNS = ("{f}.{l}", "{fi}{l}", "{f}{li}", "{f}_{l}", "{f}")
_N_FIRST, _N_LAST, _N_SOURCES = len(_FIRST_NAMES), len(_LAST_NAMES), len(LEAD_SOURCES)

_SALESFORCE_ID_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BASE36_TRIPLES = tuple(a + b + c for a in _BASE36 for b in _BASE36 for c in _BASE36)
_B36_3 = 36**3
_B36_6 = 36**6
_UPPER_BITS = str.maketrans({c: ("1" if c.isupper() else "0") for c in _BASE36})
_DRAWS = struct.Struct("<32H")
_MAX_U16 = 65536


# ---------------------------------------------------------------------------
# The logical records
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Company:
    """One logical company (a Salesforce Account and a HubSpot company).

    ``industry`` is the HubSpot enumeration value and ``industry_label`` the
    free text the Salesforce org holds for it (messy: synonyms, odd casing,
    stray whitespace); ``country`` is the ISO code and ``country_label`` the
    spelling both CRMs hold. ``None`` is a blank field.
    """

    index: int
    name: str
    domain: str
    website: str | None
    industry: str | None
    industry_label: str | None
    employees: int | None
    annual_revenue: float | None
    country: str | None
    country_label: str | None
    state: str | None
    city: str | None
    phone: str | None
    account_type: str | None
    lifecycle_stage: str | None
    tech_stack: tuple[str, ...]
    intent_score: int | None
    last_activity: dt.datetime | None
    created_at: dt.datetime
    synced: bool = False
    """HubSpot's Salesforce integration linked the two (the company holds the account id)."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One logical contact, linked to its company by ``company_index``."""

    company_index: int
    number: int
    first_name: str
    last_name: str
    email: str | None
    title: str | None
    department: str | None
    seniority: str | None
    lead_source: str | None
    last_activity: dt.datetime | None
    created_at: dt.datetime
    synced: bool = False
    """HubSpot's Salesforce integration linked the two (the contact holds the contact id)."""


@dataclass(frozen=True, slots=True)
class Lead:
    """One logical Salesforce lead: a person and the company they typed in.

    Lead companies are companies of the dataset past the accounts (index
    ``accounts + number``), so a lead's firmographics are as messy as an
    account's; its title is typed in several forms (``VP Sales``, ``v.p. sales``,
    ``Vice President, Sales``). ``converted`` leads are read-only in Salesforce.
    """

    number: int
    company: Company
    first_name: str
    last_name: str
    email: str | None
    title: str | None
    lead_source: str | None
    status: str
    rating: str | None
    converted: bool
    last_activity: dt.datetime | None
    created_at: dt.datetime


# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------


def _base36(number: int, width: int) -> str:
    if number < _B36_6 and width == 12:
        # The common case (ids below 2 billion): two table lookups.
        high, low = divmod(number, _B36_3)
        return "000000" + _BASE36_TRIPLES[high] + _BASE36_TRIPLES[low]
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, base-36 number, case checksum.

    The last three characters are Salesforce's case-safe suffix, computed from
    the 15-character id the way Salesforce does (one bit per upper-case letter
    in each block of five), so tools that verify it accept these ids.

    Raises:
        ValueError: the number does not fit in the id.

    """
    if not 0 <= number < 36 ** (15 - len(prefix)):
        raise ValueError(f"record number {number} does not fit in a {prefix} id")
    short = prefix + _base36(number, 15 - len(prefix))
    bits = short.translate(_UPPER_BITS)
    return (
        short
        + _SALESFORCE_ID_CHECKSUM[int(bits[4::-1], 2)]
        + _SALESFORCE_ID_CHECKSUM[int(bits[9:4:-1], 2)]
        + _SALESFORCE_ID_CHECKSUM[int(bits[14:9:-1], 2)]
    )


def salesforce_account_id(index: int) -> str:
    """The Salesforce Account id of company ``index``."""
    return salesforce_id("001", index + 1)


def salesforce_contact_id(number: int) -> str:
    """The Salesforce Contact id of contact ``number``."""
    return salesforce_id("003", number + 1)


def salesforce_lead_id(number: int) -> str:
    """The Salesforce Lead id of lead ``number``."""
    return salesforce_id("00Q", number + 1)


def hubspot_company_id(index: int) -> str:
    """The HubSpot company id (``hs_object_id``) of company ``index``."""
    return str(HUBSPOT_COMPANY_ID_BASE + index + 1)


# ---------------------------------------------------------------------------
# Randomness: 32 independent 16-bit draws per record
# ---------------------------------------------------------------------------


def _key(seed: int, stream: bytes) -> bytes:
    return blake2b(f"{seed}".encode(), digest_size=32, person=stream).digest()


def _hasher(seed: int, stream: bytes) -> blake2b:
    """A keyed hash for one stream of the dataset; each record hashes its number with a copy."""
    return blake2b(key=_key(seed, stream))


def _draws(hasher: blake2b, number: int) -> tuple[int, ...]:
    h = hasher.copy()
    h.update(number.to_bytes(8, "little"))
    return _DRAWS.unpack(h.digest())


def _weighted_table(weights: Sequence[int], size: int = 1024) -> tuple[int, ...]:
    """Indexes repeated in proportion to their weights: ``table[u16 * size >> 16]`` is a draw."""
    total = sum(weights)
    table: list[int] = []
    cumulative = 0
    for index, weight in enumerate(weights):
        cumulative += weight
        table.extend([index] * (round(cumulative * size / total) - len(table)))
    return tuple(table)


@cache
def _headcount_table() -> tuple[int, ...]:
    # Lognormal headcount (median 30, sigma 2.0): about 60 % of companies have
    # at most 50 people, about 4 % more than 1,000, a few reach 100k and more.
    normal = NormalDist()
    out = []
    for u in range(_MAX_U16):
        z = normal.inv_cdf((u + 0.5) / _MAX_U16)
        out.append(max(1, min(400_000, round(math.exp(math.log(30) + 2.0 * z)))))
    return tuple(out)


@cache
def _revenue_factor_table() -> tuple[float, ...]:
    # Revenue per employee: lognormal around $160k (sigma 0.6).
    normal = NormalDist()
    return tuple(160_000.0 * math.exp(0.6 * normal.inv_cdf((u + 0.5) / 1024)) for u in range(1024))


_INDUSTRY_TABLE = _weighted_table([w for _, w, _ in INDUSTRIES])
_COUNTRY_TABLE = _weighted_table([w for _, w, _, _, _ in COUNTRIES])
_SPELLING_TABLES = tuple(_weighted_table([w for _, w in c[2]]) for c in COUNTRIES)
_TYPE_TABLE = _weighted_table([w for _, w, _ in ACCOUNT_TYPES])
_TITLE_TABLES = (
    _weighted_table([t[3] for t in TITLES]),
    _weighted_table([t[4] for t in TITLES]),
)

# Tech-stack pools by size: small companies run SaaS tools, large ones add ERP.
_STACK_WEIGHTS = (
    (14, 10, 2, 2, 12, 3, 5, 14, 5, 3, 0, 0, 0, 8, 10),  # up to 50 people
    (14, 6, 6, 8, 12, 8, 6, 12, 6, 6, 4, 3, 3, 3, 5),  # 51-1,000
    (12, 3, 8, 10, 10, 10, 6, 10, 5, 5, 10, 10, 10, 1, 2),  # more than 1,000
)
_STACK_TABLES = tuple(_weighted_table(w, 64) for w in _STACK_WEIGHTS)
_STACK_COUNT_TABLES = (
    _weighted_table((30, 30, 22, 12, 4, 2, 0)),  # 0..6 values, small
    _weighted_table((10, 15, 25, 25, 15, 7, 3)),
    _weighted_table((3, 5, 12, 20, 25, 20, 15)),
)

_BLANK = 19  # out of 256: each optional field is blank about 7.4 % of the time


def _naming(seed: int) -> tuple[int, int, int]:
    """Size of the name space and the seed's affine permutation of it (a bijection)."""
    space = len(_PREFIXES) * _N_CORES * _N_FORMS
    mix = int.from_bytes(_key(seed, b"naming")[:16], "little")
    multiplier = (mix % space) | 1
    while math.gcd(multiplier, space) != 1:
        multiplier += 2
    return space, multiplier, (mix >> 64) % space


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def _utc(reference: dt.datetime) -> dt.datetime:
    if reference.tzinfo is None:
        raise ValueError("reference must be a timezone-aware datetime")
    return reference.astimezone(dt.UTC).replace(microsecond=0)


def _domain(prefix: int, core: int, form: int, generation: int) -> str:
    before, separator, after, tld = _DOMAIN_FORMS[form]
    number = generation + 1 if generation else ""
    return f"{before}{_PREFIXES_LOWER[prefix]}{separator}{_CORES_LOWER[core]}{after}{number}.{tld}"


def _mess_industry(label: str, u: int) -> str:
    # Years of imports: mostly clean, some lower/upper case, some stray spaces.
    roll = u & 0xFF
    if roll < 14:
        return label.lower()
    if roll < 22:
        return label.upper()
    if roll < 34:
        return f"{label} "
    if roll < 40:
        return f" {label}"
    return label


def _round_headcount(employees: int, u: int) -> int:
    # People type round numbers: a quarter of headcounts are rounded to 1-2 digits.
    if employees < 20 or u & 0x3 != 0:
        return employees
    magnitude = int(10 ** (len(str(employees)) - (2 if u & 0x4 else 1)))
    return max(1, round(employees / magnitude) * magnitude)


def _company(
    index: int,
    key: blake2b,
    naming: tuple[int, int, int],
    reference: dt.datetime,
    headcounts: tuple[int, ...],
    revenue_factors: tuple[float, ...],
) -> Company:
    d = _draws(key, index)
    space, multiplier, offset = naming
    generation, slot = divmod(index, space)
    # An affine bijection of the name space: neighbours get unrelated names.
    slot, form = divmod((slot * multiplier + offset) % space, _N_FORMS)
    prefix, core = divmod(slot, _N_CORES)
    domain = _domain(prefix, core, form, generation)
    first, second = _PREFIXES[prefix], _CORES[core]
    if generation:
        # Past the name space, names repeat with a qualifier and domains get a number.
        name = f"{first} {second} {_QUALIFIERS[generation % _N_QUALIFIERS]}"
    else:
        legal = _LEGAL[d[0] % _N_LEGAL]
        name = f"{first} {second} {legal}" if legal else f"{first} {second}"

    web = d[1] & 0x7
    if (d[1] >> 3) & 0xFF < _BLANK:
        website = None
    elif web < 4:
        website = f"https://www.{domain}"
    elif web < 6:
        website = f"www.{domain}"
    elif web == 6:
        website = f"http://{domain}/"
    else:
        website = domain

    if d[2] >> 8 < _BLANK:
        industry = industry_label = None
    else:
        industry, _, labels = INDUSTRIES[_INDUSTRY_TABLE[d[3] >> 6]]
        industry_label = _mess_industry(labels[d[2] % len(labels)], d[4])

    raw = headcounts[d[5]]
    employees = None if d[6] & 0xFF < _BLANK else _round_headcount(raw, d[6] >> 8)
    size = 0 if raw <= 50 else 1 if raw <= 1000 else 2
    revenue: float | None
    if d[7] & 0xFF < _BLANK:
        revenue = None
    else:
        revenue = float(round(raw * revenue_factors[d[28] >> 6], -3) or 50_000.0)

    if d[8] & 0xFF < _BLANK:
        country = country_label = state = city = None
    else:
        which = _COUNTRY_TABLE[d[9] >> 6]
        country, _, spellings, states, cities = COUNTRIES[which]
        country_label = spellings[_SPELLING_TABLES[which][d[10] >> 6]][0]
        city_u = d[8] >> 8
        city = cities[city_u % len(cities)] if city_u >= _BLANK else None
        state = states[city_u % len(states)] if states and d[11] & 0xFF >= _BLANK else None

    phone: str | None = None
    if d[12] & 0xFF >= _BLANK:
        dial = _DIAL_CODES.get(country or "US", "+1")
        if dial == "+1":
            phone = f"+1 {200 + d[13] % 800}-555-{d[14] % 10000:04d}"
        else:
            phone = f"{dial} {10 + d[13] % 90} {d[14] % 10000:04d} {d[13] % 1000:03d}"

    if d[12] >> 8 < _BLANK:
        account_type = lifecycle = None
    else:
        account_type, _, lifecycle = ACCOUNT_TYPES[_TYPE_TABLE[d[15] >> 6]]

    count = _STACK_COUNT_TABLES[size][d[16] >> 6]
    stack: tuple[str, ...] = ()
    if count:
        # Up to ten weighted draws; repeats collapse, so a few stacks come out short.
        picked: set[int] = set()
        pool = _STACK_TABLES[size]
        for u in (d[17], d[18], d[19], d[29], d[30]):
            picked.add(pool[u & 0x3F])
            if len(picked) == count:
                break
            picked.add(pool[u >> 10])
            if len(picked) == count:
                break
        stack = tuple(TECH_STACK[i] for i in sorted(picked))

    # Intent skews low (most accounts show little research activity) with a
    # hot tail of about 8 % in 70-100.
    if d[20] & 0xFF < _BLANK:
        intent = None
    elif (d[20] >> 8) < 21:
        intent = 70 + d[21] % 31
    else:
        intent = int(65 * (d[21] / _MAX_U16) ** 2.2)

    created = reference - dt.timedelta(200 + d[22] % 2400, d[23])
    activity: dt.datetime | None
    if d[24] & 0xFF < _BLANK:
        activity = None
    else:
        # Most accounts were touched recently; the rest spread over two years.
        recent = (d[24] >> 8) < 150
        days = (d[25] % 90) * (d[25] % 91) // 90 if recent else d[25] % 730
        activity = reference - dt.timedelta(days, d[26] + 1)
        activity = max(activity, created)

    return Company(
        index,
        name,
        domain,
        website,
        industry,
        industry_label,
        employees,
        revenue,
        country,
        country_label,
        state,
        city,
        phone,
        account_type,
        lifecycle,
        stack,
        intent,
        activity,
        created,
        d[27] & 0xFF < SYNCED_SHARE,
    )


def companies(
    seed: int, n: int, *, start: int = 0, reference: dt.datetime = REFERENCE
) -> Iterator[Company]:
    """Companies ``start`` … ``n - 1`` of the dataset ``seed``, streamed.

    Args:
        seed: The dataset; the same seed always yields the same companies.
        n: How many companies the dataset has.
        start: The first company to yield (slices regenerate identically).
        reference: The time dates are spread back from (never the clock).

    """
    if start < 0:
        raise ValueError(f"start must be >= 0, not {start}")
    reference = _utc(reference)
    key = _hasher(seed, b"company")
    naming = _naming(seed)
    headcounts, factors = _headcount_table(), _revenue_factor_table()
    for index in range(start, n):
        yield _company(index, key, naming, reference, headcounts, factors)


def company(seed: int, index: int, *, reference: dt.datetime = REFERENCE) -> Company:
    """Company ``index`` of the dataset ``seed``."""
    if index < 0:
        raise ValueError(f"index must be >= 0, not {index}")
    reference = _utc(reference)
    return _company(
        index,
        _hasher(seed, b"company"),
        _naming(seed),
        reference,
        _headcount_table(),
        _revenue_factor_table(),
    )


def _contacts_of(
    c: Company, hashers: tuple[blake2b, blake2b], per_company: int, reference: dt.datetime
) -> Iterator[Contact]:
    company_hasher, contact_hasher = hashers
    head = _draws(company_hasher, c.index)
    # About per_company contacts each (per_company - 2 … per_company + 2).
    count = max(0, min(CONTACT_STRIDE - 1, per_company - 2 + head[0] % 5)) if per_company > 0 else 0
    titles = _TITLE_TABLES[0 if (c.employees or 0) < 50 else 1]
    pattern = _EMAIL_PATTERNS[head[1] % len(_EMAIL_PATTERNS)]
    seen: set[str] = set()
    for k in range(count):
        number = c.index * CONTACT_STRIDE + k
        d = _draws(contact_hasher, number)
        first = _FIRST_NAMES[d[0] % _N_FIRST]
        last = _LAST_NAMES[d[1] % _N_LAST]
        email: str | None = None
        if d[2] & 0xFF >= _BLANK:
            # One address pattern per company, as mail servers are set up.
            local = pattern.format(f=first, l=last, fi=first[0], li=last[0]).lower()
            local = local.replace("'", "").replace(" ", "")
            if local in seen:
                local = f"{local}{k + 1}"
            seen.add(local)
            email = f"{local}@{c.domain}"
        title = department = seniority = None
        if d[3] & 0xFF >= _BLANK:
            title, seniority_value, department, _, _ = TITLES[titles[d[4] >> 6]]
            if d[3] >> 8 < 12:  # people type their own titles
                title = title.lower()
            seniority = None if d[5] & 0xFF < _BLANK else seniority_value
            if d[5] >> 8 < _BLANK:
                department = None
        lead_source = None if d[6] & 0xFF < _BLANK else LEAD_SOURCES[(d[6] >> 8) % _N_SOURCES]
        created = max(c.created_at, reference - dt.timedelta(30 + d[7] % 900, d[8]))
        activity: dt.datetime | None = None
        if d[9] & 0xFF >= _BLANK and c.last_activity is not None:
            activity = max(created, c.last_activity - dt.timedelta(d[10] % 120))
        yield Contact(
            c.index,
            number,
            first,
            last,
            email,
            title,
            department,
            seniority,
            lead_source,
            activity,
            created,
            d[11] & 0xFF < SYNCED_SHARE,
        )


def _contact_hashers(seed: int) -> tuple[blake2b, blake2b]:
    return _hasher(seed, b"contact-count"), _hasher(seed, b"contact")


def contacts(
    seed: int,
    n_companies: int,
    per_company: int = 3,
    *,
    start: int = 0,
    reference: dt.datetime = REFERENCE,
) -> Iterator[Contact]:
    """The contacts of companies ``start`` … ``n_companies - 1``, in company order, streamed.

    Args:
        seed: The dataset (the same seed as the companies).
        n_companies: How many companies the dataset has.
        per_company: The average number of contacts a company has (each has
            between ``per_company - 2`` and ``per_company + 2``).
        start: The first company whose contacts to yield.
        reference: The time dates are spread back from.

    """
    hashers = _contact_hashers(seed)
    for c in companies(seed, n_companies, start=start, reference=reference):
        yield from _contacts_of(c, hashers, per_company, reference)


def contacts_of(
    c: Company, seed: int, per_company: int = 3, *, reference: dt.datetime = REFERENCE
) -> Iterator[Contact]:
    """The contacts of one company (as :func:`contacts` yields them)."""
    return _contacts_of(c, _contact_hashers(seed), per_company, _utc(reference))


# How people type a title into a web form: abbreviations spelled out or
# shortened, commas, "of", odd case and spaces (the persona rules must cope).
_TITLE_FORMS: tuple[tuple[str, str], ...] = (
    ("VP of ", "Vice President of "),
    ("VP ", "V.P. "),
    ("VP ", "Vice President, "),
    ("SVP ", "Senior Vice President "),
    ("Sr. ", "Senior "),
    ("Director of ", "Dir. "),
    ("Director, ", "Director of "),
    ("Manager", "Mgr"),
    ("Engineer", "Eng."),
    ("Representative", "Rep"),
    ("Chief Executive Officer", "CEO"),
)
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Not Converted")
_RATINGS = ("Hot", "Warm", "Cold")


def _mess_title(title: str, u: int) -> str:
    roll = u & 0xF
    if roll < 5:
        for plain, typed in _TITLE_FORMS:
            if plain in title:
                title = title.replace(plain, typed, 1)
                break
    style = (u >> 4) & 0xF
    if style < 3:
        return title.lower()
    if style == 3:
        return title.upper()
    if style == 4:
        return f"  {title} "
    return title


def leads(
    seed: int, accounts: int, n: int, *, reference: dt.datetime = REFERENCE
) -> Iterator[Lead]:
    """Leads ``0 … n - 1`` of the dataset ``seed`` whose first ``accounts`` companies are accounts.

    About one lead in sixteen is converted (read-only in Salesforce).
    """
    reference = _utc(reference)
    key = _hasher(seed, b"lead")
    for number, c in enumerate(companies(seed, accounts + n, start=accounts, reference=reference)):
        d = _draws(key, number)
        first = _FIRST_NAMES[d[0] % _N_FIRST]
        last = _LAST_NAMES[d[1] % _N_LAST]
        email = None
        if d[2] & 0xFF >= _BLANK:
            email = f"{first}.{last}".lower().replace("'", "").replace(" ", "") + f"@{c.domain}"
        title = None
        if d[3] & 0xFF >= _BLANK:
            table = _TITLE_TABLES[0 if (c.employees or 0) < 50 else 1]
            title = _mess_title(TITLES[table[d[4] >> 6]][0], d[5])
        source = None if d[6] & 0xFF < _BLANK else LEAD_SOURCES[(d[6] >> 8) % _N_SOURCES]
        converted = d[7] & 0xF == 0
        status = "Closed - Converted" if converted else LEAD_STATUSES[d[8] % len(LEAD_STATUSES)]
        rating = None if d[9] & 0xFF < 64 else _RATINGS[(d[9] >> 8) % 3]
        created = reference - dt.timedelta(1 + d[10] % 400, d[11])
        activity = None
        if d[12] & 0xFF >= 80:
            activity = max(created, reference - dt.timedelta(d[13] % 120, d[14] + 1))
        yield Lead(
            number,
            c,
            first,
            last,
            email,
            title,
            source,
            status,
            rating,
            converted,
            activity,
            created,
        )


# ---------------------------------------------------------------------------
# CRM formats
# ---------------------------------------------------------------------------


def _sf_datetime(value: dt.datetime) -> str:
    return value.isoformat()[:19] + ".000+0000"


def _hs_datetime(value: dt.datetime) -> str:
    return value.isoformat()[:19] + ".000Z"


def _hs_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def salesforce_account_row(c: Company) -> dict[str, Any]:
    """The company as a Salesforce Account record (API field names, JSON types, None = blank)."""
    row: dict[str, Any] = {
        "Id": salesforce_account_id(c.index),
        "Name": c.name,
        "Website": c.website,
        "Industry": c.industry_label,
        "Type": c.account_type,
        "NumberOfEmployees": c.employees,
        "AnnualRevenue": c.annual_revenue,
        "BillingCountry": c.country_label,
        "BillingState": c.state,
        "BillingCity": c.city,
        "Phone": c.phone,
        "LastActivityDate": c.last_activity.date().isoformat() if c.last_activity else None,
        "CreatedDate": _sf_datetime(c.created_at),
        "Tech_Stack__c": ";".join(c.tech_stack) or None,
        "Intent_Score__c": float(c.intent_score) if c.intent_score is not None else None,
        "Segsync_Lock__c": False,
    }
    _seed_difference(c.index, "salesforce", row)
    return row


def _seed_difference(index: int, crm: str, record: dict[str, Any]) -> None:
    seeded = SEEDED_DIFFERENCES.get(index)
    if seeded is not None and seeded[0] == crm:
        record[seeded[1]] = seeded[2]


def salesforce_contact_row(ct: Contact) -> dict[str, Any]:
    """The contact as a Salesforce Contact record, linked by ``AccountId``."""
    return {
        "Id": salesforce_contact_id(ct.number),
        "AccountId": salesforce_account_id(ct.company_index),
        "FirstName": ct.first_name,
        "LastName": ct.last_name,
        "Email": ct.email,
        "Title": ct.title,
        "Department": ct.department,
        "LeadSource": ct.lead_source,
        "LastActivityDate": ct.last_activity.date().isoformat() if ct.last_activity else None,
        "CreatedDate": _sf_datetime(ct.created_at),
        "Seniority__c": ct.seniority,
        "Segsync_Lock__c": False,
    }


def hubspot_company_props(c: Company) -> dict[str, str]:
    """The company as HubSpot company properties: every value a string, blanks left out."""
    props = {
        "name": c.name,
        "domain": c.domain,
        "createdate": _hs_datetime(c.created_at),
        "tech_stack": ";".join(c.tech_stack),
    }
    optional = {
        "website": c.website,
        "industry": c.industry,
        "numberofemployees": None if c.employees is None else str(c.employees),
        "annualrevenue": None if c.annual_revenue is None else _hs_number(c.annual_revenue),
        "country": c.country_label,
        "state": c.state,
        "city": c.city,
        "phone": c.phone,
        "lifecyclestage": c.lifecycle_stage,
        "intent_score": None if c.intent_score is None else str(c.intent_score),
        "notes_last_updated": None if c.last_activity is None else _hs_datetime(c.last_activity),
    }
    props.update({k: v for k, v in optional.items() if v is not None})
    if not props["tech_stack"]:
        del props["tech_stack"]
    if c.synced:
        props["salesforceaccountid"] = salesforce_account_id(c.index)
    _seed_difference(c.index, "hubspot", props)
    return props


def hubspot_contact_props(ct: Contact) -> dict[str, str]:
    """The contact as HubSpot contact properties; ``associatedcompanyid`` links its company."""
    props = {
        "firstname": ct.first_name,
        "lastname": ct.last_name,
        "createdate": _hs_datetime(ct.created_at),
        "associatedcompanyid": hubspot_company_id(ct.company_index),
    }
    optional = {
        "email": ct.email,
        "jobtitle": ct.title,
        "department": ct.department,
        "seniority": ct.seniority,
        "notes_last_updated": None if ct.last_activity is None else _hs_datetime(ct.last_activity),
    }
    props.update({k: v for k, v in optional.items() if v is not None})
    if ct.synced:
        props["salesforcecontactid"] = salesforce_contact_id(ct.number)
    return props


def salesforce_lead_row(ld: Lead) -> dict[str, Any]:
    """The lead as a Salesforce Lead record: firmographics in the lead's own Company fields."""
    c = ld.company
    return {
        "Id": salesforce_lead_id(ld.number),
        "FirstName": ld.first_name,
        "LastName": ld.last_name,
        "Email": ld.email,
        "Title": ld.title,
        "Company": c.name,
        "Website": c.website,
        "Industry": c.industry_label,
        "NumberOfEmployees": c.employees,
        "AnnualRevenue": c.annual_revenue,
        "Country": c.country_label,
        "State": c.state,
        "City": c.city,
        "Phone": c.phone,
        "LeadSource": ld.lead_source,
        "Status": ld.status,
        "Rating": ld.rating,
        "IsConverted": ld.converted,
        "ConvertedDate": ld.created_at.date().isoformat() if ld.converted else None,
        "LastActivityDate": ld.last_activity.date().isoformat() if ld.last_activity else None,
        "CreatedDate": _sf_datetime(ld.created_at),
        "Segsync_Lock__c": False,
    }
