"""The hardware fingerprint that makes results comparable, and the short slug that names it.

The fingerprint holds what changes a measured cost: CPU model, cores, threads, memory; GPU
name, memory and driver; library versions. Two runs with different fingerprints are
different hardware and are kept in different folders (``reports/<slug>/``).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from profiler.measure.memory import meminfo_bytes


def _cpu_model() -> str:
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def _gpu_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def fingerprint(device: torch.device) -> dict:
    """Facts about this machine and software; the GPU part only for a CUDA ``device``."""
    import transformers

    facts = {
        "device": device.type,
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": meminfo_bytes("MemTotal"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts |= {
            "gpu_name": props.name,
            "gpu_memory_bytes": props.total_memory,
            "gpu_count": torch.cuda.device_count(),
            "gpu_driver": _gpu_driver(),
            "cuda": torch.version.cuda,
        }
    return facts


def slug(facts: dict) -> str:
    """A folder name for this hardware, e.g. ``cpu-intel-xeon-processor-2t``."""
    if facts["device"] == "cuda":
        name = facts["gpu_name"]
        suffix = f"x{facts['gpu_count']}" if facts["gpu_count"] > 1 else ""
    else:
        name = re.sub(r"\((r|tm)\)", "", facts["cpu_model"], flags=re.IGNORECASE)
        suffix = f"{facts['torch_threads']}t"
    words = re.sub(r"[^a-z0-9]+", "-", f"{facts['device']} {name} {suffix}".lower()).strip("-")
    return re.sub(r"-+", "-", words)
