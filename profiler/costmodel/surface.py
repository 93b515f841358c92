"""Batch surfaces: a phase's latency against the batch ``B`` and the context length ``n``, fitted on every
sample of the phase (batch 1 included), chosen and qualified as the curves are (``profiler.costmodel.fit``).

Method, for each candidate form of the phase (``profiler.costmodel.surface_forms``):

- ``refit.solve``: relative residuals, ``soft_l1`` loss with a 5% scale, non-negative coefficients
  (``q`` in [1, 16]), scipy's trust-region reflective method with the analytic Jacobian; a roofline
  from several starting points (``SurfaceForm.starts``), the lowest cost kept;
- a candidate is fitted only where it is fixed: more distinct ``(B, n)`` points than coefficients (and for the
  per-batch form, every batch at two lengths or more, or three batches or more: ``per_batch_form.fixes``);
- every candidate's AICc (twice the robust loss as RSS, as the curves'); the compute form is kept
  unless the roofline's is lower by more than ``fit.AICC_MARGIN`` (``surface_forms.PREFERRED_SURFACE``), and
  decode's per-batch form (``profiler.costmodel.per_batch_form``: a per-pass cost of its own per batch size, where
  the BLAS's kernel choice makes it no law in ``B``) only when lower than that choice by more than the margin, as
  the last resort: its coefficients follow no structure, and between the measured batches it is only linear;
- for the chosen form: 95% intervals and the correlation of the normal scores of 200 residual-bootstrap
  refits (``refit.bootstrap``), R^2 of the log values, and the held-out error: each ``(B, n)`` point left
  out in turn, the form refitted to the rest (20 evaluations from the fit), the mean absolute percentage
  error of its prediction of the point's median latency. At most ``MAX_HELD_OUT_POINTS`` points are held
  out, an even spread over the points in ``(B, n)`` order (bounded work: one refit each);
- the measured domain: per batch measured, its shortest and longest ``n``. A batch between two measured
  ones is inside for the lengths both of them cover (``outside``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiler.costmodel import per_batch_form
from profiler.costmodel.fit import AICC_MARGIN, aicc, choose, log_r2
from profiler.costmodel.refit import REFIT_EVALUATIONS, bootstrap, solve
from profiler.costmodel.surface_forms import PREFERRED_SURFACE, SURFACE_FORMS

MAX_HELD_OUT_POINTS = 128
_EXACT = 1e-9  # as the curves': a surface through every sample to this relative error has nothing to resample
_CORRELATION_DECIMALS = 6


def form_names(phase: str) -> tuple[str, ...]:
    """The names a ``phase`` surface's form may have: decode's include ``per-batch``."""
    return (*SURFACE_FORMS[phase], *((per_batch_form.NAME,) if phase == "decode" else ()))


def surface_form(phase: str, name: str, param_names):
    """The form ``name`` of a ``phase`` surface whose coefficients are ``param_names`` (a per-batch form's say its
    batch sizes); None when there is no such form."""
    if name in SURFACE_FORMS.get(phase, {}):
        return SURFACE_FORMS[phase][name]
    batches = per_batch_form.batches_of(param_names) if name in form_names(phase) else None
    return per_batch_form.PerBatchForm(batches) if batches else None


def points_of(batch, n) -> np.ndarray:
    """Points ``(..., 2)`` of ``batch`` and ``n`` broadcast together, as the forms take them."""
    return np.stack(np.broadcast_arrays(np.asarray(batch, dtype=float), np.asarray(n, dtype=float)), axis=-1)


@dataclass
class ChosenForm:
    """A form chosen among candidates over 2-D points and qualified (``choose_form``): what a batch surface and
    the extend surface (``profiler.costmodel.extend``) hold beyond their domains, and its JSON."""

    form: object  # a SurfaceForm, or an extend_forms.ExtendForm
    theta: np.ndarray
    ci95: np.ndarray  # (k, 2)
    correlation: np.ndarray  # (k, k) of the bootstrap's normal scores
    r2: float
    held_out_mape: float
    held_out_points: int
    points: int
    samples: int
    candidates: list[dict]
    preferred: str

    def chosen_json(self) -> dict:
        """The fields of ``ChosenForm`` as a fit document holds them (``unit``: seconds)."""
        return {
            "form": self.form.name,
            "formula": self.form.formula,
            "unit": "s",
            "params": {name: {"value": float(v), "ci95": [float(lo), float(hi)]}
                       for name, v, (lo, hi) in zip(self.form.params, self.theta, self.ci95)},
            "correlation": np.round(self.correlation, _CORRELATION_DECIMALS).tolist(),
            "r2": self.r2,
            "held_out_mape": self.held_out_mape,
            "held_out_points": self.held_out_points,
            "points": self.points,
            "samples": self.samples,
            "candidates": self.candidates,
            "preferred": self.preferred,
        }

    @staticmethod
    def chosen_fields(form, data: dict) -> dict:
        """``ChosenForm``'s fields read from ``data`` (as ``chosen_json`` writes it), for ``form``."""
        params = data["params"]
        return {
            "form": form,
            "theta": np.array([params[name]["value"] for name in form.params], dtype=float),
            "ci95": np.array([params[name]["ci95"] for name in form.params], dtype=float),
            "correlation": np.array(data["correlation"], dtype=float),
            "r2": data["r2"], "held_out_mape": data["held_out_mape"], "held_out_points": data["held_out_points"],
            "points": data["points"], "samples": data["samples"], "candidates": data["candidates"],
            "preferred": data["preferred"],
        }


@dataclass
class SurfaceFit(ChosenForm):
    """A phase's fitted batch surface (latency, seconds): the chosen form (a ``SurfaceForm``), its coefficients
    with intervals, how good it is, and where it was measured (``domain``: rows of batch, n_min, n_max,
    ascending batch)."""

    domain: np.ndarray  # (batches, 3) of whole numbers

    @property
    def batch_max(self) -> int:
        return int(self.domain[-1, 0])

    def predict(self, batch, n):
        """Seconds of one pass of ``batch`` sequences at ``n`` tokens each (arrays broadcast)."""
        return self.form.evaluate(self.theta, points_of(batch, n))

    def steps_sum(self, batch, lo, hi):
        """Seconds of the passes at ``n = lo..hi`` with ``batch`` sequences, in closed form (decode)."""
        return self.form.steps_sum(self.theta, batch, lo, hi)

    def outside(self, batch, lo, hi) -> bool:
        """Whether any non-empty range of lengths ``lo..hi`` at ``batch`` leaves the measured domain."""
        batch, lo, hi = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (batch, lo, hi)))
        batches, n_min, n_max = self.domain.T.astype(float)
        above = np.clip(np.searchsorted(batches, batch, side="left"), 0, len(batches) - 1)
        below = np.clip(np.searchsorted(batches, batch, side="right") - 1, 0, len(batches) - 1)
        shortest, longest = np.maximum(n_min[below], n_min[above]), np.minimum(n_max[below], n_max[above])
        beyond = (batch < batches[0]) | (batch > batches[-1]) | (lo < shortest) | (hi > longest)
        return bool(np.any((hi >= lo) & beyond))

    def as_dict(self) -> dict:
        return self.chosen_json() | {
            "domain": [{"batch": int(b), "n_min": int(lo), "n_max": int(hi)} for b, lo, hi in self.domain]}

    @classmethod
    def from_dict(cls, phase: str, data: dict) -> SurfaceFit:
        return cls(**cls.chosen_fields(surface_form(phase, data["form"], data["params"]), data),
                   domain=np.array([[d["batch"], d["n_min"], d["n_max"]] for d in data["domain"]], dtype=np.int64))


def _best_solve(form, x: np.ndarray, y: np.ndarray):
    """The lowest-cost of the fits from each of the form's starting points."""
    return min((solve(form, x, y, start=start) for start in form.starts(x, y)), key=lambda result: result.cost)


def held_out_errors(form, x: np.ndarray, y: np.ndarray, theta: np.ndarray):
    """Leave one point out, over at most ``MAX_HELD_OUT_POINTS`` points (an even spread in the points' sorted
    order): the points held out (``(P, 2)``) and each one's absolute relative miss of its median latency by the
    form refitted without it, from ``theta`` (a per-batch form without the batch of a point that was its batch's
    only one: ``PerBatchForm.without_unmeasured``)."""
    points, which = np.unique(x, axis=0, return_inverse=True)
    which = which.ravel()
    held = np.unique(np.round(np.linspace(0, len(points) - 1, min(len(points), MAX_HELD_OUT_POINTS))).astype(int))
    errors = []
    for p in held:
        keep = which != p
        kept_form, start = (form.without_unmeasured(x[keep], theta) if form.name == per_batch_form.NAME
                            else (form, theta))
        refit = solve(kept_form, x[keep], y[keep], start=start, max_nfev=REFIT_EVALUATIONS).x
        observed = float(np.median(y[~keep]))
        errors.append(abs(float(kept_form.evaluate(refit, points[p])) - observed) / observed)
    return points[held], np.array(errors)


def choose_form(forms: dict, preferred: str, x: np.ndarray, y: np.ndarray, seed: int,
                last_resorts: tuple[str, ...] = ()) -> ChosenForm:
    """Fit each of ``forms`` (name -> form, all fixed by the points) to samples ``y`` at points ``x`` (``(N, 2)``),
    choose one by AICc with ``preferred`` kept unless another is lower by more than ``fit.AICC_MARGIN`` (and
    the lowest of ``last_resorts`` only when lower by more than that than the form chosen among the others), and
    qualify it: bootstrap intervals and correlation, R^2 of the logs, held-out error (module doc)."""
    solved, scores = {}, {}
    for name, form in forms.items():
        solved[name] = _best_solve(form, x, y)
        scores[name] = aicc(2 * solved[name].cost, len(y), len(form.params))
    chosen = choose({name: score for name, score in scores.items() if name not in last_resorts}, preferred)
    resort = min((name for name in last_resorts if name in scores), key=scores.get, default=None)
    if resort is not None and scores[chosen] - scores[resort] > AICC_MARGIN:
        chosen = resort
    form, theta = forms[chosen], solved[chosen].x
    if np.max(np.abs(form.evaluate(theta, x) / y - 1)) < _EXACT:
        ci95, correlation = np.stack([theta, theta], axis=-1), np.eye(len(theta))
    else:
        ci95, correlation = bootstrap(form, x, y, theta, seed)
    held_out = held_out_errors(form, x, y, theta)[1]
    candidates = [{
        "form": name, "params": dict(zip(forms[name].params, map(float, result.x))),
        "aicc": scores[name], "r2": log_r2(y, forms[name].evaluate(result.x, x)), "converged": bool(result.success),
    } for name, result in solved.items()]
    return ChosenForm(form=form, theta=theta, ci95=ci95, correlation=correlation, r2=log_r2(y, form.evaluate(theta, x)),
                      held_out_mape=float(np.mean(held_out)), held_out_points=len(held_out),
                      points=len(np.unique(x, axis=0)), samples=len(y), candidates=candidates, preferred=preferred)


def fixed_forms(phase: str, batch, n) -> dict:
    """The candidate forms of ``phase`` (name -> form) that samples at ``(batch, n)`` can fix: more distinct points
    than the form has coefficients, and two or more batches (one batch cannot tell a pass's cost from a
    sequence's); for decode, the per-batch form over the batches measured where they fix it with any point held
    out (``per_batch_form.fixes``)."""
    points = np.unique(points_of(batch, n), axis=0)
    batches = np.unique(points[:, 0])
    if len(batches) < 2:
        return {}
    forms = dict(SURFACE_FORMS[phase])
    if phase == "decode" and per_batch_form.fixes(points[:, 0], points[:, 1]):
        forms[per_batch_form.NAME] = per_batch_form.PerBatchForm(batches)
    return {name: form for name, form in forms.items() if len(points) > len(form.params)}


def fit_surface(phase: str, batch, n, latency_s, seed: int = 0) -> SurfaceFit:
    """Fit ``phase``'s candidate surfaces to samples at ``(batch, n)``, choose one and qualify it (module doc).
    A ``ValueError`` when no form is fixed by them (``fixed_forms``) or a latency is not positive."""
    x = points_of(batch, n).reshape(-1, 2)
    y = np.asarray(latency_s, dtype=float).ravel()
    if len(y) != len(x) or np.any(y <= 0):
        raise ValueError("a surface is fitted to positive latencies, one per (batch, n) sample")
    forms = fixed_forms(phase, x[:, 0], x[:, 1])
    if not forms:
        raise ValueError(f"too few (batch, n) points to fix a {phase} surface")
    chosen = choose_form(forms, PREFERRED_SURFACE, x, y, seed, last_resorts=(per_batch_form.NAME,))
    batches = np.unique(x[:, 0])
    domain = np.array([[b, x[x[:, 0] == b, 1].min(), x[x[:, 0] == b, 1].max()] for b in batches], dtype=np.int64)
    return SurfaceFit(**vars(chosen), domain=domain)
