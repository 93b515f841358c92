import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from profiler.cli.main import main
from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model, validation_error, write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.costmodel.forms import CURVE_FORMS, MEMORY_FORMS
from profiler.errors import UserError
from profiler.measure.samples import read_samples
from tests.conftest import run_tiny, tiny_config

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A real run of a tiny model: samples.csv, run.json, hardware.json, and the fit it ended with."""
    return run_tiny(tmp_path_factory.mktemp("export"), "llama")


def test_run_ends_by_writing_a_valid_fit(run_folder):
    (path,) = (run_folder.parents[2] / "fits").glob("tiny--*.json")
    assert path.name == f"tiny--{run_folder.parent.name}.json"
    document = json.loads(path.read_text())
    assert validation_error(document) is None
    assert document["schema_version"] == SCHEMA_VERSION and document["model"]["random_weights"] is True
    assert set(document["curves"]) == {"prefill", "decode", "forward"}
    assert set(document["curves"]["prefill"]) == {"latency_s", "flops", "peak_mem_bytes"}
    prefill = document["curves"]["prefill"]["latency_s"]
    assert prefill["domain"] == {"n_min": 8, "n_max": 128}
    assert len(prefill["candidates"]) == 3 and prefill["lolo_mape"] is not None
    assert len(prefill["correlation"]) == len(prefill["params"])  # since 1.2
    assert "linearity_horizon" in document["derived"]["prefill"]


def test_fitted_flops_reproduce_the_analytic_count(run_folder):
    cm = CostModel(fit_run(run_folder))
    flops_curve = cm.curve("prefill", "flops")
    assert flops_curve.form.name == "quadratic"  # FLOPs are exactly quadratic in n
    assert (flops_curve.ci95[:, 0] == flops_curve.ci95[:, 1]).all()  # exact: nothing to resample


def test_a_run_fits_the_extend_surface_on_its_prefill_decode_and_extend_passes(run_folder):
    samples = read_samples(run_folder / "samples.csv")
    passes = samples[(samples["batch"] == 1) & samples["phase"].isin(["prefill", "decode", "extend"])]
    assert (passes["phase"] == "extend").any()  # a default run measures an extend grid
    document = fit_run(run_folder).to_json()
    assert validation_error(document) is None and "extend_skipped" not in document["source"]
    extend = document["extend"]
    assert extend["points"] == passes.groupby(["n_cached", "n_new"]).ngroups and extend["samples"] == len(passes)
    assert extend["domain"] == {"c_max": passes["n_cached"].max(), "s_max": passes["n_new"].max(),
                                "positions_max": (passes["n_cached"] + passes["n_new"]).max()}
    cm = CostModel.from_json(document)
    assert cm.has_extend and cm.call(100, 4, cached=60) == pytest.approx(
        cm.extend(60, 40) + sum(cm.decode(100 + t - 1) for t in range(1, 4)), rel=1e-12)


def test_kv_cache_bytes_agree_with_the_analytic_bytes_per_token(run_folder):
    document = fit_run(run_folder).to_json()
    config = tiny_config("llama")  # grouped-query: 2 key-value heads of 4
    head_dim = config.hidden_size // config.num_attention_heads
    analytic = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4  # float32
    kv = document["memory"]["kv_cache_bytes_per_token"]
    assert kv["analytic"] == analytic
    assert kv["measured"] == pytest.approx({"prefill": analytic, "decode": analytic}, rel=1e-9)  # forward keeps none
    assert validation_error(document) is None
    for metrics in document["curves"].values():
        assert [c["form"] for c in metrics["peak_mem_bytes"]["candidates"]] == list(MEMORY_FORMS)
        assert [c["form"] for c in metrics["latency_s"]["candidates"]] == list(CURVE_FORMS)


def test_committed_example_peak_memory_has_its_structure(tmp_path):
    for name in ("samples.csv", "run.json", "hardware.json"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    document = fit_run(tmp_path).to_json()
    assert validation_error(document) is None
    memory = document["memory"]
    assert memory["weights_bytes"] == 124_439_808 * 4  # gpt2's parameters in float32
    per_token = memory["kv_cache_bytes_per_token"]
    assert per_token["analytic"] == 2 * 12 * 12 * 64 * 4  # keys and values, 12 layers of 12 heads of 64
    assert per_token["measured"] == pytest.approx({"prefill": per_token["analytic"], "decode": per_token["analytic"]})
    cm = CostModel.from_json(document)
    for phase, metrics in cm.curves.items():
        curve = metrics["peak_mem_bytes"]
        assert curve.form.name in MEMORY_FORMS and curve.r2 > 0.85
        assert curve.theta[0] >= memory["weights_bytes"]  # the weights stay resident
        growth = (curve.predict(curve.n_max) - curve.predict(curve.n_min)) / (curve.n_max - curve.n_min)
        assert growth >= (0 if phase == "forward" else per_token["analytic"])  # a pass holds its cache
    peak = cm.call(500, 200, metric="peak_mem_bytes")
    assert peak == max(cm.prefill(500, metric="peak_mem_bytes"), cm.decode(698, metric="peak_mem_bytes"))


def test_fit_and_show_commands(run_folder, tmp_path, capsys):
    assert main(["fit", str(run_folder / "samples.csv"), "--fits", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.json")
    capsys.readouterr()
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "a + b*n" in out and "per pass plus" in out and "random weights" in out


def test_invalid_document_is_not_written(run_folder, tmp_path):
    fit = fit_run(run_folder)
    broken = dataclasses.replace(fit, model=dataclasses.replace(fit.model, params=0))
    with pytest.raises(ValueError, match="params"):
        write_fit(broken, tmp_path)
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version="2.0"), "newer than this profiler reads"),
    (lambda d: d["curves"]["decode"]["latency_s"].update(form="cubic"), "not a valid cost model"),
    (lambda d: d["curves"]["decode"]["latency_s"].update(correlation=[[1, 2], [2, 1]]), "not a valid cost model"),
    (lambda d: d.pop("model"), "not a valid cost model"),
])
def test_load_refuses_in_one_line(run_folder, tmp_path, capsys, change, message):
    document = fit_run(run_folder).to_json()
    change(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match=message):
        load_cost_model(path)
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_not_json_and_missing_files(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{not json")
    assert main(["show", str(tmp_path / "x.json")]) == 2
    assert main(["show", str(tmp_path / "absent.json")]) == 2
    assert main(["fit", str(tmp_path / "samples.csv")]) == 2
    assert capsys.readouterr().err.count("profiler: error:") == 3


@pytest.mark.slow
def test_a_run_of_two_sizes_reports_their_family(tmp_path, capsys):
    from transformers import GPT2Config

    folders = []
    for name, width in (("narrow", 64), ("wide", 128)):
        config = GPT2Config(n_layer=2, n_embd=width, n_head=4, n_positions=128, vocab_size=256, bos_token_id=0,
                            eos_token_id=0)
        config.save_pretrained(tmp_path / name)
        folders.append(str(tmp_path / name))
    # --budget 8: enough for a fit of each model on a busy machine too
    argv = ["run", "--model", folders[0], "--model", folders[1], "--lengths", "8,16,32,64", "--budget", "8",
            "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gpt2 family on" in out and "narrow" in out and "wide" in out
    assert len(list((tmp_path / "fits").glob("*.json"))) == 2


@pytest.mark.slow
def test_a_run_too_short_to_fit_keeps_its_samples_and_says_why(tmp_path, capsys):
    """Decode needs room for its token: on a 64-position model, --lengths 63,64 measure it at 63 only."""
    from transformers import GPT2Config

    GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=64, vocab_size=256, bos_token_id=0,
               eos_token_id=0).save_pretrained(tmp_path / "short")
    argv = ["run", "--model", str(tmp_path / "short"), "--lengths", "63,64", "--budget", "3",
            "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "no cost model fitted:" in out and "decode at 1 context length (63)" in out
    (folder,) = (tmp_path / "reports").glob("*/short")
    assert {"samples.csv", "run.json", "hardware.json"} <= {p.name for p in folder.iterdir()}
    assert not list((tmp_path / "fits").glob("*.json"))
    with pytest.raises(UserError, match="decode at 1 context length"):
        fit_run(folder)
