"""``python -m profiler validate``: run the three exercises with real model calls and set the measured
cost and break-even against the fitted cost model's predictions.

The cost model is ``<fits>/<model>--<hardware-slug>.json`` of this machine; without one, the
samples of an earlier run under ``<out>/<hardware-slug>/<model>/`` are fitted, or else the model
is profiled first (``python -m profiler run --lengths 1:<max positions>``: the exercises' calls
read and write as few as 1 token, below the default grid; its own time, outside ``--budget``).
Results go beside the run's files: ``validate-<exercise>.json`` (the ``--json`` document,
rewritten after every run) and ``validate-<exercise>.png``.

Default grids (``VALIDATE_GRIDS``) fit gpt2's 1024 positions and take about a minute each on
a 2-core CPU; ``--budget`` is shared by the exercises, each getting the time left over the
exercises left.

``--schedule parallel`` (``--max-batch N``, checked with breakeven's flags by
``cli.breakeven.schedule_of``) runs each group of independent calls as batched generates and
sets the wall time against the predicted makespan (``lba.validation_prediction.parallel_schedule``); the
default grids then also serve several inputs or mutants at once (``PARALLEL_SETTINGS``), so
that every exercise makes groups of more than one call. ``--devices`` above 1 cannot be run
on one machine and is refused.

``--prefix-cache on`` (``--cache-capacity TOKENS``, read by ``cli.breakeven.reuse_of``) runs
every call alone with each model keeping its calls' KV caches for real, and sets the wall time
against the replayed prices of the calls with their cached prefixes (``lba.validation_prediction.reusing``);
it needs a fit with an extend surface, and is refused with ``--schedule parallel``.

``--endpoint URL`` (with ``--model`` the served name, ``--api-key-env VAR``) runs every call on a served
model instead, against the fit of ``run --endpoint``: ``profiler.cli.validate_endpoint``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from profiler.cli.breakeven import reuse_of, schedule_of
from profiler.cli.fit import fit_and_print
from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.files import fit_path, hold_run_folder, run_folder
from profiler.lba.exercises import EXERCISES, VARIANTS
from profiler.lba.monte_carlo import check_simulation
from profiler.lba.parameters import check_grid, check_variable, exercise_named, parse_settings, parse_values
from profiler.lba.pricing import FittedPricing
from profiler.lba.schedule import Schedule
from profiler.lba.validate import Runner, local_runner, validate, within_positions
from profiler.lba.validation_document import ValidationDocument
from profiler.lba.validation_prediction import INTERVAL_BATCHES, one_device, parallel_schedule, reusing
from profiler.lba.validation_verdict import COST_TOLERANCE, SPEED_TOLERANCE, outside_by_the_draws, steady
from profiler.measure.allocator import hold_freed_memory
from profiler.measure.catalog import resolve_model
from profiler.measure.devices import dtype_name, resolve_device, resolve_dtype
from profiler.measure.hardware import fingerprint, slug
from profiler.measure.loading import load_model, meta_architecture
from profiler.report.units import format_cost

# exercise -> (varied parameter, its grid, fixed parameters): each grid has a break-even or a
# clear winner, fits 1024 positions, and runs in about a minute on a 2-core CPU with gpt2.
VALIDATE_GRIDS: dict[str, tuple[str, tuple[float, ...], dict[str, float]]] = {
    "ktask": ("n", (8, 32, 128, 512), {"out": 8, "c": 32}),
    "debugging": ("l", (1, 2, 4, 8, 16), {"k": 8, "b": 2}),
    "evolution": ("k", (1, 2, 3, 4), {"l": 2}),
}
# Under a parallel schedule, fixed on top of those: at load 1 and lam 1 every group of k-task and evolution is
# one call, so nothing would be batched; 4 inputs served at once, 4 mutants a generation.
PARALLEL_SETTINGS: dict[str, dict[str, float]] = {"ktask": {"load": 4}, "evolution": {"lam": 4}}


def _schedule(args) -> Schedule:
    """The schedule of ``--schedule``, ``--max-batch``, ``--devices`` and ``--prefix-cache``, on this one device; a
    one-line UserError for prefix reuse with a parallel schedule (the backend keeps caches for calls run alone)."""
    schedule, reuse = one_device(schedule_of(args)), reuse_of(args)
    if reuse is None:
        return schedule
    if schedule.parallel:
        raise UserError("--prefix-cache on runs every call alone, one after another (the extend pass of a cached "
                        "prefix is measured at batch 1 only): drop --schedule parallel")
    return replace(schedule, reuse=reuse)


def _grid(exercise, vary: str | None, values: str | None, parallel: bool) -> tuple[str, list[float], dict[str, float]]:
    default_vary, default_values, fixed = VALIDATE_GRIDS[exercise.name]
    fixed = fixed | (PARALLEL_SETTINGS.get(exercise.name, {}) if parallel else {})
    vary = vary or default_vary
    check_variable(exercise, vary)
    if values is not None:
        return vary, parse_values(values, vary), fixed
    if vary != default_vary:
        raise UserError(f"--vary {vary}: give its grid with --values")
    return vary, list(default_values), fixed


def cost_model_for(model: str, hardware_slug: str, fits: Path, out: Path, threads: int | None,
                   console: Console) -> tuple[CostModel, Path]:
    """The fit of ``model`` on this hardware: found, fitted from an earlier run's samples, or profiled."""
    source = resolve_model(model)
    path = fit_path(fits, source.name, hardware_slug)
    if not path.is_file():
        folder = run_folder(out, hardware_slug, source.name)
        if (folder / "samples.csv").is_file():
            console.print(f"no fit {path}: fitting the samples of the earlier run in {folder}")
            fit_and_print(folder, fits, console)
        else:
            from profiler.cli.run import RunRequest, run

            # from 1 token: the exercises make calls of a few tokens, below the default grid's 8
            lengths = f"1:{meta_architecture(source).max_positions}"
            console.print(f"no fit {path} and no earlier run: profiling {source.name} first (lengths {lengths})")
            run(RunRequest(models=[model], out=out, fits=fits, threads=threads, lengths=lengths), console)
    return load_cost_model(path), path


def _cost(value: float | None) -> str:
    return "-" if value is None else format_cost(value, "s")


def _error(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def print_validation(console: Console, document: ValidationDocument) -> None:
    exercise = EXERCISES[document.exercise]
    fixed = ", ".join(f"{name}={value:g}" for name, value in document.params.items())
    title = (f"{exercise.title} ({exercise.name}) on {document.model}, {document.hardware_slug}: measured "
             f"against {document.pricing}; {fixed}")
    table = Table(title=title, title_justify="left")
    stochastic = document.stochastic
    columns = [document.vary]
    for variant in VARIANTS:
        columns += [f"{variant} predicted", "5-95% of the mean" if stochastic else None, "measured", "error"]
    columns += ["ratio predicted", "ratio measured"]
    for name in filter(None, columns):
        table.add_column(name, justify="right")
    for row in document.rows:
        cells = [f"{row.value:g}"]
        for variant in VARIANTS:
            cells.append(_cost(row.cost[variant]))
            if stochastic:  # no interval for a value the run did not reach
                lo, hi = row.predicted_interval[variant] if row.predicted_interval else (None, None)
                cells.append(f"{_cost(lo)} - {_cost(hi)}")
            mark = "" if all(steady(run) for run in row.runs[variant]) else " ~"
            cells += [_cost(row.measured[variant]) + mark, _error(row.error[variant])]
        cells += [f"{row.ratio:.3g}", "-" if row.measured_ratio is None else f"{row.measured_ratio:.3g}"]
        table.add_row(*cells)
    console.print(table)
    console.print(f"{document.executed_by}; {document.seeds} seeded run(s) per variant and value")
    if document.schedule is not None:
        console.print(f"parallel schedule: each group run as batched generates of at most "
                      f"{document.schedule['max_batch']:,} calls on this one device; predicted: the makespan")
    if document.reuse is not None:
        capacity = document.reuse["capacity_tokens"]
        held = "no limit" if capacity is None else f"at most {capacity:,} tokens, least recently used evicted"
        console.print(f"prefix reuse: each model kept its calls' KV caches ({held}); predicted: the calls replayed "
                      "through a prefix cache, each priced with its cached prefix")
    for which, value, winner in (("predicted", document.breakeven, document.winner_throughout),
                                 ("measured", document.measured_breakeven, document.measured_winner_throughout)):
        text = (f"{document.vary} = {value:.3g}" if value is not None else
                f"none in range ({winner} costs less throughout)" if winner else "none in range")
        console.print(f"break-even {which}: {text}")
    for entry in document.skipped:
        which = f" {entry.variant} seed {entry.seed}" if entry.variant is not None else ""
        console.print(f"[yellow]skipped {document.vary}={entry.value:g}{which}: {entry.reason}")
    targets = document.targets
    cost_target = ("inside the predicted 5-95% interval of the mean" if stochastic
                   else f"predicted within {COST_TOLERANCE:.0%} of measured")
    breakeven = {None: "-", True: "met", False: "NOT met"}[targets.breakeven]
    console.print(f"targets: {cost_target}: {targets.costs_met} of {targets.costs_checked}; break-even within "
                  f"one grid step: {breakeven}")
    for value, variant, quantile in outside_by_the_draws(document):
        where = ("" if quantile is None else
                 f"; its runs, priced as made, at percentile {100 * quantile:.1f} of the simulated means")
        console.print(f"{document.vary}={value:g} {variant}: outside its interval but priced within "
                      f"{COST_TOLERANCE:.0%} given the calls its runs made{where}: those seeds drew an unlikely mean "
                      "(a 5-95% interval leaves out about one value in ten), not a wrong price")
    if targets.costs_unsteady:
        console.print(f"[yellow]~ {targets.costs_unsteady} measured cost(s) left out of the cost target: the "
                      f"machine ran more than {SPEED_TOLERANCE:.0%} off its profiled speed around them (a slow spell; "
                      "see speed_before/speed_after in the JSON): run again when it is idle")
    console.print(f"load average {document.load_average_start:.2f} at the start, "
                  f"{document.load_average_end:.2f} at the end")


def exercise_plans(args, schedule: Schedule) -> list[tuple]:
    """Each exercise's ``(exercise, vary, values, params)`` from ``--exercise``, ``--vary``, ``--values`` and
    ``--set``, checked: every mistake is found before any model is built or any request sent."""
    exercises = list(EXERCISES.values()) if args.exercise == "all" else [exercise_named(args.exercise)]
    plans = []
    for exercise in exercises:
        vary, values, fixed = _grid(exercise, args.vary, args.values, schedule.parallel)
        params = parse_settings(exercise, [f"{k}={v:g}" for k, v in fixed.items() if k != vary] + args.set, vary)
        check_grid(exercise, vary, values, params, schedule)
        if exercise.stochastic:  # its predicted interval: INTERVAL_BATCHES x --seeds recorded runs a value
            check_simulation(exercise, vary, values, params, INTERVAL_BATCHES * args.seeds, f"--seeds {args.seeds}")
        plans.append((exercise, vary, values, params))
    return plans


def run_plans(plans: list[tuple], runner: Runner, cost_model: CostModel, fit_path: Path, folder: Path,
              schedule: Schedule, args, console: Console) -> int:
    """Validate each planned exercise with ``runner`` against ``cost_model`` within ``--budget`` (each exercise
    the time left over the exercises left), writing ``validate-<exercise>.json`` and ``.png`` in ``folder``;
    the tables, or with ``--json`` the documents; exit status 0."""
    quiet = Console(quiet=True) if args.json else console
    started, documents = time.perf_counter(), []
    for i, (exercise, vary, values, params) in enumerate(plans):
        share_s = (args.budget - (time.perf_counter() - started)) / (len(plans) - i)
        figure = folder / f"validate-{exercise.name}.png"
        document = validate(exercise, vary, values, params, runner, FittedPricing(cost_model), seeds=args.seeds,
                            deadline=time.perf_counter() + share_s,
                            path=folder / f"validate-{exercise.name}.json", fit=fit_path, figure=figure,
                            progress=quiet.print, schedule=schedule)
        _figure(figure, document)
        documents.append(document)
        if not args.json:
            print_validation(console, document)
            console.print(f"wrote {folder}/validate-{exercise.name}.json and .png\n")
    if args.json:
        jsons = [document.to_json() for document in documents]
        print(json.dumps(jsons[0] if len(jsons) == 1 else {"exercises": jsons}, indent=1))
    return 0


def run_validate(args, console: Console) -> int:
    if args.endpoint is not None:
        from profiler.cli.validate_endpoint import run_validate_endpoint

        return run_validate_endpoint(args, console)
    given = [name for name in ("api_key_env", "config") if getattr(args, name) is not None]
    if given:
        raise UserError(f"--{given[0].replace('_', '-')} is for --endpoint")
    schedule = _schedule(args)
    plans = exercise_plans(args, schedule)
    source = resolve_model(args.model)
    max_positions = meta_architecture(source).max_positions
    for exercise, vary, values, params in plans:
        within_positions(exercise, vary, sorted(set(values)), params, max_positions, source.name)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    hardware_slug = slug(fingerprint(device))
    quiet = Console(quiet=True) if args.json else console
    folder = run_folder(args.out, hardware_slug, source.name)
    # held from the start: a missing fit is made from the folder's samples (or a run into it), and
    # validate-*.json go beside them; a run moving them aside meanwhile would mix two runs
    with hold_run_folder(folder):
        cost_model, fit_path = cost_model_for(args.model, hardware_slug, args.fits, args.out, args.threads, quiet)
        if cost_model.model.dtype != dtype_name(dtype):
            raise UserError(f"{fit_path}: fitted in {cost_model.model.dtype}, this run is {dtype_name(dtype)}")
        schedule = reusing(parallel_schedule(schedule, cost_model), cost_model)
        hold_freed_memory()  # as the run that measured the fit (``profiler.measure.allocator``)
        loaded = load_model(source, device, dtype)
        quiet.print(f"{source.name} on {device} ({dtype_name(dtype)}), predictions from {fit_path}; budget "
                    f"{args.budget:g} s")
        return run_plans(plans, local_runner(loaded), cost_model, fit_path, folder, schedule, args, console)


def _figure(path: Path, document: ValidationDocument) -> None:
    from profiler.report.validate_figures import write_validation_figure

    write_validation_figure(path, document)
