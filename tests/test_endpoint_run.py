"""``run --endpoint`` end to end against a real server (``tests/serving.py``, one per module): the run's files as a
local run's, so ``fit``, ``report`` and ``breakeven --fit`` take them unchanged; nothing written outside ``--out``
and ``--fits``; retried failures in ``run.json`` and the key in no output (through ``tests/fault_proxy.py``); Ctrl-C
keeps the rows; a user's mistake is one line, exit 2, before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiler.costmodel.fit_file import load_cost_model
from profiler.measure.endpoint.sweep import N_OUT
from profiler.measure.samples import read_samples
from tests.fault_proxy import proxied
from tests.serving import free_port, served_model
from tests.signals import sigint_as_at_a_terminal
from tests.user_error import user_error

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = [8, 16, 32, 64]
KEY_ENV = "AALP_TEST_ENDPOINT_KEY"
SECRET = "sk-test-Rw4Nq81mZpXc6Tl2"  # distinctive: found only where it leaked


def profiler(cwd: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m profiler ARGV`` in ``cwd``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "profiler", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)


def files_under(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file()}


def run_argv(url: str, model: str, *options: str, budget: str = "6") -> list[str]:
    return ["run", "--endpoint", url, f"--model={model}", "--lengths", ",".join(map(str, LENGTHS)), "--budget", budget,
            "--out", "reports", "--fits", "fits", *options]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint_run(served, tmp_path_factory):
    """One run on a short grid in a fresh working directory, then ``fit`` of its samples into another folder,
    ``report`` and ``breakeven --fit``: ``(working directory, run folder, fit file, the four commands' results)``."""
    cwd = tmp_path_factory.mktemp("cwd")
    done = {"run": profiler(cwd, *run_argv(served.url, served.model, "--concurrency", "1,2"))}
    assert done["run"].returncode == 0, done["run"].stdout[-3000:] + done["run"].stderr[-3000:]
    slug = f"endpoint-127.0.0.1-{served.url.split(':')[2].split('/')[0]}"
    folder, fit = cwd / "reports" / slug / "served", cwd / "fits" / f"served--{slug}.json"
    done["fit"] = profiler(cwd, "fit", str(folder / "samples.csv"), "--fits", "refits")
    done["report"] = profiler(cwd, "report", str(folder), "--fits", "fits")
    done["breakeven"] = profiler(cwd, "breakeven", "--fit", str(fit), "--exercise", "debugging")
    return cwd, folder, fit, done


@pytest.mark.slow
def test_the_run_writes_a_local_runs_files_with_the_rows_of_each_call(endpoint_run, served):
    _, folder, fit, _ = endpoint_run
    for name in ("samples.csv", "run.json", "hardware.json", "concurrency.csv", "report.md", "report.html"):
        assert (folder / name).is_file(), name
    assert fit.is_file()
    samples = read_samples(folder / "samples.csv", model="served", dtype="served")
    assert set(samples["phase"]) == {"prefill", "decode", "forward", "generate"}
    by_phase = {phase: rows for phase, rows in samples.groupby("phase")}
    for phase in ("prefill", "forward"):  # the prompt's tokens, as the server counted them
        assert set(by_phase[phase]["n_ctx"]) == set(LENGTHS) and (by_phase[phase]["n_new"] == by_phase[phase]["n_ctx"]).all()
    # each call's mean step: a call whose server sent two tokens in one chunk has none (transformers 5.25 may)
    assert 0 < len(by_phase["decode"]) and set(by_phase["decode"]["n_ctx"]) <= {n + (N_OUT - 2) // 2 for n in LENGTHS}
    assert set(by_phase["generate"]["n_new"]) == {N_OUT} and set(by_phase["generate"]["n_ctx"]) == set(LENGTHS)
    # one prefill and generate row for each call of 16 tokens, and a decode row or a count of the one left out
    left_out = json.loads((folder / "run.json").read_text())["endpoint"]["decode_rows_left_out"]
    assert len(by_phase["prefill"]) == len(by_phase["decode"]) + left_out == len(by_phase["generate"])
    assert (samples["flops"] > 0).all() and samples["kv_cache_bytes"].isna().all()
    prefill_flops = by_phase["prefill"].groupby("n_ctx")["flops"].first()
    assert (by_phase["forward"].groupby("n_ctx")["flops"].first() == prefill_flops).all()  # one pass over the prompt
    assert set(samples["device"]) == {folder.parent.name}


@pytest.mark.slow
def test_run_json_says_how_the_output_was_forced_and_that_usage_held(endpoint_run, served):
    _, folder, _, _ = endpoint_run
    run = json.loads((folder / "run.json").read_text())
    endpoint = run["endpoint"]
    assert endpoint["forcing"] == "generation_config" and endpoint["usage_mismatches"] == []
    assert endpoint["url"] == served.url and endpoint["served_model"] == served.model
    assert endpoint["max_positions_from"] == "config"
    assert endpoint["failures"] == [] and endpoint["stopped"] is None and endpoint["n_out"] == N_OUT
    assert endpoint["concurrency"] or endpoint["concurrency_skipped"]  # whichever the budget left on this machine
    assert 0 < endpoint["itl_p50_s"] <= endpoint["itl_p99_s"]
    assert run["done"]["lengths"] == LENGTHS and not run["done"]["interrupted"]
    assert run["asked"]["device"] == "endpoint" and run["model"]["max_positions"] == 512
    assert run["done"]["energy"]["counter"] is None and "served model" in run["done"]["energy"]["reason"]
    hardware = json.loads((folder / "hardware.json").read_text())
    assert (hardware["device"], hardware["endpoint"], hardware["ceilings"]) == ("endpoint", served.url, {})


@pytest.mark.slow
def test_fit_report_and_breakeven_take_the_run_unchanged(endpoint_run):
    cwd, folder, fit, done = endpoint_run
    for command in ("fit", "report", "breakeven"):
        assert done[command].returncode == 0, done[command].stderr[-3000:]
    refit = cwd / "refits" / fit.name
    model = load_cost_model(refit)  # valid against the schema: device endpoint, no ceilings
    assert model.hardware["device"] == "endpoint" and model.model.dtype == "served"
    assert model.call(32, 16) > model.prefill(32) > 0
    assert "break-even" in done["breakeven"].stdout
    assert "Measured from a client of" in (folder / "report.md").read_text()


@pytest.mark.slow
def test_nothing_is_written_outside_out_and_fits(endpoint_run):
    cwd, _, _, _ = endpoint_run
    tops = {path.parts[0] for path in files_under(cwd)}
    assert tops <= {"reports", "fits", "refits"}, tops


@pytest.mark.slow
def test_retried_failures_are_in_run_json_and_the_key_in_no_output(served, tmp_path):
    with proxied(served.url.removesuffix("/v1")) as proxy:
        # the forcing probe's two requests pass (ignore_eos refused, generation_config taken); the first call after
        # them meets a 429, then its stream cut after its first event (its token, before its finish_reason)
        proxy.plan(["pass", "pass", "429", "cut:1"], retry_after_s=0.0)
        done = profiler(tmp_path, *run_argv(f"{proxy.url}/v1", served.model, "--api-key-env", KEY_ENV,
                                            "--concurrency", "1", budget="3"), env={KEY_ENV: SECRET})
    assert done.returncode == 0, done.stderr[-3000:]
    run = next(tmp_path.glob("reports/*/served/run.json"))
    failures = json.loads(run.read_text())["endpoint"]["failures"]
    assert [failure["kind"] for failure in failures] == ["http_429", "dropped_stream"]
    assert json.loads(run.read_text())["endpoint"]["api_key_env"] == KEY_ENV
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_ctrl_c_keeps_every_row_and_says_interrupted(served, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "profiler", *run_argv(served.url, served.model, budget="300")],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=sigint_as_at_a_terminal)
    samples, seen = None, 0
    end = time.monotonic() + 300
    while seen < 10 and time.monotonic() < end and process.poll() is None:  # until some calls' rows are written
        samples = next(tmp_path.glob("reports/*/served/samples.csv"), None)
        seen = len(samples.read_text().splitlines()) - 1 if samples else 0
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err
    run = json.loads((samples.parent / "run.json").read_text())
    assert run["done"]["interrupted"] and run["done"]["rows"] >= seen
    assert len(read_samples(samples)) == run["done"]["rows"]


@pytest.mark.parametrize("options, message", [
    (["--endpoint", "ftp://127.0.0.1/v1"], "http:// or https://"),
    (["--endpoint", "http://user:secret@127.0.0.1/v1"], "no user or password"),
    (["--endpoint", "http://127.0.0.1/v1?key=x"], "no query or fragment"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--device", "cpu"], "--device measures a local model"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--batch", "2"], "--batch measures a local model"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--threads", "1"], "--threads measures a local model"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--model", "other"], "one --model"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--concurrency", "0"], "from 1 to 64"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--concurrency", "65"], "from 1 to 64"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--concurrency", "abc"], "from 1 to 64"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--lengths", "8:x"], "--lengths"),
    (["--endpoint", "http://127.0.0.1:1/v1", "--config", "no-such-model-here"], "unknown model"),
    (["--concurrency", "2"], "--concurrency is for --endpoint runs"),
    (["--api-key-env", "HOME"], "--api-key-env is for --endpoint runs"),
])
def test_a_mistake_is_one_line_before_anything_is_written(capfd, tmp_path, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    assert message in user_error(capfd, ["run", "--model=gpt2", *options, "--out", "reports", "--fits", "fits"])
    assert not list(tmp_path.iterdir())


def test_an_endpoint_nothing_listens_at_is_one_line(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = user_error(capfd, ["run", "--endpoint", f"http://127.0.0.1:{free_port()}/v1", "--model=gpt2"])
    assert "cannot reach the endpoint" in line and not list(tmp_path.iterdir())


def test_lengths_beyond_the_configs_positions_are_refused_before_any_request(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = user_error(capfd, ["run", "--endpoint", f"http://127.0.0.1:{free_port()}/v1", "--model=gpt2",
                              "--lengths", "8,1020"])
    assert "1020 tokens and 16 out pass gpt2's maximum of 1024 positions" in line


@pytest.mark.slow
def test_a_served_model_without_a_local_config_or_a_listed_length_needs_lengths(served, tmp_path):
    """A served name no local config has, which the server's /models does not give a length for: the run cannot
    choose lengths, and says so in one line."""
    missing = profiler(tmp_path, "run", "--endpoint", served.url, "--model=not-a-local-model")
    assert missing.returncode == 2 and "--lengths" in missing.stderr and "Traceback" not in missing.stderr
