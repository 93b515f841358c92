"""A copy of the committed gpt2 example run with extend passes added, for the report's extend tests.

Its prefill and decode latencies are redrawn from a known extend surface (``TRUTH``, near the example's own:
prefill 47 ms at 8 tokens, 0.9 s at 1,024; decode 31-43 ms) with 2% noise, and extend passes appended at the
grid a run measures (every decode context with ``s`` of 16, 64 and 256 tokens, ``c`` lowered where ``c + s``
would pass gpt2's 1,024 positions), latency from ``TRUTH``; run.json gains their points. ``fit_run`` then fits
the whole run, extend surface included (schema 1.6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.extend_forms import EXTEND_FORMS
from profiler.costmodel.fit_run import fit_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
TRUTH = ("cache-read", {"a": 0.03, "b": 8e-4, "g": 1e-5, "e": 6e-7, "f": 1.2e-7})
SIZES = (16, 64, 256)  # tokens appended by an extend pass
MAX_POSITIONS = 1024  # gpt2's
REPEATS = 3


def truth_s(cached, new) -> np.ndarray:
    name, coefficients = TRUTH
    form = EXTEND_FORMS[name]
    theta = np.array([coefficients[p] for p in form.params])
    return form.evaluate(theta, np.stack(np.broadcast_arrays(cached, new), axis=-1).astype(float))


def extend_grid(contexts) -> list[tuple[int, int]]:
    return sorted({(min(int(c), MAX_POSITIONS - s), s) for c in contexts for s in SIZES})


def _points(run: dict, extend: pd.DataFrame) -> list[dict]:
    template = next(point for point in run["points"] if point["phase"] == "decode")
    added = []
    for (c, s), rows in extend.groupby(["n_ctx", "n_new"]):
        median_s = float(rows["latency_s"].median())
        added.append(template | {"phase": "extend", "n_ctx": int(c), "n_new": int(s), "repeats": len(rows),
                                 "median_latency_s": median_s, "tokens_per_s": s / median_s})
    return run["points"] + added


def with_extend(destination: Path, seed: int = 0) -> tuple[Path, CostModel]:
    """The example run copied to ``destination`` with extend passes added (module doc): ``(the copy, its cost
    model with the extend surface)``."""
    destination.mkdir(parents=True)
    shutil.copy(EXAMPLE_RUN / "hardware.json", destination / "hardware.json")
    samples = pd.read_csv(EXAMPLE_RUN / "samples.csv")
    rng = np.random.default_rng(seed)
    samples.insert(samples.columns.get_loc("n_ctx") + 1, "n_cached",
                   np.where(samples["phase"] == "decode", samples["n_ctx"], 0))
    for phase in ("prefill", "decode"):
        rows = samples["phase"] == phase
        truth = truth_s(samples.loc[rows, "n_cached"].to_numpy(), samples.loc[rows, "n_new"].to_numpy())
        samples.loc[rows, "latency_s"] = truth * (1 + 0.02 * rng.standard_normal(len(truth)))
    template = samples[samples["phase"] == "decode"].iloc[0].to_dict()
    grid = extend_grid(np.unique(samples.loc[samples["phase"] == "decode", "n_ctx"]))
    extend = pd.DataFrame([template | {"phase": "extend", "n_ctx": c, "n_cached": c, "n_new": s, "repeat": r}
                           for c, s in grid for r in range(REPEATS)])
    truth = truth_s(extend["n_ctx"].to_numpy(), extend["n_new"].to_numpy())
    extend["latency_s"] = truth * (1 + 0.02 * rng.standard_normal(len(truth)))
    pd.concat([samples, extend[samples.columns]]).to_csv(destination / "samples.csv", index=False)
    run = json.loads((EXAMPLE_RUN / "run.json").read_text())
    run["points"] = _points(run, extend)
    (destination / "run.json").write_text(json.dumps(run))
    return destination, CostModel(fit_run(destination))


def without_extend(cost_model: CostModel) -> CostModel:
    """``cost_model`` as a fit without the extend surface (every fit before schema 1.6)."""
    document = cost_model.fit.to_json()
    document.pop("extend", None)
    return CostModel.from_json(document)
