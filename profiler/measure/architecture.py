"""The numbers of a decoder-only transformer that its cost depends on, read from a HF config.

Config names differ by family (GPT-2: ``n_layer``/``n_embd``/``n_head``/``n_inner``;
Llama and Qwen2: ``num_hidden_layers``/``hidden_size``/``num_attention_heads``/
``num_key_value_heads``/``intermediate_size``); this module is the one place that maps
them onto the symbols the FLOP formula and the reports use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Architecture:
    """Shape of one decoder model. Counts are plain integers; nothing here has units."""

    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int  # intermediate (MLP) width
    gated_mlp: bool  # gate, up and down matrices (Llama, Qwen2) rather than GPT-2's two
    vocab: int
    max_positions: int
    params: int  # every parameter, tied matrices counted once
    embedding_params: int  # token (and learned position) embeddings

    @property
    def non_embedding_params(self) -> int:
        """Parameters outside the embedding tables: the ``m`` of scaling-law fits."""
        return self.params - self.embedding_params

    def kv_bytes_per_token(self, dtype: torch.dtype) -> int:
        """Bytes one token adds to the KV cache: keys and values of every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * torch.empty((), dtype=dtype).element_size()

    def as_dict(self) -> dict:
        return asdict(self) | {"non_embedding_params": self.non_embedding_params}


def _first(config, *names):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    raise ValueError(f"config of type {config.model_type!r} has none of {names}")


def architecture_of(config, model: torch.nn.Module) -> Architecture:
    """Read the architecture from ``config``; parameter counts come from ``model`` (meta is fine)."""
    hidden = _first(config, "hidden_size", "n_embd")
    heads = _first(config, "num_attention_heads", "n_head")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    unique = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in unique.values())
    embedding_params = sum(
        m.weight.numel() for m in {id(m): m for m in model.modules() if isinstance(m, torch.nn.Embedding)}.values()
    )
    return Architecture(
        model_type=config.model_type,
        layers=_first(config, "num_hidden_layers", "n_layer"),
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=ffn,
        gated_mlp=any(name.endswith("gate_proj") for name, _ in model.named_modules()),
        vocab=config.vocab_size,
        max_positions=_first(config, "max_position_embeddings", "n_positions"),
        params=params,
        embedding_params=embedding_params,
    )
