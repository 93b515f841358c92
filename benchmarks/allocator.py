"""Whether a long prefill's first repeats are slow because the C allocator gives freed memory back to the kernel.

What: one model (default gpt2, random weights; float32 on the CPU), in ``--rounds`` rounds over the lengths (default
256, 512, 1,024), each length as the sweep measures a length visited once (``profiler.measure.items``): passes of
other shapes (a prefill of 45 tokens and a decode step on its cache), the reference prefill of 8 tokens, then three
prefills and three forwards at the length, each timed alone (``timing.time_pass``), the previous prefill's cache held
through the next as the sweep holds it. Printed per length and phase: the median over the rounds of each repeat (the
first, second and third), under two settings of glibc's malloc, each in a process of its own (a setting holds for the
rest of a process): its defaults, and freed memory held in the process as ``run`` holds it
(``profiler.measure.allocator.hold_freed_memory``). The last line is one JSON document.

Why: across 11 default gpt2 runs, the prefill at 1,024 tokens read 3-15% above the forward timed just after it, its
first repeats the slowest, which lifts the fitted prefill's top (and the forward's, fitted with it). A prefill keeps
its KV cache (75 MB at gpt2's 1,024 tokens); if its freed pages go back to the kernel, the next cache's are faulted in
again (on this project's virtual machines by the host too, to which the guest reports free pages). With freed memory
held, the sweep reads each point's peak memory once, on a pass after the held pages are handed back
(``profiler.measure.items``), not on its timed repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.allocator import hold_freed_memory
from profiler.measure.grid import check_lengths, parse_lengths
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.timing import time_pass

MAX_ROUNDS = 100  # bounded before any pass is run
REPEATS = 3  # of each phase per length and round, as a length visited once takes at the minimum repeats
SETTINGS = ("default", "held")  # glibc's malloc: its defaults, or ``hold_freed_memory``


def measure(passes: Passes, lengths: list[int], rounds: int, device: torch.device) -> dict:
    """Per phase and length, each repeat's latencies over the rounds (``[repeat][round]``, seconds)."""
    latencies = {phase: {n: [[] for _ in range(REPEATS)] for n in lengths} for phase in ("prefill", "forward")}
    for _ in range(rounds):
        for n in lengths:
            passes.decode_step(passes.prefill(45))  # other shapes, as the sweep's visits before this one
            passes.prefill(8)  # the reference pass
            cache = None
            for repeat in range(REPEATS):  # each cache held through the next prefill, as ``Items._repeat`` holds it
                cache, latency_s = time_pass(lambda: passes.prefill(n), device)
                latencies["prefill"][n][repeat].append(latency_s)
            del cache
            for repeat in range(REPEATS):
                latencies["forward"][n][repeat].append(time_pass(lambda: passes.forward(n), device)[1])
    return latencies


def _worker(args: argparse.Namespace, lengths: list[int]) -> int:
    if args.worker == "held" and not hold_freed_memory():
        raise SystemExit("allocator.py: the C library is not glibc: nothing to compare")
    source, device, dtype = resolve_model_options(args)
    passes = Passes(load_model(source, device, dtype))
    print(json.dumps(measure(passes, lengths, args.rounds, device)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--lengths", default="256,512,1024", help="comma-separated prompt lengths")
    parser.add_argument("--rounds", type=count(1, MAX_ROUNDS), default=5)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)  # one setting, in its own process
    args = parser.parse_args()
    try:  # every input checked before the model is built
        lengths = parse_lengths(args.lengths)
        source, device, dtype = resolve_model_options(args)
        check_lengths(lengths, meta_architecture(source).max_positions, args.model)
        if device.type != "cpu":
            raise UserError(f"--device {args.device}: the C allocator's settings concern the CPU's memory")
    except UserError as err:
        print(f"allocator.py: error: {err}", file=sys.stderr)
        return 2
    if args.worker:
        return _worker(args, lengths)
    load_before = os.getloadavg()
    results = {}
    for name in SETTINGS:
        done = subprocess.run([sys.executable, __file__, "--worker", name, *sys.argv[1:]], capture_output=True,
                              text=True, check=True)
        results[name] = json.loads(done.stdout.splitlines()[-1])
    load_after = os.getloadavg()

    print(f"{described(args, device, dtype)}, {args.rounds} rounds; {loads(load_before, load_after)}")
    print("median over the rounds of each repeat, seconds: default: glibc's malloc as it comes; held: freed memory "
          "held in the process (profiler.measure.allocator)")
    medians = {name: {phase: {n: [statistics.median(r) for r in repeats] for n, repeats in by_n.items()}
                      for phase, by_n in result.items()} for name, result in results.items()}
    for n in lengths:
        for phase in ("prefill", "forward"):
            row = " | ".join(f"{name}: " + ", ".join(f"{s:.4f}" for s in medians[name][phase][str(n)])
                             for name in SETTINGS)
            print(f"{n:>6} {phase:<8} {row}")
    print(json.dumps({"benchmark": "allocator", **facts(args, device, dtype), "rounds": args.rounds,
                      "settings": list(SETTINGS), "load_average_before": load_before, "load_average_after": load_after,
                      "medians_s": medians, "latencies_s": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
