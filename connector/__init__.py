"""segsync: one shared segment definition, written back into Salesforce and HubSpot."""

__version__ = "0.1.0"
