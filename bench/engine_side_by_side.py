"""Two versions of the engine path timed in turn: each tree's own engine_bench, alternating.

On a shared machine one version's whole bench run, then the other's, meet
different loads (BENCHMARKS.md §4: the same code moved by a quarter between
two such runs). This runs short measurements of each tree in turn, in a
fresh process each, for several rounds, so both meet the same load:

    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python bench/engine_side_by_side.py /tmp/before . --rounds 3

Each tree is imported from its own checkout (its ``bench/engine_bench.py``
and ``connector``); the rows are ``evaluate``, the sync path (``make bench``'s)
and the runner's per-record loop, CPU records / s, best of ``--repeat`` passes
over ``--records`` records in pages of 2,000. Both trees need the bench's
``runner_path`` (commit 2b1d338 or later).
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path


def child(root: str, records: int, repeat: int) -> None:
    """Time one tree's rows and print them on one line (run in a fresh process)."""
    sys.path.insert(0, str(Path(root) / "bench"))
    sys.path.insert(0, root)
    import engine_bench as eb  # the tree's own bench and, through it, its connector

    from connector import templates
    from connector.engine import compile_mapping
    from connector.mapping import load_mapping

    mapping = str(templates.ACCOUNTS)
    state = compile_mapping(load_mapping(mapping))
    sf = eb.salesforce_records(records, 7)
    data = {"salesforce": sf, "hubspot": eb.hubspot_records(sf, 7)}
    out = []
    for crm in eb.CRMS:
        rows = eb.with_state(state, data[crm], crm, 7, 0.10, 0.05)
        stored = {i: state.assign(f, crm, eb.NOW).due_at for i, f, _ in rows}
        bodies = (
            ("evaluate", eb.evaluate_only),
            ("sync path", eb.sync_path),
            ("runner loop", lambda e, c, s=stored: eb.runner_path(e, c, stored_due=s)),
        )
        for name, body in bodies:
            best = float("inf")
            for _ in range(repeat):
                loop = body(compile_mapping(load_mapping(mapping)), crm)
                gc.collect()
                gc.disable()
                try:
                    cpu = time.process_time()
                    for i in range(0, len(rows), 2_000):
                        loop(rows[i : i + 2_000])
                    best = min(best, time.process_time() - cpu)
                finally:
                    gc.enable()
            out.append(f"{crm} {name} {len(rows) / best:,.0f}")
    print(" | ".join(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="checkouts to compare, timed in this order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.records, args.repeat)
        return
    if not args.trees:
        parser.error("name the checkouts to compare")
    for n in range(1, args.rounds + 1):
        for tree in args.trees:
            root = str(Path(tree).resolve())
            load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
            print(f"round {n}, {root} (load {load}):", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    root,
                    "--records",
                    str(args.records),
                    "--repeat",
                    str(args.repeat),
                ],
                check=True,
            )


if __name__ == "__main__":
    main()
