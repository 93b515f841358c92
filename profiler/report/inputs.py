"""What a report is rendered from: a run folder (``samples.csv``, ``run.json``, ``hardware.json``)
and its fitted cost model (under ``--fits``, named by ``profiler.files.fit_path``). Nothing is measured.

Every problem a user can fix -- no such folder, no samples, a missing or unreadable file, a
fit that is missing, invalid, from a newer schema or of another model, machine or dtype -- is a
one-line ``UserError``. The samples are checked by their one reader, ``read_samples``.

A run that measured batches (passes of several sequences, ``batch`` above 1) keeps them apart:
``samples`` and ``points`` hold the single-sequence passes every curve and figure of one sequence
is made of, ``batch_samples`` and ``batch_points`` the passes of more (``profiler.report.batch_section``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.files import fit_path
from profiler.measure.run_document import HardwareDocument, RunDocument
from profiler.measure.samples import read_samples


@dataclass(frozen=True)
class RunData:
    """One run's saved files, and the cost model fitted to them."""

    folder: Path
    samples: pd.DataFrame  # passes of one sequence
    batch_samples: pd.DataFrame  # passes of several (batch above 1); no rows when the run measured none
    run: RunDocument
    hardware: HardwareDocument
    cost_model: CostModel

    @property
    def points(self) -> pd.DataFrame:
        """The per-point summary the run wrote (median latency, 95% CI, tokens/s, FLOP/s, roofline share...),
        of passes of one sequence."""
        points = pd.DataFrame(self.run.points)
        return points[single_sequence(points)]

    @property
    def batch_points(self) -> pd.DataFrame:
        """The per-point summary of the passes of several sequences (no rows when the run measured none)."""
        points = pd.DataFrame(self.run.points)
        return points[~single_sequence(points)]

    @property
    def model_name(self) -> str:
        return self.run.model.name

    @property
    def slug(self) -> str:
        return self.hardware.slug


def single_sequence(frame: pd.DataFrame) -> pd.Series:
    """Which rows of samples or points are passes of one sequence: batch 1, or no ``batch`` at all (a run
    written before batches were measured)."""
    return frame["batch"] == 1 if "batch" in frame.columns else pd.Series(True, index=frame.index)


def _read_run_files(folder: Path) -> tuple[pd.DataFrame, RunDocument, HardwareDocument]:
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (give a run's folder, reports/<hardware-slug>/<model>)")
    samples_path = folder / "samples.csv"
    if not samples_path.is_file():
        raise UserError(f"{folder}: no samples.csv (run `python -m profiler run` first)")
    run, hardware = RunDocument.read(folder), HardwareDocument.read(folder)
    samples = read_samples(samples_path, model=run.model.name, dtype=run.model.dtype)
    if samples.empty:
        raise UserError(f"{samples_path}: no samples in it (the run stopped before its first pass)")
    return samples, run, hardware


def load_run(folder: Path, fits_dir: Path = Path("fits"), cost_model: CostModel | None = None) -> RunData:
    """The run in ``folder`` with its cost model: ``cost_model`` if given, else the fit under ``fits_dir``."""
    samples, run, hardware = _read_run_files(folder)
    if cost_model is None:
        path = fit_path(fits_dir, run.model.name, hardware.slug, run.model.dtype, hardware.device)
        if not path.is_file():
            raise UserError(f"no fit {path} for {folder}: fit it with `python -m profiler fit {folder / 'samples.csv'}`"
                            " (or give --fits DIR)")
        cost_model = load_cost_model(path)
        fitted = (cost_model.model.name, cost_model.hardware_slug, cost_model.model.dtype)
        if fitted != (run.model.name, hardware.slug, run.model.dtype):
            raise UserError(f"{path}: fits {fitted[0]} on {fitted[1]} in {fitted[2]}, not the run in {folder}")
    single = single_sequence(samples)
    return RunData(folder=folder, samples=samples[single], batch_samples=samples[~single], run=run,
                   hardware=hardware, cost_model=cost_model)
