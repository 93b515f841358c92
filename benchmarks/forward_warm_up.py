"""Whether a pass needs a warm-up of its own: the first pass after a pass of another shape, and the first forward
after its length's prefills, each against the passes that follow it.

What: one model (default gpt2, random weights; float32 on the CPU, bfloat16 on a GPU, as ``run`` chooses), in
``--rounds`` rounds over the lengths (default 64, 256, 1,024), in a seeded random order each round, each length as
the sweep measures one (``profiler.measure.items``): a prefill of another length of the list (another shape), then
three prefills and three forwards at the length, each timed alone (``timing.time_pass``: device synchronised), with
garbage collection off. Per round and length, two ratios: the first prefill over the median of the next two (what a
warm-up after another shape would take away), and the first forward over the median of the next two (what a forward
warm-up after the prefills would take away). Printed per length: the median of each ratio over the rounds, its mean,
and how many rounds had it above 1; the load average before and after (other processes on the cores move timings).
The last line is one JSON document.

Why: the sweep warms a point up before its repeats (a pass after another shape ran 5% slower at 64 tokens in
stop 26's measurement), but a forward follows its length's prefills, which run the same matrix products; its warm-up
was a prefill-sized pass at every length, and at the longest lengths the budget's largest item.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys

import torch
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.grid import check_lengths, parse_lengths
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.timing import time_pass

MAX_ROUNDS = 1_000  # bounded before any pass is run
PASSES = 3  # of each phase per length and round: the first, and the two it is set against


def _timed(run, times: int, device: torch.device) -> list[float]:
    return [time_pass(run, device)[1] for _ in range(times)]


def _first_over_next(latencies_s: list[float]) -> float:
    return latencies_s[0] / statistics.median(latencies_s[1:])


def measure(passes: Passes, lengths: list[int], rounds: int, device: torch.device, seed: int = 0) -> dict:
    """Per length, each round's first-pass ratios (``prefill``: the first prefill after another shape; ``forward``:
    the first forward after the prefills), over the median of the passes after it."""
    ratios = {n: {"prefill": [], "forward": []} for n in lengths}
    order = random.Random(seed)
    for _ in range(rounds):
        for n in order.sample(lengths, len(lengths)):
            passes.prefill(order.choice([m for m in lengths if m != n]))  # another shape before it
            prefills = _timed(lambda: passes.prefill(n), PASSES, device)
            forwards = _timed(lambda: passes.forward(n), PASSES, device)
            ratios[n]["prefill"].append(_first_over_next(prefills))
            ratios[n]["forward"].append(_first_over_next(forwards))
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--lengths", default="64,256,1024", help="comma-separated prompt lengths, two or more")
    parser.add_argument("--rounds", type=count(1, MAX_ROUNDS), default=10)
    args = parser.parse_args()
    try:  # every input checked before the model is built
        lengths = parse_lengths(args.lengths)
        if len(lengths) < 2:
            raise UserError(f"--lengths: two lengths or more (a pass of another shape comes before each), "
                            f"not {lengths}")
        source, device, dtype = resolve_model_options(args)
        check_lengths(lengths, meta_architecture(source).max_positions, args.model)
    except UserError as err:
        print(f"forward_warm_up.py: error: {err}", file=sys.stderr)
        return 2
    passes = Passes(load_model(source, device, dtype))
    load_before = os.getloadavg()
    ratios = measure(passes, lengths, args.rounds, device)
    load_after = os.getloadavg()

    print(f"{described(args, device, dtype)}, {args.rounds} rounds; {loads(load_before, load_after)}")
    print(f"{'n':>5} | {'first prefill after another shape / next':>41} | {'first forward after prefills / next':>36}")
    summary = {}
    for n in lengths:
        row = {}
        for phase in ("prefill", "forward"):
            values = ratios[n][phase]
            row[phase] = {"median": statistics.median(values), "mean": statistics.mean(values),
                          "above_1": sum(v > 1 for v in values), "rounds": len(values)}
        summary[n] = row
        p, f = row["prefill"], row["forward"]
        print(f"{n:>5} | median {p['median']:.3f}, mean {p['mean']:.3f}, above 1 in {p['above_1']:>3}/{p['rounds']:<3}"
              f" | median {f['median']:.3f}, mean {f['mean']:.3f}, above 1 in {f['above_1']:>3}/{f['rounds']:<3}")
    print(json.dumps({
        "benchmark": "forward_warm_up", **facts(args, device, dtype), "rounds": args.rounds,
        "load_average_before": load_before, "load_average_after": load_after,
        "summary": {str(n): row for n, row in summary.items()},
        "ratios": {str(n): r for n, r in ratios.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
