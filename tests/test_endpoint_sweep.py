"""The endpoint sweep's parts: the order of the lengths, each call's rows and the check of its usage, the server's
``/models``, and the sweep against a real server (``tests/serving.py``, one per module) on a fake clock, behind the
fault proxy (``tests/fault_proxy.py``) where a call must come back without usage."""

from __future__ import annotations

import csv
import random

import pytest

from profiler.errors import UserError
from profiler.measure.endpoint.address import Endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.rows import CallRows, ConcurrencyWriter, usage_mismatch
from profiler.measure.endpoint.streamed_call import StreamedCall
from profiler.measure.endpoint.sweep import (
    N_OUT,
    EndpointPlan,
    EndpointSweep,
    coverage_order,
    served_entry,
)
from profiler.measure.grid import default_lengths
from profiler.measure.samples import SampleWriter, read_samples
from tests.clock import FakeClock
from tests.fault_proxy import proxied
from tests.serving import free_port, served_model


def _call(prompt_tokens=10, max_tokens=4, completion_tokens=4, arrivals=(0.05, 0.06, 0.08, 0.09), e2e_s=0.1):
    return StreamedCall(max_tokens=max_tokens, chunk_arrivals_s=arrivals, e2e_s=e2e_s, prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens, cached_tokens=None, finish_reason="length", failures=())


def _rows(tmp_path, calls, flops_of=lambda phase, n_ctx, n_new: 1000 * n_ctx + n_new):
    with SampleWriter(tmp_path / "samples.csv") as writer:
        rows = CallRows(writer, "m", "endpoint-h-1", flops_of)
        for call in calls:
            rows.write(call)
    return rows, read_samples(tmp_path / "samples.csv", model="m", dtype="served")


@pytest.mark.parametrize("count", range(1, 30))
def test_coverage_order_spreads_every_prefix_over_the_lengths(count):
    lengths = list(range(10, 10 + count))
    order = coverage_order(lengths)
    assert sorted(order) == lengths  # each once
    assert order[:2] == ([lengths[-1], lengths[0]] if count > 1 else lengths)
    for taken in range(2, count + 1):  # no gap between those taken is over twice the narrowest possible
        positions = sorted(lengths.index(n) for n in order[:taken])
        widest = max(b - a for a, b in zip(positions, positions[1:]))
        assert widest <= 2 * -(-(count - 1) // (taken - 1))


def test_a_call_gives_prefill_one_mean_decode_and_generate_rows(tmp_path):
    call = _call(prompt_tokens=10, max_tokens=4, completion_tokens=4, arrivals=(0.05, 0.06, 0.08, 0.11), e2e_s=0.12)
    rows, samples = _rows(tmp_path, [call, _call(prompt_tokens=10, max_tokens=1, completion_tokens=1, arrivals=(0.03,),
                                                 e2e_s=0.04)])
    got = {row.phase: row for row in samples.itertuples()}
    assert set(got) == {"prefill", "decode", "generate", "forward"} and len(samples) == 4
    assert (got["prefill"].n_ctx, got["prefill"].n_new, got["prefill"].latency_s) == (10, 10, 0.05)
    # the three steps run on caches of 10, 11 and 12 tokens: their mean is the step at 11
    assert (got["decode"].n_ctx, got["decode"].n_new, got["decode"].n_cached) == (11, 1, 11)
    assert got["decode"].latency_s == pytest.approx((0.01 + 0.02 + 0.03) / 3)
    assert (got["generate"].n_ctx, got["generate"].n_new, got["generate"].latency_s) == (10, 4, 0.12)
    assert (got["forward"].n_ctx, got["forward"].n_new, got["forward"].latency_s) == (10, 10, 0.04)
    assert got["decode"].flops == 11_001 and got["generate"].flops == 10_004  # flops_of(phase, n_ctx, n_new)
    assert set(samples["device"]) == {"endpoint-h-1"} and set(samples["weights"]) == {"served"}
    assert samples[["peak_mem_bytes", "kv_cache_bytes"]].isna().all().all()
    assert rows.gaps_s == pytest.approx([0.01, 0.02, 0.03]) and rows.decode_rows_left_out == 0


def test_chunks_of_several_tokens_give_no_decode_row_and_repeats_count_per_point(tmp_path):
    bunched = _call(prompt_tokens=10, max_tokens=4, completion_tokens=4, arrivals=(0.05, 0.09))
    rows, samples = _rows(tmp_path, [bunched, _call(prompt_tokens=10), _call(prompt_tokens=12)])
    assert rows.decode_rows_left_out == 1
    assert list(samples[samples["phase"] == "decode"]["n_ctx"]) == [11, 13]
    assert list(samples[samples["phase"] == "prefill"]["repeat"]) == [0, 1, 0]


def test_unknown_flops_leave_the_cells_empty(tmp_path):
    _, samples = _rows(tmp_path, [_call()], flops_of=lambda phase, n_ctx, n_new: None)
    assert samples["flops"].isna().all()


@pytest.mark.parametrize("fields, forced, differs", [
    ({}, True, False),
    ({"prompt_tokens": 11}, True, True),  # the prompt counted otherwise
    ({"prompt_tokens": None}, True, True),  # no usage
    ({"completion_tokens": 3}, True, True),  # forced, yet it stopped early
    ({"completion_tokens": 3}, False, False),  # not forced: what it wrote
    ({"completion_tokens": 5}, False, True),  # more than asked
    ({"completion_tokens": None}, False, True),
])
def test_usage_is_checked_against_what_was_asked(fields, forced, differs):
    mismatch = usage_mismatch(_call(**fields), 10, forced, "sweep")
    assert (mismatch is not None) == differs
    if differs:
        assert mismatch.prompt_tokens_asked == 10 and mismatch.max_tokens == 4 and mismatch.forced == forced


def test_concurrency_rows_are_one_per_call(tmp_path):
    with ConcurrencyWriter(tmp_path / "concurrency.csv") as writer:
        writer.write(2, _call())
        writer.write(2, _call(max_tokens=1, completion_tokens=1, arrivals=(0.03,)))
    rows = list(csv.DictReader((tmp_path / "concurrency.csv").open()))
    assert [row["concurrency"] for row in rows] == ["2", "2"] and rows[1]["tpot_s"] == ""
    assert float(rows[0]["tpot_s"]) == pytest.approx((0.1 - 0.05) / 3) and rows[0]["chunks"] == "4"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.mark.slow
def test_models_lists_the_served_model_and_nothing_listening_is_one_line(served):
    assert served_entry(Endpoint(url=served.url, model=served.model)) == {"id": served.model}
    assert served_entry(Endpoint(url=served.url, model="not-served")) is None
    with pytest.raises(UserError, match="cannot reach the endpoint"):
        served_entry(Endpoint(url=f"http://127.0.0.1:{free_port()}/v1", model="m"))


class Stepping(FakeClock):
    """A fake clock that moves by ``step_s`` at each reading: the sweep's deadlines fall after a known number of
    readings, whatever the machine's load."""

    def __init__(self, step_s: float):
        super().__init__()
        self.step_s = step_s

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s


def _sweep(tmp_path, url: str, model: str, plan: EndpointPlan, clock, say=lambda line: None):
    with (SampleWriter(tmp_path / "samples.csv") as writer, ConcurrencyWriter(tmp_path / "concurrency.csv") as load,
          EndpointClient(Endpoint(url=url, model=model)) as client):
        rows = CallRows(writer, "served", "endpoint", lambda phase, n_ctx, n_new: None)
        outcome = EndpointSweep(client, rows, load, plan, clock=clock, say=say).run()
    return outcome, rows, read_samples(tmp_path / "samples.csv")


@pytest.fixture
def short(monkeypatch):
    """At most one round of the length sweep and of each concurrency level: a test's calls are bounded."""
    monkeypatch.setattr("profiler.measure.endpoint.sweep.MAX_ROUNDS", 1)
    monkeypatch.setattr("profiler.measure.endpoint.sweep.MAX_LOAD_ROUNDS", 1)


@pytest.mark.slow
def test_a_sweep_ended_by_its_deadline_covers_the_range_first(tmp_path, served, short):
    lengths = [8, 11, 16, 23, 32, 45, 64]
    # the sweep reads its clock once before each call: the deadline (0.65 of 20 readings from the first) ends the
    # length sweep after 12 calls, 6 lengths in the coverage order
    outcome, rows, samples = _sweep(tmp_path, served.url, served.model,
                                    EndpointPlan(lengths, budget_s=20.0, concurrency_levels=[1]), Stepping(1.0))
    assert outcome.stopped is None and not outcome.interrupted and not outcome.mismatches
    assert outcome.calls == 12 == 2 * len(outcome.lengths)
    assert outcome.lengths == sorted(coverage_order(lengths)[:6])
    assert outcome.skipped == [{"n_ctx": n, "reason": "time budget"} for n in lengths if n not in outcome.lengths]
    per_phase = samples.groupby("phase")["n_ctx"].apply(sorted).to_dict()
    assert per_phase["prefill"] == per_phase["forward"] == outcome.lengths  # one call of each kind a length
    # 16 tokens out: 15 steps, mean at n + 7; none for a call whose server sent two tokens in one chunk (counted)
    assert set(n - 7 for n in per_phase["decode"]) <= set(outcome.lengths)
    assert len(per_phase["decode"]) + rows.decode_rows_left_out == 6
    assert set(samples[samples["phase"] == "generate"]["n_new"]) == {N_OUT}
    assert len(rows.gaps_s) == len(per_phase["decode"]) * (N_OUT - 1)


@pytest.mark.slow
def test_a_budget_spent_on_one_call_leaves_no_probe_and_no_load(tmp_path, served):
    outcome, rows, samples = _sweep(tmp_path, served.url, served.model,
                                    EndpointPlan([8, 16, 32], budget_s=2.0, concurrency_levels=[1]), Stepping(1.0))
    decode = set() if rows.decode_rows_left_out else {"decode"}  # none where two tokens shared a chunk
    assert outcome.calls == 1 and outcome.lengths == [32] and set(samples["phase"]) == {"prefill", "generate"} | decode
    assert outcome.prefix_probe is None and "no one-token call measured at 32" in outcome.prefix_probe_skipped
    assert outcome.concurrency == [] and "no call of 16 tokens" in outcome.concurrency_skipped


@pytest.mark.slow
def test_a_sweep_with_time_left_runs_the_probe_and_the_load_at_the_middle_length(tmp_path, served, short):
    plan = EndpointPlan([8, 16, 32], budget_s=1e6, concurrency_levels=[1, 2])
    outcome, rows, samples = _sweep(tmp_path, served.url, served.model, plan, Stepping(1.0))
    assert outcome.stopped is None and outcome.calls == 6  # one round: the rounds' limit, not the deadline
    assert outcome.prefix_probe.n_prefix == 32 and outcome.prefix_probe_skipped is None
    assert outcome.prefix_probe.verdict == "no reuse seen"  # transformers serve keeps no prefix cache
    assert [level.concurrency for level in outcome.concurrency] == [1, 2] and outcome.concurrency_n_in == 16
    assert outcome.concurrency_rounds == 1 and outcome.concurrency_skipped is None
    load = list(csv.DictReader((tmp_path / "concurrency.csv").open()))
    assert sorted(row["concurrency"] for row in load) == ["1", "2", "2"]
    assert {(row["prompt_tokens"], row["completion_tokens"]) for row in load} == {("16", str(N_OUT))}
    # the probe and the load write no sample; a call whose chunks were fewer than its tokens no decode row
    assert len(samples) + rows.decode_rows_left_out == 3 * 4


@pytest.mark.slow
def test_a_call_without_usage_is_listed_and_written_nowhere(tmp_path, served, short):
    with proxied(served.url.removesuffix("/v1")) as proxy:
        def say(line: str) -> None:  # after calibration: the sweep's first call comes back without usage
            if line.startswith("calibrated"):
                proxy.plan(["nousage"])

        outcome, _, samples = _sweep(tmp_path, f"{proxy.url}/v1", served.model,
                                     EndpointPlan([8, 16, 32], budget_s=1e6, concurrency_levels=[1]),
                                     Stepping(1.0), say)
    assert len(outcome.mismatches) == 1
    mismatch = outcome.mismatches[0]
    assert (mismatch.part, mismatch.prompt_tokens_asked, mismatch.prompt_tokens, mismatch.max_tokens) == (
        "sweep", 32, None, N_OUT)  # the first call: the longest length, 16 tokens out
    assert outcome.calls == 6 and outcome.lengths == [8, 16, 32]
    assert set(samples[samples["n_ctx"] == 32]["phase"]) == {"forward"}  # its one-token call only


def test_the_default_grid_leaves_room_for_the_output():
    lengths = default_lengths(512 - N_OUT)
    assert lengths[-1] + N_OUT == 512 and lengths[0] == 8
    assert random.Random(0).sample(lengths, 3)  # the rounds after the first are shuffled from these
