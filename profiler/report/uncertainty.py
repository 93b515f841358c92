"""95% bands of fitted curves and 95% intervals of whole calls, from a fit file alone.

A fit file holds each coefficient's 95% interval (percentiles of the fit's residual
bootstrap), not the joint bootstrap draws. A curve's coefficients are strongly correlated
(a higher per-call overhead goes with a lower per-token cost; for ``a + b n^p`` a larger
``b`` with a smaller ``p``), so the ends of their intervals must not be combined freely:
all lower ends together would give a band many times too wide.

Assumption (a Gaussian copula): coefficient ``j`` is ``F_j(z_j)`` for ``z ~ N(0, R)``, where

- the marginal ``F_j`` passes through the fitted value at ``z = 0`` and through the
  interval's ends at ``z = -1.96`` and ``z = +1.96``, linearly in ``z`` on each side, on the
  log scale for a coefficient whose interval is positive (``b`` in [25, 13464] around 770
  spreads by factors, not by thousands) and on the linear scale otherwise;
- the correlation ``R`` is that of a least-squares fit with relative residuals (as the fit
  weighs them) on a half-octave grid of lengths across the measured domain (the default
  grid of a run): ``R`` from ``(J^T J)^-1`` with ``J = (d f / d theta) / f`` at the fit.

``DRAWS`` draws (fixed seed) of each curve; a curve's band at ``n`` is the 2.5 and 97.5
percentiles of the drawn curves there, and a call's interval those of the call priced
with each draw. Curves of different phases are drawn independently (separate fits of
separate passes). A curve whose interval is a point (FLOPs are exact) has no spread.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.fit import CurveFit

DRAWS = 1000
_Z95 = 1.959964
_PERCENTILES = (2.5, 97.5)


def design_correlation(curve: CurveFit) -> np.ndarray:
    """Correlation of the coefficients of a relative least-squares fit over the measured domain, (k, k)."""
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


def _marginal(value: float, low: float, high: float, z: np.ndarray) -> np.ndarray:
    """Coefficient values at standard-normal scores ``z``: ``value`` at 0, ``low``/``high`` at -/+1.96."""
    low, high = min(low, value), max(high, value)  # a percentile interval can miss its estimate by a hair
    if low > 0:
        centre, below, above = np.log(value), np.log(value) - np.log(low), np.log(high) - np.log(value)
        return np.exp(centre + z / _Z95 * np.where(z < 0, below, above))
    return value + z / _Z95 * np.where(z < 0, value - low, high - value)


def coefficient_draws(curve: CurveFit, draws: int = DRAWS, seed=0) -> np.ndarray:
    """``draws`` joint draws of the curve's coefficients (see the module doc), shape (draws, k).
    ``seed``: an int or a sequence of ints (numpy's ``SeedSequence``)."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(len(curve.theta)), design_correlation(curve), size=draws, method="eigh")
    columns = [_marginal(float(v), float(lo), float(hi), z[:, j])
               for j, (v, (lo, hi)) in enumerate(zip(curve.theta, curve.ci95))]
    return np.clip(np.column_stack(columns), curve.form.lower, curve.form.upper)


def curve_band(curve: CurveFit, draws: np.ndarray, n, transform=None) -> tuple[np.ndarray, np.ndarray]:
    """The curve's 95% band at lengths ``n``: (low, high) arrays; of ``transform(n, curve values)`` if given
    (tokens/s is ``n / latency``: its band is the transformed draws' percentiles)."""
    n = np.asarray(n, dtype=float)
    values = np.array([curve.form.evaluate(theta, n) for theta in draws])
    if transform is not None:
        values = transform(n, values)
    low, high = np.percentile(values, _PERCENTILES, axis=0)
    return low, high


class CallIntervals:
    """Draws of every curve of a cost model, to put 95% intervals on whole calls."""

    def __init__(self, cost_model: CostModel, draws: int = DRAWS, seed: int = 0):
        self.cost_model = cost_model
        self.draws = {}
        for index, (phase, metric) in enumerate(sorted((p, m) for p, ms in cost_model.curves.items() for m in ms)):
            self.draws[phase, metric] = coefficient_draws(cost_model.curves[phase][metric], draws, [seed, index])
        self._models = [self._priced_with(i) for i in range(draws)]

    def _priced_with(self, index: int) -> CostModel:
        model = copy.copy(self.cost_model)
        model.curves = {phase: {metric: dataclasses.replace(curve, theta=self.draws[phase, metric][index])
                                for metric, curve in metrics.items()}
                        for phase, metrics in self.cost_model.curves.items()}
        return model

    def drawn(self, n_in: int, n_out: int, cache: bool = True, metric: str = "latency_s") -> np.ndarray:
        """The call priced with each draw, (draws,). Extrapolation is not warned about here: the caller
        says where a call leaves the measured lengths (``profiler.report.calls``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return np.array([float(model.call(n_in, n_out, cache=cache, metric=metric)) for model in self._models])

    def call(self, n_in: int, n_out: int, cache: bool = True, metric: str = "latency_s") -> tuple[float, float, float]:
        """The call's cost by the fit, and its 95% interval: (value, low, high)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            value = float(self.cost_model.call(n_in, n_out, cache=cache, metric=metric))
        low, high = np.percentile(self.drawn(n_in, n_out, cache, metric), _PERCENTILES)
        return value, float(low), float(high)


def independent_pairs(draws: int) -> np.ndarray:
    """The order in which to pair one fit's draws with another's: a fixed random permutation, so that
    two fits drawn with the same seed (the same normal scores) still pair independently."""
    return np.random.default_rng(2**31 - 1).permutation(draws)


def ratio_interval(first: CallIntervals, second: CallIntervals, n_in: int, n_out: int,
                   cache: bool = True) -> tuple[float, float, float]:
    """Second's latency over first's for one call, with the 95% interval of the ratio of independent draws
    (separate fits: their errors are independent)."""
    value = second.call(n_in, n_out, cache)[0] / first.call(n_in, n_out, cache)[0]
    first_drawn, second_drawn = first.drawn(n_in, n_out, cache), second.drawn(n_in, n_out, cache)
    ratios = second_drawn[independent_pairs(len(second_drawn))] / first_drawn
    low, high = np.percentile(ratios, _PERCENTILES)
    return value, float(low), float(high)
