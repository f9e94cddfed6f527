"""HubSpot lists end to end: `segsync provision` keeps one dynamic list per segment and tier.

Through the CLI, hubspot-api-client and the sandbox's Lists API over HTTP:
after provision and a sync every list's memberships are exactly the records
holding its value; a second provision changes nothing; a definition that
adds a segment adds its lists and touches no other; a list a person edited
is reported and left as the person left it; a removed segment's list retires.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.templates import MAPPINGS
from segsync_sandbox.launcher import Sandboxes

WRITES = {"list.create", "list.update_filters", "list.update_name", "list.delete"}


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _provision(config: Path, *extra: str) -> dict[str, Any]:
    result = _invoke(
        "provision", "--config", str(config), "--crm", "hubspot", "--format", "json", *extra
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _mappings(tmp_path: Path, extra_segment: str = "", drop: str = "") -> list[Path]:
    """Copies of the shipped definitions, optionally with one more segment or one fewer."""
    out = []
    for source in MAPPINGS:
        text = Path(source).read_text(encoding="utf-8")
        if Path(source).stem == "accounts":
            if extra_segment:
                text = text.replace(
                    '[[segments]]\nname = "Everyone else"',
                    f'[[segments]]\nname = "{extra_segment}"\n'
                    'when = { attr = "employees", gte = 100000 }\n\n'
                    '[[segments]]\nname = "Everyone else"',
                    1,
                )
            if drop:
                start = text.index(f'[[segments]]\nname = "{drop}"')
                end = text.index("[[segments]]", start + 1)
                text = text[:start] + text[end:]
        target = tmp_path / Path(source).name
        target.write_text(text, encoding="utf-8")
        out.append(target)
    return out


def _config(sandboxes: Sandboxes, tmp_path: Path, mappings: list[Path]) -> Path:
    config = sandboxes.write_config(
        tmp_path / "config.toml", store_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    names = ", ".join(json.dumps(str(m)) for m in mappings)
    text = config.read_text(encoding="utf-8")
    assert "\n[sync]\n" in text
    config.write_text(text.replace("\n[sync]\n", f"\n[sync]\nmappings = [{names}]\n", 1))
    return config


@pytest.fixture
def hs(fresh_sandboxes: Sandboxes) -> Iterator[Sandboxes]:
    yield fresh_sandboxes


def _members(client: Any, list_id: str) -> set[str]:
    """Every member of a list through the client's memberships API, 250 at a time."""
    ids: set[str] = set()
    after = None
    while True:
        kwargs: dict[str, Any] = {"limit": 250}
        if after:
            kwargs["after"] = after
        page = client.crm.lists.memberships_api.get_page(list_id, **kwargs)
        ids.update(str(r.record_id) for r in page.results)
        after = page.paging.next.after if page.paging and page.paging.next else None
        if not after:
            return ids


def _writes(sandboxes: Sandboxes, since: int) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (e.kind, e.records) for e in sandboxes.hubspot.app.log.entries(since) if e.kind in WRITES
    ]


def test_lists_follow_the_definition_and_the_records(hs: Sandboxes, tmp_path: Path) -> None:
    config = _config(hs, tmp_path, _mappings(tmp_path))
    portal, client = hs.hubspot.portal, hs.hubspot.client()

    dry = _provision(config, "--dry-run")
    planned = {(r["object"], r["name"]) for r in dry["native"] if r["action"] == "create"}
    assert ("account", "segsync · Companies · Tier: Tier 1") in planned
    assert ("contact", "segsync · Contacts · Segment: Enterprise SaaS") in planned
    assert ("account", "segsync · accounts") in planned  # the folder
    assert _writes(hs, 0) == [] and hs.hubspot.app.lists.routes()  # a dry run creates nothing

    first = _provision(config)
    created = [r for r in first["native"] if r["action"] == "create" and r["id"]]
    lists = {r["name"]: r["id"] for r in created}
    assert len(lists) == len([r for r in planned if "·" in r[1] and ":" in r[1]])
    assert hs.hubspot.app.lists.folder_of(lists["segsync · Companies · Tier: Tier 1"]) == (
        "segsync · accounts"
    )

    sync = _invoke("sync", "--config", str(config), "--crm", "hubspot", "--format", "json")
    assert sync.exit_code == 0, sync.output
    for name, list_id in lists.items():
        object_type = "companies" if "Companies" in name else "contacts"
        kind, value = name.rsplit(" · ", 1)[1].split(": ", 1)
        prop = f"segsync_{kind.lower()}"
        expected = {r.id for r in portal.snapshot(object_type) if r.props.get(prop) == value}
        assert _members(client, list_id) == expected, name
    assert any(_members(client, i) for i in lists.values())

    # A second provision changes nothing.
    mark = hs.hubspot.app.log.entries()[-1].seq
    again = _provision(config)
    assert {r["action"] for r in again["native"]} == {"ok"}
    assert _writes(hs, mark) == []

    # A person edits one list's filters; provision reports it and leaves it alone.
    tier1 = lists["segsync · Companies · Tier: Tier 1"]
    edited = {
        "filterBranchType": "OR",
        "filterBranches": [
            {
                "filterBranchType": "AND",
                "filterBranches": [],
                "filters": [
                    {
                        "filterType": "PROPERTY",
                        "property": "segsync_tier",
                        "operation": {
                            "operationType": "ENUMERATION",
                            "operator": "IS_ANY_OF",
                            "values": ["Tier 1", "Tier 2"],
                            "includeObjectsWithNoValueSet": False,
                        },
                    }
                ],
            }
        ],
        "filters": [],
    }
    client.crm.lists.lists_api.update_list_filters(
        tier1, {"filterBranch": edited}, _preload_content=False
    )
    mark = hs.hubspot.app.log.entries()[-1].seq
    report = _provision(config)
    flagged = [r for r in report["native"] if r["action"] == "edited"]
    assert [(r["name"], r["id"]) for r in flagged] == [
        ("segsync · Companies · Tier: Tier 1", tier1)
    ]
    assert _writes(hs, mark) == []
    both = {
        r.id
        for r in portal.snapshot("companies")
        if r.props.get("segsync_tier") in ("Tier 1", "Tier 2")
    }
    assert _members(client, tier1) == both


def test_a_new_segment_adds_its_lists_and_a_removed_one_retires(
    hs: Sandboxes, tmp_path: Path
) -> None:
    first_dir, second_dir, third_dir = (tmp_path / d for d in ("a", "b", "c"))
    for d in (first_dir, second_dir, third_dir):
        d.mkdir()
    config = _config(hs, first_dir, _mappings(first_dir))
    before = {r["name"]: r["id"] for r in _provision(config)["native"] if r["id"]}

    # The definition gains a segment: its account and contact lists appear, nothing else moves.
    config = _config(hs, second_dir, _mappings(second_dir, extra_segment="Giants"))
    mark = hs.hubspot.app.log.entries()[-1].seq
    report = _provision(config)
    changed = {(r["name"], r["action"]) for r in report["native"] if r["action"] != "ok"}
    assert changed == {
        ("segsync · Companies · Segment: Giants", "create"),
        ("segsync · Contacts · Segment: Giants", "create"),
    }
    new_ids = {r["id"] for r in report["native"] if r["action"] == "create"}
    assert {(k, r) for k, r in _writes(hs, mark)} == {("list.create", (i,)) for i in new_ids}
    kept = {r["name"]: r["id"] for r in report["native"] if r["action"] == "ok"}
    assert kept == before

    # A segment leaves the definition: its lists retire (deleted, restorable), the rest stay.
    config = _config(hs, third_dir, _mappings(third_dir, drop="SMB"))
    mark = hs.hubspot.app.log.entries()[-1].seq
    report = _provision(config)
    retired = {r["name"]: r["id"] for r in report["native"] if r["action"] == "retire"}
    assert set(retired) == {
        "segsync · Companies · Segment: SMB",
        "segsync · Contacts · Segment: SMB",
        "segsync · Companies · Segment: Giants",
        "segsync · Contacts · Segment: Giants",
    }
    assert {k for k, _ in _writes(hs, mark)} == {"list.delete"}
    client = hs.hubspot.client()
    for list_id in retired.values():
        client.crm.lists.lists_api.restore(list_id)  # HubSpot keeps a deleted list restorable


def test_the_native_section_turns_lists_off(hs: Sandboxes, tmp_path: Path) -> None:
    config = _config(hs, tmp_path, _mappings(tmp_path))
    with config.open("a", encoding="utf-8") as out:
        out.write("\n[native]\nhubspot_lists = false\nsalesforce_list_views = false\n")
    result = _invoke("provision", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["native"] == [] and document["actions"]
    kinds = {e.kind for e in hs.hubspot.app.log.entries()} | {
        e.kind for e in hs.salesforce.app.log.entries()
    }
    assert not {k for k in kinds if k.startswith(("list", "listview"))}
    assert "metadata.createMetadata" in kinds  # the fields were provisioned
    written = {f for e in hs.salesforce.app.log.entries() for f in e.fields}
    views = {f for f in written if f.startswith(("Account.", "Contact.")) and "__" not in f}
    assert not views, views


def test_a_bad_shared_to_is_one_line_naming_the_key(hs: Sandboxes, tmp_path: Path) -> None:
    config = _config(hs, tmp_path, _mappings(tmp_path))
    with config.open("a", encoding="utf-8") as out:
        out.write('\n[native]\nlist_view_shared_to = "Everyone"\n')
    result = _invoke("provision", "--config", str(config), "--dry-run")
    assert result.exit_code == 2
    assert "list_view_shared_to" in result.output and "Traceback" not in result.output
