"""Check the break-even predictions against reality: each exercise's programs run with a real model.

For one exercise, one varied parameter and the others fixed, every grid value gets the
prediction of ``breakeven.sweep`` -- the closed-form cost of both variants, priced by the
fitted cost model of the model that runs them -- and a measurement: both programs executed
call by call by a ``Runner``'s backend -- ``execution.ModelBackend`` for a model loaded here (real
forward passes, forced output lengths), ``endpoint_backend.EndpointBackend`` for a served one
(streamed completions, forced output lengths, usage checked; sequential only) -- the wall time of
each whole run in seconds (on ``clock``, the wall clock by default; between calls the program's
own Python is included, and for a served model the requests' round trips). The document
(``ValidationDocument``) is the ``breakeven --json`` one with, per row, the measured cost of each
variant and their ratio, the relative errors ``predicted / measured - 1`` and the runs themselves,
and the measured break-even.

- **Schedule.** Sequential (the default, the paper's count): every call alone, one after
  another, predicted by the sum of the calls' prices. Parallel (``parallel_schedule``): each
  group of independent calls runs as batched generates of at most ``max_batch`` calls (by
  default the largest batch the fit measured), one after another on this one device, and the
  prediction is the parallel makespan (``sweep``'s makespan price: the fit's batched calls,
  ``CostModel.call_batch``). The document's rows are that makespan, and it records
  ``schedule`` and ``measure`` (``makespan``). More than one device cannot be run here.

- **Prefix reuse** (``reusing``: a schedule with ``reuse``, sequential only). The backend keeps
  every model's KV caches across calls for real (``execution.ModelBackend``: a call computes only
  the tokens past its cached prefix, as one extend pass, then its decode steps), and the
  prediction of every grid value is the replayed pricing (``profiler.lba.reuse``: the programs'
  calls served through a prefix cache, each priced with its cached prefix by ``CostModel.call(...,
  cached=)``); each run's own calls are replayed the same way (``predicted_s``), so its hits are the
  backend's. The document records ``reuse`` (its capacity). The fit needs an extend surface.

- **One model runs every role.** The k-task generalist is ``k`` specialists' size in the
  paper, and the debugging roles may differ in size; a real run here has one model, so the
  pricing gives every role the base model (``role_models``): what is checked is the cost of
  the calls the programs make, not a size law.
- **Oracle draws are seeded.** A deterministic exercise (its draws do not change the calls)
  runs once per variant with seed 0; a stochastic one (evolution) runs ``seeds`` times, seeds
  ``0..seeds-1``, and its measured mean is set against the interval (5-95%) of the mean of
  ``seeds`` runs predicted by ``predicted_interval``; every run is also priced call by call
  (``predicted_s``), which isolates the cost model's error from the draws' luck.
- **Sizes beyond the model.** A grid value whose longest call needs more positions than the
  model has (``positions_needed``, the rule the backend refuses a call by) is not run, and
  ``skipped`` says so.
- **Budget.** Before each grid value the predicted time of its runs is set against the time
  left; a value that does not fit is skipped (``"budget"``), and a run still going at the
  deadline stops before its next call. The document is written (atomically, by its one
  writer) after every run, so nothing measured is lost to the budget or to Ctrl-C
  (``interrupted``).
- **Slow spells.** On a shared machine another process can slow every pass by a third for
  minutes, which no cost model of this machine can predict. A reference call
  (``REFERENCE_CALL``) is timed before and after every run against its fitted time
  (``speed_before``, ``speed_after``: 1 at the profiled speed); a run with either more than
  ``SPEED_TOLERANCE`` off is *unsteady*: kept and shown, but left out of the cost target
  (``targets.costs_unsteady`` counts them), the way the profiler's drift check flags a sweep.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.errors import UserError
from profiler.lba.breakeven import crossing, sweep
from profiler.lba.calls import Call
from profiler.lba.execution import ModelBackend, OutOfTime
from profiler.lba.exercises import VARIANTS, Exercise
from profiler.lba.monte_carlo import price_calls, priced_runs
from profiler.lba.parameters import check_variable
from profiler.lba.prefix_cache import PrefixCache
from profiler.lba.pricing import FittedPricing, Pricing
from profiler.lba.reuse import ReplayRecorder, price_replayed
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validation_document import Run, Skipped, Targets, ValidationDocument
from profiler.measure.loading import LoadedModel
from profiler.measure.timing import Clock

COST_TOLERANCE = 0.10  # predicted total within 10% of measured (the target)
REFERENCE_CALL = (16, 4)  # (n_in, n_out) of the call timed between runs: how fast the machine is then
SPEED_TOLERANCE = 0.10  # a run is steady when the reference call before and after it is within 10% of its fit
INTERVAL = (5, 95)  # percentiles of the predicted mean of a stochastic exercise's runs
INTERVAL_BATCHES = 400  # simulated batches of ``seeds`` runs behind that interval
SIMULATION_SEED = 1_000_000  # the simulated runs' seeds start here, apart from the measured 0..seeds-1


@dataclass(frozen=True)
class Runner:
    """What executes the programs' calls: ``model`` (the name its fit and documents go by), the most positions a
    call may need (``positions_needed``), what one call is (the document's words) and ``backend(seed=, deadline=,
    clock=, schedule=)``, a fresh backend with ``execution.ModelBackend``'s interface."""

    model: str
    max_positions: int
    calls: str
    backend: Callable[..., object]


def local_runner(loaded: LoadedModel) -> Runner:
    """The model loaded in this process: every call real forward passes (``execution.ModelBackend``)."""
    return Runner(model=loaded.source.name, max_positions=loaded.architecture.max_positions,
                  calls="real forward passes, forced output lengths", backend=partial(ModelBackend, loaded))


def every_role_by(exercise: type[Exercise], pricing: FittedPricing) -> FittedPricing:
    """``pricing`` with the base model for every role of ``exercise``: sizes are not emulated."""
    roles = {role for variant in VARIANTS for role in exercise.roles[variant]}
    return FittedPricing(pricing.base, role_models={role: pricing.base for role in roles}, cache=pricing.cache)


def one_device(schedule: Schedule) -> Schedule:
    """``schedule``, unless it spreads calls over more than one device, which one machine cannot run: a one-line
    UserError that says where that prediction is."""
    if schedule.devices != 1:
        raise UserError(f"--devices {schedule.devices}: validate runs on this one device, so {schedule.devices} "
                        f"devices cannot be measured here (their predicted makespan is breakeven's: `python -m "
                        f"profiler breakeven --fit FIT --schedule parallel --devices {schedule.devices}`)")
    return schedule


def parallel_schedule(schedule: Schedule, cost_model: CostModel) -> Schedule:
    """``schedule`` as it runs here: sequential as it is; parallel with its batch limit (by default the largest
    batch ``cost_model`` measured) on this one device (``one_device``), in makespan. A one-line UserError for a
    fit without batch surfaces (how to measure them)."""
    if not one_device(schedule).parallel:
        return schedule
    if cost_model.max_batch == 1:
        raise UserError(f"the fit of {cost_model.model.name} has no batch surfaces, so no prediction for a batch: "
                        f"measure batches first (`python -m profiler run --model {cost_model.model.name} --batch "
                        "1,2,4,8`), then validate --schedule parallel")
    max_batch = schedule.max_batch if schedule.max_batch is not None else cost_model.max_batch
    return Schedule("parallel", max_batch=int(max_batch), measure="makespan")


def reusing(schedule: Schedule, cost_model: CostModel) -> Schedule:
    """``schedule``, checked where it has prefix reuse: a one-line UserError for a fit without an extend surface (how
    to measure one), since a call with a cached prefix is priced by it."""
    if schedule.reuse is not None and not cost_model.has_extend:
        name = cost_model.model.name
        raise UserError(f"the fit of {name} has no extend surface, so no price for a call whose input starts cached: "
                        f"measure extend passes first (`python -m profiler run --model {name}`: the default run "
                        "includes them), then validate --prefix-cache on")
    return schedule


def price_reused(calls: list[Call], pricing: Pricing, sizes: dict, schedule: Schedule) -> float:
    """The cost of ``calls`` made one after another, each priced with the prefix a fresh prefix cache of ``schedule``'s
    reuse serves it (the replayed pricing, ``profiler.lba.reuse``)."""
    recorder = ReplayRecorder(PrefixCache(schedule.reuse.capacity_tokens))
    for call in calls:
        recorder.group([call])
    return sum(price_replayed(recorder, pricing, sizes).values())


def machine_speed(runner: Runner, pricing: FittedPricing, clock: Clock = time.perf_counter) -> float:
    """The reference call's measured time over its fitted time: 1 when the machine (or the server) runs as fast as
    when the model was profiled, more during a slow spell (another process on the cores, throttling, other
    clients)."""
    backend = runner.backend(clock=clock)
    backend("reference", *REFERENCE_CALL)
    return backend.latencies_s[0] / float(pricing.price("reference", *REFERENCE_CALL))


def steady(run: Run) -> bool:
    """Whether the machine ran within ``SPEED_TOLERANCE`` of its profiled speed around ``run``."""
    return all(abs(speed - 1) <= SPEED_TOLERANCE for speed in (run.speed_before, run.speed_after))


def predicted_interval(exercise: type[Exercise], params: dict, pricing: Pricing, seeds: int,
                       batches: int = INTERVAL_BATCHES,
                       schedule: Schedule = SEQUENTIAL) -> dict[str, tuple[float, float]]:
    """Per variant, the 5-95% interval of the mean cost of ``seeds`` runs: the programs run with
    a recording backend over ``batches * seeds`` other seeded draws, their groups priced under ``schedule``."""
    interval = {}
    for variant in VARIANTS:
        simulated = range(SIMULATION_SEED, SIMULATION_SEED + batches * seeds)
        runs = priced_runs(exercise, variant, params, pricing, simulated, schedule=schedule)
        means = np.asarray(runs).reshape(batches, seeds).mean(1)
        low, high = np.percentile(means, INTERVAL)
        interval[variant] = (float(low), float(high))
    return interval


def grid_position(value: float | None, winner: str | None, grid: list[float]) -> float | None:
    """Where a break-even lies along the grid, in grid steps (0 at the first value): a crossing by
    linear interpolation; 'the optimized variant wins throughout' at 0 (the crossing is at or
    before the grid's start), 'the optimistic wins throughout' at the last index."""
    if value is not None:
        return float(np.interp(value, grid, np.arange(len(grid))))
    return {"optimized": 0.0, "optimistic": float(len(grid) - 1)}.get(winner)


def assess(document: ValidationDocument) -> Targets:
    """Whether the issue's targets are met: every measured cost (``COST_TOLERANCE``, or inside the
    predicted interval for a stochastic exercise), and the break-even within one grid step."""
    costs, unsteady = [], 0
    for row in document.rows:
        for variant in VARIANTS:
            measured = row.measured[variant]
            if measured is None:
                continue
            if not all(steady(run) for run in row.runs[variant]):
                unsteady += 1
                continue
            if document.stochastic:
                lo, hi = row.predicted_interval[variant]
                met = lo <= measured <= hi
            else:
                met = abs(row.error[variant]) <= COST_TOLERANCE
            costs.append(met)
    breakeven = None
    if sum(row.measured_ratio is not None for row in document.rows) >= 2:
        predicted = grid_position(document.breakeven, document.winner_throughout, document.values())
        measured = grid_position(document.measured_breakeven, document.measured_winner_throughout, document.values())
        breakeven = predicted is not None and measured is not None and abs(predicted - measured) <= 1
    return Targets(costs_met=sum(costs), costs_checked=len(costs), costs=all(costs) if costs else None,
                   costs_unsteady=unsteady, breakeven=breakeven)


def _summarise(document: ValidationDocument) -> None:
    """Per row the measured means, errors and ratio; the measured break-even; the targets."""
    for row in document.rows:
        for variant in VARIANTS:
            runs = row.runs[variant]
            complete = len(runs) == document.seeds
            measured = float(np.mean([run.latency_s for run in runs])) if complete else None
            row.measured[variant] = measured
            row.error[variant] = row.cost[variant] / measured - 1 if complete else None
            row.error_given_calls[variant] = float(np.mean(
                [run.predicted_s / run.latency_s - 1 for run in runs])) if complete else None
        optimistic, optimized = (row.measured[variant] for variant in VARIANTS)
        row.measured_ratio = optimistic / optimized if None not in (optimistic, optimized) else None
    rows = [row for row in document.rows if row.measured_ratio is not None]
    value, winner = None, None
    if rows:
        value, winner = crossing([r.value for r in rows], [r.measured_ratio for r in rows])
    document.measured_breakeven, document.measured_winner_throughout = value, winner
    document.targets = assess(document)


def within_positions(exercise: type[Exercise], vary: str, grid: list[float], params: dict, max_positions: int,
                     model: str) -> tuple[list[float], list[Skipped]]:
    """The grid values whose every call fits the model's positions (``Exercise.longest_context``: the
    positions a call needs, ``positions_needed``), and the others with why; a one-line UserError when
    none fits."""
    runnable, skipped = [], []
    for value in grid:
        longest = max(float(np.max(t)) for t in exercise.longest_context(params | {vary: value}).values())
        if longest > max_positions:
            skipped.append(Skipped(value, f"beyond the model's {max_positions} positions (its longest call needs "
                                          f"{longest:,.0f})"))
        else:
            runnable.append(value)
    if not runnable:
        raise UserError(f"{exercise.name}: every {vary} in {', '.join(f'{v:g}' for v in grid)} makes a call beyond "
                        f"{model}'s {max_positions} positions: choose smaller sizes or a longer-context model "
                        "(e.g. smollm2-135m)")
    return runnable, skipped


def validate(exercise: type[Exercise], vary: str, values: list[float], params: dict, runner: Runner | LoadedModel,
             pricing: FittedPricing, *, seeds: int, deadline: float, path: Path | None = None,
             fit: Path | None = None, figure: Path | None = None, progress=lambda line: None,
             clock: Clock = time.perf_counter, schedule: Schedule = SEQUENTIAL) -> ValidationDocument:
    """Predict and measure ``exercise`` along ``vary`` under ``schedule`` (``parallel_schedule``), its calls run
    by ``runner`` (a model loaded here: ``local_runner``); the document (see the module doc), also written to
    ``path`` after every run, naming the ``fit`` that priced it and the ``figure`` its caller draws of it.
    ``deadline`` is a reading of ``clock``. A ``UserError`` from a backend (an endpoint refusing or failing)
    ends the runs; the document is written with what was measured, then it is raised."""
    runner = runner if isinstance(runner, Runner) else local_runner(runner)
    schedule = reusing(parallel_schedule(schedule, pricing.base), pricing.base)
    check_variable(exercise, vary)
    grid = sorted(set(values))
    exercise.check(params | {vary: np.asarray(grid, dtype=float)})
    max_positions = runner.max_positions
    runnable, skipped = within_positions(exercise, vary, grid, params, max_positions, runner.model)
    pricing = every_role_by(exercise, pricing)
    seeds = seeds if exercise.stochastic else 1
    predicted = sweep(exercise, vary, runnable, params, pricing, schedule)
    if schedule.parallel:  # the makespan's rows, with the schedule that lays them out
        layout = predicted.schedule
        predicted = predicted.priced(schedule.measure)
        predicted.schedule = layout
    how = ("" if not schedule.parallel else f"; each group run as batched generates of at most "
           f"{schedule.max_batch:,} calls, padded to their longest input and output, one after another on this "
           "one device")
    if schedule.reuse is not None:
        held = ("without a limit" if schedule.reuse.capacity_tokens is None else
                f"at most {schedule.reuse.capacity_tokens:,} tokens, least recently used evicted")
        how = (f"; prefix reuse: each model keeps its calls' KV caches ({held}) and a call computes only the tokens "
               "past its cached prefix, one extend pass, then its decode steps")
    document = ValidationDocument.unmeasured(
        predicted, model=runner.model,
        hardware_slug=pricing.base.hardware_slug, max_positions=max_positions,
        stochastic=exercise.stochastic, seeds=seeds,
        executed_by=f"every role by {runner.model} (role sizes are not emulated: the calls' token counts "
                    "are the programs', the model is one)",
        measurement=f"wall time of each whole run, seconds ({runner.calls}{how})",
        skipped=skipped, load_average_start=os.getloadavg()[0], fit=None if fit is None else str(fit),
        figure=None if figure is None else str(figure))
    sizes = exercise.role_sizes(params)
    runner.backend(schedule=schedule).warm_up()
    speed, reference_s = machine_speed(runner, pricing, clock), float(pricing.price("reference", *REFERENCE_CALL))
    stopped = None
    try:
        for row in document.rows:
            point = params | {vary: row.value}
            if exercise.stochastic:
                row.predicted_interval = predicted_interval(exercise, point, pricing, seeds, schedule=schedule)
            needed_s = seeds * (sum(row.cost.values()) + 2 * reference_s)  # a reference call a run
            left_s = deadline - clock()
            if needed_s > left_s:
                skipped.append(Skipped(row.value, f"budget (predicted {needed_s:.1f} s, {max(left_s, 0):.1f} s left)"))
                continue
            for variant in VARIANTS:
                for seed in range(seeds):
                    backend = runner.backend(seed=seed, deadline=deadline, clock=clock, schedule=schedule)
                    started = clock()
                    try:
                        getattr(exercise, variant)(point, backend, np.random.default_rng(seed))
                    except OutOfTime:
                        made = sum(batch.size for batch in backend.batches)
                        skipped.append(Skipped(row.value, f"budget (the run stopped after {made} calls)",
                                               variant=variant, seed=seed))
                        raise
                    latency_s = clock() - started
                    speed_after = machine_speed(runner, pricing, clock)
                    predicted_s = (price_calls(backend.recorder, pricing, sizes, schedule) if schedule.reuse is None
                                   else price_reused(backend.calls, pricing, sizes, schedule))
                    run = Run(seed=seed, latency_s=latency_s, calls=backend.recorder.calls,
                              calls_latency_s=float(sum(backend.latencies_s)), predicted_s=predicted_s,
                              speed_before=speed, speed_after=speed_after, generates=len(backend.batches),
                              cached_tokens=None if schedule.reuse is None else
                              sum(batch.cached for batch in backend.batches))
                    row.runs[variant].append(run)
                    speed = speed_after
                    progress(f"{exercise.name} {vary}={row.value:g} {variant} seed {seed}: {latency_s:.2f} s "
                             f"measured, {run.predicted_s:.2f} s predicted for its {run.calls} calls"
                             + (f" in {run.generates} batches" if schedule.parallel else "")
                             + (f", {run.cached_tokens:,} input tokens read from kept caches"
                                if run.cached_tokens is not None else ""))
                    _summarise(document)
                    if path is not None:
                        document.write(path)
    except OutOfTime:
        pass
    except KeyboardInterrupt:
        document.interrupted = True
        raise
    except UserError as err:
        stopped = f"stopped: {err}"
        raise
    finally:
        reached = {entry.value for entry in skipped}
        for row in document.rows:
            if not row.runs["optimized"] and row.value not in reached:
                skipped.append(Skipped(row.value, "interrupted" if document.interrupted else
                                       stopped or "budget (the deadline passed before it)"))
        document.load_average_end = os.getloadavg()[0]
        _summarise(document)
        if path is not None:
            document.write(path)
    return document
