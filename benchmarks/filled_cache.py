"""Decode steps on a filled KV cache against decode steps on a prefilled one.

What: one model (default smollm2-135m, random weights; float32 on the CPU, bfloat16 on a GPU, as
``run`` chooses), at each context c (default 256, 1024, 2048): a cache of c tokens built by a real
prefill (``Passes.prefill``) and one filled without it (``profiler.measure.cache_fill.filled_cache``),
side by side in one process; then ``--repeats`` decode steps (``Passes.decode_step``, timed by
``profiler.measure.timing.time_pass``, garbage collection off) on each, interleaved (the order
alternates every repeat, so a change in the machine's load touches both alike). Each step adds a
token to its cache, so repeat r is at context c + r on both. One untimed step on each first.

Printed per context: the time to build each cache, each cache's median decode step with the half
width of its 95% interval (``timing.median_ci_rel``), their ratio (filled / prefilled), whether
the ratio is within noise (|ratio - 1| no more than the two intervals combined), and the median of
the paired ratios (each repeat's filled step over its neighbouring prefilled one: slow changes in
the machine's load cancel) with its interval; the load average before and after, since other
processes on the cores move timings.

Why: issue 13 measures decode at contexts whose prefill the budget cannot afford, on filled caches;
that is truthful only if a decode step costs the same on either cache.

Target: every ratio within noise (and within a few percent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from functools import partial

import torch
from interleaved import interleaved
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.cache_fill import filled_cache
from profiler.measure.grid import check_lengths, parse_lengths
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.timing import median_ci_rel, time_pass

MAX_REPEATS = 10_000  # interleaved decode steps per cache: bounded before any is run


def measure(passes: Passes, context: int, repeats: int, device: torch.device) -> dict:
    prefilled, prefill_s = time_pass(lambda: passes.prefill(context), device)
    filled, fill_s = time_pass(lambda: filled_cache(passes, context), device)
    latencies = interleaved({name: partial(passes.decode_step, cache) for name, cache in
                             (("prefilled", prefilled), ("filled", filled))}, repeats, device)
    median = {name: statistics.median(values) for name, values in latencies.items()}
    ci = {name: median_ci_rel(values) for name, values in latencies.items()}
    ratio = median["filled"] / median["prefilled"]
    noise = (ci["filled"] ** 2 + ci["prefilled"] ** 2) ** 0.5
    paired = [f / p for f, p in zip(latencies["filled"], latencies["prefilled"])]
    return {
        "context_tokens": context, "repeats": repeats, "prefill_s": prefill_s, "fill_s": fill_s,
        "decode_prefilled_s": median["prefilled"], "decode_filled_s": median["filled"],
        "ci_rel_prefilled": ci["prefilled"], "ci_rel_filled": ci["filled"],
        "ratio": ratio, "noise_rel": noise, "within_noise": abs(ratio - 1) <= noise,
        "paired_ratio": statistics.median(paired), "paired_ci_rel": median_ci_rel(paired),
        "latencies_prefilled_s": latencies["prefilled"], "latencies_filled_s": latencies["filled"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser, model="smollm2-135m")
    parser.add_argument("--lengths", default="256,1024,2048", help="comma-separated context lengths of the caches")
    parser.add_argument("--repeats", type=count(1, MAX_REPEATS), default=15)
    args = parser.parse_args()
    try:  # every input checked before the model is built
        contexts = parse_lengths(args.lengths)
        source, device, dtype = resolve_model_options(args)
        max_positions = meta_architecture(source).max_positions
        check_lengths(contexts, max_positions - 1, args.model)  # a decode step needs a position after its context
    except UserError as err:
        print(f"filled_cache.py: error: {err}", file=sys.stderr)
        return 2
    loaded = load_model(source, device, dtype)
    passes = Passes(loaded)
    load_before = os.getloadavg()
    rows = [measure(passes, c, args.repeats, device) for c in contexts]
    load_after = os.getloadavg()

    print(f"{described(args, device, dtype)}, {args.repeats} interleaved decode steps per cache; "
          f"{loads(load_before, load_after)}")
    print(f"{'context':>7} {'prefill s':>9} {'fill s':>7} {'decode prefilled ms':>20} {'decode filled ms':>17} "
          f"{'filled/prefilled':>16} {'noise':>6} {'within':>6} {'paired':>15}")
    for r in rows:
        print(f"{r['context_tokens']:>7} {r['prefill_s']:>9.3f} {r['fill_s']:>7.3f} "
              f"{r['decode_prefilled_s'] * 1e3:>11.2f} ±{r['ci_rel_prefilled']:>6.1%} "
              f"{r['decode_filled_s'] * 1e3:>8.2f} ±{r['ci_rel_filled']:>6.1%} {r['ratio']:>16.3f} "
              f"{r['noise_rel']:>6.1%} {'yes' if r['within_noise'] else 'NO':>6} "
              f"{r['paired_ratio']:>7.3f} ±{r['paired_ci_rel']:>6.1%}")
    print(json.dumps({
        "benchmark": "filled_cache", **facts(args, device, dtype),
        "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
        "all_within_noise": all(r["within_noise"] for r in rows),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
