"""Does taking a point's repeats in three visits make gpt2's default run fit better than in fewer? Side by side.

What: ``--pairs`` pairs (default 3) of ``python -m profiler run --model gpt2`` with its defaults, run in this
process (``profiler.cli.main.main``, console output dropped, ``--out`` and ``--fits`` in a temporary folder),
alternating: a run with the planner as it is (``VISITS`` = 3 in ``plan`` and ``pilot``: where the range of lengths
fits so, a point whose pass costs at most 1% of the budget is visited three times, a round apart, its 3 repeats as 1,
1 and 1, and a costlier one where the range fits with that too), then one with ``VISITS`` = ``--against`` (2: its
repeats as 2 and 1, as before; 1: back to back), the order swapped every pair so a drift in the machine's speed touches
both alike. Per run: the lengths prefill reached, each
latency curve's held-out error (leave-one-length-out MAPE, the figure the issue sets at 3% for gpt2) for prefill,
decode and forward, and the extend surface's, and how far the reference passes were off their median on average (the
machine's own variation, the least a held-out error can be on that run); per arm, the median of each over its runs.
Where points were visited more than once, how far a point's visits' medians are apart (the median over those points
of the largest over the smallest, less 1) beside how far apart its repeats are within a visit (median relative step
between consecutive repeats): the spell a visit can meet, against the noise a repeat meets.

Why: each visit costs a warm-up and a reference pass (and, for decode and extend, a cache's fill) that a budget would
otherwise spend on lengths or repeats; a third pays only if a slow spell covering a whole visit is what the held-out
error is made of (split 2 and 1, the visit of two sets a point's median).

Run: ``.venv/bin/python benchmarks/visits.py [--pairs N] [--against 1|2]`` (about 2 minutes a pair on 2 cores).
Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
from default_run import HELD_OUT, held_out_figures, held_out_run

import profiler.measure.pilot as pilot
import profiler.measure.plan as plan


def _visit_spread(samples) -> tuple[float | None, float | None]:
    """(median over points visited more than once of their visits' largest median over their smallest, less 1; median
    relative step between consecutive repeats within a visit); None where no point was visited more than once."""
    timed = samples[samples.phase != "generate"].reset_index(drop=True)
    keys = timed[["phase", "batch", "n_ctx", "n_new"]]
    runs = (keys != keys.shift()).any(axis=1).cumsum()
    visits: dict[tuple, list[np.ndarray]] = {}
    for _, rows in timed.groupby(runs):
        visits.setdefault(tuple(rows.iloc[0][["phase", "batch", "n_ctx", "n_new"]]), []).append(rows.latency_s.values)
    apart = [max(medians) / min(medians) - 1 for medians in
             ([np.median(visit) for visit in point] for point in visits.values() if len(point) > 1)]
    steps = [abs(later / earlier - 1) for point in visits.values() for visit in point
             for earlier, later in zip(visit, visit[1:])]
    return (statistics.median(apart) if apart else None), (statistics.median(steps) if steps else None)


def _one_run(visits: int) -> dict:
    plan.VISITS = pilot.VISITS = visits
    row = held_out_run("gpt2")
    samples = row.pop("samples")
    row["visits"] = visits
    row["visits_apart"], row["repeats_apart"] = _visit_spread(samples)
    return row


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, choices=range(1, 11), metavar="N", help="1 to 10 (default 3)")
    parser.add_argument("--against", type=int, default=2, choices=(1, 2),
                        help="the visits a point is taken in by the other arm (default 2)")
    args = parser.parse_args()
    arms = (plan.VISITS, args.against)
    runs = []
    for pair in range(args.pairs):
        for visits in (arms if pair % 2 == 0 else arms[::-1]):
            row = _one_run(visits)
            runs.append(row)
            spread = ("" if row["visits_apart"] is None else
                      f"; visits {row['visits_apart']:.1%} apart, repeats {row['repeats_apart']:.1%}")
            machine = ("" if row["reference_spread"] is None else
                       f"; reference passes {row['reference_spread']:.1%} off")
            print(f"pair {pair + 1}, {visits} visit(s): prefill to n={row['prefill_lengths'][-1]} "
                  f"({len(row['prefill_lengths'])} lengths); held-out {held_out_figures(row)}{spread}{machine}",
                  flush=True)
    summary = {}
    for visits in arms:
        arm = [row for row in runs if row["visits"] == visits]
        summary[visits] = {name: statistics.median(row[f"{name}_held_out"] for row in arm)
                           for name in HELD_OUT if all(row[f"{name}_held_out"] is not None for row in arm)}
        print(f"{visits} visit(s), median of {len(arm)} runs: " + ", ".join(f"{name} {value:.1%}"
                                                                            for name, value in summary[visits].items()))
    print(json.dumps({"benchmark": "visits", "runs": runs, "median_held_out": summary}, default=float))


if __name__ == "__main__":
    main_benchmark()
