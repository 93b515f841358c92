import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from profiler.measure.catalog import ModelSource
from profiler.errors import UserError
from profiler.measure.loading import load_model
from tests.conftest import save_tiny, tiny_config


def _source(folder):
    return ModelSource(folder.name, folder, "local")


def test_random_weights_are_real_random_and_usable(tiny_loaded):
    model = tiny_loaded.model
    assert tiny_loaded.random_weights
    assert not any(p.is_meta for p in model.parameters()) and not any(b.is_meta for b in model.buffers())
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    for p in matrices:
        assert abs(p.float().std().item() - 0.02) < 0.002
    assert len({tuple(p.flatten()[:8].tolist()) for p in matrices}) == len(matrices)  # not one block for all
    with torch.inference_mode():
        logits = model(torch.arange(10)[None]).logits
    assert torch.isfinite(logits).all()


def test_rotary_buffers_keep_their_values(tmp_path):
    reference = AutoModelForCausalLM.from_config(tiny_config("llama"))
    loaded = load_model(_source(save_tiny(tmp_path / "t", "llama")), torch.device("cpu"), torch.float32)
    assert torch.equal(loaded.model.model.rotary_emb.inv_freq, reference.model.rotary_emb.inv_freq)


def test_tied_embeddings_stay_tied(tmp_path):
    loaded = load_model(_source(save_tiny(tmp_path / "g", "gpt2")), torch.device("cpu"), torch.float32)
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.get_input_embeddings().weight.data_ptr()


def test_dtype_is_applied(tmp_path):
    loaded = load_model(_source(save_tiny(tmp_path / "q", "qwen2")), torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


def test_safetensors_weights_are_loaded_and_used(tmp_path, tiny_kind):
    folder = tmp_path / "trained"
    torch.manual_seed(1)
    original = AutoModelForCausalLM.from_config(tiny_config(tiny_kind))
    original.save_pretrained(folder)  # safetensors by default
    assert list(folder.glob("*.safetensors"))
    loaded = load_model(_source(folder), torch.device("cpu"), torch.float32)
    assert not loaded.random_weights
    for name, value in original.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    ids = torch.arange(12)[None]
    with torch.inference_mode():
        assert torch.allclose(loaded.model(ids).logits, original.eval()(ids).logits, atol=1e-5)


def test_pickle_checkpoint_is_refused_without_being_read(tmp_path):
    folder = save_tiny(tmp_path / "pickled", "gpt2")
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle: unpickling this would fail differently")
    with pytest.raises(UserError, match="refusing pytorch_model.bin: pickle checkpoints"):
        load_model(_source(folder), torch.device("cpu"), torch.float32)


def test_remote_code_needs_explicit_consent(tmp_path):
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "acme-secret", "auto_map": {"AutoConfig": "configuration_acme.AcmeConfig"}}
    ))
    (folder / "configuration_acme.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(UserError, match="--trust-remote-code"):
        load_model(_source(folder), torch.device("cpu"), torch.float32)


def test_architecture_of_loaded_model(tiny_loaded, tiny_kind):
    arch = tiny_loaded.architecture
    assert (arch.layers, arch.hidden, arch.heads, arch.max_positions) == (2, 64, 4, 128)
    assert arch.kv_heads == (4 if tiny_kind == "gpt2" else 2)
    assert arch.gated_mlp == (tiny_kind != "gpt2")
    assert arch.params == sum(p.numel() for p in tiny_loaded.model.parameters())


def test_device_map_auto_places_every_tensor(tmp_path):
    """accelerate chooses the devices: the GPU when there is one, else the CPU."""
    loaded = load_model(_source(save_tiny(tmp_path / "m", "llama")), torch.device("cpu"), torch.float32,
                        device_map="auto")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert set(loaded.device_map.values()) == {expected}
    assert {str(p.device) for p in loaded.model.parameters()} == {expected}
    with torch.inference_mode():
        assert torch.isfinite(loaded.model(torch.arange(5, device=loaded.device)[None]).logits).all()
