"""fit_run with batches: the curves from batch-1 passes exactly as before, the surfaces from every pass of
prefill and decode, written as schema 1.5 and printed by ``fit``."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.cli.main import main
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model, validation_error, write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.costmodel.surface_forms import SURFACE_FORMS

EXAMPLE_RUN = Path(__file__).resolve().parents[1] / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
# Near the example's own batch-1 latencies (prefill 47 ms at 8 tokens, 0.91 s at 1,024; decode 31-43 ms)
TRUTHS = {"prefill": ("compute", {"a": 0.03, "d": 0.012, "b": 8e-4, "c": 1.2e-7}),
          "decode": ("roofline", {"a": 0.004, "w": 0.026, "d": 0.009, "b": 1.2e-5, "q": 4.0})}


def _run_with_batches(root: Path, batches=(2, 4, 8), lengths=(8, 32, 128, 512), repeats=3, seed=0) -> Path:
    """The committed example's run with passes of ``batches`` sequences of each of ``lengths`` appended: latency
    from ``TRUTHS`` with 2% noise; FLOPs and bytes of the whole batch."""
    folder = root / "run"
    folder.mkdir(parents=True)
    for name in ("run.json", "hardware.json"):
        shutil.copy(EXAMPLE_RUN / name, folder / name)
    samples = pd.read_csv(EXAMPLE_RUN / "samples.csv")
    samples.insert(samples.columns.get_loc("phase") + 1, "batch", 1)
    rng = np.random.default_rng(seed)
    rows = []
    for phase, (name, coefficients) in TRUTHS.items():
        form = SURFACE_FORMS[phase][name]
        theta = np.array([coefficients[p] for p in form.params])
        template = samples[samples["phase"] == phase].iloc[0]
        for batch in batches:
            for n in lengths:
                for repeat in range(repeats):
                    latency = float(form.evaluate(theta, np.array([batch, n], dtype=float)))
                    rows.append(template.to_dict() | {
                        "batch": batch, "n_ctx": n, "n_new": n if phase == "prefill" else 1, "repeat": repeat,
                        "latency_s": latency * (1 + 0.02 * rng.standard_normal()),
                        "flops": batch * int(template["flops"]), "flops_counted": batch * int(template["flops"]),
                    })
    pd.concat([samples, pd.DataFrame(rows)]).to_csv(folder / "samples.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def batched_run(tmp_path_factory):
    return _run_with_batches(tmp_path_factory.mktemp("batched"))


@pytest.fixture(scope="module")
def fitted(batched_run):
    return fit_run(batched_run)


def test_curves_are_fitted_on_batch_one_exactly_as_before(fitted, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("samples.csv", "run.json", "hardware.json"):
        shutil.copy(EXAMPLE_RUN / name, alone / name)
    before = fit_run(alone).to_json()  # a file written before the batch column: every pass of one sequence
    after = fitted.to_json()
    assert "surfaces" not in before and before["schema_version"] == after["schema_version"] == SCHEMA_VERSION
    assert after["curves"] == before["curves"] and after["derived"] == before["derived"]
    assert after["memory"] == before["memory"]
    assert after["source"]["rows"] == before["source"]["rows"] + 2 * 3 * 4 * 3  # every row is counted


def test_surfaces_are_fitted_on_every_pass_and_recovered(fitted, batched_run):
    assert set(fitted.surfaces) == {"prefill", "decode"}
    samples = pd.read_csv(batched_run / "samples.csv")
    for phase, (name, coefficients) in TRUTHS.items():
        surface = fitted.surfaces[phase]
        rows = samples[samples["phase"] == phase]
        assert surface.samples == len(rows) and surface.domain[0, 0] == 1 and surface.batch_max == 8
        assert surface.held_out_mape < 0.05
        form = SURFACE_FORMS[phase][name]
        theta = np.array([coefficients[p] for p in form.params])
        for batch in (2, 4, 8):
            for n in (8, 32, 128, 512):
                truth = float(form.evaluate(theta, np.array([batch, n], dtype=float)))
                assert float(surface.predict(batch, n)) == pytest.approx(truth, rel=0.04)


def test_a_fit_with_surfaces_is_written_printed_and_priced(batched_run, fitted, tmp_path, capfd):
    document = fitted.to_json()
    assert validation_error(document) is None
    cm = load_cost_model(write_fit(fitted, tmp_path / "fits").path)
    assert cm.max_batch == 8 and cm.call_batch(128, 16, 1) == cm.call(128, 16)
    assert cm.call_batch(128, 16, 8) < 8 * cm.call(128, 16)
    capfd.readouterr()
    assert main(["fit", str(batched_run / "samples.csv"), "--fits", str(tmp_path / "again")]) == 0
    out = capfd.readouterr().out
    assert "batch surfaces" in out and "held-out MAPE" in out
    assert "a batched call is priced without extrapolating up to a batch of 8" in out
    for surface in fitted.surfaces.values():
        assert f"{surface.held_out_mape:.1%} ({surface.held_out_points} points)" in out


def test_too_few_batched_points_are_said_not_fitted(tmp_path, capfd):
    folder = _run_with_batches(tmp_path, batches=(2,), lengths=(8,), repeats=3)
    samples = pd.read_csv(folder / "samples.csv")
    prefill_lengths = sorted(samples[(samples["phase"] == "prefill") & (samples["batch"] == 1)]["n_ctx"].unique())
    keep = (samples["phase"] != "prefill") | (samples["batch"] > 1) | samples["n_ctx"].isin(prefill_lengths[:3])
    samples[keep].to_csv(folder / "samples.csv", index=False)  # prefill: 3 lengths of batch 1 and 1 point of 2
    fit = fit_run(folder)
    assert set(fit.surfaces) == {"decode"}  # 4 points fix decode's compute form (3 coefficients)
    assert fit.source["surfaces_skipped"] == {
        "prefill": "4 (batch, n) points, where a surface needs 5 over 2 or more batches"}
    assert validation_error(fit.to_json()) is None
    path = write_fit(fit, tmp_path / "fits").path
    capfd.readouterr()
    assert main(["show", str(path)]) == 0
    out = " ".join(capfd.readouterr().out.split())
    assert "no prefill batch surface: measured at 4 (batch, n) points" in out
    assert "no batched call is priced without a prefill surface" in out
