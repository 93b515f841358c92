"""The cost-model file other AALP tools load: ``fits/<model>--<hardware-slug>.json``.

``fit_run(folder)`` fits the samples a run wrote (``samples.csv`` beside its ``run.json``
and ``hardware.json``) into a document: each phase's metrics as curves (peak memory among
``MEMORY_FORMS``, the others among ``CURVE_FORMS``), and the memory a curve should contain
from the model's numbers beside what the run measured; ``write_fit`` validates it against the JSON
Schema (``fits/schema.json``) and writes it; ``load_cost_model`` reads one back as a
``CostModel`` and refuses, in one line, a file that does not validate or whose major
schema version is newer than this code.

Schema versions are ``MAJOR.MINOR``: a minor version adds fields older readers may
ignore; a major version changes what existing fields mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from profiler.costmodel.cost_model import METRICS, PHASES, UNITS, CostModel, linearity_horizon
from profiler.costmodel.fit import fit_curve
from profiler.costmodel.fit_document import FitDocument
from profiler.costmodel.forms import CURVE_FORMS, MEMORY_FORMS
from profiler.errors import UserError
from profiler.files import fit_path, read_json, write_json
from profiler.measure.run_document import HardwareDocument, RunDocument
from profiler.measure.samples import read_samples

SCHEMA_VERSION = "1.2"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In a wheel the schema sits inside the package; in a checkout, in fits/ beside it.
_SCHEMA_PATHS = (_PACKAGE_DIR / "fit_schema.json", _PACKAGE_DIR.parent / "fits" / "schema.json")
LINEARITY_SHARES = (0.1, 0.5)
CANDIDATE_FORMS = {"latency_s": CURVE_FORMS, "flops": CURVE_FORMS, "peak_mem_bytes": MEMORY_FORMS}
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # the dtypes a run takes (profiler.measure.devices)


def schema() -> dict:
    return read_json(next(p for p in _SCHEMA_PATHS if p.is_file()))


def validation_error(document: dict) -> str | None:
    """The first way ``document`` breaks the schema, in one line; None when it is valid."""
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(schema()).iter_errors(document)), None)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "top level"
    return f"{where}: {error.message.splitlines()[0][:200]}"


def _derived(curves: dict) -> dict:
    """Per phase's latency: per-call overhead, cost per token, and the linearity horizons."""
    derived = {}
    for phase, metrics in curves.items():
        if "latency_s" not in metrics:
            continue
        curve = metrics["latency_s"]
        overhead_s = float(curve.theta[0])
        entry = {
            "overhead_s": overhead_s,
            "cost_per_token_s": float((curve.predict(curve.n_max) - overhead_s) / curve.n_max),
        }
        if phase != "decode":
            entry["linearity_horizon"] = {}
            for share in LINEARITY_SHARES:
                n = linearity_horizon(curve, share)
                entry["linearity_horizon"][f"{share:.0%}"] = {
                    "n_ctx": n, "within_measured_range": n is not None and curve.n_min <= n <= curve.n_max,
                }
        derived[phase] = entry
    return derived


def _memory(samples, model: dict) -> dict | None:
    """The bytes a peak-memory curve should contain, from the run's model section, beside what was measured:

    - ``weights_bytes``: parameters times bytes per parameter, resident in every pass when all the
      weights are on the measured device, so no more than a curve's constant ``a``;
    - ``kv_cache_bytes_per_token``: ``analytic``, keys and values of every layer,
      ``2 * layers * kv_heads * head_dim * bytes`` (as ``Architecture.kv_bytes_per_token``), and
      ``measured``, per phase that keeps a cache, the least-squares slope of the measured
      ``kv_cache_bytes`` against ``n_ctx`` (a slope: a decode step holds ``n_ctx + 1`` tokens, a
      prefill ``n_ctx``). They differ where the cache is not one entry per token and layer.

    None for a dtype whose size is not known here.
    """
    dtype_bytes = _DTYPE_BYTES.get(model["dtype"])
    if dtype_bytes is None:
        return None
    measured = {}
    for phase in PHASES:
        rows = samples[samples["phase"] == phase][["n_ctx", "kv_cache_bytes"]].dropna()
        if rows["n_ctx"].nunique() >= 2 and (rows["kv_cache_bytes"] > 0).any():
            measured[phase] = float(np.polyfit(rows["n_ctx"], rows["kv_cache_bytes"], 1)[0])
    return {
        "weights_bytes": model["params"] * dtype_bytes,
        "kv_cache_bytes_per_token": {
            "analytic": 2 * model["layers"] * model["kv_heads"] * model["head_dim"] * dtype_bytes,
            "measured": measured,
        },
    }


def fit_run(folder: Path, seed: int = 0) -> FitDocument:
    """Fit every phase and metric of the run in ``folder`` into a fit document: as it reads back from
    its file (its curves rounded as ``CurveFit.as_dict`` writes them), so a cost model priced from
    it right after fitting and one loaded later are the same."""
    samples_path = folder / "samples.csv"
    if not samples_path.is_file():
        raise UserError(f"{folder}: no samples.csv (run `python -m profiler run` first)")
    run, hardware = RunDocument.read(folder), HardwareDocument.read(folder)
    samples = read_samples(samples_path)
    curves: dict = {}
    for phase in PHASES:
        rows = samples[samples["phase"] == phase]
        for metric in METRICS:
            values = rows[["n_ctx", metric]].dropna()
            if values["n_ctx"].nunique() >= 2 and (values[metric] > 0).all():
                curves.setdefault(phase, {})[metric] = fit_curve(values["n_ctx"], values[metric], UNITS[metric],
                                                                 forms=CANDIDATE_FORMS[metric], seed=seed)
    if not curves:
        raise UserError(f"{samples_path}: too few measured lengths to fit (at least 2 per phase)")
    model = run.model.to_json()
    memory = _memory(samples, model)
    return FitDocument.from_json({
        "schema_version": SCHEMA_VERSION,
        "hardware_slug": hardware.slug,
        "hardware": {key: value for key, value in hardware.to_json().items() if key not in ("slug", "format_version")},
        "model": {key: model[key] for key in ("name", "model_type", "params", "non_embedding_params", "layers",
                                              "hidden", "heads", "kv_heads", "max_positions", "dtype",
                                              "attn_implementation", "random_weights")},
        "source": {"samples": str(samples_path), "rows": int(len(samples))},
        "units": {"n": "tokens", **UNITS},
        "curves": {phase: {metric: curve.as_dict() for metric, curve in metrics.items()}
                   for phase, metrics in curves.items()},
        "derived": _derived(curves),
    } | ({"memory": memory} if memory else {}))


def write_fit(fit: FitDocument, fits_dir: Path) -> Path:
    """Validate ``fit`` against the schema and write it as ``<fits_dir>/<model>--<hardware-slug>.json``."""
    document = fit.to_json()
    problem = validation_error(document)
    if problem:
        raise ValueError(f"fit document does not match the schema: {problem}")
    return write_json(fit_path(fits_dir, fit.model.name, fit.hardware_slug), document)


def load_cost_model(path) -> CostModel:
    """The cost model in ``path``; a one-line UserError if it is invalid or from a newer schema."""
    path = Path(path)
    document = read_json(path)
    version = str(document.get("schema_version", ""))
    major = version.split(".")[0]
    if major.isdigit() and int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise UserError(f"{path}: schema version {version} is newer than this profiler reads "
                        f"({SCHEMA_VERSION}); upgrade aalp-profiler")
    problem = validation_error(document)
    if problem:
        raise UserError(f"{path}: not a valid cost model ({problem})")
    return CostModel(FitDocument.from_json(document))
