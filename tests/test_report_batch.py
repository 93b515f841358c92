import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.per_batch_form import PerBatchForm
from profiler.costmodel.surface import fit_surface
from profiler.report import write_report
from profiler.report.batch_section import NOT_MEASURED, TITLE, _knee, batch_section
from profiler.report.breakeven_section import NO_SURFACES
from profiler.report.build import MARKDOWN
from profiler.report.caveats import caveats
from profiler.report.document import Bullets, ReportContext, Table
from profiler.report.fig_batch import batch_figure, shown_lengths
from profiler.report.inputs import load_run
from profiler.report.style import theme
from profiler.report.uncertainty import CallIntervals
from tests.report_batches import BATCHES, REPEATS, with_batches, without_surfaces
from tests.test_report_build import assert_valid_figure

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
EXAMPLE_FITS = ROOT / "fits" / "example"


@pytest.fixture(scope="module")
def batched_run(tiny_run, tmp_path_factory):
    """``tiny_run`` with batches added (tests/report_batches.py): (folder, cost model with surfaces)."""
    folder, fits = tiny_run
    return with_batches(folder, fits, tmp_path_factory.mktemp("batched") / "tiny")


def context(data) -> ReportContext:
    return ReportContext(folder=data.folder, cost_model=data.cost_model, run=data.run, hardware=data.hardware,
                         samples=data.samples, points=data.points, calls=CallIntervals(data.cost_model, draws=50))


def test_a_run_with_batches_keeps_them_apart(batched_run):
    folder, cost_model = batched_run
    data = load_run(folder, cost_model=cost_model)
    assert (data.samples["batch"] == 1).all() and (data.points["batch"] == 1).all()
    assert set(data.batch_samples["batch"]) == set(BATCHES) and set(data.batch_points["batch"]) == set(BATCHES)
    single = data.samples[data.samples["phase"].isin(["prefill", "decode"])]
    assert len(data.batch_samples) == len(BATCHES) * REPEATS * single.groupby(["phase", "n_ctx"]).ngroups


def test_the_batch_section_says_what_batching_buys(batched_run):
    folder, cost_model = batched_run
    data = load_run(folder, cost_model=cost_model)
    ctx = context(data)
    section = batch_section(ctx, data)
    assert section.title == TITLE and [path.name for _, path in ctx.figures] == ["batch.png"]
    (table,) = [block for block in section.blocks if isinstance(block, Table)]
    assert [row[0] for row in table.rows] == ["prefill", "decode"] and "held-out error over (B, n)" in table.columns
    assert all("B 1, 2, 4, 8 at n" in row[-1] for row in table.rows)
    (bullets,) = [block for block in section.blocks if isinstance(block, Bullets)]
    decode = next(item for item in bullets.items if item.startswith("Decode"))
    # the measured gain: 8 sequences' tokens/s over one's, from the samples' medians at the length it names
    samples = pd.concat([data.samples, data.batch_samples])
    n = int(decode.split(" tokens cached")[0].split()[-1].replace(",", ""))
    median = {b: samples[(samples["phase"] == "decode") & (samples["batch"] == b) & (samples["n_ctx"] == n)]
              ["latency_s"].median() for b in (1, 8)}
    fitted = 8 * cost_model.batch_pass("decode", 1, n) / cost_model.batch_pass("decode", 8, n)
    assert f"{fitted:.2f}x by the fit, {8 * median[1] / median[8]:.2f}x measured" in decode


def test_the_batch_figure_draws_each_pass_and_its_roofline_bound(batched_run):
    folder, cost_model = batched_run
    data = load_run(folder, cost_model=cost_model)
    samples = pd.concat([data.samples[data.samples["phase"].isin(["prefill", "decode"])], data.batch_samples])
    points = pd.concat([data.points, data.batch_points])
    with theme():
        fig = batch_figure(cost_model, samples, points)
    top, bottom = fig.axes[0], fig.axes[2]  # prefill: latency, tokens/s
    lengths = shown_lengths(samples, "prefill")
    assert len(lengths) == 3 and lengths[0] == samples.loc[samples["phase"] == "prefill", "n_ctx"].min()
    bounds = [line for line in top.get_lines() if line.get_linestyle() == ":"]
    assert len(bounds) == len(lengths)
    for n, line in zip(lengths, bounds):
        at = points[(points["phase"] == "prefill") & (points["n_ctx"] == n)].sort_values("batch")
        assert list(line.get_xdata()) == [1, *BATCHES]
        assert np.allclose(line.get_ydata(), at["median_latency_s"] * at["roofline_share"])
    dots = bottom.collections  # bands first, then each length's passes as tokens/s: B * n / latency
    at = samples[(samples["phase"] == "prefill") & (samples["n_ctx"] == lengths[0])]
    passes = next(c for c in dots if len(c.get_offsets()) == len(at))
    assert np.allclose(passes.get_offsets()[:, 1], at["batch"] * lengths[0] / at["latency_s"])


@pytest.mark.slow
def test_a_report_of_a_run_with_batches_has_its_figure(batched_run):
    folder, cost_model = batched_run
    written = write_report(folder, cost_model=cost_model)
    markdown = written.markdown.read_text()
    assert f"\n## {TITLE}\n" in markdown and "(batch.png)" in markdown
    order = [markdown.index(f"## {title}") for title in ("Throughput and the roofline", TITLE, "Memory")]
    assert order == sorted(order)
    assert_valid_figure(folder / "batch.png")
    assert "ratio in parallel: makespan" in markdown and NO_SURFACES not in markdown


def test_batches_measured_but_no_surfaces_fitted(batched_run, tiny_run):
    folder, _ = batched_run
    data = load_run(folder, cost_model=without_surfaces(tiny_run[1]))
    ctx = context(data)
    section = batch_section(ctx, data)
    assert [path.name for _, path in ctx.figures] == ["batch.png"]  # passes and rooflines, no surface
    assert any("The fit has no batch surfaces" in block for block in section.blocks if isinstance(block, str))
    assert not any(isinstance(block, Table) for block in section.blocks)


@pytest.mark.slow
def test_an_old_run_and_fit_still_render(tmp_path):
    run = shutil.copytree(EXAMPLE_RUN, tmp_path / "gpt2", ignore=shutil.ignore_patterns("*.png", "report.*"))
    written = write_report(run, EXAMPLE_FITS)
    markdown = (run / MARKDOWN).read_text()
    assert f"## {TITLE}\n\n{NOT_MEASURED}" in markdown.replace("\\", "")
    assert "batch.png" not in markdown and not (run / "batch.png").exists()
    assert NO_SURFACES.split(":")[0] in markdown.replace("\\", "") and "ratio in parallel" not in markdown
    assert len(written.figures) == 8


def test_a_loose_batch_surface_is_a_caveat(batched_run):
    folder, cost_model = batched_run
    data = load_run(folder, cost_model=cost_model)
    good = dataclasses.replace(cost_model.surfaces["prefill"], held_out_mape=0.01)
    loose = dataclasses.replace(cost_model.surfaces["decode"], held_out_mape=0.2)
    cost_model = CostModel(dataclasses.replace(cost_model.fit, surfaces={"prefill": good, "decode": loose}))
    data = dataclasses.replace(data, cost_model=cost_model)
    items = caveats(data, CallIntervals(cost_model, draws=50), data.run.model.max_positions)
    assert "The decode batch surface predicts a left-out (batch, length) 20% off on average" in " ".join(items)
    assert "prefill batch surface" not in " ".join(items)
    assert "measured at one length" not in " ".join(items)  # every batch of the fixture at two lengths or more
    # batches measured at one length: holding one out leaves its size unmeasured, and the caveat says so
    domain = np.array([[1, 8, 512], [2, 8, 8], [4, 8, 91], [8, 16, 16]], dtype=np.int64)
    single = dataclasses.replace(loose, domain=domain)
    cost_model = CostModel(dataclasses.replace(cost_model.fit, surfaces={"prefill": good, "decode": single}))
    items = caveats(dataclasses.replace(data, cost_model=cost_model), CallIntervals(cost_model, draws=50),
                    data.run.model.max_positions)
    decode = next(item for item in items if item.startswith("The decode batch surface"))
    assert "Batches 2 and 8 were measured at one length: held out, such a batch is a size the fit did not see" in decode


def test_batch_points_skipped_out_of_memory_or_unstable_are_caveats(batched_run):
    folder, cost_model = batched_run
    data = load_run(folder, cost_model=cost_model)
    done = dataclasses.replace(
        data.run.done,
        batch_skipped=[{"phase": "prefill", "batch": 8, "n_ctx": 512, "reason": "time budget", "pass_s": 3.0}],
        batch_out_of_memory=[{"phase": "decode", "batch": 64, "n_ctx": 1024, "error": "out of memory"}],
        unstable_points=[{"phase": "decode", "batch": 4, "n_ctx": 16}, {"phase": "prefill", "n_ctx": 32}])
    data = dataclasses.replace(data, run=dataclasses.replace(data.run, done=done))
    text = " ".join(caveats(data, CallIntervals(cost_model, draws=50), data.run.model.max_positions))
    assert "Batch points not measured (batch x tokens): prefill 8 x 512 (time budget)" in text
    assert "Out of memory at batch x tokens decode 64 x 1,024" in text
    assert "decode n = 16 at batch 4, prefill n = 32." in text  # a batch-1 point (or one without the key) plain


def test_a_per_batch_decode_surface_is_said_with_each_batch_s_cost_and_the_cheapest():
    """gpt2's decode step in one default run on this CPU, whose BLAS made batch 4 dearer than 8 there."""
    form = PerBatchForm((1, 2, 4, 8))
    batch, n = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [8, 91, 256], indexing="ij"))
    y = form.evaluate(np.array([0.066, 0.106, 0.196, 0.147, 1e-5]), np.stack([batch, n], axis=-1).astype(float))
    surface = fit_surface("decode", batch, n, y)
    text = _knee("decode", surface, 91)
    assert surface.form.name == "per-batch" and text.startswith("The decode surface is the per-batch form")
    assert "66.0 ms at B = 1, 106 ms at B = 2, 196 ms at B = 4, 147 ms at B = 8" in text
    assert "the cheapest is B = 8 (18.4 ms a sequence)" in text
