import re

import pytest

from profiler.report.document import Bullets, Report, Section, Table, save_figure
from profiler.report.html import render_html
from profiler.report.markdown import escape, render_markdown
from profiler.report.style import figure, log_axis, theme
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
        block = save_figure(fig, folder, "a-figure", 'caption with "quotes" & <tags>')
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
