"""The 95% bands the report's figures plot: percentiles of a curve's drawn coefficients.

The draws are the cost model's (``profiler.costmodel.uncertainty``: a Gaussian copula of each
coefficient's bootstrap interval, joined by the bootstrap's correlation where the fit file
records it, and beyond the measured lengths an error of the curve's slope; 1,000 draws with a
fixed seed); here they only become percentiles at the lengths a figure draws. A batch surface
(``profiler.costmodel.surface``) is drawn the same way: its coefficients' intervals joined by the
bootstrap's correlation, which every surface records.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.fit import CurveFit
from profiler.costmodel.surface import SurfaceFit, points_of
# CallIntervals and independent_pairs are the cost model's; named here for the report modules that take
# them from this one (build, fig_latency).
from profiler.costmodel.uncertainty import (DRAWS, PERCENTILES, CallIntervals, coefficient_draws, curve_draws,
                                            independent_pairs)

__all__ = ["CallIntervals", "curve_band", "independent_pairs", "surface_band"]


def curve_band(curve: CurveFit, draws: np.ndarray, n, transform=None,
               slopes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The curve's 95% band at lengths ``n``: (low, high) arrays; of ``transform(n, curve values)`` if given
    (tokens/s is ``n / latency``: its band is the transformed draws' percentiles). ``slopes``: the draws'
    slope errors beyond the measured lengths (``CallIntervals.slopes``); without them the band there is
    the coefficients' alone."""
    n = np.asarray(n, dtype=float)
    values = curve_draws(curve, draws, n, slopes)
    if transform is not None:
        values = transform(n, values)
    low, high = np.percentile(values, PERCENTILES, axis=0)
    return low, high


def surface_band(surface: SurfaceFit, batch, n, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The surface's 95% band (seconds per pass) at ``batch`` and ``n`` (arrays broadcast): (low, high), from
    ``DRAWS`` draws of its coefficients (``coefficient_draws``: the copula takes a surface's intervals and
    correlation as it takes a curve's)."""
    draws = coefficient_draws(surface, DRAWS, seed)
    x = points_of(batch, n)
    values = surface.form.evaluate(draws.reshape(len(draws), *(1,) * (x.ndim - 1), -1), x)
    low, high = np.percentile(values, PERCENTILES, axis=0)
    return low, high
