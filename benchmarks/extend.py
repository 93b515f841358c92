"""An extend pass against the prefill it saves: s new tokens after c cached ones, against c + s from scratch.

What: one model (default gpt2, random weights; float32 on the CPU, bfloat16 on a GPU, as ``run`` chooses), at
each ``c:s`` pair of ``--points`` (default 512:16, the issue's figure, then 128:16, 512:128 and 256:512), side by
side in one process, interleaved (the order reverses every repeat, so a change in the machine's load touches
both alike; ``interleaved.interleaved``):

- extend: one pass appending s tokens to a cache of c tokens (``Passes.extend``), the cache filled without a
  prefill (``cache_fill.filled_cache``, as the sweep measures it) and put back after every pass
  (``rewind.Rewind(cache, added=s)``), so every pass is at the same c;
- prefill: one pass over c + s tokens (``Passes.prefill``): what the call costs when nothing is cached.

Medians over ``--repeats`` repeats with the half width of their 95% interval; printed per pair: both, their
ratio (prefill / extend: how many times cheaper the cached call's first pass is) and the share of the prefill
saved; the load average before and after (other processes on the cores move timings). Last line: one JSON
document.

Why (issue 15): a call whose prefix is cached pays an extend pass, not a prefill; the cost model prices it by
the extend surface T(c, s) that ``run`` measures and ``fit`` fits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from interleaved import interleaved, median
from model_options import add_model_options, described, facts, loads, resolve_model_options

from profiler.cli.arguments import count
from profiler.errors import UserError
from profiler.measure.cache_fill import filled_cache
from profiler.measure.loading import load_model, meta_architecture
from profiler.measure.passes import Passes
from profiler.measure.rewind import Rewind

MAX_REPEATS = 1_000  # interleaved repeats per pair: bounded before any is run
MAX_POINTS = 32


def parse_points(text: str, max_positions: int) -> list[tuple[int, int]]:
    """``c:s,c:s,...``: cached and new tokens, each at least 1, ``c + s`` within the model's positions."""
    try:
        points = [tuple(int(part) for part in pair.split(":")) for pair in text.split(",")]
    except ValueError:
        raise UserError(f"--points {text!r}: expected pairs like 512:16,128:64") from None
    if not 0 < len(points) <= MAX_POINTS or any(len(p) != 2 for p in points):
        raise UserError(f"--points {text!r}: 1 to {MAX_POINTS} pairs c:s")
    for c, s in points:
        if c < 1 or s < 1:
            raise UserError(f"--points {c}:{s}: cached and new tokens are at least 1 each")
        if c + s > max_positions:
            raise UserError(f"--points {c}:{s}: {c + s} positions, beyond the model's {max_positions}")
    return points


def measure(passes: Passes, c: int, s: int, repeats: int, device: torch.device) -> dict:
    """Extend passes of ``s`` tokens on a filled cache of ``c`` against prefills of ``c + s`` tokens."""
    cache = filled_cache(passes, c)
    rewind = Rewind(cache, added=s)

    def extend():
        passes.extend(cache, s)
        rewind()

    latencies = interleaved({"extend": extend, "prefill": lambda: passes.prefill(c + s)}, repeats, device)
    (extend_s, extend_ci), (prefill_s, prefill_ci) = median(latencies["extend"]), median(latencies["prefill"])
    return {"cached_tokens": c, "new_tokens": s, "repeats": repeats,
            "extend_s": extend_s, "extend_ci_rel": extend_ci, "prefill_s": prefill_s, "prefill_ci_rel": prefill_ci,
            "speedup": prefill_s / extend_s, "saved_share": 1 - extend_s / prefill_s, "latencies_s": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--points", default="512:16,128:16,512:128,256:512", help="c:s pairs (cached:new tokens)")
    parser.add_argument("--repeats", type=count(1, MAX_REPEATS), default=9)
    args = parser.parse_args()
    try:  # every input checked before the model is built
        source, device, dtype = resolve_model_options(args)
        points = parse_points(args.points, meta_architecture(source).max_positions)
    except UserError as err:
        print(f"extend.py: error: {err}", file=sys.stderr)
        return 2
    passes = Passes(load_model(source, device, dtype))
    load_before = os.getloadavg()
    rows = [measure(passes, c, s, args.repeats, device) for c, s in points]
    load_after = os.getloadavg()

    print(f"{described(args, device, dtype)}, {args.repeats} interleaved repeats; {loads(load_before, load_after)}")
    print(f"{'c':>6} {'s':>5} | {'extend(c, s) ms':>17} {'prefill(c + s) ms':>19} | {'speedup':>7} {'saved':>6}")
    for r in rows:
        print(f"{r['cached_tokens']:>6} {r['new_tokens']:>5} | {r['extend_s'] * 1e3:>8.1f} ±{r['extend_ci_rel']:>6.1%} "
              f"{r['prefill_s'] * 1e3:>10.1f} ±{r['prefill_ci_rel']:>6.1%} | {r['speedup']:>6.2f}x "
              f"{r['saved_share']:>6.1%}")
    print(json.dumps({
        "benchmark": "extend", **facts(args, device, dtype),
        "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
