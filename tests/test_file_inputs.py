"""Every file a command reads is checked at the edge: a bad samples file (``read_samples``), a bad fit
document (``load_cost_model``), a name from a document that cannot name a file (``profiler.files``).
Each bad input ends with exit status 2, one line on stderr and no traceback (``tests/user_error.py``),
and writes nothing. Then: a new fit keeps the one it replaces, a dtype names its fit, names are sanitised.

Inputs are copies of the committed example (a real gpt2 run and its fit), changed one way each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from profiler.cli.main import main
from profiler.costmodel.fit_file import load_cost_model, write_fit
from profiler.costmodel.fit_run import fit_run
from profiler.errors import UserError
from profiler.files import AUTO_DTYPES, LOCK_FILE, file_name, fit_path, fit_pattern, run_folder
from tests.user_error import user_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
EXAMPLE_FIT = ROOT / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


def _copy_run(root: Path) -> Path:
    """The committed example's run folder as a run leaves one: its files and its empty lock file."""
    folder = root / "run"
    folder.mkdir(parents=True)
    for name in ("samples.csv", "run.json", "hardware.json"):
        shutil.copy(EXAMPLE_RUN / name, folder / name)
    (folder / LOCK_FILE).touch()
    return folder


def _refused(capfd, argv: list[str], root: Path, message: str) -> None:
    """``argv`` ends as a user's mistake naming ``message``, and writes nothing under ``root``."""
    before = _files(root)
    line = user_error(capfd, argv)
    assert message in line, line
    assert _files(root) == before, "a refused input wrote something"


# ---- samples files: one reader, read_samples, for fit and report --------------------------------------

def _rows() -> list[dict]:
    with (EXAMPLE_RUN / "samples.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


def _csv(rows: list[dict], columns=None) -> str:
    columns = columns or list(rows[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _cell(column: str, value: str, row: int = 0):
    def change(rows):
        rows[row][column] = value
        return _csv(rows)
    return change


def _without(column: str):
    def change(rows):
        return _csv(rows, [c for c in rows[0] if c != column])
    return change


def _everywhere(column: str, value: str, where=lambda row: True):
    def change(rows):
        for row in rows:
            if where(row):
                row[column] = value
        return _csv(rows)
    return change


def _lengths_kept(phase: str, keep: int):
    """Only the ``keep`` shortest lengths of ``phase`` (the others as measured)."""
    def change(rows):
        lengths = sorted({int(r["n_ctx"]) for r in rows if r["phase"] == phase})[:keep]
        return _csv([r for r in rows if r["phase"] != phase or int(r["n_ctx"]) in lengths])
    return change


def _few_samples(rows):
    """Three lengths of decode with one or two samples: four in all."""
    decode = [r for r in rows if r["phase"] == "decode"]
    lengths = sorted({int(r["n_ctx"]) for r in decode})[:3]
    kept = [next(r for r in decode if int(r["n_ctx"]) == n) for n in lengths]
    kept.append(next(r for r in decode if int(r["n_ctx"]) == lengths[0] and r is not kept[0]))
    return _csv([r for r in rows if r["phase"] != "decode"] + kept)


BAD_SAMPLES = {  # id: (the file's text or bytes from the example's rows, what the one line says)
    "empty": (lambda rows: "", "empty, not a samples file"),
    "binary": (lambda rows: bytes(range(256)) * 8, "not a samples file"),
    "utf16": (lambda rows: _csv(rows).encode("utf-16"), "not a samples file"),
    "semicolons": (lambda rows: _csv(rows).replace(",", ";"), "no column"),
    "ragged-row": (lambda rows: _csv(rows) + "gpt2,random,cpu,float32,prefill,8,8,0,0.1,1,1,1,,1,extra\n",
                   "not a samples file"),
    "header-only": (lambda rows: _csv(rows).splitlines()[0] + "\n", "no samples in it"),
    "no-latency": (_without("latency_s"), "no column latency_s"),
    "no-n_ctx": (_without("n_ctx"), "no column n_ctx"),
    "no-model": (_without("model"), "no column model"),
    "no-phase": (_without("phase"), "no column phase"),
    "n_ctx-text": (_cell("n_ctx", "abc"), "line 2: n_ctx 'abc' is not a number"),
    "n_ctx-negative": (_cell("n_ctx", "-11"), "line 2: n_ctx -11 is less than 1"),
    "n_ctx-zero": (_cell("n_ctx", "0"), "n_ctx 0 is less than 1"),
    "n_ctx-fraction": (_cell("n_ctx", "11.5"), "n_ctx 11.5 is not a whole number"),
    "n_ctx-huge": (_cell("n_ctx", "1e20"), "beyond 2^53"),
    "n_ctx-empty": (_cell("n_ctx", "", 3), "line 5: n_ctx is missing"),
    "n_new-zero": (_cell("n_new", "0"), "n_new 0 is less than 1"),
    "repeat-negative": (_cell("repeat", "-1"), "repeat -1 is less than 0"),
    "latency-inf": (_cell("latency_s", "inf"), "latency_s inf is not finite"),
    "latency-minus-inf": (_cell("latency_s", "-inf"), "latency_s -inf is not finite"),
    "latency-overflow": (_cell("latency_s", "1e999"), "is not finite"),
    "latency-nan": (_cell("latency_s", "nan"), "latency_s 'nan' is not a number"),
    "latency-empty": (_cell("latency_s", ""), "latency_s is missing"),
    "latency-negative": (_cell("latency_s", "-0.01", 7), "line 9: latency_s -0.01 is not a positive time"),
    "latency-zero": (_cell("latency_s", "0"), "latency_s 0.0 is not a positive time"),
    "latency-text": (_cell("latency_s", "fast"), "latency_s 'fast' is not a number"),
    "all-latencies-negative": (_everywhere("latency_s", "-0.05"), "is not a positive time"),
    "flops-negative": (_cell("flops", "-5"), "flops -5 is less than 1"),
    "flops-empty": (_cell("flops", ""), "flops is missing"),
    "kv-text": (_cell("kv_cache_bytes", "lots"), "kv_cache_bytes 'lots' is not a number"),
    "peak-negative": (_cell("peak_mem_bytes", "-1"), "peak_mem_bytes -1 is less than 0"),
    "peak-inf": (_cell("peak_mem_bytes", "inf"), "peak_mem_bytes inf is not finite"),
    "phase-unknown": (_cell("phase", "backward"), "phase 'backward' is not a phase"),
    "two-models": (_everywhere("model", "gpt2-medium", lambda r: r["phase"] == "decode"), "2 values of model"),
    "two-devices": (_everywhere("device", "cuda:0", lambda r: r["phase"] == "forward"), "2 values of device"),
    "two-dtypes": (_everywhere("dtype", "float16", lambda r: r["repeat"] == "0"), "2 values of dtype"),
    "model-unnamed": (_everywhere("model", ""), "model is empty"),
    "another-model": (_everywhere("model", "gpt2-xl"), "but its run.json is of 'gpt2'"),
    "another-dtype": (_everywhere("dtype", "bfloat16"), "but its run.json is of 'float32'"),
    "decode-one-length": (_lengths_kept("decode", 1), "decode at 1 context length"),
    "prefill-two-lengths": (_lengths_kept("prefill", 2), "prefill at 2 context lengths"),
    "forward-none": (_lengths_kept("forward", 0), "forward at 0 context lengths"),
    "decode-four-samples": (_few_samples, "decode in 4 samples"),
}
# Checked where the file is read, before anything is fitted or drawn: the report says the same.
READ_ONLY = {"empty", "binary", "utf16", "semicolons", "ragged-row", "header-only", "no-latency", "n_ctx-text",
             "latency-inf", "latency-nan", "latency-negative", "two-models", "another-model", "flops-negative"}


def _write_samples(folder: Path, case: str) -> str:
    make, message = BAD_SAMPLES[case]
    content = make(_rows())
    path = folder / "samples.csv"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return message


@pytest.mark.parametrize("case", BAD_SAMPLES)
def test_fit_refuses_a_bad_samples_file(capfd, tmp_path, case):
    folder = _copy_run(tmp_path)
    message = _write_samples(folder, case)
    _refused(capfd, ["fit", str(folder / "samples.csv"), "--fits", str(tmp_path / "fits")], tmp_path, message)


@pytest.mark.parametrize("case", sorted(READ_ONLY))
def test_report_refuses_a_bad_samples_file_as_fit_does(capfd, tmp_path, case):
    folder = _copy_run(tmp_path)
    fits = tmp_path / "fits"
    fits.mkdir()
    shutil.copy(EXAMPLE_FIT, fits)
    message = _write_samples(folder, case)
    _refused(capfd, ["report", str(folder), "--fits", str(fits)], tmp_path, message)


def test_a_samples_file_beyond_the_row_limit_is_refused_before_it_is_read_whole(capfd, tmp_path, monkeypatch):
    monkeypatch.setattr("profiler.measure.samples.MAX_ROWS", 100)  # the example has 205 rows
    folder = _copy_run(tmp_path)
    _refused(capfd, ["fit", str(folder / "samples.csv")], tmp_path, "more than 100 rows")


def test_a_run_stopped_before_its_first_pass_is_a_valid_empty_samples_file(tmp_path):
    from profiler.measure.samples import read_samples

    folder = _copy_run(tmp_path)
    _write_samples(folder, "header-only")
    assert read_samples(folder / "samples.csv").empty  # the run itself reads it back so, and writes run.json


# ---- the documents beside the samples, and the arguments of fit -----------------------------------------

def _edit_json(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


BAD_RUN_FILES = {  # id: (change to the run folder, what the one line says)
    "model-name-traversal": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(name="../../X")),
                             "model name '../../X' cannot name a file: it holds a path separator"),
    "model-name-dots": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(name="..")),
                        "it names a folder"),
    "model-name-empty": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(name="")), "it is empty"),
    "model-name-escape": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(name="gpt2\x1b[31m")),
                          "control characters"),
    "model-name-backslash": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(name="..\\..\\X")),
                             "path separator"),
    "dtype-traversal": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(dtype="../f")),
                        "dtype '../f' cannot name a file"),
    "slug-traversal": (lambda f: _edit_json(f / "hardware.json", lambda d: d.update(slug="../../hw")),
                       "slug '../../hw' cannot name a file"),
    "no-run-json": (lambda f: (f / "run.json").unlink(), "run.json: not found"),
    "run-json-garbage": (lambda f: (f / "run.json").write_bytes(b"\x00\xff{"), "not readable as JSON"),
    "run-json-deep": (lambda f: (f / "run.json").write_text("[" * 100_000), "not readable as JSON"),
    "hardware-json-a-list": (lambda f: (f / "hardware.json").write_text("[]"), "not a JSON object"),
    "attn-fallback-a-number": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(attn_fallback=5)),
                               "attn_fallback: not a sentence"),
    "attn-fallback-two-lines": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(attn_fallback="a\nb")),
                                "attn_fallback: not a sentence"),
    "routing-a-string": (lambda f: _edit_json(f / "run.json", lambda d: d.update(routing="garbage")),
                         "routing is str, not a record"),
    "batch-sizes-garbage": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(batch_sizes="x")),
                            "done.batch_sizes is not a list of 1 to 16 batch sizes"),
    "batch-sizes-huge": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(batch_sizes=[1, 10**30])),
                         "done.batch_sizes is not a list"),
    "batch-sizes-negative": (lambda f: _edit_json(f / "run.json", lambda d: d["asked"].update(batch_sizes=[-2])),
                             "asked.batch_sizes is not a list"),
    "batch-skipped-no-batch": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(
        batch_skipped=[{"phase": "prefill", "n_ctx": 8, "reason": "time budget"}])), "done.batch_skipped is not a list"),
    "batch-oom-a-string": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(batch_out_of_memory="x")),
                           "done.batch_out_of_memory is not a list"),
    "extend-skipped-no-s": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(
        extend_skipped=[{"c": 512, "reason": "time budget"}])), "done.extend_skipped is not a list of extend points"),
    "extend-oom-a-number": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(extend_out_of_memory=3)),
                            "done.extend_out_of_memory is not a list"),
    "budget-raised-a-string": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(budget_raised_to_s="x")),
                               "done.budget_raised_to_s is not a number of seconds above 0"),
    "budget-raised-negative": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(budget_raised_to_s=-1)),
                               "done.budget_raised_to_s is not a number of seconds above 0"),
    "budget-raised-true": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(budget_raised_to_s=True)),
                           "done.budget_raised_to_s is not a number of seconds above 0"),
    "part-measured-a-number": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(part_measured=5)),
                               "part_measured: not a sentence"),
    "part-measured-two-lines": (lambda f: _edit_json(f / "run.json", lambda d: d["model"].update(part_measured="a\nb")),
                                "part_measured: not a sentence"),
    "caches-prefilled-a-number": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(caches_prefilled=3)),
                                  "done.caches_prefilled is not one line of text"),
    "caches-prefilled-empty": (lambda f: _edit_json(f / "run.json", lambda d: d["done"].update(caches_prefilled="")),
                               "done.caches_prefilled is not one line of text"),
    "caches-prefilled-huge": (lambda f: _edit_json(f / "run.json",
                                                   lambda d: d["done"].update(caches_prefilled="x" * 201)),
                              "done.caches_prefilled is not one line of text"),
    "caches-prefilled-two-lines": (lambda f: _edit_json(f / "run.json",
                                                        lambda d: d["done"].update(caches_prefilled="a\n[red]b")),
                                   "done.caches_prefilled is not one line of text"),
}


@pytest.mark.parametrize("case", BAD_RUN_FILES)
def test_fit_refuses_a_bad_run_document(capfd, tmp_path, case):
    folder = _copy_run(tmp_path)
    change, message = BAD_RUN_FILES[case]
    change(folder)
    fits = tmp_path / "a" / "b"  # a name with ../../ would land in tmp_path itself
    _refused(capfd, ["fit", str(folder / "samples.csv"), "--fits", str(fits)], tmp_path, message)


def test_fit_arguments_that_are_not_a_runs_samples_file(capfd, tmp_path):
    folder = _copy_run(tmp_path)
    other = _copy_run(tmp_path / "again")
    renamed = folder / "mine.csv"
    shutil.copy(folder / "samples.csv", renamed)
    for argv, message in (
        (["fit", str(folder)], "a folder; give the run's samples file"),
        (["fit", str(tmp_path / "absent.csv")], "not found"),
        (["fit", str(renamed)], "fit reads a run's samples.csv"),
        (["fit", str(folder / "samples.csv"), str(folder / ".." / "run" / "samples.csv")], "given twice"),
        (["fit", str(folder / "samples.csv"), str(other / "samples.csv")], "both would be fitted into"),
    ):
        _refused(capfd, argv + ["--fits", str(tmp_path / "fits")], tmp_path, message)


# ---- fit documents: load_cost_model, for show, breakeven, compare and report ---------------------------

def _coefficient(phase, metric, name, key="value", value=float("nan")):
    def change(d):
        param = d["curves"][phase][metric]["params"][name]
        if key == "value":
            param["value"] = value
        else:
            param["ci95"][key] = value
    return change


def _set(*keys, value):
    def change(d):
        for key in keys[:-1]:
            d = d[key]
        d[keys[-1]] = value
    return change


def _pop(*keys):
    def change(d):
        for key in keys[:-1]:
            d = d[key]
        d.pop(keys[-1])
    return change


def _prefill_latency(change_curve):
    return lambda d: change_curve(d["curves"]["prefill"]["latency_s"])


BAD_FITS = {  # id: (change to the example's document, what the one line says)
    "nan-coefficient": (_coefficient("prefill", "latency_s", "a"), "params/a/value is nan"),
    "inf-coefficient": (_coefficient("decode", "latency_s", "a", value=float("inf")), "params/a/value is inf"),
    "minus-inf-interval": (_coefficient("forward", "latency_s", "b", 0, float("-inf")), "ci95/0 is -inf"),
    "nan-correlation": (_prefill_latency(lambda c: c["correlation"][0].__setitem__(1, float("nan"))),
                        "correlation/0/1 is nan"),
    "nan-ceiling": (_set("hardware", "ceilings", "peak_matmul_flops_per_s", value=float("nan")), "is nan"),
    "nan-derived": (_set("derived", "decode", "overhead_s", value=float("nan")), "derived/decode/overhead_s is nan"),
    "negative-coefficient": (_coefficient("prefill", "latency_s", "b", value=-1.0), "b is at least 0"),
    "negative-interval": (_coefficient("decode", "flops", "a", 0, -5.0), "a is at least 0"),
    "power-beyond-3": (_coefficient("prefill", "latency_s", "p", value=5.0), "p is in [0.2, 3]"),
    "interval-backwards": (_prefill_latency(lambda c: c["params"]["a"].update(ci95=c["params"]["a"]["ci95"][::-1])),
                           "runs backwards"),
    "joint-sharing-another-coefficient": (_prefill_latency(lambda c: c["fitted_with"].update(shared=["c"])),
                                          "fitted jointly sharing c, where a power curve shares p"),
    "negative-slope-error": (_prefill_latency(lambda c: c.update(extrapolation_slope_sd=-1.0)),
                             "extrapolation_slope_sd: -1.0 is less than the minimum of 0"),
    "no-decode": (_pop("curves", "decode"), "no curve of latency_s of decode"),
    "no-forward-flops": (_pop("curves", "forward", "flops"), "no curve of flops of forward"),
    "no-prefill-latency": (_pop("curves", "prefill", "latency_s"), "no curve of latency_s of prefill"),
    "quadratic-without-c": (lambda d: d["curves"]["prefill"]["flops"]["params"].pop("c"),
                            "where the quadratic form has a, b, c"),
    "form-changed": (_prefill_latency(lambda c: c.update(form="affine")), "where the affine form has a, b"),
    "correlation-shape": (_prefill_latency(lambda c: c.update(correlation=[[1, 0], [0, 1]])), "correlation of shape"),
    "correlation-asymmetric": (_prefill_latency(lambda c: c["correlation"][0].__setitem__(1, 0.5)), "not symmetric"),
    "no-quadratic-candidate": (_prefill_latency(lambda c: c.update(candidates=c["candidates"][:1])),
                               "no quadratic candidate"),
    "domain-backwards": (_prefill_latency(lambda c: c.update(domain={"n_min": 500, "n_max": 8})), "runs backwards"),
    "derived-incomplete": (_set("derived", "prefill", value={}), "derived/prefill"),
    "unknown-form": (_prefill_latency(lambda c: c.update(form="cubic")), "not a valid cost model"),
    "no-model": (_pop("model"), "not a valid cost model"),
    "newer-schema": (_set("schema_version", value="2.0"), "newer than this profiler reads"),
}
RAW_FITS = {  # id: (the file's bytes, what the one line says)
    "not-json": (b"{not json", "not readable as JSON"),
    "empty-file": (b"", "not readable as JSON"),
    "binary": (bytes(range(256)), "not readable as JSON"),
    "a-list": (b"[1, 2]", "not a JSON object"),
    "deeply-nested": (b"[" * 100_000, "not readable as JSON"),
}
FIT_NAME = EXAMPLE_FIT.name


def _bad_fit(root: Path, case: str) -> tuple[Path, str]:
    """The bad fit ``case`` as ``<root>/fits/<the example's name>`` (where report looks for it)."""
    path = root / "fits" / FIT_NAME
    path.parent.mkdir(parents=True)
    if case in RAW_FITS:
        content, message = RAW_FITS[case]
        path.write_bytes(content)
        return path, message
    change, message = BAD_FITS[case]
    document = json.loads(EXAMPLE_FIT.read_text())
    change(document)
    path.write_text(json.dumps(document))  # NaN and Infinity as Python writes them: the files users hand in
    return path, message


COMMANDS = {
    "show": lambda fit, root: ["show", str(fit)],
    "breakeven": lambda fit, root: ["breakeven", "--fit", str(fit), "--exercise", "ktask", "--json"],
    "compare": lambda fit, root: ["compare", str(EXAMPLE_FIT), str(fit), "--out", str(root / "compare")],
    "report": lambda fit, root: ["report", str(_copy_run(root)), "--fits", str(fit.parent)],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", [*BAD_FITS, *RAW_FITS])
def test_every_reader_refuses_a_bad_fit_in_one_line(capfd, tmp_path, command, case):
    fit, message = _bad_fit(tmp_path, case)
    argv = COMMANDS[command](fit, tmp_path)
    _refused(capfd, argv, tmp_path, message)


@pytest.mark.parametrize("argv, message", [
    (lambda root: ["show", str(root)], "a folder, not a JSON file"),
    (lambda root: ["report", str(EXAMPLE_FIT)], "not a folder"),
    (lambda root: ["compare", str(root), str(EXAMPLE_FIT), "--out", str(root / "c")], "a folder, not a JSON file"),
    (lambda root: ["breakeven", "--fit", str(root)], "a folder, not a JSON file"),
    (lambda root: ["show", str(root / "absent.json")], "not found"),
], ids=["show-dir", "report-file", "compare-dir", "breakeven-dir", "show-absent"])
def test_a_folder_or_a_file_where_the_other_is_expected(capfd, tmp_path, argv, message):
    _refused(capfd, argv(tmp_path), tmp_path, message)


def test_a_missing_curve_is_a_lookup_error_and_one_line():
    from profiler.costmodel.cost_model import CostModel

    document = json.loads(EXAMPLE_FIT.read_text())
    for metrics in document["curves"].values():
        metrics.pop("peak_mem_bytes")  # a run that could not measure peak memory
    cost_model = CostModel.from_json(document)
    with pytest.raises(KeyError) as caught:
        cost_model.call(100, 10, metric="peak_mem_bytes")
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == ("no peak_mem_bytes curve for prefill in the cost model of gpt2 on "
                                 "cpu-intel-xeon-processor-2t")


# ---- names, replacement, dtypes --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../X", "..", ".", "", "a/b", "a\\b", "tab\there", "nul\x00", "bell\x07"])
def test_a_name_that_is_not_one_file_name_is_refused(name, tmp_path):
    with pytest.raises(UserError, match="cannot name a file"):
        fit_path(tmp_path, name, "cpu-x")
    with pytest.raises(UserError, match="cannot name a file"):
        run_folder(tmp_path, "cpu-x", name)
    with pytest.raises(UserError, match="cannot name a file"):
        fit_path(tmp_path, "gpt2", name)


def test_ordinary_names_pass_as_they_are():
    for name in ("gpt2", "openai-community--gpt2", "SmolLM2-135M", "model v2", "a..b", "-dash", "é"):
        assert file_name(name, "model name") == name


def test_fit_never_writes_above_its_fits_folder(capfd, tmp_path):
    folder = _copy_run(tmp_path / "in")
    _edit_json(folder / "run.json", lambda d: d["model"].update(name="../../X"))
    _refused(capfd, ["fit", str(folder / "samples.csv"), "--fits", str(tmp_path / "a" / "b")], tmp_path,
             "cannot name a file")
    assert not list(tmp_path.rglob("X--*"))


def _fit_twice(tmp_path, capfd):
    folder = _copy_run(tmp_path)
    fits = tmp_path / "fits"
    assert main(["fit", str(folder / "samples.csv"), "--fits", str(fits)]) == 0
    first = (fits / FIT_NAME).read_text()
    rows = (folder / "samples.csv").read_text().splitlines(keepends=True)
    (folder / "samples.csv").write_text("".join(rows[:-1]))  # one row fewer: another fit
    os.utime(fits / FIT_NAME, (1_700_000_000, 1_700_000_000))  # a known time for the kept name
    capfd.readouterr()
    assert main(["fit", str(folder / "samples.csv"), "--fits", str(fits)]) == 0
    return fits, first, capfd.readouterr().out


def test_a_new_fit_keeps_the_earlier_one_beside_it_and_says_so(capfd, tmp_path):
    fits, first, out = _fit_twice(tmp_path, capfd)
    (kept,) = (fits / "previous").iterdir()
    stamp = datetime.fromtimestamp(1_700_000_000).strftime("%Y%m%dT%H%M%S.%f")
    assert kept.name == f"{Path(FIT_NAME).stem}--{stamp}.json"
    assert kept.read_text() == first  # the earlier fit, whole
    assert json.loads((fits / FIT_NAME).read_text())["source"]["rows"] == 204  # the new one in its place
    assert f"kept the earlier fit in {kept}" in out.replace("\n", "")
    assert sorted(p.name for p in fits.glob(fit_pattern("cpu-intel-xeon-processor-2t", "float32", "cpu"))) == \
        [FIT_NAME]  # the kept one is not a family member


def test_the_same_fit_again_keeps_no_copy(capfd, tmp_path):
    folder = _copy_run(tmp_path)
    fits = tmp_path / "fits"
    for _ in range(2):
        assert main(["fit", str(folder / "samples.csv"), "--fits", str(fits)]) == 0
    assert not (fits / "previous").exists()
    assert "kept the earlier" not in capfd.readouterr().out


def test_a_dtype_other_than_the_devices_default_names_the_fit(tmp_path):
    fit = fit_run(_copy_run(tmp_path))
    half = fit.__class__.from_json(fit.to_json() | {"model": fit.model.to_json() | {"dtype": "float16"}})
    default, other = write_fit(fit, tmp_path / "fits"), write_fit(half, tmp_path / "fits")
    assert default.path.name == FIT_NAME  # the committed example's name: float32 is the CPU's default
    assert other.path.name == "gpt2--cpu-intel-xeon-processor-2t--float16.json"
    assert default.kept is None and other.kept is None  # neither replaced the other
    assert load_cost_model(other.path).model.dtype == "float16"
    assert fit_path(tmp_path, "m", "cuda-h200", "bfloat16", "cuda").name == "m--cuda-h200.json"
    assert fit_path(tmp_path, "m", "cuda-h200", "float32", "cuda").name == "m--cuda-h200--float32.json"
    assert fit_path(tmp_path, "m", "cpu-x").name == "m--cpu-x.json"  # validate: the device's default


def test_the_names_default_dtypes_are_what_auto_picks():
    import torch

    from profiler.measure.devices import dtype_name, resolve_dtype

    for device, dtype in AUTO_DTYPES.items():
        assert dtype_name(resolve_dtype("auto", torch.device(device))) == dtype


def test_report_finds_a_float16_fit_by_its_name_and_refuses_another_dtype(capfd, tmp_path):
    folder = _copy_run(tmp_path)
    _edit_json(folder / "run.json", lambda d: d["model"].update(dtype="float16"))
    (folder / "samples.csv").write_text((folder / "samples.csv").read_text().replace(",float32,", ",float16,"))
    fits = tmp_path / "fits"
    fits.mkdir()
    shutil.copy(EXAMPLE_FIT, fits)  # the float32 fit: not this run's
    _refused(capfd, ["report", str(folder), "--fits", str(fits)], tmp_path,
             "no fit " + str(fits / "gpt2--cpu-intel-xeon-processor-2t--float16.json"))
    shutil.copy(EXAMPLE_FIT, fits / "gpt2--cpu-intel-xeon-processor-2t--float16.json")  # misnamed: in float32
    _refused(capfd, ["report", str(folder), "--fits", str(fits)], tmp_path, "in float32, not the run in")


def test_the_family_beside_a_fit_is_of_its_dtype(tmp_path):
    from profiler.cli.breakeven import _family_beside

    fit = fit_run(_copy_run(tmp_path))
    fits = tmp_path / "fits"
    base = write_fit(fit, fits).path
    bigger = {"name": "gpt2-medium", "non_embedding_params": 2 * fit.model.non_embedding_params}
    for dtype in ("float32", "float16"):
        document = fit.to_json() | {"model": fit.model.to_json() | bigger | {"dtype": dtype}}
        write_fit(fit.__class__.from_json(document), fits)
    shutil.copy(base, fits / "gpt2-copy--cpu-intel-xeon-processor-2t.json")  # a copy of the base: no new size
    members = _family_beside(base, load_cost_model(base))
    assert [(m.model.name, m.model.dtype) for m in members] == [("gpt2", "float32"), ("gpt2-medium", "float32")]
