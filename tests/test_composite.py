import json

import pytest
import torch
import transformers

from profiler.measure.catalog import ModelSource
from profiler.measure.composite import language_model
from profiler.measure.loading import load_model, reads_own_weights
from tests.conftest import save_tiny
from tests.families import save_composite
from tests.user_error import run_argv, stop_before_measuring, user_error

COMPOSITES = {"Gemma3Config": "Gemma3ForCausalLM", "LlavaConfig": "LlamaForCausalLM",
              "Mistral3Config": "MistralForCausalLM"}


def _loaded(folder):
    return load_model(ModelSource(folder.name, folder, "local"), torch.device("cpu"), torch.float32)


def test_a_plain_config_is_itself(tmp_path):
    folder = save_tiny(tmp_path / "g", "gpt2")
    config = transformers.AutoConfig.from_pretrained(folder)
    written = json.loads((folder / "config.json").read_text())
    assert language_model(config, written, has_weights=True) == (config, written, None)


def test_a_composite_config_gives_its_language_model_and_says_what_is_left_out(tmp_path):
    folder = save_composite(tmp_path / "vl")
    config = transformers.AutoConfig.from_pretrained(folder)
    written = json.loads((folder / "config.json").read_text())
    text, text_written, part = language_model(config, written, has_weights=False)
    assert text.to_dict() == config.text_config.to_dict() and text_written == written["text_config"]
    assert part == ("the language model of a Gemma3Config alone (text_config, a Gemma3TextConfig), with random "
                    "weights: a text call runs it alone; its vision_config is not measured")
    assert "the folder's are the whole model's, not read" in language_model(config, written, has_weights=True)[2]
    assert language_model(config, {**written, "text_config": 5}, False)[1] == {}  # its numbers then said missing


@pytest.mark.parametrize("composite", COMPOSITES)
def test_the_language_model_is_built_alone_with_random_weights(composite, tmp_path):
    folder = save_composite(tmp_path / composite, composite, weights=True)
    whole = transformers.AutoModelForImageTextToText.from_pretrained(folder)
    loaded = _loaded(folder)
    assert type(loaded.model).__name__ == COMPOSITES[composite]
    assert loaded.random_weights and not reads_own_weights(ModelSource(folder.name, folder, "local"))
    assert "the folder's are the whole model's, not read" in loaded.part_measured
    arch = loaded.architecture
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.max_positions) == (2, 64, 4, 2, 128)
    language = {id(p): p for name, p in whole.named_parameters() if "vision" not in name and "projector" not in name}
    assert arch.params == sum(p.numel() for p in language.values())  # no encoder parameter; tied as the whole is


def test_a_text_call_runs_the_same_work_as_the_whole_model(tmp_path):
    """The language model built alone, given the whole model's language weights, computes the whole model's logits
    for a text prompt (fp32, within 1e-5): the passes measured are a text call's."""
    folder = save_composite(tmp_path / "vl", weights=True)
    whole = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    alone = _loaded(folder).model
    weights = {name.replace("model.language_model.", "model."): value for name, value in whole.state_dict().items()
               if "vision" not in name and "projector" not in name}
    assert alone.load_state_dict(weights, strict=False).missing_keys == []
    tokens = torch.arange(1, 21)[None]
    with torch.inference_mode():
        assert torch.allclose(alone(tokens).logits, whole(input_ids=tokens).logits, atol=1e-5)


def test_a_composite_missing_a_number_of_its_language_model_is_one_line(tmp_path, capfd, monkeypatch):
    folder = save_composite(tmp_path / "vl")
    written = json.loads((folder / "config.json").read_text())
    del written["text_config"]["intermediate_size"]
    (folder / "config.json").write_text(json.dumps(written))
    stop_before_measuring(monkeypatch)
    err = user_error(capfd, run_argv(folder, "--out", str(tmp_path / "out")))
    assert "no intermediate_size (ffn; the library would take" in err


@pytest.mark.slow
def test_a_composite_runs_and_every_output_says_which_part_was_measured(tmp_path, monkeypatch, capsys):
    from profiler.cli.main import main
    from profiler.measure.run_document import RunDocument
    from tests.user_error import skip_ceilings

    skip_ceilings(monkeypatch)
    folder = save_composite(tmp_path / "vl", "LlavaConfig", weights=True)
    assert main(["run", "--model", str(folder), "--lengths", "16,64,128", "--budget", "4",
                 "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")]) == 0
    part = ("the language model of a LlavaConfig alone (text_config, a LlamaConfig), with random weights (the "
            "folder's are the whole model's, not read): a text call runs it alone; its vision_config is not measured")
    printed = " ".join(capsys.readouterr().out.split())
    assert f"measured: {part}" in printed and "times the formula's" not in printed  # Llama's FLOPs: the formula's
    (run_folder,) = (tmp_path / "reports").glob("*/vl")
    model = RunDocument.read(run_folder).model
    assert (model.part_measured, model.random_weights, model.architecture["model_type"]) == (part, True, "llama")
    assert f"| part measured | {part} |" in (run_folder / "report.md").read_text().replace("\\_", "_")


def test_the_inventory_lists_a_composites_weights_as_random(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from profiler.cli.models import print_inventory

    monkeypatch.chdir(tmp_path)  # the working directory's models/
    save_composite(tmp_path / "models" / "vl", weights=True)
    transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(
        save_tiny(tmp_path / "models" / "plain", "gpt2"))).save_pretrained(tmp_path / "models" / "plain")
    wide = io.StringIO()
    print_inventory(Console(file=wide, width=2000))
    rows = {line.split("│")[1].strip(): line for line in wide.getvalue().splitlines() if line.count("│") > 2}
    assert "random" in rows["vl"] and "gemma3_text" in rows["vl"] and "safetensors" not in rows["vl"]
    assert "safetensors" in rows["plain"]


@pytest.mark.parametrize("composite, text, built", [("Gemma3nConfig", "gemma3n_text", "Gemma3nForCausalLM"),
                                                    ("Gemma4Config", "gemma4_text", "Gemma4ForCausalLM")])
def test_an_on_device_gemma_is_its_language_model_without_its_vision_and_audio_encoders(composite, text, built,
                                                                                         tmp_path):
    """Gemma-3n and Gemma-4 checkpoints hold a vision and an audio encoder beside the language model: the language
    model of their ``text_config`` is what is built, read as that family alone is."""
    from profiler.measure.loading import meta_architecture
    from tests.families import family_config, save_family

    folder = tmp_path / composite
    getattr(transformers, composite)(text_config=family_config(text, 128).to_dict()).save_pretrained(folder)
    loaded = _loaded(folder)
    assert type(loaded.model).__name__ == built
    assert loaded.part_measured.endswith("its audio_config, vision_config are not measured")
    alone = meta_architecture(ModelSource(text, save_family(tmp_path / text, text, 128), "local"))
    assert loaded.architecture == alone
