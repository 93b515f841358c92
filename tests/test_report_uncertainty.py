import dataclasses

import numpy as np
import pytest

from profiler.costmodel.fit import fit_curve
from profiler.costmodel.uncertainty import coefficient_draws
from profiler.report.uncertainty import curve_band

N = np.repeat(np.geomspace(8, 512, 13).round(), 5)


def _truth(n):
    return 0.03 + 4e-4 * np.asarray(n, dtype=float)


def _noisy_fit(seed: int, form: str = "affine", lengths=N):
    rng = np.random.default_rng(seed)
    y = _truth(lengths) * (1 + 0.03 * rng.standard_normal(len(lengths)))
    return fit_curve(lengths, y, "s", forms=(form,), seed=seed)


def _without_stored_correlation(curve):
    """The curve as a fit file before schema 1.2 gives it: the draws fall back to the design's correlation."""
    return dataclasses.replace(curve, correlation=None)


def _coverage(curves, lengths) -> float:
    covered = []
    for seed, curve in enumerate(curves):
        low, high = curve_band(curve, coefficient_draws(curve, seed=seed), lengths)
        covered += list((low <= _truth(lengths)) & (_truth(lengths) <= high))
    return float(np.mean(covered))


def test_joint_draws_make_a_band_narrower_than_every_interval_end_together():
    curve = _noisy_fit(1)
    low, high = curve_band(curve, coefficient_draws(curve), [64.0])
    corners = curve.form.evaluate(curve.ci95[:, 1], 64.0) - curve.form.evaluate(curve.ci95[:, 0], 64.0)
    assert 0 < high[0] - low[0] < 0.8 * corners


def test_the_band_covers_the_true_curve_about_95_percent_of_the_time():
    lengths = [8.0, 64.0, 512.0]
    curves = [_noisy_fit(seed) for seed in range(40)]
    assert 0.85 <= _coverage(curves, lengths) <= 1.0
    assert 0.85 <= _coverage(map(_without_stored_correlation, curves), lengths) <= 1.0  # fit files before 1.2


def test_where_lengths_are_measured_unevenly_the_stored_correlation_covers_better():
    """Only the two ends measured: the bootstrap's overhead and per-token cost trade off far less than on
    the half-octave grid the design correlation assumes, which then draws bands too narrow between."""
    ends = np.repeat([8.0, 512.0], 15)
    lengths = np.array([32.0, 64.0, 128.0, 512.0])
    curves = [_noisy_fit(seed, lengths=ends) for seed in range(40)]
    stored = _coverage(curves, lengths)
    assert stored >= 0.85
    assert stored >= _coverage(map(_without_stored_correlation, curves), lengths)


def test_an_exact_curve_has_no_spread():
    exact = fit_curve(N, 7e7 + 1.7e8 * N + 3.7e4 * N**2, "FLOPs", forms=("quadratic",))
    low, high = curve_band(exact, coefficient_draws(exact), [8.0, 100.0, 512.0])
    np.testing.assert_allclose(low, high, rtol=1e-12)


def test_a_transformed_band_is_the_percentiles_of_the_transformed_draws():
    curve = _noisy_fit(2, "quadratic")
    draws = coefficient_draws(curve, draws=400)
    n = np.geomspace(8, 2048, 7)
    tokens_per_s = np.array([n / curve.form.evaluate(theta, n) for theta in draws])
    low, high = curve_band(curve, draws, n, transform=lambda n, latency: n / latency)
    np.testing.assert_allclose(low, np.percentile(tokens_per_s, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(high, np.percentile(tokens_per_s, 97.5, axis=0), rtol=1e-12)
    assert np.all(low < n / curve.predict(n)) and np.all(n / curve.predict(n) < high)


@pytest.mark.parametrize("n", [[64.0], np.array([8.0, 512.0])])
def test_a_band_has_one_low_and_one_high_per_length(n):
    curve = _noisy_fit(3)
    low, high = curve_band(curve, coefficient_draws(curve), n)
    assert low.shape == high.shape == (len(n),) and np.all(low < high)
