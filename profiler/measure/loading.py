"""Build a model ready to time: its own safetensors weights when the folder has them, else
random weights from its config. A composite model (a language model beside a vision encoder) is
its language model alone, with random weights (``profiler.measure.composite``).

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
passes ``trust_remote_code``. Transformers' hub kernels (``kernels``: compiled layers fetched from
the Hub, which ``from_pretrained`` applies by default from 5.25, and some models load at their
first pass) are remote code too, and would replace the layers measured: they are switched off for
the whole process (``USE_HUB_KERNELS=NO``) whenever a model is built here.

cuDNN attention is switched off too (``torch.backends.cuda.enable_cudnn_sdp(False)``), so sdpa on a
GPU runs flash or memory-efficient attention: cuDNN, torch's first choice on Hopper, builds a plan
for every new sequence length, 3 ms a layer on an H200 (``benchmarks/gpu_first_pass.py``), so each
decode step of a generate (one position longer than the last) paid it again: calls ran 5-9x the
passes' steady cost, and a decode step cost whatever lengths the process had run before.

Every input is checked before it is used, each mistake one ``UserError`` line: config.json
(readable, and its numbers: ``config_check.check_config``) before any model is built; the
safetensors headers (readable, covering their files) before any weight is read; the
tensors' names and shapes against the config as they load.

Attention: sdpa unless asked otherwise. An architecture transformers cannot run through sdpa
(Gemma-2: its logit soft-capping) gets eager instead, transformers' own choice when none is
asked, and the model says why (``LoadedModel.attn_fallback``, recorded in run.json); sdpa asked
for explicitly on such an architecture is a ``UserError``.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from profiler.errors import UserError
from profiler.files import read_json
from profiler.measure.architecture import Architecture, architecture_of
from profiler.measure.catalog import ModelSource
from profiler.measure.composite import language_model
from profiler.measure.config_check import check_config
from profiler.measure.memory import is_out_of_memory, meminfo_bytes

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
    attn_fallback: str | None = None  # why attention is not sdpa when none was asked for
    part_measured: str | None = None  # a composite model: the part built and measured (``profiler.measure.composite``)


def cache_argument(model) -> str:
    """The name ``model.forward`` takes a KV cache by, and returns it under: ``cache`` where the family was moved to
    it (transformers 5.25 deprecates ``past_key_values`` family by family), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _check_a_cached_step(model, source: ModelSource, transformers_version: str) -> None:
    """A pass over two tokens, then one token on the cache it returns, before anything is measured: a model that
    transformers builds and cannot run (an inconsistent config.json, an encoder that returns no KV cache) is a
    one-line ``UserError`` here rather than a traceback in the sweep, and so is one whose two-token pass already runs
    out of memory (nothing longer could be measured: a chunk of 10^12 tokens that a Mamba-2 scan pads to)."""
    name = cache_argument(model)
    tokens = torch.zeros((1, 2), dtype=torch.long, device=model.get_input_embeddings().weight.device)
    try:
        with torch.inference_mode():
            cache = model(tokens, use_cache=True, logits_to_keep=1).get(name)
            if cache is not None:
                model(tokens[:, :1], use_cache=True, logits_to_keep=1, **{name: cache})
    except Exception as err:  # whatever transformers raises for a model it cannot run
        if is_out_of_memory(err):
            raise UserError(f"{source.name}: a pass of two tokens runs out of memory ({_one_line(err)})") from None
        raise UserError(f"{source.name}: a forward pass fails in transformers {transformers_version} "
                        f"({type(err).__name__}: {_one_line(err)})") from None
    if cache is None:
        raise UserError(f"{source.name}: its forward pass returns no KV cache: not a decoder this tool measures")


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (transformers' and safetensors' span several)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _load_config(source: ModelSource, trust_remote_code: bool = False):
    """``(config, part_measured)``: the transformers config of the model to build from ``source``, its numbers
    checked against its config.json (a composite model's language model: ``profiler.measure.composite``; its
    sentence, else None)."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    written = read_json(source.path / "config.json")
    try:
        config = AutoConfig.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise UserError(f"{source.name}: needs the model's own code; pass --trust-remote-code to run it") from None
        raise UserError(f"{source.name}: unreadable config.json ({_one_line(err)})") from None
    # strict: a field of the wrong type; the next: a field of the wrong shape (a list where a mapping belongs); the
    # last: the config's own arithmetic on a number (Zamba2 divides its width by n_mamba_heads, 0)
    except (OSError, StrictDataclassError, TypeError, AttributeError, KeyError, ArithmeticError) as err:
        raise UserError(f"{source.name}: unreadable config.json ({_one_line(err)})") from None
    config, written, part_measured = language_model(config, written, source.has_weights)
    check_config(config, written, source.name)
    return config, part_measured


def _weights_label(source: ModelSource) -> str:
    files = source.safetensors_files
    return str(files[0]) if len(files) == 1 else f"{source.path}/*.safetensors"


def _check_safetensors(source: ModelSource) -> None:
    """Each safetensors file opens and its header covers the file exactly (so a truncated one is
    caught here); reads the headers only."""
    from safetensors import SafetensorError, safe_open

    for path in source.safetensors_files:
        try:
            with safe_open(path, "pt"):
                pass
        except (OSError, SafetensorError) as err:
            raise UserError(f"{path}: unreadable safetensors ({_one_line(err)})") from None


def _refuse_pickles(source: ModelSource) -> None:
    if source.pickle_files and not source.has_weights:
        names = ", ".join(p.name for p in source.pickle_files)
        raise UserError(
            f"{source.name}: refusing {names}: pickle checkpoints can run code when loaded; "
            "convert them to safetensors (or remove them to profile with random weights)"
        )


def check_model(source: ModelSource, trust_remote_code: bool = False):
    """Every check of ``source`` that builds nothing: pickle checkpoints, config.json and its
    numbers, the safetensors headers. ``(config, part_measured)`` for building (``_load_config``)."""
    _refuse_pickles(source)
    checked = _load_config(source, trust_remote_code)
    _check_safetensors(source)
    return checked


@contextmanager
def _building(source: ModelSource, attn_implementation: str | None = None):
    from transformers import __version__ as transformers_version

    try:
        yield
    except (ValueError, ImportError) as err:  # an architecture transformers cannot build, a missing package
        if attn_implementation and "does not support an attention implementation" in str(err):
            model_class = str(err).split()[0]
            raise UserError(f"{source.name}: {model_class} cannot run {attn_implementation} attention in "
                            f"transformers {transformers_version}; pass --attn eager") from None
        raise UserError(f"{source.name}: cannot build this model ({_one_line(err)})") from None
    # what a model's constructor raises on a config.json whose numbers do not fit together (a list of layer types
    # too short or missing, a dimension it asserts on, a width rounded to a multiple of 0, a negative width): the
    # class named, since the message alone may not say; and the memory its weights (or a constructor's own
    # tensors, of a width no model has) would take, where the machine has less
    except (TypeError, AttributeError, AssertionError, KeyError, IndexError, ArithmeticError, RuntimeError) as err:
        if is_out_of_memory(err):
            raise UserError(f"{source.name}: building this model runs out of memory ({_one_line(err)})") from None
        raise UserError(f"{source.name}: cannot build this model ({type(err).__name__}: {_one_line(err)})") from None


@contextmanager
def _no_progress_bars():
    """transformers draws a progress bar on stderr while it reads weights: a mistake must stay one line."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _from_safetensors(source: ModelSource, config, device: torch.device, device_map: str | None, options: dict):
    """The model with its own weights; a file that cannot be read, or holds tensors the config
    does not expect, is a one-line UserError (transformers would leave such tensors random)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        with _no_progress_bars():
            model, info = AutoModelForCausalLM.from_pretrained(
                source.path,
                config=config,
                use_safetensors=True,
                device_map="auto" if device_map == "auto" else {"": str(device)},
                output_loading_info=True,
                ignore_mismatched_sizes=True,  # reported below, by name and shape
                **options,
            )
    except (OSError, SafetensorError) as err:  # a shard missing or unreadable
        raise UserError(f"{source.name}: cannot read its weights ({_one_line(err)})") from None
    label = _weights_label(source)
    if info["mismatched_keys"]:
        name, found, expected = sorted(info["mismatched_keys"])[0]
        more = f" (and {len(info['mismatched_keys']) - 1} more)" if len(info["mismatched_keys"]) > 1 else ""
        raise UserError(f"{label}: {name} has shape {list(found)}, config.json needs {list(expected)}{more}")
    if info["missing_keys"]:
        name, *rest = sorted(info["missing_keys"])
        more = f" (and {len(rest)} more)" if rest else ""
        raise UserError(f"{label}: no tensor {name}{more}, which config.json needs")
    return model


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


def _empty_model(config, options: dict, device: torch.device) -> torch.nn.Module:
    """The model of ``config`` with its parameters on the meta device: shapes and dtypes, no storage. Its buffers are
    real (built with their values), so a constructor's tensors are too until they are registered as parameters: a
    mixture's experts, one tensor a layer (30 GB of DeepSeek-V3.2's), may not fit the CPU's memory. Where they do not
    and the weights are for the CPU, the whole model's weights are weighed on the meta device (``_check_weights_fit``),
    so that the line says what they need rather than what one tensor did."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights(include_buffers=False):
            return AutoModelForCausalLM.from_config(config, **options)
    except RuntimeError as err:
        if not is_out_of_memory(err) or device.type != "cpu":
            raise
        with torch.device("meta"), init_empty_weights():
            _check_weights_fit(AutoModelForCausalLM.from_config(config, **options), {"": "cpu"})
        raise


def _check_weights_fit(model: torch.nn.Module, placement: dict) -> None:
    """Raise ``torch.OutOfMemoryError`` before any weight is allocated or read where the parameters placed on the CPU
    need more bytes than the kernel's ``MemAvailable``: on a CPU, running out kills the process rather than raising
    (a GPU raises on its own), and weights read from a file that do not fit are read again from the disk on every
    pass. ``_building`` makes it one line."""
    needed = sum(param.numel() * param.element_size() for name, param in model.named_parameters()
                 if torch.device(_device_of(name, placement)).type == "cpu")
    available = meminfo_bytes("MemAvailable")
    if available is not None and needed > available:
        raise torch.OutOfMemoryError(f"its weights need {needed:,} bytes on the CPU, {available:,} are available: "
                                     "out of memory")


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


def load_model(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    *,
    attn_implementation: str | None = None,
    device_map: str | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Build ``source`` on ``device`` in ``dtype``; ``device_map="auto"`` spreads it with accelerate.
    ``attn_implementation`` None: sdpa, or eager where the architecture cannot run sdpa (see the module doc)."""
    from accelerate import dispatch_model
    from transformers import __version__ as transformers_version

    start = time.perf_counter()
    os.environ["USE_HUB_KERNELS"] = "NO"  # read by transformers at each use: no hub kernel, now or at a later pass
    torch.backends.cuda.enable_cudnn_sdp(False)  # no plan built per sequence length (the module doc)
    config, part_measured = check_model(source, trust_remote_code)
    own_weights = source.has_weights and part_measured is None
    options = dict(dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code)
    with _building(source, attn_implementation):
        if own_weights:
            if device_map != "auto":  # accelerate's own placement keeps within each device's memory
                _check_weights_fit(_empty_model(config, options, device), {"": str(device)})
            model = _from_safetensors(source, config, device, device_map, options)
            placement = {k: str(v) for k, v in (getattr(model, "hf_device_map", None) or {"": device}).items()}
        else:
            model = _empty_model(config, options, device)
            placement = _placement(model, device, dtype, device_map)
            _check_weights_fit(model, placement)
            _materialize_random(model, placement, seed)
            if len(set(placement.values())) > 1:
                model = dispatch_model(model, device_map=placement)
    model.eval()
    # no pass takes a gradient; with parameters that ask for one, FlopCounterMode's module tracker hooks the gradient
    # of a weight handed to a module as an input, which fails in inference mode (LFM2's convolution kernel layer)
    model.requires_grad_(False)
    _check_a_cached_step(model, source, transformers_version)
    attention, architecture = model.config._attn_implementation, architecture_of(config, model)
    attends = any(architecture.attends(layer) for layer in range(architecture.layers))
    return LoadedModel(
        source=source,
        model=model,
        architecture=architecture,
        device=model.get_input_embeddings().weight.device,
        dtype=dtype,
        random_weights=not own_weights,
        attn_implementation=attention,
        device_map=placement,
        build_s=time.perf_counter() - start,
        attn_fallback=(None if attn_implementation or attention == "sdpa" or not attends  # nothing to run it on
                       else f"{type(model).__name__} cannot run sdpa attention in transformers {transformers_version}"),
        part_measured=part_measured,
    )


def reads_own_weights(source: ModelSource, trust_remote_code: bool = False) -> bool:
    """Whether ``load_model`` builds ``source`` with the folder's safetensors: it has them and is not a composite
    model, whose language model is built alone with random weights (``profiler.measure.composite``)."""
    return source.has_weights and _load_config(source, trust_remote_code)[1] is None


def meta_architecture(source: ModelSource, trust_remote_code: bool = False) -> Architecture:
    """The architecture of ``source`` from a model built on the meta device: no memory, no weights. Every tensor its
    constructors make is a meta tensor, also one made before it is registered as a parameter (a mixture's experts:
    one layer of DeepSeek-V3.2's, 30 GB, is made so), which ``init_empty_weights`` alone would allocate."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config, _ = _load_config(source, trust_remote_code)
    with _building(source), torch.device("meta"), init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    model.tie_weights()
    return architecture_of(config, model)
