"""The look of every figure: seaborn's whitegrid theme, one colour per phase and per model, legible log axes.

Figures are ``matplotlib.figure.Figure`` objects drawn with the Agg canvas (no pyplot, no
display, no global figure registry) inside ``theme()``, and saved by ``save`` as PNG at
``DPI`` dots per inch (a 7.5-inch-wide figure is 825 pixels: sharp in a page, small on disk).

Log axes get ticks a reader can use: on a span of decades the 1-2-5 values (or powers of
two for bytes and context lengths), on a narrow span finer ones, always at least three,
labelled in units (``50 ms``, ``256 MiB``, ``100 GFLOP/s``), never as ``10^-1``.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.layout_engine import TightLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from profiler.report.units import scale, tick

DPI = 110
# seaborn's "colorblind" palette and its "whitegrid" style at the "notebook" context scaled by 0.85, written
# out: importing seaborn (and scipy.stats with it) took longer than drawing a figure. tests/test_report_style.py
# holds both against seaborn's own. Left out: "image.cmap" (seaborn's "rocket", a colormap that exists only
# once seaborn is imported; every figure names its colormap).
_PALETTE = tuple(to_rgb(hex_color) for hex_color in (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9"))
SEABORN_RC = {
    "figure.facecolor": "white", "axes.facecolor": "white", "axes.edgecolor": ".8", "axes.labelcolor": ".15",
    "axes.axisbelow": True, "axes.grid": True, "axes.linewidth": 1.25,
    "axes.spines.left": True, "axes.spines.bottom": True, "axes.spines.right": True, "axes.spines.top": True,
    "grid.color": ".8", "grid.linestyle": "-", "grid.linewidth": 1, "text.color": ".15",
    "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "lines.solid_capstyle": "round", "lines.linewidth": 1.5, "lines.markersize": 6,
    "patch.edgecolor": "w", "patch.force_edgecolor": True, "patch.linewidth": 1,
    "xtick.direction": "out", "ytick.direction": "out", "xtick.color": ".15", "ytick.color": ".15",
    "xtick.top": False, "ytick.right": False, "xtick.bottom": False, "ytick.left": False,
    "xtick.major.width": 1.25, "ytick.major.width": 1.25, "xtick.minor.width": 1, "ytick.minor.width": 1,
    "xtick.major.size": 6, "ytick.major.size": 6, "xtick.minor.size": 4, "ytick.minor.size": 4,
    "font.size": 10.2, "axes.labelsize": 10.2, "axes.titlesize": 10.2, "xtick.labelsize": 9.35,
    "ytick.labelsize": 9.35, "legend.fontsize": 9.35, "legend.title_fontsize": 10.2,
}
PHASE_COLORS = {"prefill": _PALETTE[0], "decode": _PALETTE[1], "forward": _PALETTE[2], "extend": _PALETTE[4]}
MODEL_COLORS = ("#3b3b3b", _PALETTE[3])  # compare: first fit dark grey, second vermillion; no phase uses either
CEILING_COLOR = "#b2182b"
BAND_ALPHA = 0.25
EXTRAPOLATED = (0, (4, 3))  # the dash of a curve carried past the measured lengths
LAYOUT_PAD_PT = 4.0  # blank space around the axes' decorations, at the figure's edges and between axes


@contextlib.contextmanager
def theme():
    """seaborn's whitegrid theme at a slightly reduced size, for the figures made inside."""
    rc = {**SEABORN_RC, "axes.titleweight": "bold", "axes.titlesize": 11, "legend.fontsize": 8,
          "legend.framealpha": 0.9}
    with rc_context(rc):
        yield


def figure(width_in: float = 7.5, height_in: float = 4.5) -> Figure:
    """A figure laid out by one pass of matplotlib's tight layout when it is drawn: each axes' extent with its
    tick labels, axis labels, title and colour bar measured once, the margins and the gaps between axes set
    to hold them plus ``LAYOUT_PAD_PT``. (Constrained layout measures everything twice, and so does
    ``layout="tight"``, whose second pass only repeats the first when the rectangle is the whole figure;
    a pass costs about a quarter of drawing the figure.) A figure-wide legend makes room for itself with
    constrained layout instead (``legend(below=...)``)."""
    pad = LAYOUT_PAD_PT / SEABORN_RC["font.size"]  # tight layout's pads are in font sizes (rcParams' when drawn)
    return Figure(figsize=(width_in, height_in), layout=TightLayoutEngine(pad=pad, rect=None))


def save(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG at ``DPI``, drawn once, its layout computed within that draw. (``savefig``
    with a layout engine first draws the whole figure with rendering disabled to run the layout, then
    again to render: twice the Python work over every artist, for the same pixels.) zlib level 1: half
    the encoding time of the default level 6, files about 8% larger."""
    fig.set_dpi(DPI)
    FigureCanvasAgg(fig).print_png(path, metadata={"Software": None}, pil_kwargs={"compress_level": 1})


def _series(low: float, high: float, powers_of_two: bool, max_ticks: int = 9) -> list[float]:
    """The tick values of the series chosen for [low, high], a few beyond each end (to snap limits to).

    Powers of two: every power, or every 2nd, 3rd... so that at most ``max_ticks`` fall inside.
    Otherwise (or when powers of two leave fewer than 3 inside): the coarsest of 1-10-100, 1-2-5,
    1-1.5-2-3-5-7 and 1-1.2-...-9 that puts 3 inside, every other value while too many do.
    """
    def inside(values):
        return [v for v in values if low <= v <= high]

    if powers_of_two:
        exponents = range(math.floor(math.log2(low)) - 6, math.ceil(math.log2(high)) + 7)
        for step in range(1, 7):
            values = [2.0**e for e in exponents if e % step == 0]
            if len(inside(values)) <= max_ticks:
                break
        if len(inside(values)) >= 3:
            return values
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
    series = ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9))
    for mantissas in series:
        values = [m * 10.0**d for d in decades for m in mantissas]
        if len(inside(values)) >= 3:
            break
    while len(inside(values)) > max_ticks:
        values = values[::2]
    return values


def log_axis(ax, axis: str, low: float, high: float, kind: str | None, powers_of_two: bool = False,
             snap: bool = True, max_ticks: int = 9) -> str:
    """Make ``ax``'s ``axis`` ("x" or "y") logarithmic over [low, high] with labelled ticks.

    ``kind`` is a quantity of ``profiler.report.units`` (None: plain numbers). Returns the unit
    to name in the axis label: on a span of under three decades one unit for the whole axis,
    ticks round in it (``50, 100, 200`` and the label's ``ms``); on a wider one each tick
    carries its own unit (bytes at powers of two: ``1 MiB``, ``16 MiB``, ``1 GiB``) and the
    label names the base unit. ``snap`` widens the limits to the next tick outside each end,
    so that the data's ends are framed by labelled ticks.
    """
    wide = kind not in (None, "tokens/s") and high / low >= 1000  # tokens/s takes no prefix: plain ticks
    factor, unit = (1.0, kind or "") if kind is None or wide else scale(math.sqrt(low * high), kind)
    values = [v * factor for v in _series(low / factor, high / factor, powers_of_two or (wide and kind == "bytes"),
                                          max_ticks - 2 if snap else max_ticks)]  # snapping adds one at each end
    if snap:
        low = max([v for v in values if v <= low * 1.0001] or [low])
        high = min([v for v in values if v >= high * 0.9999] or [high])
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(low, high)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator([v for v in values if low * 0.9999 <= v <= high * 1.0001]))
    target.set_minor_locator(NullLocator())
    if wide:
        target.set_major_formatter(FuncFormatter(lambda value, _: _tick_with_unit(value, kind)))
    else:
        target.set_major_formatter(FuncFormatter(lambda value, _: tick(value / factor)))
    return unit


def legend(ax, band: bool = False, loc: str = "upper left", below=None, extra=()) -> None:
    """The axis's legend, plus what a dashed curve (and a shaded band) means, and ``extra`` (handle,
    label) pairs; under the whole figure ``below`` (a figure of small panels) instead of inside the axis."""
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    handles.append(Line2D([], [], color="#555555", linestyle=EXTRAPOLATED, linewidth=1.4))
    labels.append("dashed: beyond the measured lengths")
    if band:
        handles.append(Patch(color="#555555", alpha=BAND_ALPHA, linewidth=0))
        labels.append("shaded: 95% band")
    if below is not None:
        below.set_layout_engine("constrained")  # the one layout that makes room for a legend outside the axes
        below.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    else:
        ax.legend(handles, labels, loc=loc)


def _tick_with_unit(value: float, kind: str) -> str:
    factor, unit = scale(value, kind)
    return f"{tick(value / factor)} {unit}"


def span(groups, pad: float = 1.15) -> tuple[float, float]:
    """A log axis's limits around the positive finite values of ``groups`` (arrays, lists), padded by a factor."""
    values = np.concatenate([np.asarray(group, dtype=float).ravel() for group in groups])
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.min()) / pad, float(values.max()) * pad


def length_axis(ax, low: float, high: float, max_ticks: int = 9) -> None:
    """The x axis of every figure: context length in tokens, log scale, powers of two."""
    log_axis(ax, "x", low, high, None, powers_of_two=True, snap=False, max_ticks=max_ticks)
    ax.set_xlabel("context length n (tokens, log scale)")


def shades(color, count: int) -> list[tuple[float, float, float]]:
    """``count`` shades of ``color``, light to dark (a few lengths of one phase in one panel): blended with
    white, then with black, never as pale as to vanish on white."""
    rgb = np.array(to_rgb(color))
    mix = np.linspace(-0.45, 0.35, count) if count > 1 else np.zeros(1)  # < 0: toward white, > 0: toward black
    return [tuple(np.where(m < 0, rgb + (1 - rgb) * -m, rgb * (1 - m))) for m in mix]


def grid(n_low: float, n_high: float, points: int = 200) -> np.ndarray:
    """Lengths to draw curves at, evenly spaced on a log axis."""
    return np.geomspace(n_low, n_high, points)
