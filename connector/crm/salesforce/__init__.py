"""The Salesforce adapter: simple-salesforce for REST, SOQL, Bulk API 2.0 and the Metadata API.

One module per concern, each importing only those listed before it:

- :mod:`.errors`: the one translation table to the segsync error tree;
- :mod:`.values`: Python values as REST JSON and Bulk CSV cells, and back;
- :mod:`.auth`: OAuth token requests against the configured login URL;
- :mod:`.session`: HTTP sessions, per-thread clients, call counting,
  re-authentication and the retried call wrapper;
- :mod:`.soql`: object names, SELECT lists, query templates, records;
- :mod:`.describe`: cached describes and FieldSpecs;
- :mod:`.bulk`: Bulk API 2.0 query and ingest jobs;
- :mod:`.pull`: REST pulls and fetches (big pulls go to :mod:`.bulk`);
- :mod:`.write`: sObject Collections writes;
- :mod:`.provision`: custom fields through the Metadata API;
- :mod:`.adapter`: :class:`SalesforceAdapter`, which composes them.
"""

from __future__ import annotations

from connector.crm.base import parse_stamp
from connector.crm.salesforce.adapter import SalesforceAdapter
from connector.crm.salesforce.auth import scrub
from connector.crm.salesforce.values import from_cell, to_cell, to_json

__all__ = ["SalesforceAdapter", "from_cell", "parse_stamp", "scrub", "to_cell", "to_json"]
