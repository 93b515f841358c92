"""What a person sees: the sweep's progress bar with ETA, and the tables at the end."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from profiler.measure.samples import PHASE_TITLES


class SweepProgress:
    """A rich progress bar measured in seconds of the budget; call it as the sweep's ``progress``."""

    def __init__(self, console: Console, label: str):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
        )
        self._label = label
        self._task = None

    def __enter__(self) -> "SweepProgress":
        self._progress.start()
        self._task = self._progress.add_task(self._label, total=1.0)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, description: str, done_s: float, total_s: float) -> None:
        self._progress.update(self._task, description=f"{self._label}: {description}", completed=done_s,
                              total=max(total_s, done_s, 1e-9))


def _si(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _mib(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value / 2**20:,.0f} MiB"


def print_point_tables(console: Console, title: str, points: pd.DataFrame) -> None:
    """One table per phase: n (and the batch, where a phase was measured with more than one sequence), median
    latency, tokens/s, FLOP/s, share of roofline, memory."""
    if points.empty:
        console.print(f"[yellow]{title}: nothing was measured")
        return
    for phase, group in points.groupby("phase", sort=False):
        table = Table(title=f"{title} -- {PHASE_TITLES[phase]}", title_justify="left")
        batched = "batch" in group.columns and bool((group["batch"] > 1).any())
        with_new = phase in ("generate", "extend")  # points of one n_ctx differ by their n_new
        columns = (["batch"] if batched else []) + ["n_ctx"] + (["n_new"] if with_new else []) + [
            "repeats", "median latency", "95% CI", "tokens/s", "FLOP/s", "roofline", "peak mem", "KV cache", ""]
        for name in columns:
            table.add_column(name, justify="left" if name == "" else "right")
        for row in group.itertuples():
            cells = ([str(row.batch)] if batched else []) + [str(row.n_ctx)] + (
                [str(row.n_new)] if with_new else []) + [
                str(row.repeats), f"{row.median_latency_s * 1e3:.2f} ms",
                "-" if math.isinf(row.ci95_rel) else f"±{row.ci95_rel:.1%}",
                f"{row.tokens_per_s:,.1f}", _si(row.flops_per_s, "FLOP/s"), f"{row.roofline_share:.0%}",
                _mib(row.peak_mem_bytes), _mib(row.kv_cache_bytes), "[red]unstable" if row.unstable else "",
            ]
            table.add_row(*cells)
        console.print(table)
