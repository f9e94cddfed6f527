"""The HubSpot adapter, as a package of one module per concern.

- :mod:`.adapter`: :class:`HubSpotAdapter`, which composes the rest.
- :mod:`.session`: the client, and the one paced, budgeted, retried call.
- :mod:`.errors`: the one table from SDK errors to segsync's.
- :mod:`.values`: object types, the stamp, values as HubSpot's strings.
- :mod:`.describe`: what the portal says about its properties.
- :mod:`.pull`: full pulls by list, reads by id, parent company fields;
  :mod:`.search` walks incremental search windows under the result cap;
  :mod:`.associations` finds a contact's company.
- :mod:`.write`: batch updates.
- :mod:`.provision`: the Segmentation group, properties and options.

Modules import downward only (``adapter`` → concerns → ``session`` →
``errors``); none imports this package's ``__init__`` or ``adapter``.
"""

from __future__ import annotations

from connector.crm.hubspot.adapter import HubSpotAdapter
from connector.crm.hubspot.values import OBJECT_TYPES, STAMP, to_wire

__all__ = ["OBJECT_TYPES", "STAMP", "HubSpotAdapter", "to_wire"]
