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

LOSS, LOSS_SCALE = "soft_l1", 0.05
BOOTSTRAP_RESAMPLES = 200
_RSS_FLOOR = 1e-12  # relative residuals of 1e-6, far below any timing noise: exact data (FLOPs) tie there
_EXACT = 1e-9  # a curve through every sample to this relative error has nothing to resample
_REFIT_EVALUATIONS = 20  # refits start at the fit; a flat curve pinned at a bound must not spin
_NEWTON_STEPS = 30  # a batched refit takes about 5 from the fit; a row still moving after these falls back
_HALVINGS = 30  # a step halved this often that still raises the cost has stalled: its row falls back
_CONVERGED_MOVE = 1e-8  # a step moving no relative residual by more ends a refit: below noise, above rounding
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


def _solve(form: Form, n: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, max_nfev: int | None = None):
    def residuals(theta):
        return (form.evaluate(theta, n) - y) / y

    def jacobian(theta):
        return form.jacobian(theta, n) / y[:, None]

    from scipy.optimize import least_squares  # only fitting needs it: a fit is read without scipy

    x0 = np.clip(form.initial(n, y) if start is None else start, form.lower, form.upper)
    return least_squares(residuals, x0, jac=jacobian, bounds=(form.lower, form.upper), loss=LOSS,
                         f_scale=LOSS_SCALE, x_scale="jac", method="trf", max_nfev=max_nfev)


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
        refit = _solve(form, n[keep], y[keep], start=theta, max_nfev=_REFIT_EVALUATIONS).x
        observed = float(np.median(y[~keep]))
        errors.append(abs(float(form.evaluate(refit, held_out)) - observed) / observed)
    return float(np.mean(errors))


def _soft_l1_cost(relative: np.ndarray) -> np.ndarray:
    """The cost ``least_squares`` minimises with ``LOSS`` (soft_l1) and ``LOSS_SCALE``, one per row of
    relative residuals: ``s^2 sum(sqrt(1 + (r/s)^2) - 1)``."""
    return LOSS_SCALE**2 * np.sum(np.sqrt(1 + (relative / LOSS_SCALE) ** 2) - 1, axis=-1)


def _relative_residuals(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """``(f(n) - y) / y`` of each row's curve ``thetas`` (B, k) against its samples ``ys`` (B, N)."""
    return form.evaluate(thetas[:, None, :], n) / ys - 1


def _scaled_newton_steps(gradient: np.ndarray, hessian: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Newton steps ``-H^-1 g`` (B, k) of the ``free`` coefficients, the others held: solved with the
    Hessian scaled to a unit diagonal (coefficients decades apart solve alike), by pseudo-inverse
    (collinear terms get the shortest step)."""
    scale = np.sqrt(np.diagonal(hessian, axis1=1, axis2=2))
    scale = np.where(scale > 0, scale, 1.0)
    scaled = np.where(free[:, :, None] & free[:, None, :], hessian / scale[:, :, None] / scale[:, None, :], 0.0)
    return -np.einsum("bjk,bk->bj", np.linalg.pinv(scaled), np.where(free, gradient / scale, 0.0)) / scale


def _newton_steps(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's bounded Newton step on the soft_l1 cost, and how far it moves the curve.

    The gradient is ``J^T (r / sqrt(1 + z))`` and the Hessian Gauss-Newton's with the loss's
    curvature, ``J^T diag((1 + z)^-1.5) J``, for ``z = (r/s)^2`` (as scipy's trf scales its
    Jacobian): exact for the polynomial forms, which are linear in theta. A coefficient is on a
    bound when going there would move no relative residual by more than ``_CONVERGED_MOVE`` (scipy
    stops just inside), and stays put there if the gradient pushes it past; the others take the
    Newton step. Returns the steps (B, k) and, per row, the largest change the step makes to a
    relative residual, ``max |J step|`` (B,).
    """
    relative = _relative_residuals(form, n, ys, thetas)
    jacobian = form.jacobian(thetas[:, None, :], n) / ys[..., None]
    slope = 1 / np.sqrt(1 + (relative / LOSS_SCALE) ** 2)  # the loss's derivative; its curvature is slope^3
    gradient = np.einsum("bn,bnk->bk", slope * relative, jacobian)
    hessian = np.einsum("bn,bnj,bnk->bjk", slope**3, jacobian, jacobian)
    reach = np.max(np.abs(jacobian), axis=1)  # the most a unit of each coefficient moves a relative residual
    at_lower = reach * (thetas - form.lower) <= _CONVERGED_MOVE
    at_upper = reach * (form.upper - thetas) <= _CONVERGED_MOVE
    free = ~((at_lower & (gradient > 0)) | (at_upper & (gradient < 0)))
    steps = _scaled_newton_steps(gradient, hessian, free)
    return steps, np.max(np.abs(np.einsum("bnk,bk->bn", jacobian, steps)), axis=1)


def _line_search(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray, steps: np.ndarray,
                 moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the ``moving`` rows along their steps, clipped to the bounds, halving a step until the
    cost does not rise. Returns the new coefficients and the rows whose every halving raised it."""
    cost = _soft_l1_cost(_relative_residuals(form, n, ys, thetas))
    fraction = np.ones(len(thetas))
    moved, pending = thetas.copy(), moving.copy()
    for _ in range(_HALVINGS):
        trial = np.clip(thetas + fraction[:, None] * steps, form.lower, form.upper)
        accepted = pending & (_soft_l1_cost(_relative_residuals(form, n, ys, trial)) <= cost)
        moved[accepted] = trial[accepted]
        pending &= ~accepted
        if not pending.any():
            break
        fraction[pending] /= 2
    return moved, pending


def _refit_batched(form: Form, n: np.ndarray, ys: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refit the curve to every row of samples ``ys`` (B, N) at once, starting from ``theta``, by
    bounded Newton steps with a line search. A row has converged at a step that moves no relative
    residual by more than ``_CONVERGED_MOVE``: that step is its last, taken whole (too small for
    the line search to judge). Returns the coefficients (B, k) and which rows converged."""
    thetas = np.tile(theta, (len(ys), 1))
    converged, moving = np.zeros(len(ys), dtype=bool), np.ones(len(ys), dtype=bool)
    for _ in range(_NEWTON_STEPS):
        steps, move = _newton_steps(form, n, ys, thetas)
        last = moving & (move <= _CONVERGED_MOVE)
        thetas[last] = np.clip(thetas[last] + steps[last], form.lower, form.upper)
        converged |= last
        moving &= ~last
        if not moving.any():
            break
        thetas, stalled = _line_search(form, n, ys, thetas, steps, moving)
        moving &= ~stalled
    return thetas, converged


def _refit(form: Form, n: np.ndarray, ys: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The coefficients refitted to each row of ``ys``: batched, and by ``least_squares`` for a row
    that the batched solve did not converge on."""
    thetas, converged = _refit_batched(form, n, ys, theta)
    for row in np.flatnonzero(~converged):
        thetas[row] = _solve(form, n, ys[row], start=theta, max_nfev=_REFIT_EVALUATIONS).x
    return thetas


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..B within each column of ``values`` (B, k); tied values (a coefficient held at its bound in
    several refits) share their average rank."""
    ranks = np.empty_like(values, dtype=float)
    for j, column in enumerate(values.T):
        _, which, counts = np.unique(column, return_inverse=True, return_counts=True)
        ranks[:, j] = (np.cumsum(counts) - (counts - 1) / 2)[which]
    return ranks


def normal_score_correlation(refits: np.ndarray, ci95: np.ndarray) -> np.ndarray:
    """Correlation (k, k) of the normal scores of ``refits`` (B, k), column by column (see the module doc);
    a coefficient whose interval ``ci95`` (k, 2) is a point is uncorrelated with the others."""
    from scipy.special import ndtri  # as for least_squares; scipy.stats would add seconds more

    scores = ndtri(_average_ranks(refits) / (len(refits) + 1))
    centred = scores - scores.mean(axis=0)
    sd = np.sqrt(np.mean(centred**2, axis=0))
    spread = (ci95[:, 1] > ci95[:, 0]) & (sd > 0)
    standardised = np.where(spread, centred / np.where(spread, sd, 1.0), 0.0)
    correlation = standardised.T @ standardised / len(refits)
    np.fill_diagonal(correlation, 1.0)
    return np.clip(correlation, -1.0, 1.0)


def _bootstrap(form: Form, n: np.ndarray, y: np.ndarray, theta: np.ndarray, seed: int):
    """Residual bootstrap: the fitted curve times one plus relative residuals drawn from all samples.
    Returns the coefficients' percentile intervals (k, 2) and their normal scores' correlation (k, k)."""
    rng = np.random.default_rng(seed)
    fitted = form.evaluate(theta, n)
    relative = y / fitted - 1
    resampled = fitted * (1 + rng.choice(relative, size=(BOOTSTRAP_RESAMPLES, len(relative))))
    refits = _refit(form, n, resampled, theta)
    ci95 = np.percentile(refits, [2.5, 97.5], axis=0).T
    return ci95, normal_score_correlation(refits, ci95)


def fit_curve(n, y, unit: str, forms: tuple[str, ...] = CURVE_FORMS, seed: int = 0) -> CurveFit:
    """Fit every candidate form to samples ``(n, y)``, choose by AICc, and qualify the choice."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    if len(n) == 0 or np.any(y <= 0):
        raise ValueError("fit_curve needs samples with positive values")
    candidates, best = [], None
    for name in forms:
        form = FORMS[name]
        result = _solve(form, n, y)
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
                         else _bootstrap(form, n, y, theta, seed))
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
