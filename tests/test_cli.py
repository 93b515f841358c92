import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch

from profiler.cli.main import main
from profiler.files import LOCK_FILE, run_folder
from profiler.measure.hardware import fingerprint, slug
from profiler.measure.run_document import RunDocument
from profiler.measure.samples import COLUMNS, PHASES
from tests.conftest import save_tiny
from tests.signals import sigint_as_at_a_terminal
from tests.user_error import run_argv, stop_before_measuring, user_error

ROOT = Path(__file__).resolve().parents[1]


def _fails_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("profiler: error: ") and message in err, err
    assert "Traceback" not in err


@pytest.fixture
def tiny(tmp_path):
    return str(save_tiny(tmp_path / "tiny", "gpt2"))


@pytest.mark.parametrize("argv, message", [
    (["run", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["run"], "--model"),
    (["run", "--model", "gpt2", "--lengths", "8,x"], "--lengths '8,x'"),
    (["run", "--model", "gpt2", "--lengths", "64:8"], "must go up"),
    (["run", "--model", "gpt2", "--lengths", ""], "--lengths '': expected a list"),  # not the default lengths
    (["run", "--endpoint", "http://127.0.0.1:9/v1", "--model", "x", "--lengths", ""], "--lengths '': expected a list"),
    (["run", "--model", "gpt2", "--budget", "-3"], "argument --budget: -3: expected seconds above 0"),
    (["run", "--model", "gpt2", "--budget", "soon"], "argument --budget: soon is not a number"),
    (["run", "--model", "gpt2", "--device", "tpu"], "--device tpu"),
    (["run", "--model", "gpt2", "--dtype", "int3"], "--dtype int3"),
    (["fly"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    _fails_with_one_line(capsys, argv, message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_without_a_gpu(capsys):
    _fails_with_one_line(capsys, ["run", "--model", "gpt2", "--device", "cuda"], "no CUDA device")


def test_length_beyond_the_model_maximum(capsys, tiny, tmp_path):
    _fails_with_one_line(capsys, ["run", "--model", tiny, "--lengths", "8,256", "--out", str(tmp_path / "o")],
                         "256 tokens is beyond tiny's maximum of 128 positions")


def test_unwritable_out(capsys, tiny, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails_with_one_line(capsys, ["run", "--model", tiny, "--out", str(blocker / "reports")], "cannot write to")


def _earlier_run(out: Path) -> tuple[Path, dict]:
    """An earlier run's files in the folder a run of tiny on this CPU writes: the folder and its files' text."""
    folder = run_folder(out, slug(fingerprint(torch.device("cpu"))), "tiny")
    folder.mkdir(parents=True)
    for name in ("samples.csv", "run.json", "hardware.json", "report.md"):
        (folder / name).write_text(f"the earlier run's {name}\n")
    return folder, {path.name: path.read_text() for path in folder.iterdir()}


@contextmanager
def _read_only(folder: Path):
    """``folder`` made read-only for the block: immutable for root (whom modes do not stop), else mode 555."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable flag, and root writes through modes")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("lock_left", [False, True], ids=["new-folder", "lock-file-left-by-an-earlier-run"])
def test_a_read_only_run_folder_is_one_line_before_building(capfd, monkeypatch, tiny, tmp_path, lock_left):
    folder, earlier = _earlier_run(tmp_path / "o")
    if lock_left:
        (folder / LOCK_FILE).write_text("")
        earlier[LOCK_FILE] = ""
    stop_before_measuring(monkeypatch)
    with _read_only(folder):
        line = user_error(capfd, run_argv(tiny, "--device", "cpu", "--out", str(tmp_path / "o")))
    assert line.startswith(f"profiler: error: cannot write to {folder}: ")
    assert {path.name: path.read_text() for path in folder.iterdir()} == earlier  # nothing moved, nothing lost


def test_a_previous_run_that_cannot_be_moved_aside_is_one_line(capfd, monkeypatch, tiny, tmp_path):
    folder, earlier = _earlier_run(tmp_path / "o")
    (folder / "previous").write_text("a file where previous/ would go\n")
    stop_before_measuring(monkeypatch)
    line = user_error(capfd, run_argv(tiny, "--device", "cpu", "--out", str(tmp_path / "o")))
    assert line.startswith(f"profiler: error: cannot move the previous run in {folder} aside to {folder}/previous/")
    left = {path.name: path.read_text() for path in folder.iterdir() if path.name not in (LOCK_FILE, "previous")}
    assert left == earlier


def test_pickle_checkpoint_refused(capsys, tiny, tmp_path):
    (Path(tiny) / "pytorch_model.bin").write_bytes(b"\x80\x04")
    _fails_with_one_line(capsys, ["run", "--model", tiny, "--out", str(tmp_path / "o")], "refusing pytorch_model.bin")


@pytest.mark.slow
def test_run_writes_the_output_contract(capsys, tiny, tmp_path):
    assert main(["run", "--model", tiny, "--lengths", "8,32", "--budget", "3", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "random weights" in out and "prefill" in out and "decode" in out
    (folder,) = (tmp_path / "o").glob("*/tiny")
    samples = pd.read_csv(folder / "samples.csv")
    assert list(samples.columns) == list(COLUMNS)
    assert {"prefill", "decode", "forward", "generate"} <= set(samples.phase) <= {*PHASES}  # extend where affordable
    assert (samples.n_cached == samples.n_ctx.where(samples.phase.isin(["decode", "extend"]), 0)).all()
    assert set(samples.weights) == {"random"}
    run = json.loads((folder / "run.json").read_text())
    assert run["model"]["random_weights"] is True and run["done"]["lengths"] == [8, 32]
    assert run["done"]["rows"] == len(samples) and run["points"]
    hardware = json.loads((folder / "hardware.json").read_text())
    assert hardware["slug"] == folder.parent.name and hardware["ceilings"]["peak_matmul_flops_per_s"] > 0


@pytest.mark.slow
def test_a_second_run_keeps_the_first(capsys, tiny, tmp_path):
    argv = ["run", "--model", tiny, "--lengths", "8", "--budget", "1", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    (folder,) = (tmp_path / "o").glob("*/tiny")
    first = (folder / "samples.csv").read_text()
    assert main(argv) == 0
    (previous,) = (folder / "previous").iterdir()
    assert (previous / "samples.csv").read_text() == first
    assert {p.name for p in previous.iterdir()} == {"samples.csv", "run.json", "hardware.json"}


@pytest.mark.slow
def test_several_models_in_one_run(capsys, tmp_path):
    a, b = save_tiny(tmp_path / "a", "gpt2"), save_tiny(tmp_path / "b", "llama")
    argv = ["run", "--model", str(a), "--model", str(b), "--lengths", "8", "--budget", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert {p.parent.name for p in (tmp_path / "o").glob("*/*/run.json")} == {"a", "b"}


def test_models_lists_the_shipped_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("gpt2-xl", "smollm2-135m", "qwen2.5-0.5b"):
        assert name in out


@pytest.mark.slow
@pytest.mark.parametrize("signal_number, status, last_line", [
    (signal.SIGINT, 130, "profiler: interrupted"),  # Ctrl-C
    (signal.SIGTERM, 143, "profiler: terminated"),  # kill, a scheduler's time limit, a container stopping
])
def test_a_signal_keeps_the_rows_and_run_json(tmp_path, signal_number, status, last_line):
    tiny = save_tiny(tmp_path / "tiny", "llama")
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "profiler", "run", "--model", str(tiny), "--lengths", "8:128", "--budget", "600",
         "--out", str(out)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=sigint_as_at_a_terminal,
    )
    try:  # a real process and a real signal: polled, at most 120 s for rows and 60 s to exit
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            csvs = list(out.glob("*/tiny/samples.csv"))
            if csvs and len(csvs[0].read_text().splitlines()) > 10:
                break
            time.sleep(0.2)
        os.kill(process.pid, signal_number)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # never left running by a failure above; a no-op once it has exited
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == last_line
    (folder,) = out.glob("*/tiny")
    run = RunDocument.read(folder)  # what `fit` and `report` read: a run.json they take
    assert run.done.interrupted is True
    assert len(pd.read_csv(folder / "samples.csv")) == run.done.rows > 9
    assert not (folder / LOCK_FILE).read_text()  # the folder was let go


@pytest.mark.slow
def test_end_to_end_gpt2_on_a_short_grid(capsys, tmp_path):
    # 20 s holds both lengths on a quiet 2-core CPU with room to spare; on a busy one the budget may not afford
    # 64: then the run says so, with its predicted cost
    assert main(["run", "--model", "gpt2", "--lengths", "8,64", "--budget", "20", "--out", str(tmp_path / "o")]) == 0
    (folder,) = (tmp_path / "o").glob("*/gpt2")
    samples = pd.read_csv(folder / "samples.csv")
    prefill = samples[(samples.phase == "prefill") & (samples.batch == 1)].groupby("n_ctx")["latency_s"].median()
    run = json.loads((folder / "run.json").read_text())
    if 64 in prefill:
        assert prefill[64] > prefill[8]  # a longer prompt costs more: a real pass was timed
        assert run["done"]["generate_pairs"]
    else:  # no generate pair fits within 8 tokens
        (skip,) = [s for s in run["done"]["skipped"] if s["n_ctx"] == 64 and s.get("phase") == "prefill"]
        assert skip["reason"] == "time budget" and skip["predicted_s"] > 0 and skip["budget_s"] == 20
        assert "not measured within the time budget: n = 64" in capsys.readouterr().out
    assert run["model"]["params"] == 124_439_808


@pytest.mark.parametrize("spent_s, budget_s", [(0.0, 50.0), (11.6, 38.4), (35.0, 15.0), (59.0, 15.0), (600.0, 15.0)])
def test_the_default_budget_is_what_is_left_of_the_minute(spent_s, budget_s):
    from profiler.cli.run import default_budget_s

    assert default_budget_s(spent_s) == pytest.approx(budget_s)


@pytest.mark.slow
def test_a_run_without_budget_measures_for_the_rest_of_its_minute(capsys, tiny, tmp_path):
    argv = ["run", "--model", tiny, "--lengths", "8", "--out", str(tmp_path / "o"), "--fits", str(tmp_path / "f")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("budget: ")]
    words = line.split()
    budget_s, spent_s = float(words[1]), float(words[words.index("after") + 1])
    assert budget_s == pytest.approx(max(15.0, 60.0 - spent_s - 10.0), abs=0.051)  # both printed to 0.1 s
    assert 0 < spent_s < 60  # ceilings and the build of a tiny model, in a process that has imported torch already
    (folder,) = (tmp_path / "o").glob("*/tiny")
    assert RunDocument.read(folder).asked.budget_s == budget_s
