import numpy as np
import pytest

from profiler.costmodel.power_sums import power_sum, sum_of_powers


@pytest.mark.parametrize("p", [0.2, 0.5, 1.0, 1.118, 2.0, 3.0])
@pytest.mark.parametrize("lo, hi", [(1, 1), (1, 64), (1, 65), (3, 100), (64, 65), (100, 5000), (7, 300_000)])
def test_equals_the_explicit_sum(p, lo, hi):
    assert sum_of_powers(lo, hi, p) == pytest.approx(float(np.sum(np.arange(lo, hi + 1, dtype=float) ** p)), rel=1e-12)


def test_empty_ranges_and_array_shapes():
    assert sum_of_powers(10, 9, 1.5) == 0.0
    lo = np.array([[1, 70], [200, 5]])
    hi = np.array([[0, 80], [1000, 5]])
    result = sum_of_powers(lo, hi, 1.3)
    assert result.shape == (2, 2)
    assert result[0, 0] == 0.0 and result[1, 1] == pytest.approx(5**1.3)
    assert result[1, 0] == pytest.approx(np.sum(np.arange(200, 1001, dtype=float) ** 1.3), rel=1e-12)


def test_an_array_of_exponents_sums_each_range_with_its_own():
    p = np.array([[0.2], [1.118], [1.118], [3.0]])  # one per drawn curve; repeated exponents share a table
    lo, hi = np.array([1, 60, 100, 7]), np.array([0, 70, 5000, 300_000])
    result = sum_of_powers(lo, hi, p)
    assert result.shape == (4, 4)
    for i, exponent in enumerate(p[:, 0]):
        np.testing.assert_array_equal(result[i], sum_of_powers(lo, hi, float(exponent)))
    assert result[3, 3] == pytest.approx(float(np.sum(np.arange(7, 300_001, dtype=float) ** 3.0)), rel=1e-12)


@pytest.mark.parametrize("p", [-0.9, -0.3, 0.05, 3.5, 3.9])
def test_exponents_a_slope_error_reaches_beyond_the_data(p):
    """A term ``n^j`` times ``(n / n_max)^q`` beyond the data sums ``n^(j + q)``, ``|q| <= 0.9``
    (``profiler.costmodel.uncertainty``): exponents from -0.9 to 3.9, ranges from inside and past the table."""
    for lo, hi in [(1, 64), (65, 5000), (300, 299), (1025, 300_000), (7, 300_000)]:
        explicit = float(np.sum(np.arange(lo, hi + 1, dtype=float) ** p))
        assert sum_of_powers(lo, hi, p) == pytest.approx(explicit, rel=1e-12, abs=0.0)


def test_integer_power_sums_in_closed_form_match_the_loop_and_an_empty_range_is_zero():
    lo, hi = np.array([1, 7, 100, 9]), np.array([1, 30, 2_000, 8])
    for j in (0, 1, 2):
        expected = [sum(n**j for n in range(a, b + 1)) for a, b in zip(lo, hi)]
        assert power_sum(lo, hi, j).tolist() == expected
