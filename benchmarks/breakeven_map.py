"""How long pricing a whole 2-D break-even map from a fitted cost model takes.

What: for each exercise, ``profiler.lba.breakeven.ratio_map`` -- its default 40 x 40 grid of
two parameters (k x n for k-task routing, k x l for debugging and evolution), the others at
their defaults, both variants and every role priced in closed form by
``profiler.lba.pricing.FittedPricing`` -- timed in-process with ``time.perf_counter``, median of
five after one untimed call, with and without a KV cache, and in makespan under a parallel
schedule on 4 devices (batches up to the fit's largest measured) at a load of 1 and of 16
inputs (``breakeven --schedule parallel --devices 4 --set load=16``: the k-task specialists
scheduled exactly per cell, evolution summed over the searches still running). The fit is the
first argument, or ``fits/gpt2--*.json``; the fits of the same family beside it give the k-task's
size law, as ``python -m profiler breakeven`` does.

Why: the break-even maps and the report price thousands of programs, some of millions of
calls (global mutation at k = 40) or of calls a million tokens long; that must stay
interactive.

Target (from the issue): under 1 s per map of at least 40 x 40 points.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from profiler.cli.breakeven import fitted_pricing
from profiler.lba.breakeven import ratio_map
from profiler.lba.exercises import EXERCISES
from profiler.lba.schedule import SEQUENTIAL, Schedule

TARGET_S = 1.0


PARALLEL = Schedule("parallel", devices=4, measure="makespan")
CASES = [("cache", True, SEQUENTIAL, 1), ("no cache", False, SEQUENTIAL, 1), ("makespan T=1", True, PARALLEL, 1),
         ("makespan T=16", True, PARALLEL, 16)]


def time_map(exercise, pricing, schedule, load) -> tuple[float, dict]:
    params = exercise.defaults() | {"load": load}
    result = ratio_map(exercise, params, pricing, schedule)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        ratio_map(exercise, params, pricing, schedule)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    fit = Path(sys.argv[1]) if len(sys.argv) > 1 else next(Path("fits").glob("**/gpt2--*.json"))
    rows = []
    print(f"ratio_map from {fit}: median of 5")
    print(f"{'exercise':<10} {'priced':<14} {'points':>7} {'map s':>8} {'ratio min':>10} {'ratio max':>10}")
    for case, cache, schedule, load in CASES:
        pricing = fitted_pricing([fit], [], cache=cache, metric="latency_s")
        for exercise in EXERCISES.values():
            seconds, result = time_map(exercise, pricing, schedule, load)
            ratio = result["ratio"]
            rows.append({"exercise": exercise.name, "priced": case, "cache": cache, "points": int(ratio.size),
                         "map_s": seconds, "ratio_min": float(np.nanmin(ratio)), "ratio_max": float(np.nanmax(ratio))})
            row = rows[-1]
            print(f"{row['exercise']:<10} {case:<14} {row['points']:>7} {seconds:>8.4f} "
                  f"{row['ratio_min']:>10.3g} {row['ratio_max']:>10.3g}")
    worst = max(row["map_s"] for row in rows)
    met = worst < TARGET_S
    print(f"every map under {TARGET_S:g} s: {'met' if met else 'NOT met'} (slowest {worst:.3f} s)")
    print(json.dumps({"benchmark": "breakeven_map", "fit": str(fit), "rows": rows, "slowest_s": worst, "met": met}))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
