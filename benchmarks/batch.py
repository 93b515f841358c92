"""Batched passes against one sequence at a time: what a batch of B sequences buys, prefill and decode.

What: one model (default gpt2, random weights; float32 on the CPU, bfloat16 on a GPU, as ``run`` chooses),
at each length n (default 64, 256, 512) and each batch size B above 1 (``--batch``; default 2, 4, 8 on a
CPU and up to 64 on a GPU, as ``run`` measures), side by side in one process, interleaved (the order
alternates every repeat, so a change in the machine's load touches both alike):

- prefill: one pass of B prompts of n tokens (``Passes.prefill(n, batch=B)``) against B prefills of one
  prompt each, one after another (timed as one block: what serving B requests alone costs);
- decode: one step of B sequences on a filled cache of n tokens each (``cache_fill.filled_cache``, put back
  after every step by ``rewind.Rewind``, so every step is at context n) against one step of one sequence,
  as tokens per second (B / step time, against 1 / step time).

Each timed with ``timing.time_pass`` (device synchronised, garbage collection off), after one untimed pass of
each; medians over ``--repeats`` repeats with the half width of their 95% interval (``timing.median_ci_rel``).

Then the model's MLP up-projection alone (``torch.nn.functional.linear`` of its ``hidden`` to its ``ffn`` size,
random weights, in its dtype on its device) on 1, 2, ..., the largest B rows and twice that, interleaved: the
product a decode step of B sequences runs in each layer, to show how the matrix library's kernel choice by the
number of rows shapes the decode steps above (on this project's CPU, MKL runs up to 4 rows as one
matrix-vector product each: ``profiler.costmodel.per_batch_form``).

Printed per (n, B): the batched prefill, the B sequential prefills and their ratio (sequential / batched: how
many times faster the batch serves B prompts); the decode step of one sequence and of B, the tokens/s of each
and their ratio (batched / one: the decode throughput a batch buys); the load average before and after (other
processes on the cores move timings). The last line is one JSON document.

Why: issue 14 prices concurrent calls by batched passes; a batch pays where a pass is bound by reading the
weights (decode, short prefills) and little where it is bound by compute (long prefills on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from interleaved import interleaved, median
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import batch_sizes, count
from profiler.errors import UserError
from profiler.measure.cache_fill import filled_cache
from profiler.measure.grid import check_lengths, default_batch_sizes, parse_lengths
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.rewind import Rewind

MAX_REPEATS = 1_000  # interleaved repeats per point: bounded before any is run


def _stepped(passes: Passes, cache):
    """One decode step on ``cache``, put back after it: every step at the cache's context."""
    rewind = Rewind(cache)

    def step():
        passes.decode_step(cache)
        rewind()

    return step


def measure(passes: Passes, n: int, batch: int, repeats: int, device: torch.device) -> dict:
    """Prefill of ``batch`` prompts against ``batch`` sequential prefills, and a decode step of ``batch`` sequences
    against one of a single sequence, at ``n`` tokens."""

    def sequential():
        for _ in range(batch):
            passes.prefill(n)

    prefill = interleaved({"batched": lambda: passes.prefill(n, batch=batch), "sequential": sequential},
                           repeats, device)
    single_cache, batch_cache = filled_cache(passes, n), filled_cache(passes, n, batch=batch)
    decode = interleaved({"one": _stepped(passes, single_cache), "batched": _stepped(passes, batch_cache)},
                          repeats, device)
    del single_cache, batch_cache
    (batched_s, batched_ci), (sequential_s, sequential_ci) = median(prefill["batched"]), median(prefill["sequential"])
    (one_s, one_ci), (step_s, step_ci) = median(decode["one"]), median(decode["batched"])
    return {
        "n_tokens": n, "batch": batch, "repeats": repeats,
        "prefill_batched_s": batched_s, "prefill_batched_ci_rel": batched_ci,
        "prefill_sequential_s": sequential_s, "prefill_sequential_ci_rel": sequential_ci,
        "prefill_speedup": sequential_s / batched_s,
        "decode_one_s": one_s, "decode_one_ci_rel": one_ci,
        "decode_batched_s": step_s, "decode_batched_ci_rel": step_ci,
        "decode_tokens_per_s_one": 1 / one_s, "decode_tokens_per_s_batched": batch / step_s,
        "decode_throughput_ratio": batch * one_s / step_s,
        "latencies_s": {"prefill": prefill, "decode": decode},
    }


def linear_by_rows(hidden: int, ffn: int, rows: list[int], repeats: int, device: torch.device,
                   dtype: torch.dtype) -> dict[int, tuple[float, float]]:
    """Median seconds (and their 95% interval's half width, relative) of a ``hidden`` to ``ffn`` linear layer on
    each count of ``rows``, interleaved; 50 products a timing, so the shortest is well above the clock's grain."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    weight = torch.randn(ffn, hidden, generator=generator).to(device=device, dtype=dtype)
    inputs = {r: torch.randn(r, 1, hidden, generator=generator).to(device=device, dtype=dtype) for r in rows}

    def products(x):
        def run():
            with torch.inference_mode():
                for _ in range(50):
                    torch.nn.functional.linear(x, weight)
        return run

    timed = interleaved({r: products(x) for r, x in inputs.items()}, repeats, device)
    return {r: (seconds / 50, ci) for r, (seconds, ci) in ((r, median(v)) for r, v in timed.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--lengths", default="64,256,512", help="comma-separated prompt lengths and decode contexts")
    parser.add_argument("--batch", type=batch_sizes, help="batch sizes (default: run's, 1,2,4,8 on a CPU, "
                                                          "1 to 64 on a GPU); each above 1 is set against 1")
    parser.add_argument("--repeats", type=count(1, MAX_REPEATS), default=5)
    args = parser.parse_args()
    try:  # every input checked before the model is built
        lengths = parse_lengths(args.lengths)
        source, device, dtype = resolve_model_options(args)
        check_lengths(lengths, meta_architecture(source).max_positions - 1, args.model)  # a step needs a position
        sizes = [b for b in (args.batch or default_batch_sizes(device.type)) if b > 1]
        if not sizes:
            raise UserError("--batch: no batch size above 1 to set against one sequence")
    except UserError as err:
        print(f"batch.py: error: {err}", file=sys.stderr)
        return 2
    loaded = load_model(source, device, dtype)
    passes = Passes(loaded)
    load_before = os.getloadavg()
    rows = [measure(passes, n, b, args.repeats, device) for n in lengths for b in sizes]
    arch = loaded.architecture
    by_rows = linear_by_rows(arch.hidden, arch.ffn, [*range(1, max(sizes) + 1), 2 * max(sizes)], args.repeats,
                             device, dtype)
    load_after = os.getloadavg()

    print(f"{described(args, device, dtype)}, {args.repeats} interleaved repeats; {loads(load_before, load_after)}")
    print(f"{'n':>5} {'B':>3} | {'prefill B ms':>16} {'B x prefill 1 ms':>17} {'speedup':>7} | "
          f"{'decode 1 ms':>15} {'decode B ms':>15} {'tok/s 1':>8} {'tok/s B':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['n_tokens']:>5} {r['batch']:>3} | "
              f"{r['prefill_batched_s'] * 1e3:>8.1f} ±{r['prefill_batched_ci_rel']:>6.1%} "
              f"{r['prefill_sequential_s'] * 1e3:>9.1f} ±{r['prefill_sequential_ci_rel']:>6.1%} "
              f"{r['prefill_speedup']:>6.2f}x | "
              f"{r['decode_one_s'] * 1e3:>7.1f} ±{r['decode_one_ci_rel']:>6.1%} "
              f"{r['decode_batched_s'] * 1e3:>7.1f} ±{r['decode_batched_ci_rel']:>6.1%} "
              f"{r['decode_tokens_per_s_one']:>8.1f} {r['decode_tokens_per_s_batched']:>8.1f} "
              f"{r['decode_throughput_ratio']:>5.2f}x")
    print(f"one {arch.hidden} x {arch.ffn} linear layer (the MLP's up-projection) on R rows, us: "
          + ", ".join(f"R={r} {seconds * 1e6:.0f} ±{ci:.0%}" for r, (seconds, ci) in by_rows.items()))
    print(json.dumps({
        "benchmark": "batch", **facts(args, device, dtype),
        "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
        "linear_by_rows_s": {str(r): seconds for r, (seconds, _) in by_rows.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
