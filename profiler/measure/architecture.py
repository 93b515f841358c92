"""The numbers of a decoder-only transformer that its cost depends on, read from a HF config.

Config names differ by family (GPT-2: ``n_layer``/``n_embd``/``n_head``/``n_inner``;
Llama and Qwen2: ``num_hidden_layers``/``hidden_size``/``num_attention_heads``/
``num_key_value_heads``/``intermediate_size``; Falcon: ``num_kv_heads``/``ffn_hidden_size``; OPT: ``ffn_dim``);
this module is the one place that maps them onto the symbols the FLOP formula, the KV-cache
bytes and the reports use (``profiler.measure.config_check`` checks them before any model is
built). What a family builds from its numbers (a gated MLP or not, sliding windows per
layer, experts and the layers that have them, latent attention, lightning indexers, gated-delta-rule, convolution,
Mamba and lightning-attention layers; numbers kept in sub-configs, ``SUB_CONFIGS``) is read by the family rules at
the end, as transformers 5 builds each family; ``tests/test_architecture_matrix.py`` checks them on 80 families
against FLOPs counted and cache bytes measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

# Each number, by the names families give it; the first name the config object has a value for
# wins (a family's own spelling, e.g. MPT's ``n_heads``, is reached through its ``attribute_map``).
# Only the key the object reads counts as written: Llama ignores a GPT-2 ``n_head``.
NUMBER_NAMES = {
    "layers": ("num_hidden_layers", "n_layer"),
    "hidden": ("hidden_size", "n_embd"),
    "heads": ("num_attention_heads", "n_head"),
    "kv_heads": ("num_key_value_heads", "num_kv_heads"),
    "head_dim": ("head_dim",),
    "ffn": ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim"),
    "vocab": ("vocab_size",),
    "max_positions": ("max_position_embeddings", "n_positions", "max_seq_len"),
}
# Keys of config.json from which a family's config object derives a number (Nemotron-H counts its layers from its
# list of blocks, or from the older pattern string; LongCat-Flash's are twice its ``num_layers``): written, they set
# that number
DERIVED_FROM = {"num_hidden_layers": ("layers_block_type", "hybrid_override_pattern", "num_layers")}
# Families with no attention and no MLP: each layer one Mamba mixer (Mamba and Falcon-Mamba: Mamba-1; Mamba-2). They
# have no position limit, so no positions to read: their range is taken to end at ``UNBOUNDED_POSITIONS``, where a
# prefill is far beyond any budget on a CPU and a decode step costs what it does at 8 tokens (the state is the same)
ATTENTION_FREE = frozenset({"mamba", "falcon_mamba", "mamba2"})
UNBOUNDED_POSITIONS = 2**20
ATTENTION_FREE_NUMBERS = ("layers", "hidden", "vocab")  # the numbers of NUMBER_NAMES such a family has
# Numbers config.json may leave out: the families derive them by these rules (multi-head
# attention; heads split the width evenly; GPT-2's MLP is 4 wide). Any other number left out
# would silently take the config class's default, a number nobody chose for this model.
DERIVED = {"kv_heads": lambda hidden, heads: heads, "head_dim": lambda hidden, heads: hidden // heads,
           "ffn": lambda hidden, heads: 4 * hidden}


@dataclass(frozen=True)
class Experts:
    """The mixture of experts of the layers that have one (``layers``: their indices; the others
    have the dense MLP of ``Architecture.ffn``). Each token passes a router (``hidden x count``),
    ``per_token`` of the ``count`` routed experts, each a gated MLP ``ffn`` wide, and, where the
    family has them, shared experts every token passes: one gated MLP ``shared_ffn`` wide
    (DeepSeek's ``n_shared_experts`` run as one MLP that many times the expert width), scaled by a
    ``hidden x 1`` gate where ``shared_gate`` (Qwen2-MoE). Where ``every_token`` (Llama-4), transformers runs
    every token through all ``count`` experts, scaled by the router's scores (zero for those not chosen).
    Nemotron-H's experts and shared expert are not gated (an up and a down matrix: ``gated`` False), and its
    routed experts may work in a ``latent``-wide space, projected into from the model's width and back. Gemma-4's run
    beside the layer's dense MLP (``beside_dense``), which every token passes too, and so do LongCat-Flash's, whose
    router also scores ``identities`` experts that pass a token on unchanged (its zero-computation experts): no
    weights, but transformers sends a token's picks of them through a routed expert weighted 0 (so that its grouped
    products keep their shapes), so a pass computes ``per_token`` routed experts a token however it is routed (a
    serving engine that skips those picks computes fewer: on average ``per_token x count / (count + identities)``
    under uniform routing)."""

    count: int
    per_token: int
    ffn: int
    shared_ffn: int  # 0: no shared expert
    shared_gate: bool
    layers: tuple[int, ...]
    every_token: bool = False
    gated: bool = True
    latent: int = 0  # 0: the routed experts take the model's width
    beside_dense: bool = False  # the layer's dense MLP runs too (Gemma-4, LongCat-Flash)
    identities: int = 0  # experts passing a token on unchanged, scored by the router beside ``count`` (LongCat-Flash)

    @property
    def matrices(self) -> int:
        """Matrices of an expert: gate, up and down, or up and down."""
        return 3 if self.gated else 2


@dataclass(frozen=True)
class LatentAttention:
    """Multi-head latent attention (DeepSeek-V2/V3): queries through a rank ``q_rank`` bottleneck
    (None: one projection), keys and values compressed to a rank ``kv_rank`` latent plus a
    ``rope_head_dim`` rotary key shared by the heads; each head's key is ``nope_head_dim +
    rope_head_dim`` wide, its value ``v_head_dim``. transformers caches the latent and the rotary
    key (``kv_rank + rope_head_dim`` per token and layer) and decompresses every cached token again
    in each pass. With ``query_gate`` (A.X K2's) the query projection reads the query latent twice, normalised and
    not (``2 q_rank``), and makes a gate per value dimension of every head besides the queries."""

    q_rank: int | None
    kv_rank: int
    nope_head_dim: int
    rope_head_dim: int
    v_head_dim: int
    query_gate: bool = False

    @property
    def qk_head_dim(self) -> int:
        return self.nope_head_dim + self.rope_head_dim


@dataclass(frozen=True)
class NormGates:
    """Norms that gate their output by a low-rank projection of it (A.X K2's: ``hidden -> rank -> hidden``, then a
    sigmoid): ``per_layer``, how many each layer has (its input norm's; the norm before its MLP where it has
    experts)."""

    rank: int
    per_layer: tuple[int, ...]


@dataclass(frozen=True)
class GatedDeltaNet:
    """Linear-attention layers of the gated delta rule (Qwen3-Next, Qwen3.5, OLMo-Hybrid, Lara; Kimi Linear's Kimi
    Delta Attention; ``layers``: their indices, the others attention layers). Each projects a token to queries and keys
    of ``key_heads x key_head_dim``, values and an output gate of ``value_heads x value_head_dim`` and two scalars per
    value head (decay and write strength); runs queries, keys and values through a causal depthwise convolution
    ``conv_kernel`` wide; reads and writes a ``key_head_dim x value_head_dim`` state per value head; and projects the
    gated values back to the model's width. Kimi Delta Attention (``channel_decay``: Kimi Linear's, Bailing-Hybrid's)
    decays each channel of the state, not each head: its decay and its output gate are projections as wide as the
    values, through ``gate_rank`` where above 0 (Kimi Linear's, as wide as a head), and a token has one scalar per head
    (write strength). Its cache holds no tokens: the last ``conv_kernel`` inputs of the convolution and the states, in
    float32 whatever the model's dtype (transformers computes the delta rule in float32)."""

    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int
    layers: tuple[int, ...]
    channel_decay: bool = False
    gate_rank: int = 0
    replaces_attention: ClassVar[bool] = True

    @property
    def conv_channels(self) -> int:
        """Channels of the convolution: queries, keys and values."""
        return 2 * self.key_heads * self.key_head_dim + self.value_heads * self.value_head_dim

    def state_bytes(self, dtype: torch.dtype) -> int:
        """Bytes one layer's cache holds for a sequence, at any context: the convolution's inputs (in
        ``dtype``) and the delta rule's states (float32)."""
        states = self.value_heads * self.key_head_dim * self.value_head_dim * _element_bytes(torch.float32)
        return self.conv_channels * self.conv_kernel * _element_bytes(dtype) + states


@dataclass(frozen=True)
class ShortConvolution:
    """Convolution layers in place of attention (LFM2, LFM2-MoE, LFM3; ``layers``: their indices): a token is
    projected to three ``channels``-wide vectors (the model's width), two gate the third around a causal
    depthwise convolution ``kernel`` wide, and the result is projected back. Its cache holds no tokens: the
    last ``kernel`` inputs of the convolution, in the model's dtype."""

    channels: int
    kernel: int
    layers: tuple[int, ...]
    replaces_attention: ClassVar[bool] = True

    def state_bytes(self, dtype: torch.dtype) -> int:
        """Bytes one layer's cache holds for a sequence, at any context."""
        return self.channels * self.kernel * _element_bytes(dtype)


@dataclass(frozen=True)
class Mamba2:
    """Mamba-2 (state space duality) layers in place of attention (Granite-4.0-H, Bamba, Nemotron-H) or beside it
    (Falcon-H1);
    ``layers``: their indices.
    Each projects a token to a gate and values of ``heads x head_dim``, to ``groups`` input and output projections
    of the ``state`` (B and C) and to a time step per head; runs values, B and C through a causal depthwise
    convolution ``conv_kernel`` wide; scans them through a ``head_dim x state`` state per head, in chunks of
    ``chunk`` tokens; and projects the gated result back to the model's width. Its cache holds no tokens: the
    convolution's last ``conv_kernel`` inputs, in the model's dtype, and the states, in float32 whatever the
    model's dtype (transformers' scan computes in float32)."""

    heads: int
    head_dim: int
    state: int
    groups: int
    conv_kernel: int
    chunk: int
    layers: tuple[int, ...]
    replaces_attention: bool  # False: beside attention, in the same layers (Falcon-H1), their outputs added

    @property
    def inner(self) -> int:
        """Width of the values (and the gate): ``heads x head_dim``."""
        return self.heads * self.head_dim

    @property
    def conv_channels(self) -> int:
        """Channels of the convolution: the values, B and C."""
        return self.inner + 2 * self.groups * self.state

    def state_bytes(self, dtype: torch.dtype) -> int:
        """Bytes one layer's cache holds for a sequence, at any context."""
        states = self.inner * self.state * _element_bytes(torch.float32)
        return self.conv_channels * self.conv_kernel * _element_bytes(dtype) + states


@dataclass(frozen=True)
class Mamba1:
    """Mamba (selective state space) layers in place of attention (Jamba's ``mamba`` layers; ``layers``: their
    indices). Each projects a token to values and a gate, each ``inner`` wide; runs the values through a causal
    depthwise convolution ``conv_kernel`` wide; projects them to a time step of rank ``dt_rank`` and to the input and
    output projections of the ``state`` (B and C), and the time step back to ``inner``; scans the values through an
    ``inner x state`` state, token by token; and projects the gated result back to the model's width. Its cache holds
    no tokens: the convolution's last ``conv_kernel`` inputs, in the model's dtype, and the state, in float32 whatever
    the model's dtype (transformers' scan computes in float32)."""

    inner: int
    state: int
    dt_rank: int
    conv_kernel: int
    layers: tuple[int, ...]
    replaces_attention: ClassVar[bool] = True

    def state_bytes(self, dtype: torch.dtype) -> int:
        """Bytes one layer's cache holds for a sequence, at any context."""
        return self.inner * self.conv_kernel * _element_bytes(dtype) + self.inner * self.state * _element_bytes(
            torch.float32)


@dataclass(frozen=True)
class Lightning:
    """Lightning-attention layers (MiniMax-Text-01's and MiniMax-M1's ``linear_attention`` layers; ``layers``: their
    indices, the others softmax attention). Each projects a token to queries, keys and values of ``heads x
    head_dim`` (through an activation) and to an output gate as wide; runs the linear attention, in blocks of
    ``block`` tokens on a pass with no state before it (each block's queries against its own keys, decayed, and
    against the state the blocks before it left, which each block then updates), token by token on a pass that
    continues a state; and projects the normed, gated output back to the model's width. Its cache holds no tokens:
    a ``head_dim x head_dim`` state per head, in the model's dtype."""

    heads: int
    head_dim: int
    block: int
    layers: tuple[int, ...]
    replaces_attention: ClassVar[bool] = True

    def state_bytes(self, dtype: torch.dtype) -> int:
        """Bytes one layer's cache holds for a sequence, at any context: its states."""
        return self.heads * self.head_dim * self.head_dim * _element_bytes(dtype)


@dataclass(frozen=True)
class SharedBlock:
    """Zamba2's hybrid layers (``layers``; its others are Mamba-2 alone): before the layer's Mamba-2 mixer, one
    transformer block shared by all of them runs on the layer's state concatenated with the token embeddings (twice
    the model's width): attention of ``heads x head_dim`` (``head_dim`` the doubled width over the heads) projected
    back to the model's width, then a gated MLP, each with low-rank adapters of the layer's own (``adapter_rank``;
    the attention's only where ``attention_adapters``), then a linear layer of the layer's own, model-wide, whose
    output the mixer adds to its input. The block's keys and values are cached per hybrid layer."""

    adapter_rank: int
    attention_adapters: bool
    layers: tuple[int, ...]


@dataclass(frozen=True)
class Indexer:
    """A lightning indexer beside the attention of ``layers`` (DeepSeek-V3.2's, GLM-5's and HY-V4's sparse attention,
    MiniMax-M3's sparse layers): it scores every key of the context for each query, with ``heads`` query heads
    ``head_dim`` wide projected from ``query_input`` numbers (the attention's query latent, DeepSeek's
    ``q_lora_rank``, or the model's width) against one key per token, ``head_dim`` wide, projected from the model's
    width and cached beside the layer's keys and values, in the model's dtype. Where ``weighted`` (DeepSeek's),
    a ``hidden x heads`` projection weighs its heads' scores, which are summed. The attention then attends only to
    the keys the scores select; transformers' eager and SDPA attention do so by a mask on the dense scores, so the
    attention's own work is what it would be without the indexer."""

    heads: int
    head_dim: int
    query_input: int
    weighted: bool
    layers: tuple[int, ...]


@dataclass(frozen=True)
class HyperConnections:
    """``streams`` copies of each token's state that the layers read and write (HY-V4's and DeepSeek-V4's
    ``hc_mult``). Before each layer's attention and before its MLP, a ``streams x hidden`` by ``weights`` projection
    weighs the copies read and written (``2 streams``), and, where ``mixing`` (DeepSeek-V4's), a ``streams x
    streams`` matrix (its Sinkhorn iterations elementwise) that then mixes the copies, a matmul of each token's
    ``streams x hidden`` state; after the last layer, a ``streams x hidden`` by ``streams`` projection weighs them
    into one."""

    streams: int
    mixing: bool

    @property
    def weights(self) -> int:
        """Outputs of the projection before each block: the read and write weights, and the mixing matrix."""
        return 2 * self.streams + (self.streams**2 if self.mixing else 0)


@dataclass(frozen=True)
class CompressedAttention:
    """DeepSeek-V4's attention: queries through a ``q_rank`` bottleneck; one key head, ``head_dim`` wide, that is also
    the value (the cache keeps the last ``window - 1`` in one tensor); in the layers of ``rates`` above 0, entries
    compressed from every ``rate`` tokens as well (heavily compressed: a key and a gate projection of the model's
    width, ``head_dim`` each; compressed sparse, in ``indexed``: two overlapping series, ``2 head_dim`` each, and a
    lightning indexer of ``index_heads x index_head_dim`` with a compressor of its own scoring the entries), which the
    attention attends to beside its window (an indexer's choice is a mask, as DeepSeek-V3.2's); the output projected
    in ``output_groups`` groups to ``output_rank`` each, then to the model's width. The cache holds the window's keys
    (a sliding layer's values beside them), the compressed entries and what waits for the next
    (``Architecture.kv_cache_bytes``)."""

    q_rank: int
    output_groups: int
    output_rank: int
    rates: tuple[int, ...]  # per layer: tokens per compressed entry; 0: the sliding window alone
    indexed: tuple[int, ...]
    index_heads: int
    index_head_dim: int


@dataclass(frozen=True)
class AltUp:
    """Gemma-3n's work around each layer's attention and MLP. The model carries ``inputs`` copies of a token's state
    (AltUp): before each layer, a router (``hidden x inputs``, from the first copy) weighs a prediction of every copy
    from all of them (``inputs x inputs^2`` coefficients, then ``hidden x inputs`` by ``inputs x inputs`` per copy);
    the layer runs on the first; after it, the router again and ``inputs x inputs`` coefficients correct every copy.
    Beside attention runs a low-rank branch ``laurel_rank`` wide (LAuReL: in and back out). Before the layers the
    embedding is projected to the other copies; after them, those are projected back and averaged."""

    inputs: int
    laurel_rank: int


@dataclass(frozen=True)
class Architecture:
    """Shape of one decoder model. Counts are plain integers; nothing here has units but the bytes
    of the KV-cache methods."""

    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int  # heads of the key and value projections
    head_dim: int
    cached_kv_heads: int  # heads the cache keeps keys and values of: kv_heads, but see _cached_kv_heads
    ffn: int  # intermediate width of the dense MLP (where its layers differ, ffn_widths has each)
    ffn_widths: tuple[int, ...] | None  # per layer, its dense MLP's width where each has its own (Gemma-3n); None: ffn
    gated_mlp: bool  # gate, up and down matrices (Llama, Phi-3's fused gate_up) rather than GPT-2's two
    vocab: int
    max_positions: int
    params: int  # every parameter, tied matrices counted once
    embedding_params: int  # token (and learned position) embeddings
    windows: tuple[int | None, ...]  # per layer: its sliding window (tokens), None for full attention
    experts: Experts | None  # None: a dense model
    latent_attention: LatentAttention | None  # None: keys and values of kv_heads x head_dim
    attention_gate: int  # outputs of the projection that gates the attention's output (0: none)
    linear_attention: GatedDeltaNet | None  # None: no gated-delta-rule layers
    short_convolution: ShortConvolution | None  # None: no convolution layers
    mamba: Mamba2 | None  # None: no Mamba-2 layers
    mamba1: Mamba1 | None  # None: no Mamba (Mamba-1) layers
    lightning: Lightning | None  # None: no lightning-attention layers
    shared_block: SharedBlock | None  # None: no transformer block shared by layers (all but Zamba2)
    indexer: Indexer | None  # None: no lightning indexer (all but DeepSeek-V3.2, GLM-5, HY-V4, MiniMax-M3)
    hyper: HyperConnections | None  # None: one copy of each token's state (all but HY-V4 and DeepSeek-V4)
    compressed_attention: CompressedAttention | None  # None: attention as above (all but DeepSeek-V4)
    # a projection of every key's value to one number per key and value head, ``kv_heads x head_dim`` by ``kv_heads``,
    # from which the layer masks its attention (Doge's dynamic mask)
    dynamic_mask: bool
    # attention calls of a layer over the same queries and keys (DiffLlama's differential attention: 2, each with half
    # the values; else 1)
    attention_calls: int
    blocks: tuple[str, ...] | None  # per layer, its one block (Nemotron-H); None: every layer mixes tokens, then an MLP
    altup: AltUp | None  # None: no AltUp or LAuReL (all but Gemma-3n)
    # width of each layer's own input (Gemma-3n, Gemma-4): the embedding projected to every layer's, beside a table of
    # them; after the layer, one gated from its output and projected back (0: none)
    per_layer_input: int
    kv_shared: tuple[int, ...]  # layers that attend to an earlier layer's keys and values: no projections, no cache
    kv_shared_keep_logits: bool  # those layers run only the positions whose logits are kept (Gemma-4)
    layer_head_dims: tuple[int, ...] | None  # per layer, where some differ from head_dim (Gemma-4's global layers)
    layer_kv_heads: tuple[int, ...] | None  # per layer, where some differ from kv_heads
    values_from_keys: tuple[int, ...]  # layers whose values are their keys: no value projection (Gemma-4's k_eq_v)
    value_head_dim: int | None  # the value heads' width where it is not the query and key heads' (MiMo-V2-Flash); None
    norm_gates: NormGates | None  # None: no norm gates its output (all but A.X K2)

    @property
    def non_embedding_params(self) -> int:
        """Parameters outside the embedding tables: the ``m`` of scaling-law fits."""
        return self.params - self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters a token's pass reads: all but the routed experts it is not sent to (``count -
        per_token`` gated MLPs of every MoE layer); ``params`` for a dense model, and where every token runs
        through every expert. The least weights any pass reads, however its tokens are routed."""
        if self.experts is None or self.experts.every_token:
            return self.params
        experts = self.experts
        idle = len(experts.layers) * (experts.count - experts.per_token)
        return self.params - idle * experts.matrices * (experts.latent or self.hidden) * experts.ffn

    @property
    def stateful_layers(self) -> tuple[GatedDeltaNet | ShortConvolution | Mamba2 | Mamba1 | Lightning, ...]:
        """The kinds of layer that do not attend, each with its layers: a state of fixed size in the cache."""
        kinds = (self.linear_attention, self.short_convolution, self.mamba, self.mamba1, self.lightning)
        return tuple(kind for kind in kinds if kind is not None)

    def attends(self, layer: int) -> bool:
        """Whether layer ``layer`` attends (unless the gated delta rule, a convolution, Mamba-2, Mamba or lightning
        attention runs in its place, or its one block is another)."""
        if self.blocks is not None:
            return self.blocks[layer] == "attention"
        return not any(layer in kind.layers for kind in self.stateful_layers if kind.replaces_attention)

    def head_dim_of(self, layer: int) -> int:
        """The width of layer ``layer``'s attention heads."""
        return self.head_dim if self.layer_head_dims is None else self.layer_head_dims[layer]

    def value_dim_of(self, layer: int) -> int:
        """The width of layer ``layer``'s value heads: its heads' (``head_dim_of``) unless the family gives values a
        width of their own."""
        return self.head_dim_of(layer) if self.value_head_dim is None else self.value_head_dim

    def kv_heads_of(self, layer: int) -> int:
        """The heads of layer ``layer``'s key and value projections."""
        return self.kv_heads if self.layer_kv_heads is None else self.layer_kv_heads[layer]

    def dense_ffn(self, layer: int) -> int:
        """The width of layer ``layer``'s dense MLP."""
        return self.ffn if self.ffn_widths is None else self.ffn_widths[layer]

    def has_mlp(self, layer: int) -> bool:
        """Whether layer ``layer`` has an MLP (or experts): every layer, but where its one block is another."""
        return self.blocks is None or self.blocks[layer] in ("mlp", "moe")

    def cached_tokens(self, layer: int, context_tokens: int) -> int:
        """Tokens layer ``layer``'s cache holds at a context of ``context_tokens``: all of them under full
        attention; under a sliding window ``W``, at most ``W - 1`` (transformers keeps the ``W - 1`` most
        recent: the next token attends to them and itself); none in a layer that does not attend. A layer of
        ``kv_shared`` attends to as many, held by the layer it shares them with."""
        if not self.attends(layer):
            return 0
        window = self.windows[layer]
        return context_tokens if window is None else min(context_tokens, window - 1)

    @property
    def kv_elements_per_token(self) -> tuple[int, ...]:
        """Per layer, the cache elements one token takes: keys and values of ``cached_kv_heads`` heads each,
        ``head_dim`` and ``value_dim_of`` wide (multi-query: one head; the layer's own where they differ by layer),
        or the latent and rotary key of latent attention, and an indexer's key where the layer has one, or
        DeepSeek-V4's one key head (which its compressed layers keep as their values too); none in a layer that does
        not attend, or shares another's (``kv_shared``)."""
        mla, indexer = self.latent_attention, self.indexer

        def cached(layer: int) -> int:
            indexed = indexer.head_dim if indexer is not None and layer in indexer.layers else 0
            if self.compressed_attention is not None:  # keys and values; a compressed layer's are one tensor
                return self.head_dim * (1 if self.compressed_attention.rates[layer] else 2)
            if mla is not None:
                return mla.kv_rank + mla.rope_head_dim + indexed
            heads = self.cached_kv_heads if self.layer_kv_heads is None else self.layer_kv_heads[layer]
            return heads * (self.head_dim_of(layer) + self.value_dim_of(layer)) + indexed

        return tuple(cached(layer) if self.attends(layer) and layer not in self.kv_shared else 0
                     for layer in range(self.layers))

    def kv_bytes_per_token(self, dtype: torch.dtype) -> int:
        """Bytes one token adds to the KV cache while no sliding window is full: every layer's keys and
        values (past a window, its layer adds nothing; see ``kv_cache_bytes``)."""
        return sum(self.kv_elements_per_token) * _element_bytes(dtype)

    def kv_cache_bytes(self, context_tokens: int, dtype: torch.dtype) -> int:
        """Bytes the KV cache holds at a context of ``context_tokens``: windowed layers stop growing at
        their window (``cached_tokens``); a layer that does not attend holds its state, the same at any
        context; DeepSeek-V4's compressed layers hold their entries and what waits for the next
        (``_compressed_bytes``)."""
        states = sum(len(kind.layers) * kind.state_bytes(dtype) for kind in self.stateful_layers)
        return (states if context_tokens else 0) + self._compressed_bytes(context_tokens, dtype) + _element_bytes(
            dtype) * sum(elements * self.cached_tokens(layer, context_tokens)
                         for layer, elements in enumerate(self.kv_elements_per_token))

    def _compressed_bytes(self, context_tokens: int, dtype: torch.dtype) -> int:
        """DeepSeek-V4's compressed layers at a context of ``context_tokens``, each with one compressed entry per
        ``rate`` tokens (``head_dim``, and a compressed sparse layer's indexer's ``index_head_dim``); the projections
        of the tokens since, its key and gate (twice as wide in a compressed sparse layer: two series), waiting for
        their window to close; and, in a compressed sparse layer once a window has closed, the last window's first
        series, its key in ``dtype`` and its gate in float32 (a position bias of float32 added): 0 for another
        family."""
        compressed = self.compressed_attention
        if compressed is None:
            return 0
        elements, gate_float32 = 0, 0
        for layer, rate in enumerate(compressed.rates):
            if not rate:
                continue
            sparse = layer in compressed.indexed
            width = self.head_dim + (compressed.index_head_dim if sparse else 0)
            elements += context_tokens // rate * width + context_tokens % rate * 2 * width * (2 if sparse else 1)
            if sparse and context_tokens >= rate:
                elements += rate * width
                gate_float32 += rate * width
        return elements * _element_bytes(dtype) + gate_float32 * _element_bytes(torch.float32)

    def as_dict(self) -> dict:
        """The numbers as JSON values (run.json's model, fits), with the derived parameter and cache counts."""
        return asdict(self) | {"non_embedding_params": self.non_embedding_params, "active_params": self.active_params,
                               "kv_elements_per_token": sum(self.kv_elements_per_token)}


def _element_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# Families that keep some of their numbers in sub-configs, read as if the config itself had them where it has no value
# of its own: DBRX's ``ffn_config`` (its experts' width ``ffn_hidden_size``, their count ``moe_num_experts`` and a
# token's ``moe_top_k``) and ``attn_config``
SUB_CONFIGS = {"dbrx": ("ffn_config", "attn_config")}


class _WithSubConfigs:
    """A config read with its ``SUB_CONFIGS``: an attribute it has no value for (none, or None) is the first
    sub-config's that has one."""

    def __init__(self, config, names: tuple[str, ...]):
        self._config = config
        self._subs = [sub for name in names if (sub := getattr(config, name, None)) is not None]

    def __getattr__(self, name: str):
        value = getattr(self._config, name, None)
        for sub in self._subs:
            if value is not None:
                break
            value = getattr(sub, name, None)
        if value is None and not hasattr(self._config, name):
            raise AttributeError(name)
        return value


def with_sub_configs(config):
    """``config``, read with its ``SUB_CONFIGS`` where its family has some."""
    names = SUB_CONFIGS.get(config.model_type)
    return config if names is None else _WithSubConfigs(config, names)


def written_with_sub_configs(model_type: str, written: dict) -> dict:
    """A config.json's dict with the keys of its family's ``SUB_CONFIGS`` beside its own (its own first)."""
    subs = [sub for name in SUB_CONFIGS.get(model_type, ()) if isinstance(sub := written.get(name), dict)]
    return {key: value for sub in reversed(subs) for key, value in sub.items()} | written


def _heterogeneous(config) -> set[str]:
    """The attributes a heterogeneous config (transformers' ``per_layer_config``, from 5.25: Gemma-4) overrides in
    some layers; empty for any other."""
    spec = config.__dict__.get("_heterogeneity_spec")
    return set(spec.per_layer_attributes) if spec is not None else set()


def _global_value(config, name: str):
    """The attribute ``name`` of the config object, None where it has none; on a heterogeneous config, the value the
    layers without an override take (transformers refuses a plain read of an attribute that varies by layer)."""
    if name in _heterogeneous(config):
        return config._getattr_without_heterogeneous_validation(name)
    return getattr(config, name, None)


def read_number(config, number: str) -> tuple[str, object]:
    """``(name, value)`` of ``number`` on the config object; value None when the config has none.

    The name is the family's own spelling (``n_head`` for GPT-2), as a message should show it."""
    for name in NUMBER_NAMES[number]:
        value = _global_value(config, name)
        if value is not None:
            return config.attribute_map.get(name, name), value
    first = NUMBER_NAMES[number][0]
    return config.attribute_map.get(first, first), None


def layer_values(config, number: str) -> tuple | None:
    """Per layer, the value of ``number`` where a heterogeneous config overrides it in some layers; None where every
    layer takes the one ``read_number`` reads."""
    overridden = _heterogeneous(config)
    for name in NUMBER_NAMES[number]:
        if name in overridden:
            return tuple(getattr(config.per_layer_config[layer], name) for layer in range(config.num_hidden_layers))
    return None


def architecture_of(config, model: torch.nn.Module) -> Architecture:
    """Read the architecture from ``config`` (checked by ``config_check.check_config``; with its ``SUB_CONFIGS``) by the
    family rules below; parameter counts come from ``model`` (meta is fine)."""
    config = with_sub_configs(config)
    value = {number: read_number(config, number)[1] for number in NUMBER_NAMES}
    if config.model_type in ATTENTION_FREE:
        value |= {"heads": 0, "kv_heads": 0, "head_dim": 0, "ffn": 0, "max_positions": UNBOUNDED_POSITIONS}
    hidden, heads, layers = value["hidden"], value["heads"], value["layers"]
    unique = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in unique.values())
    embedding_params = sum(
        m.weight.numel() for m in {id(m): m for m in model.modules() if isinstance(m, torch.nn.Embedding)}.values()
    )
    widths = tuple(value["ffn"]) if isinstance(value["ffn"], (list, tuple)) else None  # Gemma-3n's, one per layer
    # the experts' width where the dense MLP has its own
    ffn = max(widths) if widths else value["ffn"] if value["ffn"] is not None else DERIVED["ffn"](hidden, heads)
    kv_heads = _kv_heads(config, value["kv_heads"] if value["kv_heads"] is not None
                         else DERIVED["kv_heads"](hidden, heads))
    head_dim = value["head_dim"] if value["head_dim"] is not None else DERIVED["head_dim"](hidden, heads)
    layer_head_dims = layer_values(config, "head_dim")
    layer_kv_heads = layer_values(config, "kv_heads") or _layer_kv_heads(config, kv_heads)
    widths = _ffn_widths(config, widths or (ffn,) * layers)
    return Architecture(
        model_type=config.model_type,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        cached_kv_heads=_cached_kv_heads(config, kv_heads, heads),
        ffn=_dense_ffn(config, ffn),
        ffn_widths=widths if len(set(widths)) > 1 else None,
        gated_mlp=config.model_type not in TWO_MATRIX_MLP,
        vocab=value["vocab"],
        max_positions=value["max_positions"],
        params=params,
        embedding_params=embedding_params,
        windows=_windows(config, layers),
        experts=_experts(config, layers, ffn),
        latent_attention=_latent_attention(config),
        attention_gate=_attention_gate(config, heads, head_dim),
        linear_attention=_linear_attention(config),
        short_convolution=_short_convolution(config, hidden),
        mamba=_mamba(config, layers),
        mamba1=_mamba1(config),
        lightning=_lightning(config, heads, head_dim),
        shared_block=_shared_block(config),
        indexer=_indexer(config, hidden),
        hyper=(HyperConnections(streams=config.hc_mult, mixing=config.model_type == "deepseek_v4")
               if config.model_type in HYPER_CONNECTIONS else None),
        compressed_attention=_compressed_attention(config),
        attention_calls=2 if config.model_type in DIFFERENTIAL_ATTENTION else 1,
        dynamic_mask=config.model_type == "doge",
        blocks=_blocks(config),
        altup=_altup(config),
        per_layer_input=_per_layer_input(config),
        kv_shared=_kv_shared(config),
        kv_shared_keep_logits=config.model_type == "gemma4_text",
        layer_head_dims=layer_head_dims if layer_head_dims and len(set(layer_head_dims)) > 1 else None,
        layer_kv_heads=layer_kv_heads if layer_kv_heads and len(set(layer_kv_heads)) > 1 else None,
        values_from_keys=_values_from_keys(config),
        value_head_dim=config.v_head_dim if config.model_type in OWN_VALUE_WIDTH else None,
        norm_gates=_norm_gates(config),
    )


# -- family rules: what the config's numbers mean for the cost, as transformers builds each family ----------

# Families whose MLP is an up and a down matrix (GPT-2's); every other family's is gated: gate, up and
# down (Llama's; Phi-3 fuses gate and up into one matrix of the same multiplies), and so are all experts.
TWO_MATRIX_MLP = frozenset({"gpt2", "gpt_neox", "gpt_bigcode", "gpt_neo", "gptj", "codegen", "opt", "bloom", "mpt",
                            "persimmon", "nemotron", "phi", "starcoder2", "falcon", "apertus", "apertus1p5_text",
                            "arcee", "jais2", "biogpt", "gpt_neox_japanese", "nanochat", "xglm", "nemotron_h", "ergo"})
# Families whose experts (and shared expert) are an up and a down matrix too: Ergo's (Nemotron-H's are read apart)
TWO_MATRIX_EXPERTS = frozenset({"ergo"})


def _dense_ffn(config, ffn: int) -> int:
    """The dense MLP's width: LFM2's
    ``intermediate_size`` adjusted where ``block_auto_adjust_ff_dim`` (two thirds of it, times
    ``block_ffn_dim_multiplier``, rounded up to a multiple of ``block_multiple_of``: LFM2-350M's 6,656 builds
    4,608); the shared MLP of a ``SHARED_MLP`` family (Granite-4.0 without experts: its ``intermediate_size`` is
    the experts' width); the dense layers' own width, the first of ``DENSE_FFN_NAMES`` the config sets (Llama-4's
    ``intermediate_size_mlp``); else ``ffn``."""
    if config.model_type in SHARED_MLP:
        return config.shared_intermediate_size
    if config.model_type == "lfm2" and config.block_auto_adjust_ff_dim:
        width = int(2 * ffn / 3)
        if config.block_ffn_dim_multiplier is not None:
            width = int(config.block_ffn_dim_multiplier * width)
            width = -(-width // config.block_multiple_of) * config.block_multiple_of
        return width
    return next((width for name in DENSE_FFN_NAMES if (width := getattr(config, name, None))), ffn)


# The names families give the width of the dense MLP of their layers without experts, where the experts take
# ``intermediate_size``: Llama-4's, MiniMax-M3's, Cohere2-MoE's (its dense first layers), Ergo's (which has no
# ``intermediate_size``)
DENSE_FFN_NAMES = ("intermediate_size_mlp", "dense_intermediate_size", "prefix_dense_intermediate_size",
                   "first_dense_intermediate_size")


def _kv_heads(config, kv_heads: int) -> int:
    """Falcon before its new decoder architecture (Falcon-7B) is multi-query when ``multi_query`` is set,
    whatever ``num_kv_heads`` says (GPT-BigCode's config says so itself)."""
    if config.model_type == "falcon" and config.multi_query and not config.new_decoder_architecture:
        return 1
    return kv_heads


def _cached_kv_heads(config, kv_heads: int, heads: int) -> int:
    """Falcon's new decoder architecture (Falcon-40B, -180B, Falcon-3) broadcast its keys and values to
    every query head before caching them in transformers before 5.25: there its cache holds ``heads``,
    not ``kv_heads``. From 5.25 it caches ``kv_heads``, as every other family does."""
    if config.model_type == "falcon" and config.new_decoder_architecture and not _transformers_at_least("5.25"):
        return heads
    return kv_heads


def _transformers_at_least(version: str) -> bool:
    from packaging.version import Version
    from transformers import __version__ as transformers_version

    return Version(transformers_version) >= Version(version)


def _windows(config, layers: int) -> tuple[int | None, ...]:
    """Per layer, its sliding window or None, by transformers' rule for its caches: the layers that
    ``layer_types`` names ``sliding_attention`` (Gemma-2, Gemma-3, Qwen2 with ``use_sliding_window``), or,
    without ``layer_types``, every layer when ``sliding_window`` is set (Mistral, Starcoder2). Llama-4's
    ``chunked_attention`` layers attend within chunks of ``attention_chunk_size`` tokens and cache like a
    sliding window of that size: their kernel is handed the same keys. Any other layer type is counted as
    full attention (a linear-attention layer has no window: ``Architecture.attends`` says it does not attend).
    DeepSeek-V4's every layer keeps a window, its compressed layers beside their compressed entries."""
    window = getattr(config, "sliding_window", None) or None
    types = getattr(config, "layer_types", None)
    if types is None or config.model_type == "deepseek_v4":
        return (window,) * layers
    by_type = {"sliding_attention": window, "chunked_attention": getattr(config, "attention_chunk_size", None)}
    return tuple(by_type.get(kind) for kind in types)


# Families that give every MoE layer one shared MLP of the experts' width, whatever their config says of shared experts
ONE_SHARED_EXPERT = frozenset({"llama4_text", "hunyuan_v1_moe"})
# Families whose every layer has a shared MLP ``shared_intermediate_size`` wide (0: none), beside any experts
# ``intermediate_size`` wide: Granite-3 MoE-shared and Granite-4.0's
SHARED_MLP = frozenset({"granitemoeshared", "granitemoehybrid", "granitemoe_swa"})
# Families whose shared expert (``shared_expert_intermediate_size`` wide) has no gate, unlike Qwen2-MoE's (Lara's)
UNGATED_SHARED_EXPERT = frozenset({"lara_mini"})
# Families with one shared expert ``shared_intermediate_size`` wide in every layer with experts (MiniMax-M3's, Ergo's)
SHARED_EXPERT_WIDTH = frozenset({"minimax_m3_vl_text", "ergo"})
# The names families give their count of shared experts, each of the experts' width (run as one MLP that many
# times as wide): DeepSeek's, ERNIE-4.5's, HY-V3's
SHARED_EXPERT_COUNTS = ("n_shared_experts", "moe_num_shared_experts", "num_shared_experts")
# The names families give their count of routed experts (Mixtral's, Qwen's and OLMoE's, DeepSeek's, Aria's and DBRX's)
# and the experts a token is routed to (most families', Aria's, DBRX's, Kimi Linear's)
EXPERT_COUNTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
EXPERTS_PER_TOKEN = ("num_experts_per_tok", "moe_topk", "moe_top_k", "num_experts_per_token")


# Families that build experts only where a flag of their config says so (its count of experts is set either way)
MOE_SWITCH = {"doge": "is_moe", "gemma4_text": "enable_moe_block"}
# Families whose router also scores experts that pass a token on unchanged, and the name of their count
IDENTITY_EXPERTS = {"longcat_flash": "zero_expert_num"}


def expert_numbers(config) -> tuple[tuple[str, int], tuple[str, int] | None] | None:
    """``(name, value)`` of the routed experts' count (the first of ``EXPERT_COUNTS`` the config sets above 0) and of
    the experts a token is routed to (the first of ``EXPERTS_PER_TOKEN`` it sets; None where it sets none); None for a
    dense model, and for a ``MOE_SWITCH`` family whose flag is off. The name is the family's own spelling, as
    config.json writes it (``moe_topk`` for LongCat-Flash's ``num_experts_per_tok``), as a message should show it."""
    switch = MOE_SWITCH.get(config.model_type)
    if switch is not None and not getattr(config, switch):
        return None
    aliases = config.attribute_map
    count = next(((aliases.get(name, name), n) for name in EXPERT_COUNTS if (n := getattr(config, name, None))), None)
    if count is None:
        return None
    routed = next(((aliases.get(name, name), n) for name in EXPERTS_PER_TOKEN
                   if (n := getattr(config, name, None)) is not None), None)
    return count, routed


def identity_experts(config) -> int:
    """The experts an ``IDENTITY_EXPERTS`` family's router scores beside its routed ones (None in its config: none);
    0 for any other family."""
    name = IDENTITY_EXPERTS.get(config.model_type)
    return (getattr(config, name, None) or 0) if name else 0


def _experts(config, layers: int, ffn: int) -> Experts | None:
    """The routed experts: their count (``EXPERT_COUNTS``), those a token is routed to (``EXPERTS_PER_TOKEN``), their
    width (``moe_intermediate_size`` where the family also has dense MLPs, else ``intermediate_size``), shared experts
    (Qwen2-MoE's gated ``shared_expert_intermediate_size``, a count of them of the expert width
    (``SHARED_EXPERT_COUNTS``), one of the expert width (``ONE_SHARED_EXPERT``), or Granite's
    ``shared_intermediate_size`` wide (``SHARED_MLP``)) and the layers that have them (``_sparse_layers``); Gemma-4's
    (``top_k_experts`` a token) beside every layer's dense MLP; LongCat-Flash's beside the dense MLP of the first of
    each layer's two sublayers (transformers counts the sublayers as its layers, two of ``num_layers``: attention and
    a dense MLP each, the mixture taking the first one's MLP input and added to the second one's output), with its
    ``zero_expert_num`` identity experts. None for a dense model (``expert_numbers``)."""
    numbers = expert_numbers(config)
    if numbers is None:
        return None
    (_, count), routed = numbers
    per_token = routed[1] if routed else 0
    width = getattr(config, "moe_intermediate_size", None) or ffn
    gated_shared = getattr(config, "shared_expert_intermediate_size", None)
    if config.model_type == "gemma4_text":
        return Experts(count=count, per_token=config.top_k_experts, ffn=config.moe_intermediate_size, shared_ffn=0,
                       shared_gate=False, layers=tuple(range(layers)), beside_dense=True)
    if config.model_type == "longcat_flash":  # one mixture a layer of two sublayers, beside the first one's dense MLP
        return Experts(count=count, per_token=per_token, ffn=width, shared_ffn=0, shared_gate=False,
                       layers=tuple(range(0, layers, 2)), beside_dense=True, identities=identity_experts(config))
    if config.model_type == "nemotron_h":
        return Experts(count=count, per_token=per_token, ffn=width,
                       shared_ffn=config.moe_shared_expert_intermediate_size * config.n_shared_experts,
                       shared_gate=False, layers=_sparse_layers(config, layers), gated=False,
                       latent=config.moe_latent_size or 0)
    shared = (1 if config.model_type in ONE_SHARED_EXPERT else
              next((n for name in SHARED_EXPERT_COUNTS if (n := getattr(config, name, None))), 0))
    return Experts(
        count=count,
        per_token=per_token,
        ffn=width,
        shared_ffn=(config.shared_intermediate_size if config.model_type in SHARED_MLP | SHARED_EXPERT_WIDTH
                    else gated_shared or shared * width),
        shared_gate=bool(gated_shared) and config.model_type not in UNGATED_SHARED_EXPERT,
        layers=_sparse_layers(config, layers),
        every_token=config.model_type == "llama4_text",
        gated=config.model_type not in TWO_MATRIX_EXPERTS,
    )


# What ``mlp_layer_types`` calls a layer with experts (DeepSeek-V4's ``moe`` and ``hash_moe``: routed by a table of
# token ids in its first layers, by the router after)
SPARSE_MLP_TYPES = ("sparse", "moe", "hash_moe")


def _sparse_layers(config, layers: int) -> tuple[int, ...]:
    """The layers with experts: Llama-4's ``moe_layers``; Nemotron-H's ``moe`` blocks; those ``mlp_layer_types``
    names so (``SPARSE_MLP_TYPES``: HY-V3, DeepSeek-V3.2, DeepSeek-V4); those ``layers_num_experts`` gives more than
    one (Jamba's every ``expert_layer_period``-th from ``expert_layer_offset``); ERNIE-4.5's every
    ``moe_layer_interval``-th from ``moe_layer_start_index`` to ``moe_layer_end_index``; otherwise all but DeepSeek's
    first ``first_k_dense_replace`` (LFM2-MoE's ``num_dense_layers``), and for Qwen-MoE every
    ``decoder_sparse_step``-th not in ``mlp_only_layers``."""
    if config.model_type == "llama4_text":
        return tuple(config.moe_layers)
    if config.model_type == "nemotron_h":
        return tuple(i for i, kind in enumerate(_blocks(config)) if kind == "moe")
    types = getattr(config, "mlp_layer_types", None)
    if types is not None:
        return tuple(i for i, kind in enumerate(types) if kind in SPARSE_MLP_TYPES)
    counts = getattr(config, "layers_num_experts", None)
    if counts is not None:
        return tuple(i for i, count in enumerate(counts) if count > 1)
    if getattr(config, "moe_layer_interval", None):
        return tuple(i for i in range(layers) if (i + 1) % config.moe_layer_interval == 0
                     and config.moe_layer_start_index <= i <= config.moe_layer_end_index)
    first_sparse = getattr(config, "first_k_dense_replace", None) or getattr(config, "num_dense_layers", None) or 0
    step = getattr(config, "decoder_sparse_step", None) or 1
    dense = set(getattr(config, "mlp_only_layers", None) or ())
    return tuple(i for i in range(layers) if i >= first_sparse and (i + 1) % step == 0 and i not in dense)


def _latent_attention(config) -> LatentAttention | None:
    """DeepSeek-V2/V3's latent attention, where the config has a ``kv_lora_rank``."""
    if getattr(config, "kv_lora_rank", None) is None:
        return None
    return LatentAttention(q_rank=config.q_lora_rank, kv_rank=config.kv_lora_rank,
                           nope_head_dim=config.qk_nope_head_dim, rope_head_dim=config.qk_rope_head_dim,
                           v_head_dim=config.v_head_dim, query_gate=config.model_type in GATED_NORMS)


# Families whose layers' input norms (and, in layers with experts, the norm before the MLP) gate their output by a
# low-rank projection ``gated_norm_rank`` wide, and whose latent attention's query projection makes a gate too (A.X K2)
GATED_NORMS = frozenset({"axk2"})


def _norm_gates(config) -> NormGates | None:
    """A ``GATED_NORMS`` family's norm gates (``NormGates``); None for any other family."""
    if config.model_type not in GATED_NORMS:
        return None
    return NormGates(rank=config.gated_norm_rank,
                     per_layer=tuple(1 + (kind == "sparse") for kind in config.mlp_layer_types))


# Families whose linear-attention layers (``layer_types``: ``linear_attention``) run the gated delta rule
GATED_DELTA_NET = frozenset({"qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "olmo_hybrid", "lara_mini"})
# Families whose linear-attention layers are Kimi Delta Attention: the gated delta rule decaying each channel
KIMI_DELTA_ATTENTION = frozenset({"kimi_linear", "bailing_hybrid"})
# Families whose attention layers gate their output by a second half of the query projection
QUERY_GATE = frozenset({"qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "minicpm5_moe"})
# Families whose attention layers gate their output by a projection of its own, as wide as the output (AFMoE's and
# HRM-Text's heads x head_dim, HY-V4's heads x v_head_dim)
OUTPUT_GATE = frozenset({"afmoe", "hrm_text", "hy_v4"})
# Families whose ``conv`` layers (``layer_types``) are short convolutions ``conv_L_cache`` wide
SHORT_CONVOLUTION = frozenset({"lfm2", "lfm2_moe", "lfm3"})


def _attention_gate(config, heads: int, head_dim: int) -> int:
    """Outputs of the projection gating the attention's output: a ``QUERY_GATE`` family's second half of the query
    projection (one per query dimension), an ``OUTPUT_GATE`` family's own (one per output dimension: its values' under
    latent attention); LFM3's one per head where ``use_attention_gate``, and Bailing-Hybrid's; else none."""
    if config.model_type in OUTPUT_GATE and _latent_attention(config) is not None:
        return heads * config.v_head_dim
    if config.model_type in QUERY_GATE | OUTPUT_GATE:
        return heads * head_dim
    if (config.model_type == "lfm3" and config.use_attention_gate) or config.model_type == "bailing_hybrid":
        return heads
    return 0


def _short_convolution(config, hidden: int) -> ShortConvolution | None:
    """The convolution layers of a ``SHORT_CONVOLUTION`` family; None for any other family, or where it has none."""
    if config.model_type not in SHORT_CONVOLUTION:
        return None
    layers = tuple(i for i, kind in enumerate(config.layer_types or ()) if kind == "conv")
    return ShortConvolution(channels=hidden, kernel=config.conv_L_cache, layers=layers) if layers else None


def _linear_attention(config) -> GatedDeltaNet | None:
    """The gated-delta-rule layers of a ``GATED_DELTA_NET`` family, by its ``linear_*`` numbers (a
    ``KIMI_DELTA_ATTENTION`` family's: ``linear_num_heads`` of ``linear_head_dim``, queries, keys and values alike);
    None for any other family."""
    layers = tuple(i for i, kind in enumerate(getattr(config, "layer_types", None) or ()) if kind == "linear_attention")
    if config.model_type in KIMI_DELTA_ATTENTION:
        heads, head_dim = config.linear_num_heads, config.linear_head_dim
        return GatedDeltaNet(key_heads=heads, value_heads=heads, key_head_dim=head_dim, value_head_dim=head_dim,
                             conv_kernel=config.linear_conv_kernel_dim, layers=layers, channel_decay=True,
                             gate_rank=head_dim if config.model_type == "kimi_linear" else 0)
    if config.model_type not in GATED_DELTA_NET:
        return None
    return GatedDeltaNet(
        key_heads=config.linear_num_key_heads,
        value_heads=config.linear_num_value_heads,
        key_head_dim=config.linear_key_head_dim,
        value_head_dim=config.linear_value_head_dim,
        conv_kernel=config.linear_conv_kernel_dim,
        layers=layers,
    )


# Families with Mamba-2 layers: Granite-4.0-H's ``linear_attention`` layers (transformers' name for its ``mamba``
# layers), Bamba's layers not in ``attn_layer_indices``, every layer of Falcon-H1 (beside its attention),
# Nemotron-H's ``linear_attention`` blocks
MAMBA2 = frozenset({"granitemoehybrid", "bamba", "falcon_h1", "nemotron_h", "mamba2", "zamba2"})
# Nemotron-H's names for its blocks (``layers_block_type``) and, in one of its layers, the block it is
NEMOTRON_BLOCKS = {"full_attention": "attention", "linear_attention": "mamba", "mlp": "mlp", "moe": "moe"}
# The names a family gives Mamba-2's numbers: heads, head width, state width, groups, convolution width, chunk
MAMBA2_NAMES = ("mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv", "mamba_chunk_size")
NEMOTRON_MAMBA2_NAMES = ("mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel", "chunk_size")
PURE_MAMBA2_NAMES = ("num_heads", "head_dim", "state_size", "n_groups", "conv_kernel", "chunk_size")  # Mamba-2's own
ZAMBA2_NAMES = ("n_mamba_heads", "mamba_headdim", "mamba_d_state", "mamba_ngroups", "mamba_d_conv", "chunk_size")


def _mamba(config, layers: int) -> Mamba2 | None:
    """The Mamba-2 layers of a ``MAMBA2`` family, by its numbers (``MAMBA2_NAMES``, Nemotron-H's own); None for any
    other family, or where it has none."""
    if config.model_type not in MAMBA2:
        return None
    if config.model_type in ("falcon_h1", "zamba2"):
        mixers = tuple(range(layers))
    elif config.model_type == "bamba":
        mixers = tuple(i for i in range(layers) if i not in (config.attn_layer_indices or ()))
    elif config.model_type in ("nemotron_h", "mamba2"):
        mixers = tuple(i for i, kind in enumerate(_blocks(config)) if kind == "mamba")
    else:
        mixers = tuple(i for i, kind in enumerate(config.layer_types) if kind == "linear_attention")
    if not mixers:
        return None
    names = {"nemotron_h": NEMOTRON_MAMBA2_NAMES, "mamba2": PURE_MAMBA2_NAMES,
             "zamba2": ZAMBA2_NAMES}.get(config.model_type, MAMBA2_NAMES)
    heads, head_dim, state, groups, conv_kernel, chunk = (getattr(config, name) for name in names)
    return Mamba2(heads=heads, head_dim=head_dim, state=state, groups=groups, conv_kernel=conv_kernel, chunk=chunk,
                  layers=mixers, replaces_attention=config.model_type not in ("falcon_h1", "zamba2"))


# Families with Mamba (Mamba-1) layers: Jamba's ``linear_attention`` layers (transformers' name for its ``mamba``
# layers, every layer but each ``attn_layer_period``-th from ``attn_layer_offset``), every layer of Mamba and
# Falcon-Mamba
MAMBA1 = frozenset({"jamba", "mamba", "falcon_mamba"})


def _mamba1(config) -> Mamba1 | None:
    """The Mamba layers of a ``MAMBA1`` family: Jamba's by its ``mamba_*`` numbers (values ``mamba_expand`` times the
    model's width); Mamba's and Falcon-Mamba's (every layer) by ``intermediate_size``, ``state_size``,
    ``time_step_rank`` and ``conv_kernel``. None for any other family, or where it has none."""
    if config.model_type not in MAMBA1:
        return None
    if config.model_type != "jamba":
        return Mamba1(inner=config.intermediate_size, state=config.state_size, dt_rank=config.time_step_rank,
                      conv_kernel=config.conv_kernel, layers=tuple(range(config.num_hidden_layers)))
    mixers = tuple(i for i, kind in enumerate(config.layer_types) if kind == "linear_attention")
    if not mixers:
        return None
    return Mamba1(inner=config.mamba_expand * config.hidden_size, state=config.mamba_d_state,
                  dt_rank=config.mamba_dt_rank, conv_kernel=config.mamba_d_conv, layers=mixers)


# Families with lightning-attention layers: MiniMax's ``linear_attention`` layers (every other one by default)
LIGHTNING = frozenset({"minimax"})


def lightning_layers(config) -> tuple[int, ...]:
    """The lightning-attention layers of a ``LIGHTNING`` family's config: its ``linear_attention`` layers."""
    return tuple(i for i, kind in enumerate(config.layer_types or ()) if kind == "linear_attention")


def _lightning(config, heads: int, head_dim: int) -> Lightning | None:
    """The lightning-attention layers of a ``LIGHTNING`` family: the attention's heads and width, ``block_size``
    tokens a block; None for any other family, or where it has none."""
    if config.model_type not in LIGHTNING:
        return None
    mixers = lightning_layers(config)
    return Lightning(heads=heads, head_dim=head_dim, block=config.block_size, layers=mixers) if mixers else None


def _blocks(config) -> tuple[str, ...] | None:
    """Nemotron-H's layers, each one block (``NEMOTRON_BLOCKS``), an ``ATTENTION_FREE`` family's, each a Mamba
    mixer, and Zamba2's, each a Mamba-2 mixer, after the shared transformer block in its hybrid layers (``attention``:
    its MLP is the block's, ``SharedBlock``); None for every other family."""
    if config.model_type in ATTENTION_FREE:
        return ("mamba",) * config.num_hidden_layers
    if config.model_type == "zamba2":
        return tuple("attention" if kind == "hybrid" else "mamba" for kind in config.layers_block_type)
    if config.model_type != "nemotron_h":
        return None
    return tuple(NEMOTRON_BLOCKS[kind] for kind in config.layers_block_type)


def _shared_block(config) -> SharedBlock | None:
    """Zamba2's shared transformer block in its hybrid layers; None for any other family, or where it has none."""
    if config.model_type != "zamba2" or not config.hybrid_layer_ids:
        return None
    return SharedBlock(adapter_rank=config.adapter_rank, attention_adapters=config.use_shared_attention_adapter,
                       layers=tuple(config.hybrid_layer_ids))


# Families with a lightning indexer (``Indexer``): DeepSeek's sparse attention (DeepSeek-V3.2, and GLM-5's and HY-V4's,
# whose layers ``indexer_types`` names ``shared`` reuse the selection of the layer before them and have none), in every
# ``indexed_attention`` layer; MiniMax-M3's, in its ``minimax_m3_sparse`` layers
DEEPSEEK_SPARSE_ATTENTION = frozenset({"deepseek_v32", "glm_moe_dsa", "hy_v4", "axk2"})
INDEXED_LAYER_TYPE = {"deepseek_v32": "indexed_attention", "glm_moe_dsa": "indexed_attention",
                      "hy_v4": "indexed_attention", "minimax_m3_vl_text": "minimax_m3_sparse",
                      "axk2": "indexed_attention"}


def indexer_layers(config) -> tuple[int, ...]:
    """The layers of an ``INDEXED_LAYER_TYPE`` family that run an indexer of their own; none for any other family."""
    kind = INDEXED_LAYER_TYPE.get(config.model_type)
    types = getattr(config, "layer_types", None) or ()
    modes = getattr(config, "indexer_types", None) or ("full",) * len(types)
    return tuple(i for i, (one, mode) in enumerate(zip(types, modes)) if one == kind and mode != "shared")


def _indexer(config, hidden: int) -> Indexer | None:
    """The lightning indexer of an ``INDEXED_LAYER_TYPE`` family, by its ``index_n_heads`` and ``index_head_dim``;
    DeepSeek's sparse attention projects its queries from the query latent and weighs its heads. None for any other
    family, or where no layer has one."""
    layers = indexer_layers(config)
    if not layers:
        return None
    deepseek = config.model_type in DEEPSEEK_SPARSE_ATTENTION
    return Indexer(heads=config.index_n_heads, head_dim=config.index_head_dim,
                   query_input=config.q_lora_rank if deepseek else hidden, weighted=deepseek, layers=layers)


# Families whose attention runs twice over the same queries and keys, each call mixing half the value heads repeated to
# all of them, the second's scores subtracted (DiffLlama's differential attention)
DIFFERENTIAL_ATTENTION = frozenset({"diffllama"})
# Families whose layers read and write several copies of a token's state through hyper-connections (HY-V4's;
# DeepSeek-V4's also mix the copies)
HYPER_CONNECTIONS = frozenset({"hy_v4", "deepseek_v4"})
# DeepSeek-V4's layer types: tokens per compressed entry by the config's ``compress_rates`` (sliding: none)
COMPRESSED_LAYER_TYPES = ("compressed_sparse_attention", "heavily_compressed_attention")


def _compressed_attention(config) -> CompressedAttention | None:
    """DeepSeek-V4's attention, by its ``layer_types`` and ``compress_rates``; None for any other family."""
    if config.model_type != "deepseek_v4":
        return None
    rates = tuple(config.compress_rates[kind] if kind in COMPRESSED_LAYER_TYPES else 0 for kind in config.layer_types)
    indexed = tuple(i for i, kind in enumerate(config.layer_types) if kind == "compressed_sparse_attention")
    return CompressedAttention(q_rank=config.q_lora_rank, output_groups=config.o_groups,
                               output_rank=config.o_lora_rank, rates=rates, indexed=indexed,
                               index_heads=config.index_n_heads, index_head_dim=config.index_head_dim)


# Families with per-layer inputs (``hidden_size_per_layer_input``) and layers sharing keys and values
KV_SHARING = frozenset({"gemma3n_text", "gemma4_text"})


def _altup(config) -> AltUp | None:
    """Gemma-3n's AltUp copies and LAuReL rank; None for any other family."""
    if config.model_type != "gemma3n_text":
        return None
    return AltUp(inputs=config.altup_num_inputs, laurel_rank=config.laurel_rank)


def _per_layer_input(config) -> int:
    """A ``KV_SHARING`` family's ``hidden_size_per_layer_input`` (0 or None: none, as Gemma-4 from 26B up has); 0 for
    any other family."""
    return (config.hidden_size_per_layer_input or 0) if config.model_type in KV_SHARING else 0


def _kv_shared(config) -> tuple[int, ...]:
    """The layers that attend to an earlier layer's keys and values (a ``KV_SHARING`` family's last
    ``num_kv_shared_layers``: each reuses those of the last earlier layer of its type, ``kv_sharing_modes``); none for
    any other family."""
    if config.model_type not in KV_SHARING:
        return ()
    return tuple(range(config.num_hidden_layers - config.num_kv_shared_layers, config.num_hidden_layers))


def _ffn_widths(config, widths: tuple[int, ...]) -> tuple[int, ...]:
    """Per layer, its dense MLP's width: Gemma-4's twice as wide in the layers sharing keys and values where
    ``use_double_wide_mlp``; else ``widths``."""
    if config.model_type == "gemma4_text" and config.use_double_wide_mlp:
        shared = _kv_shared(config)
        return tuple(2 * width if layer in shared else width for layer, width in enumerate(widths))
    return widths


# Families whose value heads have a width of their own, ``v_head_dim`` (queries and keys ``head_dim``), and whose
# sliding-window layers have twice the key and value heads of the others (and attention sinks)
OWN_VALUE_WIDTH = frozenset({"mimo_v2_flash"})


def _layer_kv_heads(config, kv_heads: int) -> tuple[int, ...] | None:
    """Per layer, the key and value heads of an ``OWN_VALUE_WIDTH`` family: twice ``kv_heads`` in its sliding-window
    layers; None for any other family."""
    if config.model_type not in OWN_VALUE_WIDTH:
        return None
    return tuple(2 * kv_heads if kind == "sliding_attention" else kv_heads for kind in config.layer_types)


def _values_from_keys(config) -> tuple[int, ...]:
    """The layers whose values are their keys (Gemma-4's full-attention layers where ``attention_k_eq_v``)."""
    if config.model_type != "gemma4_text" or not config.attention_k_eq_v:
        return ()
    return tuple(layer for layer, kind in enumerate(config.layer_types) if kind != "sliding_attention")
