"""A renamed output field: segsync's own lists follow it, lists a person edited do not.

The accounts definition moves its segment output to a new field in both CRMs;
provision creates the field and updates the filter of every segment list and
list view it made, leaving the tier lists, the contact lists and a list a
person edited alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_native_hubspot import _config, _invoke, _mappings

from segsync_sandbox.launcher import Sandboxes


def _provision(config: Path) -> list[dict[str, Any]]:
    result = _invoke("provision", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)["native"]
    return rows


def _renamed(directory: Path) -> list[Path]:
    mappings = _mappings(directory)
    accounts = next(m for m in mappings if m.stem == "accounts")
    text = accounts.read_text(encoding="utf-8")
    text = text.replace('segment = "Segsync_Segment__c"', 'segment = "Segsync_Segment2__c"', 1)
    text = text.replace('segment = "segsync_segment"', 'segment = "segsync_segment2"', 1)
    accounts.write_text(text, encoding="utf-8")
    return mappings


def test_a_renamed_output_moves_the_filters_of_segsyncs_lists(
    fresh_sandboxes: Sandboxes, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _provision(_config(fresh_sandboxes, first, _mappings(first)))

    # A person narrows one company segment list (adds a second AND branch filter).
    client = fresh_sandboxes.hubspot.client()
    lists = client.crm.lists.lists_api
    found = json.loads(
        lists.get_by_name(
            "segsync · Companies · Segment: SMB",
            "0-2",
            include_filters="true",
            _preload_content=False,
        ).data
    )["list"]
    branch = found["filterBranch"]
    branch["filterBranches"][0]["filters"].append(
        {
            "filterType": "PROPERTY",
            "property": "segsync_tier",
            "operation": {
                "operationType": "ENUMERATION",
                "operator": "IS_ANY_OF",
                "values": ["Tier 1"],
                "includeObjectsWithNoValueSet": False,
            },
        }
    )
    lists.update_list_filters(found["listId"], {"filterBranch": branch}, _preload_content=False)

    rows = _provision(_config(fresh_sandboxes, second, _renamed(second)))
    changed = {(r["crm"], r["object"], r["name"], r["action"]) for r in rows if r["action"] != "ok"}
    segments = ("Enterprise SaaS", "Financial Services", "Mid-Market Tech", "Everyone else")
    expected = {
        ("hubspot", "account", f"segsync · Companies · Segment: {s}", "update") for s in segments
    } | {("hubspot", "account", "segsync · Companies · Segment: SMB", "edited")}
    hubspot = {c for c in changed if c[0] == "hubspot"}
    assert hubspot == expected
    salesforce = {c for c in changed if c[0] == "salesforce"}
    assert {c[3] for c in salesforce} == {"update"}
    assert {c[1] for c in salesforce} == {"account"}
    # Five segment views get the new filter field; those and the three tier views the
    # renamed column.
    assert len(salesforce) == 8
    details = {r["name"]: r["detail"] for r in rows if r["crm"] == "salesforce"}
    assert details["Account.Segsync_Segment_SMB"] == "filter field, columns"
    assert details["Account.Segsync_Tier_Tier_1"] == "columns"
    views = fresh_sandboxes.salesforce.app.listviews
    assert views is not None
    assert views.views()["account.segsync_segment_smb"].filters == [
        ("Segsync_Segment2__c", "equals", "SMB")
    ]

    # And the next provision has nothing left to do but report the edited list.
    again = _provision(_config(fresh_sandboxes, second, _renamed(second)))
    assert {(r["name"], r["action"]) for r in again if r["action"] != "ok"} == {
        ("segsync · Companies · Segment: SMB", "edited")
    }
