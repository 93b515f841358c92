import numpy as np
import pytest

from profiler.fit import CurveFit, aicc, fit_curve

LENGTHS = np.repeat([8, 16, 32, 64, 128, 256, 512, 1024], 5).astype(float)
TRUTHS = {
    "affine": (np.array([0.04, 8e-4]), lambda n: 0.04 + 8e-4 * n),
    "quadratic": (np.array([0.04, 8e-4, 3e-7]), lambda n: 0.04 + 8e-4 * n + 3e-7 * n**2),
    "power": (np.array([0.02, 1e-4, 1.4]), lambda n: 0.02 + 1e-4 * n**1.4),
}


def _noisy(curve, seed, noise=0.03, outliers=3):
    rng = np.random.default_rng(seed)
    y = curve(LENGTHS) * (1 + noise * rng.standard_normal(len(LENGTHS)))
    y[rng.choice(len(y), outliers, replace=False)] *= 3  # passes caught by a slow spell
    return y


@pytest.mark.parametrize("name", TRUTHS)
def test_recovers_a_known_curve_despite_noise_and_outliers(name):
    theta, curve = TRUTHS[name]
    fit = fit_curve(LENGTHS, _noisy(curve, seed=1), "s")
    assert fit.form.name == name
    grid = np.arange(8, 1025)
    assert np.max(np.abs(fit.predict(grid) / curve(grid) - 1)) < 0.01
    assert fit.lolo_mape < 0.03 and fit.r2 > 0.5
    assert (fit.n_min, fit.n_max, fit.samples) == (8, 1024, len(LENGTHS))
    assert {c["form"] for c in fit.candidates} == {"affine", "quadratic", "power"}


def test_intervals_cover_the_truth_in_most_trials():
    theta, curve = TRUTHS["quadratic"]
    covered = []
    for seed in range(30):
        fit = fit_curve(LENGTHS, _noisy(curve, seed, outliers=0), "s", forms=("quadratic",), seed=seed)
        covered.append((fit.ci95[:, 0] <= theta) & (theta <= fit.ci95[:, 1]))
    coverage = np.mean(covered, axis=0)
    assert np.all(coverage >= 0.8), coverage


def test_exact_data_choose_the_simplest_exact_form():
    fit = fit_curve(LENGTHS, 7.7e7 + 1.7e8 * LENGTHS + 3.7e4 * LENGTHS**2, "FLOPs")  # FLOPs are exact
    assert fit.form.name == "quadratic"
    assert fit.theta == pytest.approx([7.7e7, 1.7e8, 3.7e4], rel=1e-6)
    fit = fit_curve(LENGTHS, 2.5e8 + 3.7e4 * LENGTHS, "FLOPs")
    assert fit.form.name == "affine"


def test_no_negative_cost():
    y = 0.05 - 1e-5 * LENGTHS  # a decreasing trend is noise here: cost cannot fall with n
    fit = fit_curve(LENGTHS, y, "s", forms=("affine",))
    assert np.all(fit.theta >= 0)


def test_aicc_penalises_parameters():
    assert aicc(1.0, 40, 3) > aicc(1.0, 40, 2)
    assert aicc(0.0, 40, 2) == aicc(1e-30, 40, 2)  # exact data do not give log(0)


def test_round_trip_through_a_dict():
    fit = fit_curve(LENGTHS, _noisy(TRUTHS["power"][1], seed=2), "s")
    again = CurveFit.from_dict(fit.as_dict())
    assert again.form is fit.form and np.array_equal(again.theta, fit.theta)
    assert again.predict(300.0) == fit.predict(300.0)
