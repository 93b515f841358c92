"""Wall time of the commands that only read files: ``show``, ``fit``, ``breakeven``, ``report``, ``compare``.

What: each command run as a subprocess from the repository root, wall-clocked with
``time.perf_counter`` from launch to exit (interpreter start, imports, reading, computing,
printing, writing), ``REPEATS`` times; the median is what is judged. Inputs are copies, in a
temporary folder, of a fit and its run (given as ``read_only_commands.py FIT RUN_FOLDER``;
by default the committed example, ``fits/example/gpt2--cpu-intel-xeon-processor-2t.json`` and
``reports/example/cpu-intel-xeon-processor-2t/gpt2``): ``report`` rewrites the folder it is given,
``breakeven --exercise all`` writes figures beside its fit, so the benchmark never touches
the checkout. Also timed, for reference: a bare interpreter start (``python -c pass``), the
floor under every command. Beside each wall time, the command's CPU time (user + system, from
``getrusage`` of the finished child, its own finished children included): what it costs whatever
else the machine is doing. ``report`` and ``breakeven`` make and save their figures in worker
processes, one per core (``profiler.report.saving``): on an idle machine their CPU time exceeds
their wall time, on a busy one the workers gain little.

Why: these commands start without torch or transformers (tests/test_imports.py); what a
user waits for is imports of numpy, matplotlib, pandas and jsonschema, then the work.
The 1-minute load average is printed before and after: on a shared 2-core machine another
process's work shows up as wall time here.

Targets (this 2-core machine, the committed example): ``show`` <= 1 s, ``breakeven
--exercise all --fit FIT`` <= 2 s, ``report`` <= 3 s; ``fit`` and ``compare`` are timed
without one. Exits non-zero if a command failed.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FIT = ROOT / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
REPEATS = 3
TARGETS_S = {"show": 1.0, "breakeven": 2.0, "report": 3.0}


def _commands(fit: Path, run: Path, tmp: Path) -> dict[str, list[str]]:
    python = [sys.executable]
    profiler = [*python, "-m", "profiler"]
    return {
        "python -c pass": [*python, "-c", "pass"],
        "show": [*profiler, "show", str(fit)],
        "fit": [*profiler, "fit", str(run / "samples.csv"), "--fits", str(tmp / "refits")],
        "breakeven": [*profiler, "breakeven", "--exercise", "all", "--fit", str(fit)],
        "report": [*profiler, "report", str(run), "--fits", str(fit.parent)],
        "compare": [*profiler, "compare", str(fit), str(fit), "--out", str(tmp / "compare")],
    }


def main() -> int:
    source_fit = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE_FIT
    source_run = Path(sys.argv[2]) if len(sys.argv) > 2 else EXAMPLE_RUN
    load_before = os.getloadavg()[0]
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "fits").mkdir()
        fit = Path(shutil.copy(source_fit, tmp / "fits"))
        run = tmp / "reports" / source_run.parent.name / source_run.name
        shutil.copytree(source_run, run, ignore=shutil.ignore_patterns("previous"))
        for name, command in _commands(fit, run, tmp).items():
            walls[name], cpus[name] = [], []
            for _ in range(REPEATS):
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
                walls[name].append(time.perf_counter() - started)
                finished = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus[name].append(finished.ru_utime + finished.ru_stime - children.ru_utime - children.ru_stime)
                if done.returncode != 0:
                    print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
                    print(json.dumps({"benchmark": "read_only_commands", "ok": False, "command": name,
                                      "exit_status": done.returncode}))
                    return 1
    load_after = os.getloadavg()[0]

    medians = {name: statistics.median(runs) for name, runs in walls.items()}
    cpu_medians = {name: statistics.median(runs) for name, runs in cpus.items()}
    within = {name: medians[name] <= target for name, target in TARGETS_S.items()}
    print(f"read-only commands on {source_fit.name} and {source_run} (copies), {os.cpu_count()} cores, "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    print(f"{'command':<16} {'wall runs (s)':>20} {'median (s)':>11} {'cpu median (s)':>15} {'target (s)':>11}")
    for name, runs in walls.items():
        target = TARGETS_S.get(name)
        verdict = "" if target is None else f"{target:>11.1f} {'met' if within[name] else 'NOT met'}"
        print(f"{name:<16} {' '.join(f'{s:.2f}' for s in runs):>20} {medians[name]:>11.2f} "
              f"{cpu_medians[name]:>15.2f} {verdict}")
    print(json.dumps({
        "benchmark": "read_only_commands", "ok": True, "fit": str(source_fit), "run": str(source_run),
        "cpu_cores": os.cpu_count(), "repeats": REPEATS, "load_avg_1min_before": load_before,
        "load_avg_1min_after": load_after, "wall_s": walls, "wall_median_s": medians, "cpu_s": cpus, "cpu_median_s": cpu_medians,
        "targets_s": TARGETS_S,
        "within_target": within,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
