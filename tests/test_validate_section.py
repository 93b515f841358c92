import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from profiler.cli.main import main
from profiler.errors import UserError
from profiler.lba.validation_document import FORMAT_VERSION, Skipped, ValidationDocument
from profiler.report import write_report
from profiler.report.validate_section import validation_sections
from tests.json_shape import key_paths

DATA = Path(__file__).parent / "data"  # validate-*.json as validate wrote them before the documents were typed


@pytest.mark.slow
def test_the_report_shows_what_validate_measured(tiny_fit, capsys):
    root, tiny, fit = tiny_fit
    argv = ["validate", "--model", str(tiny), "--exercise", "evolution", "--values", "1,2", "--set", "l=2",
            "--seeds", "2", "--budget", "60", "--out", str(root / "reports"), "--fits", str(fit.parent)]
    assert main(argv) == 0
    (folder,) = (root / "reports").glob("*/tiny")
    written = write_report(folder, fit.parent)
    markdown = written.markdown.read_text()
    assert "## Predictions checked against real runs" in markdown
    assert "Evolutionary optimization (l=2" in markdown and "(validate-evolution.png)" in markdown
    assert "calls made" in markdown and ("inside" in markdown or "outside" in markdown)
    assert "their draw at percentile" in markdown
    assert folder / "validate-evolution.png" in written.figures
    # the file: written once, by the document's writer, with the keys it has always had and those added since: a
    # format version, the exercises' load and lambda (issue 14), each run's batched generates, where its seeds drew
    path = folder / "validate-evolution.json"
    on_disk = json.loads(path.read_text())
    added = {"/format_version", "/params/load", "/params/lam", "/rows[]/runs/optimistic[]/generates",
             "/rows[]/runs/optimized[]/generates", "/rows[]/draw_quantile_optimistic",
             "/rows[]/draw_quantile_optimized"}
    assert key_paths(on_disk) == key_paths(json.loads((DATA / path.name).read_text())) | added
    assert on_disk["figure"] == str(folder / "validate-evolution.png") and on_disk["fit"] == str(fit)
    document = ValidationDocument.read(path)
    assert document.to_json() == on_disk
    assert [row.measured_ratio for row in document.rows] == [row["measured_ratio"] for row in on_disk["rows"]]
    assert not list(folder.glob(".validate-*"))  # no temporary file left behind


@pytest.mark.parametrize("name", ["validate-debugging.json", "validate-evolution.json"])
def test_a_file_written_before_the_types_reads_and_writes_back_the_same(name, tmp_path):
    before = json.loads((DATA / name).read_text())
    document = ValidationDocument.read(DATA / name)
    assert document.format_version == 1 and document.to_json() == before | {"format_version": 1}
    assert document.measured_breakeven == before["measured_breakeven"]
    assert [row.measured["optimistic"] for row in document.rows] == [row["measured_optimistic"]
                                                                     for row in before["rows"]]
    document.skipped.append(Skipped(8.0, "budget (the run stopped after 3 calls)", variant="optimized", seed=1))
    assert ValidationDocument.read(document.write(tmp_path / name)) == document


def test_a_file_that_is_no_validation_document_is_a_one_line_error(tmp_path):
    path = tmp_path / "validate-ktask.json"
    path.write_text(json.dumps({"exercise": "ktask"}))
    with pytest.raises(UserError, match="not a validation document"):
        ValidationDocument.read(path)
    path.write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(UserError, match="newer than this profiler reads"):
        ValidationDocument.read(path)


@pytest.mark.parametrize("where, key, value", [
    ("row", "draw_quantile_optimistic", "abc"), ("row", "draw_quantile_optimistic", -0.1),
    ("row", "draw_quantile_optimized", 1.5), ("row", "draw_quantile_optimistic", True),
    ("row", "draw_quantile_optimistic", []), ("row", "error_given_calls_optimistic", "abc"),
    ("row", "measured_optimized", float("nan")), ("row", "measured_ratio", float("inf")),
    ("run", "speed_before", "fast"), ("run", "latency_s", -1.0), ("run", "predicted_s", None),
])
def test_a_measured_value_that_is_no_finite_number_is_a_one_line_error(tmp_path, where, key, value):
    """What the report formats and compares is checked as it is read: garbage in a measured value (a quantile outside
    0 to 1, a run's time below 0) is refused in one line naming it, not a traceback where the report formats it."""
    document = json.loads((DATA / "validate-evolution.json").read_text())
    row = document["rows"][0]
    (row if where == "row" else row["runs"]["optimistic"][0])[key] = value
    path = tmp_path / "validate-evolution.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match=f"not a validation document .*{key} = ") as refused:
        ValidationDocument.read(path)
    assert "\n" not in str(refused.value)
    if where == "row":
        row.pop(key)
    else:
        row["runs"]["optimistic"][0][key] = 1.0
    row["draw_quantile_optimistic"] = 0.995  # a quantile from 0 to 1 reads
    path.write_text(json.dumps(document))
    assert ValidationDocument.read(path).rows[0].draw_quantile["optimistic"] == 0.995


def test_a_folder_without_validation_has_no_section(tmp_path):
    assert validation_sections(SimpleNamespace(folder=tmp_path)) == []
