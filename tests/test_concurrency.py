"""One writer per run folder (``profiler.files.hold_run_folder``): a run or a validation into a
folder another process holds is refused in one line naming that process; the lock ends with its
holder however it ends; two runs started together into one ``--out`` leave every finished run's
rows and run.json intact, in the folder or in ``previous/``, and the fit is of the folder's rows."""

import fcntl
import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch

from profiler import files
from profiler.errors import UserError
from profiler.files import LOCK_FILE, fit_path, hold_run_folder, run_folder
from profiler.measure.hardware import fingerprint, slug
from tests.conftest import save_tiny
from tests.user_error import run_argv, stop_before_measuring, user_error

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLDER = """import sys
from profiler.files import hold_run_folder
with hold_run_folder(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_elsewhere(folder: Path):
    """``folder`` held by another process for the block: that process."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=ENV, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline() == "held\n"  # EOF (not a hang) if the holder failed
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


def held_by_another_description(folder: Path) -> bool:
    """Whether ``folder``'s lock is taken, asked through a file description of its own (flock locks
    conflict between descriptions, even within one process)."""
    descriptor = os.open(folder / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def refusal(folder: Path, pid: int) -> str:
    return (f"profiler: error: {folder} is being written by another run (pid {pid}); wait for it or use "
            "another --out")


def test_a_held_folder_is_refused_naming_its_holder(tmp_path):
    folder = tmp_path / "o" / "hw" / "tiny"
    with held_elsewhere(folder) as holder:
        assert (folder / LOCK_FILE).read_text() == f"{holder.pid}\n"
        with pytest.raises(UserError) as refused:
            with hold_run_folder(folder):
                pass
        assert f"profiler: error: {refused.value}" == refusal(folder, holder.pid)


def test_a_run_refused_before_the_holder_wrote_its_pid_reads_it_again(tmp_path, monkeypatch):
    """The holder takes the lock, then writes its pid: a run refused in between (as in two runs started together)
    reads the file again and names the pid; a holder that never writes it is named "unknown", after a bounded
    wait."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, nothing written yet
    waits, writes_at = [], {3}  # the holder writes its pid while the refused run waits a third time

    def the_holder_writes_while_refused_waits(seconds):
        waits.append(seconds)
        if len(waits) in writes_at:
            os.pwrite(holder, b"4242\n", 0)

    monkeypatch.setattr(files.time, "sleep", the_holder_writes_while_refused_waits)
    try:
        with pytest.raises(UserError) as refused:
            with hold_run_folder(folder):
                pass
        assert f"profiler: error: {refused.value}" == refusal(folder, 4242) and len(waits) == 3
        os.ftruncate(holder, 0)
        waits.clear()
        writes_at.clear()  # a holder that never writes it
        with pytest.raises(UserError, match=r"another run \(pid unknown\)"):
            with hold_run_folder(folder):
                pass
        assert len(waits) == files.HOLDER_READS - 1 and sum(waits) < 0.1
    finally:
        os.close(holder)


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    folder = tmp_path / "run"
    with held_elsewhere(folder) as holder:
        holder.send_signal(signal.SIGKILL)  # no clean-up of its own: the kernel releases the lock
        holder.wait(timeout=30)
    with hold_run_folder(folder):
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert (folder / LOCK_FILE).read_text() == ""
    assert not held_by_another_description(folder)


def test_a_process_may_hold_its_folder_twice(tmp_path):
    """validate holds its folder, then the run it starts for a missing fit takes it again."""
    folder = tmp_path / "run"
    with hold_run_folder(folder):
        with hold_run_folder(tmp_path / "." / "run"):  # the same folder, spelt another way
            assert held_by_another_description(folder)
        assert held_by_another_description(folder)  # the inner block's end released nothing
    assert not held_by_another_description(folder)


def test_a_run_into_a_held_folder_is_one_line_and_moves_nothing(capfd, monkeypatch, tmp_path):
    tiny = save_tiny(tmp_path / "tiny", "gpt2")
    out = tmp_path / "o"
    folder = run_folder(out, slug(fingerprint(torch.device("cpu"))), "tiny")
    folder.mkdir(parents=True)
    (folder / "samples.csv").write_text("an earlier run's rows\n")
    stop_before_measuring(monkeypatch)
    with held_elsewhere(folder) as holder:
        assert user_error(capfd, run_argv(tiny, "--device", "cpu", "--out", str(out))) == refusal(folder, holder.pid)
    assert (folder / "samples.csv").read_text() == "an earlier run's rows\n"
    assert not (folder / "previous").exists()


def test_validate_into_a_held_folder_is_one_line(capfd, monkeypatch, tmp_path):
    tiny = save_tiny(tmp_path / "tiny", "gpt2")
    out = tmp_path / "o"
    folder = run_folder(out, slug(fingerprint(torch.device("cpu"))), "tiny")

    def reached(*args, **kwargs):
        raise AssertionError("validate went on into a folder another process holds")

    monkeypatch.setattr("profiler.cli.validate.cost_model_for", reached)
    monkeypatch.setattr("profiler.cli.validate.load_model", reached)
    argv = ["validate", f"--model={tiny}", "--exercise", "debugging", "--device", "cpu", "--out", str(out)]
    with held_elsewhere(folder) as holder:
        assert user_error(capfd, argv) == refusal(folder, holder.pid)


def _intact_run(folder: Path, hardware_slug: str) -> int:
    """Check that ``folder`` holds one whole run (rows, and the run.json and hardware.json written with
    them); its seed, which tells the runs of this test apart."""
    samples = pd.read_csv(folder / "samples.csv")
    run = json.loads((folder / "run.json").read_text())
    hardware = json.loads((folder / "hardware.json").read_text())
    assert run["done"]["rows"] == len(samples) > 0 and not run["done"]["interrupted"]
    assert set(samples["model"]) == {"tiny"} and hardware["slug"] == hardware_slug
    return run["asked"]["seed"]


@pytest.mark.slow
def test_two_runs_started_together_into_one_folder(tmp_path):
    """Whichever comes second is refused in one line while the first holds the folder (or, had the
    first already finished, moves it whole into previous/): no run loses its rows or run.json."""
    save_tiny(tmp_path / "tiny", "gpt2")
    processes = {
        seed: subprocess.Popen(
            [sys.executable, "-m", "profiler", "run", "--model", "tiny", "--lengths", "8,16,32", "--budget", "20",
             "--seed", str(seed), "--out", "o", "--fits", "f"],
            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    }
    # --budget 20: on a busy machine (a second test suite beside this one) a 3 s budget measured one length and,
    # rightly, fitted nothing; a quiet machine measures these three lengths in about 8 s whatever the budget
    try:  # bounded: 300 s each on a busy 2-core machine (a run takes about 80 s there beside the other)
        outputs = {seed: process.communicate(timeout=300) for seed, process in processes.items()}
    finally:
        for process in processes.values():
            process.kill()  # never left running by a failure above; a no-op once it has exited
    statuses = {seed: process.returncode for seed, process in processes.items()}
    errors = {seed: err for seed, (_, err) in outputs.items()}
    assert sorted(statuses.values()) in ([0, 0], [0, 2]), errors
    (folder,) = (tmp_path / "o").glob("*/tiny")
    hardware_slug = folder.parent.name
    for seed, status in statuses.items():
        if status == 2:
            (other,) = (process for s, process in processes.items() if s != seed)
            assert errors[seed].splitlines() == [refusal(Path("o") / hardware_slug / "tiny", other.pid)]
    kept = [folder, *(folder / "previous").glob("*")]
    assert sorted(_intact_run(run, hardware_slug) for run in kept) == sorted(
        seed for seed, status in statuses.items() if status == 0)
    fitted = fit_path(tmp_path / "f", "tiny", hardware_slug)
    assert fitted.exists(), outputs
    fit = json.loads(fitted.read_text())
    assert fit["source"]["rows"] == len(pd.read_csv(folder / "samples.csv"))  # the rows left in the folder
