"""HubSpot throughput at the rate limit: wall time ÷ the rate-limit floor, 429 share.

The portal allows 190 requests / 10 s (Professional / Enterprise) and 5
searches / s; every call takes 80–150 ms (faults ``latency_ms=80,
jitter_ms=70``). Steps, on ``--accounts`` companies:

1. Seed (unthrottled, no latency, not measured): a full sync writes every
   company's outputs, and an incremental run absorbs the echo of those writes.
2. ``--changed`` of the companies get an input edit that must change outputs.
   **Measured A**: a full sync at the limit (list every company, write the changed).
3. Absorb A's echo (unthrottled), edit another ``--changed``.
   **Measured B**: an incremental sync at the limit (search the edited, write them).

The floor is ``calls ÷ 19 per second`` (docs/crm-apis.md#minimum-calls); a search-aware floor
also counts searches against their own 5 / s; the minimum-plan floor is the time the
issue's minimum calls take at those limits, whatever way the run chose to read: list pages
of 100 for every record when full, search pages of 200 for the records changed outside
segsync when incremental (``RunResult.outside``), batch updates of 100 for those whose
outputs change, searches at 5 / s beside the rest at 19 / s. The re-read before each write
chunk (``sync/recheck.py``) is not in it.

    .venv/bin/python bench/throughput_bench.py [--accounts 100000] [--changed 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OUT,
    SandboxProcess,
    provision,
    result_row,
    save,
    stamp,
    sync,
    tune_config,
)

LIMIT = 190
SEARCH_LIMIT = 5
LATENCY = {"latency_ms": 80, "jitter_ms": 70, "seed": 1}
FAST = 1_000_000


def timeline_stats(rows: list[list[Any]], wall: float) -> dict[str, Any]:
    """Where the wall time went, from the sandbox's request log: per class of call
    its count, span, rate over that span and 429s; and how full each limit was kept
    (answered calls ÷ what the limit allows over the run's wall time)."""
    classes: dict[str, dict[str, Any]] = {}
    for t, cls, status in rows:
        c = classes.setdefault(cls, {"calls": 0, "span": [t, t], "429": 0})
        c["calls"] += 1
        c["span"][1] = t
        c["429"] += status == 429
    for c in classes.values():
        length = c["span"][1] - c["span"][0]
        c["per_second"] = round(c["calls"] / length, 2) if length > 0 else None
    ok_search = sum(1 for _t, cls, st in rows if cls == "search" and st != 429)
    ok_other = sum(1 for _t, cls, st in rows if cls != "search" and st != 429)
    # Seconds in which no answered non-search call was logged: the ten-second
    # window's idle time.
    busy = {int(t) for t, cls, st in rows if cls != "search" and st != 429}
    span = int(rows[-1][0]) + 1 if rows else 0
    return {
        "classes": classes,
        "window_use": round(ok_other / max(1e-9, wall * LIMIT / 10), 3),
        "search_use": round(ok_search / max(1e-9, wall * SEARCH_LIMIT), 3) if ok_search else 0,
        "idle_seconds_non_search": sorted(set(range(span)) - busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=4, help="max_concurrency (default 4)")
    args = parser.parse_args()

    report: dict[str, Any] = {"when": stamp(), "args": vars(args), "runs": []}
    work = OUT / "throughput"
    with SandboxProcess(work, args.accounts, only="hubspot", search_per_second=SEARCH_LIMIT) as sb:
        print(f"sandbox loaded {args.accounts:,} companies in {sb.ready['load_seconds']} s")
        # No lookback: runs follow each other within seconds here, and the 300 s
        # default would re-read everything the previous run wrote.
        at_limit = tune_config(
            sb.config,
            work / "at_limit.toml",
            hubspot={
                "requests_per_10s": LIMIT,
                "search_per_second": SEARCH_LIMIT,
                "max_concurrency": args.concurrency,
            },
            sync={"lookback_seconds": 0},
        )
        fast = tune_config(
            sb.config,
            work / "fast.toml",
            hubspot={"requests_per_10s": FAST, "search_per_second": FAST},
            sync={"lookback_seconds": 0},
        )
        provision(fast, "hubspot")

        def unthrottled(full: bool) -> None:
            sb.call("faults", crm="hubspot", faults={})
            sb.call("limits", requests_per_10s=FAST, search_per_second=FAST)
            started = time.monotonic()
            result = sync(fast, "hubspot", full=full)
            print(
                f"  (seed {'full' if full else 'incremental'}: {result_row(result)}, "
                f"{time.monotonic() - started:.0f} s)",
                flush=True,
            )

        def measured(label: str, full: bool, edited: int) -> None:
            sb.call("limits", requests_per_10s=LIMIT, search_per_second=SEARCH_LIMIT)
            sb.call("faults", crm="hubspot", faults=LATENCY)
            sb.call("clear")
            cpu = time.process_time()
            result = sync(at_limit, "hubspot", full=full)
            cpu = time.process_time() - cpu
            summary = sb.call("summary", crm="hubspot")
            timeline = sb.call("timeline", crm="hubspot")
            sb.call("faults", crm="hubspot", faults={})
            calls = result.api_calls
            kinds = summary["kinds"]
            searches = kinds.get("search", 0)
            floor = calls / (LIMIT / 10)
            floor_search = max((calls - searches) / (LIMIT / 10), searches / SEARCH_LIMIT)
            # The floor of the minimum plan (list pages of 100 when full, search
            # pages of 200 when incremental, batches of 100), searches at their own
            # 5 / s: comparable across ways of reading.
            # The floor: every record when full, else the E records changed outside
            # segsync since the last run (``outside``, not what the run chose to re-read);
            # the C whose outputs change written. The re-reads before writing are not in it.
            outside, written = result.outside, result.summary.counts.changed
            min_searches = 0 if full else -(-outside // 200)
            min_other = (-(-outside // 100) if full else 0) + -(-written // 100)
            floor_minimum = max(min_other / (LIMIT / 10), min_searches / SEARCH_LIMIT)
            throttled = summary["statuses"].get("429", 0)
            row = {
                "run": label,
                "edited": edited,
                **result_row(result),
                "calls_by_kind": kinds,
                "phase_spans_seconds": summary["kind_spans"],
                "statuses": summary["statuses"],
                "floor_seconds": round(floor, 1),
                "wall_over_floor": round(result.seconds / floor, 3),
                "search_aware_floor_seconds": round(floor_search, 1),
                "wall_over_search_aware_floor": round(result.seconds / floor_search, 3),
                "minimum_plan_floor_seconds": round(floor_minimum, 1),
                "wall_over_minimum_plan_floor": round(result.seconds / floor_minimum, 3),
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                "connector_cpu_seconds": round(cpu, 1),
                "429_share": round(throttled / max(1, summary["requests"]), 4),
                "records_per_second": round(result.summary.counts.read / result.seconds, 1),
                "timeline": timeline_stats(timeline, result.seconds),
                "timeline_raw": timeline,
            }
            report["runs"].append(row)
            print(
                f"{label}: read {row['read']:,} written {row['written']:,} calls {calls:,} "
                f"{kinds}\n  wall {result.seconds:.1f} s, floor {floor:.1f} s → "
                f"{row['wall_over_floor']}; search-aware floor {floor_search:.1f} s → "
                f"{row['wall_over_search_aware_floor']}; minimum-plan floor "
                f"{floor_minimum:.1f} s → {row['wall_over_minimum_plan_floor']}; 429s {throttled} "
                f"({row['429_share']:.2%}); connector CPU {cpu:.1f} s, load {row['loadavg']}\n"
                f"  phases (s from first call): {summary['kind_spans']}\n"
                f"  timeline: { {k: v for k, v in row['timeline'].items() if k != 'classes'} }\n"
                + "".join(f"    {k}: {v}\n" for k, v in row["timeline"]["classes"].items()),
                flush=True,
            )

        unthrottled(full=True)
        unthrottled(full=False)
        edited = sb.call("mutate", crm="hubspot", share=args.changed, seed=11)
        measured(f"A: full sync, {args.changed:.0%} changed", True, edited["edited"])
        unthrottled(full=False)
        edited = sb.call("mutate", crm="hubspot", share=args.changed, seed=12)
        measured(f"B: incremental sync, {args.changed:.0%} changed", False, edited["edited"])
        report["check"] = sb.call("check", crm="hubspot")
        print(f"final state check: {report['check']}")
    path = save(f"throughput-{args.accounts}", report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
