"""What a validation predicts, on the one device and model it runs on.

The prediction is ``breakeven.sweep``'s, with every role priced by the base model (``every_role_by``: a
real run here has one model) in a schedule this machine can run: sequential; parallel on this one
device with the fit's batch limit, in makespan (``parallel_schedule``); or with prefix reuse, when the
fit has an extend surface (``reusing``). A run's own calls are priced again after it (``price_reused``
under reuse, ``monte_carlo.price_calls`` otherwise), and a stochastic exercise's measured mean is set
against the 5-95% interval of the mean of ``seeds`` simulated runs (``simulated_means``, ``interval_of``), its
seeds' own runs, priced, placed among those means (``draw_quantile``). Costs in the pricing's unit (seconds,
for a fit's latency).
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.errors import UserError
from profiler.lba.calls import Call
from profiler.lba.exercises import VARIANTS, Exercise
from profiler.lba.monte_carlo import priced_runs
from profiler.lba.prefix_cache import PrefixCache
from profiler.lba.pricing import FittedPricing, Pricing
from profiler.lba.reuse import ReplayRecorder, price_replayed
from profiler.lba.schedule import SEQUENTIAL, Schedule

INTERVAL = (5, 95)  # percentiles of the predicted mean of a stochastic exercise's runs
INTERVAL_BATCHES = 400  # simulated batches of ``seeds`` runs behind that interval
SIMULATION_SEED = 1_000_000  # the simulated runs' seeds start here, apart from the measured 0..seeds-1


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


def simulated_means(exercise: type[Exercise], params: dict, pricing: Pricing, seeds: int,
                    batches: int = INTERVAL_BATCHES, schedule: Schedule = SEQUENTIAL) -> dict[str, np.ndarray]:
    """Per variant, the mean cost of ``seeds`` runs in each of ``batches`` simulated batches, sorted: the programs
    run with a recording backend over ``batches * seeds`` other seeded draws, their groups priced under
    ``schedule``."""
    means = {}
    for variant in VARIANTS:
        simulated = range(SIMULATION_SEED, SIMULATION_SEED + batches * seeds)
        runs = priced_runs(exercise, variant, params, pricing, simulated, schedule=schedule)
        means[variant] = np.sort(np.asarray(runs).reshape(batches, seeds).mean(1))
    return means


def interval_of(means: np.ndarray) -> tuple[float, float]:
    """The 5-95% interval of simulated ``means``."""
    low, high = np.percentile(means, INTERVAL)
    return float(low), float(high)


def draw_quantile(means: np.ndarray, priced_s: list[float]) -> float:
    """Where the seeds' own draws lie among the simulated ``means`` (sorted): the share of them below the mean of
    ``priced_s`` (each run's calls, as made, priced like the simulated runs'), ties counted half. Near 0 or 1, the
    seeds drew a mean the prediction rarely draws, whatever the machine did."""
    mean = float(np.mean(priced_s))
    below, at_or_below = np.searchsorted(means, mean, "left"), np.searchsorted(means, mean, "right")
    return float((below + at_or_below) / 2 / len(means))
