"""``python -m profiler fit SAMPLES...``: fit saved samples, write each cost model, print it."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from profiler.cli.show import print_cost_model, print_families
from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import fit_run, write_fit


def fit_and_print(folder: Path, fits_dir: Path, console: Console) -> CostModel:
    """Fit the run in ``folder``, write its cost model under ``fits_dir`` and print it."""
    started = time.perf_counter()
    fit = fit_run(folder)
    path = write_fit(fit, fits_dir)
    cost_model = CostModel(fit)
    print_cost_model(console, cost_model, f"fitted in {time.perf_counter() - started:.1f} s -> {path}")
    return cost_model


def run_fit(args, console: Console) -> int:
    print_families(console, [fit_and_print(samples.parent, args.fits, console) for samples in args.samples])
    return 0
