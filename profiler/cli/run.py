"""``python -m profiler run``: measure each model's passes and write its output folder.

For each model, ``<out>/<hardware-slug>/<model>/`` receives:

- ``samples.csv``: one row per timed pass, written as measured (``profiler.measure.samples``);
- ``hardware.json``: the fingerprint and this device's measured ceilings;
- ``run.json``: what was asked, what was done (lengths, generate pairs, batch sizes, anything
  skipped and why -- extend points too --, out of memory, interrupted, the drift check, when it finished), the model and
  whether its weights are random, the energy counter read or why there is none (``done.energy``), and the
  per-point summary;
- after the fit: ``report.md``, ``report.html`` and the PNG figures (``profiler.report``).

The run holds each model's folder from before it measures anything until its report is written
(``files.hold_run_folder``): a second run into the same folder is refused in one line, and the fit
and report read back only files this run wrote. Every folder is checked writable and its earlier
run's files (its report included) moved to ``previous/<time>/`` before any model is built.

Without ``--budget``, each model is measured, fitted and reported in about a minute: its sweep gets
what is left of ``RUN_TARGET_S`` after the start-up (the first model: from the command's start,
imports and ceilings included) and its build, less ``FIT_AND_REPORT_S`` kept for the fit and
report, and never less than ``MIN_DEFAULT_BUDGET_S``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from rich.console import Console

from profiler.measure.allocator import hold_freed_memory
from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.ceilings import measure_ceilings
from profiler.cli.console import SweepProgress, print_point_tables
from profiler.costmodel.cost_model import CostModel
from profiler.measure.devices import dtype_name, resolve_device, resolve_dtype
from profiler.measure.energy import EnergyRecord, open_energy_counter
from profiler.errors import UserError
from profiler.files import hold_run_folder, run_folder
from profiler.cli.fit import fit_and_print
from profiler.cli.run_outcome import print_outcome
from profiler.measure.flops_check import formula_check
from profiler.measure.grid import check_lengths, default_batch_sizes, default_lengths, parse_lengths
from profiler.measure.hardware import fingerprint, slug
from profiler.measure.loading import LoadedModel, check_model, load_model
from profiler.measure.run_document import HardwareDocument, ModelRecord, RunAsked, RunDocument, RunDone
from profiler.measure.routing import Routing
from profiler.measure.routing_pass import measure_routing
from profiler.measure.samples import SampleWriter, read_samples
from profiler.cli.show import print_families
from profiler.measure.summary import point_table
from profiler.measure.sweep import Sweep, SweepOutcome

OUTPUT_FILES = ("samples.csv", "run.json", "hardware.json", "concurrency.csv")  # concurrency: endpoint runs
REPORT_FILES = ("report.md", "report.html", "*.png", "validate-*.json")
RUN_TARGET_S = 60.0  # a default run: each model measured, fitted and reported within a minute
# kept from the minute after the sweep: gpt2's default run on the 2-core VM took 6.3-7.4 s for its tables, fit and
# report (10 figures) and 0.3 s to exit (cli.main.run_and_exit) in a slow spell (matmul at 94 GFLOP/s)
FIT_AND_REPORT_S = 10.0
MIN_DEFAULT_BUDGET_S = 15.0  # a model whose start-up and build take most of the minute is still measured


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; validated by ``run`` before any model is built."""

    models: list[str]
    device: str = "auto"
    dtype: str = "auto"
    lengths: str | None = None
    budget_s: float | None = None  # seconds of the sweep; None: what is left of a minute (default_budget_s)
    out: Path = Path("reports")
    attn_implementation: str | None = None  # sdpa, or eager where the architecture cannot run sdpa
    device_map: str | None = None
    trust_remote_code: bool = False
    threads: int | None = None
    seed: int = 0
    fits: Path = Path("fits")
    batch_sizes: list[int] | None = None  # the batch grid's sizes (None: the device's default)


def keep_previous_run(folder: Path) -> Path | None:
    """Move an earlier run's files to ``previous/<its time>/``: a new run never erases measurements."""
    earlier = [folder / name for name in OUTPUT_FILES if (folder / name).exists()]
    if not earlier:
        return None
    earlier += [path for pattern in REPORT_FILES for path in sorted(folder.glob(pattern))]
    stamp = datetime.fromtimestamp(earlier[0].stat().st_mtime).strftime("%Y%m%dT%H%M%S.%f")
    destination = folder / "previous" / stamp
    try:  # a rename within the folder: each file is in one place or the other, never lost
        destination.mkdir(parents=True, exist_ok=True)
        for path in earlier:
            path.rename(destination / path.name)
    except OSError as err:
        raise UserError(f"cannot move the previous run in {folder} aside to {destination}: "
                        f"{err.strerror or err}") from None
    return destination


def open_samples(folder: Path) -> SampleWriter:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return SampleWriter(folder / "samples.csv")
    except OSError as err:
        raise UserError(f"cannot write to {folder}: {err.strerror or err}") from None


def check_writable(root: Path) -> None:
    """Fail now, not after the model is built, when ``root`` cannot take new files (read-only, full...)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
    except OSError as err:
        raise UserError(f"cannot write to {root}: {err.strerror or err}") from None


def default_budget_s(spent_s: float) -> float:
    """Seconds of sweep that keep a model's run within ``RUN_TARGET_S``, ``spent_s`` seconds already spent on it."""
    return max(MIN_DEFAULT_BUDGET_S, RUN_TARGET_S - spent_s - FIT_AND_REPORT_S)


def _run_document(request: RunRequest, budget_s: float, loaded: LoadedModel, outcome: SweepOutcome, points, rows: int,
                  memory_measured: bool, routing: Routing | None, batch_sizes: list[int],
                  energy: EnergyRecord) -> RunDocument:
    asked = RunAsked(model=loaded.source.name, device=request.device, dtype=request.dtype,
                     lengths=request.lengths or "default", budget_s=budget_s, seed=request.seed,
                     threads=torch.get_num_threads(), attn_implementation=request.attn_implementation or "default",
                     device_map=request.device_map, batch_sizes=batch_sizes)
    model = ModelRecord(name=loaded.source.name, path=str(loaded.source.path), found_in=loaded.source.origin,
                        random_weights=loaded.random_weights, dtype=dtype_name(loaded.dtype),
                        attn_implementation=loaded.attn_implementation, device_map=loaded.device_map,
                        build_s=loaded.build_s, architecture=loaded.architecture.as_dict(),
                        attn_fallback=loaded.attn_fallback, part_measured=loaded.part_measured)
    unstable = (points[points["unstable"]][["phase", "batch", "n_ctx", "n_new"]].to_dict("records")
                if not points.empty else [])
    measured_sizes = sorted({int(b) for b in points["batch"]}) if not points.empty else [1]
    done = RunDone(lengths=outcome.lengths, generate_pairs=[list(pair) for pair in outcome.generate_pairs], rows=rows,
                   elapsed_s=outcome.elapsed_s, interrupted=outcome.interrupted, out_of_memory=outcome.out_of_memory,
                   skipped=outcome.skipped, drift_check=outcome.drift, peak_memory_measured=memory_measured,
                   finished_at=datetime.now().astimezone().isoformat(timespec="seconds"), unstable_points=unstable,
                   disturbance=outcome.disturbance, batch_sizes=measured_sizes, batch_skipped=outcome.batch_skipped,
                   batch_out_of_memory=outcome.batch_out_of_memory, extend_skipped=outcome.extend_skipped,
                   extend_out_of_memory=outcome.extend_out_of_memory, energy=energy,
                   budget_raised_to_s=outcome.budget_raised_to_s, caches_prefilled=outcome.caches_prefilled)
    return RunDocument(command=list(sys.argv), asked=asked, model=model, done=done, points=points.to_dict("records"),
                       routing=routing)


def _profile_one(request: RunRequest, source: ModelSource, device, dtype, hardware: dict, ceilings: dict,
                 folder: Path, console: Console, started_s: float) -> CostModel | None:
    """Measure one model into ``folder`` and fit it: its cost model (None when it could not be fitted).
    ``started_s``: when its minute began (``time.perf_counter``), for the default budget.

    Ctrl-C during the sweep ends the run with ``KeyboardInterrupt`` once what was measured is written.
    The caller holds ``folder``, so the files read back here are this run's."""
    hold_freed_memory()  # a pass reuses the pages of the passes before it (``profiler.measure.allocator``)
    # built, and a cached step run, before anything is written: a model that cannot run leaves no empty samples.csv
    loaded = load_model(source, device, dtype, attn_implementation=request.attn_implementation,
                        device_map=request.device_map, trust_remote_code=request.trust_remote_code, seed=request.seed)
    writer = open_samples(folder)
    with writer:
        HardwareDocument(slug=folder.parent.name, facts=hardware, dtype=dtype_name(dtype),
                         attn_implementation=loaded.attn_implementation, ceilings=ceilings).write(folder)
        arch = loaded.architecture
        weights = "random weights" if loaded.random_weights else "safetensors weights"
        console.print(f"[bold]{source.name}[/]: {arch.params / 1e6:.1f}M parameters, {arch.layers} layers, "
                      f"{weights}, {dtype_name(dtype)} on {device}, built in {loaded.build_s:.1f} s")
        if loaded.part_measured:
            console.print(f"measured: {loaded.part_measured}", style="yellow", markup=False)
        if request.lengths is not None:
            lengths = parse_lengths(request.lengths)
            check_lengths(lengths, arch.max_positions, source.name)
        else:
            lengths = default_lengths(arch.max_positions)
        batch_sizes = request.batch_sizes or default_batch_sizes(device.type)
        budget_s = request.budget_s or _default_budget(time.perf_counter() - started_s, console)
        with (open_energy_counter({str(loaded.device), *loaded.device_map.values()}) as energy,
              SweepProgress(console, source.name) as progress):
            sweep = Sweep(loaded, writer, lengths=lengths, trim_to_budget=request.lengths is None,
                          budget_s=budget_s, raise_budget=request.budget_s is None, seed=request.seed,
                          batch_sizes=batch_sizes, progress=progress,
                          energy=energy.counter)
            outcome = sweep.run()
        rows = writer.rows
    samples = read_samples(folder / "samples.csv")
    energy_record = EnergyRecord.of(energy, passes=rows, passes_measured=int(samples["energy_j"].notna().sum()))
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    points = point_table(samples, arch.active_params * dtype_bytes, lambda tokens: arch.kv_cache_bytes(tokens, dtype),
                         ceilings)
    prefill_lengths = samples.loc[(samples["phase"] == "prefill") & (samples["batch"] == 1), "n_ctx"]
    # a mixture of experts: the routing of one more prefill, at the longest length measured
    routing = (None if outcome.interrupted or prefill_lengths.empty
               else measure_routing(loaded, int(prefill_lengths.max()), request.seed))
    if routing:
        console.print(f"routing of a {routing.tokens:,}-token prefill: the busiest experts took "
                      f"{routing.load_ratio:.2f}x the balanced load ({routing.uniform_load_ratio:.2f}x if routed "
                      "uniformly at random); run.json: routing")
    _run_document(request, budget_s, loaded, outcome, points, rows, sweep.memory.supported, routing, batch_sizes,
                  energy_record).write(folder)
    print_point_tables(console, f"{source.name} ({weights})", points)
    print_outcome(console, outcome, folder)
    flops = formula_check(samples)
    if flops is not None and flops.off:
        console.print(flops.sentence(), style="yellow", markup=False)
    console.print(energy_record.line(), style=None if energy_record.counter else "yellow", markup=False)
    if outcome.interrupted:
        raise KeyboardInterrupt  # what was measured is written; the CLI ends with exit status 130
    try:
        cost_model = fit_and_print(folder, request.fits, console)
    except UserError as err:  # the measurements stand; only the curves could not be fitted
        console.print(f"[yellow]no cost model fitted: {err}")
        return None
    _write_report(folder, cost_model, console)
    return cost_model


def _default_budget(spent_s: float, console: Console) -> float:
    budget_s = round(default_budget_s(spent_s), 1)
    console.print(f"budget: {budget_s:g} s of measuring, the rest of a {RUN_TARGET_S:g} s run after {spent_s:.1f} s of "
                  f"start-up and build, less {FIT_AND_REPORT_S:g} s for the fit and report (--budget to choose)")
    return budget_s


def _write_report(folder: Path, cost_model: CostModel, console: Console) -> None:
    from profiler.report import write_report  # matplotlib and seaborn: only once there is something to draw

    try:
        written = write_report(folder, cost_model=cost_model)
    except UserError as err:  # the measurements and the fit stand
        console.print(f"[yellow]no report written: {err}")
        return
    console.print(f"report: {written.markdown}, {written.html} ({len(written.figures)} figures, "
                  f"{written.render_s:.1f} s)")


def run(request: RunRequest, console: Console, started_s: float | None = None) -> int:
    """Profile every requested model; exit status 0 (Ctrl-C raises ``KeyboardInterrupt`` once the rows are written).
    ``started_s``: when the command began (``time.perf_counter``; None: now), the start of the first model's minute."""
    started_s = time.perf_counter() if started_s is None else started_s
    sources = [resolve_model(spec) for spec in request.models]
    for source in sources:  # a broken config.json or weights file ends the run now, not after the ceilings
        check_model(source, request.trust_remote_code)
    if request.lengths is not None:
        parse_lengths(request.lengths)
    if request.budget_s is not None and request.budget_s <= 0:
        raise UserError(f"--budget {request.budget_s:g}: must be a positive number of seconds")
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
    check_writable(request.out)
    check_writable(request.fits)
    if request.threads:
        torch.set_num_threads(request.threads)
    hardware = fingerprint(device)
    hardware_slug = slug(hardware)
    folders = [run_folder(request.out, hardware_slug, source.name) for source in sources]
    model_started_s = started_s
    with ExitStack() as held:
        _prepare_folders(folders, held, console)
        console.print(f"hardware: {hardware_slug}; measuring ceilings ...")
        ceilings = measure_ceilings(device, dtype)
        console.print(f"ceilings: {ceilings['peak_matmul_flops_per_s'] / 1e9:,.0f} GFLOP/s matmul "
                      f"({dtype_name(dtype)}), {ceilings['memory_bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s memory")
        cost_models = []
        for source, folder in zip(sources, folders):
            cost_model = _profile_one(request, source, device, dtype, hardware, ceilings, folder, console,
                                      model_started_s)
            cost_models += [cost_model] if cost_model else []
            model_started_s = time.perf_counter()
    print_families(console, cost_models)
    console.print(f"done in {time.perf_counter() - started_s:.1f} s")
    return 0


def _prepare_folders(folders: list[Path], held: ExitStack, console: Console) -> None:
    """Hold every model's folder until ``held`` closes, check it takes files and move its earlier run
    aside: a folder another run writes, a read-only one or one whose earlier run cannot be moved is
    one line now, before the ceilings are measured or any model is built."""
    for folder in folders:
        held.enter_context(hold_run_folder(folder))
        check_writable(folder)
    for folder in folders:
        kept = keep_previous_run(folder)
        if kept:
            console.print(f"the previous run in {folder} is kept in {kept}")
