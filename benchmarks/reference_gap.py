"""Does timing the reference pass only every ten of its passes' time, rather than before every visit, give a default
run's time to its points? Side by side.

What: ``--pairs`` pairs (default 2) of ``python -m profiler run --model M`` (``--model``, default gpt2) with its
defaults, run in this process (``default_run.held_out_run``), alternating: a run with the sweep as it is (a reference
pass before a visit only where ``plan.REFERENCE_GAP`` = 10 of them have had time to run since the last ended, and
priced so), then one with a reference before every visit (the gap set to nothing in ``plan`` and ``items``), the
order swapped every pair so a drift in the machine's speed touches both alike. Per run: the reference passes and the
seconds they took against the sweep's, the timed passes, the lengths prefill reached, each latency curve's held-out
error (leave-one-length-out MAPE) and how far the reference passes were off their median (the machine's own
variation); per arm, the median of each over its runs.

Why: a reference pass is a prefill at the shortest length, as long as a short point's pass; one before every visit,
each point visited three times, took 13% of gpt2's default run on this 2-core CPU, time its points could use.

Run: ``.venv/bin/python benchmarks/reference_gap.py [--pairs N] [--model gpt2|smollm2-135m|qwen2.5-0.5b]`` (about 2
minutes a pair on 2 cores). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics

from default_run import HELD_OUT, held_out_figures, held_out_run

import profiler.measure.items as items
import profiler.measure.plan as plan

GAP = plan.REFERENCE_GAP
EVERY_VISIT = 1e-9  # a gap no visit is shorter than: a reference before each (and ``plan.references_s`` one each)
MODELS = ("gpt2", "smollm2-135m", "qwen2.5-0.5b")
FIGURES = ("references", "references_s", "elapsed_s", "passes")


def _one_run(model: str, gap: float) -> dict:
    plan.REFERENCE_GAP = items.REFERENCE_GAP = gap
    row = held_out_run(model)
    del row["samples"]
    return row | {"arm": "gap" if gap == GAP else "every visit"}


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2, choices=range(1, 11), metavar="N", help="1 to 10 (default 2)")
    parser.add_argument("--model", default="gpt2", choices=MODELS, help="the model run (default gpt2)")
    args = parser.parse_args()
    runs = []
    for pair in range(args.pairs):
        for gap in ((GAP, EVERY_VISIT) if pair % 2 == 0 else (EVERY_VISIT, GAP)):
            row = _one_run(args.model, gap)
            runs.append(row)
            machine = ("" if row["reference_spread"] is None else
                       f"; reference passes {row['reference_spread']:.1%} off")
            print(f"pair {pair + 1}, {row['arm']}: {row['references']} reference passes, {row['references_s']:.1f} s "
                  f"of a {row['elapsed_s']:.1f} s sweep; {row['passes']} timed passes; prefill to "
                  f"n={row['prefill_lengths'][-1]} ({len(row['prefill_lengths'])} lengths); held-out "
                  f"{held_out_figures(row)}{machine}", flush=True)
    summary = {}
    for arm in ("gap", "every visit"):
        rows = [row for row in runs if row["arm"] == arm]
        summary[arm] = {name: statistics.median(row[name] for row in rows) for name in FIGURES}
        summary[arm] |= {f"{name}_held_out": statistics.median(row[f"{name}_held_out"] for row in rows)
                         for name in HELD_OUT if all(row[f"{name}_held_out"] is not None for row in rows)}
        print(f"{arm}, median of {len(rows)} runs: " + ", ".join(
            f"{name} {value:.3g}" if name in FIGURES else f"{name} {value:.1%}" for name, value in summary[arm].items()))
    print(json.dumps({"benchmark": "reference_gap", "model": args.model, "runs": runs, "median": summary},
                     default=float))


if __name__ == "__main__":
    main_benchmark()
