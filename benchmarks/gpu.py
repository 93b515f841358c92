"""The GPU check: ``python -m profiler run`` on CUDA with its defaults, gpt2 and qwen2.5-0.5b.

What: the CLI run as one subprocess per model (so each gets a fresh CUDA context, as a user's
run does), random weights, every option left at its default (on a GPU: bfloat16, batches 1 to 64,
the model's whole context range planned within the default budget), into ``OUT`` (argv[1], else a
temporary folder that is removed afterwards). Then, from each ``run.json`` and ``hardware.json``:

- the GPU's name and measured ceilings (matmul FLOP/s in bfloat16, memory bandwidth), the run's
  wall time against its budget, what it skipped and why, whether it ran out of memory, and the
  energy counter it read (NVML on an NVIDIA GPU);
- per phase and batch size, the context lengths measured (how many, the shortest and longest)
  against the model's maximum positions;
- a table of every point: phase, batch, n_ctx, n_new, median latency, achieved FLOP/s, share of
  the roofline, peak GPU memory.

Why: the CPU runs here cannot show what a GPU run does: CUDA synchronisation around each pass,
the allocator's peak memory, bfloat16 ceilings, batches up to 64, long contexts within the budget
(issue 13: decode measured up to the model's maximum positions), and joules from NVML.

Target: both runs exit 0, nothing out of memory, each within its budget plus one pass (10 s of
slack here for the model build and the fit), decode measured at the model's maximum positions
less one. Without CUDA: one line on stderr, exit 2. Last line: one JSON document.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("gpt2", "qwen2.5-0.5b")
SLACK_S = 10.0  # over the budget: one long pass, and what the sweep's clock does not see
POINT_KEYS = ("phase", "batch", "n_ctx", "n_new", "median_latency_s", "flops_per_s", "roofline_share",
              "peak_mem_bytes")


def _plain(value):
    """NaN (an unmeasured value in run.json) as None, so the JSON line stays strict JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _coverage(points: list[dict]) -> dict[str, list[int]]:
    """``"phase@B"`` -> the context lengths measured, sorted."""
    lengths = defaultdict(set)
    for point in points:
        lengths[f"{point['phase']}@{point['batch']}"].add(point["n_ctx"])
    return {key: sorted(values) for key, values in sorted(lengths.items())}


def profile(model: str, out: Path) -> dict:
    command = [sys.executable, "-m", "profiler", "run", "--model", model, "--out", str(out),
               "--fits", str(out / "fits")]
    start = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr).returncode  # progress: stderr
    wall_s = time.perf_counter() - start
    written = sorted(out.glob(f"*/{model}/run.json"), key=lambda path: path.stat().st_mtime)
    if status != 0 or not written:
        return {"model": model, "exit_status": status, "wall_s": wall_s, "ok": False}
    folder = written[-1].parent  # <out>/<hardware-slug>/<model>; the newest if OUT was used before
    run, hardware = (json.loads((folder / name).read_text()) for name in ("run.json", "hardware.json"))
    done, budget_s, max_positions = run["done"], run["asked"]["budget_s"], run["model"]["max_positions"]
    coverage = _coverage(run["points"])
    decode_reach = max(coverage.get("decode@1", [0]))
    within_budget = done["elapsed_s"] <= budget_s + SLACK_S
    return {
        "model": model, "hardware_slug": folder.parent.name, "exit_status": status, "wall_s": wall_s,
        "budget_s": budget_s, "sweep_elapsed_s": done["elapsed_s"], "within_budget": within_budget,
        "max_positions": max_positions, "decode_reach": decode_reach,
        "ok": (done["out_of_memory"] is None and not done["interrupted"] and within_budget
               and decode_reach >= max_positions - 1),
        "gpu_name": hardware.get("gpu_name"), "ceilings": hardware["ceilings"], "build_s": run["model"]["build_s"],
        "dtype": run["model"]["dtype"], "batch_sizes": done["batch_sizes"], "skipped": len(done["skipped"]),
        "batch_skipped": len(done["batch_skipped"]), "out_of_memory": done["out_of_memory"],
        "batch_out_of_memory": done["batch_out_of_memory"], "energy": done["energy"],
        "unstable_points": len(done["unstable_points"]), "coverage": coverage,
        "points": [{key: _plain(point[key]) for key in POINT_KEYS} for point in run["points"]],
    }


def print_summary(result: dict) -> None:
    print(f"\n{result['model']}: exit {result['exit_status']}, {result['wall_s']:.1f} s wall")
    if "points" not in result:
        return
    ceilings, energy = result["ceilings"], result["energy"]
    print(f"{result['gpu_name']}: {ceilings['peak_matmul_flops_per_s'] / 1e12:.1f} TFLOP/s matmul "
          f"({ceilings['matmul_dtype']}), {ceilings['memory_bandwidth_bytes_per_s'] / 1e9:,.0f} GB/s; "
          f"{result['dtype']}, built in {result['build_s']:.1f} s")
    print(f"sweep {result['sweep_elapsed_s']:.1f} s of a {result['budget_s']:.0f} s budget; batches "
          f"{result['batch_sizes']}; skipped {result['skipped']} lengths and {result['batch_skipped']} batch "
          f"points; out of memory: {result['out_of_memory'] or 'no'} / {result['batch_out_of_memory'] or 'no'}; "
          f"{result['unstable_points']} unstable points; energy: {energy.get('counter') or energy.get('reason')}")
    print(f"decode reached {result['decode_reach']:,} of {result['max_positions']:,} positions")
    for key, lengths in result["coverage"].items():
        print(f"  {key:<12} {len(lengths):>3} lengths, {lengths[0]:,}..{lengths[-1]:,}")
    print(f"{'phase':<9} {'B':>3} {'n_ctx':>6} {'n_new':>6} {'median latency':>15} {'TFLOP/s':>8} {'roofline':>8} "
          f"{'peak mem':>10}")
    for p in result["points"]:
        peak = "-" if p["peak_mem_bytes"] is None else f"{p['peak_mem_bytes'] / 2**20:,.0f} MiB"
        flops = "-" if p["flops_per_s"] is None else f"{p['flops_per_s'] / 1e12:8.2f}"
        share = "-" if p["roofline_share"] is None else f"{p['roofline_share']:8.0%}"
        print(f"{p['phase']:<9} {p['batch']:>3} {p['n_ctx']:>6} {p['n_new']:>6} "
              f"{p['median_latency_s'] * 1e3:>12.3f} ms {flops:>8} {share:>8} {peak:>10}")


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu.py: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch)
        start = time.perf_counter()
        results = [profile(model, out) for model in MODELS]
        total_s = time.perf_counter() - start
    for result in results:
        print_summary(result)
    ok = all(r["ok"] for r in results)
    print(f"\nGPU check {'passed' if ok else 'FAILED'}: {total_s:.1f} s in all")
    print(json.dumps({"benchmark": "gpu", "total_wall_s": total_s, "ok": ok, "runs": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
