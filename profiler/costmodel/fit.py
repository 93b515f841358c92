"""Fit cost curves -- a phase's metric against context length -- on all raw samples; phases that do the
same work together.

Method, for each candidate form (``profiler.costmodel.forms``):

- residuals are relative, ``(f(n) - y) / y``: latencies span decades, and a 3% error at
  8 tokens matters as much as at 8192;
- a robust loss (``soft_l1`` with a 5% scale: quadratic below, linear above) so that a
  stray sample -- a pass caught by a slow spell -- does not move the curve;
- bounds keep every coefficient non-negative (no negative per-call or per-token cost);
- scipy's ``least_squares`` (trust-region reflective) with the analytic Jacobian;
- phases fitted together (``fit_phases``: prefill and forward, ``profiler.costmodel.phase_fits``)
  are one least-squares problem over all their samples (``profiler.costmodel.joint``): each phase
  its own overhead ``a`` and per-token cost ``b``, the quadratic's ``c`` or the power's ``p``
  shared, so the form and its growth are chosen once, from both phases' samples.

Every candidate's AICc, ``N ln(RSS/N) + 2k + 2k(k+1)/(N-k-1)``, is kept, with ``RSS`` twice the
robust loss at the optimum (so an outlier counts as the loss counts it); jointly fitted phases
share one score, over all their samples and coefficients. The form chosen is the lowest AICc's,
or where a form is ``preferred`` (the one whose terms are the phase's FLOP terms,
``profiler.costmodel.forms.STRUCTURED_FORMS``), that form unless another's AICc is lower by more
than ``AICC_MARGIN`` = 10 (Burnham and Anderson's "essentially no support" for a model 10 worse:
a likelihood ratio of e^5, about 150): a better score from a short range is not a reason to
extrapolate a power law. A power law whose exponent fitted below 1 is not chosen at all (``sublinear``): it
says a token costs less the more there are, which holds only over the short lengths where the per-pass
overhead and the matrix library's kernel choice by rows dominate, and it prices every longer pass too low
(gpt2 profiled from 1 token on this project's 2-core CPU: ``p`` = 0.67, beating the quadratic's AICc by 22,
priced its measured 512-token prefill at 0.65 s against 0.93 s), unless it is the only form asked for. Its
candidate entry keeps its score.

A time's growth beyond linear is capped by its phases' FLOPs (``flops_curvature``, their ``c / b``: attention's
FLOPs per token squared over the rest's per token), where those have a quadratic term (``growth_ceilings``): a
quadratic's ``c`` at most ``FLOPS_GROWTH_MAX`` = 4 times that ratio times ``b`` (the per-token cost of a straight
line through the same samples, which is at least the quadratic's own ``b``), so its n^2 term's share of its n term
at most 4 times the FLOPs'; a power's ``p`` at most the log-log slope at ``n_max`` of a quadratic so capped. Why:
over a short range a slow stretch at the longest length is read as attention. Qwen2.5-0.5B measured to 128 tokens
on this project's 2-core CPU, where attention is 1.5% of the FLOPs, fitted a ``c / b`` 42 times the FLOPs' and
priced 256 tokens at +53% and +71% (prefill, forward) of a pass measured there; fitted to 1,024 tokens, gpt2's
latency had 0.4 to 1.0 times its FLOPs' share in three default runs, SmolLM2-135M's 0 to 2.2 in five (to 512 or
1,024 tokens), so the cap binds only where the range cannot tell attention from a slow stretch. The cap a curve
was fitted under is in its file (``growth_ceiling``). Then, for the chosen form only:

- 95% intervals of the coefficients: a residual bootstrap, 200 refits of the fitted curve
  times one plus relative residuals drawn from all samples, percentile intervals (resampling
  within each length instead shrinks the spread by (r-1)/r for r repeats); a curve that
  passes through every sample (FLOPs are exact) has a point interval. The 200 refits run
  together, in numpy, minimising the same robust cost within the same bounds: Newton steps
  from the fit (Gauss-Newton's Hessian with the loss's curvature, exact for the polynomial
  forms; a coefficient on a bound that the gradient pushes past stays there), each halved
  until the cost does not rise, until a step moves no relative residual by more than 1e-8;
  a refit not converged within 30 steps is redone by ``least_squares`` (20 evaluations from
  the fit);
- the coefficients' joint spread: the correlation of the 200 refits' normal scores (each
  coefficient's ranks among the refits, ties averaged, mapped through the inverse standard
  normal CDF at ``rank / 201``). The intervals keep each coefficient's own spread, whatever
  its shape; what joins them is a Gaussian copula (``profiler.costmodel.uncertainty``), whose
  parameter is exactly this correlation: it is unchanged by any increasing map of a
  coefficient (log or linear scale alike), where a correlation of the values themselves would
  be bent by a skewed ``b`` or a ``p`` held at its bound. A coefficient with a point
  interval has correlation 0 with the others (1 with itself). A phase fitted jointly keeps its
  own coefficients' rows of the joint intervals and correlation;
- R^2 of the log values (the relative scale the fit works on), per phase;
- held-out error: leave-one-context-length-out (out of every phase at once), the mean absolute
  percentage error of the refit's prediction of the left-out length's median, per phase;
- the error of the slope beyond the data (``profiler.costmodel.extrapolation``): the form refitted
  without the last octave, its miss there; the bands widen beyond ``n_max`` by it;
- the measured domain, ``n_min`` and ``n_max``: predictions outside it are extrapolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from profiler.costmodel.extrapolation import slope_sd
from profiler.costmodel.forms import CURVE_FORMS, FORMS, Form
from profiler.costmodel.joint import JointForm
from profiler.costmodel.refit import REFIT_EVALUATIONS, bootstrap, solve

_RSS_FLOOR = 1e-12  # relative residuals of 1e-6, far below any timing noise: exact data (FLOPs) tie there
_EXACT = 1e-9  # a curve through every sample to this relative error has nothing to resample
_CORRELATION_DECIMALS = 6
AICC_MARGIN = 10.0  # how much lower another form's AICc must be to displace the preferred form (see the module doc)
FLOPS_GROWTH_MAX = 4.0  # how many times the FLOPs' share of growth beyond linear a time may have (see the module doc)


@dataclass
class CurveFit:
    """A fitted curve: the chosen form, its coefficients with intervals, and how good it is."""

    form: Form
    theta: np.ndarray
    ci95: np.ndarray  # (k, 2)
    unit: str
    r2: float
    lolo_mape: float | None
    n_min: int
    n_max: int
    samples: int
    candidates: list[dict] = field(default_factory=list)
    correlation: np.ndarray | None = None  # (k, k) of the bootstrap's normal scores; None: not recorded (before 1.2)
    fitted_with: dict | None = None  # {"phases": [...], "shared": [...]} when fitted jointly (since 1.4)
    preferred: str | None = None  # the form preferred unless another's AICc is lower by AICC_MARGIN (since 1.4)
    extrapolation_slope_sd: float | None = None  # log-log slope error beyond n_max; None: not calibrated
    growth_ceiling: dict[str, float] | None = None  # the FLOPs' ceiling on a growth coefficient (since 1.12)

    def predict(self, n):
        return self.form.evaluate(self.theta, n)

    @property
    def at_growth_ceiling(self) -> bool:
        """Whether a coefficient reached its ``growth_ceiling``: the samples would have bent the curve further."""
        values = dict(zip(self.form.params, map(float, self.theta)))
        ceilings = self.growth_ceiling or {}
        return any(values.get(name, 0.0) >= ceiling * (1 - 1e-6) for name, ceiling in ceilings.items())

    def candidate_params(self, form_name: str) -> dict[str, float]:
        """The coefficients that the candidate ``form_name`` reached, chosen or not."""
        return next(c for c in self.candidates if c["form"] == form_name)["params"]

    def in_domain(self, n) -> bool:
        n = np.asarray(n)
        return bool(np.all((n >= self.n_min) & (n <= self.n_max)))

    def as_dict(self) -> dict:
        return {
            "form": self.form.name,
            "formula": self.form.formula,
            "unit": self.unit,
            "params": {
                name: {"value": float(v), "ci95": [float(lo), float(hi)]}
                for name, v, (lo, hi) in zip(self.form.params, self.theta, self.ci95)
            },
            "r2": self.r2,
            "lolo_mape": self.lolo_mape,
            "domain": {"n_min": self.n_min, "n_max": self.n_max},
            "samples": self.samples,
            "candidates": self.candidates,
        } | ({} if self.correlation is None else {
            # 6 decimals: far below the sampling error of 200 refits, (1 - r^2) / sqrt(200), even at |r| = 0.9999
            "correlation": np.round(self.correlation, _CORRELATION_DECIMALS).tolist(),
        }) | ({} if self.fitted_with is None else {
            "fitted_with": {"phases": list(self.fitted_with["phases"]), "shared": list(self.fitted_with["shared"])},
        }) | {key: value for key, value in (("preferred", self.preferred),
                                            ("extrapolation_slope_sd", self.extrapolation_slope_sd),
                                            ("growth_ceiling", self.growth_ceiling))
              if value is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "CurveFit":
        form = FORMS[data["form"]]
        params = data["params"]
        correlation = np.array(data["correlation"], dtype=float) if "correlation" in data else None
        if correlation is not None and correlation.shape != (len(form.params),) * 2:
            raise ValueError(f"a {form.name} curve's correlation must be {len(form.params)} x {len(form.params)}, "
                             f"not {' x '.join(map(str, correlation.shape))}")
        return cls(
            form=form,
            theta=np.array([params[name]["value"] for name in form.params]),
            ci95=np.array([params[name]["ci95"] for name in form.params]),
            unit=data["unit"],
            r2=data["r2"],
            lolo_mape=data["lolo_mape"],
            n_min=data["domain"]["n_min"],
            n_max=data["domain"]["n_max"],
            samples=data["samples"],
            candidates=data["candidates"],
            correlation=correlation,
            fitted_with=data.get("fitted_with"),
            preferred=data.get("preferred"),
            extrapolation_slope_sd=data.get("extrapolation_slope_sd"),
            growth_ceiling=data.get("growth_ceiling"),
        )


def aicc(rss: float, samples: int, k: int) -> float:
    rss = max(rss, samples * _RSS_FLOOR)
    penalty = 2 * k * (k + 1) / (samples - k - 1) if samples > k + 1 else math.inf
    return samples * math.log(rss / samples) + 2 * k + penalty


def log_r2(y: np.ndarray, predicted: np.ndarray) -> float:
    """R^2 of log values: on the relative scale the fit works on, so 8 and 8192 tokens count alike. Values the same
    at every length have no variation to explain: 1 where the curve is that value, else 0."""
    log_y = np.log(y)
    total = float(np.sum((log_y - log_y.mean()) ** 2))
    residual = float(np.sum((log_y - np.log(np.maximum(predicted, 1e-300))) ** 2))
    if total <= _RSS_FLOOR:  # the same value at every length (an attention-free model's decode FLOPs): none to explain
        return 1.0 if residual <= _RSS_FLOOR else 0.0
    return 1.0 - residual / total


def _lolo_mape(form: JointForm, n: np.ndarray, y: np.ndarray, theta: np.ndarray) -> list[float | None]:
    """Each phase's held-out error: every measured length left out of all phases in turn, the form refitted
    to the rest, the refit's prediction of each phase's median there. None for a phase measured at fewer
    lengths than its curve has coefficients, plus one."""
    errors: list[list[float]] = [[] for _ in range(form.groups)]
    enough = [len(np.unique(n[form.group == g])) >= len(form.base.params) + 1 for g in range(form.groups)]
    for held_out in np.unique(n):
        keep = n != held_out
        refit = solve(form.subset(keep), n[keep], y[keep], start=theta, max_nfev=REFIT_EVALUATIONS).x
        for g in np.unique(form.group[~keep]):
            observed = float(np.median(y[~keep & (form.group == g)]))
            errors[g].append(abs(float(form.base.evaluate(form.of_phase(refit, g), held_out)) - observed) / observed)
    return [float(np.mean(e)) if ok else None for e, ok in zip(errors, enough)]


def choose(scores: dict[str, float], preferred: str | None = None) -> str:
    """The form of lowest AICc; or ``preferred`` (if a candidate), unless another's AICc is lower than its own
    by more than ``AICC_MARGIN``."""
    best = min(scores, key=scores.get)
    if preferred in scores and scores[preferred] - scores[best] <= AICC_MARGIN:
        return preferred
    return best


def sublinear(form, result) -> bool:
    """Whether a fitted candidate (``form`` and its ``least_squares`` ``result``) is a power law with an exponent
    below 1, which is not chosen (module doc)."""
    return "p" in form.params and float(result.x[form.params.index("p")]) < 1


def growth_ceilings(form: Form, flops_curvature: float | None, per_token: float, n_max: float) -> dict[str, float]:
    """The ceiling on ``form``'s growth beyond linear where the phases' FLOPs grow so (module doc): a quadratic's
    ``c`` at most ``FLOPS_GROWTH_MAX * flops_curvature * per_token``, a power's ``p`` at most the log-log slope
    at ``n_max`` of a quadratic so bounded, ``1 + x / (1 + x)`` with ``x = FLOPS_GROWTH_MAX * flops_curvature *
    n_max``. ``flops_curvature``: the FLOPs' ``c / b`` (1/token); ``per_token``: the affine fit's largest ``b``.
    None where the FLOPs have no quadratic term (an attention-free model's) or are not known (a served model)."""
    if not flops_curvature or flops_curvature <= 0:
        return {}
    share = FLOPS_GROWTH_MAX * flops_curvature
    if "c" in form.params:
        return {"c": float(max(share * per_token, 1e-300))}  # above the lower bound 0, as least_squares needs
    if "p" in form.params:
        return {"p": float(1 + share * n_max / (1 + share * n_max))}
    return {}


def fit_phases(samples: dict[str, tuple], unit: str, forms: tuple[str, ...] = CURVE_FORMS, seed: int = 0,
               preferred: str | None = None, flops_curvature: float | None = None) -> dict[str, CurveFit]:
    """Fit one form to several phases' samples ``{phase: (n, y)}`` together (``JointForm``: each phase its own
    ``a`` and ``b``, the rest shared), every candidate form, choose it by the joint AICc (``choose``), qualify
    the choice, and return each phase's curve. One phase is ``fit_curve``. ``flops_curvature``: the phases' FLOPs'
    ``c / b``, which caps each form's growth beyond linear (``growth_ceilings``); None: no cap."""
    phases = list(samples)
    n = np.concatenate([np.asarray(samples[p][0], dtype=float) for p in phases])
    y = np.concatenate([np.asarray(samples[p][1], dtype=float) for p in phases])
    group = np.concatenate([np.full(len(samples[p][0]), g) for g, p in enumerate(phases)])
    if len(n) == 0 or np.any(y <= 0) or any(len(samples[p][0]) == 0 for p in phases):
        raise ValueError("fitting needs samples with positive values of every phase")
    solved, scores, per_token = {}, {}, 0.0
    if flops_curvature:  # the ceilings' scale: the per-token cost of a straight line through the samples
        affine = JointForm(FORMS["affine"], group, len(phases))
        solved["affine"] = (affine, solve(affine, n, y))  # the affine candidate too, where it is one
        per_token = max(float(affine.of_phase(solved["affine"][1].x, g)[1]) for g in range(len(phases)))
    for name in forms:
        if name not in solved:
            ceilings = growth_ceilings(FORMS[name], flops_curvature, per_token, float(n.max()))
            form = JointForm(FORMS[name], group, len(phases), ceilings)
            solved[name] = (form, solve(form, n, y))
        scores[name] = aicc(2 * solved[name][1].cost, len(n), len(solved[name][0].params))
    solved = {name: solved[name] for name in forms}  # the candidates asked for, in their order
    eligible = {name: score for name, score in scores.items() if not sublinear(*solved[name])}
    chosen = choose(eligible or scores, preferred)
    form, theta = solved[chosen][0], solved[chosen][1].x
    exact = np.max(np.abs(form.evaluate(theta, n) / y - 1)) < _EXACT
    ci95, correlation = ((np.stack([theta, theta], axis=-1), np.eye(len(theta))) if exact
                         else bootstrap(form, n, y, theta, seed))
    lolo = _lolo_mape(form, n, y, theta)
    slope = 0.0 if exact else slope_sd(form, n, y, theta)
    curves = {}
    for g, phase in enumerate(phases):
        mine, columns = group == g, form.columns[g]
        candidates = [{
            "form": name, "params": dict(zip(FORMS[name].params, map(float, f.of_phase(r.x, g)))),
            "aicc": scores[name], "r2": log_r2(y[mine], f.evaluate(r.x, n)[mine]), "converged": bool(r.success),
        } for name, (f, r) in solved.items()]
        curves[phase] = CurveFit(
            form=form.base, theta=theta[columns], ci95=ci95[columns], correlation=correlation[np.ix_(columns, columns)],
            unit=unit, r2=log_r2(y[mine], form.evaluate(theta, n)[mine]), lolo_mape=lolo[g],
            n_min=int(n[mine].min()), n_max=int(n[mine].max()), samples=int(mine.sum()), candidates=candidates,
            fitted_with={"phases": list(phases), "shared": list(form.shared)} if len(phases) > 1 else None,
            preferred=preferred if preferred in scores else None, extrapolation_slope_sd=slope,
            growth_ceiling=form.ceilings or None,
        )
    return curves


def fit_curve(n, y, unit: str, forms: tuple[str, ...] = CURVE_FORMS, seed: int = 0,
              preferred: str | None = None) -> CurveFit:
    """Fit every candidate form to samples ``(n, y)``, choose by AICc (``choose``), and qualify the choice."""
    return fit_phases({"": (n, y)}, unit, forms, seed, preferred)[""]
