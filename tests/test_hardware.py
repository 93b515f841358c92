import torch

from profiler.measure.ceilings import matmul_flops_per_s, memory_bandwidth_bytes_per_s
from profiler.measure.hardware import fingerprint, slug


def test_fingerprint_holds_what_makes_results_comparable():
    facts = fingerprint(torch.device("cpu"))
    for key in ("cpu_model", "cpu_cores", "torch_threads", "memory_bytes", "torch", "transformers"):
        assert facts[key], key
    assert facts["torch_threads"] == torch.get_num_threads()


def test_slug_is_a_folder_name():
    cpu = {"device": "cpu", "cpu_model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.0GHz", "torch_threads": 8}
    assert slug(cpu) == "cpu-intel-xeon-platinum-8480-cpu-2-0ghz-8t"
    gpu = {"device": "cuda", "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_count": 1}
    assert slug(gpu) == "cuda-nvidia-h100-80gb-hbm3"


def test_ceilings_are_measured_and_plausible():
    flops = matmul_flops_per_s(torch.device("cpu"), torch.float32, size=256, repeats=3)
    bandwidth = memory_bandwidth_bytes_per_s(torch.device("cpu"), nbytes=32 << 20, repeats=3)
    assert 1e8 < flops < 1e14  # between a 1990s PC and a whole GPU
    assert 1e8 < bandwidth < 1e13
