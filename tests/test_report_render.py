import multiprocessing
import re
import shutil
from functools import partial
from pathlib import Path

import pytest

from profiler.cli.main import main
from profiler.report import saving
from profiler.report.document import Bullets, Figure, Report, Section, Table
from profiler.report.html import render_html
from profiler.report.markdown import escape, render_markdown
from profiler.report.style import figure, log_axis, save, theme

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
EXAMPLE_FITS = ROOT / "fits" / "example"
from profiler.report.units import interval, quantity, share, significant, tick


@pytest.mark.parametrize("value, kind, text", [
    (0.0412, "s", "41.2 ms"), (1.5e-6, "s", "1.50 µs"), (0.9996, "s", "1.00 s"), (2**30, "bytes", "1.00 GiB"),
    (3.2e11, "FLOP/s", "320 GFLOP/s"), (2.28e10, "B/s", "22.8 GB/s"), (1234.4, "tokens/s", "1,234 tokens/s"),
])
def test_quantities_carry_their_unit(value, kind, text):
    assert quantity(value, kind) == text


def test_intervals_share_the_value_unit():
    assert interval(0.412, 0.401, 0.425, "s") == "412 ms [401, 425]"
    assert interval(0.5, 0.5, 0.5, "s") == "500 ms"  # exact: no bracket
    assert significant(1234.4) == "1,234" and tick(8.0) == "8" and tick(0.25) == "0.25" and tick(1024) == "1,024"
    assert share(0.473) == "47%" and share(0.0123) == "1.2%"


def test_markdown_escapes_markup():
    text = "<b>x|y</b> *a* _b_ [c](d) `e` & ~f~"
    assert escape(text) == r"\<b\>x\|y\</b\> \*a\* \_b\_ \[c\](d) \`e\` \& \~f\~"
    assert escape("# not a heading") == r"\# not a heading" and escape("- not a list") == r"\- not a list"


def _report(folder):
    with theme():
        fig = figure(6, 3)
        fig.subplots().plot([1, 2], [2, 1])
        save(fig, folder / "a-figure.png")
    block = Figure("a-figure.png", 'caption with "quotes" & <tags>')
    table = Table(columns=("name", "value"), rows=(("a|b", "1"), ("<i>", "2")), numeric=(False, True), note="n|b")
    return Report(title="T <1>", subtitle="s & t", folder=folder,
                  sections=(Section("One", ("para <p>", table, Bullets(("x", "<y>")), block)),))


def test_markdown_and_html_render_the_same_content(tmp_path):
    report = _report(tmp_path)
    markdown, html = render_markdown(report), render_html(report)
    assert markdown.startswith(r"# T \<1\>") and "| a\\|b | 1 |" in markdown and "|:---|---:|" in markdown
    assert '![caption with "quotes" \\& \\<tags\\>](a-figure.png)' in markdown
    assert "<title>T &lt;1&gt;</title>" in html and "<td>a|b</td>" in html and '<td class="num">1</td>' in html
    assert 'alt="caption with &quot;quotes&quot; &amp; &lt;tags&gt;"' in html and "<li>&lt;y&gt;</li>" in html
    assert html.count("<img ") == 1 and "data:image/png;base64," in html


def test_a_table_row_must_fit_its_columns():
    with pytest.raises(ValueError, match="2 cells"):
        Table(columns=("a", "b"), rows=(("1",),))


@pytest.mark.parametrize("low, high, kind, unit", [
    (0.028, 0.037, "s", "ms"),  # decode: a narrow span still gets three or more ticks
    (0.04, 0.7, "s", "ms"),
    (6e5, 2.5e10, "bytes", "bytes"),  # decades: each tick its own unit, at powers of two
    (25.0, 1200.0, "tokens/s", "tokens/s"),
])
def test_log_axes_get_readable_ticks(low, high, kind, unit):
    with theme():
        ax = figure().subplots()
        assert log_axis(ax, "y", low, high, kind) == unit
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        labels = [ax.yaxis.get_major_formatter()(t, i) for i, t in enumerate(ticks)]
    assert 3 <= len(ticks) <= 9
    assert ax.get_ylim()[0] <= low and ax.get_ylim()[1] >= high
    assert not any(re.search(r"e[+-]|\^|\$", label) for label in labels), labels
    if kind == "bytes":
        assert all(float.is_integer(__import__("math").log2(t)) for t in ticks) and "1 GiB" in labels


def _children() -> set[int]:
    """This process's child processes, zombies included (Linux: /proc/self/task/*/children)."""
    return {int(pid) for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()}


def _figure(index: int):
    """A small figure of the house style, each ``index`` a different one."""
    with theme():
        fig = figure(4, 3)
        ax = fig.subplots()
        ax.plot([1, 2, 3], [index, 2, 1])
        ax.set_title(f"figure {index}")
    return fig


def _figures(folder, count: int = 3):
    """``count`` figures with where each goes: the even ones built, the odd ones as functions that build them."""
    return [(_figure(index) if index % 2 == 0 else partial(_figure, index), folder / f"figure-{index}.png")
            for index in range(count)]


@pytest.fixture
def two_workers(monkeypatch):
    """``save_all`` forks two workers here whatever this machine's cores (where fork is offered)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here: save_all saves in this process")
    monkeypatch.setattr(saving, "cores", lambda: 2)


def test_figures_saved_by_workers_are_those_saved_here(tmp_path, two_workers):
    (tmp_path / "workers").mkdir()
    (tmp_path / "here").mkdir()
    before = _children()
    with theme():
        saving.save_all(_figures(tmp_path / "workers"))
        for index in range(3):
            save(_figure(index), tmp_path / "here" / f"figure-{index}.png")
    assert _children() == before  # every worker ended and was waited for: no zombie
    for index in range(3):
        assert (tmp_path / "workers" / f"figure-{index}.png").read_bytes() == \
            (tmp_path / "here" / f"figure-{index}.png").read_bytes()


def test_a_figure_that_cannot_be_written_raises_its_own_error_after_the_others_are_saved(tmp_path, two_workers):
    figures = _figures(tmp_path)
    (tmp_path / "figure-1.png").mkdir()  # a folder where the second figure goes
    before = _children()
    with pytest.raises(IsADirectoryError, match="figure-1.png"):
        saving.save_all(figures)
    assert _children() == before
    assert (tmp_path / "figure-0.png").is_file() and (tmp_path / "figure-2.png").is_file()


@pytest.mark.slow
def test_a_report_figure_that_cannot_be_written_is_one_line(tmp_path, capsys, two_workers):
    run = tmp_path / "gpt2"
    shutil.copytree(EXAMPLE_RUN, run, ignore=shutil.ignore_patterns("*.png", "report.*"))
    (run / "memory.png").mkdir()
    assert main(["report", str(run), "--fits", str(EXAMPLE_FITS)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write the report into {run}" in err and "Traceback" not in err, err
    assert (run / "throughput.png").is_file() and not (run / "report.html").exists()
