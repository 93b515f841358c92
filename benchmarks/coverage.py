"""Does a default run's fit hold at lengths the run did not measure? Its error against the truth, per phase.

What: per model (default smollm2-135m and qwen2.5-0.5b from ``models/``, random weights, float32 on
the CPU), ``python -m profiler run --model M`` with its defaults (``--out`` and ``--fits`` in a
temporary folder), as a subprocess, wall-clocked. From its ``samples.csv``, the lengths each phase
measured at batch 1 and their medians (a batched pass at the same length is another point); from its fit
(``profiler.costmodel.fit_file.load_cost_model``), each latency curve's measured domain ``n_min..n_max``. Then
reference points per phase that the run did not measure:

- inside: three lengths spread in log space over ``n_min..n_max`` (at 1/4, 1/2 and 3/4 of its log
  span), each moved to the geometric midpoint of the two measured lengths around it, so none is one
  the run measured;
- beyond: twice the longest measured length, capped at the model's maximum positions (less one for
  decode, which needs a free position); none where the run already reached that cap.

Each reference is measured in this process, on the model built as the run builds it
(``profiler.measure.loading.load_model``, same seed, the run's thread count, its freed memory held as the run holds
it: ``profiler.measure.allocator``), with the profiler's own
passes and timing (``profiler.measure.passes.Passes``, ``profiler.measure.timing``): one untimed pass,
then ``ROUNDS`` rounds over every reference and control of the model, the order reversed each round
(so that a passing change in the machine's speed touches every point alike, not one point's whole
block), each point repeated with garbage collection off until the round's median is within +-2% or
its share of ``--budget-per-reference`` seconds is spent (at least 2 a round). The median is over
every round's repeats; how far apart the rounds' medians are is printed per point, and how far apart
its rounds' ratios to its control are. Decode at context c runs on a cache filled to c tokens
(``profiler.measure.cache_fill.filled_cache``, as the run measures decode beyond its prefills; put back after
every step by
``profiler.measure.rewind.Rewind``). Measured here rather than by a second ``run --lengths``: that
would measure every phase at every reference (a 16k-token prefill to check decode at 16k) and leave
to its planner which lengths to keep. A reference whose least passes (the untimed one and 2 a round) are predicted
to exceed twice ``--budget-per-reference`` is not measured, and says so (its control, a shorter length, has a budget
of its own).

Each reference is measured beside a control: the length the run measured next to it (the shorter of the two
around an inside reference; the longest for a reference beyond), measured again in the same rounds, just before or
just after the reference (the pair's order turns with the rounds). How far the control moved from the run's median is
how far the machine's speed moved between the run and the reference: the error as measured cannot be told from such a
move. So each reference's error is printed twice: as measured (the issue's figure, the targets' verdict), and at the
fit's speed: the fit's ratio of the reference to its control (prediction over prediction) against the measured one
(the median over the rounds of each round's ratio of medians), less 1. The second is the fit's error in the shape of
its curve between a length it measured and one it did not; a pass and its control, timed seconds apart, see the
machine in the same state (a run's prefill and forward at one length, the same work timed back to back, differed by
0.3-3.5% in 8 of 9 default runs, the median over their lengths, while those lengths' medians moved 15-33% from run
to run). It says how much of a miss is the machine's.

Printed per reference: model, phase, n, inside or beyond (with its factor over the longest measured
length), the measured median, the fit's prediction and its 95% interval
(``profiler.costmodel.uncertainty.CallIntervals``: coefficient draws, and slope errors beyond the
data), the error (predicted over measured, less 1), and whether it is within target, then the same at the
fit's speed with its control's length and move; per model each
phase's measured range against the maximum positions, the run's wall time and skipped lengths, and a
summary line (a run that fitted no cost model says why, and misses every target); the load average
before and after each model: the machine is shared, and other processes on the cores move timings by
more than the targets (on 2 busy cores, 2 torch threads ran gpt2's prefill 8x slower than 1 thread:
``--threads 1`` there). Last line: one JSON document.

Why (issue 13): a default run must cover the model's range; a fit is only as good as its error at
lengths it did not see.

Targets: every reference inside the measured range within 5%, at 2x beyond within 15%. Exits
non-zero only if a command or a measurement failed, not when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from profiler.cli.arguments import budget_seconds, thread_count
from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.fit_file import load_cost_model
from profiler.costmodel.uncertainty import PERCENTILES, CallIntervals
from profiler.errors import UserError
from profiler.measure.allocator import hold_freed_memory
from profiler.measure.cache_fill import filled_cache
from profiler.measure.catalog import resolve_model
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.rewind import Rewind
from profiler.measure.timing import RepeatPolicy, enough_repeats, time_pass

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("prefill", "decode", "forward")
INSIDE_AT = (0.25, 0.5, 0.75)  # fractions of the measured range's log span
TARGETS = {"inside": 0.05, "beyond": 0.15}
DEVICE = torch.device("cpu")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def default_run(model: str, out: Path, threads: int | None) -> tuple[Path, Path | None, float, str]:
    """``run --model model`` with defaults into ``out``: (its run folder, its fit file or None where it fitted
    none, wall seconds, its output)."""
    command = [sys.executable, "-m", "profiler", "run", "--model", model, "--out", str(out / "reports"),
               "--fits", str(out / "fits")] + (["--threads", str(threads)] if threads else [])
    start = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    runs = sorted((out / "reports").glob("*/*/run.json"))
    fits = sorted((out / "fits").glob("*.json"))
    if done.returncode != 0 or len(runs) != 1 or len(fits) > 1:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        raise RuntimeError(f"{' '.join(command[1:])}: exit status {done.returncode}, "
                           f"{len(runs)} run.json and {len(fits)} fits written")
    return runs[0].parent, (fits[0] if fits else None), wall_s, done.stdout


def references(lengths: list[int], n_min: int, n_max: int, cap: int) -> list[tuple[int, str]]:
    """Lengths to check a curve measured at ``lengths`` (domain ``n_min..n_max``) at: inside and beyond."""
    measured = sorted(set(lengths))
    inside = []
    for fraction in INSIDE_AT:
        target = n_min * (n_max / n_min) ** fraction
        below = max(n for n in measured if n <= target)
        above = min((n for n in measured if n > target), default=below)
        midpoint = round(math.sqrt(below * above))
        if below < midpoint < above and midpoint not in inside:
            inside.append(midpoint)
    beyond = min(2 * n_max, cap)
    return [(n, "inside") for n in inside] + ([(beyond, "beyond")] if beyond > n_max else [])


ROUNDS = 3  # rounds over all of a model's points (module doc)
ROUND_POLICY = RepeatPolicy(min_repeats=2)
LEAST_PASSES = 1 + ROUNDS * ROUND_POLICY.min_repeats  # the untimed pass, then the least repeats of every round


Prepared = tuple[Callable[[], object], Callable[[], object]]  # a pass, and what puts its state back after it


def prepared(passes: Passes, phase: str, n: int) -> Prepared:
    """``phase``'s pass at ``n`` and what puts its state back after it; decode on a cache filled to ``n`` tokens."""
    if phase == "decode":
        cache = filled_cache(passes, n)
        rewind = Rewind(cache)
        return (lambda: passes.decode_step(cache)), (lambda: rewind())
    return (lambda: getattr(passes, phase)(n)), (lambda: None)


def measure_rounds(points: list[Prepared], share_s: float) -> list[list[list[float]]]:
    """Latencies (s) of every prepared point, per round (``[point][round] -> repeats``): one untimed pass of each,
    then ``ROUNDS`` rounds over them in alternating order, each point repeated as ``profiler.measure.timing`` stops
    it within ``share_s / ROUNDS`` seconds a round."""
    for run_pass, after in points:
        run_pass()
        after()
    latencies: list[list[list[float]]] = [[] for _ in points]
    order = list(range(len(points)))
    for _ in range(ROUNDS):
        for k in order:
            run_pass, after = points[k]
            this_round: list[float] = []
            started = time.perf_counter()
            while not enough_repeats(this_round, time.perf_counter() - started, share_s / ROUNDS, ROUND_POLICY):
                this_round.append(time_pass(run_pass, DEVICE)[1])
                after()
            latencies[k].append(this_round)
        order.reverse()
    return latencies


def _apart(values: list[float]) -> float:
    """How far apart ``values`` are: the largest over the smallest, less 1."""
    return max(values) / min(values) - 1


def _predicted(cm: CostModel, calls: CallIntervals, phase: str, n: int) -> tuple[float, float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        value = float(getattr(cm, phase)(n))
    low, high = np.percentile(calls.at(phase, "latency_s", np.array([float(n)]))[:, 0], PERCENTILES)
    return value, float(low), float(high)


def _no_fit_reason(output: str) -> str:
    """What the run printed on fitting nothing (its line, wrapped by the terminal, rejoined)."""
    lines = output.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("no cost model fitted")), None)
    if first is None:
        return "no fit file written"
    last = next((i for i in range(first + 1, len(lines)) if lines[i].startswith("done in")), len(lines))
    return " ".join(line.strip() for line in lines[first:last]).split(": ", 2)[-1]


def check_model(model: str, budget_s: float, threads: int | None, tmp: Path) -> dict:
    load_before = _load()
    folder, fit_file, wall_s, output = default_run(model, tmp / model, threads)
    run = json.loads((folder / "run.json").read_text())
    samples = pd.read_csv(folder / "samples.csv")
    samples = samples[samples["batch"] == 1]  # the curves' passes: a batch's take longer at the same n_ctx
    max_positions = run["model"]["max_positions"]
    run_threads = threads or run["asked"]["threads"]
    result = {"model": model, "max_positions": max_positions, "run_wall_s": wall_s,
              "run_budget_s": run["done"].get("budget_raised_to_s") or run["asked"]["budget_s"],
              "run_budget_raised": run["done"].get("budget_raised_to_s") is not None,
              "run_elapsed_s": run["done"]["elapsed_s"],
              "threads": run_threads, "skipped": run["done"]["skipped"], "ranges": {}, "references": [],
              "no_fit": None if fit_file else _no_fit_reason(output), "load_before": load_before}
    for phase in PHASES:
        lengths = sorted(int(n) for n in samples.loc[samples["phase"] == phase, "n_ctx"].unique())
        cap = max_positions - 1 if phase == "decode" else max_positions
        medians = samples[samples["phase"] == phase].groupby("n_ctx")["latency_s"].median()
        result["ranges"][phase] = {"n_min": min(lengths, default=None), "n_max": max(lengths, default=None),
                                   "lengths": lengths, "cap": cap, "median_s": {int(n): m for n, m in medians.items()}}
    if fit_file is not None:
        torch.set_num_threads(run_threads)
        result["references"] = _references_checked(model, run, load_cost_model(fit_file), result["ranges"], budget_s)
    result["load_after"] = _load()
    return result


def control_length(lengths: list[int], n: int) -> int:
    """The length measured by the run that the reference at ``n`` is checked beside: the longest below it."""
    return max(m for m in lengths if m < n)


def _references_checked(model: str, run: dict, cm: CostModel, ranges: dict, budget_s: float) -> list[dict]:
    """Every reference of every phase, predicted by ``cm`` and measured beside its control (or why not)."""
    calls = CallIntervals(cm)
    hold_freed_memory()  # as the run holds it
    loaded = load_model(resolve_model(model), DEVICE, torch.float32, seed=run["asked"]["seed"])
    passes = Passes(loaded, seed=run["asked"]["seed"])
    rows, points = [], []
    for phase in PHASES:
        curve, r = cm.curve(phase, "latency_s"), ranges[phase]
        for n, where in references(r["lengths"], int(curve.n_min), int(curve.n_max), r["cap"]):
            value, low, high = _predicted(cm, calls, phase, n)
            control = control_length(r["lengths"], n)
            row = {"phase": phase, "n": n, "where": where, "factor": n / curve.n_max, "predicted_s": value,
                   "predicted_low_s": low, "predicted_high_s": high, "target": TARGETS[where],
                   "control": {"n": control, "run_median_s": r["median_s"][control],
                               "predicted_s": float(getattr(cm, phase)(control))}}
            if max(value, row["control"]["predicted_s"]) * LEAST_PASSES > 2 * budget_s:  # each has the budget
                row["not_measured"] = (f"one pass predicted {value:.1f} s: its {LEAST_PASSES} passes > twice the "
                                       f"{budget_s:g} s budget")
            else:  # a pass and its control side by side: the rounds turn the whole order, never a pair apart
                points += [prepared(passes, phase, control), prepared(passes, phase, n)]
            rows.append(row)
    latencies = measure_rounds(points, budget_s)
    measured = [row for row in rows if "not_measured" not in row]
    for row, control_rounds, rounds in zip(measured, latencies[::2], latencies[1::2]):
        median = statistics.median([x for r in rounds for x in r])
        control = row["control"]
        control["measured_s"] = statistics.median([x for r in control_rounds for x in r])
        control["moved"] = control["measured_s"] / control["run_median_s"] - 1
        round_medians = [statistics.median(r) for r in rounds]
        ratios = [m / statistics.median(c) for m, c in zip(round_medians, control_rounds)]
        row |= {"measured_s": median, "repeats": sum(map(len, rounds)), "rounds_spread": _apart(round_medians),
                "error": row["predicted_s"] / median - 1,
                "ratio_to_control": statistics.median(ratios), "ratio_rounds_spread": _apart(ratios),
                "in_band": row["predicted_low_s"] <= median <= row["predicted_high_s"]}
        row["error_at_fit_speed"] = row["predicted_s"] / control["predicted_s"] / row["ratio_to_control"] - 1
        row["within_target"] = abs(row["error"]) <= row["target"]
        row["within_target_at_fit_speed"] = abs(row["error_at_fit_speed"]) <= row["target"]
    del passes, loaded
    gc.collect()
    return rows


def _print_model(result: dict) -> None:
    raised = " (raised for the curves)" if result["run_budget_raised"] else ""
    print(f"\n{result['model']}: default run {result['run_wall_s']:.1f} s wall, sweep {result['run_elapsed_s']:.1f} s "
          f"of a {result['run_budget_s']:g} s budget{raised}, {result['threads']} threads; "
          f"load average {result['load_before']} -> {result['load_after']}")
    for phase, r in result["ranges"].items():
        if r["n_max"] is None:
            print(f"  {phase:<8} not measured")
            continue
        reached = "the maximum positions" if r["n_max"] >= r["cap"] else f"{r['n_max'] / r['cap']:.1%} of {r['cap']}"
        print(f"  {phase:<8} measured {r['n_min']}..{r['n_max']} ({len(r['lengths'])} lengths): {reached}")
        if r["n_max"] >= r["cap"]:
            print(f"  {phase:<8} no reference beyond: the run measured up to the cap {r['cap']}")
    by_phase: dict[str, list[str]] = {}
    for s in result["skipped"]:
        by_phase.setdefault(f"{s.get('phase', 'every phase')}, {s.get('reason')}", []).append(str(s.get("n_ctx")))
    skipped = "; ".join(f"{key}: {', '.join(ns)}" for key, ns in by_phase.items()) or "none"
    print(f"  skipped by the run: {skipped}")
    if result["no_fit"]:
        print(f"  no cost model fitted, so no reference checked: {result['no_fit']}")
    if not result["references"]:
        return
    print(f"  {'phase':<8} {'n':>6} {'where':<12} {'measured':>10} {'predicted':>10} {'95% interval':>21} "
          f"{'error':>8} {'target':>7} {'ok':>4} {'rounds apart':>13} {'control':>8} {'moved':>7} "
          f"{'ratio apart':>12} {'at fit speed':>13} {'ok':>4}")
    for row in result["references"]:
        where = row["where"] + (f" {row['factor']:.1f}x" if row["where"] == "beyond" else "")
        interval = f"{row['predicted_low_s']:.4f}..{row['predicted_high_s']:.4f}"
        if "not_measured" in row:
            print(f"  {row['phase']:<8} {row['n']:>6} {where:<12} {'-':>10} {row['predicted_s']:>10.4f} {interval:>21} "
                  f"  not measured: {row['not_measured']}")
            continue
        print(f"  {row['phase']:<8} {row['n']:>6} {where:<12} {row['measured_s']:>10.4f} {row['predicted_s']:>10.4f} "
              f"{interval:>21} {row['error']:>+8.1%} {row['target']:>7.0%} "
              f"{'yes' if row['within_target'] else 'NO':>4} {row['rounds_spread']:>13.1%} "
              f"{row['control']['n']:>8} {row['control']['moved']:>+7.1%} {row['ratio_rounds_spread']:>12.1%} "
              f"{row['error_at_fit_speed']:>+13.1%} {'yes' if row['within_target_at_fit_speed'] else 'NO':>4}")


def summary(result: dict) -> dict:
    out = {}
    for where in TARGETS:
        rows = [r for r in result["references"] if r["where"] == where and "measured_s" in r]
        out[where] = {"measured": len(rows), "within_target": sum(r["within_target"] for r in rows),
                      "max_abs_error": max((abs(r["error"]) for r in rows), default=None),
                      "within_target_at_fit_speed": sum(r["within_target_at_fit_speed"] for r in rows),
                      "max_abs_error_at_fit_speed": max((abs(r["error_at_fit_speed"]) for r in rows), default=None),
                      "control_max_abs_moved": max((abs(r["control"]["moved"]) for r in rows), default=None),
                      "not_measured": sum(1 for r in result["references"] if r["where"] == where
                                          and "not_measured" in r)}
    out["control_max_abs_moved"] = max(out[where]["control_max_abs_moved"] or 0 for where in TARGETS)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-0.5b", help="comma-separated names under models/")
    # 15 s: a reference's least passes may take 30 s, enough for SmolLM2-135M's 2,048-token prefill beyond a run that
    # reached 1,024 (3.7 s a pass, 7 passes); 10 s left it unmeasured
    parser.add_argument("--budget-per-reference", type=budget_seconds, default=15.0, metavar="SECONDS",
                        help="repeats of one reference stop once this is spent (at least 3; default 15)")
    parser.add_argument("--threads", type=thread_count,
                        help="torch CPU threads of the runs and references (default: the run's)")
    args = parser.parse_args()
    try:  # every model named is found before any is run
        for model in args.models.split(","):
            resolve_model(model)
    except UserError as err:
        print(f"coverage.py: error: {err}", file=sys.stderr)
        return 2
    commit, results, failed = _commit(), [], []
    print(f"coverage of default runs against reference points, commit {commit}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            try:
                result = check_model(model, args.budget_per_reference, args.threads, Path(tmp))
            except (RuntimeError, UserError) as err:  # a failed run or build; the other models are still checked
                print(f"\n{model}: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
                failed.append({"model": model, "error": f"{type(err).__name__}: {err}"})
                continue
            result["summary"] = summary(result)
            results.append(result)
            _print_model(result)
            s = result["summary"]
            if result["no_fit"]:
                print("  summary: the default run fitted no cost model: every target missed")
                continue
            print(f"  summary: inside {s['inside']['within_target']}/{s['inside']['measured']} within 5% "
                  f"(max |error| {s['inside']['max_abs_error'] or 0:.1%}), beyond {s['beyond']['within_target']}/"
                  f"{s['beyond']['measured']} within 15% (max |error| {s['beyond']['max_abs_error'] or 0:.1%}); "
                  f"not measured: {s['inside']['not_measured'] + s['beyond']['not_measured']}; controls moved up to "
                  f"{s['control_max_abs_moved']:.1%}; at the fit's speed: inside "
                  f"{s['inside']['within_target_at_fit_speed']}/{s['inside']['measured']} (max |error| "
                  f"{s['inside']['max_abs_error_at_fit_speed'] or 0:.1%}), beyond "
                  f"{s['beyond']['within_target_at_fit_speed']}/{s['beyond']['measured']} (max |error| "
                  f"{s['beyond']['max_abs_error_at_fit_speed'] or 0:.1%})")
    print(json.dumps({"benchmark": "coverage", "ok": not failed, "commit": commit, "cpu_cores": os.cpu_count(),
                      "budget_per_reference_s": args.budget_per_reference, "targets": TARGETS,
                      "models": results, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
