import pandas as pd
import pytest

from profiler.measure.summary import pass_bytes, point_table, roofline_latency_s

CEILINGS = {"peak_matmul_flops_per_s": 1e9, "memory_bandwidth_bytes_per_s": 1e8}


def test_roofline_is_the_slower_of_compute_and_memory():
    assert roofline_latency_s(2e9, 1e6, CEILINGS) == pytest.approx(2.0)  # compute bound
    assert roofline_latency_s(1e6, 5e8, CEILINGS) == pytest.approx(5.0)  # memory bound


def test_bytes_moved_per_phase():
    weights, per_token = 400_000, 1_000
    cache = lambda tokens: tokens * per_token
    assert pass_bytes("prefill", 100, 100, weights, cache) == weights + 100 * per_token
    assert pass_bytes("forward", 100, 100, weights, cache) == weights
    assert pass_bytes("decode", 100, 1, weights, cache) == weights + 101 * per_token
    # generate 3 tokens after 10: prefill writes 10; steps read 10 and 11 and write one each
    assert pass_bytes("generate", 10, 3, weights, cache) == 3 * weights + (10 + 2 + 21) * per_token


def test_a_sliding_window_caps_the_cache_bytes_read():
    """One layer of a window of 8 (its cache keeps 7 tokens) and one full layer, 1,000 bytes a token each."""
    weights = 400_000
    cache = lambda tokens: 1_000 * (min(tokens, 7) + tokens)
    assert pass_bytes("prefill", 100, 100, weights, cache) == weights + 107_000
    assert pass_bytes("decode", 100, 1, weights, cache) == weights + 107_000 + 2_000  # read 7 + 100, write 1 + 1
    assert pass_bytes("decode", 3, 1, weights, cache) == weights + 6_000 + 2_000


def test_point_table_derives_medians_rates_and_flags():
    rows = []
    for repeat, latency in enumerate([0.10, 0.11, 0.09, 0.10, 0.10]):
        rows.append({"phase": "prefill", "n_ctx": 64, "n_new": 64, "repeat": repeat, "latency_s": latency,
                     "flops": 1e8, "peak_mem_bytes": 1000 + repeat, "kv_cache_bytes": 64_000})
    for repeat, latency in enumerate([0.01, 0.02, 0.01]):
        rows.append({"phase": "decode", "n_ctx": 64, "n_new": 1, "repeat": repeat, "latency_s": latency,
                     "flops": 1e6, "peak_mem_bytes": 900, "kv_cache_bytes": 65_000})
    table = point_table(pd.DataFrame(rows), 400_000, lambda tokens: 1_000 * tokens, CEILINGS).set_index("phase")
    prefill, decode = table.loc["prefill"], table.loc["decode"]
    assert (prefill.repeats, prefill.median_latency_s, prefill.peak_mem_bytes) == (5, 0.10, 1004)
    assert prefill.tokens_per_s == pytest.approx(640) and prefill.flops_per_s == pytest.approx(1e9)
    assert prefill.roofline_share == pytest.approx(max(0.1, 464_000 / 1e8) / 0.10)
    assert not prefill.unstable and decode.unstable
    assert list(table.index) == ["prefill", "decode"]


def test_a_batch_is_a_point_of_its_own_reading_the_weights_once_and_every_cache():
    weights, cache = 400_000, (lambda tokens: 1_000 * tokens)
    assert pass_bytes("decode", 100, 1, weights, cache, batch=4) == weights + 4 * 101_000
    assert pass_bytes("prefill", 100, 100, weights, cache, batch=4) == weights + 4 * 100_000
    rows = [{"phase": "decode", "batch": batch, "n_ctx": 64, "n_new": 1, "repeat": repeat, "latency_s": latency_s,
             "flops": batch * 1e6, "peak_mem_bytes": 900, "kv_cache_bytes": batch * 65_000}
            for batch, latency_s in ((1, 0.010), (4, 0.020)) for repeat in range(3)]
    table = point_table(pd.DataFrame(rows), weights, cache, CEILINGS).set_index("batch")
    assert list(table.index) == [1, 4] and table.loc[4, "repeats"] == 3
    assert table.loc[4, "tokens_per_s"] == pytest.approx(4 / 0.020) and table.loc[1, "tokens_per_s"] == 100
    assert table.loc[4, "flops_per_s"] == pytest.approx(4e6 / 0.020)


def test_an_endpoints_points_have_no_roofline_flops_rate_or_memory():
    """An endpoint run: no ceilings (the server's devices are not seen), no FLOPs (no config here), no memory."""
    nan = float("nan")
    rows = [{"phase": "prefill", "n_ctx": 64, "n_new": 64, "repeat": repeat, "latency_s": latency, "flops": nan,
             "peak_mem_bytes": nan, "kv_cache_bytes": nan} for repeat, latency in enumerate([0.02, 0.03, 0.02])]
    (point,) = point_table(pd.DataFrame(rows)).to_dict("records")
    assert (point["median_latency_s"], point["tokens_per_s"]) == (0.02, pytest.approx(3200))
    assert [point[key] for key in ("flops_per_s", "roofline_share", "peak_mem_bytes", "kv_cache_bytes")] == [None] * 4
