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
