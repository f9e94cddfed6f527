"""A local HubSpot that the real hubspot-api-client talks to unmodified over plain HTTP.

Start one with :func:`start_hubspot` (``port=0`` for an ephemeral port) and
talk to it with ``sandbox.client()`` or ``HubSpot(access_token=...,
host=sandbox.base_url)``. The data lives in a :class:`Portal`, which data
loaders fill directly (``load_companies`` / ``load_contacts``) and which
persists with ``save`` / ``load``.
"""

from __future__ import annotations

from segsync_sandbox.hubspot.app import (
    DEFAULT_TOKEN,
    HubSpotApp,
    HubSpotSandbox,
    disabled_retries,
    start_hubspot,
)
from segsync_sandbox.hubspot.errors import (
    AlreadyExists,
    ObjectNotFound,
    PortalError,
    PropertyValuesError,
    ValidationError,
)
from segsync_sandbox.hubspot.portal import Portal, Record
from segsync_sandbox.hubspot.ratelimit import RateLimiter, RateLimits
from segsync_sandbox.hubspot.schema import (
    INDUSTRY_OPTIONS,
    LIFECYCLE_OPTIONS,
    SENIORITY_OPTIONS,
    TECH_STACK_OPTIONS,
)
from segsync_sandbox.hubspot.search import Searcher, SearchLimits

__all__ = [
    "DEFAULT_TOKEN",
    "INDUSTRY_OPTIONS",
    "LIFECYCLE_OPTIONS",
    "SENIORITY_OPTIONS",
    "TECH_STACK_OPTIONS",
    "AlreadyExists",
    "HubSpotApp",
    "HubSpotSandbox",
    "ObjectNotFound",
    "Portal",
    "PortalError",
    "PropertyValuesError",
    "RateLimiter",
    "RateLimits",
    "Record",
    "SearchLimits",
    "Searcher",
    "ValidationError",
    "disabled_retries",
    "start_hubspot",
]
