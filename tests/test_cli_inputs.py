"""Every number (and the other arguments) a command is given, checked at the edge.

Each bad input ends as a user's mistake (exit status 2, one line on stderr, no traceback:
``tests/user_error.py``), writes nothing (the scratch folder's listing is unchanged), and stops
before the work it would start: no ceilings measured and no model built (``run``), no model
resolved (``validate``), no exercise priced or program run (``breakeven``). Good inputs pass.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from profiler.cli import arguments
from profiler.cli.main import main
from profiler.lba.exercises import EXERCISES
from tests.user_error import stop_before_measuring, user_error

EXAMPLE_FIT = Path(__file__).resolve().parents[1] / "fits/example/gpt2--cpu-intel-xeon-processor-2t.json"
CPUS = arguments.usable_cpus()


@pytest.fixture
def scratch(tmp_path):
    """The working folder (tests run in ``tmp_path``) with a fit, a folder and a plain file to name."""
    shutil.copy(EXAMPLE_FIT, tmp_path / EXAMPLE_FIT.name)
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("not a fit\n")
    return tmp_path


def _listing(root: Path) -> list[str]:
    return sorted(f"{path.relative_to(root)} {path.stat().st_size if path.is_file() else '/'}"
                  for path in root.rglob("*"))


def _named(argv: list[str]) -> list[str]:
    """FIT, FOLDER, FILE and MISSING stand for the scratch folder's things (relative: tests run in it)."""
    names = {"FIT": EXAMPLE_FIT.name, "FOLDER": "a-folder", "FILE": "a-file", "MISSING": "missing.json"}
    return [re.sub(r"\b(FIT|FOLDER|FILE|MISSING)\b", lambda match: names[match[1]], arg) for arg in argv]


def _refused(capfd, scratch, argv: list[str], message: str) -> None:
    before = _listing(scratch)
    line = user_error(capfd, _named(argv))
    assert message in line, line
    assert _listing(scratch) == before


@pytest.fixture
def nothing_priced(monkeypatch):
    """Fail the test if an exercise is priced or a program run: the check came too late."""
    def priced(*args, **kwargs):
        raise AssertionError("priced past the input checks")

    for exercise in EXERCISES.values():
        monkeypatch.setattr(exercise, "costs", staticmethod(priced))
    monkeypatch.setattr("profiler.lba.monte_carlo.priced_runs", priced)


@pytest.fixture
def no_model_resolved(monkeypatch):
    def resolved(*args, **kwargs):
        raise AssertionError("validate got past its input checks")

    monkeypatch.setattr("profiler.cli.validate.resolve_model", resolved)


RUN = [
    (["--budget", "inf"], "argument --budget: inf: expected a finite number"),
    (["--budget", "nan"], "argument --budget: nan: expected a finite number"),
    (["--budget=-inf"], "argument --budget: -inf: expected a finite number"),
    (["--budget", "-inf"], "argument --budget: expected one argument"),  # argparse: -inf looks like an option
    (["--budget", "0"], "argument --budget: 0: expected seconds above 0 and at most 604800 (a week)"),
    (["--budget", "-1"], "argument --budget: -1: expected seconds above 0"),
    (["--budget", "1e308"], "argument --budget: 1e308: expected seconds above 0 and at most 604800"),
    (["--budget", "604801"], "at most 604800"),
    (["--budget", ""], "argument --budget: '' is not a number"),
    (["--budget", "soon"], "argument --budget: soon is not a number"),
    (["--threads", "-1"], f"argument --threads: -1: expected a whole number from 1 to {CPUS} (the CPUs"),
    (["--threads", "0"], f"argument --threads: 0: expected a whole number from 1 to {CPUS}"),
    (["--threads", "2.5"], "argument --threads: 2.5: expected a whole number"),
    (["--threads", str(CPUS + 1)], f"argument --threads: {CPUS + 1}: expected a whole number from 1 to {CPUS}"),
    (["--threads", "many"], "argument --threads: many: expected a whole number"),
    (["--seed", "-1"], "argument --seed: -1: expected a whole number from 0 to 4,294,967,295"),
    (["--seed", str(2**32)], "argument --seed: 4294967296: expected a whole number from 0 to 4,294,967,295"),
    (["--seed", "1e3"], "argument --seed: 1e3: expected a whole number"),
    (["--seed", "9" * 40], "expected a whole number from 0 to 4,294,967,295"),
    (["--seed", " "], "argument --seed: ' ': expected a whole number"),
    (["--attn", "flash"], "argument --attn: invalid choice: 'flash'"),
    (["--device-map", "balanced"], "argument --device-map: invalid choice"),
    (["--batch", "0"], "argument --batch: 0: expected a whole number from 1 to 4,096 (sequences in a pass)"),
    (["--batch", "1,4097"], "argument --batch: 4097: expected a whole number from 1 to 4,096"),
    (["--batch", "2.5"], "argument --batch: 2.5: expected a whole number"),
    (["--batch", "1,,2"], "argument --batch: '': expected a whole number"),
    (["--batch", "eight"], "argument --batch: eight: expected a whole number"),
    (["--batch", ",".join(map(str, range(1, 18)))], "argument --batch: 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,1..."),
    (["--batch", "2," * 16 + "2"], "at most 16 batch sizes"),
]


@pytest.mark.parametrize("options, message", RUN)
def test_run_numbers(capfd, scratch, monkeypatch, options, message):
    stop_before_measuring(monkeypatch)
    _refused(capfd, scratch, ["run", "--model", "gpt2", *options], message)


VALIDATE = [
    (["--budget", "inf"], "argument --budget: inf: expected a finite number"),
    (["--budget", "nan"], "argument --budget: nan: expected a finite number"),
    (["--budget", "0"], "argument --budget: 0: expected seconds above 0"),
    (["--budget", "1e308"], "at most 604800 (a week)"),
    (["--threads", "-1"], "argument --threads: -1: expected a whole number from 1"),
    (["--threads", "0"], "argument --threads: 0: expected a whole number from 1"),
    (["--seeds", "0"], "argument --seeds: 0: expected a whole number from 1 to 1,000"),
    (["--seeds", "-1"], "argument --seeds: -1: expected a whole number from 1 to 1,000"),
    (["--seeds", "1e9"], "argument --seeds: 1e9: expected a whole number"),
    (["--seeds", "1000000000"], "argument --seeds: 1000000000: expected a whole number from 1 to 1,000"),
    (["--exercise", "debugging", "--vary", "k", "--values", "2,inf"], "--values '2,inf' for k: expected a list"),
    (["--exercise", "ktask", "--values", "nan"], "of finite numbers"),
    (["--exercise", "ktask", "--values", ""], "--values '' for n: expected a list like 2,4,8"),
    (["--exercise", "ktask", "--values", "1:10000000"], "10,000,000 values, more than the limit of 1,000"),
    (["--exercise", "ktask", "--values", "5:1"], "--values 5:1: the range must go up"),
    (["--exercise", "ktask", "--values", "0,8"], ("ktask: n must be a whole number at least 1 and at most "
                                                  "1,000,000,000 (not 0)")),
    (["--exercise", "debugging", "--set", "m_q=nan"], "--set m_q=nan: debugging: m_q must be a number"),
    (["--exercise", "debugging", "--set", "k=inf"], ("k must be a whole number at least 1 and at most 1,000,000 "
                                                     "(not inf)")),
    (["--exercise", "evolution", "--set", "l=2.5"], "--set l=2.5: evolution: l must be a whole number"),
    (["--exercise", "evolution", "--set", "p=2"], "p must be a number at least 1e-06 and at most 1 (not 2)"),
    (["--exercise", "debugging", "--vary", "k", "--values", "2,4", "--set", "k=3"],
     "--set k=3: k is the varied parameter (--vary k): give it with --values"),
    (["--exercise", "debugging", "--vary", "l", "--values", "2,4,8", "--set", "k=1000000", "--set", "b=1000000"],
     "debugging: these values take 3,000,000 call prices"),
    (["--exercise", "evolution", "--values", "1:30", "--set", "l=1"],
     "--seeds 5: evolution's 2,000 runs of each variant at 30 value(s) of k would make"),
    (["--exercise", "evolution", "--seeds", "1000"], "--seeds 1000: evolution's 400,000 runs"),
    (["--exercise", "routing"], "unknown exercise 'routing'"),
    (["--exercise", "ktask", "--vary", "z", "--values", "1,2"], "ktask has no parameter 'z' to vary"),
    (["--exercise", "ktask", "--vary", "c"], "--vary c: give its grid with --values"),
]


@pytest.mark.parametrize("options, message", VALIDATE)
def test_validate_inputs(capfd, scratch, no_model_resolved, options, message):
    _refused(capfd, scratch, ["validate", "--model", "gpt2", *options], message)


BREAKEVEN = [
    (["--values", "2,inf"], "--values '2,inf' for k: expected a list like 2,4,8 or a range like 1:12 of finite"),
    (["--values", "nan"], "of finite numbers"),
    (["--values=-inf,2"], "of finite numbers"),
    (["--values", "1:10000000"], "--values 1:10000000: 10,000,000 values, more than the limit of 1,000"),
    (["--values", "1:" + "9" * 30], "values, more than the limit of 1,000"),
    (["--values", "5:1"], "--values 5:1: the range must go up (lo:hi)"),
    (["--values", ""], "--values '' for k: expected a list"),
    (["--values", "2,,4"], "--values '2,,4' for k"),
    (["--values", "1.5:3"], "or a range like 1:12"),
    (["--values", "1:3,"], "--values '1:3,' for k"),
    (["--values", "0,2"], "k must be a whole number at least 1 and at most 1,000,000 (not 0)"),
    (["--values", "2.5"], "(not 2.5)"),
    (["--values=-3,4"], "(not -3)"),
    (["--set", "m_q=nan"], ("--set m_q=nan: debugging: m_q must be a number at least 1e-09 and at most "
                           "1,000,000,000 (not nan)")),
    (["--set", "m_d=inf"], "--set m_d=inf: debugging: m_d must be a number"),
    (["--set", "m_d=0"], "(not 0)"),
    (["--set", "l=1e10"], "l must be a whole number at least 1 and at most 1,000,000,000 (not 10,000,000,000)"),
    (["--set", "report=0"], "report must be a whole number at least 1"),
    (["--set", "system_prompt=-1"], "system_prompt must be a whole number at least 0"),
    (["--set", "b=2.5"], "--set b=2.5: debugging: b must be a whole number"),
    (["--set", "k=inf"], "--set k=inf: k is the varied parameter (--vary k): give it with --values"),
    (["--vary", "l", "--values", "2,4", "--set", "k=1e9", "--set", "b=1e9"],
     "--set k=1e9: debugging: k must be a whole number at least 1 and at most 1,000,000 (not 1,000,000,000)"),
    (["--vary", "l", "--values", "2,4,8", "--set", "k=1000000", "--set", "b=1000000"],
     ("debugging: these values take 3,000,000 call prices (the chat history is priced round by round: one per "
     "value and round, b rounds), more than the limit of 2,000,000")),
    (["--vary", "k", "--values", "3000:3999", "--set", "b=3000"], "these values take 3,000,000 call prices"),
    (["--vary", "b", "--values", "1:1001", "--set", "k=2000"], "1,001 values, more than the limit of 1,000"),
    (["--values", "1:4", "--set", "b=8"], "b (bugs) must not exceed k"),
    (["--set", "m_q"], "--set 'm_q': expected m_q=NUMBER"),
    (["--set", "m_q=big"], "--set 'm_q=big': expected m_q=NUMBER"),
    (["--set", "q=1"], "debugging has no parameter 'q'"),
    (["--vary", "q", "--values", "1"], "debugging has no parameter 'q' to vary"),
    (["--monte-carlo", "-1"], "argument --monte-carlo: -1: expected a whole number from 0 to 10,000"),
    (["--monte-carlo", "1e12"], "argument --monte-carlo: 1e12: expected a whole number"),
    (["--monte-carlo", "1000000000000"], "argument --monte-carlo: 1000000000000: expected a whole number from 0"),
    (["--monte-carlo", "2.5"], "argument --monte-carlo: 2.5"),
]


@pytest.mark.parametrize("options, message", BREAKEVEN)
def test_breakeven_numbers(capfd, scratch, nothing_priced, options, message):
    _refused(capfd, scratch, ["breakeven", "--exercise", "debugging", *options], message)


BREAKEVEN_OTHERS = [  # other exercises, whole commands
    (["--exercise", "ktask", "--set", "n=2.5"], "--set n=2.5: ktask: n must be a whole number"),
    (["--exercise", "ktask", "--set", "n=-4"], "(not -4)"),
    (["--exercise", "ktask", "--set", "out=0"], "out must be a whole number at least 1"),
    (["--exercise", "ktask", "--set", "m_s=-1"], "m_s must be a number at least 1e-09"),
    (["--exercise", "ktask", "--set", "delegator_scale=nan"], "delegator_scale must be a number"),
    (["--exercise", "ktask", "--set", "k=inf", "--vary", "n", "--values", "8,16"], "k must be a whole number"),
    (["--exercise", "evolution", "--set", "p=1.5"], ("--set p=1.5: evolution: p must be a number at least 1e-06 "
                                                    "and at most 1 (not 1.5)")),
    (["--exercise", "evolution", "--set", "p=0"], "(not 0)"),
    (["--exercise", "all", "--set", "l=3"], "ktask has no parameter 'l'"),
    (["--exercise", "routing"], "unknown exercise 'routing': one of ktask, debugging, evolution, all"),
    (["--metric", "watts"], "argument --metric: invalid choice: 'watts'"),
    (["--primitive", "other"], "argument --primitive: invalid choice: 'other'"),
    (["--primitive", "paper", "--fit", "FIT"], "--primitive paper and --fit are alternatives"),
    (["--role", "qa=FIT"], "--role and --no-cache need --fit"),
    (["--no-cache"], "--role and --no-cache need --fit"),
    (["--fit", "FIT", "--role", "generalist=MISSING"], "missing.json: not found"),
    (["--fit", "FIT", "--role", "x=FIT"], f"--role 'x={EXAMPLE_FIT.name}': expected ROLE=FIT with ROLE one of"),
    (["--fit", "FIT", "--role", "generalist"], "--role 'generalist': expected ROLE=FIT"),
    (["--fit", "FIT", "--role", "generalist=FOLDER"], "a-folder: a folder, not a JSON file"),
    (["--fit", "FOLDER"], "a-folder: a folder, not a JSON file"),
    (["--fit", "MISSING"], "missing.json: not found"),
    (["--fit", "FILE"], "a-file: not readable as JSON"),
    (["--fit", "a-file/fit.json"], "a-file/fit.json: not readable as JSON"),
]


@pytest.mark.parametrize("options, message", BREAKEVEN_OTHERS)
def test_breakeven_inputs(capfd, scratch, nothing_priced, options, message):
    _refused(capfd, scratch, ["breakeven", *options], message)


def test_monte_carlo_runs_are_bounded_before_the_first(capfd, scratch, monkeypatch):
    def ran(*args, **kwargs):
        raise AssertionError("a program ran")

    monkeypatch.setattr("profiler.lba.monte_carlo.priced_runs", ran)
    _refused(capfd, scratch, ["breakeven", "--exercise", "evolution", "--monte-carlo", "10000"],
             "--monte-carlo 10000: evolution's 10,000 runs of each variant at 12 value(s) of k would make 2,180,000 "
             "calls in expectation, more than the limit of 1,000,000: fewer seeds or values")


@pytest.mark.parametrize("argv, message", [
    (["breakeven", "--exercise", "evolution", "--values", "900:1100"],
     "evolution: the optimistic cost at k=994 is not a finite number of m*token (beyond 1.8e+308)"),
    (["breakeven", "--exercise", "evolution", "--set", "p=1e-6", "--values", "1:200"], "cost at k=51 is not a finite"),
    (["breakeven", "--fit", "FIT", "--exercise", "evolution", "--values", "900:1100"], "is not a finite number of s"),
])
def test_a_cost_beyond_a_float_is_refused(capfd, scratch, argv, message):
    """Priced (a vector of a few thousand prices), then refused rather than printed as inf or NaN."""
    _refused(capfd, scratch, argv, message)


ARGUMENTS = [  # the commands that take paths: their arguments
    (["show"], "the following arguments are required: fit"),
    (["show", "FIT", "FIT"], "unrecognized arguments"),
    (["show", "MISSING"], "missing.json: not found"),
    (["show", "FOLDER"], "a-folder: a folder, not a JSON file"),
    (["show", "FILE"], "a-file: not readable as JSON"),
    (["fit"], "the following arguments are required: samples"),
    (["fit", "missing.csv"], ""),  # the wording is the samples reader's (measure.samples, cli.fit)
    (["fit", "FOLDER"], ""),
    (["models", "extra"], "unrecognized arguments: extra"),
    (["report"], "the following arguments are required: folder"),
    (["report", "no-such-folder"], "no-such-folder: not a folder"),
    (["report", "FILE"], "a-file: not a folder"),
    (["compare", "FIT"], "the following arguments are required: FIT"),
    (["compare", "FIT", "FIT", "FIT"], "unrecognized arguments"),
    (["compare", "FIT", "MISSING"], "missing.json: not found"),
    (["compare", "FIT", "FOLDER"], "a-folder: a folder, not a JSON file"),
    (["run"], "the following arguments are required: --model"),
    (["validate"], "the following arguments are required: --model"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
]


@pytest.mark.parametrize("argv, message", ARGUMENTS)
def test_command_arguments(capfd, scratch, argv, message):
    _refused(capfd, scratch, argv, message)


# -- the figure breakeven draws beside a fit ---------------------------------------------------------


def test_a_folder_where_a_figure_goes_is_one_line_and_nothing_is_drawn(capfd, scratch):
    (scratch / EXAMPLE_FIT.name.replace(".json", ".breakeven-evolution.png")).mkdir()
    _refused(capfd, scratch, ["breakeven", "--fit", "FIT"], "cannot write the figure "
             f"{EXAMPLE_FIT.stem}.breakeven-evolution.png: a folder is in the way")
    assert not list(scratch.glob("*.png/*")) and len(list(scratch.glob("*.png"))) == 1  # only the folder


@pytest.fixture
def read_only_fit_folder(tmp_path):
    """A folder holding the fit that refuses new files even to root: ``chattr +i`` (where it works)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    shutil.copy(EXAMPLE_FIT, folder / EXAMPLE_FIT.name)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], check=False,
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_fit_folder_is_one_line_and_nothing_is_written(capfd, read_only_fit_folder):
    before = _listing(read_only_fit_folder.parent)
    line = user_error(capfd, ["breakeven", "--fit", str(read_only_fit_folder / EXAMPLE_FIT.name)])
    assert "cannot write the figure" in line and line.endswith(("Operation not permitted", "Read-only file system",
                                                                 "Permission denied"))
    assert _listing(read_only_fit_folder.parent) == before


# -- good inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    ["--exercise", "ktask", "--seeds", "1000"],  # seeds only count for a stochastic exercise
    ["--exercise", "evolution", "--seeds", "20"],
    ["--exercise", "debugging", "--vary", "k", "--values", "2,4"],  # validate's fixed k gives way to --vary k
    ["--exercise", "debugging", "--vary", "l", "--values", "2:4", "--set", "m_q=0.5"],
])
def test_validate_passes_its_checks_with_good_input(no_model_resolved, options):
    with pytest.raises(AssertionError, match="validate got past its input checks"):
        main(["validate", "--model", "gpt2", *options])


@pytest.mark.parametrize("options, rows", [
    (["--exercise", "ktask", "--values", "1:1000"], 1000),
    (["--exercise", "debugging", "--vary", "l", "--values", "2,4", "--set", "k=1000000", "--set", "b=1000000"], 2),
    (["--exercise", "debugging", "--set", "m_q=0.5", "--set", "system_prompt=0"], 9),
    (["--exercise", "evolution", "--values", "1:4", "--set", "p=1", "--monte-carlo", "20"], 4),
])
def test_breakeven_good_input(capfd, scratch, options, rows):
    """Good input prints a document of one row per value and writes nothing."""
    before = _listing(scratch)
    assert main(["breakeven", "--json", *options]) == 0
    document = json.loads(capfd.readouterr().out)
    assert len(document["rows"]) == rows and _listing(scratch) == before


def test_count_names_its_range():
    parse = arguments.count(2, 9)
    assert parse("2") == 2 and parse("9") == 9
    for text in ("1", "10", "x", "", "3.0"):
        with pytest.raises(Exception, match="expected a whole number from 2 to 9"):
            parse(text)
