"""This device's measured ceilings: peak matmul FLOP/s at a dtype, and memory bandwidth.

Each pass is set against its roofline bound, ``max(flops / peak_flops, bytes / bandwidth)``,
so both ceilings are measured here rather than taken from a data sheet:

- matmul: a square ``N x N`` product (``2 N^3`` FLOPs), N = 2048 on a CPU and 8192 on a
  GPU, best of several runs after a warm-up;
- bandwidth: a copy of a 256 MiB (CPU) or 2 GiB (GPU) buffer, counted as bytes read plus
  bytes written, best of several runs.

Best-of rather than median: a ceiling is what the device can reach.
"""

from __future__ import annotations

import torch

from profiler.measure.devices import dtype_name
from profiler.measure.timing import time_pass


def _best_latency_s(run, device: torch.device, repeats: int) -> float:
    run()  # warm-up
    return min(time_pass(run, device)[1] for _ in range(repeats))


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 5) -> float:
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    with torch.inference_mode():
        latency_s = _best_latency_s(lambda: a @ b, device, repeats)
    return 2 * size**3 / latency_s


def memory_bandwidth_bytes_per_s(device: torch.device, nbytes: int | None = None, repeats: int = 5) -> float:
    nbytes = nbytes or ((2 << 30) if device.type == "cuda" else (256 << 20))
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    latency_s = _best_latency_s(lambda: dst.copy_(src), device, repeats)
    return 2 * nbytes / latency_s


def measure_ceilings(device: torch.device, dtype: torch.dtype) -> dict:
    """Both ceilings, with the units in the keys."""
    return {
        "matmul_dtype": dtype_name(dtype),
        "peak_matmul_flops_per_s": matmul_flops_per_s(device, dtype),
        "memory_bandwidth_bytes_per_s": memory_bandwidth_bytes_per_s(device),
    }
