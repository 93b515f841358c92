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
and the measured break-even. What is predicted is ``validation_prediction``'s; the errors, the
measured break-even and the targets are ``validation_verdict``'s.

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
  ``seeds`` runs simulated (``simulated_means``); every run is also priced call by call
  (``predicted_s``), which isolates the cost model's error from the draws' luck, and the mean
  of those prices is placed among the simulated means (``draw_quantile``: how lucky the seeds
  were, whatever the machine did).
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
  ``validation_verdict.SPEED_TOLERANCE`` off is *unsteady*: kept and shown, but left out of the cost target
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

from profiler.errors import UserError
from profiler.lba.breakeven import sweep
from profiler.lba.execution import ModelBackend, OutOfTime
from profiler.lba.exercises import VARIANTS, Exercise
from profiler.lba.monte_carlo import price_calls
from profiler.lba.parameters import check_variable
from profiler.lba.pricing import FittedPricing
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validation_document import Run, Skipped, ValidationDocument
from profiler.lba.validation_prediction import (
    draw_quantile,
    every_role_by,
    interval_of,
    parallel_schedule,
    price_reused,
    reusing,
    simulated_means,
)
from profiler.lba.validation_verdict import summarise
from profiler.measure.loading import LoadedModel
from profiler.measure.timing import Clock

REFERENCE_CALL = (16, 4)  # (n_in, n_out) of the call timed between runs: how fast the machine is then


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


def machine_speed(runner: Runner, pricing: FittedPricing, clock: Clock = time.perf_counter) -> float:
    """The reference call's measured time over its fitted time: 1 when the machine (or the server) runs as fast as
    when the model was profiled, more during a slow spell (another process on the cores, throttling, other
    clients)."""
    backend = runner.backend(clock=clock)
    backend("reference", *REFERENCE_CALL)
    return backend.latencies_s[0] / float(pricing.price("reference", *REFERENCE_CALL))


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
            means = simulated_means(exercise, point, pricing, seeds, schedule=schedule) if exercise.stochastic else {}
            row.predicted_interval = {variant: interval_of(means[variant]) for variant in means} or None
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
                             f"measured, {run.predicted_s:.2f} s predicted for its {run.calls} "
                             f"call{'s' if run.calls != 1 else ''}"
                             + (f" in {run.generates} batch{'es' if run.generates != 1 else ''}"
                                if schedule.parallel else "")
                             + (f", {run.cached_tokens:,} input tokens read from kept caches"
                                if run.cached_tokens is not None else ""))
                    if variant in means and len(row.runs[variant]) == seeds:
                        row.draw_quantile[variant] = draw_quantile(means[variant],
                                                                   [run.predicted_s for run in row.runs[variant]])
                    summarise(document)
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
        summarise(document)
        if path is not None:
            document.write(path)
    return document
