"""Joint draws of a cost model's coefficients: 95% bands of its curves and 95% intervals of whole calls.

A fit file holds each coefficient's 95% interval (percentiles of the fit's residual
bootstrap, ``profiler.costmodel.fit``) and, since schema 1.2, the correlation of the
bootstrap refits' normal scores; not the refits themselves. A curve's coefficients are
strongly correlated (a higher per-call overhead goes with a lower per-token cost; for
``a + b n^p`` a larger ``b`` with a smaller ``p``), so the ends of their intervals must not
be combined freely: all lower ends together would give a band many times too wide.

Model (a Gaussian copula): coefficient ``j`` is ``F_j(z_j)`` for ``z ~ N(0, R)``, where

- the marginal ``F_j`` passes through the fitted value at ``z = 0`` and through the
  interval's ends at ``z = -1.96`` and ``z = +1.96``, linearly in ``z`` on each side, on the
  log scale for a coefficient whose interval is positive (``b`` in [25, 13464] around 770
  spreads by factors, not by thousands) and on the linear scale otherwise;
- ``R`` is the curve's stored correlation (schema 1.2: the normal scores of the 200
  bootstrap refits, the copula's own parameter). A file of schema 1.0 or 1.1 has none; for
  those ``R`` is that of a least-squares fit with relative residuals (as the fit weighs them)
  on a half-octave grid of lengths across the measured domain (the default grid of a run):
  from ``(J^T J)^-1`` with ``J = (d f / d theta) / f`` at the fit (``design_correlation``).

``DRAWS`` draws (fixed seed) of each curve, one (draws, k) array. A curve's band at ``n`` is
the 2.5 and 97.5 percentiles of the drawn curves there, and a call's interval those of the
call priced with each draw. Everything is evaluated for all draws at once: a form's
``evaluate`` takes the stacked coefficients, a call's sum over decode steps is summed in
closed form per draw (the polynomial forms are linear in their coefficients; the power form's
``sum n^p`` is ``profiler.costmodel.power_sums`` with one exponent per draw). Curves of
different phases and metrics are drawn independently (separate fits of separate passes). A
curve whose interval is a point (FLOPs are exact) has no spread.
"""

from __future__ import annotations

import warnings

import numpy as np

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning, call_passes
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.forms import Form, Polynomial, Power
from profiler.costmodel.power_sums import sum_of_powers

DRAWS = 1000
PERCENTILES = (2.5, 97.5)
_Z95 = 1.959964


def design_correlation(curve: CurveFit) -> np.ndarray:
    """Correlation of the coefficients of a relative least-squares fit over the measured domain, (k, k):
    the copula's ``R`` for a fit file that does not record the bootstrap's (schema 1.0, 1.1)."""
    octaves = np.log2(curve.n_max / curve.n_min)
    n = np.geomspace(curve.n_min, curve.n_max, num=max(int(round(2 * octaves)) + 1, len(curve.theta) + 1))
    jacobian = np.asarray(curve.form.jacobian(curve.theta, n)) / curve.predict(n)[:, None]
    norms = np.linalg.norm(jacobian, axis=0)
    jacobian = jacobian / np.where(norms > 0, norms, 1)  # columns decades apart (a ~ 1e9 B, b ~ 1e3 B) invert alike
    covariance = np.linalg.pinv(jacobian.T @ jacobian, hermitian=True)
    sd = np.sqrt(np.clip(np.diag(covariance), 0, None))
    resolved = sd > 0  # a coefficient the design cannot move (b = 0 leaves p free) is drawn independently
    correlation = np.eye(len(sd))
    both = np.outer(resolved, resolved)
    correlation[both] = (covariance / np.outer(np.where(resolved, sd, 1), np.where(resolved, sd, 1)))[both]
    np.fill_diagonal(correlation, 1.0)
    return np.clip(correlation, -1.0, 1.0)


def copula_correlation(curve: CurveFit) -> np.ndarray:
    """The copula's ``R`` (k, k): the bootstrap's, stored with the fit, else the design's (see the module doc)."""
    return curve.correlation if curve.correlation is not None else design_correlation(curve)


def _marginals(theta: np.ndarray, ci95: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Coefficient values (draws, k) at standard-normal scores ``z`` (draws, k): each coefficient's fitted
    value at 0 and its interval's ends at -/+1.96 (log scale where the interval is positive)."""
    low, high = np.minimum(ci95[:, 0], theta), np.maximum(ci95[:, 1], theta)  # a percentile can miss by a hair
    positive = low > 0
    log_low, log_value, log_high = (np.log(np.where(positive, x, 1.0)) for x in (low, theta, high))
    on_log = np.exp(log_value + z / _Z95 * np.where(z < 0, log_value - log_low, log_high - log_value))
    on_linear = theta + z / _Z95 * np.where(z < 0, theta - low, high - theta)
    return np.where(positive, on_log, on_linear)


def coefficient_draws(curve: CurveFit, draws: int = DRAWS, seed=0) -> np.ndarray:
    """``draws`` joint draws of the curve's coefficients (see the module doc), shape (draws, k).
    ``seed``: an int or a sequence of ints (numpy's ``SeedSequence``)."""
    eigenvalues, eigenvectors = np.linalg.eigh(copula_correlation(curve))
    # a stored correlation rounded to 6 decimals may miss positive semi-definiteness by ~1e-6
    factor = eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))
    z = np.random.default_rng(seed).standard_normal((draws, len(curve.theta))) @ factor.T
    return np.clip(_marginals(curve.theta, curve.ci95, z), curve.form.lower, curve.form.upper)


def curve_draws(curve: CurveFit, draws: np.ndarray, n) -> np.ndarray:
    """The curve of each draw (draws, k) at lengths ``n``: shape (draws, *shape of n)."""
    n = np.asarray(n, dtype=float)
    if isinstance(curve.form, Polynomial):  # linear in theta: one product with its terms (the Jacobian)
        return np.tensordot(draws, curve.form.jacobian(curve.theta, n), axes=([1], [-1]))
    return curve.form.evaluate(draws.reshape(len(draws), *(1,) * n.ndim, -1), n)


def _summed(form: Form, draws: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``sum_{n=lo}^{hi} f(n)`` of each draw's curve (draws, *shape of the ranges); 0 for an empty range."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    per_draw = (len(draws),) + (1,) * lo.ndim
    if isinstance(form, Polynomial):  # linear in theta: each coefficient times its term's sum
        term_sums = np.stack([np.asarray(form.sum_over(unit, lo, hi), dtype=float)
                              for unit in np.eye(len(form.params))], axis=-1)
        return np.tensordot(draws, term_sums, axes=([1], [-1]))
    if isinstance(form, Power):
        a, b, p = (column.reshape(per_draw) for column in draws.T)
        return a * np.maximum(hi - lo + 1, 0) + b * sum_of_powers(lo, hi, p)
    raise TypeError(f"no sum over drawn {form.name} curves")


class CallIntervals:
    """Draws of every curve of a cost model, to put 95% intervals on whole calls.

    ``draws[phase, metric]`` is the curve's (draws, k) coefficient draws; curves are seeded
    ``[seed, i]`` in sorted (phase, metric) order, so a cost model's draws never change between
    renderings."""

    def __init__(self, cost_model: CostModel, draws: int = DRAWS, seed: int = 0):
        self.cost_model = cost_model
        self.draws = {}
        for index, (phase, metric) in enumerate(sorted((p, m) for p, ms in cost_model.curves.items() for m in ms)):
            self.draws[phase, metric] = coefficient_draws(cost_model.curves[phase][metric], draws, [seed, index])

    def _at(self, phase: str, metric: str, n) -> np.ndarray:
        return curve_draws(self.cost_model.curve(phase, metric), self.draws[phase, metric], n)

    def drawn(self, n_in, n_out, cache: bool = True, metric: str = "latency_s") -> np.ndarray:
        """The call priced with each draw, as ``CostModel.call`` prices it: (draws,), or (draws, *shape) for
        arrays of calls. Extrapolation is not warned about here: the caller says where a call leaves the
        measured lengths (``profiler.report.calls``)."""
        first, steps, lo, hi = call_passes(n_in, n_out, cache)
        lo, hi = np.broadcast_arrays(lo, hi)  # lo is n_in: the first pass's length too
        if metric == "peak_mem_bytes":  # the largest peak of the call's passes, not a sum
            peak = self._at(steps, metric, np.maximum(hi, lo))
            return peak if first is None else np.maximum(peak, self._at(first, metric, lo))
        total = _summed(self.cost_model.curve(steps, metric).form, self.draws[steps, metric], lo, hi)
        return total if first is None else total + self._at(first, metric, lo)

    def value(self, n_in: int, n_out: int, cache: bool = True, metric: str = "latency_s") -> float:
        """The call's cost by the fitted coefficients themselves (``CostModel.call``, without its warning)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return float(self.cost_model.call(n_in, n_out, cache=cache, metric=metric))

    def call(self, n_in: int, n_out: int, cache: bool = True, metric: str = "latency_s") -> tuple[float, float, float]:
        """The call's cost by the fit, and its 95% interval: (value, low, high)."""
        low, high = np.percentile(self.drawn(n_in, n_out, cache, metric), PERCENTILES)
        return self.value(n_in, n_out, cache, metric), float(low), float(high)


def independent_pairs(draws: int) -> np.ndarray:
    """The order in which to pair one fit's draws with another's: a fixed random permutation, so that
    two fits drawn with the same seed (the same normal scores) still pair independently."""
    return np.random.default_rng(2**31 - 1).permutation(draws)


def ratio_interval(first: CallIntervals, second: CallIntervals, n_in: int, n_out: int,
                   cache: bool = True) -> tuple[float, float, float]:
    """Second's latency over first's for one call, with the 95% interval of the ratio of independent draws
    (separate fits: their errors are independent)."""
    value = second.value(n_in, n_out, cache) / first.value(n_in, n_out, cache)
    first_drawn, second_drawn = first.drawn(n_in, n_out, cache), second.drawn(n_in, n_out, cache)
    ratios = second_drawn[independent_pairs(len(second_drawn))] / first_drawn
    low, high = np.percentile(ratios, PERCENTILES)
    return value, float(low), float(high)
