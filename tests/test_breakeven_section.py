from profiler.lba.calls import positions_needed
from profiler.lba.exercises import EXERCISES, KTask


def test_the_report_prices_the_three_exercises(tiny_run):
    folder, _ = tiny_run  # ``run`` ends with the report, break-even section included
    markdown = (folder / "report.md").read_text()
    assert "## Break-even: the paper's three exercises" in markdown
    for exercise in EXERCISES.values():
        figure = folder / f"breakeven-{exercise.name}.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
        assert f"({figure.name})" in markdown
    assert "paper's ratio" in markdown and "the decomposition" in markdown
    # the longest call in positions, by the rule the execution backend runs calls by: 519 for k-task's 512 + 8;
    # longer than the tiny run measured (128), so extrapolated
    longest = positions_needed(KTask.defaults()["n"], KTask.defaults()["out"])
    assert "longest call (positions)" in markdown and f"| {longest:,} \\* |" in markdown
