"""The hardware cost report of one run: ``report.md`` and ``report.html`` with PNG figures, in the run's folder.

``write_report(folder)`` renders from the saved samples and the fitted cost model (nothing is
measured): in short; the machine, model and run; for an endpoint run, the endpoint and its serving overhead
(``endpoint_section``); latency per phase (samples, fit, band,
residuals, linearity horizon); throughput and FLOP/s against the roofline; batches (passes of several
sequences: latency and tokens/s against the batch, the fit's batch surfaces); memory; what a
typical call costs, with intervals, and the whole calls measured against their prediction; a cached
prefix (the extend surface, what reusing a prefix saves typical calls); the sections of every section
provider (``section_providers``); the caveats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from dataclasses import dataclass
from pathlib import Path

from profiler.costmodel.cost_model import PHASES
from profiler.errors import UserError
from profiler.report import style
from profiler.report.batch_section import batch_section
from profiler.report.calls import measured_calls_table, typical_calls_table
from profiler.report.caveats import caveats
from profiler.report.curves import FitSeries
from profiler.report.document import Bullets, Figure, Report, ReportContext, Section, SectionProvider
from profiler.report.endpoint_section import endpoint_sections
from profiler.report.extend_section import extend_section
from profiler.report.facts import derived_lines, facts_table, fit_table, machine_facts, model_facts, run_facts
from profiler.report.fig_latency import latency_figure
from profiler.report.fig_memory import device_memory_bytes, memory_figure
from profiler.report.fig_throughput import throughput_figure
from profiler.report.html import render_html
from profiler.report.inputs import RunData, load_run
from profiler.report.markdown import render_markdown
from profiler.report.saving import save_all
from profiler.report.serving_overhead import load_in_process
from profiler.report.breakeven_section import breakeven_sections
from profiler.report.routing_section import routing_sections
from profiler.report.uncertainty import CallIntervals
from profiler.report.units import interval, quantity, share
from profiler.report.validate_section import validation_sections

MARKDOWN, HTML = "report.md", "report.html"


def section_providers() -> list[SectionProvider]:
    """Sections made elsewhere that every report includes, after the typical-call table and before
    the caveats (see ``profiler.report.document``)."""
    return [routing_sections, breakeven_sections, validation_sections]


@dataclass(frozen=True)
class WrittenReport:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    render_s: float


def _in_short(data: RunData, calls: CallIntervals) -> Section:
    cm, model = data.cost_model, data.run.model
    weights = ("random weights" if model.random_weights else "the server's weights" if data.run.endpoint
               else "trained weights")
    size = "parameters not known here" if model.params is None else f"{model.params / 1e6:,.0f}M parameters"
    items = [f"{data.model_name}: {size}, {model.dtype}, {weights}; "
             f"on {machine_facts(data.hardware.facts, data.hardware.ceilings)[0][1]}."]
    if "prefill" in cm.curves:
        curve = cm.curve("prefill", "latency_s")
        best = data.points[data.points["phase"] == "prefill"]["tokens_per_s"].max()
        items.append(f"Reading a prompt (prefill): {quantity(curve.predict(curve.n_min), 's')} for {curve.n_min:,} "
                     f"tokens, {quantity(curve.predict(curve.n_max), 's')} for {curve.n_max:,}; at best "
                     f"{best:,.0f} tokens/s.")
    if "decode" in cm.curves:
        curve = cm.curve("decode", "latency_s")
        items.append(f"Writing a token (decode): {quantity(curve.predict(curve.n_min), 's')} with {curve.n_min:,} "
                     f"tokens cached, {quantity(curve.predict(curve.n_max), 's')} with {curve.n_max:,} "
                     f"({1 / curve.predict(curve.n_min):,.1f} to {1 / curve.predict(curve.n_max):,.1f} tokens/s).")
    if {"prefill", "decode", "forward"} <= set(cm.curves):
        items.append(f"A call of 128 tokens in and 128 out: {interval(*calls.call(128, 128), 's')} with a KV cache, "
                     f"{interval(*calls.call(128, 128, cache=False), 's')} without one (95% intervals).")
    horizon = cm.derived.get("prefill", {}).get("linearity_horizon", {}).get("10%", {}).get("n_ctx")
    if horizon and horizon <= (model.max_positions or horizon):
        items.append(f"Below about {horizon:,.0f} tokens a prefill costs close to a linear function of its length, "
                     "as the paper's Def. 2.2 assumes; there the quadratic (attention) term reaches 10% of the cost.")
    return Section("In short", (Bullets(tuple(items)),))


def _facts(data: RunData) -> Section:
    return Section("Machine, model and run", (facts_table("machine", machine_facts(data.hardware.facts, data.hardware.ceilings)),
                                              facts_table("model", model_facts(data.run.model.to_json())),
                                              facts_table("run", run_facts(data.run))))


def _latency(ctx: ReportContext, series: FitSeries, data: RunData) -> Section:
    unstable = {phase: {p["n_ctx"] for p in data.run.done.unstable_points
                        if p["phase"] == phase and p.get("batch", 1) == 1} for phase in PHASES}
    blocks = ["One pass of each phase, timed repeatedly at each context length. Every sample is a point; the line "
              "is the fitted curve with its 95% band; below, each sample's distance from the curve.",
              fit_table(data.cost_model),
              Bullets(tuple(derived_lines(data.cost_model, data.run.model.max_positions)))]
    for phase in PHASES:
        if series.has(phase, "latency_s"):
            fig = partial(latency_figure, series, data.samples, unstable[phase], phase)
            blocks.append(ctx.save_figure(fig, f"latency-{phase}", f"{phase}: latency per pass against context "
                                          "length (log-log), fitted curve with 95% band, residuals below."))
    return Section("Latency per pass", tuple(blocks))


def _throughput(ctx: ReportContext, series: FitSeries, data: RunData) -> Section:
    points = data.points
    best = []
    for phase in PHASES:
        rows = points[points["phase"] == phase]
        if rows["roofline_share"].notna().any():  # none for a served model: no ceilings seen from the client
            top = rows.loc[rows["roofline_share"].idxmax()]
            best.append(f"{phase} {share(top['roofline_share'])} (n = {int(top['n_ctx']):,})")
    fig = partial(throughput_figure, series, points, data.hardware.ceilings)
    if not data.cost_model.has_flops:  # a served model whose architecture is not known here: latency alone
        return Section("Throughput", (
            ctx.save_figure(fig, "throughput", "Tokens per second of one pass. Prefill and forward do the same work "
                            "and nearly overlap."),
            "No FLOP/s and no roofline: the served model's architecture is not known here, so neither are its FLOPs, "
            "and the server's devices cannot be seen from a client.",
        ))
    return Section("Throughput and the roofline", (
        ctx.save_figure(fig, "throughput", "Tokens per second (top) and achieved FLOP/s against the roofline "
                        "(bottom). Prefill and forward do the same work and nearly overlap."),
        ("Closest to the roofline bound (the least time this device could take for the pass): " + "; ".join(best)
         + ". A pass far below its bound leaves speed on the table; decode is bound by memory bandwidth, so its "
         "bound sits far below the matmul peak." if best else "No roofline: the server's devices, and so their "
         "ceilings, cannot be seen from a client; its FLOP/s are the model's FLOPs over the times the client saw.")
        + " FLOPs are what the kernels are asked to compute, from the "
        "model's config (the flops column of samples.csv; flops_counted checks them): attention dense over "
        "every key handed to the kernel, so a prefill counts all n x n scores although the causal mask (and a "
        "sliding window) hides many of them; a mixture of experts counts each token's routed experts only.",
    ))


def _memory(ctx: ReportContext, series: FitSeries, data: RunData) -> Section:
    if not any(series.has(phase, "peak_mem_bytes") for phase in PHASES):
        return Section("Memory", ("Peak memory was not measured in this run.",))
    prefill = data.points[data.points["phase"] == "prefill"].sort_values("n_ctx")
    last = prefill.iloc[-1]
    device = device_memory_bytes(data.hardware.facts)
    text = (f"A prefill of {int(last['n_ctx']):,} tokens peaked at {quantity(last['peak_mem_bytes'], 'bytes')}"
            + (f", {share(last['peak_mem_bytes'] / device)} of this device's {quantity(device, 'bytes')}" if device
               else "")
            + f"; its KV cache held {quantity(last['kv_cache_bytes'], 'bytes')}, "
            f"{quantity(last['kv_cache_bytes'] / last['n_ctx'], 'bytes')} per token.")
    fig = partial(memory_figure, series, data.points, data.hardware.facts, data.run.model.to_json())
    return Section("Memory", (ctx.save_figure(fig, "memory", "Peak memory per pass and KV-cache bytes against "
                                              "context length (log-log), with the weights and the device's memory."),
                              text))


def _calls(data: RunData, calls: CallIntervals, max_positions: int | None) -> Section:
    blocks = ["A call reads n_in tokens and writes n_out. Priced by the fitted curves, with 95% intervals.",
              typical_calls_table(calls, max_positions, data.model_name)]
    measured = measured_calls_table(calls, data.points)
    if measured is not None:
        blocks += ["The run also timed whole calls; here is how the cost model priced them.", measured]
    return Section("What a call costs here", tuple(blocks))


def build_report(data: RunData, providers: Sequence[SectionProvider], in_process=None,
                 fits_dir: Path = Path("fits")) -> tuple[Report, list]:
    """The report's content, and its figures to make and save into the run's folder: (figure or a function
    that makes it, path) pairs. ``in_process``: an endpoint run's in-process fit of the same model (its serving
    overhead), or None; ``fits_dir``: where the run's fit is (said in the commands an endpoint report gives)."""
    calls = CallIntervals(data.cost_model)
    max_positions = data.run.model.max_positions
    series = FitSeries(data.model_name, style.PHASE_COLORS["prefill"], calls, max_positions)
    ctx = ReportContext(folder=data.folder, cost_model=data.cost_model, run=data.run, hardware=data.hardware,
                        samples=data.samples, points=data.points, calls=calls)
    sections = [_in_short(data, calls), _facts(data), *endpoint_sections(ctx, in_process, fits_dir),
                _latency(ctx, series, data), _throughput(ctx, series, data),
                batch_section(ctx, data), _memory(ctx, series, data), _calls(data, calls, max_positions),
                extend_section(ctx, data)]
    for provider in providers:
        sections += list(provider(ctx))
    sections.append(Section("Caveats", (Bullets(tuple(caveats(data, calls, max_positions))),)))
    finished = data.run.done.finished_at
    report = Report(
        title=f"What a call to {data.model_name} costs on {data.slug}",
        subtitle=(f"Measured by aalp-profiler{' on ' + finished if finished else ''}: "
                  f"{len(data.samples) + len(data.batch_samples):,} timed passes, cost curves fitted with 95% "
                  "intervals. "
                  f"Rendered from {data.folder}."),
        sections=tuple(sections), folder=data.folder,
    )
    return report, ctx.figures


def write_report(folder: Path, fits_dir: Path = Path("fits"), cost_model=None,
                 providers: Sequence[SectionProvider] | None = None, in_process: Path | None = None) -> WrittenReport:
    """Render the run in ``folder`` (with ``cost_model``, or its fit under ``fits_dir``) into report.md,
    report.html and PNGs beside them. ``providers``: the extra sections (default ``section_providers()``);
    ``in_process``: for an endpoint run, the fit of the same model in process (``serving_overhead``)."""
    started = time.perf_counter()
    data = load_run(folder, fits_dir, cost_model)
    if in_process is not None and data.run.endpoint is None:
        raise UserError(f"--in-process is for the report of an endpoint run; {folder} is a local run")
    in_process_model = None if in_process is None else load_in_process(in_process, data.model_name)
    try:
        with style.theme():
            report, figures = build_report(data, section_providers() if providers is None else providers,
                                           in_process_model, fits_dir)
            save_all(figures)  # on every core: most of a report's time is making and drawing its figures
        (folder / MARKDOWN).write_text(render_markdown(report))
        (folder / HTML).write_text(render_html(report))
    except OSError as err:
        raise UserError(f"cannot write the report into {folder}: {err.strerror or err}") from None
    figures = tuple(folder / block.file for section in report.sections for block in section.blocks
                    if isinstance(block, Figure))
    return WrittenReport(folder / MARKDOWN, folder / HTML, figures, time.perf_counter() - started)
