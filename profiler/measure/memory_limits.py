"""What memory ran out at in a sweep, and which items that drops (``profiler.measure.sweep``: out of memory).

``MemoryLimits`` is a part of ``Sweep`` kept in a module of its own: its methods read the sweep's ``loaded`` and
read and set its ``outcome`` (``out_of_memory``, ``batch_out_of_memory``, ``extend_out_of_memory`` and the
``skipped``, ``batch_skipped`` and ``extend_skipped`` entries of what memory dropped).

Out of memory at some length (or context) drops that length and longer ones; at a batch point, the batch points of
that batch or larger at that length (or context) or longer; at an extend point, the points of as long a cache and as
many tokens appended or more. An error is kept as its first line, at most 200 characters.
"""

from __future__ import annotations

import gc

import torch


class MemoryLimits:
    def _freed(self, err: BaseException) -> str:
        """What a pass that ran out of memory held, given back (to the device's allocator's pool too); the error's
        first line, at most 200 characters."""
        gc.collect()
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()
        return str(err).splitlines()[0][:200]

    def _out_of_memory(self, phase: str, n: int, err: BaseException) -> None:
        self.outcome.out_of_memory = {"phase": phase, "n_ctx": n, "error": self._freed(err)}

    def _batch_out_of_memory(self, phase: str, n: int, batch: int, err: BaseException) -> None:
        self.outcome.batch_out_of_memory.append({"phase": phase, "batch": batch, "n_ctx": n,
                                                 "error": self._freed(err)})

    def _beyond_batch_memory(self, item: tuple[str, int, int]) -> bool:
        """Whether a batch point is beyond memory: one sequence ran out at its length, or a batch as large or
        smaller at a length as long or shorter did (either phase)."""
        kind, n, batch = item
        return self._beyond_memory(n + (kind == "decode")) or any(
            batch >= oom["batch"] and n >= oom["n_ctx"] for oom in self.outcome.batch_out_of_memory)

    def _batch_dropped(self, item: tuple[str, int, int]) -> bool:
        """Whether a batch point is beyond memory; the first time, recorded in ``batch_skipped``."""
        if not self._beyond_batch_memory(item):
            return False
        kind, n, batch = item
        self.outcome.batch_skipped.append({"phase": kind, "batch": batch, "n_ctx": n, "reason": "out of memory"})
        return True

    def _extend_out_of_memory(self, c: int, s: int, err: BaseException) -> None:
        self.outcome.extend_out_of_memory.append({"c": c, "s": s, "error": self._freed(err)})

    def _beyond_extend_memory(self, item: tuple[str, int, int]) -> bool:
        """Whether an extend point is beyond memory: one sequence ran out at its ``c + s`` tokens, or an extend of as
        many tokens or fewer on as long a cache or shorter did."""
        _, c, s = item
        return self._beyond_memory(c + s) or any(c >= oom["c"] and s >= oom["s"]
                                                 for oom in self.outcome.extend_out_of_memory)

    def _beyond_item_memory(self, item: tuple[str, int, int]) -> bool:
        """Whether an item of the queue is beyond memory (nothing recorded)."""
        kind, n, third = item
        if kind == "extend":
            return self._beyond_extend_memory(item)
        return self._beyond_memory(n + (kind == "decode")) if third == 1 else self._beyond_batch_memory(item)

    def _item_dropped(self, item: tuple[str, int, int]) -> bool:
        """Whether an item of the queue is beyond memory; the first time, recorded (``_dropped``,
        ``_batch_dropped``, or in ``extend_skipped``)."""
        if not self._beyond_item_memory(item):
            return False
        kind, n, third = item
        if kind == "extend":
            self.outcome.extend_skipped.append({"c": n, "s": third, "reason": "out of memory"})
        elif third == 1:
            self._dropped(n, kind)
        else:
            self._batch_dropped(item)
        return True

    def _beyond_memory(self, n: int) -> bool:
        oom = self.outcome.out_of_memory
        return oom is not None and n >= oom["n_ctx"]

    def _dropped(self, n: int, kind: str = "length") -> bool:
        """Whether the item at ``n`` (a length, a decode context, a generate pair's total) is beyond memory; the
        first time, recorded in ``skipped``."""
        if not self._beyond_memory(n + (kind == "decode")):
            return False
        phase = {"length": "prefill", "decode": "decode", "generate": "generate"}[kind]
        if not any(s["n_ctx"] == n and s.get("phase", "prefill") == phase for s in self.outcome.skipped):
            self.outcome.skipped.append({"n_ctx": n, "reason": "out of memory"} | ({} if kind == "length" else
                                                                                  {"phase": phase}))
        return True
