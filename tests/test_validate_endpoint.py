"""``validate --endpoint`` against a real server (``transformers serve``, tests/serving.py, one per module): profiled
first by ``run --endpoint`` on a short grid, then one exercise run on the server and set against the endpoint's fit;
the key in no file and no line printed; every mistake one line, exit 2, before any call is sent."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from profiler.cli.main import main
from profiler.lba.calls import CallRecorder
from profiler.lba.exercises import KTask
from profiler.lba.validation_document import ValidationDocument
from profiler.measure.endpoint.address import endpoint_slug, parse_endpoint

KEY_ENV = "AALP_TEST_VALIDATE_KEY"
SECRET = "sk-test-Vd4Rq82mWxN7cLp1"  # distinctive: found only where it leaked


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.serving import served_model

    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.fixture(scope="module")
def profiled(served, tmp_path_factory):
    """``run --endpoint`` on a short grid: (out, fits, run folder)."""
    root = tmp_path_factory.mktemp("profiled")
    out, fits = root / "reports", root / "fits"
    assert main(["run", "--endpoint", served.url, "--model", served.model, "--lengths", "1,2,4,8,16,32,64",
                 "--budget", "10", "--concurrency", "1", "--out", str(out), "--fits", str(fits)]) == 0
    slug = endpoint_slug(parse_endpoint(served.url, served.model, None))
    return out, fits, out / slug / "served"


def _validate(served, out, fits, *extra) -> list[str]:
    return ["validate", "--endpoint", served.url, "--model", served.model, "--api-key-env", KEY_ENV,
            "--exercise", "ktask", "--values", "8,16", "--set", "c=8", "--set", "out=4", "--budget", "60",
            "--out", str(out), "--fits", str(fits), *extra]


def _files_hold(root, text: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


@pytest.mark.slow
def test_each_program_runs_on_the_server_measured_against_the_endpoint_fit(served, profiled, capsys):
    out, fits, folder = profiled
    capsys.readouterr()
    assert main(_validate(served, out, fits)) == 0
    printed = capsys.readouterr()
    document = ValidationDocument.read(folder / "validate-ktask.json")
    slug = endpoint_slug(parse_endpoint(served.url, served.model, None))
    assert document.hardware_slug == slug and document.fit == str(fits / f"served--{slug}.json")
    assert document.max_positions == 511  # the served 512 hold a prompt and its max_tokens
    assert "streamed completions" in document.measurement and served.url in document.measurement
    assert document.values() == [8, 16] and not document.skipped
    for row in document.rows:
        for variant in ("optimistic", "optimized"):
            (run,) = row.runs[variant]
            recorder = CallRecorder()
            getattr(KTask, variant)(KTask.defaults() | {"n": row.value, "c": 8, "out": 4}, recorder,
                                    np.random.default_rng(0))
            assert run.calls == recorder.calls == run.generates  # every call of the program, each alone
            assert row.measured[variant] == run.latency_s >= run.calls_latency_s > 0
            assert run.predicted_s == pytest.approx(row.cost[variant]) and row.cost[variant] > 0
            assert row.error[variant] == pytest.approx(row.cost[variant] / run.latency_s - 1)
            assert run.speed_before > 0 and run.speed_after > 0
    assert "measured against" in printed.out and "validate-ktask.json" in printed.out
    # the key: in no file written and no line printed
    assert _files_hold(out, SECRET) == [] and _files_hold(fits, SECRET) == []
    assert SECRET not in printed.out + printed.err


@pytest.mark.slow
def test_a_missing_fit_is_made_from_the_earlier_endpoint_run(served, profiled, tmp_path, capsys):
    out = profiled[0]
    copied, fits = tmp_path / "reports", tmp_path / "fits"
    shutil.copytree(out, copied)
    slug = endpoint_slug(parse_endpoint(served.url, served.model, None))
    samples = (copied / slug / "served" / "samples.csv").read_bytes()
    capsys.readouterr()
    assert main(_validate(served, copied, fits, "--values", "8", "--json")) == 0
    assert (fits / f"served--{slug}.json").is_file()
    assert (copied / slug / "served" / "samples.csv").read_bytes() == samples  # fitted, not profiled again
    printed = json.loads(capsys.readouterr().out)  # --json: the document alone on stdout
    assert printed == ValidationDocument.read(copied / slug / "served" / "validate-ktask.json").to_json()
    assert printed["rows"][0]["measured_optimized"] > 0
    assert SECRET not in json.dumps(printed) and _files_hold(tmp_path, SECRET) == []


HOSTILE = {
    "a local device": (["--device", "cpu"], "--device places a local model"),
    "local threads": (["--threads", "1"], "--threads places a local model"),
    "a parallel schedule": (["--schedule", "parallel"], "no batch surface"),
    "a batch limit": (["--max-batch", "4"], "no batch surface"),
    "prefix reuse": (["--prefix-cache", "on"], "no extend surface"),
    "a key variable not set": (["--api-key-env", "AALP_NOT_SET_ANYWHERE"], "is not set"),
    "a key given as the variable": (["--api-key-env", SECRET], "not the key itself"),
    "an unknown config": (["--config", "no-such-model-anywhere"], "unknown model"),
    "a grid beyond the served context": (["--values", "600,700"], "beyond served's 511 positions"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_mistake_is_one_line_before_any_call(name, served, tmp_path, capsys):
    extra, words = HOSTILE[name]
    assert main(_validate(served, tmp_path / "out", tmp_path / "fits") + extra) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1 and "Traceback" not in printed.err
    assert words in printed.err
    assert SECRET not in printed.err
    assert not (tmp_path / "fits").exists()  # nothing profiled, nothing fitted


@pytest.mark.parametrize("url, words", [
    ("ftp://127.0.0.1:1/v1", "http:// or https://"),
    ("http://user:{secret}@127.0.0.1:1/v1", "no user or password"),
    ("http://127.0.0.1:1/v1?key={secret}", "no query"),
])
def test_a_bad_endpoint_is_one_line_that_echoes_no_secret(url, words, tmp_path, capsys):
    args = ["validate", "--endpoint", url.format(secret=SECRET), "--model", "m", "--exercise", "ktask",
            "--out", str(tmp_path), "--fits", str(tmp_path / "fits")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and SECRET not in err


def test_a_served_name_without_a_fit_or_a_local_config_is_one_line(tmp_path, capsys):
    args = ["validate", "--endpoint", "http://127.0.0.1:1/v1", "--model", "org/served-elsewhere", "--exercise",
            "ktask", "--out", str(tmp_path), "--fits", str(tmp_path / "fits")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--config NAME" in err


@pytest.mark.parametrize("option", [["--api-key-env", KEY_ENV], ["--config", "tiny"]])
def test_endpoint_options_without_an_endpoint_are_one_line(option, tmp_path, capsys):
    assert main(["validate", "--model", "gpt2", *option, "--out", str(tmp_path)]) == 2
    assert "is for --endpoint" in capsys.readouterr().err
