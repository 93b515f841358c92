import dataclasses

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh

from profiler.costmodel.cost_model import CostModel
from profiler.report import write_report
from profiler.report.caveats import caveats
from profiler.report.document import ReportContext, Table
from profiler.report.extend_section import (NOT_MEASURED, TITLE, PrefixCall, domain_note, extend_section,
                                            prefix_calls)
from profiler.report.fig_extend import MAP_POINTS, extend_figure, shown_contexts
from profiler.report.inputs import load_run
from profiler.report.style import theme
from profiler.report.uncertainty import CallIntervals
from profiler.report.units import quantity, share
from tests.report_extend import EXAMPLE_RUN, MAX_POSITIONS, with_extend, without_extend
from tests.test_report_build import assert_valid_figure


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """The example run with extend passes, and its cost model with the extend surface (tests/report_extend.py)."""
    return with_extend(tmp_path_factory.mktemp("extended") / "gpt2")


def context(data) -> ReportContext:
    return ReportContext(folder=data.folder, cost_model=data.cost_model, run=data.run, hardware=data.hardware,
                         samples=data.samples, points=data.points, calls=CallIntervals(data.cost_model, draws=50))


def _tables(section) -> list[Table]:
    return [block for block in section.blocks if isinstance(block, Table)]


def _passes_s(cost_model: CostModel, n_in: int, n_out: int, cached: int) -> float:
    """A call's seconds from its passes, one by one: the first (a prefill, or an extend of the cached prefix),
    then each decode step on the tokens before it."""
    first = cost_model.extend_surface().predict(cached, n_in - cached) if cached else cost_model.prefill(n_in)
    return float(first + sum(cost_model.decode(n_in + t - 1) for t in range(1, n_out)))


def test_the_section_shows_the_surface_and_the_figure(extended):
    folder, cost_model = extended
    data = load_run(folder, cost_model=cost_model)
    ctx = context(data)
    section = extend_section(ctx, data)
    assert section.title == TITLE and [path.name for _, path in ctx.figures] == ["extend.png"]
    surface_table, savings_table = _tables(section)
    (row,) = surface_table.rows
    surface = cost_model.extend_surface()
    assert row[0] == surface.form.name == "cache-read"
    assert row[4] == f"{surface.held_out_mape:.1%} ({surface.held_out_points} points)"
    assert row[5] == "c 0-1,023, s 1-1,024, c + s ≤ 1,024"
    assert row[6] == f"prefill {surface.consistency['prefill']:.1%}, decode {surface.consistency['decode']:.1%}"
    assert "g = 10" in row[2] and "µs/cached token" in row[2]  # TRUTH's g is 10 µs per cached token
    timed = (data.samples["phase"] == "extend").sum()
    assert f"{timed:,} were timed here" in section.blocks[0]


def test_the_savings_table_prices_each_call_as_its_passes(extended):
    folder, cost_model = extended
    data = load_run(folder, cost_model=cost_model)
    _, table = _tables(extend_section(context(data), data))
    calls = prefix_calls(data.model_name, MAX_POSITIONS)
    assert [row[0] for row in table.rows] == [call.what for call in calls]
    assert [(call.n_in, call.cached, call.n_out) for call in calls] == [(300, 200, 100), (2100, 2000, 100),
                                                                          (612, 512, 100)]
    for call, row in zip(calls, table.rows):
        if call.cached == 2000:  # gpt2 holds 1,024 positions
            assert row[4:8] == ("-",) * 4 and row[8] == "cannot run: needs 2,199 positions, gpt2 takes 1,024"
            continue
        uncached = _passes_s(cost_model, call.n_in, call.n_out, 0)
        cached = _passes_s(cost_model, call.n_in, call.n_out, call.cached)
        first = 1 - _passes_s(cost_model, call.n_in, 1, call.cached) / _passes_s(cost_model, call.n_in, 1, 0)
        assert row[4:8] == (quantity(uncached, "s"), quantity(cached, "s"), share(1 - cached / uncached),
                            share(first))
        assert cached < uncached and row[8] == "inside the measured domain"


def test_a_call_outside_the_measured_domain_is_said_extrapolated(extended):
    _, cost_model = extended
    surface = cost_model.extend_surface()
    assert domain_note(cost_model, PrefixCall("long", 1500, 1400, 10)) == (
        f"extrapolated: its extend pass passes the measured c ≤ {surface.c_max:,}, s ≤ {surface.s_max:,}, "
        f"c + s ≤ {surface.positions_max:,}; its passes without the cache reach beyond the measured lengths")
    assert domain_note(cost_model, PrefixCall("short", 300, 200, 100)) == "inside the measured domain"


def test_the_extend_figure_draws_the_surface_the_passes_and_the_saving(extended):
    folder, cost_model = extended
    data = load_run(folder, cost_model=cost_model)
    surface = cost_model.extend_surface()
    contexts = shown_contexts(data.samples)
    assert contexts == [45, 181, 724]  # the longest with several sizes, then at most a quarter of the one before
    with theme():
        fig = extend_figure(cost_model, data.samples, MAX_POSITIONS)
    left, right = fig.axes[0], fig.axes[1]
    solid = [line for line in left.get_lines() if line.get_linestyle() == "-"]
    assert len(solid) == 1 + len(contexts)
    for c, line in zip([0, *contexts], solid):
        s = line.get_xdata()
        assert s[0] == 1 and s[-1] == MAX_POSITIONS - c
        assert np.allclose(line.get_ydata(), surface.predict(c, s), equal_nan=True)
    dots = [collection.get_offsets() for collection in left.collections if len(collection.get_offsets())]
    for c in contexts:  # each shown cache's passes: extend passes and the decode steps at s = 1
        at = data.samples[(data.samples["n_cached"] == c) & data.samples["phase"].isin(["decode", "extend"])]
        assert any(len(d) == len(at) and np.allclose(d, at[["n_new", "latency_s"]]) for d in dots)
    (mesh,) = [c for c in right.collections if isinstance(c, QuadMesh)]
    axis = np.unique(np.geomspace(1, MAX_POSITIONS - 1, MAP_POINTS).round())
    c, s = np.meshgrid(axis, axis)
    expected = 100 * (1 - surface.predict(c, s) / cost_model.curve("prefill", "latency_s").predict(c + s))
    shown = np.ma.filled(mesh.get_array().astype(float), np.nan).reshape(c.shape)
    assert np.allclose(shown, np.where(c + s <= MAX_POSITIONS, expected, np.nan), equal_nan=True)


def test_without_extend_passes_or_surface_the_section_is_one_sentence(extended, tmp_path):
    folder, cost_model = extended
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("run.json", "hardware.json", "samples.csv"):
        (plain / name).write_bytes((EXAMPLE_RUN / name).read_bytes())
    data = load_run(plain, cost_model=without_extend(cost_model))
    ctx = context(data)
    assert extend_section(ctx, data).blocks == (NOT_MEASURED,) and ctx.figures == []
    data = load_run(folder, cost_model=without_extend(cost_model))  # extended, but the fit has no surface
    (text,) = extend_section(context(data), data).blocks
    assert text.startswith("The run extended caches, but the fit has no extend surface: refit it")
    document = without_extend(cost_model).fit.to_json()
    document["source"]["extend_skipped"] = "too few points"
    data = dataclasses.replace(data, cost_model=CostModel.from_json(document))
    (text,) = extend_section(context(data), data).blocks
    assert "no extend surface (too few points): refit" in text


def _caveats_text(data) -> str:
    return " ".join(caveats(data, CallIntervals(data.cost_model, draws=50), data.run.model.max_positions))


def test_a_loose_or_inconsistent_extend_surface_is_a_caveat(extended):
    folder, cost_model = extended
    data = load_run(folder, cost_model=cost_model)
    assert "extend surface" not in _caveats_text(data)  # 1% held out, under 1% off the curves
    surface = dataclasses.replace(cost_model.extend_surface(), held_out_mape=0.08,
                                  consistency={"prefill": 0.02, "decode": 0.15})
    data = dataclasses.replace(data, cost_model=CostModel(dataclasses.replace(cost_model.fit, extend=surface)))
    text = _caveats_text(data)
    assert "The extend surface predicts a left-out (cached, appended) point 8% off on average" in text
    assert "The extend surface is 15% off the decode curve at s = 1 on average" in text
    assert "off the prefill curve" not in text
    data = dataclasses.replace(data, cost_model=without_extend(cost_model))
    assert "extend surface" not in _caveats_text(data)  # the section says it, once


def test_extend_points_skipped_out_of_memory_or_unstable_are_caveats(extended):
    folder, cost_model = extended
    data = load_run(folder, cost_model=cost_model)
    done = dataclasses.replace(
        data.run.done,
        extend_skipped=[{"c": 768, "s": 256, "reason": "time budget", "predicted_s": 2.0, "budget_s": 45.0},
                        {"c": 1008, "s": 16, "reason": "time budget", "predicted_s": 2.0, "budget_s": 45.0}],
        extend_out_of_memory=[{"c": 4096, "s": 1024, "error": "out of memory"}],
        unstable_points=[{"phase": "extend", "batch": 1, "n_ctx": 512, "n_new": 16}])
    data = dataclasses.replace(data, run=dataclasses.replace(data.run, done=done))
    text = _caveats_text(data)
    assert ("Extend points not measured (cached + appended tokens): 768 + 256, 1,008 + 16 (time budget). A larger "
            "--budget measures them") in text
    assert "Out of memory extending a cache (cached + appended tokens): 4,096 + 1,024:" in text
    assert "Unstable points (repeats spread by 10% or more; crosses in the figures): extend 512 + 16." in text


@pytest.mark.slow
def test_a_report_with_the_extend_surface_has_its_section_and_figure(extended):
    folder, cost_model = extended
    written = write_report(folder, cost_model=cost_model)
    markdown = written.markdown.read_text()
    assert f"\n## {TITLE}\n" in markdown and "(extend.png)" in markdown
    order = [markdown.index(f"## {title}") for title in ("What a call costs here", TITLE, "Caveats")]
    assert order == sorted(order)
    assert_valid_figure(folder / "extend.png")
    assert NOT_MEASURED not in markdown.replace("\\", "")
    samples = pd.read_csv(folder / "samples.csv")
    assert (samples["phase"] == "extend").any()
