"""The report's routing section: present for a mixture of experts, with the balance measured, absent for a dense model."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from profiler.cli.main import main
from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from profiler.measure.routing_pass import measure_routing
from profiler.measure.run_document import RunDocument
from profiler.report.build import MARKDOWN, write_report
from profiler.report.routing_section import routing_sections
from tests.families import save_family

TITLE = "## Mixture of experts: how the tokens were routed"


def test_a_dense_model_s_report_has_no_routing_section(tiny_run):
    folder, _ = tiny_run
    assert RunDocument.read(folder).routing is None
    assert json.loads((folder / "run.json").read_text())["routing"] is None
    assert TITLE not in (folder / MARKDOWN).read_text()


@pytest.mark.parametrize("random_weights", [True, False])
def test_a_mixture_of_experts_report_states_its_routing(tiny_run, tmp_path, random_weights):
    """A real routing (a tiny Mixtral's prefill) in a run's run.json: the section states its figures."""
    folder, fits = tiny_run
    copy = shutil.copytree(folder, tmp_path / "run", ignore=shutil.ignore_patterns("previous"))
    mixtral = save_family(tmp_path / "mixtral", "mixtral", max_positions=128)
    loaded = load_model(ModelSource("mixtral", mixtral, "local"), torch.device("cpu"), torch.float32)
    routing = measure_routing(loaded, 128)
    run = RunDocument.read(copy)
    dataclasses.replace(run, routing=routing,
                        model=dataclasses.replace(run.model, random_weights=random_weights)).write(copy)
    markdown = write_report(copy, fits, providers=[routing_sections]).markdown.read_text()
    section = markdown[markdown.index(TITLE):markdown.index("## Caveats")]
    assert "One prefill of 128 tokens" in section and "each token to 2 of 4 experts in each of 2 MoE layers" in section
    assert f"busiest expert took {routing.load_ratio:.2f}x" in section
    assert f"about {routing.uniform_load_ratio:.2f}x" in section
    for layer in routing.layers:
        assert (f"| {layer.layer} | {min(layer.tokens_per_expert)} - {max(layer.tokens_per_expert)} | "
                f"{layer.max_over_mean:.2f} |") in section
    assert "The FLOPs do not depend on the balance" in section and "grouped\\_mm" in section
    assert f"take up to {routing.load_ratio:.2f}x what perfect balance would" in section
    assert ("The weights are random" in section) is random_weights
    assert ("The weights are trained" in section) is not random_weights


@pytest.mark.slow
def test_a_run_of_a_mixture_of_experts_records_and_reports_its_routing(tmp_path):
    model = save_family(tmp_path / "moe", "qwen2_moe", max_positions=128)
    argv = ["run", "--model", str(model), "--lengths", "8,16,32,64,100", "--budget", "4", "--threads", "1",
            "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]
    assert main(argv) == 0
    (folder,) = (tmp_path / "reports").glob("*/moe")
    run = RunDocument.read(folder)
    routing, longest = run.routing, max(run.done.lengths)  # 100 on a quiet machine; a busy one affords fewer
    assert routing.tokens == longest and routing.top_k == 2 and routing.experts == 4  # the longest length measured
    assert all(sum(layer.tokens_per_expert) == 2 * longest for layer in routing.layers)
    markdown = (folder / MARKDOWN).read_text()
    assert TITLE in markdown and f"One prefill of {longest} tokens" in markdown
