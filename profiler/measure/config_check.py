"""A config's numbers checked before any model is built: each missing one (a library default would
stand in for it) and each impossible one named, in one ``UserError`` line (``check_config``).

The numbers and the names families give them are ``profiler.measure.architecture``'s, which reads
them once they pass.
"""

from __future__ import annotations

from profiler.errors import UserError
from profiler.measure.architecture import (
    ATTENTION_FREE,
    ATTENTION_FREE_NUMBERS,
    DERIVED,
    DERIVED_FROM,
    IDENTITY_EXPERTS,
    INDEXED_LAYER_TYPE,
    LIGHTNING,
    NUMBER_NAMES,
    OWN_VALUE_WIDTH,
    expert_numbers,
    layer_values,
    lightning_layers,
    read_number,
    with_sub_configs,
    written_with_sub_configs,
)
from profiler.measure.memory import meminfo_bytes

# A decode step at context c needs c + 1 positions: the shortest has c = 1.
MIN_POSITIONS = 2
# Building a model, even on the meta device, takes time and memory that grow with its numbers:
# each is bounded before anything is built, far above any model published (126 layers, a
# 256k vocabulary, 10M positions), and so is the parameter count they imply.
MAX_NUMBER = {"layers": 10_000, "hidden": 1_000_000, "heads": 100_000, "kv_heads": 100_000, "head_dim": 100_000,
              "ffn": 10_000_000, "vocab": 100_000_000, "max_positions": 100_000_000}
MAX_PARAMS = 10**13
# Numbers a family may give per layer, as a list of one for each layer (Gemma-3n's MLP widths): each is checked
PER_LAYER = frozenset({"ffn"})


def _written_as(config, name: str) -> set[str]:
    """The keys of config.json that set the attribute ``name`` of this family's config object: its own, its aliases
    (``attribute_map``) and those it is derived from (``DERIVED_FROM``)."""
    return {name, *DERIVED_FROM.get(name, ()), *(key for key, target in config.attribute_map.items() if target == name)}


def config_problems(config, written: dict) -> list[str]:
    """What is wrong with the numbers of ``config``, loaded from the config.json whose dict is ``written``.

    A ``PER_LAYER`` number given as a list, or one a heterogeneous config sets in some layers, is checked value by
    value, and stands for its largest.
    Missing: a number config.json does not give, so that the config object holds a library
    default (``LlamaConfig`` takes 32 heads, 11008 wide) or nothing; a number with a rule in
    ``DERIVED`` may be left out when the object holds nothing or follows the rule. Impossible:
    not a whole number, a count below 1, fewer than ``MIN_POSITIONS`` positions, ``hidden`` not
    split evenly over ``heads`` (unless ``head_dim`` is given), ``kv_heads`` not dividing
    ``heads``; a lightning-attention family's blocks (``_lightning_problems``); a mixture's experts a token is routed
    to (``_expert_problems``); the value heads' own width (``OWN_VALUE_WIDTH``); a lightning indexer's numbers
    (``_indexer_problems``). An ``ATTENTION_FREE`` family has
    only ``ATTENTION_FREE_NUMBERS``. Empty when all is well."""
    config, written = with_sub_configs(config), written_with_sub_configs(config.model_type, written)
    problems, counts, absent = [], {}, []
    for number in ATTENTION_FREE_NUMBERS if config.model_type in ATTENTION_FREE else NUMBER_NAMES:
        name, value = read_number(config, number)
        if not any(written.get(key) is not None for key in _written_as(config, name)):
            absent.append(number)
            if number not in DERIVED:
                default = f"; the library would take {value}" if value is not None else ""
                if number == "max_positions" and not any(hasattr(config, one) for one in NUMBER_NAMES[number]):
                    default = f"; {config.model_type} names no limit: give its config.json the length to measure up to"
                problems.append(f"no {name} ({number}{default})")
                continue
        if value is None:
            continue
        values = _values(config, number, value)
        problem = next((found for one in values if (found := _problem(number, name, one))), None)
        if problem:
            problems.append(problem)
        else:
            counts[number] = (name, max(values))
    if "hidden" not in counts or "heads" not in counts:
        return problems
    (hidden_name, hidden), (heads_name, heads) = counts["hidden"], counts["heads"]
    for number, rule in DERIVED.items():
        if number in absent and number in counts and counts[number][1] != rule(hidden, heads):
            problems.append(f"no {counts[number][0]} ({number}; the library would take {counts[number][1]})")
    if hidden % heads and "head_dim" in absent:
        problems.append(f"{hidden_name} = {hidden} does not split into {heads_name} = {heads} heads")
    if "kv_heads" in counts:
        kv_name, kv_heads = counts["kv_heads"]
        for one in sorted(set(_values(config, "kv_heads", kv_heads))):
            if heads % one:
                problems.append(f"{kv_name} = {one} does not divide {heads_name} = {heads}")
    if not problems:
        problems += _lightning_problems(config, heads) + _expert_problems(config) + _indexer_problems(config, counts)
        if config.model_type in OWN_VALUE_WIDTH and (problem := _problem("head_dim", "v_head_dim", config.v_head_dim)):
            problems.append(problem)  # the value heads' own width, checked as a head width is
    if not problems and _params_at_least(config) > MAX_PARAMS:
        problems.append(f"about {_params_at_least(config):.2g} parameters (at most {MAX_PARAMS:.0e} are built)")
    return problems


def _lightning_problems(config, heads: int) -> list[str]:
    """A ``LIGHTNING`` family's ``block_size``: at least 1, and its decay buffers within the memory available (every
    lightning-attention layer builds ``heads x (block_size^2 + 2 block_size + 1)`` float32 numbers with the model,
    before any weight and even on the meta device: on a CPU, more than the kernel's ``MemAvailable`` kills the
    process). None for another family."""
    if config.model_type not in LIGHTNING:
        return []
    block = config.block_size  # a whole number: transformers' config refuses any other
    if block < 1:
        return [f"block_size = {block} (at least 1)"]
    needed = 4 * len(lightning_layers(config)) * heads * (block * block + 2 * block + 1)
    available = meminfo_bytes("MemAvailable")
    if available is not None and needed > available:
        return [f"block_size = {block:,}: the decay buffers of its lightning-attention layers need {needed:,} bytes, "
                f"{available:,} are available"]
    return []


def _indexer_problems(config, counts: dict) -> list[str]:
    """An ``INDEXED_LAYER_TYPE`` family's lightning indexer: its heads and their width, checked as the attention's are;
    MiniMax-M3's blocks of keys, 1 to the model's positions (each pass pads its scores to whole blocks: with blocks
    of 10^9 keys a run of 8 and 16 tokens on a 2 s budget took 42 s). None for another family."""
    if config.model_type not in INDEXED_LAYER_TYPE:
        return []
    problems = [problem for number, name in (("heads", "index_n_heads"), ("head_dim", "index_head_dim"))
                if (problem := _problem(number, name, getattr(config, name)))]
    block = getattr(config, "index_block_size", None)
    positions_name, positions = counts["max_positions"]
    if block is not None and not 1 <= block <= positions:
        problems.append(f"index_block_size = {block:,} (1 to {positions_name} = {positions:,})")
    return problems


def _expert_problems(config) -> list[str]:
    """A mixture's experts a token is routed to: 1 to its routed experts (``architecture.expert_numbers``; none routed
    made the routing record divide by zero, more than there are failed the first pass), and to those and its identity
    experts where it has some (``IDENTITY_EXPERTS``: 0 to ``MAX_NUMBER["ffn"]``). None for a dense model."""
    numbers = expert_numbers(config)
    if numbers is None or numbers[1] is None:
        return []
    (count_name, count), (per_name, per_token) = numbers
    identities_name = IDENTITY_EXPERTS.get(config.model_type)
    identities = getattr(config, identities_name, None) if identities_name else None
    if identities is not None:
        if not isinstance(identities, int) or isinstance(identities, bool) or not 0 <= identities <= MAX_NUMBER["ffn"]:
            return [f"{identities_name} = {identities!r} (0 to {MAX_NUMBER['ffn']:,})"]
        count_name, count = f"{count_name} + {identities_name}", count + identities
    if not isinstance(per_token, int) or isinstance(per_token, bool) or not 1 <= per_token <= count:
        return [f"{per_name} = {per_token!r} (1 to {count_name} = {count})"]
    return []


def _values(config, number: str, value) -> list:
    """Every value ``number`` takes: a ``PER_LAYER`` list's, the global one and those a heterogeneous config gives
    some layers (``per_layer_config``: Gemma-4's global layers' head width), or ``value`` alone."""
    if number in PER_LAYER and isinstance(value, (list, tuple)) and value:
        return list(value)
    return [value, *(layer_values(config, number) or ())]


def _problem(number: str, name: str, value) -> str | None:
    """What is wrong with ``value`` as ``number``: not a whole number, below its least or above its most; None."""
    least = MIN_POSITIONS if number == "max_positions" else 1
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{name} = {value!r} is not a whole number"
    if value < least:
        reason = ": a decode step needs a position beyond its context" if number == "max_positions" else ""
        return f"{name} = {value} (at least {least}{reason})"
    if value > MAX_NUMBER[number]:
        return f"{name} = {value:,} (at most {MAX_NUMBER[number]:,})"
    return None


def _params_at_least(config) -> int:
    """A lower bound of the parameters the numbers imply: attention's four projections and the MLP's two of
    every layer, and the embedding; enough to refuse, before building, a model no machine holds."""
    value = {number: read_number(config, number)[1] for number in ("layers", "hidden", "ffn", "vocab")}
    hidden, ffn = value["hidden"], value["ffn"]
    ffn = sum(ffn) if isinstance(ffn, (list, tuple)) else value["layers"] * (ffn or DERIVED["ffn"](hidden, 1))
    return value["layers"] * 4 * hidden * hidden + 2 * hidden * ffn + value["vocab"] * hidden


def check_config(config, written: dict, model: str) -> None:
    """Raise one UserError naming every problem of ``config_problems``; before any model is built."""
    problems = config_problems(config, written)
    if problems:
        raise UserError(f"{model}: config.json: {'; '.join(problems)}")
