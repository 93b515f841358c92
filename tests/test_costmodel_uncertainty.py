import copy
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from profiler.costmodel.call_passes import call_passes
from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.fit import fit_curve
from profiler.costmodel.fit_file import load_cost_model
from profiler.costmodel.uncertainty import (SLOPE_LIMIT, CallIntervals, coefficient_draws, copula_correlation,
                                            curve_draws, design_correlation, ratio_interval, slope_draws)
from tests.fitted import CURVES

FIT_1_1 = Path(__file__).parent / "data" / "gpt2-fit-schema-1.1.json"  # the committed example as fitted before schema 1.2
N = np.repeat(np.geomspace(8, 512, 13).round(), 5)


def _noisy_fit(seed: int, form: str = "affine", truth=lambda n: 0.03 + 4e-4 * n):
    rng = np.random.default_rng(seed)
    return fit_curve(N, truth(N) * (1 + 0.03 * rng.standard_normal(len(N))), "s", forms=(form,), seed=seed)


def _copula_correlation_of(draws: np.ndarray) -> np.ndarray:
    """The Gaussian copula's correlation behind ``draws``, from Spearman's rank correlation (an independent
    estimate: for a Gaussian copula, rho_s = 6/pi asin(r/2) whatever the marginals)."""
    spearman = np.corrcoef(rankdata(draws, axis=0).T)
    return 2 * np.sin(np.pi / 6 * spearman)


def test_draws_keep_each_coefficients_interval():
    curve = _noisy_fit(0, "quadratic")
    draws = coefficient_draws(curve, draws=4000)
    widths = curve.ci95[:, 1] - curve.ci95[:, 0]
    assert np.all(np.abs(np.percentile(draws, [2.5, 97.5], axis=0).T - curve.ci95) <= 0.05 * widths[:, None])
    assert np.all(draws >= curve.form.lower)


@pytest.mark.parametrize("form, truth", [("power", lambda n: 0.02 + 1e-4 * n**1.3),
                                         ("quadratic", lambda n: 0.03 + 4e-4 * n + 3e-7 * n**2)])
def test_the_drawn_correlation_is_the_stored_one(form, truth):
    curve = _noisy_fit(3, form, truth)
    assert curve.correlation is not None and copula_correlation(curve) is curve.correlation
    drawn = _copula_correlation_of(coefficient_draws(curve, draws=20_000))
    np.testing.assert_allclose(drawn, curve.correlation, atol=0.03)


def test_without_a_stored_correlation_the_design_one_is_drawn():
    curve = dataclasses.replace(_noisy_fit(1), correlation=None)  # as read from a fit file before 1.2
    assert design_correlation(curve)[0, 1] < -0.3  # more overhead, less per token
    drawn = _copula_correlation_of(coefficient_draws(curve, draws=20_000))
    np.testing.assert_allclose(drawn, design_correlation(curve), atol=0.03)


def test_a_coefficient_without_spread_is_drawn_at_its_value():
    exact = fit_curve(N, 7e7 + 1.7e8 * N + 3.7e4 * N**2, "FLOPs", forms=("quadratic",))
    np.testing.assert_array_equal(exact.correlation, np.eye(3))
    draws = coefficient_draws(exact)
    np.testing.assert_allclose(draws, np.broadcast_to(exact.theta, draws.shape), rtol=1e-12)


@pytest.mark.parametrize("form", ["affine", "quadratic", "power"])
def test_curve_draws_evaluate_each_draw(form):
    curve = _noisy_fit(2, form, lambda n: 0.02 + 1e-4 * n**1.3)
    draws = coefficient_draws(curve, draws=50)
    for n in (64.0, np.array([[8.0, 100.0], [512.0, 3000.0]])):
        expected = np.array([curve.form.evaluate(theta, n) for theta in draws])
        np.testing.assert_allclose(curve_draws(curve, draws, n), expected, rtol=1e-13)


def _noisy_cost_model(scale: float, seed: int) -> CostModel:
    """Known curves (tests.fitted) measured with 3% noise, fitted: coefficients with real intervals; decode's
    latency a power law (its call sums need power sums per draw), peak memory affine."""
    rng = np.random.default_rng(seed)
    curves = {}
    for phase, f in CURVES.items():
        y = scale * f(N) * (1 + 0.03 * rng.standard_normal(len(N)))
        memory = (1e9 + 4e4 * N) * (1 + 0.01 * rng.standard_normal(len(N)))
        curves[phase] = {"latency_s": fit_curve(N, y, "s", forms=("power",) if phase == "decode" else
                                                ("affine", "quadratic"), seed=seed).as_dict(),
                         "flops": fit_curve(N, 2e8 + 4e4 * N**2, "FLOPs").as_dict(),
                         "peak_mem_bytes": fit_curve(N, memory, "bytes", forms=("affine",), seed=seed).as_dict()}
    return CostModel.from_json({"model": {"name": f"x{scale}"}, "hardware": {}, "hardware_slug": "cpu-test", "derived": {},
                      "curves": curves})


def _priced_with(cost_model: CostModel, draws: dict, index: int) -> CostModel:
    """The cost model with one draw's coefficients in every curve: the slow reference."""
    model = copy.copy(cost_model)
    model.curves = {phase: {metric: dataclasses.replace(curve, theta=draws[phase, metric][index])
                            for metric, curve in metrics.items()}
                    for phase, metrics in cost_model.curves.items()}
    return model


def _without_slope_errors(cost_model: CostModel) -> CostModel:
    """The cost model as a fit file before schema 1.4 gives it: no slope error beyond the data."""
    model = copy.copy(cost_model)
    model.curves = {phase: {metric: dataclasses.replace(curve, extrapolation_slope_sd=None)
                            for metric, curve in metrics.items()}
                    for phase, metrics in cost_model.curves.items()}
    return model


@pytest.mark.parametrize("cost_model", [_without_slope_errors(_noisy_cost_model(1.0, 0)), load_cost_model(FIT_1_1)],
                         ids=["synthetic-1.2", "committed-1.1"])
def test_vectorised_calls_equal_each_draw_priced_by_cost_model_call(cost_model):
    intervals = CallIntervals(cost_model, draws=6)
    references = [_priced_with(cost_model, intervals.draws, i) for i in range(6)]
    assert cost_model.curve("decode", "latency_s").form.name == "power"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        for n_in, n_out in [(1, 1), (8, 1), (100, 2), (128, 128), (700, 64), (4096, 1000)]:
            for cache in (True, False):
                for metric in ("latency_s", "flops", "peak_mem_bytes"):
                    expected = [float(m.call(n_in, n_out, cache=cache, metric=metric)) for m in references]
                    np.testing.assert_allclose(intervals.drawn(n_in, n_out, cache, metric), expected, rtol=1e-12)


def _priced_pass_by_pass(intervals: CallIntervals, index: int, n_in: int, n_out: int, cache: bool, metric: str):
    """One draw's call priced pass by pass: each pass's drawn curve at its own length, times ``(n / n_max)^q``
    beyond the measured lengths; summed (or, for peak memory, the largest pass, as ``CostModel.call`` takes it)."""
    first, steps, lo, hi = call_passes(n_in, n_out, cache)

    def cost(phase, n):
        curve, n = intervals.cost_model.curve(phase, metric), np.asarray(n, dtype=float)
        beyond = (np.maximum(n, curve.n_max) / curve.n_max) ** intervals.slopes[phase, metric][index]
        return curve.form.evaluate(intervals.draws[phase, metric][index], n) * beyond

    firsts = [] if first is None else [float(cost(first, n_in))]
    if metric == "peak_mem_bytes":
        return max([float(cost(steps, max(int(hi), int(lo))))] + firsts)
    return float(np.sum(cost(steps, np.arange(int(lo), int(hi) + 1)))) + sum(firsts)


def test_slope_errors_bend_each_draw_beyond_the_data_and_calls_sum_them_in_closed_form():
    cost_model = _noisy_cost_model(1.0, 0)  # measured at 8..512; decode a power law, prefill and forward polynomials
    intervals = CallIntervals(cost_model, draws=6)
    for (phase, metric), slopes in intervals.slopes.items():
        sd = cost_model.curve(phase, metric).extrapolation_slope_sd
        assert (sd > 0 and np.all(slopes != 0)) if metric != "flops" else (sd == 0 and np.all(slopes == 0))
    for n_in, n_out in [(8, 1), (100, 2), (128, 128), (400, 300), (700, 64), (4096, 1000)]:
        for cache in (True, False):
            for metric in ("latency_s", "flops", "peak_mem_bytes"):
                expected = [_priced_pass_by_pass(intervals, i, n_in, n_out, cache, metric) for i in range(6)]
                np.testing.assert_allclose(intervals.drawn(n_in, n_out, cache, metric), expected, rtol=1e-10)


def test_slope_draws_are_normal_with_the_curves_sd_and_clipped():
    curve = _noisy_fit(4)
    slopes = slope_draws(dataclasses.replace(curve, extrapolation_slope_sd=0.05), draws=20_000)
    assert np.mean(slopes) == pytest.approx(0.0, abs=0.002) and np.std(slopes) == pytest.approx(0.05, rel=0.03)
    wild = slope_draws(dataclasses.replace(curve, extrapolation_slope_sd=2.0), draws=20_000)
    assert np.all(np.abs(wild) <= SLOPE_LIMIT) and np.mean(np.abs(wild) == SLOPE_LIMIT) > 0.5
    np.testing.assert_array_equal(slope_draws(dataclasses.replace(curve, extrapolation_slope_sd=None)), 0.0)


def test_arrays_of_calls_price_as_each_call_alone():
    intervals = CallIntervals(_noisy_cost_model(1.0, 2), draws=20)
    n_in, n_out = np.array([16, 300, 2000]), np.array([[1], [40]])
    for cache in (True, False):
        together = intervals.drawn(n_in, n_out, cache)
        assert together.shape == (20, 2, 3)
        for i, out in enumerate(n_out[:, 0]):
            for j, into in enumerate(n_in):
                np.testing.assert_allclose(together[:, i, j], intervals.drawn(int(into), int(out), cache), rtol=1e-13)


def test_a_fit_file_of_schema_1_1_still_loads_and_draws():
    cost_model = load_cost_model(FIT_1_1)
    assert cost_model.fit.schema_version == "1.1"
    assert all(curve.correlation is None for metrics in cost_model.curves.values() for curve in metrics.values())
    intervals = CallIntervals(cost_model)
    for cache in (True, False):
        value, low, high = intervals.call(1024, 128, cache)
        assert np.isfinite([low, high]).all() and low < value < high and high / low < 1.5
    flops = intervals.call(1024, 128, metric="flops")
    assert flops[1] == pytest.approx(flops[0], rel=1e-12) and flops[2] == pytest.approx(flops[0], rel=1e-12)
    prefill = cost_model.curve("prefill", "latency_s")
    np.testing.assert_allclose(_copula_correlation_of(intervals.draws["prefill", "latency_s"]),
                               design_correlation(prefill), atol=0.06)


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
