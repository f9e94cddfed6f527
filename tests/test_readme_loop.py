"""README's measure-and-refine loop on the sandbox data: every command it shows runs.

The block after ``<!-- refine-loop -->`` is run line by line with bash, in
a temporary directory, with ``segsync`` from this environment. The one line
that starts ``segsync sandbox`` (a server that runs until stopped) is
replaced by the config the test's own sandboxes write, as ``--config-out``
would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from segsync_sandbox.launcher import Sandboxes

ROOT = Path(__file__).resolve().parent.parent


def _block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```sh\n", text.index("<!-- refine-loop -->")) + len("```sh\n")
    return [line for line in text[start : text.index("```", start)].splitlines() if line]


def test_every_command_of_the_refine_loop_runs(fresh_sandboxes: Sandboxes, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SEGSYNC_CONFIG", None)
    cwd = tmp_path
    outputs: dict[str, str] = {}
    lines = _block()
    assert sum(line.startswith("segsync ") for line in lines) >= 9
    for line in lines:
        if line.startswith("segsync sandbox "):
            target = cwd / line.split("--config-out ")[1].split()[0]
            fresh_sandboxes.write_config(
                target, store_url=f"sqlite:///{tmp_path / 'state.db'}", deals=True
            )
            continue
        if line.startswith("cd "):
            cwd = cwd / line.split()[1]
            continue
        done = subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        outputs[line.split("#")[0].strip()] = done.stdout

    # The edit did what the README says: the weak rule gone, its weight moved, a new version.
    shipped = (cwd / "mappings" / "accounts.toml").read_text(encoding="utf-8")
    assert 'label = "marketing automation"' not in shipped
    assert 'points = 30, label = "uses Salesforce"' in shipped
    assert 'version = "2026-12-a"' in shipped
    report = next(v for k, v in outputs.items() if k.startswith("segsync outcomes"))
    assert "Rule lift" in report and "marketing automation" in report
    backtest = next(v for k, v in outputs.items() if k.startswith("segsync diff"))
    assert "Backtest on" in backtest and "ROC AUC of the tier" in backtest
    assert "(live: 200 accounts" in backtest
