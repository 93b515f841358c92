"""Batch surfaces recovered from synthetic samples of known surfaces (profiler.costmodel.surface)."""

import numpy as np
import pytest

from profiler.costmodel import surface as surface_module
from profiler.costmodel.surface import SurfaceFit, fit_surface, fixed_forms
from profiler.costmodel.surface_forms import SURFACE_FORMS, join

BATCHES = (1, 2, 4, 8)
LENGTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
REPEATS = 4
# Magnitudes of gpt2 on a 2-core CPU: prefill 45 ms at 8 tokens, 0.9 s at 1,024; decode 30-40 ms at batch 1.
TRUTHS = {
    ("prefill", "compute"): {"a": 0.03, "d": 0.01, "b": 8e-4, "c": 3e-7},
    ("prefill", "roofline"): {"a": 0.005, "w": 0.04, "d": 0.004, "b": 7e-4, "c": 1.5e-7, "q": 3.0},
    ("decode", "compute"): {"a": 0.02, "d": 0.01, "b": 1e-5},
    ("decode", "roofline"): {"a": 0.005, "w": 0.025, "d": 0.008, "b": 1.2e-5, "q": 4.0},
}


def _grid(batches=BATCHES, lengths=LENGTHS, repeats=REPEATS):
    batch, n = (a.ravel() for a in np.meshgrid(batches, lengths, indexing="ij"))
    return np.repeat(batch, repeats), np.repeat(n, repeats)


def _truth(phase, name):
    form = SURFACE_FORMS[phase][name]
    return form, np.array([TRUTHS[phase, name][p] for p in form.params])


def _noisy(form, theta, batch, n, seed, noise=0.03, outliers=4):
    rng = np.random.default_rng(seed)
    y = form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float)) * (1 + noise * rng.standard_normal(len(n)))
    y[rng.choice(len(y), outliers, replace=False)] *= 3  # passes caught by a slow spell
    return y


@pytest.mark.parametrize("phase, name", list(TRUTHS))
def test_each_form_is_recovered_and_chosen_when_it_is_the_truth(phase, name):
    form, theta = _truth(phase, name)
    batch, n = _grid()
    fit = fit_surface(phase, batch, n, _noisy(form, theta, batch, n, seed=1))
    assert fit.form.name == name
    assert [c["form"] for c in fit.candidates] == ["compute", "roofline"] + (["per-batch"] if phase == "decode" else [])
    b, m = (a.ravel() for a in np.meshgrid(np.arange(1, 9), np.arange(8, 1025, 7), indexing="ij"))
    truth = form.evaluate(theta, np.stack([b, m], axis=-1).astype(float))
    assert np.max(np.abs(fit.predict(b, m) / truth - 1)) < 0.02  # between the measured batches too
    assert 0.005 < fit.held_out_mape < 0.04  # about the 3% noise's mean absolute value, 2.4%, over repeats' medians
    assert fit.held_out_points == fit.points == len(BATCHES) * len(LENGTHS) and fit.samples == len(n)
    assert fit.domain.tolist() == [[b, 8, 1024] for b in BATCHES]
    assert fit.r2 > 0.5  # of log latencies, outliers included


def test_the_roofline_is_not_chosen_without_a_knee_in_the_data():
    """A memory floor the measured batches never leave (decode's work d*B stays under w up to B = 2): the
    roofline's w and q are not fixed, so the compute form is kept."""
    form, theta = _truth("decode", "roofline")
    batch, n = _grid(batches=(1, 2))
    fit = fit_surface("decode", batch, n, _noisy(form, theta, batch, n, seed=2))
    assert fit.form.name == "compute"


def test_intervals_cover_the_truth():
    form, theta = _truth("decode", "compute")
    batch, n = _grid()
    covered = []
    for seed in range(12):
        fit = fit_surface("decode", batch, n, _noisy(form, theta, batch, n, seed, outliers=0), seed=seed)
        covered.append((fit.ci95[:, 0] <= theta) & (theta <= fit.ci95[:, 1]))
        assert fit.correlation.shape == (3, 3) and np.allclose(np.diagonal(fit.correlation), 1)
    assert np.all(np.mean(covered, axis=0) >= 0.75), np.mean(covered, axis=0)


def test_the_held_out_error_is_the_miss_at_each_point_left_out():
    """Exact samples but one point 20% slow at every repeat: a refit without that point misses it by 1/6 of
    its latency, a refit without any other point misses little (the robust loss keeps the slow point from
    moving the surface much), so the mean over the points is a little above (1/6) / points."""
    form, theta = _truth("decode", "compute")
    batch, n = _grid()
    y = form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float))
    slow = (batch == 4) & (n == 128)
    y[slow] *= 1.2
    fit = fit_surface("decode", batch, n, y)
    points = len(BATCHES) * len(LENGTHS)
    assert (1.2 - 1) / 1.2 / points < fit.held_out_mape < 1.5 * (1.2 - 1) / 1.2 / points


def test_held_out_points_are_bounded(monkeypatch):
    monkeypatch.setattr(surface_module, "MAX_HELD_OUT_POINTS", 5)
    form, theta = _truth("decode", "compute")
    batch, n = _grid()
    fit = fit_surface("decode", batch, n, _noisy(form, theta, batch, n, seed=3))
    assert fit.held_out_points == 5 and fit.points == len(BATCHES) * len(LENGTHS)


def test_exact_samples_have_point_intervals():
    form, theta = _truth("prefill", "compute")
    batch, n = _grid(repeats=1)
    fit = fit_surface("prefill", batch, n, form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float)))
    assert fit.theta == pytest.approx(theta, rel=1e-6)
    assert np.all(fit.ci95[:, 0] == fit.ci95[:, 1]) and fit.held_out_mape < 1e-6


def test_a_surface_needs_two_batches_and_more_points_than_coefficients():
    batch, n = _grid(batches=(1,))
    assert fixed_forms("decode", batch, n) == {}
    with pytest.raises(ValueError, match="too few"):
        fit_surface("decode", batch, n, np.ones(len(n)))
    # batch 1 at 3 lengths and batch 2 at one: 4 points fix decode's compute form (3 coefficients) only
    assert list(fixed_forms("decode", [1, 1, 1, 2], [8, 16, 32, 8])) == ["compute"]
    assert fixed_forms("prefill", [1, 1, 1, 2], [8, 16, 32, 8]) == {}
    # batch 2 at two lengths: the per-batch form (a_1, a_2, b) too; never for prefill
    assert list(fixed_forms("decode", [1, 1, 1, 2, 2], [8, 16, 32, 8, 64])) == ["compute", "per-batch"]
    assert "per-batch" not in fixed_forms("prefill", *_grid())


def test_the_domain_is_each_batch_measured_and_the_lengths_between_two_both_cover():
    form, theta = _truth("decode", "compute")
    batch = np.array([1] * 4 + [4] * 3 + [8] * 2)
    n = np.array([8, 64, 512, 1024, 8, 64, 256, 16, 128])
    fit = fit_surface("decode", batch, n, form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float)))
    assert fit.domain.tolist() == [[1, 8, 1024], [4, 8, 256], [8, 16, 128]]
    assert fit.batch_max == 8
    assert not fit.outside(2, 8, 256)  # between batches 1 and 4: the lengths both measured
    assert fit.outside(2, 8, 512) and fit.outside(6, 8, 8) and fit.outside(16, 16, 16)
    assert not fit.outside(8, 16, 128) and not fit.outside(np.array([1, 4]), 8, np.array([1024, 256]))
    assert not fit.outside(8, 200, 199)  # an empty range of decode steps reaches nowhere


def test_a_surface_reads_back_as_written():
    form, theta = _truth("decode", "roofline")
    batch, n = _grid()
    fit = fit_surface("decode", batch, n, _noisy(form, theta, batch, n, seed=4))
    again = SurfaceFit.from_dict("decode", fit.as_dict())
    assert again.form is fit.form and again.as_dict() == fit.as_dict()
    assert again.predict(3, 300) == pytest.approx(fit.predict(3, 300), rel=1e-12)


@pytest.mark.parametrize("phase, name", list(TRUTHS))
def test_the_jacobian_is_the_derivative(phase, name):
    form, theta = _truth(phase, name)
    x = np.array([[1, 8], [2, 100], [3, 40], [8, 1000]], dtype=float)
    step = 1e-6
    numeric = np.stack([(form.evaluate(theta * (1 + step * e), x) - form.evaluate(theta * (1 - step * e), x))
                        / (2 * step * theta[k]) for k, e in enumerate(np.eye(len(theta)))], axis=-1)
    assert form.jacobian(theta, x) == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_the_decode_steps_sum_in_closed_form():
    for name in ("compute", "roofline"):
        form, theta = _truth("decode", name)
        by_hand = sum(form.evaluate(theta, np.array([3.0, c])) for c in range(100, 5001))
        assert form.steps_sum(theta, 3, 100, 5000) == pytest.approx(by_hand, rel=1e-12)
        assert form.steps_sum(theta, 3, 100, 99) == 0
    form, theta = _truth("prefill", "roofline")
    with pytest.raises(ValueError, match="no closed-form sum"):
        form.steps_sum(theta, 3, 100, 200)


def test_the_join_is_between_the_sum_and_the_larger():
    w, work = np.array([1e-30, 0.02, 0.02, 5.0]), np.array([0.01, 0.02, 1e-300, 0.0])
    for q in (1.0, 4.0, 16.0):
        joined = join(w, work, q)
        assert np.all(joined >= np.maximum(w, work) * (1 - 1e-12)) and np.all(joined <= (w + work) * (1 + 1e-12))
    assert join(0.02, 0.02, 16.0) == pytest.approx(0.02 * 2 ** (1 / 16))
    assert join(0.0, 0.0, 4.0) == 0
