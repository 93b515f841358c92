"""``python -m profiler fit SAMPLES...``: fit saved samples, write each cost model, print it.

Each SAMPLES is a run's ``samples.csv`` (its ``run.json`` and ``hardware.json`` beside it). The
same file twice, or two runs of one model on one machine in one dtype (they would be fitted into
one file, and printed as a family of one size), are refused in one line before anything is fitted.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from profiler.cli.show import print_cost_model, print_families
from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError
from profiler.files import fit_path
from profiler.measure.run_document import HardwareDocument, RunDocument

SAMPLES_FILE = "samples.csv"


def fit_and_print(folder: Path, fits_dir: Path, console: Console) -> CostModel:
    """Fit the run in ``folder``, write its cost model under ``fits_dir`` and print it."""
    started = time.perf_counter()
    fit = fit_run(folder)
    written = write_fit(fit, fits_dir)
    cost_model = CostModel(fit)
    print_cost_model(console, cost_model, f"fitted in {time.perf_counter() - started:.1f} s -> {written.path}")
    if written.kept:
        console.print(f"kept the earlier fit in {written.kept}")
    return cost_model


def run_folders(samples: list[Path]) -> list[Path]:
    """The run folder of each samples file given; a one-line ``UserError`` for a path that is not a run's
    samples file, one given twice, or two runs that would be fitted into one file."""
    folders, seen, targets = [], set(), {}
    for path in samples:
        if path.is_dir():
            raise UserError(f"{path}: a folder; give the run's samples file, {path / SAMPLES_FILE}")
        if not path.is_file():
            raise UserError(f"{path}: not found")
        if path.name != SAMPLES_FILE:
            raise UserError(f"{path}: fit reads a run's {SAMPLES_FILE}, beside its run.json and hardware.json")
        folder = path.parent
        if path.resolve() in seen:  # the same file by another name too
            raise UserError(f"{path}: given twice")
        seen.add(path.resolve())
        run, hardware = RunDocument.read(folder), HardwareDocument.read(folder)
        target = fit_path(Path(), run.model.name, hardware.slug, run.model.dtype, hardware.device)
        if target in targets:
            raise UserError(f"{targets[target]} and {path} are runs of {run.model.name} on {hardware.slug} in "
                            f"{run.model.dtype}: both would be fitted into {target.name}; fit one at a time")
        folders.append(folder)
        targets[target] = path
    return folders


def run_fit(args, console: Console) -> int:
    folders = run_folders(args.samples)
    print_families(console, [fit_and_print(folder, args.fits, console) for folder in folders])
    return 0
