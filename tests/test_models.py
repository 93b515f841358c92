"""The configs of current small models under ``models/`` against their publishers' numbers.

Each model is built on the meta device (no weights, no memory) and its parameters counted as
``python -m profiler models`` counts them; the figures below are the published ones, with where
each was checked in ``models/<name>/SOURCE.md``. A parameter count is held to the exact published
figure where a publisher (or a count of the released weights) gives one, and every rounded figure a
publisher states is held to its last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from profiler.measure.catalog import resolve_model
from profiler.measure.loading import meta_architecture


@dataclass(frozen=True)
class Published:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int
    window: int | None  # sliding window (tokens) of the windowed layers; None: every layer sees everything
    full_attention_layers: tuple[int, ...] | None  # None: all of them
    experts: tuple[int, int, int] | None  # (experts in every layer, routed per token, width); None: dense
    params: int | None  # the exact count; None where only rounded figures are published
    stated: dict[str, tuple[float, float]] = field(default_factory=dict)  # what: (figure, its last digit)


PUBLISHED = {
    "llama-3.2-1b": Published(
        layers=16, hidden=2048, heads=32, kv_heads=8, head_dim=64, vocab=128_256, max_positions=131_072,
        window=None, full_attention_layers=None, experts=None, params=1_235_814_400,
        stated={"params": (1.23e9, 0.01e9)},  # Meta's card: "1B (1.23B)"
    ),
    "qwen3-0.6b": Published(
        layers=28, hidden=1024, heads=16, kv_heads=8, head_dim=128, vocab=151_936, max_positions=40_960,
        window=None, full_attention_layers=None, experts=None, params=596_049_920,
        stated={"params": (0.6e9, 0.1e9), "non_embedding_params": (0.44e9, 0.01e9)},  # Qwen's card
    ),
    "gemma-3-270m": Published(
        layers=18, hidden=640, heads=4, kv_heads=1, head_dim=256, vocab=262_144, max_positions=32_768,
        window=512, full_attention_layers=(5, 11, 17), experts=None, params=268_098_176,
        stated={"embedding_params": (170e6, 10e6), "non_embedding_params": (100e6, 10e6)},  # Google
    ),
    "granite-3.0-1b-a400m": Published(
        layers=24, hidden=1024, heads=16, kv_heads=8, head_dim=64, vocab=49_155, max_positions=4_096,
        window=None, full_attention_layers=None, experts=(32, 8, 512), params=None,
        stated={"params": (1.3e9, 0.1e9), "active_params": (400e6, 100e6)},  # IBM: 1.3B total, 400M active
    ),
}

# The released bf16 model.safetensors of Granite 1B-A400M: 2 bytes a parameter and a JSON header.
GRANITE_SAFETENSORS_BYTES = 2_669_283_096


@pytest.fixture(scope="module", params=sorted(PUBLISHED))
def built(request):
    return PUBLISHED[request.param], meta_architecture(resolve_model(request.param))


def test_the_shapes_are_the_published_ones(built):
    published, arch = built
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim, arch.vocab, arch.max_positions) == (
        published.layers, published.hidden, published.heads, published.kv_heads, published.head_dim,
        published.vocab, published.max_positions,
    )


def test_the_parameter_count_is_the_published_one(built):
    published, arch = built
    if published.params is not None:
        assert arch.params == published.params
    for number, (figure, digit) in published.stated.items():
        assert abs(getattr(arch, number) - figure) < digit, number


def test_granite_matches_the_size_of_its_released_weights():
    arch = meta_architecture(resolve_model("granite-3.0-1b-a400m"))
    header_bytes = GRANITE_SAFETENSORS_BYTES - 2 * arch.params
    assert 0 < header_bytes < 64 * 1024  # 218 tensors named in JSON: about 26 kB


def test_the_windows_and_experts_are_the_published_ones(built):
    published, arch = built
    full = published.full_attention_layers
    assert arch.windows == tuple(None if full is None or layer in full else published.window
                                 for layer in range(published.layers))
    experts = arch.experts
    assert (experts and (experts.count, experts.per_token, experts.ffn)) == published.experts
    if experts:  # every layer routes, and there is no shared expert
        assert (experts.layers, experts.shared_ffn) == (tuple(range(published.layers)), 0)
