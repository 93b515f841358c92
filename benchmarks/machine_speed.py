"""How this machine's speed moves while a model is measured: slow stretches, how long they last, which passes they slow.

What: one model (default smollm2-135m, random weights; the run's device and dtype, its freed memory held as ``run``
holds it: ``profiler.measure.allocator``), for ``--seconds`` seconds, rounds of three passes timed back to back (each
``timing.time_pass``, garbage collection off): the reference pass the sweep times (a prefill of 8 tokens,
``profiler.measure.disturbance``), a prefill of ``--length`` tokens (default 256), and a decode step on a cache filled
to ``--length`` tokens (``profiler.measure.cache_fill``; put back after each step, ``profiler.measure.rewind``). Each
reading is set against its pass's quickest: a round whose reference is ``SLOW`` times its quickest or more is slow.
Printed: per pass its median and 90th percentile over its quickest, and the share of its readings ``SLOW`` times its
quickest or more; the stretches (runs of slow rounds, and of quiet ones, in seconds: how many, their median and
longest); how the prefill and the decode step read in slow rounds against quiet ones (median over quickest), and the
correlation of each with the reference, round by round. The last line is one JSON document with every reading.

Why (issue 13): on this project's 2-core VM a default run's prefill points moved 15-33% from run to run while its
decode points moved 1-8%. A slow stretch that lasts longer than a point's visit moves every repeat of a point
measured in one visit; the plan visits a pass three times where the range of lengths fits so
(``profiler.measure.plan.Plan.heavy_visits``), and the planner's tests model the machine this script measures
(``tests/test_planner.py::_slow_stretches``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.allocator import hold_freed_memory
from profiler.measure.cache_fill import filled_cache
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.rewind import Rewind
from profiler.measure.timing import time_pass

SLOW = 1.1  # a reading this many times its pass's quickest or more: the machine was slow then
REFERENCE_N = 8
MAX_SECONDS = 600  # bounded before any pass is run
MAX_LENGTH = 4096  # a prefill this long takes seconds on a 2-core CPU: every round has one
PASSES = ("reference", "prefill", "decode")


def measure(passes: Passes, length: int, seconds: float, device: torch.device) -> list[dict]:
    """Rounds of the three passes for ``seconds``: each round's start (seconds from the first) and latencies."""
    cache = filled_cache(passes, length)
    rewind = Rewind(cache)
    runs = {"reference": lambda: passes.prefill(REFERENCE_N), "prefill": lambda: passes.prefill(length),
            "decode": lambda: passes.decode_step(cache)}
    for name, run in runs.items():  # one untimed pass of each
        run()
        if name == "decode":
            rewind()
    rounds, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        at_s = time.perf_counter() - started
        reading = {}
        for name, run in runs.items():
            reading[name] = time_pass(run, device)[1]
            if name == "decode":
                rewind()
        rounds.append({"at_s": at_s, **reading})
    return rounds


def stretches(rounds: list[dict], slow: list[bool], end_s: float) -> dict[bool, list[float]]:
    """The seconds each run of slow rounds (``True``) and of quiet ones (``False``) lasted."""
    lasted: dict[bool, list[float]] = {True: [], False: []}
    begun = 0
    for k in range(1, len(rounds) + 1):
        if k == len(rounds) or slow[k] != slow[begun]:
            lasted[slow[begun]].append((rounds[k]["at_s"] if k < len(rounds) else end_s) - rounds[begun]["at_s"])
            begun = k
    return lasted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser, model="smollm2-135m")
    parser.add_argument("--length", type=count(REFERENCE_N, MAX_LENGTH), default=256,
                        help=f"the prefill's tokens and the decode step's context, {REFERENCE_N} to {MAX_LENGTH} "
                        "(default 256)")
    parser.add_argument("--seconds", type=count(10, MAX_SECONDS), default=90, help=f"10 to {MAX_SECONDS} (default 90)")
    args = parser.parse_args()
    try:  # every input checked before the model is built
        source, device, dtype = resolve_model_options(args)
        max_positions = meta_architecture(source).max_positions
        if args.length >= max_positions:
            raise UserError(f"--length {args.length}: {args.model} has {max_positions:,} positions, and a decode "
                            "step needs one free")
    except UserError as err:
        print(f"machine_speed.py: error: {err}", file=sys.stderr)
        return 2
    hold_freed_memory()
    passes = Passes(load_model(source, device, dtype))
    load_before = os.getloadavg()
    rounds = measure(passes, args.length, args.seconds, device)
    end_s, load_after = float(args.seconds), os.getloadavg()

    ratios = {name: np.array([r[name] for r in rounds]) / min(r[name] for r in rounds) for name in PASSES}
    slow = [bool(x >= SLOW) for x in ratios["reference"]]
    lasted = stretches(rounds, slow, end_s)
    print(f"{described(args, device, dtype)}, {len(rounds)} rounds in {args.seconds} s; "
          f"{loads(load_before, load_after)}")
    print(f"per pass, over its quickest: median, 90th percentile, share of readings {SLOW}x or more")
    for name in PASSES:
        label = {"reference": f"reference (prefill {REFERENCE_N})", "prefill": f"prefill {args.length}",
                 "decode": f"decode at {args.length}"}[name]
        ratio = ratios[name]
        print(f"  {label:<22} {np.median(ratio):.3f}  {np.percentile(ratio, 90):.3f}  {np.mean(ratio >= SLOW):.0%}")
    for state, name in ((True, "slow"), (False, "quiet")):
        spans = lasted[state]
        print(f"  {name} stretches: {len(spans)}" + (f", median {statistics.median(spans):.1f} s, longest "
                                                     f"{max(spans):.1f} s" if spans else ""))
    by_state = {}
    for name in ("prefill", "decode"):
        in_slow = [x for x, s in zip(ratios[name], slow) if s]
        in_quiet = [x for x, s in zip(ratios[name], slow) if not s]
        by_state[name] = {"slow": statistics.median(in_slow) if in_slow else None,
                          "quiet": statistics.median(in_quiet) if in_quiet else None,
                          "correlation": float(np.corrcoef(ratios["reference"], ratios[name])[0, 1])}
        shown = {k: "-" if v is None else f"{v:.3f}" for k, v in by_state[name].items()}
        print(f"  {name}: median over its quickest {shown['slow']} in slow rounds, {shown['quiet']} in quiet ones; "
              f"correlation with the reference {shown['correlation']}")
    print(json.dumps({"benchmark": "machine_speed", **facts(args, device, dtype), "length": args.length,
                      "seconds": args.seconds, "slow": SLOW, "load_average_before": load_before,
                      "load_average_after": load_after, "stretches_s": {"slow": lasted[True], "quiet": lasted[False]},
                      "by_state": by_state, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
