"""Which device and dtype a run uses, from what the user typed (``--device``, ``--dtype``)."""

from __future__ import annotations

import torch

from profiler.errors import UserError

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _shown(spec: str) -> str:
    """``spec`` as typed, quoted when quotes are needed to see it (empty, spaces, control characters)."""
    return spec if spec.isprintable() and spec and " " not in spec else repr(spec)


def resolve_device(spec: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU; ``cpu``, ``cuda`` and
    ``cuda:N`` for a device this machine has; anything else a one-line UserError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"--device {_shown(spec)}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {_shown(spec)}: only cpu and cuda are supported")
    if device.type == "cpu":
        if device.index is not None:  # torch takes cpu:3 and computes on the one CPU device regardless
            raise UserError(f"--device {_shown(spec)}: the CPU has no numbered devices (use cpu)")
        return device
    if not torch.cuda.is_available():
        raise UserError(f"--device {_shown(spec)}: no CUDA device on this machine")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise UserError(f"--device {_shown(spec)}: no such CUDA device (this machine has cuda:0 to cuda:{count - 1})")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` is float32 on the CPU and bfloat16 on a GPU (what inference there uses)."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise UserError(f"--dtype {_shown(spec)}: use one of auto, {', '.join(DTYPES)}")
    return DTYPES[spec]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read afterwards includes it; no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
