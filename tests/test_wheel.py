"""The wheel is the product: built, installed into a fresh environment, run from an empty directory.

Nothing of the checkout is on the path there: the package is built from a copy
of the sources it needs, installed with pip into a new virtual environment
(without, then with, the ``sandbox`` extra), and every command runs with an
empty temporary directory as its working directory. Dependencies come from
pip's usual index and cache, as for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a build needs from the checkout; a copy keeps stale build/ output and
# the developer's files out of the wheel.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "connector", "segsync_sandbox")

JSON = ("--format", "json")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(
    args: list[str | Path], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("SEGSYNC_CONFIG", None)
    env |= {"COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, src / name)
    out = tmp_path_factory.mktemp("dist")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, src], cwd=src
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("segsync-*.whl")
    return path


def test_the_wheel_ships_what_a_user_needs(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "connector/templates/config.example.toml",
        "connector/templates/mappings/accounts.toml",
        "connector/templates/mappings/contacts.toml",
        "connector/templates/mappings/leads.toml",
        "connector/templates/gitignore",
        "connector/samples/salesforce_accounts.csv",
        "connector/samples/hubspot_companies.jsonl",
        "connector/samples/salesforce_contacts.jsonl",
        "connector/store/migrations/env.py",
        "connector/store/migrations/script.py.mako",
        "connector/store/migrations/versions/v0001_initial.py",
        "segsync_sandbox/launcher.py",
    }
    assert expected <= names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not any(n.startswith(("tests/", "bench/", "mappings/")) for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: sandbox" in metadata and "Provides-Extra: postgres" in metadata
    # trustme (the sandboxes' certificate authority) only with the extra.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("trustme" in r and 'extra == "sandbox"' in r for r in requires)
    assert not any("trustme" in r and "extra ==" not in r for r in requires)


def test_installed_from_the_wheel_it_runs_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    segsync = venv / "bin" / "segsync"
    work = tmp_path / "work"  # an empty directory, outside the checkout
    work.mkdir()

    def pip_install(requirement: str) -> None:
        # The test environment's pip installs into the new environment; modules
        # are byte-compiled when first imported rather than all up front.
        args = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
        args.append("--no-compile")
        _ok(_run([*args, requirement], cwd=work))

    pip_install(str(wheel))
    where = _ok(_run([python, "-c", "import connector; print(connector.__file__)"], cwd=work))
    assert Path(where.strip()).is_relative_to(venv), "the installed package, not the checkout"

    assert _ok(_run([segsync, "--version"], cwd=work)).strip() == "segsync, version 0.1.0"

    # Without the sandbox extra: one line that says how to get it.
    demo = _run([segsync, "demo", "--accounts", "20"], cwd=work)
    assert demo.returncode == 2
    assert demo.stdout == ""
    assert len(demo.stderr.splitlines()) == 1
    assert "pip install 'segsync[sandbox]'" in demo.stderr

    # init → a project whose config and mappings validate.
    out = _ok(_run([segsync, "init", "project"], cwd=work))
    assert "config.toml" in out and "mappings/accounts.toml" in out
    validated = _ok(_run([segsync, "validate", "--config", "project/config.toml"], cwd=work))
    assert "ok  project/config.toml: 2 connections, 4 jobs" in validated
    assert "ok  project/mappings/accounts.toml: account" in validated

    pip_install(f"{wheel}[sandbox]")

    # The demo, end to end.
    out = _ok(_run([segsync, "demo", "--accounts", "40", "--dir", "demo"], cwd=work, timeout=180))
    assert "1. Full sync" in out and "3. What landed in the CRMs" in out
    assert (work / "demo" / "segsync.db").is_file()

    # The sandboxes on their own, and a config for them used from another directory.
    with subprocess.Popen(
        [segsync, "sandbox", "--accounts", "30", "--config-out", "sbx/config.toml", *JSON],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as sandbox:
        try:
            first: list[str] = []
            reader = threading.Thread(
                target=lambda: first.append(sandbox.stdout.readline() if sandbox.stdout else "")
            )
            reader.start()
            reader.join(timeout=120)
            assert first and first[0], "the sandbox printed its credentials"
            assert set(json.loads(first[0])) == {"salesforce", "hubspot"}
            config = work / "sbx" / "config.toml"
            elsewhere = work / "elsewhere"
            elsewhere.mkdir()
            out = _ok(_run([segsync, "provision", "--config", config], cwd=elsewhere))
            assert "Segsync_Tier__c" in out and "segsync_tier" in out
            out = _ok(_run([segsync, "sync", "--config", config, *JSON], cwd=elsewhere))
            runs = json.loads(out)["runs"]
            # The sandbox's config reads the deals too ([sync] deals = true).
            assert {(r["crm"], r["object"]) for r in runs} == {
                (crm, obj)
                for crm in ("salesforce", "hubspot")
                for obj in ("account", "contact", "deal")
            }
            assert all(r["status"] == "succeeded" for r in runs)
            assert [r["read"] for r in runs if r["object"] == "account"] == [30, 30]
            # Parity of the two sandboxes, matched and compared by the installed package.
            out = _ok(_run([segsync, "parity", "--config", config, *JSON], cwd=elsewhere))
            accounts = {o["object"]: o for o in json.loads(out)["objects"]}["account"]
            assert accounts["compared"] == accounts["matched"] > 20
            # The store is next to the config it belongs to.
            assert (work / "sbx" / "segsync.db").is_file()
            assert not (elsewhere / "segsync.db").exists()
        finally:
            sandbox.send_signal(signal.SIGINT)
            _, stderr = sandbox.communicate(timeout=60)
    assert sandbox.returncode == 0, stderr
    assert "Traceback" not in stderr
