"""A pass shape's first run on a GPU, and decode on a prefilled cache against a filled one: what cuDNN attention cost.

What (CUDA only; bfloat16, random weights, the models built by ``load_model`` as ``run`` builds them, the profiler's
own passes and timing):

- shapes (gpt2): at input lengths never run before in this process (100, 200, 300), one ``Passes.generate(n, 8)``
  three times in a row (first, second, third), then ``prefill(n + 37)`` twice; printed in ms. Then the CPU and CUDA
  time of the first ``generate(150, 8)`` by operator (``torch.profiler``, the 12 largest by self CPU time).
- caches (smollm2-135m, context 1024): what each cache holds (class, its first layer's keys: dtype, shape, stride,
  contiguous; distinct key tensors over the layers), then 10 decode steps on the prefilled cache alone, 10 on the
  filled one, 10 on the prefilled again, each step timed (``timing.time_pass``); medians in ms.

Why: on the H200 (torch 2.11, CUDA 13), with torch's default choice of attention kernel, cuDNN, ``validate``
measured calls at 5-9x their prediction and ``filled_cache.py`` decode on a prefilled cache at 2.5x a filled one's.
This script found why: the first ``generate(n, 8)`` at a new n took 327-615 ms against 35-43 ms the second time,
a first ``prefill`` 53-58 ms against 5.4-5.8, and the profile of a first generate put 295 of its 347 ms of CPU
time in ``aten::_cudnn_attention_forward`` (3.1 ms a call, 96 calls): cuDNN builds a plan for every sequence length
it has not seen, and every decode step is one position longer than the last. The decode steps on the filled cache
ran at lengths the prefilled one had just run (21 ms against 56-90 ms). Loading every kernel at start-up
(``CUDA_MODULE_LOADING=EAGER``) changed nothing (317-333 ms first). ``load_model`` now switches cuDNN attention
off (flash or memory-efficient attention run instead); measured so: first generates 44-57 ms against 36-37 ms, first
prefills 13-16 ms against 5.1 ms, and ``filled_cache.py`` within noise at every context (paired ratio 0.996-1.004).

What remains (a later session on an H200, after the change): a first prefill at a new length took 20-24 ms against
10.4-10.8 ms the second time, and made no ``cudaMalloc`` call, also after a 4 GiB block had grown the allocator (so it
is not the allocator); the operators of a first and a second prefill at 537 tokens put it in ``aten::addmm``: 14.4 ms
of CPU time against 1.7 ms (48 calls), cuBLASLt choosing a kernel for a shape it has not seen. The first batched
generate (4 x 333 tokens, 8 out) took 147 ms against 76 ms, with 2 ``cudaMalloc`` calls; after the block, 95 against
75 ms and none.

Target: a first generate within a few ms of the second; the three decode medians within noise. Last line: one JSON
document.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from profiler.measure.cache_fill import filled_cache
from profiler.measure.catalog import resolve_model
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.timing import time_pass

DEVICE = torch.device("cuda")


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def shapes(passes: Passes) -> dict:
    rows = {}
    for n in (100, 200, 300):
        generates = [_ms(time_pass(lambda: passes.generate(n, 8), DEVICE)[1]) for _ in range(3)]
        prefills = [_ms(time_pass(lambda: passes.prefill(n + 37), DEVICE)[1]) for _ in range(2)]
        rows[n] = {"generate_ms": generates, "prefill_ms": prefills}
        print(f"n={n}: generate(n, 8) {generates} ms; prefill(n + 37) {prefills} ms", flush=True)
    return rows


def _allocator() -> dict:
    """The caching allocator's counters: cudaMalloc calls so far, segments it holds, bytes it reserves."""
    stats = torch.cuda.memory_stats()
    return {"device_allocs": stats.get("num_device_alloc", 0), "segments": stats.get("segment.all.current", 0),
            "reserved_bytes": stats.get("reserved_bytes.all.current", 0)}


def _first_and_second(run) -> dict:
    """``run`` timed twice in a row (ms), and the cudaMalloc calls each made."""
    before = _allocator()
    first = _ms(time_pass(run, DEVICE)[1])
    between = _allocator()
    second = _ms(time_pass(run, DEVICE)[1])
    after = _allocator()
    return {"ms": [first, second], "cuda_mallocs": [between["device_allocs"] - before["device_allocs"],
                                                    after["device_allocs"] - between["device_allocs"]]}


def first_shapes(passes: Passes) -> dict:
    """Prefills and batched generates at shapes never run before: first and second timings and cudaMalloc calls,
    with the allocator as the earlier passes left it, then after a 4 GiB block was taken and freed (so its
    segment stays reserved and later tensors are carved from it)."""
    rows = {"grown_by_passes": {}, "pre_reserved": {}}
    for n in (137, 237, 437):
        rows["grown_by_passes"][f"prefill {n}"] = _first_and_second(lambda: passes.prefill(n))
    rows["grown_by_passes"]["generate 4 x (333, 8)"] = _first_and_second(lambda: passes.generate(333, 8, batch=4))
    print(f"allocator before the block: {_allocator()}", flush=True)
    block = torch.empty(4 << 30, dtype=torch.uint8, device=DEVICE)
    del block
    print(f"allocator after it: {_allocator()}", flush=True)
    for n in (637, 737, 937):
        rows["pre_reserved"][f"prefill {n}"] = _first_and_second(lambda: passes.prefill(n))
    rows["pre_reserved"]["generate 4 x (533, 8)"] = _first_and_second(lambda: passes.generate(533, 8, batch=4))
    for arm, points in rows.items():
        for name, row in points.items():
            print(f"{arm}: {name}: first, second {row['ms']} ms; cudaMalloc calls {row['cuda_mallocs']}", flush=True)
    return rows


def profiled_first_and_second(passes: Passes, n: int) -> None:
    """The operators of a first prefill at a new ``n`` and of the second, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile
    for which in ("first", "second"):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
            passes.prefill(n)
            torch.cuda.synchronize()
        print(f"== the {which} prefill at n = {n}")
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=50))


def profiled(passes: Passes) -> None:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        passes.generate(150, 8)
        torch.cuda.synchronize()
    print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))


def _describe(cache) -> dict:
    layers = getattr(cache, "layers", [])
    keys = [layer.keys for layer in layers if getattr(layer, "keys", None) is not None]
    first = keys[0]
    return {"class": type(cache).__name__, "layer_class": type(layers[0]).__name__, "dtype": str(first.dtype),
            "shape": list(first.shape), "stride": list(first.stride()), "contiguous": first.is_contiguous(),
            "distinct_key_tensors": len({k.data_ptr() for k in keys}), "layers": len(keys),
            "finite": bool(torch.isfinite(first).all()), "abs_max": float(first.abs().max())}


def caches() -> dict:
    loaded = load_model(resolve_model("smollm2-135m"), DEVICE, torch.bfloat16)
    passes = Passes(loaded)
    prefilled = passes.prefill(1024)
    filled = filled_cache(passes, 1024)
    described = {"prefilled": _describe(prefilled), "filled": _describe(filled)}
    print(json.dumps(described))
    passes.decode_step(prefilled), passes.decode_step(filled)  # untimed
    runs = {}
    for name, cache in (("prefilled", prefilled), ("filled", filled), ("prefilled_again", prefilled)):
        runs[name] = [_ms(time_pass(lambda: passes.decode_step(cache), DEVICE)[1]) for _ in range(10)]
        print(f"decode on {name}: median {statistics.median(runs[name])} ms of {runs[name]}", flush=True)
    return {"caches": described, "decode_ms": runs}


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_first_pass.py: no CUDA device here", file=sys.stderr)
        return 2
    passes = Passes(load_model(resolve_model("gpt2"), DEVICE, torch.bfloat16))
    passes.generate(16, 4)  # untimed: the first pass of all
    result = {"benchmark": "gpu_first_pass", "shapes": shapes(passes)}
    profiled(passes)
    profiled_first_and_second(passes, 537)
    result["first_shapes"] = first_shapes(passes)
    result.update(caches())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
