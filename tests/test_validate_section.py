from types import SimpleNamespace

from profiler.cli.main import main
from profiler.report import write_report
from profiler.report.validate_section import validation_sections


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
    assert folder / "validate-evolution.png" in written.figures


def test_a_folder_without_validation_has_no_section(tmp_path):
    assert validation_sections(SimpleNamespace(folder=tmp_path)) == []
