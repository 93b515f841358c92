"""A run's samples fitted into a fit document (``profiler.costmodel.fit_file`` writes and loads its file).

``fit_run(folder)`` fits the samples a run wrote (``samples.csv`` beside its ``run.json``
and ``hardware.json``, read by ``profiler.measure.samples.read_samples``, the one check of a
samples file) into a document: each phase's metrics as curves from its passes of one sequence
(``batch == 1``; ``profiler.costmodel.phase_fits``: prefill's and forward's latency and FLOPs
together), and the memory a curve should contain from the model's numbers beside what the run
measured. Where the run measured prefill or decode at batches above 1, that phase's latency is also
fitted against ``(batch, n)`` on all its passes, batch 1 included (``profiler.costmodel.surface``,
since 1.5); a phase measured at too few ``(batch, n)`` points for any surface form is said in
``source.surfaces_skipped``. Where the run measured extend passes, the extend surface ``T(c, s)`` is fitted
on the batch-1 prefill, decode and extend passes at their ``(n_cached, n_new)`` (``profiler.costmodel.extend``,
since 1.6); points that fix too few of its forms are said in ``source.extend_skipped``. Where the run's passes have
``energy_j`` (its energy counter's joules), each phase's energy is fitted as its latency is, on the passes that have a
value, and ``source.energy`` says which counter, or why the run had none (since 1.7).

A served model whose config is not known here (an endpoint run, ``run --endpoint``, of a hosted model: its
``samples.csv`` has no FLOPs, and its ``run.json`` no architecture) is fitted from its latency alone (since 1.8):
the latency curves as any run's, no FLOPs curves, and a model record of what is known (its name, ``served`` dtype
and attention, its maximum positions where the server said them), without the architecture's numbers
(``params`` and the shape). A cost model of it prices seconds; FLOPs, and a family's size law (which needs each
model's parameters), are refused in one line (``CostModel.check_flops``, ``profiler.costmodel.family``).
FLOPs in some rows of a run and not in others is refused: a run counts every pass's FLOPs or none.

A fit a cost model cannot price with is never made: a phase measured at fewer than ``MIN_LENGTHS`` context
lengths (its forms have up to three coefficients: two lengths leave a quadratic or power curve free) or with fewer
than ``MIN_SAMPLES`` samples (AICc compares three-coefficient forms from five) is a one-line
``UserError`` naming the phase, and a run that ends so keeps its samples.

Work is bounded before it starts: a phase is fitted on at most ``MAX_FIT_LENGTHS`` context lengths
(spread evenly over those measured, both ends kept) and ``MAX_FIT_SAMPLES`` samples (each point's
repeats thinned to an even spread over the order they were measured in; a surface's points are
its ``(batch, n)`` pairs, and it holds at most ``surface.MAX_HELD_OUT_POINTS`` out). A run's file is thinned
only where a phase holds more samples than that (over 20 points of 200 repeats, the most a point
takes; or 1,024 lengths of 5); the fit says what was thinned (``source.thinned``, since 1.3). Why thin rather than refuse: the rows are real
measurements, and a curve through an even spread of each point's repeats is the same curve; the
fit's cost grows with samples (the bootstrap refits them 200 times) and with lengths times samples
(the held-out error refits once per length).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from profiler.costmodel.cost_model import BATCH_PHASES, METRICS, PHASES, UNITS
from profiler.costmodel.extend import fit_extend, unfixed
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.fit_document import FitDocument
from profiler.costmodel.fit_file import SCHEMA_VERSION
from profiler.costmodel.forms import structured_forms
from profiler.costmodel.phase_fits import fit_metric
from profiler.costmodel.surface import fit_surface, fixed_forms
from profiler.costmodel.surface_forms import SURFACE_FORMS
from profiler.errors import UserError
from profiler.files import file_name
from profiler.measure.run_document import HardwareDocument, RunDocument
from profiler.measure.samples import read_samples

LINEARITY_SHARES = (0.1, 0.5)
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # the dtypes a run takes (profiler.measure.devices)
MIN_LENGTHS = 3  # distinct context lengths that fix a curve of three coefficients
MIN_SAMPLES = 5  # AICc's correction 2k(k+1)/(N-k-1) is finite for k = 3 from N = 5
# Bounds on one phase's fit (see the module doc): about 8 s a latency curve at the worst on a busy 2-core CPU.
MAX_FIT_LENGTHS = 1024
MAX_FIT_SAMPLES = 4096


def linearity_horizon(curve: CurveFit, share: float) -> float | None:
    """Context length at which the quadratic term is ``share`` of the cost (the paper's Def. 2.2
    holds where it is small), read off the curve's quadratic candidate, whichever form was chosen.

    ``None`` when the quadratic coefficient is zero: linear throughout.
    """
    quadratic = curve.candidate_params("quadratic")
    a, b, c = quadratic["a"], quadratic["b"], quadratic["c"]
    if c <= 0:
        return None
    # c n^2 = share (a + b n + c n^2)  <=>  (1 - share) c n^2 - share b n - share a = 0
    qa, qb, qc = (1 - share) * c, -share * b, -share * a
    return float((-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa))


def _derived(curves: dict) -> dict:
    """Per phase's latency: per-call overhead, cost per token, whether its growth reached the FLOPs' ceiling, and the
    linearity horizons."""
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
        if curve.at_growth_ceiling:
            entry["growth_at_ceiling"] = True
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
    - ``kv_cache_bytes_per_token``: ``analytic``, what one token adds while no sliding window is full
      (``Architecture.kv_bytes_per_token``: run.json's ``kv_elements_per_token`` times bytes; keys and values
      of every layer, ``2 * layers * kv_heads * head_dim * bytes``, in runs written before it), and
      ``measured``, per phase that keeps a cache, the least-squares slope of the measured
      ``kv_cache_bytes`` against ``n_ctx`` (a slope: a decode step holds ``n_ctx + 1`` tokens, a
      prefill ``n_ctx``). They differ where the cache is not one entry per token and layer: a sliding-window
      layer stops growing at its window, so its slope over lengths past the window is smaller.

    None for a dtype whose size is not known here (a served model's), or a model of unknown parameters.
    """
    dtype_bytes = _DTYPE_BYTES.get(model["dtype"])
    if dtype_bytes is None or model.get("params") is None:
        return None
    measured = {}
    for phase in PHASES:
        rows = samples[samples["phase"] == phase][["n_ctx", "kv_cache_bytes"]].dropna()
        if rows["n_ctx"].nunique() >= 2 and (rows["kv_cache_bytes"] > 0).any():
            measured[phase] = float(np.polyfit(rows["n_ctx"], rows["kv_cache_bytes"], 1)[0])
    return {
        "weights_bytes": model["params"] * dtype_bytes,
        "kv_cache_bytes_per_token": {
            "analytic": model.get("kv_elements_per_token",
                                  2 * model["layers"] * model["kv_heads"] * model["head_dim"]) * dtype_bytes,
            "measured": measured,
        },
    }


def thinned(rows, point: tuple[str, ...] = ("n_ctx", "n_new")):
    """``rows`` of one phase within the bounds of the module doc: at most ``MAX_FIT_LENGTHS`` context lengths
    (evenly spread over the sorted lengths, both ends kept), then per point (the values of the ``point``
    columns) at most ``MAX_FIT_SAMPLES`` over the number of points, evenly spread over its repeats in measured
    (file) order. Deterministic."""
    lengths = np.unique(rows["n_ctx"])
    if len(lengths) > MAX_FIT_LENGTHS:
        chosen = np.unique(np.round(np.linspace(0, len(lengths) - 1, MAX_FIT_LENGTHS)).astype(int))
        rows = rows[rows["n_ctx"].isin(lengths[chosen])]
    points = rows.groupby(list(point), sort=False)
    per_point = max(1, MAX_FIT_SAMPLES // max(points.ngroups, 1))
    order = points.cumcount().to_numpy()
    count = points["n_ctx"].transform("size").to_numpy()
    # the first of each of per_point equal runs of a point's repeats (all of them when it has no more)
    return rows[(order == 0) | (order * per_point // count != (order - 1) * per_point // count)]


def _flops_curvature(curves: dict) -> dict[str, float]:
    """Each phase's FLOPs' ``c / b`` (1/token), where fitted as a quadratic with a per-token term: how much of their
    growth beyond linear attention's FLOPs make; 0 for a phase whose FLOPs grow no faster than ``n``."""
    out = {}
    for phase, metrics in curves.items():
        flops = metrics.get("flops")
        if flops is not None:
            params = dict(zip(flops.form.params, flops.theta))
            out[phase] = float(params["c"] / params["b"]) if params.get("c", 0) > 0 and params["b"] > 0 else 0.0
    return out


def _too_few(phase: str, rows) -> str | None:
    """Why ``rows`` of ``phase`` cannot fix its curves, or None."""
    lengths = sorted(int(n) for n in np.unique(rows["n_ctx"]))
    if len(lengths) < MIN_LENGTHS:
        shown = f" ({', '.join(map(str, lengths))})" if lengths else ""
        return f"{phase} at {len(lengths)} context length{'s' if len(lengths) != 1 else ''}{shown}"
    if len(rows) < MIN_SAMPLES:
        return f"{phase} in {len(rows)} samples"
    return None


def _surfaces(samples, seed: int) -> tuple[dict, dict[str, str]]:
    """The batch surface of each of prefill and decode measured at a batch above 1, fitted on all its rows
    (thinned, each ``(batch, n)`` a point); and, per such phase whose points fix no surface form, why."""
    surfaces, skipped = {}, {}
    for phase in BATCH_PHASES:
        rows = samples[samples["phase"] == phase]
        if not (rows["batch"] > 1).any():
            continue
        rows = thinned(rows, point=("batch", "n_ctx", "n_new"))
        batch, n = rows["batch"].to_numpy(), rows["n_ctx"].to_numpy()
        if fixed_forms(phase, batch, n):
            surfaces[phase] = fit_surface(phase, batch, n, rows["latency_s"].to_numpy(), seed=seed)
        else:
            least = min(len(form.params) for form in SURFACE_FORMS[phase].values()) + 1
            points = len(rows.groupby(["batch", "n_ctx"]))
            skipped[phase] = f"{points} (batch, n) points, where a surface needs {least} over 2 or more batches"
    return surfaces, skipped


EXTEND_POINTS = ("prefill", "decode", "extend")  # the phases whose batch-1 passes are the extend surface's points


def _extend(single, curves: dict, seed: int) -> tuple[dict | None, str | None]:
    """The extend surface of the batch-1 passes ``single`` where extend passes are among them (thinned, each
    ``(n_cached, n_new)`` a point), checked against the prefill and decode latency ``curves``; or why its points
    fix no surface. Neither without extend passes."""
    if not (single["phase"] == "extend").any():
        return None, None
    rows = thinned(single[single["phase"].isin(EXTEND_POINTS)], point=("n_cached", "n_new"))
    cached, new = rows["n_cached"].to_numpy(), rows["n_new"].to_numpy()
    why = unfixed(cached, new)
    if why:
        return None, why
    return fit_extend(cached, new, rows["latency_s"].to_numpy(), curves["prefill"]["latency_s"],
                      curves["decode"]["latency_s"], seed=seed).as_dict(), None


def _energy_source(energy) -> dict:
    """``source.energy`` (since 1.7): the counter the run read (``counter``), or why it had none (``reason``)."""
    return {"counter": energy.counter} if energy.counter else {"reason": energy.reason}


def fit_run(folder: Path, seed: int = 0) -> FitDocument:
    """Fit every phase and metric of the run in ``folder`` into a fit document: as it reads back from
    its file (its curves rounded as ``CurveFit.as_dict`` writes them), so a cost model priced from
    it right after fitting and one loaded later are the same. A one-line ``UserError`` when the run
    cannot make a fit a cost model can price with (see the module doc): its curves are of batch-1 passes."""
    samples_path = folder / "samples.csv"
    if not samples_path.is_file():
        raise UserError(f"{folder}: no samples.csv (run `python -m profiler run` first)")
    run, hardware = RunDocument.read(folder), HardwareDocument.read(folder)
    for name, what in ((run.model.name, "run.json's model name"), (run.model.dtype, "run.json's dtype"),
                       (hardware.slug, "hardware.json's slug")):
        file_name(name, f"{folder}: {what}")  # the fit's file is named by them: checked before fitting
    samples = read_samples(samples_path, model=run.model.name, dtype=run.model.dtype)
    if samples.empty:
        raise UserError(f"{samples_path}: no samples in it (the run stopped before its first pass)")
    unknown_flops = samples["flops"].isna()  # read_samples allows it of a served model's rows only
    if unknown_flops.any() and not unknown_flops.all():
        raise UserError(f"{samples_path}: FLOPs in {int((~unknown_flops).sum()):,} rows and not in "
                        f"{int(unknown_flops.sum()):,}: a run counts every pass's FLOPs or none (run it again)")
    single = samples[samples["batch"] == 1]
    measured = {phase: single[single["phase"] == phase] for phase in PHASES}
    by_phase = {phase: thinned(rows) for phase, rows in measured.items()}
    too_few = [why for phase, rows in by_phase.items() if (why := _too_few(phase, rows))]  # each phase prices
    if too_few:
        raise UserError(f"{samples_path}: measured {'; '.join(too_few)}: a cost model needs each of prefill, decode "
                        f"and forward at {MIN_LENGTHS} or more lengths (its curves have up to 3 coefficients) and "
                        f"{MIN_SAMPLES} or more samples; measure more lengths (--lengths)")
    curves: dict = {phase: {} for phase in by_phase}
    model = run.model.to_json()
    structured = structured_forms(model.get("heads"))  # the forms of each phase's FLOP terms
    for metric in sorted(METRICS, key=lambda m: m != "flops"):  # the FLOPs first: they cap the times' growth
        usable = {phase: (values["n_ctx"].to_numpy(), values[metric].to_numpy()) for phase, rows in by_phase.items()
                  if _too_few(phase, values := rows[["n_ctx", metric]].dropna()) is None
                  and (values[metric] > 0).all()}  # peak memory may be unmeasured
        for phase, curve in fit_metric(usable, metric, UNITS[metric], seed=seed, structured=structured,
                                       flops_curvature=_flops_curvature(curves)).items():
            curves[phase][metric] = curve
    curves = {phase: {metric: metrics[metric] for metric in METRICS if metric in metrics}
              for phase, metrics in curves.items()}
    thinned_rows = {phase: {"rows": len(measured[phase]), "fitted": len(rows)}
                    for phase, rows in by_phase.items() if len(rows) < len(measured[phase])}
    memory = _memory(single, model)
    surfaces, surfaces_skipped = _surfaces(samples, seed)
    extend, extend_skipped = _extend(single, curves, seed)
    return FitDocument.from_json({
        "schema_version": SCHEMA_VERSION,
        "hardware_slug": hardware.slug,
        "hardware": {key: value for key, value in hardware.to_json().items() if key not in ("slug", "format_version")},
        "model": {key: model[key] for key in ("name", "model_type", "params", "non_embedding_params", "layers",
                                              "hidden", "heads", "kv_heads", "max_positions", "dtype",
                                              "attn_implementation", "random_weights")
                  if model.get(key) is not None},  # a served model of unknown architecture: its name and dtype
        "source": {"samples": str(samples_path), "rows": len(samples)} | (
            {"thinned": thinned_rows} if thinned_rows else {}) | (
            {"surfaces_skipped": surfaces_skipped} if surfaces_skipped else {}) | (
            {"extend_skipped": extend_skipped} if extend_skipped else {}) | (
            {"energy": _energy_source(run.done.energy)} if run.done.energy else {}),
        "units": {"n": "tokens", **UNITS},
        "curves": {phase: {metric: curve.as_dict() for metric, curve in metrics.items()}
                   for phase, metrics in curves.items()},
        "derived": _derived(curves),
    } | ({"memory": memory} if memory else {}) | (
        {"surfaces": {phase: surface.as_dict() for phase, surface in surfaces.items()}} if surfaces else {}) | (
        {"extend": extend} if extend else {}))
