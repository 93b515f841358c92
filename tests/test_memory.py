import pytest
import torch

from profiler.measure.memory import PeakMemory, kv_cache_bytes
from profiler.measure.passes import Passes

MIB = 2**20


@pytest.fixture
def cpu_peak():
    peak = PeakMemory(torch.device("cpu"))
    if not peak.supported:
        pytest.skip("no /proc/self/clear_refs: CPU peak not measurable here")
    return peak


def test_cpu_peak_sees_a_transient_allocation(cpu_peak):
    cpu_peak.reset()
    baseline, _ = cpu_peak.read()
    cpu_peak.reset()
    block = torch.ones(300 * MIB // 4)  # 300 MiB, touched
    del block
    peak, reserved = cpu_peak.read()
    assert reserved is None
    assert peak - baseline >= 290 * MIB


def test_cpu_peak_reset_forgets_earlier_peaks(cpu_peak):
    cpu_peak.reset()
    block = torch.ones(300 * MIB // 4)
    del block  # a large block goes straight back to the kernel
    before_reset, _ = cpu_peak.read()
    cpu_peak.reset()
    after_reset, _ = cpu_peak.read()
    assert before_reset - after_reset >= 250 * MIB


def test_kv_cache_bytes_match_the_architecture(tiny_loaded):
    cache = Passes(tiny_loaded).prefill(50)
    assert kv_cache_bytes(cache) == 50 * tiny_loaded.architecture.kv_bytes_per_token(torch.float32)
    assert kv_cache_bytes(None) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_peak_sees_an_allocation():
    peak = PeakMemory(torch.device("cuda"))
    peak.reset()
    block = torch.ones(64 * MIB // 4, device="cuda")
    allocated, reserved = peak.read()
    assert allocated >= 64 * MIB and reserved >= allocated
    del block
