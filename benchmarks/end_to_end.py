"""End-to-end wall time of ``python -m profiler run --model gpt2`` with its defaults.

What: the command run as a subprocess from the repository root, with ``--out`` pointing to
a temporary folder (nothing lands in ``reports/``), wall-clocked with ``time.perf_counter``
from launch to exit: interpreter start, imports, ceiling measurement, model build, the
sweep (default grid trimmed to the default budget: what the start-up and build leave of a minute, less
10 s for the fit and report) and writing the reports. Also
reported: the "measured in X s" and "built in X s" figures the command prints, and from
the ``run.json`` it wrote (``<out>/<hardware-slug>/gpt2/run.json``) the lengths measured,
the lengths skipped and why, the generate pairs and the number of sample rows.

Why: this is what a user waits for on their first run; the sweep's budget bounds only part
of it, the default sized so the rest fits in the minute.

Target: 60 s or less end to end on this 2-core machine. Exits non-zero if the run failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_WALL_S = 60.0


def _figure(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "profiler", "run", "--model", "gpt2", "--out", out,
                   "--fits", str(Path(out) / "fits")]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall_s = time.perf_counter() - start
        run_files = sorted(Path(out).glob("*/gpt2/run.json"))
        if done.returncode != 0 or len(run_files) != 1:
            print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
            print(f"end_to_end: profiler run failed (exit status {done.returncode}, "
                  f"{len(run_files)} run.json written)", file=sys.stderr)
            print(json.dumps({"benchmark": "end_to_end", "ok": False, "exit_status": done.returncode,
                              "wall_s": wall_s}))
            return done.returncode or 1
        document = json.loads(run_files[0].read_text())
        slug = run_files[0].parent.parent.name

    measured_s = _figure(r"measured in ([\d.]+) s", done.stdout)
    built_s = _figure(r"built in ([\d.]+) s", done.stdout)
    finished_s = _figure(r"done in ([\d.]+) s", done.stdout)
    run = document["done"]
    print(f"python -m profiler run --model gpt2 (defaults) on {slug}")
    print(f"{'phase':<9} {'n_ctx':>6} {'n_new':>6} {'repeats':>7} {'median latency':>15}")
    for point in document["points"]:
        print(f"{point['phase']:<9} {point['n_ctx']:>6} {point['n_new']:>6} {point['repeats']:>7} "
              f"{point['median_latency_s'] * 1e3:>12.2f} ms")
    print(f"lengths measured: {run['lengths']}; generate pairs: {run['generate_pairs']}; rows: {run['rows']}")
    skipped = ", ".join(f"{s['n_ctx']} ({s['reason']})" for s in run["skipped"]) or "none"
    print(f"skipped: {skipped}")
    within = wall_s <= TARGET_WALL_S
    print(f"wall {wall_s:.1f} s end to end (the command printed: built in {built_s} s, measured in {measured_s} s, "
          f"done in {finished_s} s after start-up); target <= {TARGET_WALL_S:.0f} s: {'met' if within else 'NOT met'}")
    print(json.dumps({
        "benchmark": "end_to_end", "ok": True, "command": "python -m profiler run --model gpt2", "hardware_slug": slug,
        "cpu_cores": os.cpu_count(), "wall_s": wall_s, "measured_s": measured_s, "build_s": built_s,
        "done_s": finished_s, "sweep_elapsed_s": run["elapsed_s"], "budget_s": document["asked"]["budget_s"],
        "lengths": run["lengths"], "generate_pairs": run["generate_pairs"], "skipped": run["skipped"],
        "rows": run["rows"], "unstable_points": run["unstable_points"], "interrupted": run["interrupted"],
        "target_wall_s": TARGET_WALL_S, "within_target": within,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
