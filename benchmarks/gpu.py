"""The GPU check: ``python -m profiler run`` on CUDA in bfloat16, gpt2 and qwen2.5-0.5b, up to 4096 tokens.

What: the CLI run as one subprocess per model (so each gets a fresh CUDA context, as a user's
run does), random weights, bfloat16, ``--budget 60``:

- gpt2 at ``--lengths 8:1024`` (its maximum), qwen2.5-0.5b at ``--lengths 8:4096``;

into ``OUT`` (argv[1], else a temporary folder that is removed afterwards). Then, from each
``run.json``'s points and ``hardware.json``, a table per model: phase, n_ctx, n_new, median
latency, achieved FLOP/s, share of the roofline, peak GPU memory; and the GPU's name and
measured ceilings (matmul FLOP/s in bfloat16, memory bandwidth).

Why: the CPU runs here cannot show what a GPU run does: CUDA synchronisation around each
pass, the allocator's peak memory, bfloat16 ceilings, lengths beyond 1024, and whether
the sweep finishes within its budget on a real accelerator.

Target: both runs exit 0 with every requested length measured (nothing skipped, no out of
memory), in under ~5 minutes in all on one H100. Without CUDA: one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RUNS = (("gpt2", "8:1024"), ("qwen2.5-0.5b", "8:4096"))
BUDGET_S = 60
POINT_KEYS = ("phase", "n_ctx", "n_new", "median_latency_s", "flops_per_s", "roofline_share", "peak_mem_bytes")


def _plain(value):
    """NaN (an unmeasured value in run.json) as None, so the JSON line stays strict JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


def profile(model: str, lengths: str, out: Path) -> dict:
    command = [sys.executable, "-m", "profiler", "run", "--model", model, "--device", "cuda", "--dtype", "bfloat16",
               "--lengths", lengths, "--budget", str(BUDGET_S), "--out", str(out),
               "--fits", str(out / "fits")]
    start = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr).returncode  # progress: stderr
    wall_s = time.perf_counter() - start
    written = sorted(out.glob(f"*/{model}/run.json"), key=lambda path: path.stat().st_mtime)
    if status != 0 or not written:
        return {"model": model, "lengths_asked": lengths, "exit_status": status, "wall_s": wall_s, "ok": False}
    folder = written[-1].parent  # <out>/<hardware-slug>/<model>; the newest if OUT was used before
    run, hardware = (json.loads((folder / name).read_text()) for name in ("run.json", "hardware.json"))
    done = run["done"]
    return {
        "model": model, "hardware_slug": folder.parent.name, "lengths_asked": lengths, "exit_status": status,
        "wall_s": wall_s, "ok": not done["skipped"] and done["out_of_memory"] is None and not done["interrupted"],
        "gpu_name": hardware.get("gpu_name"), "ceilings": hardware["ceilings"], "build_s": run["model"]["build_s"],
        "lengths": done["lengths"], "skipped": done["skipped"], "out_of_memory": done["out_of_memory"],
        "rows": done["rows"], "sweep_elapsed_s": done["elapsed_s"], "unstable_points": done["unstable_points"],
        "points": [{key: _plain(point[key]) for key in POINT_KEYS} for point in run["points"]],
    }


def print_table(result: dict) -> None:
    print(f"\n{result['model']} (--lengths {result['lengths_asked']}): exit {result['exit_status']}, "
          f"{result['wall_s']:.1f} s wall")
    if "points" not in result:
        return
    ceilings = result["ceilings"]
    print(f"{result['gpu_name']}: {ceilings['peak_matmul_flops_per_s'] / 1e12:.1f} TFLOP/s matmul "
          f"({ceilings['matmul_dtype']}), {ceilings['memory_bandwidth_bytes_per_s'] / 1e9:,.0f} GB/s; "
          f"built in {result['build_s']:.1f} s; skipped: {result['skipped'] or 'none'}; "
          f"out of memory: {result['out_of_memory'] or 'no'}")
    print(f"{'phase':<9} {'n_ctx':>6} {'n_new':>6} {'median latency':>15} {'TFLOP/s':>8} {'roofline':>8} {'peak mem':>10}")
    for p in result["points"]:
        peak = "-" if p["peak_mem_bytes"] is None else f"{p['peak_mem_bytes'] / 2**20:,.0f} MiB"
        print(f"{p['phase']:<9} {p['n_ctx']:>6} {p['n_new']:>6} {p['median_latency_s'] * 1e3:>12.3f} ms "
              f"{p['flops_per_s'] / 1e12:>8.2f} {p['roofline_share']:>8.0%} {peak:>10}")


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu.py: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch)
        start = time.perf_counter()
        results = [profile(model, lengths, out) for model, lengths in RUNS]
        total_s = time.perf_counter() - start
    for result in results:
        print_table(result)
    ok = all(r["ok"] for r in results)
    print(f"\nGPU check {'passed' if ok else 'FAILED'}: {total_s:.1f} s in all")
    print(json.dumps({"benchmark": "gpu", "dtype": "bfloat16", "budget_s": BUDGET_S, "total_wall_s": total_s,
                      "ok": ok, "runs": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
