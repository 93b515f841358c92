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

Beyond the longest measured length the form itself is in doubt (a CPU's caches, a kernel
changing algorithm, a term too small to see in the data): each draw also carries an error of
the curve's log-log slope there, ``q ~ N(0, sd^2)`` with the curve's ``extrapolation_slope_sd``
(since 1.4: how far the form, refitted without the last measured octave, missed it;
``profiler.costmodel.extrapolation``), clipped to ``SLOPE_LIMIT``, and is multiplied by
``(n / n_max)^q`` beyond ``n_max``. So bands are the bootstrap's where measured and open as a
cone in log-log beyond; a curve without one (older files, too few lengths) has ``q = 0``.

``DRAWS`` draws (fixed seed) of each curve, one (draws, k) array of coefficients and one
(draws,) of slopes. A curve's band at ``n`` is the 2.5 and 97.5 percentiles of the drawn
curves there, and a call's interval those of the call priced with each draw. Everything is
evaluated for all draws at once: a form's ``evaluate`` takes the stacked coefficients, a call's
sum over decode steps is summed in closed form per draw (the polynomial forms are linear in
their coefficients; the power form's ``sum n^p`` is ``profiler.costmodel.power_sums`` with one
exponent per draw, as is every term's ``sum n^(j + q)`` beyond ``n_max``). Curves of different
phases and metrics are drawn independently: no call prices two of one joint fit (prefill and
forward, ``profiler.costmodel.joint``; a call takes one or the other), and a file keeps each
phase's own rows of the joint correlation only. A curve whose interval is a point (FLOPs are
exact) has no spread.
"""

from __future__ import annotations

import warnings

import numpy as np

from profiler.costmodel.call_passes import call_passes
from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.forms import Form, Polynomial, Power
from profiler.costmodel.power_sums import sum_of_powers

DRAWS = 1000
PERCENTILES = (2.5, 97.5)
SLOPE_LIMIT = 0.9  # |q| at most: a slope change of 0.9 doubles a cost within 1.1 octaves; power sums need q > -1
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


def slope_draws(curve: CurveFit, draws: int = DRAWS, seed=0) -> np.ndarray:
    """``draws`` errors of the curve's log-log slope beyond ``n_max`` (see the module doc), shape (draws,)."""
    sd = curve.extrapolation_slope_sd or 0.0
    z = np.random.default_rng(seed).standard_normal(draws)
    return np.clip(sd * z, -SLOPE_LIMIT, SLOPE_LIMIT)


def curve_draws(curve: CurveFit, draws: np.ndarray, n, slopes: np.ndarray | None = None) -> np.ndarray:
    """The curve of each draw (draws, k) at lengths ``n``: shape (draws, *shape of n); beyond ``n_max`` times
    ``(n / n_max)^q`` for each draw's slope error ``slopes`` (draws,), if given."""
    n = np.asarray(n, dtype=float)
    if isinstance(curve.form, Polynomial):  # linear in theta: one product with its terms (the Jacobian)
        values = np.tensordot(draws, curve.form.jacobian(curve.theta, n), axes=([1], [-1]))
    else:
        values = curve.form.evaluate(draws.reshape(len(draws), *(1,) * n.ndim, -1), n)
    if slopes is None or not np.any(slopes):
        return values
    beyond = np.log(np.maximum(n, curve.n_max) / curve.n_max)  # 0 within the measured lengths
    return values * np.exp(slopes.reshape(len(slopes), *(1,) * n.ndim) * beyond)


def _summed(curve: CurveFit, draws: np.ndarray, slopes: np.ndarray, lo, hi) -> np.ndarray:
    """``sum_{n=lo}^{hi}`` of each draw's curve (draws, *shape of the ranges), its slope error beyond ``n_max``
    included: the measured part by ``_summed_within``, the part beyond term by term, ``coefficient *
    n_max^-q * sum n^(exponent + q)``. 0 for an empty range."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    if not np.any(slopes) or not np.any(hi > curve.n_max):
        return _summed_within(curve.form, draws, lo, hi)
    n_max = float(curve.n_max)
    total = _summed_within(curve.form, draws, lo, np.maximum(np.minimum(hi, n_max), lo - 1))  # lo - 1: empty
    per_draw = (len(draws),) + (1,) * lo.ndim
    q = slopes.reshape(per_draw)
    start = np.maximum(lo, n_max + 1)
    for coefficient, exponent in curve.form.terms(draws):
        powers = sum_of_powers(start, hi, exponent.reshape(per_draw) + q)
        total = total + coefficient.reshape(per_draw) * n_max**-q * powers
    return total


def _summed_within(form: Form, draws: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
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

    ``draws[phase, metric]`` is the curve's (draws, k) coefficient draws and ``slopes[phase, metric]``
    its (draws,) slope errors beyond the data; curves are seeded ``[seed, i]`` (slopes ``[seed, i, 1]``)
    in sorted (phase, metric) order, so a cost model's draws never change between renderings."""

    def __init__(self, cost_model: CostModel, draws: int = DRAWS, seed: int = 0):
        self.cost_model = cost_model
        self.draws, self.slopes = {}, {}
        for index, (phase, metric) in enumerate(sorted((p, m) for p, ms in cost_model.curves.items() for m in ms)):
            curve = cost_model.curves[phase][metric]
            self.draws[phase, metric] = coefficient_draws(curve, draws, [seed, index])
            self.slopes[phase, metric] = slope_draws(curve, draws, [seed, index, 1])

    def at(self, phase: str, metric: str, n) -> np.ndarray:
        """The curve of every draw at lengths ``n``, slope errors included: (draws, *shape of n)."""
        return curve_draws(self.cost_model.curve(phase, metric), self.draws[phase, metric], n,
                           self.slopes[phase, metric])

    def drawn(self, n_in, n_out, cache: bool = True, metric: str = "latency_s") -> np.ndarray:
        """The call priced with each draw, as ``CostModel.call`` prices it: (draws,), or (draws, *shape) for
        arrays of calls. Extrapolation is not warned about here: the caller says where a call leaves the
        measured lengths (``profiler.report.calls``)."""
        first, steps, lo, hi = call_passes(n_in, n_out, cache)
        lo, hi = np.broadcast_arrays(lo, hi)  # lo is n_in: the first pass's length too
        if metric == "peak_mem_bytes":  # the largest peak of the call's passes, not a sum
            peak = self.at(steps, metric, np.maximum(hi, lo))
            return peak if first is None else np.maximum(peak, self.at(first, metric, lo))
        total = _summed(self.cost_model.curve(steps, metric), self.draws[steps, metric], self.slopes[steps, metric],
                        lo, hi)
        return total if first is None else total + self.at(first, metric, lo)

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
