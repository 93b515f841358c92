import warnings

import numpy as np
import pytest

from profiler.costmodel.cost_model import ExtrapolationWarning
from profiler.costmodel.family import FamilyCostModel
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from tests.fitted import cost_model


def test_paper_primitive_prices_every_emitted_token_as_a_pass():
    n_in, n_out, m = 100, 7, 3.0
    explicit = sum(m * (n_in + t) for t in range(n_out))
    assert PaperPrimitive().price("qa", n_in, n_out, m) == pytest.approx(explicit)
    assert PaperPrimitive().price("qa", np.array([10, 20]), 1).tolist() == [10, 20]


def test_fitted_pricing_is_the_cost_models_call():
    base = cost_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        for cache in (True, False):
            pricing = FittedPricing(base, cache=cache)
            assert pricing.price("qa", 300, 20) == pytest.approx(base.call(300, 20, cache=cache))
    assert pricing.longest_measured("qa") == 1024


def test_a_role_with_its_own_cost_model():
    base, big = cost_model(), cost_model("big", scale=3.0)
    pricing = FittedPricing(base, role_models={"generalist": big})
    assert pricing.price("generalist", 300, 20, size=8) == pytest.approx(big.call(300, 20))
    assert pricing.price("specialist", 300, 20) == pytest.approx(base.call(300, 20))


def test_other_sizes_without_a_family_scale_linearly_and_say_so():
    base = cost_model()
    pricing = FittedPricing(base)
    assert pricing.price("generalist", 300, 20, size=np.array([1.0, 4.0])) == pytest.approx(
        [base.call(300, 20), 4 * base.call(300, 20)])
    (note,) = pricing.assumptions(resized=True)
    assert "linearity in m" in note and pricing.assumptions(resized=False) == []


def test_other_sizes_with_a_family_use_its_size_law():
    members = [cost_model("s", 0.5, 40e6), cost_model("base", 1.0, 85e6), cost_model("l", 2.5, 300e6)]
    family = FamilyCostModel(members)
    pricing = FittedPricing(members[1], family=family)
    sizes = np.array([1.0, 2.0, 2.0, 4.0])
    prices = pricing.price("generalist", 300, 20, size=sizes)
    assert prices[0] == pytest.approx(members[1].call(300, 20))
    assert prices[1] == prices[2] == pytest.approx(family.at_params(2 * 85e6).call(300, 20))
    assert prices[3] > prices[1] > prices[0]
    assert "size law of the family s, base, l" in pricing.assumptions(resized=True)[0]


def test_the_paper_primitive_batches_its_work_and_takes_one_calls_time():
    device, duration = PaperPrimitive().batch("qa", 100, 7, np.array([1, 4]), 3.0)
    one = PaperPrimitive().price("qa", 100, 7, 3.0)
    assert device.tolist() == [one, 4 * one] and duration.tolist() == [one, one]
    assert PaperPrimitive().max_batch("qa") == np.inf


def test_a_fitted_batch_is_the_cost_models_batched_call():
    base = cost_model(surfaces=True)
    pricing = FittedPricing(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        device, duration = pricing.batch("qa", 300, 20, np.array([1.0, 2.0, 8.0]))
        assert np.array_equal(device, duration)
        assert device[0] == pricing.price("qa", 300, 20)  # a batch of one is the call, exactly
        assert device[1:] == pytest.approx(base.call_batch(300, 20, np.array([2, 8])))
    assert 2 * device[0] > device[1] and device[2] < 8 * device[0]  # batching pays
    assert pricing.max_batch("qa") == base.max_batch == 8


def test_another_size_batches_as_the_base_model_does_and_says_so():
    members = [cost_model("s", 0.5, 40e6, surfaces=True), cost_model("base", 1.0, 85e6, surfaces=True),
               cost_model("l", 2.5, 300e6, surfaces=True)]
    from profiler.lba.schedule import Schedule

    for pricing in (FittedPricing(members[1]), FittedPricing(members[1], family=FamilyCostModel(members))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            sized, _ = pricing.batch("generalist", 300, 20, np.array([1.0, 4.0]), 4.0)
            base, _ = pricing.batch("generalist", 300, 20, np.array([1.0, 4.0]))
        assert sized[0] == pricing.price("generalist", 300, 20, 4.0)
        assert sized[1] / sized[0] == pytest.approx(base[1] / base[0])  # the base model's batch factor
        notes = pricing.assumptions(resized=True, schedule=Schedule("parallel", max_batch=16))
        assert any("batches as base does" in note for note in notes)
        assert any("beyond the 8 measured" in note for note in notes)
        assert pricing.assumptions(resized=False) == []


def test_a_parallel_schedule_says_at_which_lengths_batches_were_measured():
    """A batch is priced from surfaces measured at a few lengths above one sequence (a default run on a 2-core CPU:
    prompts of 8 tokens, contexts of 8 to 91); a batch of longer calls is their extrapolation, and the notes say so."""
    from profiler.lba.schedule import Schedule

    model = cost_model(surfaces=True)
    notes = FittedPricing(model).assumptions(resized=False, schedule=Schedule("parallel"))
    assert any("measured up to 8 sequences; more than one sequence measured only at prompts of 8 to 1,024 and "
               "contexts of 8 to 1,024 tokens" in note for note in notes)
    model.surfaces["prefill"].domain = np.array([[1, 8, 1024], [2, 8, 8], [8, 8, 8]])
    model.surfaces["decode"].domain = np.array([[1, 8, 1023], [2, 8, 91], [8, 8, 91]])
    notes = FittedPricing(model).assumptions(resized=False, schedule=Schedule("parallel"))
    assert any("only at prompts of 8 and contexts of 8 to 91 tokens: a batch of longer calls is extrapolated" in note
               for note in notes)
    assert FittedPricing(cost_model()).assumptions(resized=False, schedule=Schedule("parallel")) == [
        "the fit measured one sequence a pass, no batch: every call is a batch of its own"]


def test_batched_calls_have_a_kv_cache_and_are_timed():
    for pricing in (FittedPricing(cost_model(surfaces=True), cache=False),
                    FittedPricing(cost_model(surfaces=True), metric="flops")):
        with pytest.raises(ValueError, match="in latency with a KV cache"):
            pricing.batch("qa", 30, 2, 4)


# ---- a cached prefix (prefix reuse between calls) --------------------------------------------------------------

def test_the_paper_primitive_has_no_cache_to_reuse_and_says_so():
    from profiler.lba.prefix_cache import Reuse
    from profiler.lba.schedule import Schedule

    paper = PaperPrimitive()
    assert paper.price("qa", 100, 7, 3.0, cached=99) == paper.price("qa", 100, 7, 3.0)
    assert paper.price("qa", 100, 7, cached=np.array([0, 50])).tolist() == [paper.price("qa", 100, 7)] * 2
    (note,) = paper.assumptions(False, Schedule(reuse=Reuse()))
    assert "no cache" in note and paper.assumptions(False, Schedule()) == []


def test_a_cached_prefix_is_priced_by_the_cost_models_extend_pass():
    base, big = cost_model(extend=True), cost_model("big", scale=3.0, extend=True)
    pricing = FittedPricing(base, role_models={"generalist": big})
    cached = np.array([0, 1, 200, 299])
    assert pricing.price("qa", 300, 20, cached=cached) == pytest.approx(base.call(300, 20, cached=cached))
    assert pricing.price("generalist", 300, 20, size=8, cached=200) == pytest.approx(big.call(300, 20, cached=200))
    assert pricing.price("qa", 300, 20, cached=200) < pricing.price("qa", 300, 20)


def test_another_size_saves_what_the_base_model_saves():
    base = cost_model(extend=True)
    saved = base.call(300, 20, cached=250) / base.call(300, 20)  # the base model's cached over uncached time
    linear = FittedPricing(base)
    assert linear.price("generalist", 300, 20, size=np.array([1.0, 4.0]), cached=250) == pytest.approx(
        [base.call(300, 20, cached=250), 4 * base.call(300, 20) * saved])
    members = [cost_model("s", 0.5, 40e6, extend=True), base, cost_model("l", 2.5, 300e6, extend=True)]
    sized = FittedPricing(base, family=FamilyCostModel(members))
    assert sized.price("generalist", 300, 20, size=2.0, cached=250) == pytest.approx(
        sized.price("generalist", 300, 20, size=2.0) * saved)


def test_a_fit_without_the_extend_surface_prices_no_cached_prefix_but_every_call_without_one():
    from profiler.costmodel.cost_model import MissingCurve

    pricing = FittedPricing(cost_model())
    assert pricing.price("qa", 300, 20, cached=np.zeros(3)) == pytest.approx([cost_model().call(300, 20)] * 3)
    with pytest.raises(MissingCurve) as missing:
        pricing.price("qa", 300, 20, cached=5)
    assert "no extend surface" in str(missing.value)


def test_reuse_assumptions_say_how_a_cached_prefix_is_priced():
    from profiler.lba.prefix_cache import Reuse
    from profiler.lba.schedule import Schedule

    pricing = FittedPricing(cost_model(extend=True))
    extend, resized = pricing.assumptions(True, Schedule(reuse=Reuse()))[1:]
    assert "one extend pass of its other n_in - p tokens" in extend
    assert "saves what base saves" in resized
    assert not any("extend" in note for note in pricing.assumptions(True, Schedule()))
