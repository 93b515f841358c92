"""Batched prefill at a fixed number of tokens in the pass: does a pass cost what its total tokens cost, however
they are split into sequences?

What: one model (default gpt2, random weights; float32 on the CPU, bfloat16 on a GPU, as ``run`` chooses), and for
each total ``T`` (``--tokens``, default 512, 1024, 2048) every split into ``B`` prompts of ``n = T / B`` tokens with
``B`` among ``--batch`` (default run's: 1, 2, 4, 8 on a CPU) and ``n`` within the model's positions: one prefill
pass of ``B`` sequences each (``Passes.prefill(n, batch=B)``), all interleaved in one process (the order alternates
every repeat, so a change in the machine's load touches every split alike), timed with ``timing.time_pass``;
medians over ``--repeats`` repeats with the half width of their 95% interval.

Printed per split: the median, its ratio to the total's longest single sequence measured (the split with the
fewest sequences), and the seconds per token; then per total, the spread of its splits; the load average before and
after. The last line is one JSON document.

Why: the batch surfaces (``profiler.costmodel.surface_forms``) price a batch of ``B`` prompts of ``n`` tokens from
passes of one sequence and short batched ones. Their quadratic term is per sequence (``c*B*n^2``: attention), so a
batch of long prompts is priced about ``B`` times one. Where a pass's cost per token grows with the tokens in the
pass instead (activations outgrowing the caches), the splits of a total cost alike, and the surfaces underprice a
batch of long prompts by as much as its cost per token exceeds a single sequence's. On this project's 2-core CPU
(gpt2, 4 repeats, two runs in stop 30): every split of 512 tokens took 0.78-0.87 s and 0.86-1.06 s, of 1,024
1.64-1.81 s and 1.54-1.92 s, of 2,048 (2 x 1024, 4 x 512, 8 x 256) 3.57-3.80 s and 3.58-3.77 s; the split moved
nothing beyond the noise (intervals of 2-22%), while a token cost about 1.6 ms in a pass of 512 and 1.8 ms in one of
2,048.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from interleaved import interleaved, median
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import batch_sizes, count
from profiler.errors import UserError
from profiler.measure.grid import default_batch_sizes
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes

MAX_REPEATS = 100  # interleaved repeats of every split: bounded before any is run
MAX_TOTALS = 8  # totals a run measures
MAX_TOTAL_TOKENS = 1 << 16  # tokens in one pass: a 64k-token pass is minutes on a CPU


def totals(text: str) -> list[int]:
    """``--tokens``: totals ``512,1024``, sorted and distinct, each 1 to ``MAX_TOTAL_TOKENS``, at most
    ``MAX_TOTALS``."""
    parts = text.split(",")
    if len(parts) > MAX_TOTALS:
        raise argparse.ArgumentTypeError(f"at most {MAX_TOTALS} totals")
    return sorted({count(1, MAX_TOTAL_TOKENS)(part.strip()) for part in parts})


def splits(tokens: list[int], sizes: list[int], max_positions: int) -> list[tuple[int, int]]:
    """Every ``(B, n)`` with ``B`` in ``sizes``, ``B * n`` one of ``tokens`` and ``n`` within ``max_positions``; a
    ``UserError`` naming the first total no size splits so."""
    shapes = []
    for total in tokens:
        mine = [(b, total // b) for b in sizes if total % b == 0 and total // b <= max_positions]
        if not mine:
            raise UserError(f"--tokens {total}: no batch of {', '.join(map(str, sizes))} splits it into prompts of at "
                            f"most {max_positions:,} positions")
        shapes += mine
    return shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--tokens", type=totals, default=[512, 1024, 2048], help="comma-separated totals of tokens "
                                                                                 "in a pass, e.g. 512,1024,2048")
    parser.add_argument("--batch", type=batch_sizes, help="batch sizes (default: run's, 1,2,4,8 on a CPU)")
    parser.add_argument("--repeats", type=count(1, MAX_REPEATS), default=4)
    args = parser.parse_args()
    try:  # every input checked before the model is built
        source, device, dtype = resolve_model_options(args)
        shapes = splits(args.tokens, args.batch or default_batch_sizes(device.type),
                        meta_architecture(source).max_positions)
    except UserError as err:
        print(f"prefill_tokens.py: error: {err}", file=sys.stderr)
        return 2
    passes = Passes(load_model(source, device, dtype))

    def prefill(batch: int, n: int):
        return lambda: passes.prefill(n, batch=batch)

    load_before = os.getloadavg()
    timed = interleaved({shape: prefill(*shape) for shape in shapes}, args.repeats, device)
    load_after = os.getloadavg()
    medians = {shape: median(timed[shape]) for shape in shapes}

    print(f"{described(args, device, dtype)}, {args.repeats} interleaved repeats; {loads(load_before, load_after)}")
    print(f"{'tokens':>6} {'B':>3} {'n':>6} | {'prefill ms':>17} {'x fewest':>8} {'ms/token':>8}")
    rows = []
    for total in args.tokens:
        mine = [(b, n) for b, n in shapes if b * n == total]
        fewest_s = medians[mine[0]][0]
        for b, n in mine:
            seconds, ci = medians[b, n]
            rows.append({"tokens": total, "batch": b, "n": n, "median_s": seconds, "ci_rel": ci,
                         "latencies_s": timed[b, n]})
            print(f"{total:>6} {b:>3} {n:>6} | {seconds * 1e3:>8.1f} ±{ci:>6.1%} {seconds / fewest_s:>7.2f}x "
                  f"{seconds / total * 1e3:>8.3f}")
        spread = [medians[shape][0] for shape in mine]
        print(f"{total:>6} splits: {min(spread) * 1e3:.0f}-{max(spread) * 1e3:.0f} ms "
              f"({max(spread) / min(spread) - 1:.0%} apart)")
    print(json.dumps({"benchmark": "prefill_tokens", **facts(args, device, dtype),
                      "load_average_before": load_before, "load_average_after": load_after, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
