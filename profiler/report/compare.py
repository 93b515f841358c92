"""``python -m profiler compare FIT FIT``: two fitted cost models side by side (two machines, or two models).

Writes ``compare.md`` and ``compare.html`` with PNG figures into ``--out`` (default
``reports/compare/<first>--vs--<second>/``, from the fit files' names): the two fits' facts;
per phase, both latency curves with 95% bands and the second over the first; throughput and
FLOP/s; peak memory; a table of typical calls with the ratio of their prices and its 95%
interval; per-pass overhead and cost per token; caveats. Only the fit files are read: no
samples, so the figures show curves, not points.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from profiler.costmodel.cost_model import PHASES, CostModel
from profiler.errors import UserError
from profiler.costmodel.fit_file import load_cost_model
from profiler.costmodel.uncertainty import CallIntervals, ratio_interval
from profiler.report import style
from profiler.report.build import WrittenReport
from profiler.lba.calls import positions_needed
from profiler.report.calls import call_note, impossible, typical_grid
from profiler.report.caveats import uncertainty_caveat
from profiler.report.curves import FitSeries
from profiler.report.document import Bullets, Figure, Report, Section, Table
from profiler.report.facts import machine_facts, model_facts
from profiler.report.fig_latency import comparison_latency_figure
from profiler.report.fig_memory import comparison_memory_figure
from profiler.report.fig_throughput import comparison_throughput_figure
from profiler.report.html import render_html
from profiler.report.markdown import render_markdown
from profiler.report.saving import save_all
from profiler.report.units import interval, quantity, significant

MARKDOWN, HTML = "compare.md", "compare.html"


def _labels(first: CostModel, second: CostModel) -> tuple[str, str]:
    """Name each fit by what differs: the model, the machine, or both."""
    names = (first.model.name, second.model.name)
    slugs = (first.hardware_slug, second.hardware_slug)
    if names[0] != names[1] and slugs[0] == slugs[1]:
        return names
    if names[0] == names[1] and slugs[0] != slugs[1]:
        return slugs
    if names[0] == names[1]:  # one model on one machine twice: two runs
        return f"{names[0]} (first)", f"{names[1]} (second)"
    return f"{names[0]} on {slugs[0]}", f"{names[1]} on {slugs[1]}"


def _facts(series: tuple[FitSeries, FitSeries]) -> Section:
    rows = []
    columns = [dict(model_facts(s.cost_model.model.to_json()) + [("hardware", s.cost_model.hardware_slug)]
                    + machine_facts(s.cost_model.hardware, s.cost_model.hardware.get("ceilings", {}))) for s in series]
    for key in columns[0]:
        rows.append((key, columns[0][key], columns[1].get(key, "-")))
    return Section("The two fits", (Table(columns=("", series[0].label, series[1].label), rows=tuple(rows)),))


def _ratio_text(first: float, second: float) -> str:
    return significant(second / first) if first > 0 else "-"


def _calls_table(series: tuple[FitSeries, FitSeries]) -> Table:
    first, second = series
    limits = [s.max_positions for s in series]
    grid = sorted(set(typical_grid(limits[0]) + typical_grid(limits[1])))
    rows = []
    for n_in, n_out in grid:
        if all(impossible(n_in, n_out, s.max_positions) for s in series):
            notes = [f"cannot run on either: needs {positions_needed(n_in, n_out):,} positions"]
        else:
            notes = [f"{s.label}: {call_note(s.calls, n_in, n_out, s.max_positions, s.cost_model.model.name)}"
                     for s in series if call_note(s.calls, n_in, n_out, s.max_positions, s.cost_model.model.name)]
        prices = ["-" if impossible(n_in, n_out, s.max_positions) else interval(*s.calls.call(n_in, n_out), "s")
                  for s in series]
        both = not any(impossible(n_in, n_out, s.max_positions) for s in series)
        ratio = ratio_interval(first.calls, second.calls, n_in, n_out) if both else None
        ratio_text = f"{significant(ratio[0])} [{significant(ratio[1])}, {significant(ratio[2])}]" if ratio else "-"
        rows.append((f"{n_in:,}", f"{n_out:,}", *prices, ratio_text, "; ".join(notes)))
    return Table(columns=("in", "out", first.label, second.label, "second / first", "note"), rows=tuple(rows),
                 numeric=(True,) * 5 + (False,),
                 note="Latency of a whole call with a KV cache (one prefill, then decode steps); tokens in and out; "
                      "95% intervals in brackets (the ratio's from independent draws of the two fits).")


def _per_pass_table(series: tuple[FitSeries, FitSeries]) -> Table:
    rows = []
    for phase in PHASES:
        derived = [s.cost_model.derived.get(phase) for s in series]
        if None in derived:
            continue
        for what, key in (("per pass", "overhead_s"), ("per token", "cost_per_token_s")):
            values = [d[key] for d in derived]
            rows.append((phase, what, *(quantity(v, "s") for v in values), _ratio_text(*values)))
    return Table(columns=("phase", "cost", series[0].label, series[1].label, "second / first"), rows=tuple(rows),
                 numeric=(False, False, True, True, True),
                 note="Per pass: the fitted cost of an empty pass (a). Per token: the average added cost of a token "
                      "over each fit's measured lengths.")


def _caveats(series: tuple[FitSeries, FitSeries]) -> Section:
    random = [s.cost_model.model.name for s in series if s.cost_model.model.random_weights]
    items = [f"{' and '.join(dict.fromkeys(random))} ran with random weights, built from the config: a pass costs the "
             "same whatever the weights hold, but nothing here says what a model would answer."] if random else []
    for s in series:
        if not s.max_positions:
            items.append(f"{s.label}: its fit does not record the model's maximum positions (schema before 1.1): "
                         "calls longer than the model takes are priced as extrapolations, not refused.")
    models = [s.cost_model.model for s in series]
    if models[0].dtype != models[1].dtype:
        items.append(f"The two ran in different dtypes ({models[0].dtype} and {models[1].dtype}): part of "
                     "the difference is the number format.")
    domains = [f"{s.label}: {min(c.n_min for c in _latency(s))}-{max(c.n_max for c in _latency(s))} tokens"
               for s in series]
    items.append(f"Measured lengths differ per fit ({'; '.join(domains)}). Dashed lines and calls marked "
                 "extrapolated are each fit carried beyond its own data.")
    items.append(uncertainty_caveat())
    return Section("Caveats", (Bullets(tuple(items)),))


def _latency(series: FitSeries):
    return [m["latency_s"] for m in series.cost_model.curves.values() if "latency_s" in m]


def write_comparison(first_path: Path, second_path: Path, out: Path | None = None) -> WrittenReport:
    """Render the comparison of two fit files into ``out`` (see the module doc)."""
    started = time.perf_counter()
    models = [load_cost_model(first_path), load_cost_model(second_path)]
    out = out or Path("reports") / "compare" / f"{Path(first_path).stem}--vs--{Path(second_path).stem}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write to {out}: {err.strerror or err}") from None
    labels = _labels(*models)
    series = tuple(FitSeries(label, color, CallIntervals(cm), cm.model.max_positions)
                   for label, color, cm in zip(labels, style.MODEL_COLORS, models))
    figures: list[Figure] = []  # the blocks; the figures themselves are made and saved together, on every core
    pending: list = []

    def add(make, name: str, caption: str) -> None:
        block = Figure(f"{name}.png", caption)
        figures.append(block)
        pending.append((make, out / block.file))

    try:
        with style.theme():
            for phase in PHASES:
                if all(s.has(phase, "latency_s") for s in series):
                    add(partial(comparison_latency_figure, *series, phase), f"latency-{phase}",
                        f"{phase}: latency per pass of both fits (95% bands), and the second over the first.")
            add(partial(comparison_throughput_figure, *series), "throughput",
                "Tokens per second (top) and achieved FLOP/s (bottom) per phase." if any(
                    s.cost_model.has_flops for s in series) else "Tokens per second per phase (no FLOPs: served "
                "models whose architecture is not known here).")
            if all(s.has("prefill", "peak_mem_bytes") for s in series):
                hardware = tuple(s.cost_model.hardware for s in series)
                add(partial(comparison_memory_figure, *series, hardware), "memory",
                    "Peak memory per pass, and each fit's device memory.")
            save_all(pending)
        report = Report(
            title=f"{labels[0]} against {labels[1]}",
            subtitle=f"Two fitted cost models side by side: {first_path} (first) and {second_path} (second).",
            sections=(_facts(series),
                      Section("Latency per pass", tuple(f for f in figures if f.file.startswith("latency"))),
                      Section("Throughput and memory", tuple(f for f in figures if not f.file.startswith("latency"))),
                      Section("What a call costs on each", (_calls_table(series),)),
                      Section("Per pass", (_per_pass_table(series),)),
                      _caveats(series)),
            folder=out,
        )
        (out / MARKDOWN).write_text(render_markdown(report))
        (out / HTML).write_text(render_html(report))
    except OSError as err:
        raise UserError(f"cannot write the comparison into {out}: {err.strerror or err}") from None
    return WrittenReport(out / MARKDOWN, out / HTML, tuple(out / f.file for f in figures),
                         time.perf_counter() - started)
