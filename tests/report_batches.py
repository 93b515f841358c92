"""A copy of a real tiny run with batches added, for the report's batch tests: synthetic passes of B = 2, 4, 8
sequences at the run's prefill and decode lengths (its batch-1 median times a known batch factor, 3% noise),
written into samples.csv and run.json's points (the roofline bound a known function of B) in place of any
batches the run measured, and batch surfaces fitted to them (``profiler.costmodel.surface.fit_surface``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.surface import fit_surface

BATCHES = (2, 4, 8)
REPEATS = 3
# latency of B sequences over one: prefill grows with B nearly in full (compute-bound), decode hardly
# (memory-bound: the weights are read once for the whole batch)
FACTOR = {"prefill": lambda b: 0.25 + 0.75 * b, "decode": lambda b: 0.9 + 0.1 * b}


def _batch_rows(single: pd.DataFrame, rng) -> pd.DataFrame:
    rows = []
    for (phase, n_ctx), group in single[single["phase"].isin(FACTOR)].groupby(["phase", "n_ctx"]):
        median = float(group["latency_s"].median())
        first = group.iloc[0]
        for batch in BATCHES:
            for repeat in range(REPEATS):
                rows.append(first.to_dict() | {
                    "batch": batch, "repeat": repeat, "flops": batch * first["flops"],
                    "latency_s": median * FACTOR[phase](batch) * (1 + 0.03 * rng.standard_normal())})
    return pd.DataFrame(rows)


def _batch_points(points: list[dict], samples: pd.DataFrame) -> list[dict]:
    """run.json points of every batch: batch 1's as the run wrote them, each batch above its median latency
    and a roofline bound of ``bound(1) * (1 + (B - 1) / 4)``."""
    points = [point for point in points if point.get("batch", 1) == 1]
    out = [point | {"batch": 1} for point in points]
    for point in points:
        if point["phase"] not in FACTOR:
            continue
        bound_s = point["median_latency_s"] * point["roofline_share"]
        for batch in BATCHES:
            at = samples[(samples["phase"] == point["phase"]) & (samples["batch"] == batch)
                         & (samples["n_ctx"] == point["n_ctx"])]
            median_s = float(at["latency_s"].median())
            out.append(point | {"batch": batch, "median_latency_s": median_s,
                                "tokens_per_s": batch * point["n_new"] / median_s,
                                "roofline_share": bound_s * (1 + (batch - 1) / 4) / median_s})
    return out


def with_batches(folder, fits, destination, seed: int = 0) -> tuple:
    """``folder`` (a run, its fit under ``fits``) copied to ``destination`` with batches added:
    ``(the copy, its cost model with surfaces)``."""
    copy = shutil.copytree(folder, destination, ignore=shutil.ignore_patterns("previous", "*.png", "report.*"))
    samples = pd.read_csv(copy / "samples.csv")
    if "batch" not in samples:  # a run written before batches were measured
        samples.insert(samples.columns.get_loc("phase") + 1, "batch", 1)
    samples = samples[samples["batch"] == 1]
    batched = _batch_rows(samples, np.random.default_rng(seed))
    samples = pd.concat([samples, batched[samples.columns]], ignore_index=True)
    samples.to_csv(copy / "samples.csv", index=False)
    run = json.loads((copy / "run.json").read_text())
    run["points"] = _batch_points(run["points"], samples)
    (copy / "run.json").write_text(json.dumps(run))
    (fit_file,) = fits.glob("tiny--*.json")
    document = json.loads(fit_file.read_text())
    document["source"]["rows"] = len(samples)
    document["surfaces"] = {}
    for phase in FACTOR:
        rows = samples[samples["phase"] == phase]
        document["surfaces"][phase] = fit_surface(phase, rows["batch"], rows["n_ctx"], rows["latency_s"]).as_dict()
    return copy, CostModel.from_json(document)


def without_surfaces(fits) -> CostModel:
    """The tiny run's fit under ``fits`` without batch surfaces (as a fit of a run without batches has none)."""
    (fit_file,) = fits.glob("tiny--*.json")
    document = json.loads(fit_file.read_text())
    document.pop("surfaces", None)
    return CostModel.from_json(document)
