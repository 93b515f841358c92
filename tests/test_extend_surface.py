"""The extend surface T(c, s) recovered from synthetic passes of known surfaces (profiler.costmodel.extend)."""

import numpy as np
import pytest
from scipy.optimize import nnls

from profiler.costmodel.extend import ExtendFit, fit_extend, unfixed
from profiler.costmodel.extend_forms import EXTEND_FORMS, monomials
from profiler.costmodel.fit import fit_curve

LENGTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
# prefill (0, n), decode (c, 1), and extend passes on a coarse grid inside 1,024 positions
POINTS = ([(0, n) for n in LENGTHS] + [(c, 1) for c in LENGTHS]
          + [(c, s) for c in (64, 256, 512, 896) for s in (4, 16, 64, 128) if c + s <= 1024])
REPEATS = 4
# Magnitudes of gpt2 on a 2-core CPU: prefill 0.04 + 8e-4 n + 3e-7 n^2; attention over the cache about twice the
# causal s^2 term per pair; decode 1e-5 s per cached token where the cache is read once a pass
TRUTHS = {"attention": {"a": 0.03, "b": 8e-4, "e": 6e-7, "f": 3e-7},
          "cache-read": {"a": 0.03, "b": 8e-4, "g": 1e-5, "e": 6e-7, "f": 3e-7},
          # a decode step 40 ms cheaper than the line through the passes of several tokens (a CPU's BLAS)
          "two-kernel": {"a": 0.03, "m": 0.04, "b": 8e-4, "e": 6e-7, "f": 3e-7},
          # both: and the cache copied at every pass, as gpt2 on this CPU (about 1e-5 s per cached token)
          "two-kernel-read": {"a": 0.03, "m": 0.04, "b": 8e-4, "g": 1e-5, "e": 6e-8, "f": 3e-7}}


def _truth(name):
    form = EXTEND_FORMS[name]
    return form, np.array([TRUTHS[name][p] for p in form.params])


def _passes(points=POINTS, repeats=REPEATS):
    cached, new = np.repeat(np.array(points, dtype=float), repeats, axis=0).T
    return cached, new


def _noisy(form, theta, cached, new, seed, noise=0.03, outliers=4):
    rng = np.random.default_rng(seed)
    y = form.evaluate(theta, np.stack([cached, new], axis=-1)) * (1 + noise * rng.standard_normal(len(new)))
    y[rng.choice(len(y), outliers, replace=False)] *= 3  # passes caught by a slow spell
    return y


def _curves(cached, new, y):
    """The prefill and decode latency curves of the same passes, as ``fit_run`` fits them (their structured
    forms preferred)."""
    prefill, decode = cached == 0, (cached > 0) & (new == 1)
    return (fit_curve(new[prefill], y[prefill], "s", preferred="quadratic"),
            fit_curve(cached[decode], y[decode], "s", preferred="affine"))


@pytest.fixture(scope="module", params=list(TRUTHS))
def recovered(request):
    name = request.param
    form, theta = _truth(name)
    cached, new = _passes()
    y = _noisy(form, theta, cached, new, seed=1)
    return name, form, theta, fit_extend(cached, new, y, *_curves(cached, new, y))


def test_the_true_form_is_chosen_and_its_coefficients_lie_in_their_intervals(recovered):
    name, _, theta, fit = recovered
    assert fit.form.name == name  # cache-read where a g*c term is there, two-kernel where an m step, else attention
    assert [c["form"] for c in fit.candidates] == ["attention", "cache-read", "two-kernel", "two-kernel-read"]
    assert fit.preferred == "attention"
    assert np.all((fit.ci95[:, 0] <= theta) & (theta <= fit.ci95[:, 1])), (fit.ci95, theta)
    assert fit.correlation.shape == (len(theta),) * 2 and np.allclose(fit.correlation, fit.correlation.T)


def test_the_surface_predicts_the_truth_across_its_domain(recovered):
    _, form, theta, fit = recovered
    c, s = (a.ravel() for a in np.meshgrid(np.arange(0, 1024, 13), np.arange(1, 129, 5), indexing="ij"))
    inside = c + s <= 1024
    truth = form.evaluate(theta, np.stack([c[inside], s[inside]], axis=-1).astype(float))
    assert np.max(np.abs(fit.predict(c[inside], s[inside]) / truth - 1)) < 0.02
    assert 0.005 < fit.held_out_mape < 0.04  # about the 3% noise's mean absolute value over repeats' medians
    assert fit.held_out_points == fit.points == len(POINTS) and fit.samples == len(POINTS) * REPEATS
    assert (fit.c_max, fit.s_max, fit.positions_max) == (1024, 1024, 1025)
    assert fit.consistency["prefill"] < 0.01 and fit.consistency["decode"] < 0.01  # the same passes' curves


def test_exact_passes_give_the_coefficients_of_an_independent_solver():
    """Noiseless: the fit is scipy's non-negative least squares on relative residuals, with point intervals."""
    form, theta = _truth("cache-read")
    cached, new = _passes(repeats=1)
    x = np.stack([cached, new], axis=-1)
    y = form.evaluate(theta, x)
    fit = fit_extend(cached, new, y, *_curves(cached, new, y))
    reference, _ = nnls(monomials(x, form.params) / y[:, None], np.ones_like(y))
    assert fit.form.name == "cache-read"
    assert fit.theta == pytest.approx(reference, rel=1e-5) and reference == pytest.approx(theta, rel=1e-6)
    assert np.array_equal(fit.ci95[:, 0], fit.ci95[:, 1]) and fit.held_out_mape < 1e-6


def test_consistency_is_the_distance_from_the_curves():
    form, theta = _truth("attention")
    cached, new = _passes(repeats=1)
    y = form.evaluate(theta, np.stack([cached, new], axis=-1))
    decode = _curves(cached, new, y)[1]
    slower = fit_curve(new[cached == 0], 1.1 * y[cached == 0], "s", preferred="quadratic")
    fit = fit_extend(cached, new, y, slower, decode)
    assert fit.consistency["prefill"] == pytest.approx(1 - 1 / 1.1, rel=1e-4)
    assert fit.consistency["decode"] < 1e-6


def test_the_domain_and_what_leaves_it(recovered):
    fit = recovered[3]
    assert not fit.outside(0, 1024) and not fit.outside(1024, 1) and not fit.outside([0, 512, 896], [8, 64, 128])
    for c, s in ((1025, 1), (0, 1025), (600, 600), (-1, 8), (10, 0)):
        assert fit.outside(c, s), (c, s)
    assert fit.outside([0, 600], [8, 600])  # any point of an array


def test_the_surface_round_trips_its_json(recovered):
    fit = recovered[3]
    again = ExtendFit.from_dict(fit.as_dict())
    assert again.as_dict() == fit.as_dict()
    assert again.predict(300, 40) == pytest.approx(fit.predict(300, 40), rel=1e-12)


def test_prefills_and_decode_steps_alone_do_not_fix_the_cache_read_form():
    """Without a pass of several tokens on a cache, g*c and e*s*c are both the decode slope: no surface."""
    axes = [(0, n) for n in LENGTHS] + [(c, 1) for c in LENGTHS]
    assert EXTEND_FORMS["attention"].fixed_by(np.array(axes, dtype=float))
    assert not EXTEND_FORMS["cache-read"].fixed_by(np.array(axes, dtype=float))
    why = unfixed(*_passes(axes))
    assert why == "16 (n_cached, n_new) points, 0 of them several tokens appended to a cache: too few to fix the " \
                  "cache-read form's 5 coefficients"
    assert EXTEND_FORMS["cache-read"].fixed_by(np.array(axes + [(64, 16)], dtype=float))
    assert unfixed(*_passes([(c, s) for c, s in POINTS if c > 0])) is not None  # no prefill to check against
    cached, new = _passes(axes)
    with pytest.raises(ValueError, match="cache-read form"):
        fit_extend(cached, new, np.ones_like(new), *_curves(cached, new, 0.03 + 1e-4 * (cached + new)))


@pytest.mark.parametrize("cached, new, latency", [([-1.0], [8.0], [0.1]), ([4.0], [0.0], [0.1]), ([4.0], [8.0], [0.0])])
def test_impossible_passes_are_refused(cached, new, latency):
    c, s = _passes()
    form, theta = _truth("attention")
    y = form.evaluate(theta, np.stack([c, s], axis=-1))
    with pytest.raises(ValueError):
        fit_extend(np.append(c, cached), np.append(s, new), np.append(y, latency), *_curves(c, s, y))


def test_a_form_evaluates_stacks_of_coefficients_and_its_jacobian_is_its_terms():
    form, theta = _truth("cache-read")
    x = np.array([[0.0, 8.0], [100.0, 1.0], [300.0, 16.0]])
    thetas = np.stack([theta, 2 * theta, 0 * theta])[:, None, :]
    values = form.evaluate(thetas, x)
    assert values.shape == (3, 3) and np.allclose(values[1], 2 * values[0]) and not values[2].any()
    a, b, g, e, f = theta
    c, s = x.T
    assert values[0] == pytest.approx(a + b * s + g * c + e * s * c + f * s**2, rel=1e-12)
    step = 1e-3 * theta
    numeric = [(form.evaluate(theta + np.eye(5)[k] * step[k], x) - form.evaluate(theta, x)) / step[k] for k in range(5)]
    assert form.jacobian(thetas, x).shape == (3, 3, 5)
    assert np.allclose(form.jacobian(theta, x), np.stack(numeric, axis=-1), rtol=1e-6)


def test_the_two_kernel_term_is_a_step_between_one_new_token_and_several():
    form, theta = _truth("two-kernel")
    assert form.params == ("a", "m", "b", "e", "f") and form.formula == "a + m*[s>1] + b*s + e*s*c + f*s^2"
    x = np.array([[500.0, 1.0], [500.0, 2.0], [0.0, 8.0]])
    a, m, b, e, f = theta
    c, s = x.T
    assert form.evaluate(theta, x) == pytest.approx(a + m * (s > 1) + b * s + e * s * c + f * s**2, rel=1e-12)
    assert form.jacobian(theta, x)[:, 1].tolist() == [0.0, 1.0, 1.0]
    # the attention form misses such passes: its one per-pass a lies between the step's two sides
    cached, new = _passes()
    y = _noisy(form, theta, cached, new, seed=5)
    fit = fit_extend(cached, new, y, *_curves(cached, new, y))
    attention = next(c for c in fit.candidates if c["form"] == "attention")
    two_kernel = next(c for c in fit.candidates if c["form"] == "two-kernel")
    assert fit.form.name == "two-kernel" and attention["aicc"] - two_kernel["aicc"] > 10


def test_the_six_coefficient_form_competes_only_where_the_points_fix_it():
    """Six distinct points fix the forms of five coefficients but not two-kernel-read's six: the surface is fitted
    without it (not refused), and with one more point it competes."""
    few = [(0, 8), (0, 16), (0, 64), (64, 1), (256, 1), (64, 16)]
    assert unfixed(*_passes(few)) is None
    assert not EXTEND_FORMS["two-kernel-read"].fixed_by(np.array(few, dtype=float))
    form, theta = _truth("two-kernel-read")
    for points, names in ((few, ["attention", "cache-read", "two-kernel"]),
                          (few + [(256, 16)], ["attention", "cache-read", "two-kernel", "two-kernel-read"])):
        cached, new = _passes(points)
        y = _noisy(form, theta, cached, new, seed=3, outliers=0)
        fit = fit_extend(cached, new, y, *_curves(cached, new, y))
        assert [c["form"] for c in fit.candidates] == names
