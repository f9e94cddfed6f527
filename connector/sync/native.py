"""Which native lists a definition asks for in a CRM (pure: definitions in, views out).

One list per value the segment and tier output fields can hold (the options
:func:`~connector.sync.provision.output_specs` provisions), so a list exists
for every segment and tier a record can get, inherited ones included. The
adapters' ``native`` modules reconcile these with the CRM: HubSpot dynamic
lists, Salesforce list views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from connector.crm.base import NativeView, ObjectName
from connector.engine import Engine
from connector.sync.provision import output_specs

_KINDS: tuple[Literal["segment", "tier"], ...] = ("segment", "tier")
#: The output fields a list view shows after the name and owner, in this order.
_COLUMN_KEYS = ("segment", "tier", "persona", "reason")


def definition_name(engine: Engine) -> str:
    """The name a definition goes by in the CRM: its file's stem (``accounts``)."""
    return Path(engine.definition.path).stem or engine.definition.object


def native_views(
    engine: Engine, crm: str, obj: ObjectName, parent: Engine | None = None
) -> list[NativeView]:
    """The lists ``engine`` asks for in ``crm``: one per segment and per tier value.

    Values come in the order the definition ranks them. Columns are the
    segment, tier, persona, score and reason output fields the mapping
    declares for ``crm``.
    """
    fields = engine.output_fields(crm)
    options = {o.name: o.options for o in output_specs(engine, crm, parent)}
    scores = [name for key, name in fields.items() if key.startswith("score.")]
    columns = [fields[k] for k in _COLUMN_KEYS[:3] if k in fields]
    columns += scores
    if "reason" in fields:
        columns.append(fields["reason"])
    folder = definition_name(engine)
    views: list[NativeView] = []
    for kind in _KINDS:
        name = fields.get(kind)
        if name is None:
            continue
        views.extend(
            NativeView(obj, kind, value, name, folder, tuple(columns))
            for value in options.get(name, ())
        )
    return views
