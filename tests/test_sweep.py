import json
from collections import Counter

import pandas as pd
import pytest
import torch

from profiler.measure.catalog import ModelSource
from profiler.measure.flops import generate_flops, pass_flops
from profiler.measure.grid import default_lengths, generate_pairs
from profiler.measure.items import COUNTED_WARM_UPS
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.pilot import Pilot
from profiler.measure.plan import LONG_PASS_REPEATS, VISITS
from profiler.measure.samples import SampleWriter, read_samples
from profiler.measure.sweep import Sweep
from profiler.measure.timing import RepeatPolicy
from tests.clock import FakeClock, charge
from tests.conftest import TINY_MAX_POSITIONS
from tests.families import SLIDING_WINDOW, save_deepseek_v4, save_family

FAST = RepeatPolicy(min_repeats=3, max_repeats=5)

# The synthetic machine of the budget tests: about 1 ms per token and per decode step. Powers of two, so that
# every sum of costs is exact in floating point and the budget's decisions are exact too.
TOKEN_S = DECODE_STEP_S = 2.0**-10


def _prefill_s(n: int) -> float:
    return n * TOKEN_S


def _generate_s(n_in: int, n_out: int) -> float:
    return _prefill_s(n_in) + (n_out - 1) * DECODE_STEP_S


def _synthetic_machine(monkeypatch, slow_down=lambda: 1) -> FakeClock:
    """A fake clock that each pass moves by its synthetic cost: a prefill or a forward over ``n`` tokens
    ``_prefill_s(n)``, a decode step ``DECODE_STEP_S``, an extend of ``s`` tokens ``_prefill_s(s)``, a generate call
    ``_generate_s``; prefills take
    ``slow_down()`` times as long. The sweep's decisions are then the same on an idle and a busy machine."""
    clock = FakeClock()
    charge(monkeypatch, clock, "prefill", lambda n: slow_down() * _prefill_s(n))
    charge(monkeypatch, clock, "forward", _prefill_s)
    charge(monkeypatch, clock, "decode_step", lambda cache: DECODE_STEP_S)
    charge(monkeypatch, clock, "extend", lambda cache, s: _prefill_s(s))
    charge(monkeypatch, clock, "generate", _generate_s)
    return clock


def _sweep(loaded, path, lengths, budget_s=5.0, trim=False, **kwargs):
    with SampleWriter(path) as writer:
        outcome = Sweep(loaded, writer, lengths=lengths, trim_to_budget=trim, budget_s=budget_s,
                        policy=FAST, **kwargs).run()
    return outcome, read_samples(path)


def test_every_phase_is_measured_with_its_figures(tiny_loaded, tmp_path):
    arch = tiny_loaded.architecture
    kv_per_token = arch.kv_bytes_per_token(torch.float32)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 32, 128])
    assert outcome.lengths == [8, 32, 128] and not outcome.interrupted and outcome.out_of_memory is None
    assert outcome.generate_pairs == [(32, 16), (120, 8)]
    points = samples.groupby(["phase", "n_ctx", "n_new"])
    expected = {("prefill", n, n) for n in (8, 32, 128)} | {("forward", n, n) for n in (8, 32, 128)}
    expected |= {("decode", 8, 1), ("decode", 32, 1), ("decode", 127, 1)}  # at the maximum: one position free
    expected |= {("generate", 32, 16), ("generate", 120, 8)}
    # 16 and 64 tokens appended at the three contexts, the top lowered to end at the last position; a point the
    # extend grid's share of the budget left out (on a busy machine, from a slow pilot pass) is said
    extend = {("extend", c, s) for c, s in ((8, 16), (8, 64), (32, 16), (32, 64), (112, 16), (64, 64))}
    left_out = {("extend", skip["c"], skip["s"]) for skip in outcome.extend_skipped if skip["reason"] == "time budget"}
    assert set(points.groups) == expected | (extend - left_out) and left_out < extend
    assert points.size().min() >= FAST.min_repeats
    revisited = 0
    for (phase, n_ctx, n_new), group in points:
        row = group.iloc[0]
        assert list(group["repeat"]) == list(range(len(group)))
        assert (group["latency_s"] > 0).all()
        # peak memory read once, on the first visit (its rows, a prefix of the point's), the later visit's rows empty
        peaks = group["peak_mem_bytes"]
        read = int(peaks.notna().sum())
        assert read >= 1 and peaks.iloc[:read].notna().all() and (peaks.iloc[:read] == peaks.iloc[0]).all()
        assert peaks.iloc[0] > 0
        revisited += read < len(group)
        assert (group["n_cached"] == (n_ctx if phase in ("decode", "extend") else 0)).all()
        if phase == "generate":
            assert row.flops == generate_flops(arch, n_ctx, n_new)
            assert row.kv_cache_bytes == (n_ctx + n_new - 1) * kv_per_token
        else:
            assert row.flops == pass_flops(arch, n_new, n_ctx + (n_new if phase in ("decode", "extend") else 0))
            assert pd.isna(row.flops_counted) or row.flops_counted == pytest.approx(row.flops, rel=1e-3)  # test_flops
            tokens_after = {"prefill": n_ctx, "decode": n_ctx + 1, "extend": n_ctx + n_new, "forward": 0}[phase]
            assert (group.kv_cache_bytes == tokens_after * kv_per_token).all()
    assert revisited >= len(points) // 2  # the generate pairs are visited once
    assert not outcome.extend_out_of_memory
    _assert_counted_warm_ups(samples)


def _assert_counted_warm_ups(samples) -> None:
    """Every prefill length's FLOPs were counted (on its pilot pass), and the first ``COUNTED_WARM_UPS`` points' of
    each other phase and batch size (forward's at its shortest lengths, generate's never): the counter's cost is not
    paid at every point."""
    points = samples[samples.repeat == 0]
    for (phase, batch), group in points.groupby(["phase", "batch"]):
        counted = group.flops_counted.notna().sum()
        if phase == "generate":
            assert counted == 0
        elif phase == "prefill" and batch == 1:
            assert counted == len(group)
        elif phase == "forward":  # at the shortest lengths: a counted forward at the longest is a costly warm-up
            assert set(group[group.flops_counted.notna()].n_ctx) == set(sorted(group.n_ctx)[:COUNTED_WARM_UPS])
        else:
            assert counted == min(len(group), COUNTED_WARM_UPS), (phase, batch)


def _record_decode_contexts(monkeypatch) -> list[tuple]:
    """Every ``Passes.decode_step`` call's context as the cache holds it: its length and its tensors (every
    layer's keys and values, shape and bytes); the real step still runs."""
    original, seen = Passes.decode_step, []

    def recorded(self, cache, **kwargs):
        tensors = [t.contiguous() for layer in cache.layers for t in (layer.keys, layer.values)]
        seen.append((cache.get_seq_length(), tuple((tuple(t.shape), t.numpy().tobytes()) for t in tensors)))
        return original(self, cache, **kwargs)

    monkeypatch.setattr(Passes, "decode_step", recorded)
    return seen


@pytest.mark.parametrize("family", ["mistral", "gemma3_text"])
def test_sliding_window_decode_past_the_window_repeats_one_context(family, tmp_path, monkeypatch):
    """Windowed layers drop their oldest token on each step past the window (no ``Cache.crop`` back): each step
    still decodes at the same context, up to the model's last position (64 here: decode at 63)."""
    loaded = load_model(ModelSource(family, save_family(tmp_path / family, family, max_positions=64), "local"),
                        torch.device("cpu"), torch.float32)
    seen = _record_decode_contexts(monkeypatch)
    outcome, samples = _sweep(loaded, tmp_path / "s.csv", [16, 48, 64])
    assert outcome.lengths == [16, 48, 64] and outcome.out_of_memory is None
    decode = samples[samples.phase == "decode"]
    assert sorted(set(decode.n_ctx)) == [16, 48, 63] and decode.groupby("n_ctx").size().min() >= FAST.min_repeats
    for context, rows in decode.groupby("n_ctx"):
        at_context = [tensors for length, tensors in seen if length == context]
        # the pilot: an untimed step, then one timed, at the first length and at the last position
        pilot = 2 if context in (16, 63) else 0
        assert len(at_context) == pilot + VISITS + len(rows)  # a warm-up in each visit, every timed repeat
        assert len(set(at_context[pilot:])) == 1, context  # the same tokens, every time
        assert rows.kv_cache_bytes.nunique() == 1
    assert {length for length, _ in seen} == {16, 48, 63}
    assert len(samples[(samples.phase == "generate") & (samples.n_ctx > SLIDING_WINDOW)]) >= FAST.min_repeats


def test_a_single_length_at_the_last_position_pilots_and_measures_decode_one_short(tmp_path, monkeypatch):
    loaded = load_model(ModelSource("mistral", save_family(tmp_path / "m", "mistral", max_positions=48), "local"),
                        torch.device("cpu"), torch.float32)
    seen = _record_decode_contexts(monkeypatch)
    outcome, samples = _sweep(loaded, tmp_path / "s.csv", [48])
    assert outcome.lengths == [48] and set(samples[samples.phase == "decode"].n_ctx) == {47}
    assert {length for length, _ in seen} == {47}  # the pilot's steps too


@pytest.mark.slow
def test_windowed_and_eager_only_families_run_fit_and_report(tmp_path, monkeypatch):
    """``run`` end to end on Mistral (every layer windowed), Gemma-2 (eager attention only) and Gemma-3 (local and
    global layers), at contexts past their window of 32 (the machine's ceilings are not what is tested). The budget
    leaves room for a pilot pass slowed several times by other work (4 s dropped Gemma-3's 64 and 128 once, its
    pilot prefill of 16 taking 25 ms where its repeats took 3)."""
    from profiler.cli.main import main
    from profiler.measure.run_document import RunDocument
    from tests.user_error import skip_ceilings

    skip_ceilings(monkeypatch)

    for family in ("mistral", "gemma2", "gemma3_text"):
        folder = save_family(tmp_path / family, family, max_positions=128)
        assert main(["run", "--model", str(folder), "--lengths", "16,64,128", "--budget", "8",
                     "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]) == 0
        (run_folder,) = (tmp_path / "reports").glob(f"*/{family}")
        samples = read_samples(run_folder / "samples.csv")
        assert set(samples[samples.phase == "decode"].n_ctx) == {16, 64, 127}
        model = RunDocument.read(run_folder).model
        assert (model.attn_implementation, model.attn_fallback is not None) == (
            ("eager", True) if family == "gemma2" else ("sdpa", False))
        assert (run_folder / "report.md").exists() and list((tmp_path / "fits").glob(f"{family}--*.json"))
    report = next((tmp_path / "reports").glob("*/gemma2")) / "report.md"
    assert "eager (Gemma2ForCausalLM cannot run sdpa attention in transformers" in report.read_text()


def test_lengths_are_measured_in_shuffled_order(tiny_loaded, tmp_path):
    _, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [4, 8, 16, 32, 64, 128], seed=3)
    order = list(dict.fromkeys(samples[samples.phase == "prefill"]["n_ctx"]))
    assert sorted(order) == [4, 8, 16, 32, 64, 128] and order != sorted(order)


def test_interrupt_keeps_what_was_measured(tiny_loaded, tmp_path):
    calls = []

    def progress(description, done_s, total_s):
        calls.append(description)
        if len(calls) == 8:
            raise KeyboardInterrupt

    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32], progress=progress)
    assert outcome.interrupted
    # the items finished before Ctrl-C, and only they, are on disk (pilot and reference passes write no rows; how
    # many reference passes come first depends on how steady the machine is)
    finished = [label for label in calls[:-1] if not label.startswith(("pilot", "reference", "drift"))]
    assert finished and {f"{row.phase} n_ctx={row.n_ctx}" for row in samples.itertuples()} == {
        label.split(" n_new")[0].split(" batch")[0].removesuffix(" (again)") for label in finished}
    assert len(finished) <= len(samples) <= len(finished) * FAST.max_repeats


def _run_out_of_memory_from(monkeypatch, method, n_oom):
    original = getattr(Passes, method)

    def failing(self, n, *args, **kwargs):
        if n >= n_oom:
            raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               f"you tried to allocate {n} bytes")
        return original(self, n, *args, **kwargs)

    monkeypatch.setattr(Passes, method, failing)


def test_out_of_memory_in_the_pilot_stops_growing(tiny_loaded, tmp_path, monkeypatch):
    _run_out_of_memory_from(monkeypatch, "prefill", 64)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 64, 128])
    assert outcome.out_of_memory["phase"] == "prefill" and outcome.out_of_memory["n_ctx"] == 64
    assert outcome.lengths == [8, 16]
    assert {(s["n_ctx"], s.get("phase", "prefill"), s["reason"]) for s in outcome.skipped} == {
        (64, "prefill", "out of memory"), (128, "prefill", "out of memory"),
        (64, "decode", "out of memory"), (127, "decode", "out of memory")}  # what a prefill of 64 cannot hold
    assert set(samples[samples.phase == "forward"]["n_ctx"]) == {8, 16}


def test_out_of_memory_at_the_first_length_measures_nothing_and_says_so(tiny_loaded, tmp_path, monkeypatch):
    _run_out_of_memory_from(monkeypatch, "prefill", 1)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16])
    assert outcome.lengths == [] and outcome.generate_pairs == [] and samples.empty and outcome.drift is None
    assert {(s["n_ctx"], s["reason"]) for s in outcome.skipped} == {(8, "out of memory"), (16, "out of memory")}
    assert outcome.disturbance.reference_latencies_s == [] and outcome.disturbance.points == []


def test_out_of_memory_while_measuring_keeps_the_rest(tiny_loaded, tmp_path, monkeypatch):
    _run_out_of_memory_from(monkeypatch, "forward", 32)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 32, 64])
    assert outcome.out_of_memory["phase"] == "forward" and outcome.out_of_memory["n_ctx"] == 32
    assert set(samples[samples.phase == "forward"]["n_ctx"]) == {8}
    assert 8 in set(samples[samples.phase == "prefill"]["n_ctx"])
    assert not outcome.interrupted


def _trimmed_sweep(loaded, path, monkeypatch, budget_s):
    """A sweep of the default grid trimmed to ``budget_s`` on the synthetic machine."""
    outcome, _ = _sweep(loaded, path, default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s, trim=True,
                        clock=_synthetic_machine(monkeypatch))
    return outcome


# In fake time the budget's decisions do not depend on the architecture: one is enough.
@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_default_grid_is_trimmed_to_the_budget(tiny_loaded, tmp_path, monkeypatch):
    budget_s = 1.5
    outcome = _trimmed_sweep(tiny_loaded, tmp_path / "s.csv", monkeypatch, budget_s)
    grid = default_lengths(TINY_MAX_POSITIONS)  # 8, 11, 16, 23, 32, 45, 64, 91, 128
    assert 8 in outcome.lengths and 128 not in outcome.lengths
    assert outcome.lengths == sorted(outcome.lengths) and set(outcome.lengths) <= set(grid)
    # the range comes first: a length between two octaves only where the octave above is kept
    for n in set(outcome.lengths) - set(grid[::2]):
        assert grid[grid.index(n) + 1] in outcome.lengths
    prefill_skips = [s for s in outcome.skipped if s.get("phase", "prefill") == "prefill"]
    assert {s["n_ctx"] for s in prefill_skips} == set(grid) - set(outcome.lengths)
    assert {s["reason"] for s in outcome.skipped} == {"time budget"}
    assert outcome.generate_pairs == generate_pairs(outcome.lengths, TINY_MAX_POSITIONS)
    # every pass is started only when predicted to end within the budget: at most the last one overruns it
    assert outcome.elapsed_s <= budget_s + _prefill_s(max(outcome.lengths))


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_tight_budget_thins_the_grid_before_shortening_it(tiny_loaded, tmp_path, monkeypatch):
    # at about 1 ms per token, 4 s fits the octaves 8..128 but not every length between as well
    budget_s = 4.0
    outcome = _trimmed_sweep(tiny_loaded, tmp_path / "s.csv", monkeypatch, budget_s)
    grid = default_lengths(TINY_MAX_POSITIONS)
    assert set(grid[::2]) <= set(outcome.lengths)  # 8 .. 128, the whole range
    assert len(outcome.lengths) < len(grid)  # but not every length between
    assert outcome.elapsed_s <= budget_s + _prefill_s(128)


def test_drift_check_catches_a_machine_that_slowed_down(tiny_loaded, tmp_path, monkeypatch):
    slow = {"on": False}
    clock = _synthetic_machine(monkeypatch, slow_down=lambda: 4 if slow["on"] else 1)

    def progress(description, done_s, total_s):
        slow["on"] = description.startswith("drift check")  # 4x slower once the sweep is over

    outcome, _ = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32], progress=progress, clock=clock)
    drift = outcome.drift
    assert drift["phase"] == "prefill" and drift["n_ctx"] == 16
    assert drift["median_latency_s"] == _prefill_s(16) and drift["ratio"] == 4 and drift["drifted"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sweep_records_allocator_peaks(tmp_path):
    from profiler.measure.catalog import ModelSource
    from profiler.measure.loading import load_model
    from tests.conftest import save_tiny

    folder = save_tiny(tmp_path / "tiny", "llama")
    loaded = load_model(ModelSource("tiny", folder, "local"), torch.device("cuda"), torch.bfloat16)
    outcome, samples = _sweep(loaded, tmp_path / "s.csv", [8, 64])
    assert outcome.lengths == [8, 64] and set(samples.device) == {"cuda"} and set(samples.dtype) == {"bfloat16"}
    read = samples.dropna(subset=["peak_mem_bytes"])  # each point's on its first visit's rows
    points = ["phase", "n_ctx", "n_new"]
    assert set(read.groupby(points).groups) == set(samples.groupby(points).groups)
    assert (read.peak_mem_reserved_bytes >= read.peak_mem_bytes).all() and (read.peak_mem_bytes > 0).all()


BATCHES = [1, 2, 4]


def test_batch_points_are_measured_with_the_figures_of_the_whole_batch(tiny_loaded, tmp_path):
    """Prefill at the three lengths and decode at the three contexts, each at every batch size above 1: B times a
    sequence's FLOPs (counted too), B sequences' KV bytes; forward and generate of one sequence only; the points of
    one sequence as without batches."""
    arch = tiny_loaded.architecture
    kv_per_token = arch.kv_bytes_per_token(torch.float32)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 32, 128], budget_s=60.0, batch_sizes=BATCHES)
    assert outcome.lengths == [8, 32, 128] and not outcome.batch_skipped and not outcome.batch_out_of_memory
    points = samples.groupby(["phase", "batch", "n_ctx", "n_new"])
    expected = {("prefill", b, n, n) for n in (8, 32, 128) for b in BATCHES}
    expected |= {("decode", b, c, 1) for c in (8, 32, 127) for b in BATCHES}
    expected |= {("forward", 1, n, n) for n in (8, 32, 128)} | {("generate", 1, 32, 16), ("generate", 1, 120, 8)}
    assert {point for point in points.groups if point[0] != "extend"} == expected
    assert points.size().min() >= FAST.min_repeats
    for (phase, batch, n_ctx, n_new), group in points:
        if phase not in ("prefill", "decode"):
            continue
        row = group.iloc[0]
        assert row.flops == batch * pass_flops(arch, n_new, n_ctx + (n_new if phase == "decode" else 0))
        assert pd.isna(row.flops_counted) or row.flops_counted == pytest.approx(row.flops, rel=1e-3)
        tokens_after = n_ctx + (phase == "decode")
        assert (group.kv_cache_bytes == batch * tokens_after * kv_per_token).all()
    _assert_counted_warm_ups(samples)


def _batched_machine(monkeypatch) -> FakeClock:
    """The synthetic machine with batches: a prefill of B sequences of n tokens costs a prefill of B x n tokens, a
    decode step of B sequences DECODE_STEP_S and a quarter of it for each sequence after the first."""
    clock = FakeClock()
    charge(monkeypatch, clock, "prefill", lambda n, batch=1: _prefill_s(batch * n))
    charge(monkeypatch, clock, "forward", _prefill_s)
    charge(monkeypatch, clock, "decode_step", lambda cache, batch=1: DECODE_STEP_S * (1 + (batch - 1) / 4))
    charge(monkeypatch, clock, "extend", lambda cache, s: _prefill_s(s))
    charge(monkeypatch, clock, "generate", _generate_s)
    return clock


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_the_batch_grid_takes_its_share_of_a_tight_budget_its_costliest_points_left_out(tiny_loaded, tmp_path,
                                                                                        monkeypatch):
    """At about 1 ms a token, 15% of an 8 s budget holds a prefill of 2 and of 8 sequences at the shortest length,
    not the 8 x 128 tokens of a prefill of 8 at the top, and decode (a few ms a step) at every batch size and
    context: the costliest prefill points are left out, said with their predicted cost, and the run ends within
    its budget plus one pass."""
    from profiler.measure.plan import BATCH_SHARE

    budget_s = 8.0
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s,
                              trim=True, clock=_batched_machine(monkeypatch), batch_sizes=[1, 2, 8])
    assert outcome.elapsed_s <= budget_s + _prefill_s(8 * 128)
    batched = samples[samples.batch > 1]
    prefill, decode = batched[batched.phase == "prefill"], batched[batched.phase == "decode"]
    assert set(prefill.batch) == {2, 8} and min(prefill.n_ctx) == 8 and max(prefill.n_ctx) < 128
    assert set(zip(decode.batch, decode.n_ctx)) == {(b, c) for b in (2, 8) for c in (8, 32, 127)}
    # the batch rows took their share at most (the warm-ups and reference passes besides)
    assert batched.latency_s.sum() <= BATCH_SHARE * budget_s
    skipped = [s for s in outcome.batch_skipped if s["reason"] == "time budget"]
    assert {("prefill", 8, 128), ("prefill", 2, 128)} <= {(s["phase"], s["batch"], s["n_ctx"]) for s in skipped}
    for skip in skipped:
        assert skip["predicted_s"] > skip["pass_s"] > 0 and skip["budget_s"] == budget_s
    # the lengths of one sequence keep their range
    assert 8 in outcome.lengths and max(outcome.lengths) == TINY_MAX_POSITIONS


@pytest.mark.parametrize("tiny_kind", ["llama"])
@pytest.mark.parametrize("budget_s", [4.0, 4.5])
def test_batches_thin_the_lengths_but_never_shorten_their_range(tiny_loaded, tmp_path, monkeypatch, budget_s):
    """On budgets too tight for the whole grid, the batch points take the place of lengths between octaves, never of
    the range's top (budgets where lengths between fit beside the extend grid's share without batches: on 1 s, the
    range is all either holds)."""
    clock = _batched_machine(monkeypatch)
    grid = default_lengths(TINY_MAX_POSITIONS)
    alone, _ = _sweep(tiny_loaded, tmp_path / "a.csv", grid, budget_s=budget_s, trim=True, clock=clock, batch_sizes=[1])
    batched, samples = _sweep(tiny_loaded, tmp_path / "b.csv", grid, budget_s=budget_s, trim=True, clock=clock,
                              batch_sizes=[1, 2, 8])
    assert (samples.batch > 1).any() and len(batched.lengths) < len(alone.lengths)
    assert max(batched.lengths) == max(alone.lengths) and set(batched.lengths) <= set(alone.lengths)


def test_out_of_memory_at_a_batch_drops_larger_batches_there_and_beyond_and_nothing_else(tiny_loaded, tmp_path,
                                                                                          monkeypatch):
    original = Passes.prefill

    def failing(self, n, batch=1):
        if batch >= 4 and n >= 32:
            raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               f"you tried to allocate {batch * n} bytes")
        return original(self, n, batch=batch)

    monkeypatch.setattr(Passes, "prefill", failing)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 32, 128], budget_s=60.0, seed=1,
                              batch_sizes=BATCHES)
    assert outcome.out_of_memory is None and outcome.lengths == [8, 32, 128]  # one sequence: every length
    ooms = outcome.batch_out_of_memory
    assert ooms and all((o["phase"], o["batch"]) == ("prefill", 4) and o["n_ctx"] >= 32 for o in ooms)
    assert all("can't allocate memory" in o["error"] for o in ooms)
    # once out of memory at a length, the batch of 4 at longer lengths or contexts is dropped, not tried
    first = min(o["n_ctx"] for o in ooms)
    dropped = [s for s in outcome.batch_skipped if s["reason"] == "out of memory"]
    assert all(s["batch"] == 4 and s["n_ctx"] >= first for s in dropped)
    batched = samples[samples.batch == 4]
    assert not {(s["phase"], s["n_ctx"]) for s in dropped} & set(zip(batched.phase, batched.n_ctx))
    assert set(batched[batched.phase == "prefill"].n_ctx) == {8} and 8 in set(batched[batched.phase == "decode"].n_ctx)
    assert set(samples[(samples.batch == 2) & (samples.phase == "prefill")].n_ctx) == {8, 32, 128}


def test_a_sweep_of_batch_one_measures_no_batch(tiny_loaded, tmp_path):
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16], batch_sizes=[1])
    assert set(samples.batch) == {1} and not outcome.batch_skipped


def test_run_records_the_batch_sizes_asked_and_measured_and_points_per_batch(tmp_path, monkeypatch):
    """``run --batch 1,2``: run.json says the sizes asked and those measured, its points are per phase, batch and
    length (tokens/s of every sequence), and run.json of a run before batches reads as batch 1 only."""
    from profiler.cli.main import main
    from profiler.measure.run_document import RunDocument
    from tests.conftest import save_tiny
    from tests.user_error import skip_ceilings

    skip_ceilings(monkeypatch)  # two lengths: no fit, no report either
    tiny = save_tiny(tmp_path / "tiny", "gpt2")
    assert main(["run", "--model", str(tiny), "--lengths", "8,32", "--budget", "8", "--batch", "2,1",
                 "--out", str(tmp_path / "reports")]) == 0
    (folder,) = (tmp_path / "reports").glob("*/tiny")
    run = RunDocument.read(folder)
    assert run.asked.batch_sizes == [1, 2] and run.done.batch_sizes == [1, 2]
    assert not run.done.batch_skipped and not run.done.batch_out_of_memory
    points = {(p["phase"], p["batch"], p["n_ctx"]): p for p in run.points}
    assert {key for key in points if key[1] == 2} == {("prefill", 2, 8), ("prefill", 2, 32), ("decode", 2, 8),
                                                        ("decode", 2, 32)}
    batched, single = points[("decode", 2, 8)], points[("decode", 1, 8)]
    assert batched["tokens_per_s"] == pytest.approx(2 / batched["median_latency_s"])
    assert batched["kv_cache_bytes"] == 2 * single["kv_cache_bytes"]
    # the extend points at the two contexts: measured (points per s) or said
    extend = {(p["n_ctx"], p["n_new"]) for p in run.points if p["phase"] == "extend"}
    left_out = {(skip["c"], skip["s"]) for skip in run.done.extend_skipped}
    assert extend | left_out == {(8, 16), (8, 64), (32, 16), (32, 64)} and not run.done.extend_out_of_memory
    old = json.loads((folder / "run.json").read_text())
    del old["asked"]["batch_sizes"], old["done"]["batch_sizes"], old["done"]["batch_skipped"]
    del old["done"]["extend_skipped"], old["done"]["extend_out_of_memory"]
    (folder / "run.json").write_text(json.dumps(old))
    assert RunDocument.read(folder).done.batch_sizes == [1] and RunDocument.read(folder).asked.batch_sizes is None
    assert RunDocument.read(folder).done.extend_skipped == [] == RunDocument.read(folder).done.extend_out_of_memory


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_extend_points_beyond_their_share_are_said_with_their_predicted_cost(tiny_loaded, tmp_path, monkeypatch):
    """On the synthetic machine an extend of s tokens costs a prefill of s: 10% of a 4 s budget holds the 16-token
    appends at the three contexts, not a 64-token one (four passes of 64 ms, a warm-up and three repeats in one visit,
    its cache's fill besides): those are left out, each in extend_skipped with its predicted cost, and the extend rows
    take at most their share."""
    from profiler.measure.plan import EXTEND_SHARE

    budget_s = 4.0
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s,
                              trim=True, clock=_synthetic_machine(monkeypatch))
    assert outcome.elapsed_s <= budget_s + _prefill_s(TINY_MAX_POSITIONS)
    extend = samples[samples.phase == "extend"]
    assert set(zip(extend.n_ctx, extend.n_new)) == {(8, 16), (32, 16), (112, 16)}
    assert extend.latency_s.sum() <= EXTEND_SHARE * budget_s
    skipped = {(skip["c"], skip["s"]): skip for skip in outcome.extend_skipped}
    assert set(skipped) == {(8, 64), (32, 64), (64, 64)}
    for skip in skipped.values():
        assert skip["reason"] == "time budget" and skip["budget_s"] == budget_s
        assert skip["pass_s"] == _prefill_s(64) and skip["predicted_s"] >= 4 * skip["pass_s"]
    assert max(outcome.lengths) == TINY_MAX_POSITIONS  # the lengths keep their range


def test_out_of_memory_at_an_extend_point_drops_as_long_or_longer_and_nothing_else(tiny_loaded, tmp_path,
                                                                                    monkeypatch):
    original = Passes.extend

    def failing(self, cache, s):
        if s >= 64 and cache.get_seq_length() >= 32:
            raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               f"you tried to allocate {s} bytes")
        return original(self, cache, s)

    monkeypatch.setattr(Passes, "extend", failing)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 32, 128], budget_s=60.0, seed=1)
    assert outcome.out_of_memory is None and outcome.lengths == [8, 32, 128]  # the other grids: all of them
    ooms = outcome.extend_out_of_memory
    assert ooms and all("can't allocate memory" in oom["error"] for oom in ooms)
    dropped = {(skip["c"], skip["s"]) for skip in outcome.extend_skipped if skip["reason"] == "out of memory"}
    # the first to fail drops those with as long a cache and as many tokens or more; the other fails on its own
    assert {(oom["c"], oom["s"]) for oom in ooms} | dropped == {(32, 64), (64, 64)}
    assert not {(oom["c"], oom["s"]) for oom in ooms} & dropped
    extend = samples[samples.phase == "extend"]
    assert set(zip(extend.n_ctx, extend.n_new)) == {(8, 16), (8, 64), (32, 16), (112, 16)}


@pytest.mark.parametrize("tiny_kind", ["llama"])
@pytest.mark.parametrize("budget_s", [3.0, 6.0])
def test_the_extend_and_batch_grids_share_what_the_lengths_leave(tiny_loaded, tmp_path, monkeypatch, budget_s):
    """Where the range of lengths leaves less than both shares, the two grids share it in proportion to their
    shares: extend points are measured with batches as without (some of them, the cheapest), and batch points too."""
    clock = _batched_machine(monkeypatch)
    grid = default_lengths(TINY_MAX_POSITIONS)
    _, alone = _sweep(tiny_loaded, tmp_path / "a.csv", grid, budget_s=budget_s, trim=True, clock=clock, batch_sizes=[1])
    _, batched = _sweep(tiny_loaded, tmp_path / "b.csv", grid, budget_s=budget_s, trim=True, clock=clock,
                        batch_sizes=[1, 2, 8])
    extend_points = [set(zip(rows.n_ctx, rows.n_new)) for rows in (alone[alone.phase == "extend"],
                                                                   batched[batched.phase == "extend"])]
    assert extend_points[1] and extend_points[1] <= extend_points[0] and (batched.batch > 1).any()
    assert min(s for _, s in extend_points[1]) == 16  # the shortest append kept


@pytest.mark.parametrize("tiny_kind", ["llama"])
@pytest.mark.parametrize("budget_s", [1.0, 1.5])
def test_the_extend_core_is_measured_when_the_lengths_leave_nothing(tiny_loaded, tmp_path, monkeypatch, budget_s):
    """A budget the range of lengths nearly fills: the shortest append at the two shortest contexts (the core, planned
    with the lengths) is still measured, so the run fits an extend surface; the rest of the grid is said."""
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s,
                              trim=True, clock=_synthetic_machine(monkeypatch))
    extend = samples[samples.phase == "extend"]
    core = sorted({(c, s) for c, s in zip(extend.n_ctx, extend.n_new)})[:2]
    assert [s for _, s in core] == [16, 16] and core[0][0] < core[1][0]
    assert outcome.extend_skipped and all(skip["reason"] == "time budget" for skip in outcome.extend_skipped)


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_points_repeats_come_in_three_visits_far_apart_and_a_long_pass_in_one(tiny_loaded, tmp_path, monkeypatch):
    """On 5 s at about 1 ms a token, with explicit lengths (the pilot chooses no visits), a pass over 50 ms (1% of the
    budget: prefill and forward at 64 and 128) is visited once, every other point three times: the points visited
    three times begun before those visited once (so their later visits fall due among the long passes), a point's
    visits never back to back, its repeats numbered on across its visits, at least its minimum in all. An extend or
    batch point the plan left out that the time left after the generate pairs holds (``Sweep._bring_back``) comes
    last, in one visit."""
    _, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32, 64, 128], clock=_synthetic_machine(monkeypatch))
    after_pairs = samples.iloc[(samples.phase == "generate").to_numpy().nonzero()[0][-1] + 1:]
    assert all((after_pairs.phase == "extend") | (after_pairs.batch > 1))
    for _, rows in after_pairs.groupby(["phase", "batch", "n_ctx", "n_new"]):
        assert list(rows.repeat) == list(range(len(rows))) and len(rows) >= FAST.min_repeats
    timed = samples[(samples.phase != "generate") & ~samples.index.isin(after_pairs.index)]
    # a visit: a run of rows of one point (a length's prefill and forward rows are one visit each, one after the other)
    runs = (timed[["phase", "batch", "n_ctx", "n_new"]] != timed[["phase", "batch", "n_ctx", "n_new"]].shift()).any(
        axis=1).cumsum()
    visits = [tuple(rows.iloc[0][["phase", "n_ctx", "n_new"]]) for _, rows in timed.groupby(runs)]
    count = Counter(visits)
    once = {point for point in count if count[point] == 1}
    assert set(count.values()) == {1, 3}
    assert {point for point in once if point[0] != "decode"} == {(phase, n, n) for phase in ("prefill", "forward")
                                                                for n in (64, 128)}
    first_long = min(visits.index(point) for point in once)
    assert all(visits.index(point) < first_long for point in count if point not in once)
    for point in count:
        if point not in once:
            rows = samples[(samples.phase == point[0]) & (samples.n_ctx == point[1]) & (samples.n_new == point[2])]
            assert list(rows.repeat) == list(range(len(rows))) and len(rows) >= FAST.min_repeats


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_larger_budget_never_shortens_the_range(tiny_loaded, tmp_path, monkeypatch):
    """A pass costing just over ``LONG_PASS_SHARE`` of the budget is repeated twice, just under it three times: at about
    1 ms a token, 128 tokens fit 2.25 s as a long pass, and on 2.5 s its pilot put it under the share. Its pilot pass
    spent, it is kept at a long pass's repeats where only that fits (it was dropped, and 2.5 s measured up to 64)."""
    reached = {}
    for budget_s in (2.25, 2.5, 2.75):
        outcome, samples = _sweep(tiny_loaded, tmp_path / f"{budget_s}.csv", default_lengths(TINY_MAX_POSITIONS),
                                  budget_s=budget_s, trim=True, clock=_synthetic_machine(monkeypatch))
        reached[budget_s] = max(outcome.lengths)
        prefill = samples[samples.phase == "prefill"]
        assert len(prefill[prefill.n_ctx == max(outcome.lengths)]) >= LONG_PASS_REPEATS
    assert reached == {2.25: 128, 2.5: 128, 2.75: 128}


@pytest.mark.parametrize("tiny_kind", ["llama"])
@pytest.mark.parametrize("budget_s, visits", [(2.25, 1), (2.375, 2), (2.5, 3)])
def test_later_visits_thin_the_lengths_between_but_never_shorten_the_range(tiny_loaded, tmp_path, monkeypatch,
                                                                           budget_s, visits):
    """The default grid's range is planned at one visit a point, then the visits are chosen (``Pilot._choose_visits``):
    where the range no longer fits with later visits (2.25 s at about 1 ms a token), one a point, the range kept; where
    it fits with a second visit but not a third (2.375 s), two; where it fits with both (2.5 s), three."""
    chosen, choose = [], Pilot._choose_visits
    monkeypatch.setattr(Pilot, "_choose_visits", lambda self, kept, started: choose(self, kept, started)
                        or chosen.append(self.plan.most_visits))
    _, samples = _sweep(tiny_loaded, tmp_path / "s.csv", default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s,
                        trim=True, clock=_synthetic_machine(monkeypatch))
    prefill = samples[samples.phase == "prefill"]
    assert set(default_lengths(TINY_MAX_POSITIONS)[::2]) <= set(prefill.n_ctx)
    assert chosen == [visits]


def test_a_model_whose_cache_cannot_be_filled_measures_decode_on_prefilled_caches_and_says_so(tiny_loaded, tmp_path):
    """DeepSeek-V4's compressed cache layers: decode and extend run on caches built by real prefills (priced by the
    pilot as the fills), up to the model's last position, and the outcome says why; a model whose cache is filled
    says nothing."""
    folder = save_deepseek_v4(tmp_path / "deepseek-v4")
    loaded = load_model(ModelSource("deepseek-v4", folder, "local"), torch.device("cpu"), torch.float32)
    outcome, samples = _sweep(loaded, tmp_path / "s.csv", [8, 32, 128], budget_s=20.0)
    assert outcome.caches_prefilled == "cache layer 0 is a DeepseekV4HCACache, which a fill cannot grow"
    assert {8, 127} <= set(samples.loc[samples["phase"] == "decode", "n_ctx"])
    assert _sweep(tiny_loaded, tmp_path / "t.csv", [8, 32])[0].caches_prefilled is None
