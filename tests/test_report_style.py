"""The figures' theme is seaborn's, written out so that a report need not import seaborn: hold it against seaborn."""

from pathlib import Path

import pytest
import seaborn as sns
from matplotlib.backends.backend_agg import RendererAgg
from PIL import Image

from profiler.costmodel.uncertainty import CallIntervals
from profiler.lba.breakeven import ratio_map, sweep
from profiler.lba.exercises import EXERCISES
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.report import style
from profiler.report.breakeven_figures import breakeven_figure
from profiler.report.curves import FitSeries
from profiler.report.fig_latency import comparison_latency_figure, latency_figure
from profiler.report.fig_memory import comparison_memory_figure, memory_figure
from profiler.report.fig_throughput import comparison_throughput_figure, throughput_figure
from profiler.report.inputs import load_run


def test_the_theme_is_seaborns_whitegrid_notebook_at_085():
    reference = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85)}
    del reference["image.cmap"]  # seaborn's own colormap: no figure draws with the default one
    assert style.SEABORN_RC == reference


def test_phase_and_model_colours_are_seaborns_colorblind():
    palette = sns.color_palette("colorblind")
    assert [style.PHASE_COLORS[phase] for phase in ("prefill", "decode", "forward")] == palette[:3]
    assert style.MODEL_COLORS[1] == palette[3]


# Every kind of figure, drawn from the committed example, laid out as it is saved: each text drawn (tick labels,
# axis labels, titles, legends, annotations, the colour bar's) inside the image and clear of every other.
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
EXAMPLE_FITS = ROOT / "fits" / "example"


@pytest.fixture(scope="module")
def example():
    data = load_run(EXAMPLE_RUN, EXAMPLE_FITS)
    series = FitSeries(data.model_name, style.PHASE_COLORS["prefill"], CallIntervals(data.cost_model),
                       data.run.model.max_positions)
    second = FitSeries("second", style.MODEL_COLORS[1], series.calls, series.max_positions)
    return data, series, second


def _breakeven(data):
    exercise = EXERCISES["ktask"]
    params, values = exercise.defaults(), [float(v) for v in exercise.main_values]
    pricing = FittedPricing(data.cost_model)
    return breakeven_figure(exercise.title, sweep(exercise, exercise.main, values, params, pricing),
                            sweep(exercise, exercise.main, values, params, PaperPrimitive()),
                            ratio_map(exercise, params, pricing))


FIGURES = {
    "latency": lambda data, series, second: latency_figure(series, data.samples, set(), "prefill"),
    "throughput": lambda data, series, second: throughput_figure(series, data.points, data.hardware.ceilings),
    "memory": lambda data, series, second: memory_figure(series, data.points, data.hardware.facts,
                                                         data.run.model.to_json()),
    "breakeven": lambda data, series, second: _breakeven(data),
    "compare latency": lambda data, series, second: comparison_latency_figure(series, second, "decode"),
    "compare throughput (legend below)": lambda data, series, second: comparison_throughput_figure(series, second),
    "compare memory (legend below)": lambda data, series, second: comparison_memory_figure(
        series, second, (data.hardware.facts, data.hardware.facts)),
}


@pytest.mark.parametrize("kind", FIGURES)
def test_every_text_of_a_figure_lies_inside_it_and_clear_of_the_others(kind, example, tmp_path, monkeypatch):
    drawn = []
    draw_text = RendererAgg.draw_text

    def recording(renderer, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and s.strip():  # a line of a multi-line text comes without its artist: fig.texts below
            drawn.append(mtext)
        return draw_text(renderer, gc, x, y, s, prop, angle, ismath, mtext)

    monkeypatch.setattr(RendererAgg, "draw_text", recording)
    with style.theme():
        fig = FIGURES[kind](*example)
        style.save(fig, tmp_path / "figure.png")
    renderer = fig.canvas.get_renderer()
    texts = set(drawn) | {text for text in fig.texts if text.get_visible() and text.get_text().strip()}
    boxes = {text.get_text(): text.get_window_extent(renderer) for text in texts}
    assert len(boxes) >= 10
    with Image.open(tmp_path / "figure.png") as image:
        width, height = image.size
    outside = [text for text, box in boxes.items()
               if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height]
    assert not outside, f"{kind}: outside the {width}x{height} image: {outside}"
    named = list(boxes.items())
    overlapping = [(a, b) for i, (a, box) in enumerate(named) for b, other in named[i + 1:] if box.overlaps(other)]
    assert not overlapping, f"{kind}: texts overlap: {overlapping}"
