"""Fit one cost curve -- a phase's metric against context length -- on all raw samples.

Method, for each candidate form (``profiler.costmodel.forms``):

- residuals are relative, ``(f(n) - y) / y``: latencies span decades, and a 3% error at
  8 tokens matters as much as at 8192;
- a robust loss (``soft_l1`` with a 5% scale: quadratic below, linear above) so that a
  stray sample -- a pass caught by a slow spell -- does not move the curve;
- bounds keep every coefficient non-negative (no negative per-call or per-token cost);
- scipy's ``least_squares`` (trust-region reflective) with the analytic Jacobian.

The form is chosen by AICc, ``N ln(RSS/N) + 2k + 2k(k+1)/(N-k-1)``, with ``RSS`` twice the
robust loss at the optimum (so an outlier counts as the loss counts it); every candidate's
score is kept. Then, for the chosen form only:

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
  interval has correlation 0 with the others (1 with itself);
- R^2 of the log values (the relative scale the fit works on);
- held-out error: leave-one-context-length-out, the mean absolute percentage error of
  the refit's prediction of the left-out length's median;
- the measured domain, ``n_min`` and ``n_max``: predictions outside it are extrapolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from profiler.costmodel.forms import CURVE_FORMS, FORMS, Form
from profiler.costmodel.refit import REFIT_EVALUATIONS, bootstrap, solve

_RSS_FLOOR = 1e-12  # relative residuals of 1e-6, far below any timing noise: exact data (FLOPs) tie there
_EXACT = 1e-9  # a curve through every sample to this relative error has nothing to resample
_CORRELATION_DECIMALS = 6


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

    def predict(self, n):
        return self.form.evaluate(self.theta, n)

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
        })

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
        )


def aicc(rss: float, samples: int, k: int) -> float:
    rss = max(rss, samples * _RSS_FLOOR)
    penalty = 2 * k * (k + 1) / (samples - k - 1) if samples > k + 1 else math.inf
    return samples * math.log(rss / samples) + 2 * k + penalty


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    """R^2 of log values: on the relative scale the fit works on, so 8 and 8192 tokens count alike."""
    log_y = np.log(y)
    total = float(np.sum((log_y - log_y.mean()) ** 2))
    return 1.0 - float(np.sum((log_y - np.log(np.maximum(predicted, 1e-300))) ** 2)) / total if total > 0 else 1.0


def _lolo_mape(form: Form, n: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float | None:
    lengths = np.unique(n)
    if len(lengths) < len(form.params) + 1:
        return None
    errors = []
    for held_out in lengths:
        keep = n != held_out
        refit = solve(form, n[keep], y[keep], start=theta, max_nfev=REFIT_EVALUATIONS).x
        observed = float(np.median(y[~keep]))
        errors.append(abs(float(form.evaluate(refit, held_out)) - observed) / observed)
    return float(np.mean(errors))


def fit_curve(n, y, unit: str, forms: tuple[str, ...] = CURVE_FORMS, seed: int = 0) -> CurveFit:
    """Fit every candidate form to samples ``(n, y)``, choose by AICc, and qualify the choice."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    if len(n) == 0 or np.any(y <= 0):
        raise ValueError("fit_curve needs samples with positive values")
    candidates, best = [], None
    for name in forms:
        form = FORMS[name]
        result = solve(form, n, y)
        score = aicc(2 * result.cost, len(n), len(form.params))
        candidates.append({
            "form": name, "params": dict(zip(form.params, map(float, result.x))), "aicc": score,
            "r2": _r2(y, form.evaluate(result.x, n)), "converged": bool(result.success),
        })
        if best is None or score < best[0]:
            best = (score, form, result.x)
    _, form, theta = best
    exact = np.max(np.abs(form.evaluate(theta, n) / y - 1)) < _EXACT
    ci95, correlation = ((np.stack([theta, theta], axis=-1), np.eye(len(theta))) if exact
                         else bootstrap(form, n, y, theta, seed))
    return CurveFit(
        form=form,
        theta=theta,
        ci95=ci95,
        correlation=correlation,
        unit=unit,
        r2=_r2(y, form.evaluate(theta, n)),
        lolo_mape=_lolo_mape(form, n, y, theta),
        n_min=int(n.min()),
        n_max=int(n.max()),
        samples=len(n),
        candidates=candidates,
    )
