"""The local test server against the same model in process: the serving overhead per call, the server under load,
and whether it reuses a prefix.

What: ``transformers serve`` over the tiny random GPT-2 of tests/serving.py (2 layers, 64 wide, a word-level
tokenizer; float32, CPU, one torch thread), started on a free loopback port and stopped by its process id; the same
folder loaded in this process (``profiler.measure.loading``, one torch thread as the server has).

(a) At prompts of 16, 64 and 256 tokens, ``--repeats`` rounds, each a streamed call to the server (``--n-out``
    tokens, the length forced) then the same generation in process timed pass by pass (``Passes``: a prefill of
    n, then ``n_out - 1`` decode steps on its cache, each timed by ``timing.time_pass``), the two alternating so
    drift falls on both. Medians: the endpoint's TTFT against the prefill, its ITL (every gap, pooled) against
    the decode steps; the difference is the serving overhead per call (HTTP, tokenising, the generation loop's
    processors and streamer, server-sent events).
(b) The concurrency sweep (``profiler.measure.endpoint.load``) at 1, 2, 4, 8 callers, ``--rounds`` rounds of
    64-token prompts asking ``--n-out`` tokens: output throughput, p50/p99 TTFT, TPOT, ITL, E2E.
(c) The prefix-reuse probe at 256 and 500 prompt tokens (of 512 positions).
(d) ``python -m profiler run --endpoint`` of the same server (a subprocess, ``--budget`` seconds, its default grid,
    ``--out`` and ``--fits`` in a temporary folder) and its fit: per phase the form chosen, the held-out error
    (leave one length out, MAPE of the refit at the length left out), R², the measured domain and the samples.

Why: an endpoint profile prices a served model with the same cost model as a local one; what the server adds per
call, and what load does to it, are the figures that say how far the two differ.

Expected: the overhead per call is milliseconds, large next to this model's sub-millisecond passes; transformers
serve without ``--continuous-batching`` generates one request at a time, so throughput stays flat with callers and
TTFT grows with the queue; it keeps no cache between requests, so "no reuse seen". The endpoint run's curves are
nearly flat (the overhead is most of every time), so a fit predicts a length left out within a few percent while its
R² is near 0: the lengths explain little of the spread between calls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.serving, run as a script

import torch

from profiler.costmodel.fit_file import load_cost_model
from profiler.measure.catalog import resolve_model
from profiler.measure.endpoint.address import Endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.load import concurrency_sweep, prefix_probe
from profiler.measure.endpoint.prompts import calibrate
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.timing import time_pass
from tests.serving import served_model

LENGTHS = (16, 64, 256)
LEVELS = [1, 2, 4, 8]
LOAD_N_IN = 64
PROBE_LENGTHS = (256, 500)


def in_process_generation(passes: Passes, device: torch.device, n: int, n_out: int) -> tuple[float, list[float]]:
    """A prefill of ``n`` and ``n_out - 1`` decode steps on its cache, each timed (seconds)."""
    cache, prefill_s = time_pass(lambda: passes.prefill(n), device)
    steps_s = []
    for _ in range(n_out - 1):
        cache, step_s = time_pass(lambda held=cache: passes.decode_step(held), device)
        steps_s.append(step_s)
    return prefill_s, steps_s


def side_by_side(client, shape, passes: Passes, device, repeats: int, n_out: int, rng) -> list[dict]:
    """Per length: medians of the endpoint's TTFT and ITL and of the in-process prefill and decode steps."""
    ttft_s = {n: [] for n in LENGTHS}
    gaps_s = {n: [] for n in LENGTHS}
    prefill_s = {n: [] for n in LENGTHS}
    decode_s = {n: [] for n in LENGTHS}
    for n in LENGTHS:  # untimed warm-up of both
        client.complete(shape.prompt(n, rng), n_out)
        in_process_generation(passes, device, n, n_out)
    for _ in range(repeats):
        for n in LENGTHS:
            call = client.complete(shape.prompt(n, rng), n_out)
            ttft_s[n].append(call.ttft_s)
            gaps_s[n] += call.itl_s
            prefill, steps = in_process_generation(passes, device, n, n_out)
            prefill_s[n].append(prefill)
            decode_s[n] += steps
    rows = []
    for n in LENGTHS:
        row = {"n_in": n, "ttft_s": statistics.median(ttft_s[n]), "prefill_s": statistics.median(prefill_s[n]),
               "itl_s": statistics.median(gaps_s[n]), "decode_s": statistics.median(decode_s[n])}
        row["prefill_overhead_s"] = row["ttft_s"] - row["prefill_s"]
        row["decode_overhead_s"] = row["itl_s"] - row["decode_s"]
        rows.append(row)
    return rows


def endpoint_fit(served, budget_s: float, out: Path) -> tuple[dict, float]:
    """``run --endpoint`` of ``served`` into ``out``; per phase its latency curve's figures, and the run's wall time."""
    command = [sys.executable, "-m", "profiler", "run", "--endpoint", served.url, "--model", served.model,
               "--budget", f"{budget_s:g}", "--out", str(out / "reports"), "--fits", str(out / "fits")]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    (fit,) = (out / "fits").glob("*--endpoint-*.json")
    curves = {}
    for phase, metrics in load_cost_model(fit).curves.items():
        curve = metrics["latency_s"]
        curves[phase] = {"form": curve.form.name, "held_out_mape": curve.lolo_mape, "r2": curve.r2,
                         "n_min": curve.n_min, "n_max": curve.n_max, "samples": curve.samples}
    return curves, wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="calls per length in (a) (default 20)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds per concurrency level in (b) (default 8)")
    parser.add_argument("--n-out", type=int, default=16, help="output tokens per call in (a) and (b) (default 16)")
    parser.add_argument("--budget", type=float, default=45.0, help="the endpoint run's --budget in (d) (default 45)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder, served_model(Path(folder)) as served:
        loaded = load_model(resolve_model(served.model), torch.device("cpu"), torch.float32)
        passes = Passes(loaded)
        with EndpointClient(Endpoint(url=served.url, model=served.model)) as client:
            shape = calibrate(client)
            overhead = side_by_side(client, shape, passes, loaded.device, args.repeats, args.n_out, rng)
            levels = concurrency_sweep(client, shape, LEVELS, LOAD_N_IN, args.n_out, args.rounds,
                                       deadline_s=float("inf"), clock=time.perf_counter, rng=rng,
                                       on_call=lambda level, call: None)
            probes = [prefix_probe(client, shape, n, rng) for n in PROBE_LENGTHS]
            forcing = client.forcing
        fitted, run_s = endpoint_fit(served, args.budget, Path(folder))
    load_after = os.getloadavg()[0]

    print(f"(a) endpoint against in process, medians in ms ({args.repeats} calls of {args.n_out} tokens per length; "
          f"forcing: {forcing})")
    print(f"{'n_in':>5} {'TTFT':>8} {'prefill':>8} {'overhead':>9} {'ITL':>8} {'decode':>8} {'overhead':>9}")
    for row in overhead:
        print(f"{row['n_in']:>5} {1e3 * row['ttft_s']:>8.2f} {1e3 * row['prefill_s']:>8.2f} "
              f"{1e3 * row['prefill_overhead_s']:>9.2f} {1e3 * row['itl_s']:>8.2f} {1e3 * row['decode_s']:>8.2f} "
              f"{1e3 * row['decode_overhead_s']:>9.2f}")
    print(f"\n(b) concurrency sweep ({args.rounds} rounds, {LOAD_N_IN} tokens in, {args.n_out} out), ms")
    print(f"{'C':>3} {'calls':>5} {'tok/s':>7} {'req/s':>6} {'TTFT p50':>9} {'p99':>8} {'TPOT p50':>9} {'p99':>7} "
          f"{'ITL p50':>8} {'p99':>7} {'E2E p50':>8} {'p99':>8}")
    for level in levels:
        print(f"{level.concurrency:>3} {level.calls:>5} {level.output_tokens_per_s:>7.1f} {level.requests_per_s:>6.1f} "
              f"{1e3 * level.ttft_p50_s:>9.2f} {1e3 * level.ttft_p99_s:>8.2f} {1e3 * level.tpot_p50_s:>9.2f} "
              f"{1e3 * level.tpot_p99_s:>7.2f} {1e3 * level.itl_p50_s:>8.2f} {1e3 * level.itl_p99_s:>7.2f} "
              f"{1e3 * level.e2e_p50_s:>8.2f} {1e3 * level.e2e_p99_s:>8.2f}")
    print("\n(c) prefix-reuse probe, TTFT ms")
    for probe in probes:
        cold = ", ".join(f"{1e3 * ttft_s:.2f}" for ttft_s in probe.ttft_cold_s)
        print(f"  {probe.n_prefix} tokens: cold {cold}; repeat {1e3 * probe.ttft_repeat_s:.2f}; cached tokens "
              f"{probe.cached_tokens}; {probe.verdict}")
    print(f"\n(d) run --endpoint --budget {args.budget:g} ({run_s:.1f} s with its fit and report), latency curves")
    print(f"{'phase':<8} {'form':<10} {'held-out':>9} {'R²':>7} {'domain':>9} {'samples':>8}")
    for phase, curve in fitted.items():
        held_out = "-" if curve["held_out_mape"] is None else f"{curve['held_out_mape']:.1%}"
        print(f"{phase:<8} {curve['form']:<10} {held_out:>9} {curve['r2']:>7.3f} "
              f"{curve['n_min']:>4}-{curve['n_max']:<4} {curve['samples']:>8}")
    print(f"\nload average (1 min): {load_before:.2f} before, {load_after:.2f} after (2 cores)")
    print(json.dumps({"overhead": overhead, "concurrency": [level.to_json() for level in levels],
                      "prefix_probe": [probe.to_json() for probe in probes], "forcing": forcing,
                      "endpoint_fit": fitted, "endpoint_run_s": run_s,
                      "load_average": [load_before, load_after]}))


if __name__ == "__main__":
    main()
