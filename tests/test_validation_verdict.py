"""The verdict: unsteady runs left out of the cost target, and break-evens compared in grid steps."""

from dataclasses import replace

from profiler.lba.validation_document import Run, ValidationDocument, ValidationRow
from profiler.lba.validation_verdict import assess, grid_position, outside_by_the_draws


def test_a_run_in_a_slow_spell_is_left_out_of_the_cost_target():
    def row(value, measured, speed_after):
        run = Run(seed=0, latency_s=measured, calls=1, calls_latency_s=measured, predicted_s=1.0, speed_before=1.0,
                  speed_after=speed_after)
        both = ("optimistic", "optimized")
        return ValidationRow(value=value, cost=dict.fromkeys(both, 1.0), ratio=1.0, roles={}, longest_context=1,
                             extrapolated=False, beyond_max_positions=False, runs={v: [run] for v in both},
                             measured=dict.fromkeys(both, measured), error=dict.fromkeys(both, 1 / measured - 1),
                             measured_ratio=1.0)

    document = ValidationDocument(
        exercise="ktask", vary="n", params={}, pricing="", unit="s", asymptotic="k", breakeven=None,
        winner_throughout=None, assumptions=[], rows=[row(1, 1.05, 1.02), row(2, 1.4, 1.35)], model="tiny",
        hardware_slug="cpu", max_positions=128, stochastic=False, seeds=1, executed_by="", measurement="",
        load_average_start=0.0)
    targets = assess(document)
    assert (targets.costs_met, targets.costs_checked, targets.costs_unsteady) == (2, 2, 2)
    assert targets.costs is True


def test_breakeven_positions_in_grid_steps():
    grid = [1, 2, 4, 8]
    assert grid_position(3.0, None, grid) == 1.5
    assert grid_position(None, "optimized", grid) == 0 and grid_position(None, "optimistic", grid) == 3
    assert grid_position(None, None, grid) is None


def test_a_mean_outside_its_interval_priced_right_given_its_calls_is_the_draws():
    """Evolution's mean over seeds outside the predicted interval: where the runs' own calls were priced within 10%,
    the seeds drew an unlikely mean (said apart); where they were not, the price is wrong (not said so)."""
    def row(value, measured, predicted_s, interval=(0.5, 1.5)):
        run = Run(seed=0, latency_s=measured, calls=1, calls_latency_s=measured, predicted_s=predicted_s,
                  speed_before=1.0, speed_after=1.0)
        both = ("optimistic", "optimized")
        return ValidationRow(value=value, cost=dict.fromkeys(both, 1.0), ratio=1.0, roles={}, longest_context=1,
                             extrapolated=False, beyond_max_positions=False, runs={v: [run] for v in both},
                             measured=dict.fromkeys(both, measured), error=dict.fromkeys(both, 1 / measured - 1),
                             error_given_calls=dict.fromkeys(both, predicted_s / measured - 1),
                             predicted_interval=dict.fromkeys(both, interval),
                             draw_quantile=dict.fromkeys(both, 0.99 if measured > interval[1] else 0.5),
                             measured_ratio=1.0)

    rows = [row(1, 1.0, 1.0), row(2, 3.0, 2.9), row(3, 3.0, 1.0)]  # inside; outside, calls priced -3%; priced -67%
    document = ValidationDocument(
        exercise="evolution", vary="k", params={}, pricing="", unit="s", asymptotic="k", breakeven=None,
        winner_throughout=None, assumptions=[], rows=rows, model="tiny", hardware_slug="cpu", max_positions=128,
        stochastic=True, seeds=1, executed_by="", measurement="", load_average_start=0.0)
    assert (assess(document).costs_met, assess(document).costs_checked) == (2, 6)
    assert outside_by_the_draws(document) == [(2, "optimistic", 0.99), (2, "optimized", 0.99)]  # not value 3
    assert outside_by_the_draws(replace(document, stochastic=False)) == []
