"""The per-batch decode surface (profiler.costmodel.per_batch_form): each measured batch's own per-pass cost, found
where a BLAS's kernel choice makes a decode step's cost no law in B, and not chosen where batching is smooth."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model
from profiler.costmodel.per_batch_form import PerBatchForm, batches_of, fixes
from profiler.costmodel.surface import SurfaceFit, fit_surface, held_out_errors
from profiler.errors import UserError

OLD_FIT = Path(__file__).resolve().parent / "data" / "gpt2-fit-schema-1.4.json"
BATCHES = (1, 2, 4, 8)
LENGTHS = (8, 91, 256, 1024)
# gpt2's decode step in one default run on the project's 2-core CPU (MKL 2024.2): batch 4 dearer than batch 8
STEP = {"a_1": 0.066, "a_2": 0.106, "a_4": 0.196, "a_8": 0.147, "b": 1e-5}


def _samples(theta, batches=BATCHES, lengths=LENGTHS, repeats=3, noise=0.03, seed=0):
    form = PerBatchForm(batches)
    batch, n = (a.ravel() for a in np.meshgrid(batches, lengths, indexing="ij"))
    batch, n = np.repeat(batch, repeats), np.repeat(n, repeats)
    y = form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float))
    return batch, n, y * (1 + noise * np.random.default_rng(seed).standard_normal(len(y)))


def test_a_per_pass_cost_is_each_batch_s_own_linear_between_and_per_sequence_beyond():
    form = PerBatchForm(BATCHES)
    theta = np.array([STEP[p] for p in form.params])
    assert form.params == ("a_1", "a_2", "a_4", "a_8", "b")

    def at(batch):  # no cached tokens: a_B alone
        return float(form.evaluate(theta, np.array([batch, 0.0])))

    assert [at(b) for b in BATCHES] == pytest.approx([0.066, 0.106, 0.196, 0.147], rel=1e-12)
    assert at(3) == pytest.approx((0.106 + 0.196) / 2) and at(6) == pytest.approx((0.196 + 0.147) / 2)
    assert at(16) == pytest.approx(2 * 0.147)  # as two passes of 8
    assert float(form.evaluate(theta, np.array([4.0, 100.0]))) == pytest.approx(0.196 + 1e-5 * 4 * 100)
    starts_at_two = PerBatchForm((2, 4))
    assert float(starts_at_two.evaluate(np.array([0.1, 0.2, 0.0]), np.array([1.0, 0.0]))) == pytest.approx(0.05)


def test_the_jacobian_is_the_derivative_and_draws_broadcast():
    form = PerBatchForm(BATCHES)
    theta = np.array([STEP[p] for p in form.params])
    x = np.array([[1, 8], [3, 100], [6, 40], [8, 1000], [12, 5]], dtype=float)
    step = 1e-6
    numeric = np.stack([(form.evaluate(theta * (1 + step * e), x) - form.evaluate(theta * (1 - step * e), x))
                        / (2 * step * theta[k]) for k, e in enumerate(np.eye(len(theta)))], axis=-1)
    assert form.jacobian(theta, x) == pytest.approx(numeric, rel=1e-6)
    draws = np.stack([theta, 2 * theta])[:, None, :]  # (draws, 1, k) against points (1, P, 2)
    assert form.evaluate(draws, x[None]) == pytest.approx(np.stack([form.evaluate(theta, x),
                                                                    2 * form.evaluate(theta, x)]))


def test_the_decode_steps_sum_in_closed_form():
    form = PerBatchForm(BATCHES)
    theta = np.array([STEP[p] for p in form.params])
    for batch in (1, 3, 8, 20):
        by_hand = sum(form.evaluate(theta, np.array([float(batch), c])) for c in range(100, 2001))
        assert form.steps_sum(theta, batch, 100, 2000) == pytest.approx(by_hand, rel=1e-12)
    assert form.steps_sum(theta, 3, 100, 99) == 0


def test_the_batches_are_read_from_the_coefficients_names():
    assert batches_of(["a_1", "a_2", "a_4", "a_8", "b"]) == (1, 2, 4, 8)
    for names in (["a_1", "b"], ["a_2", "a_1", "b"], ["a_1", "a_1", "b"], ["a_1", "a_2"], ["a_1", "d", "b"],
                  ["a_0", "a_2", "b"], ["a_01", "a_2", "b"], ["a_1", "a_999999", "b"]):
        assert batches_of(names) is None, names


def test_it_is_fixed_only_where_any_one_point_can_be_held_out():
    assert fixes([1, 1, 2, 2], [8, 16, 8, 16])
    assert fixes([1, 1, 2, 8], [8, 16, 8, 8])  # held out, batch 8 is priced by the form over batches 1 and 2
    assert not fixes([1, 1, 2], [8, 16, 8])  # batch 2 held out would leave one batch: no per-batch form
    assert not fixes([1, 2, 8], [8, 8, 8])  # no batch at two lengths: b is not fixed
    assert not fixes([1, 1], [8, 16])
    assert not fixes(np.repeat(np.arange(1, 35), 2), np.tile([8, 16], 34))  # more batches than it may have


def test_a_batch_measured_at_one_length_is_priced_by_its_own_cost_and_held_out_as_unmeasured():
    """A default run's decode grid: batch 1 over the range, batches 2 and 8 at the shortest context only. The
    per-batch form prices both where they were measured; held out, batch 8 is the form over batches 1 and 2
    extrapolated (four passes of 2), and batch 2 the form over 1 and 8 interpolated."""
    form = PerBatchForm((1, 2, 8))
    theta = np.array([STEP["a_1"], STEP["a_2"], STEP["a_8"], STEP["b"]])
    batch = np.repeat([1, 1, 1, 1, 2, 8], 3)
    n = np.repeat([8, 91, 256, 1024, 8, 8], 3)
    y = form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float))
    fit = fit_surface("decode", batch, n, y)
    assert fit.form.name == "per-batch" and fit.form.batches.tolist() == [1, 2, 8]
    assert fit.predict(2, 8) == pytest.approx(STEP["a_2"] + STEP["b"] * 16, rel=1e-3)
    assert fit.predict(8, 8) == pytest.approx(STEP["a_8"] + STEP["b"] * 64, rel=1e-3)
    compute = next(c for c in fit.candidates if c["form"] == "compute")
    assert compute["aicc"] - next(c for c in fit.candidates if c["form"] == "per-batch")["aicc"] > 10
    points, errors = held_out_errors(fit.form, np.stack([batch, n], axis=-1).astype(float), y, fit.theta)
    at = {(int(b), int(c)): e for (b, c), e in zip(points, errors)}
    unmeasured_8 = 4 * STEP["a_2"] + STEP["b"] * 8 * 8  # batch 2's per-pass cost four times over
    assert at[8, 8] == pytest.approx(abs(unmeasured_8 - y[-1]) / y[-1], rel=1e-3)
    between_2 = 6 / 7 * STEP["a_1"] + 1 / 7 * STEP["a_8"] + STEP["b"] * 2 * 8  # a_B linear from 1 to 8
    assert at[2, 8] == pytest.approx(abs(between_2 - y[12]) / y[12], rel=1e-3)
    assert max(e for (b, _), e in at.items() if b == 1) < 1e-3


def test_a_cost_with_a_kernel_step_is_recovered_and_held_out_for_real():
    theta = np.array([STEP[p] for p in PerBatchForm(BATCHES).params])
    batch, n, y = _samples(theta)
    fit = fit_surface("decode", batch, n, y)
    assert fit.form.name == "per-batch" and fit.preferred == "compute"
    assert fit.theta == pytest.approx(theta, rel=0.05, abs=1e-6)
    compute = next(c for c in fit.candidates if c["form"] == "compute")
    assert compute["aicc"] - next(c for c in fit.candidates if c["form"] == "per-batch")["aicc"] > 10
    assert fit.held_out_mape < 0.04
    # one point 20% slow at every repeat: held out, its batch's a_B comes from that batch's other lengths
    exact = PerBatchForm(BATCHES).evaluate(theta, np.stack([batch, n], axis=-1).astype(float))
    slow = (batch == 4) & (n == 91)
    x, y = np.stack([batch, n], axis=-1).astype(float), np.where(slow, 1.2 * exact, exact)
    fit = fit_surface("decode", batch, n, y)
    points, errors = held_out_errors(fit.form, x, y, fit.theta)
    assert errors[(points[:, 0] == 4) & (points[:, 1] == 91)] == pytest.approx((1.2 - 1) / 1.2, rel=0.02)
    assert np.max(errors[points[:, 0] != 4]) < 0.02  # the other batches keep their a_B (b is shared)


def test_a_smooth_batch_cost_keeps_a_structured_form():
    """The compute form's truth (a_B linear in B) fits the per-batch form as well, with two more coefficients."""
    form = PerBatchForm(BATCHES)
    theta = np.array([0.02 + 0.01 * b for b in BATCHES] + [1e-5])
    batch, n, y = _samples(theta, seed=3)
    fit = fit_surface("decode", batch, n, y)
    assert fit.form.name == "compute" and "per-batch" in [c["form"] for c in fit.candidates]
    assert form.evaluate(theta, np.array([5.0, 300.0])) == pytest.approx(fit.predict(5, 300), rel=0.03)


@pytest.fixture(scope="module")
def document():
    """The committed gpt2 example's fit (1.4) with a per-batch decode surface, as the current schema."""
    theta = np.array([STEP[p] for p in PerBatchForm(BATCHES).params])
    surface = fit_surface("decode", *_samples(theta)).as_dict()
    return json.loads(OLD_FIT.read_text()) | {"schema_version": SCHEMA_VERSION, "surfaces": {"decode": surface}}


def test_a_per_batch_surface_reads_back_and_prices(document, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(document))
    cm = load_cost_model(path)
    surface = cm.surfaces["decode"]
    assert surface.form.name == "per-batch" and surface.form.batches.tolist() == list(BATCHES)
    assert surface.as_dict() == document["surfaces"]["decode"]
    assert SurfaceFit.from_dict("decode", surface.as_dict()).predict(4, 91) == surface.predict(4, 91)
    assert surface.steps_sum(4, 91, 100) == pytest.approx(sum(surface.predict(4, c) for c in range(91, 101)))


def _edited(document, edit):
    edited = copy.deepcopy(document)
    edit(edited["surfaces"]["decode"])
    return edited


def _renamed(old, new):
    def edit(surface):
        surface["params"] = {(new if name == old else name): value for name, value in surface["params"].items()}
    return edit


HOSTILE = {
    "batch-not-in-domain": (_renamed("a_8", "a_16"), "a_B for batches 1, 2, 4, 16, where its domain's are 1, 2, 4, 8"),
    "names": (_renamed("a_2", "a_x"), "surfaces/decode/params: "),
    "order": (lambda s: s.update(params=dict(reversed(list(s["params"].items())))), "not a per-batch form's"),
    "prefill": (None, "form per-batch, where a prefill surface is one of compute, roofline"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_per_batch_surface_is_refused_in_one_line(document, case, tmp_path):
    edit, message = HOSTILE[case]
    if edit is None:  # a per-batch form is decode's only
        edited = copy.deepcopy(document)
        edited["surfaces"]["prefill"] = edited["surfaces"]["decode"]
    else:
        edited = _edited(document, edit)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(edited))
    with pytest.raises(UserError) as refused:
        load_cost_model(path)
    assert "\n" not in str(refused.value) and message in str(refused.value), str(refused.value)
