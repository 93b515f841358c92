import pytest
import torch
from transformers import Lfm2Config

from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from profiler.measure.memory import PeakMemory, kv_cache_bytes
from profiler.measure.passes import Passes
from tests.families import SLIDING_WINDOW, save_family

MIB = 2**20


@pytest.fixture
def cpu_peak():
    peak = PeakMemory(torch.device("cpu"))
    if not peak.supported:
        pytest.skip("no /proc/self/clear_refs: CPU peak not measurable here")
    return peak


def test_cpu_peak_sees_a_transient_allocation(cpu_peak):
    cpu_peak.reset()
    baseline, _ = cpu_peak.read()
    cpu_peak.reset()
    block = torch.ones(300 * MIB // 4)  # 300 MiB, touched
    del block
    peak, reserved = cpu_peak.read()
    assert reserved is None
    assert peak - baseline >= 290 * MIB


def test_cpu_peak_reset_forgets_earlier_peaks(cpu_peak):
    cpu_peak.reset()
    block = torch.ones(300 * MIB // 4)
    del block  # a large block goes straight back to the kernel
    before_reset, _ = cpu_peak.read()
    cpu_peak.reset()
    after_reset, _ = cpu_peak.read()
    assert before_reset - after_reset >= 250 * MIB


def test_kv_cache_bytes_match_the_architecture(tiny_loaded):
    cache = Passes(tiny_loaded).prefill(50)
    assert kv_cache_bytes(cache) == 50 * tiny_loaded.architecture.kv_bytes_per_token(torch.float32)
    assert kv_cache_bytes(None) == 0


# which layers of a family's tiny config are windowed (tests/families.py); every layer there caches 2 KV heads of
# 16 dimensions: keys and values of one token take 2 x 2 x 16 float32 = 256 bytes per layer
WINDOWED_LAYERS = {"mistral": [True, True], "gemma3_text": [True, False, True]}
TOKEN_BYTES_PER_LAYER = 256


@pytest.mark.parametrize("family", sorted(WINDOWED_LAYERS))
def test_the_kv_bytes_of_a_windowed_layer_stop_growing_at_the_window(family, tmp_path):
    """transformers keeps a windowed layer's last ``window - 1`` tokens: all the next token's window needs."""
    loaded = load_model(ModelSource(family, save_family(tmp_path / family, family), "local"), torch.device("cpu"),
                        torch.float32)
    passes = Passes(loaded)

    def expected(tokens: int) -> int:
        held = [min(tokens, SLIDING_WINDOW - 1) if windowed else tokens for windowed in WINDOWED_LAYERS[family]]
        return sum(held) * TOKEN_BYTES_PER_LAYER

    measured = {}
    for context in (8, SLIDING_WINDOW - 1, SLIDING_WINDOW, SLIDING_WINDOW + 8, 2 * SLIDING_WINDOW):
        cache = passes.prefill(context)
        measured[context] = kv_cache_bytes(cache)
        assert measured[context] == expected(context), context
        assert kv_cache_bytes(passes.decode_step(cache)) == expected(context + 1), context  # a decode step's too
    full_layers = WINDOWED_LAYERS[family].count(False)
    growth = measured[2 * SLIDING_WINDOW] - measured[SLIDING_WINDOW + 8]
    assert growth == full_layers * (SLIDING_WINDOW - 8) * TOKEN_BYTES_PER_LAYER  # mistral's: none at all
    assert measured[SLIDING_WINDOW - 1] - measured[8] == len(WINDOWED_LAYERS[family]) * 23 * TOKEN_BYTES_PER_LAYER


def test_kv_bytes_count_a_linear_attention_state_once_and_whatever_the_context(tmp_path):
    """A convolution layer (LFM2) holds a fixed state, 64 channels x 3 positions, beside a full layer's keys and
    values; a tensor the cache holds twice (one object in two places) counts once."""
    folder = tmp_path / "lfm2"
    Lfm2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=128,
               layer_types=["conv", "full_attention"]).save_pretrained(folder)
    passes = Passes(load_model(ModelSource("lfm2", folder, "local"), torch.device("cpu"), torch.float32))
    for context in (8, 20, 40):
        cache = passes.prefill(context)
        assert kv_cache_bytes(cache) == 64 * 3 * 4 + context * TOKEN_BYTES_PER_LAYER
    full = cache.layers[1]
    full.values = full.keys  # as DeepSeek-V4's layers hold their shared keys and values
    assert kv_cache_bytes(cache) == 64 * 3 * 4 + 40 * TOKEN_BYTES_PER_LAYER // 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_peak_sees_an_allocation():
    peak = PeakMemory(torch.device("cuda"))
    peak.reset()
    block = torch.ones(64 * MIB // 4, device="cuda")
    allocated, reserved = peak.read()
    assert allocated >= 64 * MIB and reserved >= allocated
    del block
