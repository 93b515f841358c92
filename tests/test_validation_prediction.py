"""The schedules a validation can run on this one device, checked against the fit before anything runs; the
simulated means a stochastic exercise is set against, and where its seeds' draws lie among them."""

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.lba.calls import CallRecorder
from profiler.lba.exercises.evolution import Evolution
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validation_prediction import (
    draw_quantile,
    interval_of,
    parallel_schedule,
    reusing,
    simulated_means,
)
from tests.fitted import cost_model


def test_a_parallel_schedule_here_is_one_device_and_a_fit_with_batches():
    with pytest.raises(UserError, match="runs on this one device, so 2 devices cannot be measured here") as err:
        parallel_schedule(Schedule("parallel", devices=2), cost_model(surfaces=True))
    assert "\n" not in str(err.value) and "breakeven --fit FIT --schedule parallel --devices 2" in str(err.value)
    with pytest.raises(UserError, match="no batch surfaces.*python -m profiler run --model base --batch"):
        parallel_schedule(Schedule("parallel"), cost_model())
    assert parallel_schedule(Schedule("parallel", max_batch=32), cost_model(surfaces=True)).max_batch == 32
    assert parallel_schedule(SEQUENTIAL, cost_model()) is SEQUENTIAL


def test_prefix_reuse_needs_an_extend_surface():
    assert reusing(Schedule(reuse=Reuse()), cost_model(extend=True)).reuse == Reuse()
    assert reusing(SEQUENTIAL, cost_model()) is SEQUENTIAL
    with pytest.raises(UserError, match="no extend surface.*`python -m profiler run --model base`") as err:
        reusing(Schedule(reuse=Reuse()), cost_model())
    assert "\n" not in str(err.value)


def test_a_draw_quantile_is_the_share_of_simulated_means_below_the_seeds_mean_ties_counted_half():
    means = np.array([1.0, 2.0, 2.0, 3.0])  # sorted, as simulated_means returns them
    assert draw_quantile(means, [0.5]) == 0.0
    assert draw_quantile(means, [9.0]) == 1.0
    assert draw_quantile(means, [2.5]) == 0.75
    assert draw_quantile(means, [1.0, 3.0]) == 0.5  # the mean of the runs' prices (2.0) ties two of four
    assert draw_quantile(means, [1.0]) == 0.125


def test_simulated_means_are_the_seeds_means_of_other_draws_and_place_an_unlikely_seed():
    """Evolution's global mutation at k = 4 (a geometric number of generations, 16 expected): the simulated means
    of 5 runs centre on 16 generations' price, and seed 0 of the measured ones, which draws 144 generations, lies
    beyond the 95th percentile."""
    pricing = FittedPricing(cost_model())
    params = {"k": 4, "l": 2, "p": 0.5, "lam": 1, "m_u": 1.0, "system_prompt": 0, "load": 1}
    one_call = float(pricing.price("mutator", 8, 8))
    means = simulated_means(Evolution, params, pricing, seeds=5, batches=400)["optimistic"]
    assert len(means) == 400 and np.all(np.diff(means) >= 0)
    assert np.mean(means) / one_call == pytest.approx(16, rel=0.1)
    low, high = interval_of(means)
    assert low < 16 * one_call < high
    recorder = CallRecorder()
    Evolution.optimistic(params, recorder, np.random.default_rng(0))
    assert recorder.calls == 144
    assert draw_quantile(means, [144 * one_call]) > 0.95
    assert draw_quantile(means, [16 * one_call]) == pytest.approx(0.5, abs=0.15)
