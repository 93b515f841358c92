"""The prefix cache: hand-made call sequences whose cached prefixes, holdings and evictions are worked out by
hand in each test's comments."""

import pytest

from profiler.lba.calls import Call
from profiler.lba.prefix_cache import PrefixCache, Reuse

SYSTEM = ("system", 100)


def qa(n_in, n_out, *segments, output="", model=0):
    return Call("qa", n_in, n_out, model=model, segments=tuple(segments), output=output)


def test_a_shared_system_prompt_is_computed_once_per_model():
    cache = PrefixCache()
    assert cache.serve(qa(130, 5, SYSTEM, ("x1", 30))) == 0  # nothing cached yet
    assert cache.serve(qa(140, 5, SYSTEM, ("x2", 40))) == 100  # the system prompt, then its own input
    assert cache.serve(qa(140, 5, SYSTEM, ("x2", 40), model=1)) == 0  # another model of the role: its own cache
    assert cache.serve(Call("developer", 130, 5, segments=(SYSTEM,))) == 0  # another role: its own cache
    assert cache.held("qa") == {("system",): 100, ("system", "x1"): 30, ("system", "x2"): 40}
    assert cache.tokens_held == 100 + 30 + 40 + 140 + 100


def test_an_output_is_cached_less_its_last_token_and_read_partly_then_whole():
    cache = PrefixCache()
    assert cache.serve(qa(120, 10, SYSTEM, ("code", 20), output="report1")) == 0
    assert cache.held("qa")[("system", "code", "report1")] == 9  # the last token written is never fed back
    # the next round reads the history and the report whole: 9 of its 10 tokens are cached, the match ends there
    chat = qa(170, 10, SYSTEM, ("code", 20), ("report1", 10), ("rewrite1", 40), output="report2")
    assert cache.serve(chat) == 120 + 9
    held = cache.held("qa")
    assert held[("system", "code", "report1")] == 10  # grown to what the call computed
    assert held[("system", "code", "report1", "rewrite1")] == 40
    assert held[("system", "code", "report1", "rewrite1", "report2")] == 9
    assert cache.serve(chat) == 169  # everything: at most n_in - 1, one token is always computed


def test_a_call_reading_the_start_of_a_segment_counts_that_start_and_adds_nothing_past_it():
    cache = PrefixCache()
    cache.serve(qa(150, 1, ("x", 100), ("tail", 50)))
    assert cache.serve(qa(60, 1, ("x", 40), ("other", 20))) == 40
    assert cache.held("qa") == {("x",): 100, ("x", "tail"): 50}  # its x is a start of the held one: kept as is


def test_an_unnamed_rest_of_the_input_is_not_cached_nor_is_the_output_after_it():
    cache = PrefixCache()
    assert cache.serve(qa(150, 20, SYSTEM, output="answer")) == 0  # 50 tokens of its own, then its answer
    assert cache.held("qa") == {("system",): 100}
    assert cache.serve(qa(170, 5, SYSTEM, ("answer", 20), ("more", 50))) == 100  # the answer cannot be found
    assert cache.serve(qa(100, 5, SYSTEM)) == 99  # the whole input named and held: n_in - 1


def test_a_miss_then_the_path_is_added_and_found_next_time():
    cache = PrefixCache()
    assert cache.serve(qa(60, 3, ("a", 10), ("b", 20), ("c", 30))) == 0
    assert cache.serve(qa(40, 3, ("a", 10), ("d", 30))) == 10  # a found, d not
    assert cache.serve(qa(70, 3, ("a", 10), ("b", 20), ("c", 30), ("e", 10))) == 60
    assert cache.held("qa") == {("a",): 10, ("a", "b"): 20, ("a", "b", "c"): 30, ("a", "b", "c", "e"): 10,
                                ("a", "d"): 30}


def test_least_recently_used_leaves_are_evicted_while_over_capacity():
    cache = PrefixCache(capacity_tokens=100)
    cache.serve(qa(50, 1, ("s", 20), ("x", 30)))  # held: s 20, x 30 = 50
    cache.serve(qa(40, 1, ("s", 20), ("y", 20)))  # + y 20 = 70
    cache.serve(qa(30, 1, ("z", 30)))  # + z 30 = 100: at capacity, nothing evicted
    assert cache.tokens_held == 100
    # + w 25 = 125: the least recently used leaf is x (y and s were touched after it), 30: 95
    assert cache.serve(qa(45, 1, ("s", 20), ("w", 25))) == 20
    assert cache.held("qa") == {("s",): 20, ("s", "y"): 20, ("z",): 30, ("s", "w"): 25}
    assert cache.tokens_held == 95
    # + v 40 = 135: y (20) goes, 115, then z (30), 85; s stays (touched by this call)
    assert cache.serve(qa(60, 1, ("s", 20), ("v", 40))) == 20
    assert cache.held("qa") == {("s",): 20, ("s", "w"): 25, ("s", "v"): 40}
    assert cache.serve(qa(50, 1, ("s", 20), ("x", 30))) == 20  # x was evicted


def test_eviction_spans_models_and_a_parent_left_without_continuations_is_a_leaf():
    cache = PrefixCache(capacity_tokens=40)
    cache.serve(qa(30, 1, ("a", 10), ("b", 20)))  # qa: a 10, b 20
    cache.serve(qa(5, 1, ("c", 5), model=1))  # qa model 1: c 5 = 35
    cache.serve(Call("developer", 30, 1, segments=(("d", 30),)))  # 65: b goes (45), then a, a leaf now (35)
    assert cache.held("qa") == {} and cache.held("qa", 1) == {("c",): 5}
    assert cache.held("developer") == {("d",): 30} and cache.tokens_held == 35


def test_a_capacity_smaller_than_one_call_keeps_what_fits_of_its_path():
    cache = PrefixCache(capacity_tokens=50)
    cache.serve(qa(20, 1, ("old", 20)))
    # the call's path: s 40, x 80 (140 held): old goes first (least recently used), then x; s fits
    assert cache.serve(qa(120, 1, ("s", 40), ("x", 80))) == 0
    assert cache.held("qa") == {("s",): 40}
    assert cache.serve(qa(120, 1, ("s", 40), ("x", 80))) == 40
    cache = PrefixCache(capacity_tokens=10)
    cache.serve(qa(40, 1, ("s", 40)))
    assert cache.tokens_held == 0 and cache.serve(qa(40, 1, ("s", 40))) == 0  # never fits: computed every time


def test_capacity_is_a_whole_number_of_tokens():
    for capacity in (0, -1, 1.5, True, "100"):
        with pytest.raises(ValueError):
            PrefixCache(capacity)
        with pytest.raises(ValueError):
            Reuse(capacity)
    assert Reuse.from_json(Reuse(4096).to_json()) == Reuse(4096)
    assert "4,096 tokens" in Reuse(4096).describe() and "without a limit" in Reuse().describe()
