"""How far a system prompt moves the break-even, with and without prefix reuse, priced by tests/fitted.py."""

import numpy as np
import pytest

from profiler.lba.breakeven import sweep
from profiler.lba.exercises import Debugging, KTask
from profiler.lba.pricing import FittedPricing
from profiler.lba.system_prompt import PROMPTS, system_prompt_breakevens
from tests.fitted import cost_model


@pytest.fixture(scope="module")
def pricing():
    return FittedPricing(cost_model(extend=True))  # 2,048 positions


def test_a_row_per_prompt_without_then_with_reuse_and_a_prompt_too_long_skipped(pricing):
    table = system_prompt_breakevens(KTask, pricing)
    assert [(row.system_prompt, row.reuse) for row in table.rows] == [(s, r) for s in PROMPTS for r in (False, True)]
    assert table.vary == "k" and table.default == 8 and "k" not in table.params
    plain = sweep(KTask, "k", list(KTask.main_values), KTask.defaults() | {"system_prompt": 200.0}, pricing)
    assert table.rows[2].breakeven == plain.breakeven and table.rows[2].values == tuple(KTask.main_values)
    skipped = table.rows[4:]  # 2,000 + 512 input tokens: more than 2,048 positions at every k
    assert all(row.values == () and row.breakeven is None and row.ratio_at_default is None for row in skipped)
    assert skipped[0].skipped == ("a 2,000-token system prompt: at every k from 1 to 32 a call needs more than the "
                                  "2,048 positions its model has")


def test_one_call_a_model_reuses_no_prompt_and_a_load_does(pricing):
    """At load 1 each k-task model makes one call: nothing is read twice. With 16 inputs the generalist and the
    delegator prefill the prompt once for all of them, each specialist once for its share: the prompt moves the
    break-even far less with reuse than without."""
    alone = system_prompt_breakevens(KTask, pricing, prompts=(200,)).rows
    assert alone[0].breakeven == alone[1].breakeven and alone[0].ratio_at_default == alone[1].ratio_at_default
    loaded = system_prompt_breakevens(KTask, pricing, prompts=(0, 200), fixed={"load": 16}).rows
    without, with_reuse = (loaded[2].breakeven - loaded[0].breakeven, loaded[3].breakeven - loaded[1].breakeven)
    assert loaded[0].breakeven == pytest.approx(loaded[1].breakeven)  # no prompt: nothing shared across inputs
    assert 0 < with_reuse < without / 5


def test_values_whose_calls_exceed_the_positions_are_left_out(pricing):
    small = FittedPricing(cost_model(max_positions=900, extend=True))
    (row, _) = system_prompt_breakevens(Debugging, small, prompts=(100,)).rows
    longest = Debugging.longest_context(Debugging.defaults() | {"system_prompt": 100.0,
                                                                "k": np.asarray(Debugging.main_values, dtype=float)})
    fits = np.all([positions <= 900 for positions in longest.values()], axis=0)
    assert row.values == tuple(np.asarray(Debugging.main_values, dtype=float)[fits]) and 0 < len(row.values) < 9
    assert row.ratio_at_default is None  # k = 8's chat is longer than 900 positions
