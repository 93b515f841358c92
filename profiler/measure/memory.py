"""Peak memory of one pass, and the bytes a KV cache holds.

GPU: the caching allocator's peaks since a reset (``max_memory_allocated`` and
``max_memory_reserved``), in bytes, weights included.
CPU: the process's peak resident set size during the pass, read from the kernel: writing
``5`` to ``/proc/self/clear_refs`` resets the high-water mark ``VmHWM`` to the current
RSS, and ``VmHWM`` after the pass is the highest RSS the kernel saw in between (Linux 4.0
and later). It includes the weights and everything else resident. The free pages the process
holds (``profiler.measure.allocator``) are handed back before the reset, so the peak is the
pass's, not the largest pass's before it: a pass whose peak is read (``PeakMemory.measure``)
faults its pages in afresh, and is not one of the timed repeats. Where that file cannot
be written (not Linux), the CPU peak is not measured and is reported empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from pathlib import Path

import torch

from profiler.measure.allocator import release_freed_memory

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MEMINFO = Path("/proc/meminfo")


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
            release_freed_memory()
            _CLEAR_REFS.write_text("5")

    def read(self) -> tuple[int | None, int | None]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device), torch.cuda.max_memory_reserved(self.device)
        return (_vm_hwm_bytes() if self.supported else None), None

    def measure(self, run_pass: Callable[[], object]) -> tuple[object, tuple[int | None, int | None]]:
        """Run ``run_pass`` between a reset and a read: its result and ``(peak_bytes, reserved_bytes)``."""
        self.reset()
        result = run_pass()
        return result, self.read()


def _tensors(value):
    """The tensors in ``value``, through lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, MutableMapping):
        for item in value.values():
            yield from _tensors(item)


def meminfo_bytes(field: str) -> int | None:
    """A ``/proc/meminfo`` figure (``MemTotal``, ``MemAvailable``...) in bytes; None where it is not known."""
    try:
        return int(re.search(rf"^{field}:\s+(\d+) kB", MEMINFO.read_text(), re.MULTILINE).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def kv_cache_bytes(cache) -> int:
    """Bytes of the tensors a transformers cache holds (0 for no cache), each counted once: the keys and
    values of every layer (a sliding-window layer's no more than its window: transformers keeps its last
    ``window - 1`` tokens), and whatever else a layer or the cache keeps per token or per sequence
    (compressed entries, an indexer's keys, linear-attention states). Zero-dimensional tensors are
    counters (a window's size, a length), not cached states, and are left out."""
    if cache is None:
        return 0
    held = {id(t): t for owner in (cache, *cache.layers) for t in _tensors(list(vars(owner).values())) if t.ndim}
    return sum(t.numel() * t.element_size() for t in held.values())


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device or host running out of memory (torch raises several kinds)."""
    text = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
