"""Peak memory of one pass, and the bytes a KV cache holds.

GPU: the caching allocator's peaks since a reset (``max_memory_allocated`` and
``max_memory_reserved``), in bytes, weights included.
CPU: the process's peak resident set size during the pass, read from the kernel: writing
``5`` to ``/proc/self/clear_refs`` resets the high-water mark ``VmHWM`` to the current
RSS, and ``VmHWM`` after the pass is the highest RSS the kernel saw in between (Linux 4.0
and later). It includes the weights and everything else resident. Where that file cannot
be written (not Linux), the CPU peak is not measured and is reported empty.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_bytes() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text()).group(1)) * 1024


class PeakMemory:
    """Reset before a pass, read after it: ``(peak_bytes, reserved_bytes)``; None where unmeasured."""

    def __init__(self, device: torch.device):
        self.device = device
        self.supported = device.type == "cuda" or self._can_reset_cpu_peak()

    @staticmethod
    def _can_reset_cpu_peak() -> bool:
        try:
            _CLEAR_REFS.write_text("5")
            _vm_hwm_bytes()
        except (OSError, AttributeError):
            return False
        return True

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.supported:
            _CLEAR_REFS.write_text("5")

    def read(self) -> tuple[int | None, int | None]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device), torch.cuda.max_memory_reserved(self.device)
        return (_vm_hwm_bytes() if self.supported else None), None


def kv_cache_bytes(cache) -> int:
    """Bytes of the key and value tensors a transformers cache holds (0 for no cache)."""
    if cache is None:
        return 0
    total = 0
    for layer in cache.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device or host running out of memory (torch raises several kinds)."""
    text = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
