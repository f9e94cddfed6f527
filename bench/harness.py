"""Shared plumbing for the sync benchmarks: a sandbox process, config tuning, one sync.

Not a benchmark itself. The sandboxes run in a child process
(:mod:`bench.sandbox_proc`), so the connector measured here (in this process,
or in a ``segsync sync`` child) is measured alone. Syncs go through the
production path: ``open_context(config)`` → adapters → :class:`Runner`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from connector.commands.crm import open_context  # noqa: E402
from connector.crm.base import ObjectName  # noqa: E402
from connector.sync.provision import output_specs  # noqa: E402
from connector.sync.runner import Runner, RunResult  # noqa: E402

PYTHON = sys.executable


class SandboxProcess:
    """``bench/sandbox_proc.py`` as a child process, with its JSON command channel."""

    def __init__(self, workdir: Path, accounts: int, **options: Any) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "config.toml"
        self.store = workdir / "state.db"
        for stale in (self.store, Path(f"{self.store}-wal"), Path(f"{self.store}-shm")):
            stale.unlink(missing_ok=True)
        args = [
            PYTHON,
            str(ROOT / "bench" / "sandbox_proc.py"),
            "--accounts",
            str(accounts),
            "--config-out",
            str(self.config),
            "--store-url",
            f"sqlite:///{self.store}",
        ]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError("the sandbox process died while loading")
        self.ready: dict[str, Any] = json.loads(line)

    def call(self, op: str, **args: Any) -> Any:
        """Send one command; its result (RuntimeError when the sandbox reports a failure)."""
        if self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError("no channel")
        self.proc.stdin.write(json.dumps({"op": op, **args}, default=list) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"sandbox {op}: {reply.get('error')}")
        return reply.get("result")

    def stop(self) -> None:
        """Stop the child and wait for it."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self.call("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def tune_config(
    source: Path,
    target: Path,
    *,
    salesforce: Mapping[str, Any] | None = None,
    hubspot: Mapping[str, Any] | None = None,
    sync: Mapping[str, Any] | None = None,
) -> Path:
    """A copy of the sandbox's config with some settings changed (one level of tables)."""
    doc = tomllib.loads(source.read_text(encoding="utf-8"))
    doc["connections"]["salesforce"].update(salesforce or {})
    doc["connections"]["hubspot"].update(hubspot or {})
    doc.setdefault("sync", {}).update(sync or {})
    lines: list[str] = []
    for name, conn in doc["connections"].items():
        lines.append(f"[connections.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in conn.items()]
        lines.append("")
    for table in ("store", "sync"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in doc.get(table, {}).items()]
        lines.append("")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    return target


def provision(config: Path, crm: str) -> None:
    """Create the output fields in one CRM (through the adapter, as `segsync provision`)."""
    os.chdir(ROOT)
    with open_context(config, crm=crm) as ctx:
        adapter = next(iter(ctx.adapters.values()))
        objects: tuple[ObjectName, ...] = ("account", "contact")
        for obj in objects:
            engine = ctx.engines.get(obj)
            if engine is None:
                continue
            parent = ctx.engines.get("account") if obj == "contact" else None
            outputs = output_specs(engine, crm, parent)
            report = adapter.provision(obj, outputs, engine.input_fields(crm), False)
            if report.problems:
                raise RuntimeError(f"provisioning {crm} {obj}: {report.problems}")
            # As `segsync provision` does: the runs then know these fields are segsync's.
            ctx.store.record_owned(adapter.connection, obj, [o.name for o in outputs])


def sync(
    config: Path,
    crm: str,
    obj: str = "account",
    *,
    full: bool = False,
    dry_run: bool = False,
    force: bool = True,
    write_chunk: int | None = None,
) -> RunResult:
    """One cycle through the production wiring; the RunResult.

    ``write_chunk`` overrides the runner's writes per store transaction (to try
    a proposed change; None keeps the shipped value).
    """
    os.chdir(ROOT)
    with open_context(config, crm=crm) as ctx:
        (job,) = ctx.jobs(crm, obj)
        runner = (
            Runner(ctx.store, ctx.settings.sync, write_chunk=write_chunk)
            if write_chunk
            else Runner(ctx.store, ctx.settings.sync)
        )
        return runner.run(job, full=full, dry_run=dry_run, force=force)


def result_row(result: RunResult) -> dict[str, Any]:
    """The figures a benchmark reports from one RunResult."""
    c = result.summary.counts
    return {
        "status": result.status,
        "full": result.full,
        "read": c.read,
        "changed": c.changed,
        "written": result.written,
        "failed": result.failed,
        "api_calls": result.api_calls,
        "minimum_calls": result.minimum_calls,
        "read_floor": result.read_floor_calls,
        "outside": result.outside,
        "rereads": result.rereads,
        "echoes": result.echoes,
        "ratio": round(result.api_calls / result.minimum_calls, 3)
        if result.minimum_calls
        else None,
        "seconds": round(result.seconds, 2),
    }


def save(name: str, payload: Any) -> Path:
    """Write a JSON result under bench/out/ (gitignored)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return path


def stamp() -> dict[str, str]:
    """UTC now and the code measured: the commit, plus any uncommitted connector files."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--short", "--", "connector"),
    }
