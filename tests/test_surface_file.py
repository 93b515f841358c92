"""Batch surfaces in fit files (schema 1.5): written and read back, older fits still read, and a surfaces
block that cannot price refused in one line."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from profiler.costmodel.cost_model import MissingCurve
from profiler.costmodel.fit_document import FitDocument
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model, validation_error, write_fit
from profiler.costmodel.surface import fit_surface
from profiler.costmodel.surface_forms import SURFACE_FORMS
from profiler.errors import UserError

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]
OLD_FITS = [DATA / f"gpt2-fit-schema-{version}.json" for version in ("1.1", "1.2", "1.4")]
TRUTHS = {"prefill": ("roofline", {"a": 0.005, "w": 0.04, "d": 0.004, "b": 7e-4, "c": 1.5e-7, "q": 3.0}),
          "decode": ("compute", {"a": 0.02, "d": 0.01, "b": 1e-5})}


@pytest.fixture(scope="module")
def document():
    """The committed gpt2 example's fit (1.4) with surfaces fitted to synthetic batches, as schema 1.5."""
    document = json.loads(OLD_FITS[-1].read_text())
    rng = np.random.default_rng(0)
    batch, n = (a.ravel() for a in np.meshgrid([1, 2, 4, 8], [8, 32, 128, 512, 1024], indexing="ij"))
    batch, n = np.repeat(batch, 3), np.repeat(n, 3)
    surfaces = {}
    for phase, (name, coefficients) in TRUTHS.items():
        form = SURFACE_FORMS[phase][name]
        theta = np.array([coefficients[p] for p in form.params])
        y = form.evaluate(theta, np.stack([batch, n], axis=-1).astype(float)) * (1 + 0.02 * rng.standard_normal(len(n)))
        surfaces[phase] = fit_surface(phase, batch, n, y).as_dict()
    return document | {"schema_version": SCHEMA_VERSION, "surfaces": surfaces}


def test_a_fit_with_surfaces_round_trips(document, tmp_path):
    assert validation_error(document) is None  # surfaces since 1.5, in a document of the current version
    fit = FitDocument.from_json(document)
    assert fit.to_json() == document
    path = write_fit(fit, tmp_path).path
    cm = load_cost_model(path)
    assert {phase: s.form.name for phase, s in cm.surfaces.items()} == {"prefill": "roofline", "decode": "compute"}
    assert cm.fit.to_json() == document and cm.max_batch == 8
    assert cm.call_batch(300, 20, 4) == pytest.approx(FitDocument.from_json(document).surfaces["prefill"].predict(4, 300)
                                                      + fit.surfaces["decode"].steps_sum(4, 300, 318), rel=1e-12)


@pytest.mark.parametrize("path", OLD_FITS, ids=lambda p: p.stem)
def test_an_older_fit_loads_and_prices_one_sequence_only(path):
    cm = load_cost_model(path)
    assert cm.surfaces == {} and cm.max_batch == 1
    assert cm.call_batch(100, 10, 1) == cm.call(100, 10)
    with pytest.raises(MissingCurve) as refused:
        cm.call_batch(100, 10, 2)
    assert "\n" not in str(refused.value) and "no prefill batch surface" in str(refused.value)


def _edited(document, phase, edit):
    edited = copy.deepcopy(document)
    edit(edited["surfaces"][phase])
    return edited


def _param(name, field, value):
    def edit(surface):
        surface["params"][name][field] = value
    return edit


HOSTILE = {
    "negative": ("decode", _param("b", "value", -1e-5), "b/value: -1e-05 is less than the minimum of 0"),
    "negative-interval": ("decode", _param("a", "ci95", [-0.1, 0.1]), "ci95/0: -0.1 is less than the minimum of 0"),
    "nan": ("prefill", _param("c", "value", float("nan")), "is nan (not a finite number)"),
    "infinite": ("prefill", _param("w", "ci95", [0.0, float("inf")]), "is inf (not a finite number)"),
    "q-beyond": ("prefill", _param("q", "value", 40.0), "q is in [1, 16]"),
    "huge-batch": ("decode", lambda s: s["domain"][-1].update(batch=10**30), "is greater than the maximum of 65536"),
    "huge-length": ("decode", lambda s: s["domain"][0].update(n_max=10**30), "is greater than the maximum of 16777216"),
    "many-batches": ("decode", lambda s: s.update(domain=[{"batch": b, "n_min": 8, "n_max": 8} for b in range(1, 1000)]),
                     "surfaces/decode/domain: "),
    "batches-backwards": ("decode", lambda s: s["domain"].reverse(), "ascending from 1"),
    "no-batch-one": ("decode", lambda s: s["domain"].pop(0), "ascending from 1"),
    "lengths-backwards": ("decode", lambda s: s["domain"][1].update(n_min=2000), "runs backwards"),
    "coefficients": ("decode", lambda s: s["params"].update(c=s["params"].pop("d")),
                     "coefficients a, b, c, where the compute form has a, d, b"),
    "roofline-without-w": ("prefill", lambda s: s["params"].pop("w"), "the roofline form has a, w, d, b, c, q"),
    "ragged-correlation": ("prefill", lambda s: s["correlation"][0].pop(), "correlation rows of unequal lengths"),
    "correlation": ("decode", lambda s: s["correlation"][0].__setitem__(1, 0.5), "not symmetric"),
    "held-out": ("decode", lambda s: s.update(held_out_points=10**6), "points held out of"),
    "form": ("decode", lambda s: s.update(form="linear"), "is not one of ['compute', 'roofline', 'per-batch']"),
    "unit": ("decode", lambda s: s.update(unit="ms"), "'s' was expected"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_surfaces_block_is_refused_in_one_line(document, case, tmp_path):
    phase, edit, message = HOSTILE[case]
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(_edited(document, phase, edit)))
    with pytest.raises(UserError) as refused:
        load_cost_model(path)
    assert "\n" not in str(refused.value) and "not a valid cost model" in str(refused.value)
    assert message in str(refused.value)


def test_a_surface_of_another_phase_is_refused(document, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(document | {"surfaces": document["surfaces"] | {"forward": document["surfaces"]["decode"]}}))
    with pytest.raises(UserError, match="surfaces: 'forward' is not one of"):
        load_cost_model(path)
