"""fit_run with extend passes: the extend surface fitted on the batch-1 prefill, decode and extend passes, written
as schema 1.6, printed by ``show``, priced by ``call(..., cached=)``; older fits still load and price as before."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.cli.main import main
from profiler.costmodel.extend_forms import EXTEND_FORMS
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model, validation_error, write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
SCHEMA_1_5_FIT = ROOT / "tests" / "data" / "gpt2-fit-schema-1.5.json"  # the committed example fit before 1.12: no extend
# Near the example's own batch-1 latencies (prefill 47 ms at 8 tokens, 0.91 s at 1,024; decode 31-43 ms)
TRUTH = ("cache-read", {"a": 0.03, "b": 8e-4, "g": 1e-5, "e": 6e-7, "f": 1.2e-7})
GRID = [(c, s) for c in (64, 256, 512, 896) for s in (4, 16, 64, 128) if c + s <= 1024]


def _latency(cached, new, rng):
    name, coefficients = TRUTH
    form = EXTEND_FORMS[name]
    theta = np.array([coefficients[p] for p in form.params])
    truth = form.evaluate(theta, np.stack([cached, new], axis=-1).astype(float))
    return truth * (1 + 0.02 * rng.standard_normal(len(truth)))


def _run_with_extend(root: Path, grid=GRID, repeats=3, seed=0) -> Path:
    """The committed example's run, its prefill and decode latencies redrawn from ``TRUTH`` with 2% noise, and
    extend passes at each point of ``grid`` appended (latency from ``TRUTH``)."""
    folder = root / "run"
    folder.mkdir(parents=True)
    for name in ("run.json", "hardware.json"):
        shutil.copy(EXAMPLE_RUN / name, folder / name)
    samples = pd.read_csv(EXAMPLE_RUN / "samples.csv")
    rng = np.random.default_rng(seed)
    for phase in ("prefill", "decode"):
        rows = samples["phase"] == phase
        cached = np.where(phase == "decode", samples.loc[rows, "n_ctx"], 0)
        samples.loc[rows, "latency_s"] = _latency(cached, samples.loc[rows, "n_new"].to_numpy(), rng)
    template = samples[samples["phase"] == "decode"].iloc[0].to_dict()
    extend = pd.DataFrame([template | {"phase": "extend", "n_ctx": c, "n_new": s, "repeat": r}
                           for c, s in grid for r in range(repeats)])
    extend["n_cached"] = extend["n_ctx"]
    extend["latency_s"] = _latency(extend["n_ctx"].to_numpy(), extend["n_new"].to_numpy(), rng)
    samples.insert(samples.columns.get_loc("n_ctx") + 1, "n_cached", np.where(samples["phase"] == "decode",
                                                                              samples["n_ctx"], 0))
    pd.concat([samples, extend[samples.columns]]).to_csv(folder / "samples.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory):
    return _run_with_extend(tmp_path_factory.mktemp("extend"))


@pytest.fixture(scope="module")
def fitted(extended_run):
    return fit_run(extended_run)


def test_the_curves_are_fitted_as_without_extend_passes(fitted, extended_run, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("run.json", "hardware.json"):
        shutil.copy(extended_run / name, alone / name)
    samples = pd.read_csv(extended_run / "samples.csv")
    samples[samples["phase"] != "extend"].to_csv(alone / "samples.csv", index=False)
    before, after = fit_run(alone).to_json(), fitted.to_json()
    assert "extend" not in before and before["schema_version"] == after["schema_version"] == SCHEMA_VERSION == "1.12"
    assert after["curves"] == before["curves"] and after["derived"] == before["derived"]
    assert after["source"]["rows"] == before["source"]["rows"] + 3 * len(GRID)


def test_the_extend_surface_is_fitted_on_every_pass_that_starts_on_or_builds_a_cache(fitted, extended_run):
    extend = fitted.extend
    samples = pd.read_csv(extended_run / "samples.csv")
    fitted_rows = samples[samples["phase"].isin(["prefill", "decode", "extend"])]
    assert extend.samples == len(fitted_rows)
    assert extend.points == len(fitted_rows.groupby(["n_cached", "n_new"]))
    assert extend.form.name == "cache-read" and extend.held_out_mape < 0.05
    assert (extend.c_max, extend.s_max, extend.positions_max) == (1023, 1024, 1024)
    assert extend.consistency["prefill"] < 0.02 and extend.consistency["decode"] < 0.02
    name, coefficients = TRUTH
    form = EXTEND_FORMS[name]
    theta = np.array([coefficients[p] for p in form.params])
    c, s = np.array(GRID + [(0, 8), (0, 1024), (1023, 1), (600, 300)], dtype=float).T
    truth = form.evaluate(theta, np.stack([c, s], axis=-1))
    assert np.max(np.abs(extend.predict(c, s) / truth - 1)) < 0.03


def test_a_fit_with_the_extend_surface_is_written_loaded_priced_and_shown(fitted, tmp_path, capfd):
    assert validation_error(fitted.to_json()) is None
    path = write_fit(fitted, tmp_path / "fits").path
    cm = load_cost_model(path)
    assert cm.has_extend and cm.fit.to_json() == fitted.to_json()
    assert cm.call(900, 10, cached=800) == pytest.approx(
        cm.extend(800, 100) + sum(cm.decode(900 + t - 1) for t in range(1, 10)), rel=1e-12)
    assert cm.call(900, 10, cached=800) < cm.call(900, 10)
    capfd.readouterr()
    assert main(["show", str(path)]) == 0
    out = " ".join(capfd.readouterr().out.split())
    extend = fitted.extend
    assert "extend surface" in out and "cache-read" in out
    assert f"{extend.held_out_mape:.1%} ({extend.held_out_points} points)" in out
    assert "extend measured at c 0-1023 cached, s 1-1024 appended, c + s <= 1024 tokens" in out
    assert (f"off the prefill curve by {extend.consistency['prefill']:.1%} at c = 0 and the decode curve by "
            f"{extend.consistency['decode']:.1%} at s = 1") in out


def test_extend_passes_that_fix_no_surface_are_said_not_fitted(tmp_path, capfd):
    fit = fit_run(_run_with_extend(tmp_path, grid=[(64, 1), (512, 1)]))  # one token each: decode points again
    assert fit.extend is None
    assert fit.source["extend_skipped"] == ("30 (n_cached, n_new) points, 0 of them several tokens appended to a "
                                            "cache: too few to fix the cache-read form's 5 coefficients")
    path = write_fit(fit, tmp_path / "fits").path
    capfd.readouterr()
    assert main(["show", str(path)]) == 0
    out = " ".join(capfd.readouterr().out.split())
    assert "no extend surface, so no price for a cached prefix: 30 (n_cached, n_new) points" in out


def test_a_fit_of_schema_1_5_loads_and_prices_as_before():
    document = json.loads(SCHEMA_1_5_FIT.read_text())
    assert document["schema_version"] == "1.5" and "extend" not in document
    cm = load_cost_model(SCHEMA_1_5_FIT)
    assert not cm.has_extend
    n_in, n_out = np.array([16, 300, 900]), np.array([1, 8, 100])
    assert np.array_equal(cm.call(n_in, n_out, cached=0), cm.call(n_in, n_out))
    assert np.array_equal(cm.call(n_in, n_out, cached=np.zeros(3, dtype=int)), cm.call(n_in, n_out))


def _broken(fitted, change):
    document = copy.deepcopy(fitted.to_json())
    change(document["extend"])
    return document


@pytest.mark.parametrize("change, message", [
    (lambda e: e["domain"].update(positions_max=5000), "extend: domain c_max 1023, s_max 1024: positions_max 5000"),
    (lambda e: e["domain"].update(positions_max=1000), "extend: domain c_max 1023"),
    (lambda e: e.update(held_out_points=e["points"] + 1), "points held out of"),
    (lambda e: e["params"].pop("g"), "extend: coefficients a, b, e, f, where the cache-read form has a, b, g, e, f"),
    (lambda e: e["params"]["e"].update(ci95=[1e-6, 1e-7]), "e's interval"),
    (lambda e: e.update(correlation=np.eye(4).tolist()), "correlation of shape (4, 4)"),
    (lambda e: e["params"]["a"].update(value=float("nan")), "extend/params/a/value is nan"),
    (lambda e: e["params"]["a"].update(value=-1.0), "extend/params/a/value"),
    (lambda e: e.update(form="roofline"), "extend/form"),
    (lambda e: e["consistency"].pop("decode"), "extend/consistency"),
])
def test_an_extend_surface_that_cannot_price_is_refused_in_one_line(fitted, tmp_path, change, message):
    document = _broken(fitted, change)
    problem = validation_error(document)
    assert problem is not None and message in problem, problem
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError) as refused:
        load_cost_model(path)
    assert "\n" not in str(refused.value)
