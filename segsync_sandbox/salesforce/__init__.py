"""Local Salesforce sandbox: an in-memory org served over HTTPS to the real simple-salesforce.

Public entry points: :func:`start_salesforce` (returns a :class:`SalesforceSandbox`),
:class:`SalesforceApp` (the routes; Bulk 2.0 and Metadata modules register on it)
and :class:`Org` (schema and records).
"""

from __future__ import annotations

from segsync_sandbox.salesforce.app import SalesforceApp
from segsync_sandbox.salesforce.org import CustomFieldSpec, Org, RecordError, make_id
from segsync_sandbox.salesforce.server import SalesforceSandbox, start_salesforce

__all__ = [
    "CustomFieldSpec",
    "Org",
    "RecordError",
    "SalesforceApp",
    "SalesforceSandbox",
    "make_id",
    "start_salesforce",
]
