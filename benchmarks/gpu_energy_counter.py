"""How often NVML's energy counter moves, and the joules of a short pass read over a block of repeats.

What (CUDA only; the counter ``profiler.measure.energy.open_nvml`` opens for the run):

- the counter polled in a tight loop for 1 s with the GPU idle, then for 2 s while bfloat16 matrix products of
  8,192 keep it busy: the times between its changes (median, shortest, longest, in ms), its smallest step (mJ), and
  the power it gives (W);
- gpt2 (bfloat16, random weights, ``load_model``), prefill of 512 tokens: the counter read around each of 20 single
  passes (how many it saw move at all, and their joules), then around 3 blocks of back-to-back passes lasting at
  least 1 s each (one synchronisation at the end): joules per pass of each block.

Why: the run gives a pass joules only when it lasts ``MIN_UPDATES_PER_PASS`` updates of the counter, taking NVML's
update as 100 ms, so no gpt2 or Qwen2.5-0.5B pass on an H200 got any (stop 35: 0 of 729). This measures the
update interval the rule should use, and whether a block of repeats gives a steady joules-per-pass.

Measured (H200, 2026-12): the counter moved every 100.5 ms idle (97-103) and every 100.0 ms busy (median; 12.7 to
123 ms), by 12.4 J at the least (133.6 W idle, 378.5 W busy); around single 6.9 ms prefills it moved 2 times in 20
(14.0 and 14.2 J); blocks of 146 passes (0.94-0.96 s) read 1.10, 1.00 and 1.12 J a pass (152.6-171.5 W).

Target: none; figures for the design. Last line: one JSON document.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from profiler.measure.catalog import resolve_model
from profiler.measure.energy import open_nvml
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes

DEVICE = torch.device("cuda")


def poll(counter, seconds: float, work=None) -> dict:
    """The counter read in a tight loop for ``seconds`` (``work()`` queued between reads when given)."""
    changes, last = [], counter.read()
    start = time.perf_counter()
    first = (start, last)
    while time.perf_counter() - start < seconds:
        if work is not None:
            work()
        value = counter.read()
        if value != last:
            changes.append((time.perf_counter(), value))
            last = value
    torch.cuda.synchronize()
    if len(changes) < 2:
        return {"changes": len(changes)}
    gaps_ms = [(b[0] - a[0]) * 1e3 for a, b in zip(changes, changes[1:])]
    steps_mj = [b[1][0] - a[1][0] for a, b in zip(changes, changes[1:])]
    joules = counter.joules(first[1], changes[-1][1])
    return {"changes": len(changes), "gap_ms_median": round(statistics.median(gaps_ms), 2),
            "gap_ms_min": round(min(gaps_ms), 2), "gap_ms_max": round(max(gaps_ms), 2),
            "step_mj_min": min(steps_mj), "step_mj_median": statistics.median(steps_mj),
            "power_w": round(joules / (changes[-1][0] - first[0]), 1)}


def singles(counter, run, repeats: int) -> dict:
    values = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        before = counter.read()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        latency = time.perf_counter() - start
        values.append((latency, counter.joules(before, counter.read())))
    moved = [j for _, j in values if j > 0]
    return {"passes": repeats, "latency_ms_median": round(statistics.median(v[0] for v in values) * 1e3, 3),
            "moved": len(moved), "joules_when_moved": [round(j, 3) for j in moved]}


def blocks(counter, run, pass_s: float, seconds: float, count: int) -> list[dict]:
    k = max(1, int(seconds / pass_s) + 1)
    rows = []
    for _ in range(count):
        torch.cuda.synchronize()
        before = counter.read()
        start = time.perf_counter()
        for _ in range(k):
            run()
        torch.cuda.synchronize()
        wall_s = time.perf_counter() - start
        joules = counter.joules(before, counter.read())
        rows.append({"passes": k, "wall_s": round(wall_s, 3), "joules_per_pass": round(joules / k, 4),
                     "power_w": round(joules / wall_s, 1)})
    return rows


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_energy_counter.py: no CUDA device here", file=sys.stderr)
        return 2
    opened = open_nvml([0])
    if opened.counter is None:
        print(f"gpu_energy_counter.py: {opened.reason}", file=sys.stderr)
        return 2
    counter = opened.counter
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=DEVICE)
    result = {"benchmark": "gpu_energy_counter", "counter": counter.name, "idle": poll(counter, 1.0)}
    print(f"idle: {result['idle']}", flush=True)
    result["busy"] = poll(counter, 2.0, lambda: a @ a)
    print(f"busy: {result['busy']}", flush=True)
    del a
    passes = Passes(load_model(resolve_model("gpt2"), DEVICE, torch.bfloat16))
    run = lambda: passes.prefill(512)  # noqa: E731
    for _ in range(5):
        run()
    result["single_passes"] = singles(counter, run, 20)
    print(f"single passes: {result['single_passes']}", flush=True)
    result["blocks"] = blocks(counter, run, result["single_passes"]["latency_ms_median"] / 1e3, 1.0, 3)
    print(f"blocks: {result['blocks']}", flush=True)
    counter.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
