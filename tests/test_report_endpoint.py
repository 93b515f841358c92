"""The report of an endpoint run (``profiler/report/endpoint_section.py``, ``serving_overhead.py``,
``fig_endpoint.py``) on real runs of the test server (``tests/serving.py``, one per module): an in-process run of
the served folder, then ``run --endpoint ... --in-process FIT`` with a key in the environment; its report against
its own files (run.json, samples.csv, the in-process fit), the same run re-rendered without the fit, and the key
in neither. A wrong ``--in-process`` is one line, before any request."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from profiler.costmodel.fit_file import load_cost_model
from profiler.measure.endpoint.endpoint_document import EndpointRecord
from profiler.report.units import quantity, significant
from tests.serving import free_port, served_model
from tests.user_error import user_error

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "AALP_TEST_REPORT_KEY"
SECRET = "sk-test-Qv7Lm20xKbTw9Ys3"  # distinctive: found only where it leaked
EXAMPLE_FIT = ROOT / "fits/example/gpt2--cpu-intel-xeon-processor-2t.json"
EXAMPLE_RUN = ROOT / "reports/example/cpu-intel-xeon-processor-2t/gpt2"


def profiler(cwd: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "profiler", *argv], check=False, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@dataclass(frozen=True)
class Runs:
    root: Path
    served_folder: str  # the folder the server loaded: the served model's name, and the local config
    folder: Path  # the endpoint run's folder, rendered with the in-process fit
    plain: Path  # a copy of it, rendered without
    in_process: Path  # the in-process fit


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("report-endpoint")
    with served_model(root) as served:
        profiler(root, "run", "--model", served.model, "--lengths", "8:128", "--budget", "8", "--batch", "1",
                 "--threads", "1", "--out", "local", "--fits", "fits")
        (in_process,) = (root / "fits").glob("served--cpu-*.json")
        profiler(root, "run", "--endpoint", served.url, "--model", served.model, "--api-key-env", KEY_ENV,
                 "--lengths", "8,16,32,64", "--budget", "10", "--concurrency", "1,2", "--out", "reports",
                 "--fits", "fits", "--in-process", str(in_process), env={KEY_ENV: SECRET})
    (folder,) = (root / "reports").glob("endpoint-127.0.0.1-*/served")
    plain = root / "plain" / folder.parent.name / "served"
    shutil.copytree(folder, plain, ignore=shutil.ignore_patterns("*.png", "report.*", ".lock"))
    profiler(root, "report", str(plain), "--fits", "fits")
    return Runs(root, served.model, folder, plain, in_process)


def commands(report: Path) -> list[str]:
    """The ``python -m profiler`` commands the serving-overhead section of a report gives, as written (Markdown's
    escapes undone)."""
    text = report.read_text().replace("\\", "")
    section = text[text.index("## Serving overhead"):text.index("## Latency per pass")]
    return re.findall(r"`(python -m profiler [^`]*)`", section)


def run_command(cwd: Path, command: str, **placeholders: str) -> None:
    """``command`` as a report gives it, its placeholders filled in, run in ``cwd`` as a user would."""
    for placeholder, value in placeholders.items():
        command = command.replace(placeholder, value)
    profiler(cwd, *shlex.split(command)[3:])


def endpoint_record(folder: Path) -> EndpointRecord:
    return EndpointRecord.from_json(json.loads((folder / "run.json").read_text())["endpoint"])


def medians(folder: Path, phase: str) -> dict[int, list[float]]:
    """samples.csv's latencies of ``phase`` per n_ctx, read with the csv module."""
    by_length: dict[int, list[float]] = {}
    with (folder / "samples.csv").open() as file:
        for row in csv.DictReader(file):
            if row["phase"] == phase:
                by_length.setdefault(int(row["n_ctx"]), []).append(float(row["latency_s"]))
    return by_length


@pytest.mark.slow
def test_the_endpoint_section_shows_the_checks_the_load_table_and_the_probe(runs):
    report = (runs.folder / "report.md").read_text()
    endpoint = endpoint_record(runs.folder)
    section = report[report.index("## Endpoint"):report.index("## Serving overhead")]
    assert endpoint.url in section and "forced by generation\\_config" in section
    assert "Every call's usage was what was asked." in section and "No attempt failed." in section
    assert endpoint.concurrency and endpoint.prefix_probe is not None  # the budget left room for both
    for level in endpoint.concurrency:  # one row per level, its figures as run.json holds them
        row = (f"| {level.concurrency} | {level.calls} | {significant(level.output_tokens_per_s)} | "
               f"{significant(level.requests_per_s)} | {quantity(level.ttft_p50_s, 's')} | "
               f"{quantity(level.ttft_p99_s, 's')} |")
        assert row in section, row
    assert f"Verdict: {endpoint.prefix_probe.verdict}" in section
    assert f"TTFT {quantity(endpoint.prefix_probe.ttft_repeat_s, 's')} for the repeat" in section
    for figure in ("concurrency.png", "serving-overhead.png"):
        assert (runs.folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({figure})" in report
    assert "ceilings are short best-of-five" not in report  # a client sees none of the server's devices


@pytest.mark.slow
@pytest.mark.parametrize("phase, what", [("prefill", "overhead per call"), ("decode", "overhead per token")])
def test_the_overhead_is_the_endpoints_median_less_the_in_process_curve(runs, phase, what):
    """Each row: the median of the endpoint's times at a length (TTFT; a call's mean gap between tokens) less the
    in-process fit's curve there, as the report prints it."""
    report = (runs.folder / "report.md").read_text()
    assert f"| {what} |" in report
    curve = load_cost_model(runs.in_process).curve(phase, "latency_s")
    lengths = medians(runs.folder, phase)
    assert len(lengths) == 4
    for n_ctx, latencies in sorted(lengths.items()):
        median_s, in_process_s = statistics.median(latencies), float(curve.predict(n_ctx))
        extrapolated = "" if curve.n_min <= n_ctx <= curve.n_max else " (extrapolated)"
        row = (f"| {n_ctx:,} | {len(latencies)} | {quantity(median_s, 's')} | {quantity(in_process_s, 's')}"
               f"{extrapolated} | {quantity(median_s - in_process_s, 's')} |")
        assert row in report, row


@pytest.mark.slow
def test_without_an_in_process_fit_the_section_says_how_to_make_one(runs):
    report = (runs.plain / "report.md").read_text()
    section = report[report.index("## Serving overhead"):report.index("## Latency per pass")]
    assert "No in-process profile of this model was given" in section
    assert f"python -m profiler run --model {runs.served_folder} --fits fits" in section.replace("\\", "")
    assert "--in-process fits/served--" in section.replace("\\", "")
    assert "overhead per call |" not in report and not (runs.plain / "serving-overhead.png").exists()
    assert (runs.plain / "concurrency.png").is_file()  # the rest of the endpoint section is there
    make, render = commands(runs.plain / "report.md")
    assert make == f"python -m profiler run --model {runs.served_folder} --fits fits"
    slug = runs.in_process.stem.removeprefix("served--")  # the fit that command made, in the fixture
    run_command(runs.root, render, **{"<hardware-slug>": slug})  # the report as its own words say to render it
    assert "| overhead per call |" in (runs.plain / "report.md").read_text()


@pytest.mark.slow
def test_a_served_name_no_local_config_has_gets_the_commands_that_name_one(runs, tmp_path_factory):
    """A server serving its model under a name that means nothing here: the run is fitted from latency alone, and
    its report's commands, followed with the served folder for NAME, give the overhead."""
    cwd = tmp_path_factory.mktemp("unnamed")  # no folder "served" here: the name resolves to nothing
    shutil.copytree(runs.in_process.parent, cwd / "fits", ignore=shutil.ignore_patterns("*--endpoint-*"))
    with served_model(tmp_path_factory.mktemp("hosted"), by_name=True) as hosted:
        profiler(cwd, "run", "--endpoint", hosted.url, "--model", hosted.model, "--lengths", "8,16,32,64",
                 "--budget", "4", "--concurrency", "1", "--out", "reports", "--fits", "fits")
        (report,) = cwd.glob("reports/endpoint-*/served/report.md")
        assert "The served model is no local model here" in report.read_text()
        make, rerun = commands(report)
        assert make == "python -m profiler run --model NAME --fits fits"
        assert rerun.startswith(f"python -m profiler run --endpoint {hosted.url} --model served --config NAME ")
        slug = runs.in_process.stem.removeprefix("served--")
        run_command(cwd, rerun, NAME=str(Path(hosted.log).parent / "served"), **{"<model>": "served",
                                                                                "<hardware-slug>": slug})
    assert "| overhead per call |" in report.read_text()


@pytest.mark.slow
def test_the_key_is_in_no_report(runs):
    for folder in (runs.folder, runs.plain):
        for name in ("report.md", "report.html"):
            text = (folder / name).read_text()
            assert SECRET not in text and f"environment variable {KEY_ENV}" in text.replace("\\", "")


@pytest.mark.slow
def test_an_endpoints_own_fit_is_no_in_process_profile(runs, capfd):
    (own,) = (runs.root / "fits").glob("served--endpoint-*.json")
    line = user_error(capfd, ["report", str(runs.folder), "--fits", str(runs.root / "fits"), "--in-process", str(own)])
    assert "the fit of an endpoint" in line


def test_a_fit_of_another_model_is_refused_before_any_request(capfd, tmp_path, monkeypatch):
    """Nothing listens at the URL: the one line is about the fit, so it was checked first."""
    monkeypatch.chdir(tmp_path)
    line = user_error(capfd, ["run", "--endpoint", f"http://127.0.0.1:{free_port()}/v1", "--model=distilgpt2",
                              "--in-process", str(EXAMPLE_FIT)])
    assert "a fit of gpt2, not of distilgpt2" in line and not list(tmp_path.iterdir())


def test_in_process_is_for_endpoint_runs(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "--in-process is for --endpoint runs" in user_error(capfd, ["run", "--model=gpt2", "--in-process",
                                                                       str(EXAMPLE_FIT)])
    copy = tmp_path / "gpt2"
    shutil.copytree(EXAMPLE_RUN, copy, ignore=shutil.ignore_patterns("*.png", "report.*"))
    line = user_error(capfd, ["report", str(copy), "--fits", str(EXAMPLE_FIT.parent), "--in-process", str(EXAMPLE_FIT)])
    assert "--in-process is for the report of an endpoint run" in line and not (copy / "report.md").exists()
