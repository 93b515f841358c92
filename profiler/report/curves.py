"""A fitted cost model as something to draw: its curves with 95% bands, solid where measured.

A ``FitSeries`` is one cost model with its coefficient draws (``profiler.costmodel.uncertainty``),
a label and a colour: the report draws one, ``compare`` two. ``draw_fit`` draws a curve over
a range of lengths: solid across the measured domain, dashed where it is carried beyond
(extrapolation), never past the model's maximum positions (no pass can be longer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit import CurveFit
from profiler.report import style
from profiler.costmodel.uncertainty import CallIntervals
from profiler.report.uncertainty import curve_band


@dataclass(frozen=True)
class FitSeries:
    label: str
    color: object
    calls: CallIntervals
    max_positions: int | None

    @property
    def cost_model(self) -> CostModel:
        return self.calls.cost_model

    def has(self, phase: str, metric: str) -> bool:
        return metric in self.cost_model.curves.get(phase, {})

    def curve(self, phase: str, metric: str) -> CurveFit:
        return self.cost_model.curve(phase, metric)

    def draws(self, phase: str, metric: str) -> np.ndarray:
        return self.calls.draws[phase, metric]

    def slopes(self, phase: str, metric: str) -> np.ndarray:
        return self.calls.slopes[phase, metric]

    def reach(self, n_high: float) -> float:
        """The longest length to draw up to: ``n_high``, or the model's maximum if that is shorter."""
        return min(n_high, self.max_positions) if self.max_positions else n_high


def extrapolated_limit(measured_n_max: int, max_positions: int | None) -> float:
    """How far past the measured lengths the curves are drawn: to the model's maximum positions,
    at most four times the longest measured length (the band says how far to trust it)."""
    return min(max_positions, 4 * measured_n_max) if max_positions else measured_n_max


def values(curve: CurveFit, draws: np.ndarray, n: np.ndarray, transform=None, slopes=None):
    """(value, band low, band high) of ``curve`` (optionally transformed, see ``curve_band``) at ``n``."""
    central = curve.predict(n)
    if transform is not None:
        central = transform(n, central)
    low, high = curve_band(curve, draws, n, transform, slopes)
    return central, low, high


def draw_fit(ax, series: FitSeries, phase: str, metric: str, n_low: float, n_high: float, color=None,
             label: str | None = None, transform=None, band: bool = True) -> tuple[np.ndarray, ...]:
    """Draw one curve of ``series`` from ``n_low`` to ``n_high`` (cut at the model's maximum):
    band (as far as the curve: beyond the measured domain it widens by the fit's slope error),
    solid line over the measured domain, dashed beyond. Returns the (n, value, band low, band high) drawn."""
    curve, color = series.curve(phase, metric), color if color is not None else series.color
    n = style.grid(n_low, series.reach(n_high))
    central, low, high = values(curve, series.draws(phase, metric), n, transform, series.slopes(phase, metric))
    if band:
        ax.fill_between(n, low, high, color=color, alpha=style.BAND_ALPHA, linewidth=0)
    inside = (n >= curve.n_min) & (n <= curve.n_max)
    ax.plot(np.where(inside, n, np.nan), central, color=color, linewidth=1.8, label=label)
    for side in (n <= curve.n_min, n >= curve.n_max):
        if side.sum() > 1:
            ax.plot(n[side], central[side], color=color, linewidth=1.4, linestyle=style.EXTRAPOLATED)
    return n, central, low, high
