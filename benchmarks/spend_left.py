"""Does spending the time the plan left on further visits make a default run fit better? Side by side.

What: ``--pairs`` pairs (default 2) of ``python -m profiler run --model M`` (``--model``, default gpt2) with its
defaults, run in this process (``default_run.held_out_run``), alternating: a run with the sweep as it is (the time the
plan left spent on further visits to the points measured, ``Sweep._spend_left``), then one with that step off (a run
that ends where its plan ends, as before), the order swapped every pair so a drift in the machine's speed touches both
alike. Per run: the sweep's seconds, its timed passes, the lengths prefill reached, and each latency curve's held-out
error (leave-one-length-out MAPE) for prefill, decode and forward, and the extend surface's; per arm, the median of
each over its runs.

Why: on an H200, gpt2's default run ended its sweep at 21 s of a 34.7 s budget with every point measured, each in one
or two short visits, and its passes read either about 6 or about 11 ms in spells of the host
(``benchmarks/gpu_two_speeds.py``), so a point's median was whichever spell its visits met (held-out errors of 21 to
24%). On this 2-core CPU a default run spends its budget on the plan itself, so the step should change nothing here.

Run: ``.venv/bin/python benchmarks/spend_left.py [--pairs N] [--model M]`` (about 2 minutes a pair for gpt2 on 2
cores). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics

from default_run import HELD_OUT, held_out_figures, held_out_run

from profiler.measure.sweep import Sweep

ARMS = ("spent", "plan only")


def _one_run(arm: str, model: str) -> dict:
    spend_left = Sweep._spend_left
    if arm == "plan only":
        Sweep._spend_left = lambda self, started: None
    try:
        row = held_out_run(model)
    finally:
        Sweep._spend_left = spend_left
    del row["samples"]
    return row | {"arm": arm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2, choices=range(1, 11), metavar="N", help="1 to 10 (default 2)")
    parser.add_argument("--model", default="gpt2", help="a model name or folder, as run takes it (default gpt2)")
    args = parser.parse_args()
    runs = []
    for pair in range(args.pairs):
        for arm in (ARMS if pair % 2 == 0 else ARMS[::-1]):
            row = _one_run(arm, args.model)
            runs.append(row)
            print(f"pair {pair + 1}, {arm}: sweep {row['elapsed_s']:.1f} s, {row['passes']} passes, prefill to "
                  f"n={row['prefill_lengths'][-1]}; held-out {held_out_figures(row)}", flush=True)
    summary = {}
    for arm in ARMS:
        rows = [row for row in runs if row["arm"] == arm]
        summary[arm] = {name: statistics.median(row[f"{name}_held_out"] for row in rows)
                        for name in HELD_OUT if all(row[f"{name}_held_out"] is not None for row in rows)}
        summary[arm]["elapsed_s"] = statistics.median(row["elapsed_s"] for row in rows)
        print(f"{arm}, median of {len(rows)} runs: sweep {summary[arm]['elapsed_s']:.1f} s; "
              + ", ".join(f"{name} {summary[arm][name]:.1%}" for name in HELD_OUT if name in summary[arm]))
    print(json.dumps({"benchmark": "spend_left", "model": args.model, "runs": runs, "median": summary},
                     default=float))


if __name__ == "__main__":
    main()
