"""The verdict: unsteady runs left out of the cost target, and break-evens compared in grid steps."""

from profiler.lba.validation_document import Run, ValidationDocument, ValidationRow
from profiler.lba.validation_verdict import assess, grid_position


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
