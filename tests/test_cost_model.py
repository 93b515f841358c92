import warnings

import numpy as np
import pytest

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning, linearity_horizon
from profiler.costmodel.fit import fit_curve

N = np.repeat([8, 16, 32, 64, 128, 256, 512, 1024], 3).astype(float)
PREFILL = lambda n: 0.04 + 8e-4 * n + 3e-7 * n**2  # noqa: E731
DECODE = lambda c: 0.03 + 1e-5 * c  # noqa: E731
FORWARD = lambda n: 0.041 + 8e-4 * n + 3e-7 * n**2  # noqa: E731
MEMORY = lambda n: 1e9 + 4e4 * n  # noqa: E731


@pytest.fixture(scope="module")
def cm():
    curves = {}
    for phase, latency in (("prefill", PREFILL), ("decode", DECODE), ("forward", FORWARD)):
        curves[phase] = {
            "latency_s": fit_curve(N, latency(N), "s").as_dict(),
            "peak_mem_bytes": fit_curve(N, MEMORY(N), "bytes").as_dict(),
        }
    return CostModel.from_json({"model": {"name": "test"}, "hardware": {}, "derived": {}, "curves": curves})


def test_passes_predict_their_curves(cm):
    assert cm.prefill(300.0) == pytest.approx(PREFILL(300.0), rel=1e-6)
    assert cm.decode(np.array([10.0, 900.0])) == pytest.approx(DECODE(np.array([10.0, 900.0])), rel=1e-6)


@pytest.mark.parametrize("n_in, n_out", [(100, 1), (100, 2), (64, 50), (900, 100)])
def test_call_equals_the_explicit_sum_of_passes(cm, n_in, n_out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        cached = cm.prefill(n_in) + sum(cm.decode(n_in + t - 1) for t in range(1, n_out))
        uncached = sum(cm.forward(n_in + t) for t in range(n_out))
        assert cm.call(n_in, n_out) == pytest.approx(cached, rel=1e-9)
        assert cm.call(n_in, n_out, cache=False) == pytest.approx(uncached, rel=1e-9)


def test_call_of_a_million_tokens_is_closed_form(cm):
    with pytest.warns(ExtrapolationWarning):
        total = cm.call(100, 10**6)
    c = np.arange(100, 100 + 10**6 - 1, dtype=float)
    assert total == pytest.approx(cm.prefill(100) + np.sum(0.03 + 1e-5 * c), rel=1e-6)


def test_peak_memory_of_a_call_is_its_largest_pass(cm):
    assert cm.call(200, 300, metric="peak_mem_bytes") == pytest.approx(MEMORY(200 + 300 - 2), rel=1e-6)
    assert cm.call(200, 300, cache=False, metric="peak_mem_bytes") == pytest.approx(MEMORY(499), rel=1e-6)


def test_extrapolation_is_flagged(cm):
    with pytest.warns(ExtrapolationWarning, match="outside the measured 8..1024"):
        cm.prefill(4096)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm.prefill(1024)
        cm.call(500, 100)


def test_bad_call_and_unknown_curve(cm):
    with pytest.raises(ValueError):
        cm.call(10, 0)
    with pytest.raises(KeyError, match="no flops curve for prefill"):
        cm.prefill(10, metric="flops")


def test_linearity_horizon_solves_the_quadratic_share(cm):
    n10 = linearity_horizon(cm.curve("prefill", "latency_s"), 0.1)
    assert 3e-7 * n10**2 == pytest.approx(0.1 * PREFILL(n10), rel=0.05)
    decode = cm.curve("decode", "latency_s")
    assert linearity_horizon(decode, 0.1) is None or linearity_horizon(decode, 0.1) > 1e5
