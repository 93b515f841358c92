"""Overhead of the profiler's measurement: its prefill median against a bare timing loop.

What: gpt2 (random weights, float32, CPU) prefill of n=256 tokens. In each round, (a) the
profiler measures it -- a ``Sweep`` over the single length 256 writing ``samples.csv`` to a
temporary folder, of which only the prefill rows count (the sweep also measures decode,
forward and generate pairs at that length) -- and (b) a bare loop times
``model(ids[:, :256], logits_to_keep=1)`` under ``torch.inference_mode`` with
``time.perf_counter``, one untimed warm-up call, then as many timed calls as (a) produced
(when (b) goes first, as many as the previous round's sweep produced). Which of (a)/(b) goes first alternates by round, so drift and ordering effects cancel.

Why: the profiler's numbers are only worth having if its machinery (FLOP-counted warm-up,
peak-memory resets, CSV rows, gc off while timing) adds nothing to the latency it
reports. A ratio above 1 means the profiler inflates costs; below 1, that it hides some.

Target: median over rounds of (profiler median / bare median) = 1.00 +- 0.03.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from profiler.measure.catalog import resolve_model
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.samples import SampleWriter, read_samples
from profiler.measure.sweep import Sweep

N_CTX = 256
TARGET_RATIO, TOLERANCE = 1.00, 0.03


def profiler_prefill_s(loaded, budget_s: float) -> list[float]:
    """The latencies of the prefill rows a one-length Sweep writes (seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "samples.csv"
        with SampleWriter(path) as writer:
            Sweep(loaded, writer, lengths=[N_CTX], trim_to_budget=False, budget_s=budget_s).run()
        samples = read_samples(path)
    return samples.loc[samples["phase"] == "prefill", "latency_s"].tolist()


@torch.inference_mode()
def bare_prefill_s(model, ids: torch.Tensor, repeats: int) -> list[float]:
    """``repeats`` timed calls of the plain model after one untimed warm-up (seconds)."""
    model(ids[:, :N_CTX], logits_to_keep=1)
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(ids[:, :N_CTX], logits_to_keep=1)
        latencies.append(time.perf_counter() - start)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--budget", type=float, default=6.0, help="each Sweep's budget in seconds (default 6)")
    args = parser.parse_args()

    loaded = load_model(resolve_model("gpt2"), torch.device("cpu"), torch.float32)
    ids = Passes(loaded).prompt  # the same prompt tokens the sweep uses
    rounds = []
    for index in range(args.rounds):
        profiler_first = index % 2 == 0
        if profiler_first:
            profiled = profiler_prefill_s(loaded, args.budget)
            bare = bare_prefill_s(loaded.model, ids, len(profiled))
        else:
            # the bare loop needs the repeat count before the sweep has run: take the previous round's
            bare = bare_prefill_s(loaded.model, ids, rounds[-1]["repeats"])
            profiled = profiler_prefill_s(loaded, args.budget)
        profiler_median_s, bare_median_s = statistics.median(profiled), statistics.median(bare)
        rounds.append({
            "round": index, "first": "profiler" if profiler_first else "bare", "repeats": len(profiled),
            "bare_repeats": len(bare), "profiler_median_latency_s": profiler_median_s,
            "bare_median_latency_s": bare_median_s, "ratio": profiler_median_s / bare_median_s,
        })

    print(f"gpt2 prefill n={N_CTX}, float32 on CPU, {torch.get_num_threads()} threads, sweep budget {args.budget:g} s")
    print(f"{'round':>5}  {'first':<8}  {'repeats':>7}  {'profiler median':>15}  {'bare median':>11}  {'ratio':>6}")
    for r in rounds:
        print(f"{r['round']:>5}  {r['first']:<8}  {r['repeats']:>3}/{r['bare_repeats']:<3}  "
              f"{r['profiler_median_latency_s'] * 1e3:>12.2f} ms  {r['bare_median_latency_s'] * 1e3:>8.2f} ms  "
              f"{r['ratio']:>6.3f}")
    ratio = statistics.median(r["ratio"] for r in rounds)
    profiler_s = statistics.median(r["profiler_median_latency_s"] for r in rounds)
    bare_s = statistics.median(r["bare_median_latency_s"] for r in rounds)
    within = abs(ratio - TARGET_RATIO) <= TOLERANCE
    print(f"median over rounds: profiler {profiler_s * 1e3:.2f} ms, bare {bare_s * 1e3:.2f} ms, "
          f"ratio {ratio:.3f} (target {TARGET_RATIO:.2f} +- {TOLERANCE:.2f}: {'met' if within else 'NOT met'})")
    print(json.dumps({
        "benchmark": "overhead", "model": "gpt2", "phase": "prefill", "n_ctx": N_CTX, "device": "cpu",
        "dtype": "float32", "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "sweep_budget_s": args.budget, "build_s": loaded.build_s, "rounds": rounds,
        "profiler_median_latency_s": profiler_s, "bare_median_latency_s": bare_s, "ratio_median": ratio,
        "target_ratio": TARGET_RATIO, "target_tolerance": TOLERANCE, "within_target": within,
    }))


if __name__ == "__main__":
    main()
