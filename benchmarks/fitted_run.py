"""A run and its fit for the benchmarks that judge a fitted surface (``batch_fit.py``, ``extend_fit.py``).

``run_arguments(parser)`` adds ``--run`` (a run folder already written) and the options a run is made with
(``--model``, ``--threads``, ``--budget``, ``--lengths``); ``fitted_run(args, parser, run_options)`` makes the run
(``python -m profiler run`` as a subprocess, wall-clocked, ``--out`` and ``--fits`` in a temporary folder) unless
``--run`` names one, fits it in this process (``fit_run.fit_run``, timed) and reads its samples. A helper module
of the scripts in ``benchmarks/`` (each runs with this folder first on its path).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from profiler.cli.arguments import budget_seconds, thread_count
from profiler.costmodel.fit_document import FitDocument
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError
from profiler.measure.samples import read_samples

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FittedRun:
    """A run folder, its fit and samples; the run's and the fit's wall times (``run_s`` None for a folder given);
    the 1-minute load average before and after."""

    folder: Path
    fit: FitDocument
    samples: object  # the checked samples frame
    run_s: float | None
    fit_s: float
    load_average: tuple[float, float]

    def headline(self) -> str:
        """The model, the hardware, the run's and the fit's seconds and the load average around them."""
        return (f"\n{self.fit.model.name} on {self.fit.hardware_slug}: "
                + (f"run {self.run_s:.1f} s, " if self.run_s else "")
                + f"fitted in {self.fit_s:.1f} s; load average {self.load_average[0]:.2f} before, "
                  f"{self.load_average[1]:.2f} after")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, help="a run folder already written (else a run is made)")
    parser.add_argument("--model", default="models/gpt2")
    parser.add_argument("--threads", type=thread_count, help="the run's --threads (1 on a shared machine)")
    parser.add_argument("--budget", type=budget_seconds, help="the run's --budget")
    parser.add_argument("--lengths", help="the run's --lengths")


def _run(args, run_options: list[str], out: Path) -> tuple[Path, float]:
    """``python -m profiler run`` with ``run_options``; the run folder it wrote and its wall time."""
    command = [sys.executable, "-m", "profiler", "run", "--model", args.model, *run_options,
               "--out", str(out / "reports"), "--fits", str(out / "fits")]
    for option, value in (("--threads", args.threads), ("--budget", args.budget), ("--lengths", args.lengths)):
        if value is not None:
            command += [option, str(value)]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall_s = time.perf_counter() - started
    (folder,) = {path.parent for path in (out / "reports").glob("*/*/samples.csv")}
    return folder, wall_s


def fitted_run(args, parser: argparse.ArgumentParser, run_options: list[str] = ()) -> FittedRun | None:
    """The run of ``args`` (made, or ``--run``) fitted; None, said in one line, when it cannot be fitted."""
    if args.run is not None and not (args.run / "samples.csv").is_file():
        parser.error(f"{args.run}: no samples.csv (give a run folder)")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as temporary:
        folder, run_s = (args.run, None) if args.run is not None else _run(args, list(run_options), Path(temporary))
        started = time.perf_counter()
        try:
            fit = fit_run(folder)
        except UserError as err:
            print(f"no fit: {err}")
            return None
        fit_s = time.perf_counter() - started
        samples = read_samples(folder / "samples.csv")
    return FittedRun(folder, fit, samples, run_s, fit_s, (load_before, os.getloadavg()[0]))
