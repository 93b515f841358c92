"""Build a model ready to time: its own safetensors weights when the folder has them, else
random weights from its config.

Cost does not depend on weight values, so a random-weight model gives the true cost of a
pass. Building one the naive way (``from_config`` on the CPU) spends seconds in weight
initialisation; here the model is built on the meta device, materialised empty on its
device and filled from one uniform random block of 2^22 values (std 0.02, as GPT-2
initialises; norm weights 1, biases 0), tiled over each matrix from a random offset. A
fresh uniform draw per element costs 4-9 ns here (seconds for a 0.5B model); tiling is a
memory copy. The values keep activations in a normal range; the FLOPs, memory traffic and
kernels are those of any other weights.

Safety: only ``*.safetensors`` are loaded; a folder whose weights are pickle checkpoints
(``.bin``, ``.pt``...) is refused, and a model's own Python code runs only when the user
passes ``trust_remote_code``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from profiler.measure.architecture import Architecture, architecture_of
from profiler.measure.catalog import ModelSource
from profiler.errors import UserError

_INIT_STD = 0.02
_UNIFORM_BOUND = _INIT_STD * math.sqrt(3.0)  # uniform(-a, a) has std a/sqrt(3)
_RANDOM_BLOCK = 1 << 22


@dataclass
class LoadedModel:
    """A model in eval mode on its device(s), with what it is and how it was made."""

    source: ModelSource
    model: torch.nn.Module
    architecture: Architecture
    device: torch.device  # where inputs go (the token embedding's device)
    dtype: torch.dtype
    random_weights: bool
    attn_implementation: str
    device_map: dict[str, str]
    build_s: float


def _load_config(source: ModelSource, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise UserError(f"{source.name}: needs the model's own code; pass --trust-remote-code to run it") from None
        raise UserError(f"{source.name}: unreadable config.json ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise UserError(f"{source.name}: unreadable config.json ({str(err).splitlines()[0]})") from None


def _placement(model: torch.nn.Module, device: torch.device, dtype: torch.dtype, device_map: str | None) -> dict:
    """Module prefix -> device. ``auto`` splits a model too large for one device with accelerate."""
    if device_map != "auto":
        return {"": str(device)}
    from accelerate import infer_auto_device_map

    model.tie_weights()  # so tied matrices are placed once
    no_split = list(getattr(model, "_no_split_modules", None) or [])
    placement = infer_auto_device_map(model, dtype=dtype, no_split_module_classes=no_split)
    return {prefix: (f"cuda:{d}" if isinstance(d, int) else str(d)) for prefix, d in placement.items()}


def _device_of(name: str, placement: dict) -> str:
    matches = [p for p in placement if p == "" or name == p or name.startswith(p + ".")]
    return placement[max(matches, key=len)]


def _fill_from_block(value: torch.Tensor, doubled_block: torch.Tensor, offset: int) -> None:
    """Tile the random block, rotated by ``offset``, over ``value``: random values at copy speed.

    ``doubled_block`` is the block twice over, so any rotation of it is a view, not a copy.
    """
    flat, rolled = value.view(-1), doubled_block[offset : offset + _RANDOM_BLOCK]
    whole = flat.numel() // rolled.numel()
    flat[: whole * rolled.numel()].view(whole, rolled.numel()).copy_(rolled.expand(whole, -1))
    tail = flat.numel() - whole * rolled.numel()
    flat[flat.numel() - tail :].copy_(rolled[:tail])


def _materialize_random(model: torch.nn.Module, placement: dict, seed: int) -> None:
    """Give every meta parameter real storage on its device and fill it; move real buffers."""
    from accelerate.utils import set_module_tensor_to_device

    gen = torch.Generator().manual_seed(seed)
    blocks: dict[tuple, torch.Tensor] = {}
    for name, param in list(model.named_parameters()):
        device = _device_of(name, placement)
        value = torch.empty(param.shape, dtype=param.dtype, device=device)
        if value.ndim >= 2:
            block = blocks.get((device, value.dtype))
            if block is None:
                block = torch.empty(_RANDOM_BLOCK).uniform_(-_UNIFORM_BOUND, _UNIFORM_BOUND, generator=gen)
                block = block.repeat(2).to(device=device, dtype=value.dtype)
                blocks[(device, value.dtype)] = block
            _fill_from_block(value, block, int(torch.randint(_RANDOM_BLOCK, (), generator=gen)))
        elif name.endswith("bias"):
            value.zero_()
        else:  # LayerNorm / RMSNorm gains
            value.fill_(1.0)
        set_module_tensor_to_device(model, name, device, value=value)
    for name, buffer in list(model.named_buffers()):
        set_module_tensor_to_device(model, name, _device_of(name, placement), value=buffer)
    model.tie_weights()


def _refuse_pickles(source: ModelSource) -> None:
    if source.pickle_files and not source.has_weights:
        names = ", ".join(p.name for p in source.pickle_files)
        raise UserError(
            f"{source.name}: refusing {names}: pickle checkpoints can run code when loaded; "
            "convert them to safetensors (or remove them to profile with random weights)"
        )


def load_model(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    *,
    attn_implementation: str = "sdpa",
    device_map: str | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Build ``source`` on ``device`` in ``dtype``; ``device_map="auto"`` spreads it with accelerate."""
    from accelerate import dispatch_model, init_empty_weights
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    _refuse_pickles(source)
    config = _load_config(source, trust_remote_code)
    options = dict(dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code)
    try:
        if source.has_weights:
            model = AutoModelForCausalLM.from_pretrained(
                source.path,
                config=config,
                use_safetensors=True,
                device_map="auto" if device_map == "auto" else {"": str(device)},
                **options,
            )
            placement = {k: str(v) for k, v in (getattr(model, "hf_device_map", None) or {"": device}).items()}
        else:
            with init_empty_weights(include_buffers=False):
                model = AutoModelForCausalLM.from_config(config, **options)
            placement = _placement(model, device, dtype, device_map)
            _materialize_random(model, placement, seed)
            if len(set(placement.values())) > 1:
                model = dispatch_model(model, device_map=placement)
    except (ValueError, ImportError) as err:
        raise UserError(f"{source.name}: cannot build this model ({str(err).splitlines()[0]})") from None
    model.eval()
    return LoadedModel(
        source=source,
        model=model,
        architecture=architecture_of(config, model),
        device=model.get_input_embeddings().weight.device,
        dtype=dtype,
        random_weights=not source.has_weights,
        attn_implementation=model.config._attn_implementation,
        device_map=placement,
        build_s=time.perf_counter() - start,
    )


def meta_architecture(source: ModelSource, trust_remote_code: bool = False) -> Architecture:
    """The architecture of ``source`` from a model built on the meta device: no memory, no weights."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = _load_config(source, trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    model.tie_weights()
    return architecture_of(config, model)
