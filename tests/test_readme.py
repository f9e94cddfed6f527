"""The README stays in step with the code: its configuration reference and its commands."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from connector.cli import cli
from connector.config import (
    HubSpotConnection,
    JobSettings,
    NativeSettings,
    ParitySettings,
    SalesforceConnection,
    ServiceSettings,
    StoreSettings,
    SyncSettings,
)

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _reference() -> str:
    start = README.index("<!-- config-reference")
    return README[start : README.index("\n## ", start)]


def test_every_setting_is_in_the_configuration_reference() -> None:
    table = _reference()
    documented = set(re.findall(r"`[^`]*?\.?([a-z0-9_]+)`", table)) | set(
        re.findall(r"/ `?([a-z0-9_]+)`", table)
    )
    models: dict[str, type[BaseModel]] = {
        "salesforce": SalesforceConnection,
        "hubspot": HubSpotConnection,
        "store": StoreSettings,
        "sync": SyncSettings,
        "service": ServiceSettings,
        "jobs": JobSettings,
        "parity": ParitySettings,
        "native": NativeSettings,
    }
    missing = [
        f"{prefix}.{name}"
        for prefix, model in models.items()
        for name in model.model_fields
        if name not in documented and name != "jobs"
    ]
    assert not missing, f"README's configuration reference lacks: {missing}"


def test_every_command_is_in_the_readme() -> None:
    missing = [
        name
        for name in cli.commands
        if f"segsync {name}" not in README and f"`{name}" not in README
    ]
    assert not missing, f"README does not mention: {missing}"


def test_the_two_commands_are_the_makefile_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:.*\n\t\$\(BIN\)/segsync demo$", makefile, re.M)
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")
