"""Why a short GPU pass runs at two speeds: the host's launches, the GPU's clock, or the CPU core it runs on.

What (CUDA only; gpt2, bfloat16, random weights, ``load_model`` as ``run`` builds it): prefill of 512 tokens and a
decode step on a cache of 512, 150 repeats each, back to back as the sweep times them. Per repeat: the time until
the pass's last launch returned (before synchronising), the whole pass (synchronised), the SM clock NVML reads
just after (MHz), NVML's clock event reasons (a bit mask: 0x1 idle), and the CPU core the process last ran on
(``/proc/self/stat``). Repeats are split at the midpoint of their fastest and slowest tenths into fast and slow;
per arm and class: count, medians of launch and pass time, SM clock, and the cores seen. Arms: as the process
starts (any core), then pinned to one core (``os.sched_setaffinity``).

Why: on an H200 (stop 35 and stop 38), gpt2's passes read either about 5.5 ms or about 9.5 ms, in spells, so a
point's median is whichever spell it met (held-out errors of 7 to 24% on a flat curve). A pass is launch-bound
there (about 1 ms of GPU time in 5.5 ms), so a slower host or a GPU clocked down between short passes could
each make the slow mode; the figures here say which.

Measured (H200, 2026-12, two sessions' calls): prefill 512, any core: 99 fast repeats at 5.94 ms (launch 5.90), 51
slow at 11.42 ms (launch 11.35), spells of 1 to 66 repeats; SM clock 1,980 MHz and reasons 0x0 in both, one core
throughout. A second call found the host slow most of the time (prefill 11.0 to 11.8 ms; decode 8.5 against 10.2 ms,
the launch time the difference each time, the clock at 1,980 MHz); pinned to its core, prefill 9.5 against 11.6 ms
(118 and 32 repeats). The slow mode is the host's launching, not the GPU's clock, and pinning does not remove it.

Target: none; a diagnosis. Last line: one JSON document.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

from profiler.measure.catalog import resolve_model
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes

DEVICE = torch.device("cuda")
REPEATS = 150


def _core() -> int:
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[36])


def repeats(run, nvml, handle) -> list[dict]:
    reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) \
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    rows = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        launched = time.perf_counter()
        torch.cuda.synchronize()
        end = time.perf_counter()
        rows.append({"launch_ms": (launched - start) * 1e3, "pass_ms": (end - start) * 1e3,
                     "sm_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
                     "reasons": reasons(handle), "core": _core()})
    return rows


def classes(rows: list[dict]) -> dict:
    ordered = sorted(r["pass_ms"] for r in rows)
    tenth = max(1, len(ordered) // 10)
    split = (statistics.median(ordered[:tenth]) + statistics.median(ordered[-tenth:])) / 2
    out = {"split_ms": round(split, 2)}
    for name, members in (("fast", [r for r in rows if r["pass_ms"] < split]),
                          ("slow", [r for r in rows if r["pass_ms"] >= split])):
        if not members:
            out[name] = {"count": 0}
            continue
        out[name] = {"count": len(members),
                     "pass_ms": round(statistics.median(r["pass_ms"] for r in members), 2),
                     "launch_ms": round(statistics.median(r["launch_ms"] for r in members), 2),
                     "sm_mhz": statistics.median(r["sm_mhz"] for r in members),
                     "sm_mhz_range": [min(r["sm_mhz"] for r in members), max(r["sm_mhz"] for r in members)],
                     "reasons": sorted({hex(r["reasons"]) for r in members}),
                     "cores": sorted({r["core"] for r in members})}
    runs, last = [], None  # how long the spells are: lengths of runs of one class, in repeats
    for r in rows:
        kind = r["pass_ms"] >= split
        if kind == last:
            runs[-1] += 1
        else:
            runs.append(1)
        last = kind
    out["spell_lengths"] = runs
    return out


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_two_speeds.py: no CUDA device here", file=sys.stderr)
        return 2
    import pynvml
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    passes = Passes(load_model(resolve_model("gpt2"), DEVICE, torch.bfloat16))
    cache = [passes.prefill(512)]  # a fresh one for each arm: the steps grow it
    work = {"prefill 512": lambda: passes.prefill(512), "decode at 512": lambda: passes.decode_step(cache[0])}
    for run in work.values():
        for _ in range(10):
            run()
    result = {"benchmark": "gpu_two_speeds", "cores": len(os.sched_getaffinity(0))}
    core = _core()
    for arm in ("any core", f"pinned to core {core}"):
        if arm.startswith("pinned"):
            os.sched_setaffinity(0, {core})
        for name, run in work.items():
            if name.startswith("decode"):
                cache[0] = passes.prefill(512)
            found = classes(repeats(run, pynvml, handle))
            result[f"{arm}: {name}"] = found
            print(f"{arm}: {name}: {json.dumps(found)}", flush=True)
    pynvml.nvmlShutdown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
