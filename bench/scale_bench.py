"""Scale: peak RSS and wall time of a full dry-run cycle, at several sizes.

For each size the sandbox process loads that many accounts (only the CRM
measured), output fields are provisioned, and then a separate
``segsync sync --dry-run --full`` process runs under ``/usr/bin/time -v``:
its peak RSS is the connector's alone (the sandbox lives in another process).
No latency and no rate limit here: this measures memory and CPU, not the API.
Salesforce uses the shipped settings (Bulk 2.0 pull from 50,000 records);
HubSpot walks the list endpoint (pacing raised out of the way).

    .venv/bin/python bench/scale_bench.py [--crm salesforce] [--sizes 100000,300000,1000000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, PYTHON, ROOT, SandboxProcess, provision, save, stamp, tune_config

FAST = 1_000_000  # the most a connection setting takes


def measure(config: Path, crm: str) -> dict[str, Any]:
    """Run the dry-run cycle in a child under /usr/bin/time -v; its figures."""
    command = [
        "/usr/bin/time",
        "-v",
        PYTHON,
        "-m",
        "connector",
        "sync",
        "--config",
        str(config),
        "--crm",
        crm,
        "--object",
        "account",
        "--dry-run",
        "--full",
        "--format",
        "json",
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    user = re.search(r"User time \(seconds\): ([\d.]+)", done.stderr)
    system = re.search(r"System time \(seconds\): ([\d.]+)", done.stderr)
    try:
        run = json.loads(done.stdout)["runs"][0]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"dry run failed ({done.returncode}): {done.stderr[-2000:]}") from None
    return {
        "exit": done.returncode,
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "process_wall_seconds": round(wall, 1),
        "cpu_seconds": round(float(user.group(1)) + float(system.group(1)), 1)
        if user and system
        else None,
        "cycle_seconds": run["seconds"],
        "read": run["read"],
        "changed": run["changed"],
        "api_calls": run["api_calls"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=["salesforce", "hubspot"], default="salesforce")
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument(
        "--stamp-group",
        type=int,
        default=200,
        help="accounts per modstamp in the sandbox data (200: as saved by 200-record "
        "transactions; 0: all share one stamp, the worst case)",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "rows": []}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        work = OUT / f"scale-{args.crm}-{size}"
        with SandboxProcess(
            work,
            size,
            only=args.crm,
            requests_per_10s=FAST,
            search_per_second=FAST,
            stamp_group=args.stamp_group,
        ) as sb:
            print(f"{size:,} accounts loaded in {sb.ready['load_seconds']} s", flush=True)
            config = tune_config(
                sb.config,
                work / "scale.toml",
                hubspot={"requests_per_10s": FAST, "search_per_second": FAST},
            )
            provision(config, args.crm)
            row = {"crm": args.crm, "accounts": size, **measure(config, args.crm)}
            row["records_per_second"] = round(row["read"] / row["cycle_seconds"])
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    path = save(f"scale-{args.crm}-group{args.stamp_group}", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
