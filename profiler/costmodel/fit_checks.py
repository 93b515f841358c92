"""What a fit document must hold beyond its JSON Schema's shapes, for a cost model to price with it.

The schema (``fits/schema.json``) says which fields there are and their types; it cannot say that a
number is finite (``NaN`` is a JSON Schema number, and passes ``minimum``), nor what one field implies
of another. ``fit_problem`` checks, in order, and names the first problem in one line:

- every number anywhere in the document is finite (Python reads ``NaN``, ``Infinity`` and ``1e999``
  from JSON; a price made of one is ``nan`` or ``inf``, a band of draws a ``LinAlgError``);
- the curves every price needs are there: latency of prefill, decode and forward (``REQUIRED_CURVES``), and
  their FLOPs (``FLOPS_CURVES``) unless the model's parameters are not known (since 1.8: a served model whose
  config is not known here, fitted from latency alone), in which case there are none (peak memory is optional,
  a run may not measure it);
- each curve's coefficients are its form's (``a, b`` for affine; ``a, b, c``; ``a, b, p``), each value
  and interval inside the form's bounds (no negative cost; ``p`` in [0.2, 3]), intervals ordered, the
  domain ordered, the correlation (since 1.2) a symmetric ``k x k`` matrix with a unit diagonal, and a
  quadratic candidate with non-negative ``a, b, c`` (linearity horizons and a family's size law read it);
- a curve fitted together with other phases (since 1.4) names its own phase among them and shares its
  form's coefficients beyond ``a, b`` (none for affine), and a preferred form is one of its candidates; a growth
  ceiling (since 1.12) is on those coefficients only;
- a batch surface (since 1.5) has its phase's form's coefficients, each value and interval inside the
  form's bounds (``q`` in [1, 16]), its correlation as a curve's, a domain of ascending batches starting
  at 1 (it is fitted with the batch-1 passes) with ordered lengths, no more points held out than fitted,
  and candidates and a preferred form among its phase's;
- the extend surface (since 1.6) has its form's coefficients (non-negative), its correlation as a curve's,
  a domain whose most positions ``c + s`` lie between the larger of ``c_max`` and ``s_max`` and their sum,
  no more points held out than fitted, and candidates and a preferred form among the extend forms.

``profiler.costmodel.fit_file`` applies it when a fit is written and when one is loaded.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from profiler.costmodel.extend_forms import EXTEND_FORMS
from profiler.costmodel.forms import FORMS
from profiler.costmodel.per_batch_form import PerBatchForm
from profiler.costmodel.surface import form_names, surface_form

# What a cost model prices with: a call with a KV cache is a prefill and decode steps, one without a
# cache forward passes; in seconds, or FLOPs where the model's architecture is known (the metrics breakeven and
# validate price).
CALL_PHASES = ("prefill", "decode", "forward")
REQUIRED_CURVES = tuple((phase, "latency_s") for phase in CALL_PHASES)
FLOPS_CURVES = tuple((phase, "flops") for phase in CALL_PHASES)
_SYMMETRY = 1e-6  # a stored correlation is rounded to 6 decimals


def _non_finite(value, where: str) -> str | None:
    """Where the first non-finite number inside ``value`` is, as ``a/b/0``; None if there is none."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'top level'} is {value} (not a finite number)"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        problem = _non_finite(item, f"{where}/{key}" if where else str(key))
        if problem:
            return problem
    return None


def _coefficients_problem(form, params: dict, what: str) -> str | None:
    """Whether ``params`` are ``form``'s, each value and interval within its bounds and each interval ordered."""
    if set(params) != set(form.params):
        return f"coefficients {', '.join(params)}, where the {form.name} form has {', '.join(form.params)}"
    for name, lower, upper in zip(form.params, form.lower, form.upper):
        value, (low, high) = params[name]["value"], params[name]["ci95"]
        if not all(lower <= v <= upper for v in (value, low, high)):
            bounds = f"at least {lower:g}" if upper == math.inf else f"in [{lower:g}, {upper:g}]"
            return f"{name} = {value:g} [{low:g}, {high:g}]: a {form.name} {what}'s {name} is {bounds}"
        if low > high:
            return f"{name}'s interval [{low:g}, {high:g}] runs backwards"
    return None


def _correlation_problem(form, correlation: list) -> str | None:
    k = len(form.params)
    if len({len(row) for row in correlation}) > 1:
        return "correlation rows of unequal lengths"
    correlation = np.array(correlation, dtype=float)
    if correlation.shape != (k, k):
        return f"correlation of shape {correlation.shape}, where the {form.name} form's is {k} x {k}"
    if np.any(np.abs(correlation - correlation.T) > _SYMMETRY) or np.any(np.diagonal(correlation) != 1):
        return "correlation is not symmetric with 1 on its diagonal"
    return None


def _curve_problem(phase: str, curve: dict) -> str | None:
    form = FORMS[curve["form"]]
    problem = _coefficients_problem(form, curve["params"], "curve")
    if problem:
        return problem
    if curve["domain"]["n_min"] > curve["domain"]["n_max"]:
        return f"domain {curve['domain']['n_min']}-{curve['domain']['n_max']} runs backwards"
    if "correlation" in curve:
        problem = _correlation_problem(form, curve["correlation"])
        if problem:
            return problem
    quadratic = next((c["params"] for c in curve["candidates"] if c["form"] == "quadratic"), None)
    if quadratic is None or not all(quadratic.get(name, -1) >= 0 for name in ("a", "b", "c")):
        return "no quadratic candidate with non-negative a, b and c (linearity horizons and size laws read it)"
    if "fitted_with" in curve and phase not in curve["fitted_with"]["phases"]:
        return f"fitted with {', '.join(curve['fitted_with']['phases'])}, which leaves out {phase} itself"
    if "fitted_with" in curve and tuple(curve["fitted_with"]["shared"]) != form.params[2:]:
        shared = ", ".join(curve["fitted_with"]["shared"]) or "nothing"
        return f"fitted jointly sharing {shared}, where a {form.name} curve shares {', '.join(form.params[2:]) or 'nothing'}"
    if "preferred" in curve and curve["preferred"] not in {c["form"] for c in curve["candidates"]}:
        return f"preferred form {curve['preferred']} is not among its candidates"
    if set(curve.get("growth_ceiling", {})) - set(form.params[2:]):
        return (f"a growth ceiling on {', '.join(curve['growth_ceiling'])}, where a {form.name} curve's growth is "
                f"{', '.join(form.params[2:]) or 'nothing'}")
    return None


def _surface_problem(phase: str, surface: dict) -> str | None:
    forms = form_names(phase)
    if surface["form"] not in forms:
        return f"form {surface['form']}, where a {phase} surface is one of {', '.join(forms)}"
    form = surface_form(phase, surface["form"], surface["params"])
    if form is None:
        return f"coefficients {', '.join(surface['params'])}: not a {surface['form']} form's (a_B per batch, then b)"
    problem = _coefficients_problem(form, surface["params"], f"{phase} surface") or _correlation_problem(
        form, surface["correlation"])
    if problem:
        return problem
    batches = [row["batch"] for row in surface["domain"]]
    if batches[0] != 1 or any(later <= earlier for earlier, later in pairwise(batches)):
        return f"domain batches {', '.join(map(str, batches))}: ascending from 1 (a surface is fitted with batch 1)"
    if isinstance(form, PerBatchForm) and form.batches.astype(int).tolist() != batches:
        return f"a_B for batches {', '.join(str(int(b)) for b in form.batches)}, where its domain's are " \
               f"{', '.join(map(str, batches))}"
    backwards = next((row for row in surface["domain"] if row["n_min"] > row["n_max"]), None)
    if backwards:
        return f"domain at batch {backwards['batch']}: n {backwards['n_min']}-{backwards['n_max']} runs backwards"
    if surface["held_out_points"] > surface["points"]:
        return f"{surface['held_out_points']} points held out of {surface['points']}"
    if any(candidate["form"] not in forms for candidate in surface["candidates"]) or surface["preferred"] not in forms:
        return f"a candidate or preferred form that is not a {phase} surface's ({', '.join(forms)})"
    return None


def _extend_problem(extend: dict) -> str | None:
    if extend["form"] not in EXTEND_FORMS:
        return f"form {extend['form']}, where the extend surface is one of {', '.join(EXTEND_FORMS)}"
    form = EXTEND_FORMS[extend["form"]]
    problem = _coefficients_problem(form, extend["params"], "extend surface") or _correlation_problem(
        form, extend["correlation"])
    if problem:
        return problem
    domain = extend["domain"]
    if not max(domain["c_max"], domain["s_max"]) <= domain["positions_max"] <= domain["c_max"] + domain["s_max"]:
        return (f"domain c_max {domain['c_max']}, s_max {domain['s_max']}: positions_max {domain['positions_max']} "
                "is not between the larger of the two and their sum")
    if extend["held_out_points"] > extend["points"]:
        return f"{extend['held_out_points']} points held out of {extend['points']}"
    names = [candidate["form"] for candidate in extend["candidates"]] + [extend["preferred"]]
    if any(name not in EXTEND_FORMS for name in names):
        return f"a candidate or preferred form that is not an extend surface's ({', '.join(EXTEND_FORMS)})"
    return None


def fit_problem(document: dict) -> str | None:
    """The first way ``document`` (valid against the schema) cannot price, in one line; None when it can."""
    problem = _non_finite(document, "")
    if problem:
        return problem
    curves = document["curves"]
    missing = [f"{metric} of {phase}" for phase, metric in REQUIRED_CURVES if metric not in curves.get(phase, {})]
    if missing:
        return f"no curve of {', '.join(missing)}: a cost model needs latency curves of prefill, decode and forward"
    flops = [phase for phase, metric in FLOPS_CURVES if metric in curves.get(phase, {})]
    if "params" in document["model"] and len(flops) < len(FLOPS_CURVES):
        return (f"no curve of {', '.join(f'flops of {p}' for p, _ in FLOPS_CURVES if p not in flops)}: a cost model "
                "of a model whose parameters are known needs FLOPs curves of prefill, decode and forward")
    if "params" not in document["model"] and flops:
        return (f"a flops curve of {', '.join(flops)} in the fit of a model whose parameters are not known (a served "
                "model fitted from latency alone has none)")
    for phase, metrics in curves.items():
        for metric, curve in metrics.items():
            problem = _curve_problem(phase, curve)
            if problem:
                return f"curves/{phase}/{metric}: {problem}"
    for phase, surface in document.get("surfaces", {}).items():
        problem = _surface_problem(phase, surface)
        if problem:
            return f"surfaces/{phase}: {problem}"
    problem = _extend_problem(document["extend"]) if "extend" in document else None
    if problem:
        return f"extend: {problem}"
    return None
