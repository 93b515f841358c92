import warnings

import numpy as np
import pytest

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning, MissingCurve
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


# ---- batches (schema 1.5) -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batched():
    from tests.fitted import cost_model

    return cost_model(surfaces=True)


def _by_hand(phase: str, batch: int, n: float) -> float:
    """The known surface of tests.fitted at (batch, n), written out."""
    from tests.fitted import SURFACES

    k = SURFACES[phase][1]
    if phase == "prefill":  # compute: a + d*B + b*B*n + c*B*n^2
        return k["a"] + k["d"] * batch + k["b"] * batch * n + k["c"] * batch * n**2
    # roofline: a + b*B*n + (w^q + (d*B)^q)^(1/q)
    return k["a"] + k["b"] * batch * n + (k["w"] ** k["q"] + (k["d"] * batch) ** k["q"]) ** (1 / k["q"])


@pytest.mark.parametrize("n_in, n_out", [(100, 1), (100, 2), (64, 50), (900, 100)])
def test_a_batch_of_one_is_the_call_exactly(batched, n_in, n_out):
    assert batched.call_batch(n_in, n_out, 1) == batched.call(n_in, n_out)
    n_in_grid, n_out_grid = np.meshgrid([8, 100, 900], [1, 7, 100])
    assert np.array_equal(batched.call_batch(n_in_grid, n_out_grid, 1), batched.call(n_in_grid, n_out_grid))
    assert batched.batch_pass("prefill", 1, n_in) == batched.prefill(n_in)
    assert batched.batch_pass("decode", 1, n_in) == batched.decode(n_in)


@pytest.mark.parametrize("batch", [2, 3, 4, 8])
@pytest.mark.parametrize("n_in, n_out", [(100, 1), (100, 2), (64, 50), (900, 100)])
def test_a_batched_call_is_the_sum_of_its_passes(batched, batch, n_in, n_out):
    passes = batched.batch_pass("prefill", batch, n_in) + sum(
        batched.batch_pass("decode", batch, c) for c in range(n_in, n_in + n_out - 1))
    by_hand = _by_hand("prefill", batch, n_in) + sum(_by_hand("decode", batch, c) for c in range(n_in, n_in + n_out - 1))
    assert batched.call_batch(n_in, n_out, batch) == pytest.approx(passes, rel=1e-12)
    assert passes == pytest.approx(by_hand, rel=1e-12)


def test_batched_prices_broadcast_and_grow_slower_than_the_batch(batched):
    batch = np.array([[1], [2], [4], [8]])
    n_in, n_out = np.array([16, 256, 1000]), np.array([1, 16, 25])
    prices = batched.call_batch(n_in, n_out, batch)
    assert prices.shape == (4, 3)
    for i, b in enumerate(batch.ravel()):
        assert prices[i] == pytest.approx([batched.call_batch(a, o, int(b)) for a, o in zip(n_in, n_out)], rel=1e-12)
    assert np.all(np.diff(prices, axis=0) > 0) and np.all(prices[3] < 8 * prices[0])  # a batch shares its weight reads
    passes = batched.batch_pass("decode", batch, n_in)
    assert passes.shape == (4, 3) and passes[0] == pytest.approx(batched.decode(n_in), rel=1e-12)


def test_a_decode_sum_of_a_million_steps_is_closed_form(batched):
    with pytest.warns(ExtrapolationWarning, match="outside the measured"):
        total = batched.call_batch(100, 10**6, 4)
    c = np.arange(100, 100 + 10**6 - 1, dtype=float)
    assert total == pytest.approx(_by_hand("prefill", 4, 100) + np.sum(_by_hand("decode", 4, c)), rel=1e-9)


def test_batches_outside_the_measured_domain_are_flagged(batched):
    assert batched.max_batch == 8
    with pytest.warns(ExtrapolationWarning, match="outside the measured"):
        batched.call_batch(100, 10, 16)
    with pytest.warns(ExtrapolationWarning, match="outside the measured"):
        batched.batch_pass("prefill", 4, 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batched.call_batch(np.array([8, 500]), np.array([1, 500]), np.array([8, 3]))
        batched.batch_pass("decode", np.arange(1, 9), 1024)


def test_a_fit_without_surfaces_prices_one_sequence_only(cm):
    assert cm.max_batch == 1 and cm.surfaces == {}
    assert cm.call_batch(100, 10, 1) == cm.call(100, 10)
    for ask in (lambda: cm.call_batch(100, 10, 2), lambda: cm.batch_pass("decode", np.array([1, 2]), 100)):
        with pytest.raises(MissingCurve) as refused:
            ask()
        assert "\n" not in str(refused.value) and "--batch" in str(refused.value)


def test_bad_batches_are_refused(batched):
    for batch in (0, 2.5, -1):
        with pytest.raises(ValueError, match="whole number"):
            batched.call_batch(10, 10, batch)
    with pytest.raises(ValueError, match="one of prefill, decode"):
        batched.batch_pass("forward", 2, 10)
    with pytest.raises(ValueError):
        batched.call_batch(10, 0, 2)


def test_an_extrapolation_warning_names_an_arrays_range_not_its_values(cm):
    grid = np.arange(1.0, 4001.0)  # a break-even map's worth: the warning's text is made even when filtered out
    with pytest.warns(ExtrapolationWarning, match=r"call\(1.0..4000.0 \(4,000 values\), 8\) reaches outside"):
        cm.call(grid, 8)
    with pytest.warns(ExtrapolationWarning, match=r"prefill latency_s at n=1.0..4000.0 \(4,000 values\): outside"):
        cm.prefill(grid)


# ---- a cached prefix (schema 1.6) -----------------------------------------------------------------------

EXTEND = {"a": 0.035, "b": 8e-4, "g": 9e-6, "e": 6e-7, "f": 3e-7}  # cache-read: a + b*s + g*c + e*s*c + f*s^2


def _extend_by_hand(c, s):
    k = EXTEND
    return k["a"] + k["b"] * s + k["g"] * c + k["e"] * s * c + k["f"] * s**2


@pytest.fixture(scope="module")
def extended(cm):
    """``cm`` with a known extend surface, measured up to 1,024 cached and 1,024 appended tokens, 1,025 in all."""
    from profiler.costmodel.extend import ExtendFit
    from profiler.costmodel.extend_forms import EXTEND_FORMS

    form = EXTEND_FORMS["cache-read"]
    theta = np.array([EXTEND[p] for p in form.params])
    surface = ExtendFit(form=form, theta=theta, ci95=np.stack([theta, theta], axis=-1), correlation=np.eye(5), r2=1.0,
                        held_out_mape=0.0, held_out_points=30, points=30, samples=90,
                        candidates=[{"form": "cache-read", "params": EXTEND, "aicc": -1e4, "r2": 1.0, "converged": True}],
                        preferred="attention", c_max=1024, s_max=1024, positions_max=1025,
                        consistency={"prefill": 0.01, "decode": 0.02})
    return CostModel.from_json(cm.fit.to_json() | {"extend": surface.as_dict()})


@pytest.mark.parametrize("n_in, n_out, cached", [(100, 1, 1), (100, 2, 50), (600, 50, 512), (1000, 20, 999)])
def test_a_cached_prefix_replaces_the_prefill_by_an_extend_pass(extended, n_in, n_out, cached):
    assert extended.has_extend
    passes = extended.extend(cached, n_in - cached) + sum(extended.decode(n_in + t - 1) for t in range(1, n_out))
    by_hand = _extend_by_hand(cached, n_in - cached) + sum(DECODE(n_in + t - 1) for t in range(1, n_out))
    assert extended.call(n_in, n_out, cached=cached) == pytest.approx(passes, rel=1e-12)
    assert passes == pytest.approx(by_hand, rel=1e-6)


def test_no_cached_prefix_is_the_call_without_one_exactly(extended, cm):
    n_in, n_out = np.array([[100], [1000]]), np.array([1, 10, 25])  # inside the measured lengths
    assert extended.call(100, 10, cached=0) == cm.call(100, 10)
    cached = np.array([[0], [900]])
    prices = extended.call(n_in, n_out, cached=cached)
    assert prices.shape == (2, 3)
    assert np.array_equal(prices[0], cm.call(100, n_out))  # exactly: the prefill curve, not the surface at c = 0
    assert prices[1] == pytest.approx([extended.call(1000, o, cached=900) for o in n_out], rel=1e-12)
    assert np.all(prices[1] < cm.call(1000, n_out))  # 900 tokens not computed again


def test_bad_cached_prefixes_are_refused(extended):
    for cached in (-1, 100, 150, 2.5, np.nan, np.array([0, -3])):
        with pytest.raises(ValueError, match="whole number of tokens from 0 to n_in - 1"):
            extended.call(100, 10, cached=cached)
    with pytest.raises(ValueError, match="latency_s with a KV cache"):
        extended.call(100, 10, cache=False, cached=10)
    with pytest.raises(ValueError, match="latency_s with a KV cache"):
        extended.call(100, 10, metric="flops", cached=10)
    for c, s in ((-1, 10), (10, 0)):
        with pytest.raises(ValueError, match="appends 1 or more"):
            extended.extend(c, s)


def test_a_fit_without_the_extend_surface_prices_no_cached_prefix(cm):
    assert not cm.has_extend and cm.call(100, 10, cached=0) == cm.call(100, 10)
    for ask in (lambda: cm.call(100, 10, cached=10), lambda: cm.extend(10, 10)):
        with pytest.raises(MissingCurve) as refused:
            ask()
        assert "\n" not in str(refused.value) and "no extend surface" in str(refused.value)
        assert "re-run `python -m profiler run`, then fit" in str(refused.value)


def test_a_cached_prefix_outside_the_measured_domain_is_flagged(extended):
    with pytest.warns(ExtrapolationWarning, match="outside the measured c <= 1024, s <= 1024, c \\+ s <= 1025"):
        extended.extend(2000, 1)
    with pytest.warns(ExtrapolationWarning, match="cached=1990"):
        extended.call(2000, 10, cached=1990)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extended.extend(np.array([0, 512, 1024]), np.array([1024, 513, 1])).shape == (3,)
        extended.call(np.array([1000, 100]), 10, cached=np.array([900, 0]))
