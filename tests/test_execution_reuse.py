"""The backend reusing kept KV caches across calls: the cache it keeps holds exactly the conversation's tokens
(keys and values of a fresh prefill of the recorded ids, fp32, atol 1e-4), it realises the PrefixCache's hits,
a shared prefix is copied for another conversation and not consumed, what the PrefixCache evicts is dropped,
and models whose cache cannot be cut to a prefix are refused."""

import pytest
import torch
from transformers import Qwen2Config

from profiler.lba.calls import Call
from profiler.lba.execution import ModelBackend
from profiler.lba.held_caches import SegmentTokens
from profiler.lba.prefix_cache import PrefixCache, Reuse
from profiler.lba.schedule import Schedule
from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from tests.conftest import tiny_config

ATOL = 1e-4  # fp32: a cache grown over several passes against one prefill of the same ids (seen: at most 2e-7)


def _reusing(loaded, capacity_tokens=None, seed=0) -> ModelBackend:
    return ModelBackend(loaded, seed=seed, schedule=Schedule(reuse=Reuse(capacity_tokens)))


def _chat(system=6, code=10, turn=3, n_out=4, rounds=4) -> list[Call]:
    """One conversation of ``rounds`` calls: each reads everything before it (the system prompt, the code, every
    earlier answer and turn) and a new turn of ``turn`` tokens, and writes an answer of ``n_out``."""
    calls, segments = [], (("system", system), ("code", code))
    for i in range(rounds):
        segments += ((f"turn-{i}", turn),)
        n_in = sum(tokens for _, tokens in segments)
        calls.append(Call("chat", n_in, n_out, segments=segments, output=f"answer-{i}"))
        segments += ((f"answer-{i}", n_out),)
    return calls


def _ids(backend: ModelBackend, call: Call, emitted: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ids of ``call``'s segments, read independently of the backend: seeded input ids from a fresh
    ``SegmentTokens`` of the same seed, outputs as the backend emitted them."""
    fresh = SegmentTokens(backend.tokens.vocab, backend.max_positions, backend.tokens.seed)
    return torch.cat([emitted[name][:tokens] if name in emitted else fresh.input_ids(Call("x", tokens, 1, segments=(
        (name, tokens),))) for name, tokens in call.segments])


def _prefill_cache(loaded, ids: torch.Tensor):
    with torch.inference_mode():
        out = loaded.model(ids[None], use_cache=True)
    return out["cache"] if "cache" in out else out["past_key_values"]


def _assert_same_cache(cache, reference) -> None:
    assert cache.get_seq_length() == reference.get_seq_length()
    for layer, expected in zip(cache.layers, reference.layers):
        torch.testing.assert_close(layer.keys, expected.keys, atol=ATOL, rtol=0)
        torch.testing.assert_close(layer.values, expected.values, atol=ATOL, rtol=0)


def test_a_conversation_s_kept_cache_holds_exactly_its_tokens(tiny_loaded):
    calls = _chat()
    llm = _reusing(tiny_loaded)
    for call in calls:
        llm.group([call])
    # the PrefixCache's hits, realised on the real caches: 0, then everything but the new turn and the last answer
    # token (never fed back)
    expected = [0] + [calls[i - 1].n_in + calls[i - 1].n_out - 1 for i in range(1, len(calls))]
    assert [batch.cached for batch in llm.batches] == expected
    replayed = PrefixCache()
    assert [replayed.serve(call) for call in calls] == expected
    last = calls[-1]
    (kept,) = llm.held.sequences[("chat", 0)]  # one sequence: each call continued the one before, in place
    assert kept.cache is llm.last_cache and llm.last_cache.get_seq_length() == last.n_in + last.n_out - 1
    emitted = {name: ids for name, ids in llm.tokens.named.items() if name in llm.tokens.written}
    assert [len(emitted[f"answer-{i}"]) for i in range(len(calls))] == [last.n_out] * len(calls)
    conversation = torch.cat([_ids(llm, last, emitted), emitted[last.output][:-1]])
    assert torch.equal(kept.ids, conversation)
    _assert_same_cache(llm.last_cache, _prefill_cache(tiny_loaded, conversation))


def test_a_shared_system_prompt_is_copied_for_a_second_conversation_not_consumed(tiny_loaded):
    system = ("system", 8)
    first = Call("qa", 13, 3, segments=(system, ("question-a", 5)), output="answer-a")
    second = Call("qa", 12, 2, segments=(system, ("question-b", 4)), output="answer-b")
    follow_up = Call("qa", 20, 2, segments=(system, ("question-a", 5), ("answer-a", 3), ("question-a2", 4)))
    llm = _reusing(tiny_loaded)
    llm.group([first])
    (kept_first,) = llm.held.sequences[("qa", 0)]
    keys_before = [layer.keys.clone() for layer in kept_first.cache.layers]
    pointers = [layer.keys.data_ptr() for layer in kept_first.cache.layers]
    llm.group([second])
    assert llm.batches[-1].cached == 8  # the system prompt, copied from the first conversation's cache
    assert llm.held.tokens(("qa", 0)) == [13 + 3 - 1, 12 + 2 - 1]  # the first kept whole beside the second
    assert [layer.keys.data_ptr() for layer in kept_first.cache.layers] == pointers
    assert all(torch.equal(layer.keys, before) for layer, before in zip(kept_first.cache.layers, keys_before))
    second_kept = llm.held.sequences[("qa", 0)][1]
    assert second_kept.cache is not kept_first.cache
    for layer, other in zip(second_kept.cache.layers, kept_first.cache.layers):  # the copied prefix, bit for bit
        assert torch.equal(layer.keys[..., :8, :], other.keys[..., :8, :])
    _assert_same_cache(second_kept.cache, _prefill_cache(tiny_loaded, second_kept.ids))
    llm.group([follow_up])  # continues the first conversation exactly: its cache grown in place
    assert llm.batches[-1].cached == 13 + 3 - 1 and llm.last_cache is kept_first.cache
    _assert_same_cache(llm.last_cache, _prefill_cache(tiny_loaded, llm.held.sequences[("qa", 0)][-1].ids))


def test_what_the_prefix_cache_evicts_is_dropped(tiny_loaded):
    system = ("system", 8)
    first = Call("qa", 13, 3, segments=(system, ("question-a", 5)), output="answer-a")
    second = Call("qa", 12, 2, segments=(system, ("question-b", 4)), output="answer-b")
    # room for the system prompt and one conversation: the second evicts the first's question and answer
    llm = _reusing(tiny_loaded, capacity_tokens=8 + 5 + 2)
    llm.group([first])
    llm.group([second])
    assert llm.prefix_cache.held("qa") == {("system",): 8, ("system", "question-b"): 4, ("system", "question-b",
                                                                                           "answer-b"): 1}
    # the first conversation cut to the system prompt, which the second holds too: only the second is kept
    (kept,) = llm.held.sequences[("qa", 0)]
    assert len(kept.ids) == 8 + 4 + 1
    again = Call("qa", 16, 2, segments=(system, ("question-a", 5), ("answer-a", 3)))
    llm.group([again])
    assert llm.batches[-1].cached == 8  # the PrefixCache's hit: the system prompt only
    _assert_same_cache(llm.last_cache, _prefill_cache(tiny_loaded, llm.held.sequences[("qa", 0)][-1].ids))


def test_calls_of_different_models_keep_apart(tiny_loaded):
    segments = (("system", 6), ("input", 6))
    llm = _reusing(tiny_loaded)
    llm.group([Call("specialist", 12, 2, model=0, segments=segments), Call("specialist", 12, 2, model=1,
                                                                           segments=segments)])
    llm.group([Call("specialist", 12, 2, model=1, segments=segments)])
    assert [batch.cached for batch in llm.batches] == [0, 0, 11]  # at most n_in - 1: one token always computed


def test_outputs_are_written_once_and_inputs_are_seeded_by_name():
    tokens, again = SegmentTokens(256, 64, seed=3), SegmentTokens(256, 64, seed=3)
    call = Call("qa", 10, 1, segments=(("system", 4), ("code", 6)))
    assert torch.equal(tokens.input_ids(call), again.input_ids(call))
    shorter = Call("qa", 3, 1, segments=(("code", 3),))
    assert torch.equal(tokens.input_ids(shorter), tokens.input_ids(call)[4:7])  # a segment read in part: its start
    assert not torch.equal(SegmentTokens(256, 64, seed=4).input_ids(call), tokens.input_ids(call))
    tokens.write("answer", torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="'answer' was already written"):
        tokens.write("answer", torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="'code' was already read"):
        tokens.write("code", torch.tensor([1]))


def test_a_sliding_window_model_is_refused(tmp_path):
    settings = {key: value for key, value in tiny_config("qwen2").to_dict().items() if key != "layer_types"}
    config = Qwen2Config(**settings | {"use_sliding_window": True, "sliding_window": 16, "max_window_layers": 1})
    config.save_pretrained(tmp_path / "sliding")
    loaded = load_model(ModelSource("sliding", tmp_path / "sliding", "local"), torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="cache layer 1 is a DynamicSlidingWindowLayer"):
        _reusing(loaded)
    ModelBackend(loaded)("qa", 20, 2)  # without reuse it runs


def test_reuse_runs_sequentially_only(tiny_loaded):
    with pytest.raises(ValueError):
        ModelBackend(tiny_loaded, schedule=Schedule("parallel", max_batch=2, reuse=Reuse()))

