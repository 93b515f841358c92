import json
import re

import pytest

from profiler.cli.main import main
from profiler.report.compare import HTML, MARKDOWN
from tests.test_report_build import assert_self_contained, assert_valid_figure


def _scaled_fit(fit_file, tmp_path, factor: float, name: str):
    """The tiny run's fit with every latency coefficient (and its interval) but a power's exponent times ``factor``:
    a model exactly ``factor`` times slower on the same machine."""
    document = json.loads(fit_file.read_text())
    document["model"]["name"] = name
    for metrics in document["curves"].values():
        for key, entry in metrics["latency_s"]["params"].items():
            if key != "p":
                entry["value"] *= factor
                entry["ci95"] = [bound * factor for bound in entry["ci95"]]
    path = tmp_path / f"{name}--{document['hardware_slug']}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def compared(tiny_run, tmp_path_factory):
    _, fits = tiny_run
    (fit_file,) = fits.glob("tiny--*.json")
    root = tmp_path_factory.mktemp("compare")
    slower = _scaled_fit(fit_file, root, 3.0, "slower")
    assert main(["compare", str(fit_file), str(slower), "--out", str(root / "out")]) == 0
    return root / "out"


def test_compare_writes_overlaid_figures_and_a_ratio_table(compared):
    markdown = (compared / MARKDOWN).read_text()
    figures = re.findall(r"\]\(([\w-]+\.png)\)", markdown)
    assert set(figures) == {"latency-prefill.png", "latency-decode.png", "latency-forward.png", "throughput.png",
                            "memory.png"}
    for name in figures:
        assert_valid_figure(compared / name)
    assert_self_contained((compared / HTML).read_text(), compared)
    row = next(line for line in markdown.splitlines() if line.startswith("| 128 | 1 |"))
    number = r"(\d+(?:\.\d+)?)"  # 3.00, 0.647, 19.4: a busy machine's tiny fit has wide intervals
    ratio = re.search(rf"\| {number} \\\[{number}, {number}\\\] \|", row)
    value, low, high = map(float, ratio.groups())
    assert value == pytest.approx(3.0, rel=0.01) and low < value < high
    assert "cannot run on either: needs 1,024 positions" in markdown


def test_compare_names_each_fit_by_what_differs(compared):
    markdown = (compared / MARKDOWN).read_text()
    assert markdown.startswith("# tiny against slower\n")
    assert "| in | out | tiny | slower | second / first | note |" in markdown


def test_compare_refuses_a_newer_fit_in_one_line(tiny_run, tmp_path, capsys):
    _, fits = tiny_run
    (fit_file,) = fits.glob("tiny--*.json")
    document = json.loads(fit_file.read_text())
    document["schema_version"] = "2.0"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(document))
    assert main(["compare", str(fit_file), str(newer), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer than this profiler reads" in err
    assert not (tmp_path / "out").exists()
