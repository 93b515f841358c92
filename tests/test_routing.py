"""The routing of a real prefill pass on tiny mixtures of experts, its summary figures, and run.json."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from profiler.errors import UserError
from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from profiler.measure.routing import LayerRouting, Routing
from profiler.measure.routing_pass import measure_routing
from profiler.measure.run_document import RunDocument
from tests.families import FAMILIES, save_deepseek_v4, save_family

MOE = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "deepseek_v3"]
EXAMPLE_RUN = Path(__file__).resolve().parents[1] / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
N_CTX = 96


def _load(tmp_path, family: str):
    folder = save_family(tmp_path / family, family, max_positions=128)
    return load_model(ModelSource(family, folder, "local"), torch.device("cpu"), torch.float32)


def _experts_in_config(family: str) -> tuple[int, int]:
    numbers = FAMILIES[family][1]
    experts = next(numbers[key] for key in ("num_local_experts", "num_experts", "n_routed_experts") if key in numbers)
    return experts, numbers["num_experts_per_tok"]


def _router_choices(model: torch.nn.Module) -> tuple[list, list[Counter]]:
    """Hooks on every router (``*TopKRouter``), each counting the experts its output chose (its third element):
    the same routing read where it is decided rather than where it is used."""
    counts: list[Counter] = []
    handles = []
    for module in model.modules():
        if type(module).__name__.lower().endswith("topkrouter"):
            counts.append(Counter())
            handles.append(module.register_forward_hook(
                lambda m, args, out, seen=counts[-1]: seen.update(out[2].flatten().tolist())))
    return handles, counts


@pytest.mark.parametrize("family", MOE)
def test_each_layer_routes_every_token_to_top_k_experts_as_its_router_chose(tmp_path, family):
    loaded = _load(tmp_path, family)
    handles, chosen = _router_choices(loaded.model)
    routing = measure_routing(loaded, N_CTX)
    for handle in handles:
        handle.remove()
    experts, top_k = _experts_in_config(family)
    assert (routing.tokens, routing.experts, routing.top_k) == (N_CTX, experts, top_k)
    dense_first = FAMILIES[family][1].get("first_k_dense_replace", 0)
    assert [layer.layer for layer in routing.layers] == list(range(dense_first, loaded.architecture.layers))
    for layer, router in zip(routing.layers, chosen, strict=True):
        assert len(layer.tokens_per_expert) == experts
        assert sum(layer.tokens_per_expert) == N_CTX * top_k  # every index in range, every token k times
        assert layer.tokens_per_expert == [router[expert] for expert in range(experts)]
    assert 1 <= routing.load_ratio <= experts / top_k and 1 <= routing.experts_touched <= experts
    assert routing.experts_implementation == loaded.model.config._experts_implementation


def test_the_routing_is_the_timed_prefill_s_own(tmp_path):
    """The same seed gives the sweep's prompt, hence the same routing; another seed another prompt."""
    loaded = _load(tmp_path, "mixtral")
    first, again, other = (measure_routing(loaded, N_CTX, seed) for seed in (0, 0, 1))
    assert first == again and first != other


def test_layers_that_run_only_the_kept_position_are_left_out(tmp_path):
    """Gemma-4's last two layers share the keys and values of earlier ones and run only the position whose logits are
    kept: their experts see one token of the prefill's 96, so the routing is of the first two layers, each routing
    every token to its top 2 of 4 experts."""
    routing = measure_routing(_load(tmp_path, "gemma4_text"), N_CTX)
    assert [layer.layer for layer in routing.layers] == [0, 1] and (routing.experts, routing.top_k) == (4, 2)
    assert all(sum(layer.tokens_per_expert) == N_CTX * 2 for layer in routing.layers)


def test_a_router_that_sends_a_token_to_one_expert_in_several_slots_gives_no_record(tmp_path):
    """DeepSeek-V4's hash routing with random weights: its table of experts per token id is a buffer of zeros, so
    every token goes to expert 0 in both its slots. Its record counted 128 of 64 tokens there, which its own reader
    refused, so no cost model was fitted; such a layer is no routing to measure a balance by, and is left out."""
    folder = save_deepseek_v4(tmp_path / "deepseek_v4")
    loaded = load_model(ModelSource("deepseek_v4", folder, "local"), torch.device("cpu"), torch.float32)
    assert measure_routing(loaded, 64) is None


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_dense_model_has_no_routing(tmp_path, family):
    assert measure_routing(_load(tmp_path, family), N_CTX) is None


def _routing(*layers: list[int], tokens: int, top_k: int = 2) -> Routing:
    return Routing(tokens=tokens, top_k=top_k, experts=len(layers[0]), experts_implementation="eager",
                   layers=[LayerRouting(index, list(counts)) for index, counts in enumerate(layers)])


def test_summary_figures_from_balanced_to_all_on_the_same_experts():
    balanced = _routing([16, 16, 16, 16], [16, 16, 16, 16], tokens=32)
    assert (balanced.load_ratio, balanced.worst_layer_ratio, balanced.cv, balanced.experts_touched) == (1, 1, 0, 4)
    same = _routing([32, 32, 0, 0], [16, 16, 16, 16], tokens=32)  # one layer sends every token to experts 0 and 1
    assert same.worst_layer_ratio == 2 and same.load_ratio == 1.5 and same.experts_touched == 2
    assert same.cv == pytest.approx(0.5)  # (1 + 0) / 2


def test_uniform_routing_balances_better_as_the_tokens_grow():
    ratios = [_routing([n * 2 // 8] * 8, tokens=n).uniform_load_ratio for n in (16, 256, 4096)]
    assert 8 / 2 > ratios[0] > ratios[1] > ratios[2] > 1
    mean, sd = 4096 * 2 / 8, (4096 * 0.25 * 0.75) ** 0.5  # each count Binomial(4096, 2/8), near normal
    assert ratios[2] == pytest.approx(1 + 1.4236 * sd / mean, abs=0.003)  # the largest of 8 normals: 1.4236 sd up


def test_run_json_keeps_the_routing_and_old_runs_read_without_it(tmp_path):
    old = RunDocument.read(EXAMPLE_RUN)  # written before routing was measured
    assert old.routing is None
    routing = _routing([40, 24, 30, 34], [32, 32, 32, 32], tokens=64)
    new = RunDocument(command=old.command, asked=old.asked, model=old.model, done=old.done, points=old.points,
                      routing=routing)
    new.write(tmp_path)
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["routing"]["summary"]["load_ratio"] == pytest.approx(routing.load_ratio)
    assert RunDocument.read(tmp_path) == new
    RunDocument(command=old.command, asked=old.asked, model=old.model, done=old.done, points=old.points).write(tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["routing"] is None and RunDocument.read(tmp_path) == old


@pytest.mark.parametrize("change", [
    lambda routing: routing["layers"][0]["tokens_per_expert"].append(0),  # five counts for four experts
    lambda routing: routing["layers"][1]["tokens_per_expert"].__setitem__(0, 33),  # not 64 x 2 in all
    lambda routing: routing.pop("layers"),
    lambda routing: routing.update(layers=[]),
    lambda routing: routing.update(shards=2),
    lambda routing: routing.update(tokens=-1),
    lambda routing: routing.update(tokens=10**30),
    lambda routing: routing.update(tokens=64.5),
    lambda routing: routing.update(top_k=5),  # more than the 4 experts
    lambda routing: routing.update(top_k=True),
    lambda routing: routing.update(experts_implementation=7),
    lambda routing: routing["layers"][0]["tokens_per_expert"].__setitem__(0, -40),
    lambda routing: routing["layers"][0].update(tokens_per_expert="garbage"),
    lambda routing: routing["layers"][0].update(layer=-1),
    "garbage", 5, [],
])
def test_a_routing_record_that_does_not_add_up_is_one_line(tmp_path, change):
    folder = Path(shutil.copytree(EXAMPLE_RUN, tmp_path / "run", ignore=shutil.ignore_patterns("*.png", "previous")))
    document = json.loads((folder / "run.json").read_text())
    document["routing"] = _routing([40, 24, 30, 34], [32, 32, 32, 32], tokens=64).to_json()
    if callable(change):
        change(document["routing"])
    else:  # not a record at all
        document["routing"] = change
    (folder / "run.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="run.json: not a run document") as raised:
        RunDocument.read(folder)
    assert "\n" not in str(raised.value)


def test_a_routing_record_is_bounded_as_a_model_s_positions_are():
    from profiler.measure.config_check import MAX_NUMBER
    from profiler.measure.routing import MAX_TOKENS

    assert MAX_TOKENS == MAX_NUMBER["max_positions"]
