"""A served model whose config is not known here, fitted from latency alone (fit schema 1.8).

``run --endpoint`` of a hosted model has no FLOPs to count (no local config): its fit has latency curves of prefill,
decode and forward and no FLOPs curves, and a model record without the architecture's numbers. Here against the real
server of ``tests/serving.py``, serving its model under a name that means nothing on the client's side (``served``,
started in its own folder), as a hosted API's: the run fits, ``show`` prints, ``report`` and ``compare`` render,
``breakeven --fit`` prices seconds, ``export`` writes the table without FLOPs; FLOPs and a family's size law are
refused in one line. The schema and ``fit_checks`` keep the two kinds apart (tests without the server).
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from rich.console import Console

from profiler.cli.show import print_families
from profiler.cli.validate_endpoint import reached_positions
from profiler.costmodel.cost_model import CostModel, MissingCurve
from profiler.costmodel.family import FamilyCostModel
from profiler.costmodel.fit_file import SCHEMA_VERSION, load_cost_model, validation_error
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError
from profiler.measure.endpoint.sweep import N_OUT
from profiler.measure.samples import read_samples
from tests.serving import served_model
from tests.test_endpoint_run import files_under, profiler
from tests.test_file_inputs import EXAMPLE_FIT

LENGTHS = "8,16,32,64"
WIDE = {"COLUMNS": "1000"}  # rich wraps its lines at the terminal's width: none here, so 80 columns
ARCHITECTURE = ("model_type", "params", "non_embedding_params", "layers", "hidden", "heads", "kv_heads")


def served_document(name: str = "served") -> dict:
    """The example fit (gpt2 on a CPU) as a served model's of unknown architecture would be: its latency curves
    only, a model record without the architecture's numbers, the hardware an endpoint's."""
    document = json.loads(EXAMPLE_FIT.read_text())
    document["schema_version"] = SCHEMA_VERSION
    document["hardware"] = {"device": "endpoint", "endpoint": "http://127.0.0.1:8000/v1", "served_model": name,
                            "ceilings": {}}
    document["hardware_slug"] = "endpoint-127.0.0.1-8000"
    document["model"] = {"name": name, "dtype": "served", "attn_implementation": "served", "random_weights": False}
    document["curves"] = {phase: {"latency_s": metrics["latency_s"]} for phase, metrics in document["curves"].items()}
    document.pop("memory")
    return document


def test_a_served_fit_without_flops_or_architecture_is_valid_and_prices_seconds_only():
    document = served_document()
    assert validation_error(document) is None
    cost_model = CostModel.from_json(document)
    assert not cost_model.has_flops and cost_model.served_without_flops
    example = CostModel.from_json(json.loads(EXAMPLE_FIT.read_text()))
    assert cost_model.call(100, 20) == pytest.approx(example.call(100, 20))  # the same latency curves
    with pytest.raises(MissingCurve, match="no FLOPs in the cost model of served on endpoint-127.0.0.1-8000: the "
                                           "served model's architecture is not known here"):
        cost_model.call(100, 20, metric="flops")
    with pytest.raises(MissingCurve, match="architecture is not known here"):
        cost_model.check_flops()
    example.check_flops()  # a fit with FLOPs: nothing to say


@pytest.mark.parametrize("change, message", [
    (lambda d: d["curves"]["decode"].update(flops=json.loads(EXAMPLE_FIT.read_text())["curves"]["decode"]["flops"]),
     "a flops curve of decode in the fit of a model whose parameters are not known"),
    (lambda d: d["hardware"].update(device="cpu", torch="2.13.0", ceilings={"peak_matmul_flops_per_s": 1e11,
                                                                            "memory_bandwidth_bytes_per_s": 1e10}),
     "model: 'params' is a required property"),  # only a served model's architecture may be unknown
    (lambda d: d["model"].update(params=124439808), "model: 'model_type' is a dependency of 'params'"),
    (lambda d: d["model"].update(layers=12), "model: 'params' is a dependency of 'layers'"),
])
def test_the_schema_and_checks_keep_a_latency_only_fit_apart(change, message):
    document = served_document()
    change(document)
    assert message in validation_error(document)


def test_a_fit_whose_parameters_are_known_still_needs_every_flops_curve():
    document = json.loads(EXAMPLE_FIT.read_text())
    del document["curves"]["forward"]["flops"]
    assert validation_error(document).startswith("no curve of flops of forward: a cost model of a model whose "
                                                 "parameters are known needs FLOPs curves")


def test_no_size_law_over_a_model_of_unknown_parameters():
    served = CostModel.from_json(served_document())
    other = CostModel.from_json(served_document("other"))
    with pytest.raises(ValueError, match="a family's size law needs each model's parameters, and those of served, "
                                         "other are not known here"):
        FamilyCostModel([served, other])
    console = Console(record=True, width=200)
    print_families(console, [served, other])  # two served models on one endpoint: no family to print
    assert console.export_text() == ""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("hosted"), by_name=True) as running:
        yield running


@pytest.fixture(scope="module")
def latency_only(served, tmp_path_factory):
    """``run --endpoint`` of ``served`` (no local config of that name) in a fresh working directory, then the
    commands that read its fit: ``(working directory, run folder, fit file, each command's result)``."""
    cwd = tmp_path_factory.mktemp("cwd")
    assert served.model == "served" and not (cwd / "served").exists()
    done = {"run": profiler(cwd, "run", "--endpoint", served.url, "--model=served", "--lengths", LENGTHS,
                            "--budget", "6", "--concurrency", "1", "--out", "reports", "--fits", "fits", env=WIDE)}
    assert done["run"].returncode == 0, done["run"].stdout[-3000:] + done["run"].stderr[-3000:]
    slug = f"endpoint-127.0.0.1-{served.url.split(':')[2].split('/')[0]}"
    folder, fit = cwd / "reports" / slug / "served", cwd / "fits" / f"served--{slug}.json"
    done["show"] = profiler(cwd, "show", str(fit), env=WIDE)
    done["breakeven"] = profiler(cwd, "breakeven", "--fit", str(fit), "--exercise", "debugging", env=WIDE)
    done["breakeven_flops"] = profiler(cwd, "breakeven", "--fit", str(fit), "--exercise", "debugging",
                                       "--metric", "flops", env=WIDE)
    done["export"] = profiler(cwd, "export", str(fit), "--out", "exported")
    done["compare"] = profiler(cwd, "compare", str(fit), str(EXAMPLE_FIT), "--out", "compared")
    done["validate"] = profiler(cwd, "validate", "--endpoint", served.url, "--model=served", "--exercise", "ktask",
                                "--values", "8,16", "--set", "c=8", "--set", "out=4", "--seeds", "1", "--budget", "30",
                                "--out", "reports", "--fits", "fits", env=WIDE)
    return cwd, folder, fit, done


@pytest.mark.slow
def test_the_run_writes_no_flops_and_fits_latency_alone(latency_only):
    _, folder, fit, done = latency_only
    assert "no local config of 'served'" in done["run"].stdout
    samples = read_samples(folder / "samples.csv")
    assert samples["flops"].isna().all() and (samples["latency_s"] > 0).all()
    assert json.loads((folder / "run.json").read_text())["endpoint"]["config"] is None
    document = json.loads(fit.read_text())
    assert document["schema_version"] == SCHEMA_VERSION == "1.12"
    assert document["model"] == {"name": "served", "dtype": "served", "attn_implementation": "served",
                                 "random_weights": False}
    assert {phase: set(metrics) for phase, metrics in document["curves"].items()} == {
        "prefill": {"latency_s"}, "decode": {"latency_s"}, "forward": {"latency_s"}}
    assert "memory" not in document and set(document["derived"]) == {"prefill", "decode", "forward"}
    cost_model = load_cost_model(fit)
    assert cost_model.call(32, 16) > cost_model.prefill(32) > 0 and not cost_model.has_flops
    for name in ("report.md", "report.html", "throughput.png", "latency-prefill.png"):
        assert (folder / name).is_file(), name


@pytest.mark.slow
def test_show_says_the_weights_are_the_servers_and_prints_no_flops(latency_only):
    show = latency_only[3]["show"]
    assert show.returncode == 0, show.stderr[-3000:]
    assert "parameters not known here" in show.stdout and "the server's own weights" in show.stdout
    assert "trained weights" not in show.stdout and "latency_s (s)" in show.stdout and "flops (" not in show.stdout
    assert "fitted from latency alone" in show.stdout


@pytest.mark.slow
def test_the_report_renders_without_flops(latency_only):
    _, folder, _, _ = latency_only
    report = (folder / "report.md").read_text()
    assert "| parameters | not known here |" in report and "No FLOP/s and no roofline" in report
    assert "fitted from latency alone and nothing is priced in FLOPs" in report  # the caveat
    table = report.split("| in | out | latency, KV cache |")[1].split("\n\n")[0]
    flops = [row.split("|")[5].strip() for row in table.splitlines()[2:]]
    assert flops and set(flops) == {"\\-"}  # the FLOPs column: markdown's escaped dash in every row


@pytest.mark.slow
def test_breakeven_prices_seconds_and_refuses_flops_in_one_line(latency_only):
    done = latency_only[3]
    assert done["breakeven"].returncode == 0, done["breakeven"].stderr[-3000:]
    assert "break-even:" in done["breakeven"].stdout and " s " in done["breakeven"].stdout
    refused = done["breakeven_flops"]
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "no FLOPs in the cost model of served" in refused.stderr and "--config NAME" in refused.stderr


@pytest.mark.slow
def test_export_writes_the_cost_table_without_flops(latency_only):
    cwd, _, fit, done = latency_only
    assert done["export"].returncode == 0, done["export"].stderr[-3000:]
    table = pd.read_csv(cwd / "exported" / f"{fit.stem}.cost-table.csv")
    assert table["flops"].isna().all() and (table["latency_s"] > 0).all() and len(table) > 0


@pytest.mark.slow
def test_compare_sets_it_beside_a_local_fit(latency_only):
    cwd, _, _, done = latency_only
    assert done["compare"].returncode == 0, done["compare"].stderr[-3000:]
    compared = (cwd / "compared" / "compare.md").read_text()
    assert "| parameters | not known here | 124.4M" in compared


@pytest.mark.slow
def test_a_family_with_it_is_refused_and_none_is_looked_for_beside_it(latency_only):
    cwd, _, fit, _ = latency_only
    other = json.loads(fit.read_text())
    other["model"]["name"] = "other"
    other_fit = fit.with_name(fit.name.replace("served--", "other--"))
    other_fit.write_text(json.dumps(other))  # a second served model of the same endpoint, beside the first
    alone = profiler(cwd, "breakeven", "--fit", str(fit), "--exercise", "ktask", env=WIDE)
    assert alone.returncode == 0 and "no fits of its family" in alone.stdout, alone.stderr[-3000:]
    both = profiler(cwd, "breakeven", "--fit", str(fit), "--fit", str(other_fit), "--exercise", "ktask")
    assert both.returncode == 2 and "Traceback" not in both.stderr
    assert "a family's size law needs each model's parameters" in both.stderr


@pytest.mark.slow
def test_flops_in_some_rows_only_is_refused(latency_only, tmp_path):
    _, folder, _, _ = latency_only
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    samples = pd.read_csv(mixed / "samples.csv")
    samples.loc[0, "flops"] = 1000
    samples.to_csv(mixed / "samples.csv", index=False)
    with pytest.raises(UserError, match=f"FLOPs in 1 rows and not in {len(samples) - 1:,}: a run counts every "
                                        "pass's FLOPs or none"):
        fit_run(mixed)


@pytest.mark.slow
@pytest.mark.slow
def test_validate_runs_against_it_within_the_positions_its_run_reached(latency_only):
    """The fit says no context (the server does not, and no config is known here): calls are bounded by the
    longest prompt its run sent and that call's output, and the exercise runs against its prices."""
    _, folder, fit, done = latency_only
    assert done["validate"].returncode == 0, done["validate"].stdout[-3000:] + done["validate"].stderr[-3000:]
    document = json.loads((folder / "validate-ktask.json").read_text())
    # a served context of P positions holds a prompt and its output: P - 1 by the local rule (endpoint_backend)
    assert document["max_positions"] + 1 == 64 + N_OUT == reached_positions(load_cost_model(fit))
    assert [row["value"] for row in document["rows"]] == [8, 16] and not document["skipped"]
    for row in document["rows"]:  # each variant predicted by the fit and measured on the server
        for variant in ("optimistic", "optimized"):
            (run,) = row["runs"][variant]
            assert run["predicted_s"] == pytest.approx(row[variant]) and run["latency_s"] > 0


def test_nothing_is_written_outside_the_named_folders(latency_only):
    cwd = latency_only[0]
    assert {path.parts[0] for path in files_under(cwd)} <= {"reports", "fits", "exported", "compared"}
