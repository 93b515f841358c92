"""The numbers of a decoder-only transformer that its cost depends on, read from a HF config.

Config names differ by family (GPT-2: ``n_layer``/``n_embd``/``n_head``/``n_inner``;
Llama and Qwen2: ``num_hidden_layers``/``hidden_size``/``num_attention_heads``/
``num_key_value_heads``/``intermediate_size``); this module is the one place that maps
them onto the symbols the FLOP formula and the reports use, and the one place that checks
them (``check_config``) before any model is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from profiler.errors import UserError

# Each number, by the names families give it; the first name the config object has a value for
# wins (a family's own spelling, e.g. MPT's ``n_heads``, is reached through its ``attribute_map``).
# Only the key the object reads counts as written: Llama ignores a GPT-2 ``n_head``.
NUMBER_NAMES = {
    "layers": ("num_hidden_layers", "n_layer"),
    "hidden": ("hidden_size", "n_embd"),
    "heads": ("num_attention_heads", "n_head"),
    "kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "ffn": ("intermediate_size", "n_inner"),
    "vocab": ("vocab_size",),
    "max_positions": ("max_position_embeddings", "n_positions"),
}
# Numbers config.json may leave out: the families derive them by these rules (multi-head
# attention; heads split the width evenly; GPT-2's MLP is 4 wide). Any other number left out
# would silently take the config class's default, a number nobody chose for this model.
_RULES = {"kv_heads": lambda hidden, heads: heads, "head_dim": lambda hidden, heads: hidden // heads,
          "ffn": lambda hidden, heads: 4 * hidden}
# A decode step at context c needs c + 1 positions: the shortest has c = 1.
MIN_POSITIONS = 2
# Building a model, even on the meta device, takes time and memory that grow with its numbers:
# each is bounded before anything is built, far above any model published (126 layers, a
# 256k vocabulary, 10M positions), and so is the parameter count they imply.
MAX_NUMBER = {"layers": 10_000, "hidden": 1_000_000, "heads": 100_000, "kv_heads": 100_000, "head_dim": 100_000,
              "ffn": 10_000_000, "vocab": 100_000_000, "max_positions": 100_000_000}
MAX_PARAMS = 10**13


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


def _written_as(config, name: str) -> set[str]:
    """The keys of config.json that set the attribute ``name`` of this family's config object."""
    return {name, *(key for key, target in config.attribute_map.items() if target == name)}


def _read(config, number: str) -> tuple[str, object]:
    """``(name, value)`` of ``number`` on the config object; value None when the config has none.

    The name is the family's own spelling (``n_head`` for GPT-2), as a message should show it."""
    for name in NUMBER_NAMES[number]:
        value = getattr(config, name, None)
        if value is not None:
            return config.attribute_map.get(name, name), value
    first = NUMBER_NAMES[number][0]
    return config.attribute_map.get(first, first), None


def config_problems(config, written: dict) -> list[str]:
    """What is wrong with the numbers of ``config``, loaded from the config.json whose dict is ``written``.

    Missing: a number config.json does not give, so that the config object holds a library
    default (``LlamaConfig`` takes 32 heads, 11008 wide) or nothing; a number with a rule in
    ``_RULES`` may be left out when the object holds nothing or follows the rule. Impossible:
    not a whole number, a count below 1, fewer than ``MIN_POSITIONS`` positions, ``hidden`` not
    split evenly over ``heads`` (unless ``head_dim`` is given), ``kv_heads`` not dividing
    ``heads``. Empty when all is well."""
    problems, counts, absent = [], {}, []
    for number in NUMBER_NAMES:
        name, value = _read(config, number)
        if not any(written.get(key) is not None for key in _written_as(config, name)):
            absent.append(number)
            if number not in _RULES:
                default = f"; the library would take {value}" if value is not None else ""
                problems.append(f"no {name} ({number}{default})")
                continue
        if value is None:
            continue
        least = MIN_POSITIONS if number == "max_positions" else 1
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{name} = {value!r} is not a whole number")
        elif value < least:
            reason = ": a decode step needs a position beyond its context" if number == "max_positions" else ""
            problems.append(f"{name} = {value} (at least {least}{reason})")
        elif value > MAX_NUMBER[number]:
            problems.append(f"{name} = {value:,} (at most {MAX_NUMBER[number]:,})")
        else:
            counts[number] = (name, value)
    if "hidden" not in counts or "heads" not in counts:
        return problems
    (hidden_name, hidden), (heads_name, heads) = counts["hidden"], counts["heads"]
    for number, rule in _RULES.items():
        if number in absent and number in counts and counts[number][1] != rule(hidden, heads):
            problems.append(f"no {counts[number][0]} ({number}; the library would take {counts[number][1]})")
    if hidden % heads and "head_dim" in absent:
        problems.append(f"{hidden_name} = {hidden} does not split into {heads_name} = {heads} heads")
    if "kv_heads" in counts and heads % counts["kv_heads"][1]:
        kv_name, kv_heads = counts["kv_heads"]
        problems.append(f"{kv_name} = {kv_heads} does not divide {heads_name} = {heads}")
    if not problems and _params_at_least(config) > MAX_PARAMS:
        problems.append(f"about {_params_at_least(config):.2g} parameters (at most {MAX_PARAMS:.0e} are built)")
    return problems


def _params_at_least(config) -> int:
    """A lower bound of the parameters the numbers imply: attention's four projections and the MLP's two of
    every layer, and the embedding; enough to refuse, before building, a model no machine holds."""
    value = {number: _read(config, number)[1] for number in ("layers", "hidden", "ffn", "vocab")}
    hidden = value["hidden"]
    ffn = value["ffn"] or _RULES["ffn"](hidden, 1)
    return value["layers"] * (4 * hidden * hidden + 2 * hidden * ffn) + value["vocab"] * hidden


def check_config(config, written: dict, model: str) -> None:
    """Raise one UserError naming every problem of ``config_problems``; before any model is built."""
    problems = config_problems(config, written)
    if problems:
        raise UserError(f"{model}: config.json: {'; '.join(problems)}")


def architecture_of(config, model: torch.nn.Module) -> Architecture:
    """Read the architecture from ``config`` (checked by ``check_config``); parameter counts come
    from ``model`` (meta is fine)."""
    value = {number: _read(config, number)[1] for number in NUMBER_NAMES}
    hidden, heads = value["hidden"], value["heads"]
    unique = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in unique.values())
    embedding_params = sum(
        m.weight.numel() for m in {id(m): m for m in model.modules() if isinstance(m, torch.nn.Embedding)}.values()
    )
    return Architecture(
        model_type=config.model_type,
        layers=value["layers"],
        hidden=hidden,
        heads=heads,
        kv_heads=value["kv_heads"] or _RULES["kv_heads"](hidden, heads),
        head_dim=value["head_dim"] or _RULES["head_dim"](hidden, heads),
        ffn=value["ffn"] or _RULES["ffn"](hidden, heads),
        gated_mlp=any(name.endswith("gate_proj") for name, _ in model.named_modules()),
        vocab=value["vocab"],
        max_positions=value["max_positions"],
        params=params,
        embedding_params=embedding_params,
    )
