import numpy as np
import pytest

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit import fit_curve
from profiler.report.uncertainty import CallIntervals, coefficient_draws, curve_band, design_correlation, ratio_interval
from tests.fitted import CURVES

N = np.repeat(np.geomspace(8, 512, 13).round(), 5)


def _truth(n):
    return 0.03 + 4e-4 * np.asarray(n, dtype=float)


def _noisy_fit(seed: int, form: str = "affine"):
    rng = np.random.default_rng(seed)
    return fit_curve(N, _truth(N) * (1 + 0.03 * rng.standard_normal(len(N))), "s", forms=(form,), seed=seed)


def test_draws_keep_each_coefficients_interval():
    curve = _noisy_fit(0, "quadratic")
    draws = coefficient_draws(curve, draws=4000)
    widths = curve.ci95[:, 1] - curve.ci95[:, 0]
    assert np.all(np.abs(np.percentile(draws, [2.5, 97.5], axis=0).T - curve.ci95) <= 0.05 * widths[:, None])
    assert np.all(draws >= curve.form.lower)


def test_overhead_and_per_token_cost_trade_off():
    curve = _noisy_fit(1)
    assert design_correlation(curve)[0, 1] < -0.3
    draws = coefficient_draws(curve)
    assert np.corrcoef(draws.T)[0, 1] < -0.3
    low, high = curve_band(curve, draws, [64.0])
    corners = curve.form.evaluate(curve.ci95[:, 1], 64.0) - curve.form.evaluate(curve.ci95[:, 0], 64.0)
    assert 0 < high[0] - low[0] < 0.8 * corners  # joint draws, not every lower end together


def test_the_band_covers_the_true_curve_about_95_percent_of_the_time():
    lengths = [8.0, 64.0, 512.0]
    covered = []
    for seed in range(40):
        curve = _noisy_fit(seed)
        low, high = curve_band(curve, coefficient_draws(curve, seed=seed), lengths)
        covered += list((low <= _truth(lengths)) & (_truth(lengths) <= high))
    assert 0.85 <= np.mean(covered) <= 1.0


def test_an_exact_curve_has_no_spread():
    exact = fit_curve(N, 7e7 + 1.7e8 * N + 3.7e4 * N**2, "FLOPs", forms=("quadratic",))
    low, high = curve_band(exact, coefficient_draws(exact), [8.0, 100.0, 512.0])
    np.testing.assert_allclose(low, high, rtol=1e-12)


def _noisy_cost_model(scale: float, seed: int) -> CostModel:
    """Known curves (tests.fitted) measured with 3% noise, fitted: coefficients with real intervals."""
    rng = np.random.default_rng(seed)
    curves = {}
    for phase, f in CURVES.items():
        y = scale * f(N) * (1 + 0.03 * rng.standard_normal(len(N)))
        curves[phase] = {"latency_s": fit_curve(N, y, "s", seed=seed).as_dict()}
    return CostModel({"model": {"name": f"x{scale}"}, "hardware": {}, "hardware_slug": "cpu-test", "derived": {},
                      "curves": curves})


@pytest.fixture(scope="module")
def priced():
    return CallIntervals(_noisy_cost_model(1.0, 0)), CallIntervals(_noisy_cost_model(2.0, 1))


def test_a_call_interval_contains_its_price_and_widens_beyond_the_data(priced):
    calls, _ = priced
    inside = calls.call(128, 16)
    beyond = calls.call(4096, 16)
    assert inside[1] < inside[0] < inside[2]
    assert (beyond[2] - beyond[1]) / beyond[0] > (inside[2] - inside[1]) / inside[0]


def test_the_ratio_of_two_fits_spreads_as_both_do(priced):
    first, second = priced
    value, low, high = ratio_interval(first, second, 256, 32)
    assert low < value < high and low < 2.0 < high
    spreads = [(h - lo) / v for v, lo, h in (first.call(256, 32), second.call(256, 32))]
    assert (high - low) / value > 1.2 * max(spreads)  # independent errors add; paired draws would cancel
