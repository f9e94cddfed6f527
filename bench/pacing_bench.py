"""HubSpot pacing alone: how close the calls come to the portal's limits, and how many 429s.

The throughput bench (``throughput_bench.py``) measures whole syncs, so on a
loaded machine its wall time is the connector's CPU. This one makes only the
calls, through the production session (``HubSpotSession.call``: pacing,
retries, raw JSON), against the sandbox at 190 requests / 10 s and 5
searches / s, every call 80–150 ms (``latency_ms=80, jitter_ms=70``):

- ``search``: every company read by ``hs_object_id`` keyset searches, three id
  ranges at once (as a partitioned pull reads them);
- ``batch``: every company read by batch reads of 100, ``--threads`` at once
  (as the re-read before writing and the writes go);
- ``both``: the two at once (each on its own limit: neither should slow the other).

Each reports its calls, wall time, the rate reached against the limit and the
429s. Floors: searches ÷ 5 / s; batch calls from an empty window, 190 at once
then 190 per 10 s (``calls ÷ 19 / s`` is given too).

    .venv/bin/python bench/pacing_bench.py [--accounts 20000] [--threads 8]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, SandboxProcess, save, stamp

from connector.commands.crm import open_context
from connector.crm.concurrent import merged
from connector.crm.hubspot.search import search_by_id

LIMIT = 190
SEARCH_LIMIT = 5
LATENCY = {"latency_ms": 80, "jitter_ms": 70, "seed": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8, help="batch reads in flight")
    args = parser.parse_args()
    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    work = OUT / "pacing"
    with SandboxProcess(work, args.accounts, only="hubspot", search_per_second=SEARCH_LIMIT) as sb:
        ids = sorted(int(i) for i in sb.call("ids", crm="hubspot", share=1.0)["ids"])
        cuts = [0, ids[len(ids) // 3], ids[2 * len(ids) // 3], None]
        chunks = [[str(i) for i in ids[k : k + 100]] for k in range(0, len(ids), 100)]

        def searches(session: Any) -> int:
            sources = [
                search_by_id(session, "companies", ["name"], [], above=a or 0, upto=b)
                for a, b in pairwise(cuts)
            ]
            return sum(len(page) for page in merged(sources, name="bench-search"))

        def batches(session: Any) -> int:
            def read(chunk: list[str]) -> int:
                request = {"inputs": [{"id": i} for i in chunk], "properties": ["name"]}
                result = session.call(
                    "batch read", session.batch["companies"].read_with_http_info, request, raw=True
                )
                return len(result.get("results") or [])

            with ThreadPoolExecutor(args.threads) as pool:
                return sum(pool.map(read, chunks))

        def measure(label: str, *work_items: Any) -> None:
            sb.call("limits", requests_per_10s=LIMIT, search_per_second=SEARCH_LIMIT)
            sb.call("faults", crm="hubspot", faults=LATENCY)
            sb.call("clear")
            # A new session each time (its limiters empty, as the portal's after the clear).
            with open_context(sb.config, crm="hubspot") as ctx:
                adapter: Any = next(iter(ctx.adapters.values()))
                session = adapter._session  # the adapter's own
                cpu, started = time.process_time(), time.monotonic()
                ends: dict[str, float] = {}
                counts: dict[str, int] = {}

                def run(fn: Any) -> None:
                    counts[fn.__name__] = fn(session)
                    ends[fn.__name__] = time.monotonic() - started

                threads = [threading.Thread(target=run, args=(fn,)) for fn in work_items]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.monotonic() - started
                cpu = time.process_time() - cpu
            summary = sb.call("summary", crm="hubspot")
            sb.call("faults", crm="hubspot", faults={})
            kinds = summary["kinds"]
            refused = summary["statuses"].get("429", 0)
            row: dict[str, Any] = {
                "run": label,
                "wall_seconds": round(wall, 2),
                "connector_cpu_seconds": round(cpu, 2),
                "records": counts,
                "ends_seconds": {k: round(v, 2) for k, v in ends.items()},
                "calls": kinds,
                "429": refused,
                "429_share": round(refused / max(1, summary["requests"]), 4),
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            }
            if "searches" in ends:
                n = kinds.get("search", 0)
                row["search_per_second"] = round(n / ends["searches"], 2)
                row["search_floor_seconds"] = round(n / SEARCH_LIMIT, 1)
            if "batches" in ends:
                n = kinds.get("batch.read", 0)
                row["batch_per_second"] = round(n / ends["batches"], 2)
                # From an empty window: 190 at once, then 190 every ten seconds.
                row["batch_window_floor_seconds"] = max(0, (n - 1) // LIMIT) * 10.0
                row["batch_calls_over_19_per_second"] = round(n / (LIMIT / 10), 1)
            report["runs"].append(row)
            print(row, flush=True)

        measure("search: 3 id ranges at once", searches)
        measure(f"batch: {args.threads} batch reads at once", batches)
        measure("both at once", searches, batches)
    path = save(f"pacing-{args.accounts}", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
