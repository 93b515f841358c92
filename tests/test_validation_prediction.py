"""The schedules a validation can run on this one device, checked against the fit before anything runs."""

import pytest

from profiler.errors import UserError
from profiler.lba.prefix_cache import Reuse
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validation_prediction import parallel_schedule, reusing
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
