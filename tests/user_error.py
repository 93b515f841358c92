"""Helpers for tests of a user's mistakes: exit status 2 and one line on stderr, no traceback."""

from __future__ import annotations

FAKE_CEILINGS = {"matmul_dtype": "float32", "peak_matmul_flops_per_s": 1e11, "memory_bandwidth_bytes_per_s": 1e10}


def run_argv(model, *options: str) -> list[str]:
    """``run`` of ``model`` with a short grid and budget (``--model=``: a name may begin with a dash)."""
    return ["run", f"--model={model}", "--lengths", "8,16", "--budget", "5", *options]


def user_error(capfd, argv: list[str]) -> str:
    """Run the CLI on ``argv``; assert it ended as a user's mistake; the line it printed.

    ``capfd`` sees stderr at the file descriptor too, where progress bars and native libraries write."""
    from profiler.cli.main import main

    capfd.readouterr()  # what making the test's inputs printed is not the command's
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("profiler: error: "), err
    return lines[0]


def stop_before_measuring(monkeypatch) -> None:
    """Make a ``run`` that passes its input checks fail the test: no ceilings measured, no model built."""

    def reached(*args, **kwargs):
        raise AssertionError("the run got past its input checks")

    monkeypatch.setattr("profiler.cli.run.measure_ceilings", reached)
    monkeypatch.setattr("profiler.cli.run.load_model", reached)


def skip_ceilings(monkeypatch) -> None:
    """Ceilings take seconds to measure and do not matter to a test that fails while loading."""
    monkeypatch.setattr("profiler.cli.run.measure_ceilings", lambda device, dtype: dict(FAKE_CEILINGS))
