import json
import pickle
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from profiler.errors import UserError
from profiler.measure.catalog import ModelSource
from profiler.measure.loading import check_model, load_model
from tests.conftest import save_tiny, tiny_config
from tests.families import family_config, save_family
from tests.user_error import run_argv, skip_ceilings, stop_before_measuring, user_error


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


def test_an_architecture_that_cannot_run_sdpa_gets_eager_and_says_why(tmp_path):
    folder = save_family(tmp_path / "gemma2", "gemma2")  # logit soft-capping: no sdpa in transformers
    loaded = load_model(_source(folder), torch.device("cpu"), torch.float32)
    assert loaded.attn_implementation == "eager" == loaded.model.config._attn_implementation
    assert loaded.attn_fallback.startswith("Gemma2ForCausalLM cannot run sdpa attention in transformers 5.")
    with torch.inference_mode():
        assert torch.isfinite(loaded.model(torch.arange(40)[None]).logits).all()  # past its window of 32
    assert load_model(_source(folder), torch.device("cpu"), torch.float32,
                      attn_implementation="eager").attn_fallback is None  # asked for: nothing fell back


def test_sdpa_is_the_default_and_asked_for_it_is_refused_where_it_cannot_run(tmp_path, capfd, monkeypatch):
    llama = load_model(_source(save_tiny(tmp_path / "llama", "llama")), torch.device("cpu"), torch.float32)
    assert (llama.attn_implementation, llama.attn_fallback) == ("sdpa", None)
    skip_ceilings(monkeypatch)
    folder = save_family(tmp_path / "gemma2", "gemma2")
    assert user_error(capfd, run_argv(folder, "--attn", "sdpa")) == (
        f"profiler: error: gemma2: Gemma2ForCausalLM cannot run sdpa attention in transformers "
        f"{transformers.__version__}; pass --attn eager")


def test_a_model_built_here_runs_without_cudnn_attention_or_hub_kernels(tmp_path, monkeypatch):
    """cuDNN's attention builds a plan for every new sequence length (3 ms a layer on an H200: a generate's decode
    steps paid it at each position), and hub kernels are remote code that replaces the layers measured: building a
    model switches both off for the process, whatever they were."""
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")
    torch.backends.cuda.enable_cudnn_sdp(True)
    load_model(_source(save_tiny(tmp_path / "llama", "llama")), torch.device("cpu"), torch.float32)
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    assert not transformers.integrations.hub_kernels._kernels_enabled()


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


# -- weights that cannot be read are one line naming the file --------------------------------





@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory):
    """A tiny GPT-2 with its own weights in one model.safetensors: copied by each test that breaks it."""
    folder = tmp_path_factory.mktemp("saved") / "saved"
    AutoModelForCausalLM.from_config(tiny_config("gpt2")).save_pretrained(folder)
    assert [p.name for p in folder.glob("*.safetensors")] == ["model.safetensors"]
    return folder


def _copy(saved, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(saved, folder)
    return folder, folder / "model.safetensors"


def _header_length(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")  # safetensors: 8-byte little-endian length, then JSON


HEADER_FAULTS = {  # id: (how the file's bytes are spoiled, what the line must say)
    "truncated": (lambda data: data[: len(data) // 2], "file not fully covered"),
    "truncated in the length": (lambda data: data[:4], "unreadable safetensors"),
    "empty": (lambda data: b"", "header too small"),
    "header bytes overwritten": (lambda data: data[:8] + b"\xff" * _header_length(data)
                                 + data[8 + _header_length(data):], "invalid UTF-8 in header"),
    "length overwritten": (lambda data: (10**15).to_bytes(8, "little") + data[8:], "header too large"),
    "header not an object": (lambda data: data[:8] + b"[" + data[9:], "invalid JSON in header"),
    "one byte short": (lambda data: data[:-1], "file not fully covered"),
}


@pytest.mark.parametrize("case", HEADER_FAULTS.values(), ids=HEADER_FAULTS.keys())
def test_a_spoilt_safetensors_file_is_one_line_before_anything_is_built(case, saved_gpt2, tmp_path, capfd,
                                                                        monkeypatch):
    spoil, expected = case
    folder, weights = _copy(saved_gpt2, tmp_path)
    weights.write_bytes(spoil(weights.read_bytes()))
    stop_before_measuring(monkeypatch)
    line = user_error(capfd, run_argv(folder))
    assert line.startswith(f"profiler: error: {weights}: unreadable safetensors (") and expected in line, line


def test_a_folder_or_a_link_loop_in_place_of_the_file(saved_gpt2, tmp_path, capfd, monkeypatch):
    folder, weights = _copy(saved_gpt2, tmp_path)
    weights.unlink()
    weights.mkdir()
    stop_before_measuring(monkeypatch)
    assert f"{weights}: unreadable safetensors" in user_error(capfd, run_argv(folder))
    weights.rmdir()
    weights.symlink_to(weights.name)
    assert f"{weights}: unreadable safetensors" in user_error(capfd, run_argv(folder))


def _rewritten(saved, tmp_path, change):
    """The saved weights with ``change`` applied to their tensors, written as safetensors again."""
    folder, weights = _copy(saved, tmp_path)
    tensors = load_file(weights)
    change(tensors)
    save_file(tensors, weights, metadata={"format": "pt"})
    return folder, weights


def test_a_tensor_of_the_wrong_shape_is_named(saved_gpt2, tmp_path, capfd, monkeypatch):
    def narrow(tensors):
        tensors["transformer.h.0.attn.c_attn.weight"] = torch.zeros(64, 100)

    folder, weights = _rewritten(saved_gpt2, tmp_path, narrow)
    skip_ceilings(monkeypatch)
    line = user_error(capfd, run_argv(folder))
    assert line == (f"profiler: error: {weights}: transformer.h.0.attn.c_attn.weight has shape [64, 100], "
                    "config.json needs [64, 192]")  # c_attn: q, k and v of 64 each


def test_a_missing_tensor_is_named_not_left_random(saved_gpt2, tmp_path, capfd, monkeypatch):
    def drop(tensors):
        del tensors["transformer.h.1.mlp.c_fc.weight"], tensors["transformer.h.1.mlp.c_fc.bias"]

    folder, weights = _rewritten(saved_gpt2, tmp_path, drop)
    skip_ceilings(monkeypatch)
    line = user_error(capfd, run_argv(folder))
    assert line == (f"profiler: error: {weights}: no tensor transformer.h.1.mlp.c_fc.bias (and 1 more), "
                    "which config.json needs")


def test_a_missing_shard_is_named(tmp_path, capfd, monkeypatch):
    folder = tmp_path / "sharded"
    AutoModelForCausalLM.from_config(tiny_config("llama")).save_pretrained(folder, max_shard_size="100KB")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[1].unlink()
    skip_ceilings(monkeypatch)
    line = user_error(capfd, run_argv(folder))
    assert "sharded: cannot read its weights" in line and shards[1].name in line


class _Trap:
    """Unpickling this creates ``marker``: evidence that a checkpoint was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("beside", ["nothing", "a truncated model.safetensors"])
def test_pickle_checkpoints_are_never_unpickled(beside, saved_gpt2, tmp_path, capfd, monkeypatch):
    folder, weights = _copy(saved_gpt2, tmp_path)
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    if beside == "nothing":
        weights.unlink()
        expected = "refusing pytorch_model.bin: pickle checkpoints"
    else:
        weights.write_bytes(weights.read_bytes()[:1000])
        expected = f"{weights}: unreadable safetensors"
    stop_before_measuring(monkeypatch)
    assert expected in user_error(capfd, run_argv(folder))
    assert not marker.exists()
    pickle.loads((folder / "pytorch_model.bin").read_bytes())  # the trap works: unpickling would have shown
    assert marker.exists()


def test_good_weights_pass_every_check_and_load(saved_gpt2, tmp_path, monkeypatch):
    source = _source(saved_gpt2)
    check_model(source)
    stop_before_measuring(monkeypatch)
    from profiler.cli.main import main

    with pytest.raises(AssertionError, match="got past its input checks"):
        main(run_argv(saved_gpt2, "--out", str(tmp_path / "reports"), "--fits", str(tmp_path / "fits")))
    loaded = load_model(source, torch.device("cpu"), torch.float32)
    assert not loaded.random_weights
    assert torch.equal(loaded.model.state_dict()["transformer.h.0.attn.c_attn.weight"],
                       load_file(saved_gpt2 / "model.safetensors")["transformer.h.0.attn.c_attn.weight"])


def _with(family: str, **numbers):
    """The tiny config of ``family`` with ``numbers`` set after it is made (a config.json as a user might edit it)."""
    config = family_config(family, max_positions=64)
    for name, value in numbers.items():
        setattr(config, name, value)
    return config


BUILT_AND_NOT_RUN = {  # a config.json transformers reads, and the line its model gets
    "encoder": (lambda: transformers.BertConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                intermediate_size=128, max_position_embeddings=64),
                "its forward pass returns no KV cache: not a decoder this tool measures"),
    "inconsistent": (lambda: transformers.CodeGenConfig(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                                                        rotary_dim=64),
                     f"a forward pass fails in transformers {transformers.__version__} (RuntimeError: "),
    "no-layer-types": (lambda: transformers.Lfm2MoeConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                                          intermediate_size=128, num_attention_heads=4,
                                                          num_key_value_heads=2, moe_intermediate_size=32, num_experts=4,
                                                          num_experts_per_tok=2, max_position_embeddings=256),
                       "cannot build this model (TypeError: "),
    "zero-multiple": (lambda: _with("lfm2", block_multiple_of=0), "cannot build this model (ZeroDivisionError: "),
    "negative-width": (lambda: _with("qwen3_5_text", linear_num_value_heads=-4),
                       "cannot build this model (RuntimeError: Trying to create tensor with negative dimension"),
    # a width or a chunk no machine's address space holds (petabytes): refused whatever the kernel overcommits
    "huge-width": (lambda: _with("qwen3_5_text", linear_num_value_heads=2**46),
                   "building this model runs out of memory ("),
    "huge-chunk": (lambda: _with("granitemoehybrid", mamba_chunk_size=10**12),
                   "a pass of two tokens runs out of memory ("),
    "not-a-decoder": (lambda: transformers.ReformerConfig(vocab_size=256, hidden_size=64, num_attention_heads=4,
                                                          max_position_embeddings=256, is_decoder=False),
                      "cannot build this model (AssertionError: "),
}


@pytest.mark.parametrize("kind", BUILT_AND_NOT_RUN)
def test_a_model_transformers_cannot_build_or_run_is_one_line_and_writes_no_samples(kind, tmp_path, capfd,
                                                                                     monkeypatch):
    """BERT as a causal LM returns no KV cache; a CodeGen whose rotary dimensions (64) exceed its heads' (16) fails in
    its first pass; an LFM2-MoE without layer types, an LFM2 rounding its MLP width to a multiple of 0, a Qwen3.5 of
    -4 value heads and a Reformer that is not a decoder fail in their constructors; a Qwen3.5 of 2^46 value heads
    runs out of memory in its constructor, and a Granite-4.0-H whose scan pads two tokens to a chunk of 10^12 in its
    first pass: each is one line at load, before the run's samples.csv is opened (its folder holds only its
    lock)."""
    folder = tmp_path / kind
    make, said = BUILT_AND_NOT_RUN[kind]
    make().save_pretrained(folder)
    expected = f"profiler: error: {kind}: {said}"
    skip_ceilings(monkeypatch)
    monkeypatch.chdir(tmp_path)
    line = user_error(capfd, run_argv(folder, "--out", "out", "--fits", "fits"))
    assert line.startswith(expected), line
    assert [path.name for path in (tmp_path / "out").rglob("*") if path.is_file()] == [".lock"]


@pytest.mark.parametrize("weights", [False, True])
def test_weights_beyond_the_memory_available_are_refused_before_they_are_allocated(weights, tmp_path, capfd,
                                                                                   monkeypatch):
    """On a CPU, running out of memory kills the process: weights that need more than ``MemAvailable`` (here 4 KiB),
    random or the folder's safetensors, are one line before any is allocated or read; with the memory there, the same
    model loads."""
    from profiler.measure import memory
    from profiler.measure.loading import meta_architecture

    folder = save_family(tmp_path / "llama", "llama")
    if weights:
        AutoModelForCausalLM.from_config(family_config("llama")).save_pretrained(folder)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemAvailable:       4 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    skip_ceilings(monkeypatch)
    monkeypatch.chdir(tmp_path)
    needed = meta_architecture(ModelSource("llama", folder, "local")).params * 4  # float32
    line = user_error(capfd, run_argv(folder, "--device", "cpu", "--out", "out", "--fits", "fits"))
    assert line == (f"profiler: error: llama: building this model runs out of memory (its weights need {needed:,} "
                    "bytes on the CPU, 4,096 are available: out of memory)")
    meminfo.write_text("MemTotal:       16384 kB\nMemAvailable:       16384 kB\n")
    loaded = load_model(ModelSource("llama", folder, "local"), torch.device("cpu"), torch.float32)
    assert loaded.random_weights != weights


def test_a_model_whose_constructor_runs_out_of_memory_is_refused_by_what_its_weights_need(tmp_path, capfd,
                                                                                          monkeypatch):
    """Random weights are built empty first, but a mixture's constructor makes each layer's experts as one tensor before
    it registers them (here 512 GB a layer), which no CPU here holds: the line says what the whole model's weights
    need, as for any model whose weights do not fit, not what that one tensor did."""
    from profiler.measure import memory
    from profiler.measure.loading import meta_architecture

    folder = tmp_path / "mixtral"
    _huge_mixtral().save_pretrained(folder)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16777216 kB\nMemAvailable:       16777216 kB\n")  # 16 GiB
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    skip_ceilings(monkeypatch)
    monkeypatch.chdir(tmp_path)
    needed = meta_architecture(ModelSource("mixtral", folder, "local")).params * 4  # float32
    assert user_error(capfd, run_argv(folder, "--device", "cpu", "--out", "out", "--fits", "fits")) == (
        f"profiler: error: mixtral: building this model runs out of memory (its weights need {needed:,} bytes on the "
        f"CPU, {16 << 30:,} are available: out of memory)")


def _huge_mixtral():
    """A Mixtral of 2 layers, 64 wide, with 100,000 experts 10,000 wide: 512 GB of experts a layer."""
    from transformers import MixtralConfig

    return MixtralConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=10_000, num_local_experts=100_000,
                         num_experts_per_tok=2, max_position_embeddings=128)


def test_the_architecture_of_a_model_too_large_to_build_is_read_without_allocating_it(tmp_path):
    """A mixture's constructor makes each layer's experts as one tensor before it registers it as a parameter: one layer
    of DeepSeek-V3.2's is 30 GB, and reading its architecture (``run --endpoint`` of a served model given its
    config.json, ``models``) ran out of memory on a 24 GB machine. Here a layer's experts are 512 GB: read on the meta
    device, every expert counted."""
    from profiler.measure.loading import meta_architecture

    _huge_mixtral().save_pretrained(tmp_path)
    arch = meta_architecture(ModelSource("mixtral", tmp_path, "local"))
    assert arch.params - arch.active_params == 2 * (100_000 - 2) * 3 * 64 * 10_000  # the experts a token skips
