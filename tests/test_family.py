import numpy as np
import pytest

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.family import FamilyCostModel, PowerLaw
from profiler.costmodel.fit import fit_curve

N = np.repeat([8, 16, 32, 64, 128, 256, 512, 1024], 2).astype(float)
SIZES = {"small": (40e6, 6, 768), "base": (85e6, 12, 768), "medium": (300e6, 24, 1024), "large": (700e6, 36, 1280)}
# the truth: overhead ~ m^0.3, per-token ~ m^0.9, quadratic ~ m^0.5
LAWS = {"a": (0.01, 0.3), "b": (1e-3, 0.9), "c": (2e-7, 0.5)}


def _coefficient(name, m):
    k, e = LAWS[name]
    return k * (m / 1e8) ** e


def _member(name, m, layers, hidden, scale=1.0):
    curves = {}
    for phase, phase_scale in (("prefill", 1.0), ("decode", 0.02), ("forward", 1.05)):
        a, b, c = (_coefficient(x, m) * phase_scale * scale for x in "abc")
        curves[phase] = {"latency_s": fit_curve(N, a + b * N + c * N**2, "s").as_dict()}
    return CostModel.from_json({
        "model": {"name": name, "model_type": "gpt2", "non_embedding_params": m, "layers": layers, "hidden": hidden,
                  "dtype": "float32"},
        "hardware": {}, "hardware_slug": "cpu-test", "derived": {}, "curves": curves,
    })


@pytest.fixture(scope="module")
def family():
    return FamilyCostModel([_member(name, *size) for name, size in SIZES.items()])


def test_power_law_recovers_exponent_and_scale():
    law = PowerLaw.fit([1e7, 1e8, 1e9], 3e-12 * np.array([1e7, 1e8, 1e9]) ** 0.7)
    assert law.e == pytest.approx(0.7) and law(5e8) == pytest.approx(3e-12 * 5e8**0.7)
    assert PowerLaw.fit([1e7, 1e8], [0.0, 1.0]).k == 0.0  # one positive value: no law


def test_laws_recover_the_size_scaling(family):
    for j, name in enumerate("abc"):
        assert family.laws["prefill"][j].e == pytest.approx(LAWS[name][1], abs=0.01)


def test_a_size_nobody_profiled_is_priced(family):
    m = 150e6
    cm = family.at_params(m)
    truth = sum(_coefficient(x, m) * 256.0**j for j, x in enumerate("abc"))
    assert cm.prefill(256.0) == pytest.approx(truth, rel=0.02)
    assert cm.call(256, 16) > cm.prefill(256.0)


def test_leave_one_out_predicts_each_member(family):
    report = family.leave_one_out()
    assert [row["model"] for row in report] == list(SIZES)
    for row in report:
        assert abs(row["per_token_rel_error"]) < 0.02 and abs(row["prefill_rel_error"]) < 0.02


def test_members_must_share_hardware_and_dtype():
    a = _member("a", 40e6, 6, 768)
    b = _member("b", 85e6, 12, 768)
    b.hardware_slug = "cuda-h100"
    with pytest.raises(ValueError, match="share hardware"):
        FamilyCostModel([a, b])
    with pytest.raises(ValueError, match="at least two"):
        FamilyCostModel([a])


def test_members_of_one_size_have_no_size_law_and_one_shape_no_shape_law():
    with pytest.raises(ValueError, match="different sizes, and a, b all have 40,000,000"):
        FamilyCostModel([_member("a", 40e6, 6, 768), _member("b", 40e6, 6, 768, scale=1.1)])
    # two sizes of one layers * hidden (a wider MLP): the size laws, and none against layers * hidden
    wider = FamilyCostModel([_member("a", 40e6, 12, 768), _member("b", 85e6, 12, 768), _member("c", 85e6, 12, 768)])
    assert wider.laws["prefill"][1] is not None and wider.quadratic_vs_layers_x_hidden["prefill"] is None
    assert [row["model"] for row in wider.leave_one_out()] == ["b", "c"]  # without a, one size remains: a unpredicted
    assert PowerLaw.fit([1e7, 1e7], [1.0, 2.0]) is None


def test_a_term_the_data_do_not_resolve_gets_no_law():
    """Decode's quadratic term is often noise: one member with it negligible zeroes the law."""
    members = [_member(name, *size) for name, size in SIZES.items()]
    flat = fit_curve(N, 0.03 + 1e-5 * N + 1e-14 * N**2, "s").as_dict()  # c n^2 is 1e-8 of the cost
    members[1].curves["decode"]["latency_s"] = type(members[1].curve("decode", "latency_s")).from_dict(flat)
    family = FamilyCostModel(members)
    assert family.laws["decode"][2].k == 0.0
    assert family.laws["prefill"][2].k > 0  # the resolved terms keep their laws
