import numpy as np
import pytest

from profiler.costmodel.forms import AFFINE, FORMS, MEMORY_FORMS, POWER, QUADRATIC


@pytest.mark.parametrize("form, theta", [(AFFINE, [0.5, 2e-3]), (QUADRATIC, [0.5, 2e-3, 1e-6]), (POWER, [0.5, 2e-3, 1.3])])
def test_closed_form_sum_equals_the_explicit_sum(form, theta):
    for lo, hi in [(1, 1), (5, 40), (100, 2000), (7, 6)]:
        explicit = sum(form.evaluate(theta, n) for n in range(lo, hi + 1))
        assert form.sum_over(theta, lo, hi) == pytest.approx(explicit, rel=1e-12, abs=1e-12)


def test_sums_vectorise_over_ranges():
    lo, hi = np.array([1, 10]), np.array([5, 20])
    expected = [QUADRATIC.sum_over([1, 2, 3], a, b) for a, b in zip(lo, hi)]
    assert QUADRATIC.sum_over([1, 2, 3], lo, hi) == pytest.approx(expected)


def test_power_sum_over_a_million_terms_is_exact_enough():
    theta = [0.1, 1e-3, 1.5]
    lo, hi = 10, 3_000_000
    exact = 0.1 * (hi - lo + 1) + 1e-3 * np.sum(np.arange(lo, hi + 1, dtype=float) ** 1.5)
    assert POWER.sum_over(theta, lo, hi) == pytest.approx(exact, rel=1e-9)


def test_jacobians_match_finite_differences():
    n = np.array([8.0, 100.0, 1000.0])
    for form, theta in [(QUADRATIC, np.array([0.5, 2e-3, 1e-6])), (POWER, np.array([0.5, 2e-3, 1.3]))]:
        step = 1e-7 * np.maximum(np.abs(theta), 1e-9)
        numeric = np.stack([(form.evaluate(theta + e, n) - form.evaluate(theta - e, n)) / (2 * e[i])
                            for i, e in enumerate(np.diag(step))], axis=-1)
        assert form.jacobian(theta, n) == pytest.approx(numeric, rel=1e-5)


def test_forms_print_with_units():
    assert QUADRATIC.describe([0.04, 8e-4, 3e-7], "s") == "0.04 s + 0.0008 s/token * n + 3e-07 s/token^2 * n^2"
    assert POWER.describe([0.02, 1e-4, 1.4], "s") == "0.02 s + 0.0001 s/token^p * n^1.400"


def test_memory_forms_have_only_terms_in_bytes_per_token_power():
    # weights, per-token bytes, attention scores: each coefficient non-negative and free above, no exponent
    for form in (FORMS[name] for name in MEMORY_FORMS):
        assert np.all(form.lower == 0) and np.all(np.isinf(form.upper))
    assert QUADRATIC.describe([9.6e8, 7.4e4, 48], "bytes") == \
        "9.6e+08 bytes + 7.4e+04 bytes/token * n + 48 bytes/token^2 * n^2"


@pytest.mark.parametrize("form, theta", [
    (AFFINE, [0.5, 2e-3]), (QUADRATIC, [0.5, 2e-3, 1e-6]), (POWER, [0.5, 2e-3, 1.3]),
])
def test_a_stack_of_curves_evaluates_as_each_curve_alone(form, theta):
    n = np.array([8.0, 100.0, 1000.0])
    thetas = np.array(theta) * np.array([[1.0], [0.5], [0.9]])  # three curves, (3, k)
    values, jacobians = form.evaluate(thetas[:, None, :], n), form.jacobian(thetas[:, None, :], n)
    assert values.shape == (3, len(n)) and jacobians.shape == (3, len(n), len(theta))
    for row, one in enumerate(thetas):
        assert np.array_equal(values[row], form.evaluate(one, n))
        assert np.array_equal(jacobians[row], form.jacobian(one, n))
    assert np.ndim(form.evaluate(theta, 300.0)) == 0  # one curve at one length is a number


def test_an_attention_free_model_prefers_a_linear_form_in_every_phase():
    """Without attention no phase's FLOPs grow with the square of the tokens (heads 0: Mamba); an attending model's
    prefill and forward do, and a served model of unknown heads is counted as attending."""
    from profiler.costmodel.forms import STRUCTURED_FORMS, structured_forms

    assert structured_forms(0) == {"prefill": "affine", "forward": "affine", "decode": "affine"}
    assert structured_forms(12) == structured_forms(None) == STRUCTURED_FORMS
    assert STRUCTURED_FORMS["prefill"] == "quadratic"
