import pytest
import torch

from profiler.cli.main import main
from profiler.errors import UserError
from profiler.measure.devices import DTYPES, resolve_device, resolve_dtype
from tests.conftest import save_tiny
from tests.user_error import run_argv, stop_before_measuring, user_error

NOT_DEVICES = {  # --device: what the line must say
    "cpu:3": "--device cpu:3: the CPU has no numbered devices (use cpu)",
    "cpu:0": "--device cpu:0: the CPU has no numbered devices",
    "cuda:x": "--device cuda:x: not a device",
    "cuda:-1": "--device cuda:-1: not a device",
    "cuda:1:2": "--device cuda:1:2: not a device",
    "cuda:99999999999999999999": "not a device",
    "mps": "--device mps: only cpu and cuda are supported",
    "meta": "--device meta: only cpu and cuda are supported",
    "": "--device '': not a device",
    " cpu": "--device ' cpu': not a device",
    "CPU": "--device CPU: not a device",
    "0": "--device 0: not a device",
    "cpu\n": r"--device 'cpu\n': not a device",
}
NOT_DTYPES = ["", "FP32", "float64", "int8", "half", "torch.float32", "bfloat16 ", "float8_e4m3fn"]


@pytest.fixture
def tiny(tmp_path):
    return save_tiny(tmp_path / "tiny", "gpt2")


@pytest.mark.parametrize("device", NOT_DEVICES, ids=repr)
def test_a_device_that_is_not_there_is_one_line_before_anything_is_built(device, tiny, capfd, monkeypatch):
    stop_before_measuring(monkeypatch)
    assert NOT_DEVICES[device] in user_error(capfd, run_argv(tiny, f"--device={device}"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_a_gpu(device, tiny, capfd, monkeypatch):
    stop_before_measuring(monkeypatch)
    assert f"--device {device}: no CUDA device on this machine" in user_error(capfd, run_argv(tiny, "--device", device))


@pytest.mark.parametrize("dtype", NOT_DTYPES, ids=repr)
def test_a_dtype_that_is_not_offered_is_one_line_before_anything_is_built(dtype, tiny, capfd, monkeypatch):
    stop_before_measuring(monkeypatch)
    line = user_error(capfd, run_argv(tiny, "--device", "cpu", f"--dtype={dtype}"))
    assert "--dtype " in line and "use one of auto, float32, fp32, bfloat16, bf16, float16, fp16" in line


def test_a_numbered_gpu_must_exist(monkeypatch):
    """Two GPUs (faked): cuda:0 and cuda:1 are devices, cuda:2 is one line."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(UserError, match=r"^--device cuda:2: no such CUDA device \(this machine has cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_good_devices_and_dtypes_pass(tiny, tmp_path, monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert {name: resolve_dtype(name, torch.device("cpu")) for name in DTYPES} == {
        "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
        "float16": torch.float16, "fp16": torch.float16}
    stop_before_measuring(monkeypatch)
    with pytest.raises(AssertionError, match="got past its input checks"):
        main(run_argv(tiny, "--device", "cpu", "--dtype", "bf16", "--out", str(tmp_path / "r"),
                      "--fits", str(tmp_path / "f")))
