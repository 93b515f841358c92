import base64
import json
import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest
from PIL import Image

from profiler.cli.main import main
from profiler.costmodel.cost_model import CostModel
from profiler.report import Section, write_report
from profiler.report.build import HTML, MARKDOWN
from profiler.report.style import figure


def _figures_in(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\n]*?\]\(([\w-]+\.png)\)", markdown)


def assert_valid_figure(path):
    """A PNG a person can read: decodes, sized like a figure, many colours (not blank), small on disk."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert 10_000 < path.stat().st_size < 200_000, (path, path.stat().st_size)
    with Image.open(path) as image:
        image.load()
        assert image.width >= 600 and image.height >= 300, image.size
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50, "a blank or nearly blank figure"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs


def assert_self_contained(html: str, folder):
    """Nothing is fetched: images are data URIs of the PNGs beside it, no link, script, style import or URL."""
    parsed = _Tags()
    parsed.feed(html)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(parsed.tags)
    sources = [value for name, value in parsed.attributes if name == "src"]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not [name for name, _ in parsed.attributes if name in ("href", "srcset", "action", "style")]
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    for pattern in ("http:", "https:", "url(", "@import", "//"):
        assert pattern not in text, pattern
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    on_disk = {path.read_bytes() for path in folder.glob("*.png")}
    assert embedded <= on_disk


def test_run_ends_with_a_report(tiny_run):
    folder, _ = tiny_run
    markdown = (folder / MARKDOWN).read_text()
    for title in ("In short", "Machine, model and run", "Latency per pass", "Throughput and the roofline", "Memory",
                  "What a call costs here", "Caveats"):
        assert f"\n## {title}\n" in markdown
    figures = _figures_in(markdown)
    assert {"latency-prefill.png", "latency-decode.png", "latency-forward.png", "throughput.png",
            "memory.png"} <= set(figures)  # and whatever section providers add
    for name in figures:
        assert_valid_figure(folder / name)
    assert "random weights" in markdown and "cannot run: needs 1,024 positions, tiny takes 128" in markdown
    assert_self_contained((folder / HTML).read_text(), folder)


@pytest.mark.slow
def test_report_command_renders_again_from_saved_files(tiny_run, tmp_path, capsys):
    folder, fits = tiny_run
    copy = shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("previous"))
    samples = (copy / "samples.csv").read_bytes()
    for path in list(copy.glob("*.png")) + [copy / MARKDOWN, copy / HTML]:
        path.unlink()
    assert main(["report", str(copy), "--fits", str(fits)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in _figures_in((copy / MARKDOWN).read_text()):
        assert_valid_figure(copy / name)
    assert (copy / "samples.csv").read_bytes() == samples  # nothing measured, nothing rewritten


@pytest.mark.slow
def test_user_strings_are_escaped(tiny_run, tmp_path):
    folder, fits = tiny_run
    evil = '<script>alert("x")</script> & |pipe| *star*'
    copy = shutil.copytree(folder, tmp_path / "run <i>&amp;", ignore=shutil.ignore_patterns("previous"))
    run = json.loads((copy / "run.json").read_text())
    run["model"]["name"] = evil
    (copy / "run.json").write_text(json.dumps(run))
    samples = pd.read_csv(copy / "samples.csv")
    samples["model"] = evil  # the samples are of the run's model (read_samples holds them alike)
    samples.to_csv(copy / "samples.csv", index=False)
    (fit_file,) = fits.glob("tiny--*.json")
    document = json.loads(fit_file.read_text())
    document["model"]["name"] = evil
    written = write_report(copy, cost_model=CostModel.from_json(document))
    html, markdown = written.html.read_text(), written.markdown.read_text()
    assert "<script>" not in html and "<i>" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    assert "run &lt;i&gt;&amp;amp;" in html  # the folder's name, escaped once
    assert "<script>" not in markdown and r'\<script\>alert("x")\</script\> \& \|pipe\| \*star\*' in markdown
    for table in re.findall(r"(?:^\|.*\|$\n?)+", markdown, flags=re.MULTILINE):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(widths) == 1, table  # an escaped pipe never adds a column


def test_section_providers_plug_in_before_the_caveats(tiny_run, tmp_path):
    folder, fits = tiny_run
    copy = shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("previous"))
    seen = {}

    def breakeven(ctx):
        seen["calls"] = ctx.calls.call(64, 8)
        fig = figure(6, 3)
        ax = fig.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        return [Section("Break-even", ("Where one design overtakes another.",
                                       ctx.save_figure(fig, "breakeven-map", "the break-even map")))]

    written = write_report(copy, fits, providers=[breakeven])
    markdown = written.markdown.read_text()
    order = [markdown.index(f"## {title}") for title in ("What a call costs here", "Break-even", "Caveats")]
    assert order == sorted(order)
    assert "![the break-even map](breakeven-map.png)" in markdown
    assert copy / "breakeven-map.png" in written.figures
    assert seen["calls"][1] <= seen["calls"][0] <= seen["calls"][2]
    assert_self_contained(written.html.read_text(), copy)
    batch = "(batch.png)" in markdown  # a run that measured batches has their figure
    extend = "(extend.png)" in markdown  # and one whose fit has the extend surface, its own
    assert extend == CostModel.from_json(json.loads(next(fits.glob("tiny--*.json")).read_text())).has_extend
    assert written.html.read_text().count("data:image/png;base64,") == 6 + batch + extend == len(written.figures)


def _fails_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("profiler: error: ") and message in err, err


def test_report_on_a_folder_without_samples_fails_in_one_line(tiny_run, tmp_path, capsys):
    folder, fits = tiny_run
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_with_one_line(capsys, ["report", str(empty), "--fits", str(fits)], "no samples.csv")
    _fails_with_one_line(capsys, ["report", str(tmp_path / "absent"), "--fits", str(fits)], "not a folder")
    copy = shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("previous"))
    _fails_with_one_line(capsys, ["report", str(copy), "--fits", str(tmp_path / "nofits")], "no fit")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version="2.0"), "newer than this profiler reads"),
    (lambda d: d.pop("curves"), "not a valid cost model"),
])
def test_report_refuses_a_bad_fit_in_one_line(tiny_run, tmp_path, capsys, change, message):
    folder, fits = tiny_run
    (fit_file,) = fits.glob("tiny--*.json")
    document = json.loads(fit_file.read_text())
    change(document)
    (tmp_path / "fits").mkdir()
    (tmp_path / "fits" / fit_file.name).write_text(json.dumps(document))
    _fails_with_one_line(capsys, ["report", str(folder), "--fits", str(tmp_path / "fits")], message)
