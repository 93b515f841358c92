"""How far do a default run's medians and fitted curves move from one run to the next on this machine?

What: ``--runs`` (default 4) default runs of ``python -m profiler run --model M`` (``--model``, default smollm2-135m)
back to back, in this process (``default_run.held_out_run``). Per phase (prefill, decode, forward, one sequence) and
per length every run measured: each run's median, and its fitted latency there; how far apart the runs put each (the
largest over the smallest, less 1); per phase, the median and the largest of those over its lengths. Per run: the
lengths prefill reached and how far its reference passes were off their median.

Why (issue 13): a fit is checked at lengths its run did not measure against passes timed after it
(``benchmarks/coverage.py``). Where a length's median, and the fit through it, move by more than a target from one
run to the next while the model and the code stay the same, a check at that target judges the machine's speed, not
the fit: a target of 5% needs runs that agree within a few percent.

Run: ``.venv/bin/python benchmarks/run_to_run.py [--runs N] [--model NAME]`` (about a minute a run of SmolLM2-135M on
2 cores). Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from default_run import PHASES, held_out_run

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.catalog import resolve_model


def spread(values: list[float]) -> float:
    """The largest over the smallest, less 1."""
    return max(values) / min(values) - 1


def phase_spreads(runs: list[dict], phase: str) -> list[dict]:
    """Per length every run measured ``phase`` at (one sequence): each run's median and fitted latency (s) there, and
    how far apart the runs put each."""
    medians = [run["samples"][(run["samples"].phase == phase) & (run["samples"].batch == 1)]
               .groupby("n_ctx").latency_s.median() for run in runs]
    shared = sorted(set.intersection(*(set(m.index) for m in medians)))
    rows = []
    for n in shared:
        measured = [float(m[n]) for m in medians]
        fitted = [run["fitted_s"][phase][int(n)] for run in runs]
        rows.append({"n": int(n), "medians_s": measured, "fitted_s": fitted,
                     "medians_apart": spread(measured), "fitted_apart": spread(fitted)})
    return rows


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=count(2, 10), default=4, metavar="N", help="2 to 10 (default 4)")
    parser.add_argument("--model", default="smollm2-135m", help="a name under models/ (default smollm2-135m)")
    args = parser.parse_args()
    try:
        resolve_model(args.model)
    except UserError as err:
        print(f"run_to_run.py: error: {err}", file=sys.stderr)
        return 2
    runs = []
    for k in range(args.runs):
        row = held_out_run(args.model)
        runs.append(row)
        machine = "" if row["reference_spread"] is None else f"; reference passes {row['reference_spread']:.1%} off"
        print(f"run {k + 1}: {row['elapsed_s']:.1f} s, prefill to n={row['prefill_lengths'][-1]} "
              f"({len(row['prefill_lengths'])} lengths){machine}", flush=True)
    table, summary = {}, {}
    for phase in PHASES:
        table[phase] = phase_spreads(runs, phase)
        if not table[phase]:
            continue
        print(f"{phase}: {'n':>6} {'medians apart':>14} {'fitted apart':>13}   medians (s) per run")
        for row in table[phase]:
            print(f"{'':<{len(phase) + 1}} {row['n']:>6} {row['medians_apart']:>14.1%} {row['fitted_apart']:>13.1%}   "
                  + " ".join(f"{m:.4f}" for m in row["medians_s"]))
        summary[phase] = {key: {"median": statistics.median(r[key] for r in table[phase]),
                                "max": max(r[key] for r in table[phase])} for key in ("medians_apart", "fitted_apart")}
        s = summary[phase]
        print(f"  {phase} over {len(table[phase])} lengths: medians apart {s['medians_apart']['median']:.1%} "
              f"(at most {s['medians_apart']['max']:.1%}), fitted apart {s['fitted_apart']['median']:.1%} "
              f"(at most {s['fitted_apart']['max']:.1%})")
    for row in runs:
        del row["samples"], row["fitted_s"]
    print(json.dumps({"benchmark": "run_to_run", "model": args.model, "runs": runs, "lengths": table,
                      "summary": summary}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
