"""Energy counters: the joules a pass took, read off the device's own cumulative counter, or why there is none.

Two counters, each read before and after every timed pass (``profiler.measure.items``):

- **RAPL** (CPUs): Linux powercap, ``<powercap>/intel-rapl:N/energy_uj``, microjoules, one zone per package
  (its ``name`` is ``package-N``), summed over the packages; each wraps around at its ``max_energy_range_uj``.
  Intel CPUs since Sandy Bridge; AMD CPUs (Zen) expose RAPL under the same powercap interface on recent kernels.
  A package zone's energy is the cores', caches' and uncore's; DRAM, where measured, is a zone of its own and is
  not counted. Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root only on most systems.
- **NVML** (NVIDIA GPUs, Volta and later): ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver
  was loaded, summed over the GPUs the model is on, through the ``pynvml`` module of NVIDIA's ``nvidia-ml-py``
  package (``pip install aalp-profiler[nvml]``). The board's energy: not the host CPU's.

What a value holds: the energy the package or board took while the pass ran, whatever ran on it (idle and
static power, other processes, the Python around the pass): a device's joules, not the pass's alone.

Resolution. A counter is updated every ``update_s`` (RAPL: about every 1 ms, its registers' update interval;
NVML: every 20 to 100 ms on recent GPUs, so 100 ms is taken; an H200's moved every 100 ms, idle and busy, by 12 J or
more: ``benchmarks/gpu_energy_counter.py``), so a reading can be up to one update stale at
either end and the difference of two covers the pass's duration give or take one update. The rule: a pass gets
an energy value only when it lasted at least ``MIN_UPDATES_PER_PASS`` (10) updates, so the interval the counter
saw is within 10% of the pass's (``min_pass_s``: 10 ms with RAPL, 1 s with NVML); a shorter pass gets none rather
than a wrong one. A RAPL pass longer than ``wrap_s`` (a package's range at ``MAX_PACKAGE_POWER_W``) could have
wrapped the counter more than once, which a difference cannot tell: it gets none either.

``open_energy_counter`` opens the counter of the devices a model is on, or says why there is none; the powercap
folder is a parameter (tests read a file layout made in a temporary folder: the reader's arithmetic on given
files, not a measurement). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

POWERCAP = Path("/sys/class/powercap")
MIN_UPDATES_PER_PASS = 10
RAPL_UPDATE_S = 0.001
NVML_UPDATE_S = 0.1
MAX_PACKAGE_POWER_W = 1000.0  # more than any CPU package draws: bounds how soon a RAPL counter can wrap


class EnergyCounter:
    """A cumulative energy counter: ``read()`` its raw values (None where a read failed), ``pass_joules`` the
    joules between two reads around a pass, by the rule of the module doc. ``name`` says what is read."""

    name: str
    update_s: float
    wrap_s: float = math.inf

    @property
    def min_pass_s(self) -> float:
        """The shortest pass that gets an energy value."""
        return MIN_UPDATES_PER_PASS * self.update_s

    def read(self) -> tuple[int, ...] | None:
        raise NotImplementedError

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        raise NotImplementedError

    def pass_joules(self, before, after, latency_s: float) -> float | None:
        """The joules between ``before`` and ``after``, two reads around a pass of ``latency_s`` seconds; None when
        either read failed or the pass is too short or too long for the counter to tell (the module doc)."""
        if before is None or after is None or not self.min_pass_s <= latency_s <= self.wrap_s:
            return None
        return self.joules(before, after)

    def close(self) -> None:
        pass


class RaplCounter(EnergyCounter):
    """RAPL package energy through powercap: ``zones`` are the package folders, each ``(name, energy_uj path,
    max_energy_range_uj)``."""

    update_s = RAPL_UPDATE_S

    def __init__(self, zones: list[tuple[str, Path, int]]):
        self.zones = zones
        self.name = f"RAPL package energy ({', '.join(name for name, _, _ in zones)})"
        self.wrap_s = min(range_uj for _, _, range_uj in zones) * 1e-6 / MAX_PACKAGE_POWER_W

    def read(self) -> tuple[int, ...] | None:
        try:
            return tuple(int(path.read_text()) for _, path, _ in self.zones)
        except (OSError, ValueError):
            return None

    def joules(self, before, after) -> float:
        """Each package's difference, once wrapped around at its range where it went down, summed."""
        return sum((b - a) % range_uj for a, b, (_, _, range_uj) in zip(before, after, self.zones)) * 1e-6


class NvmlCounter(EnergyCounter):
    """NVML's total energy of ``handles`` (``pynvml`` handles of the model's GPUs, named ``gpus``)."""

    update_s = NVML_UPDATE_S

    def __init__(self, pynvml, handles: list, gpus: list[str]):
        self.pynvml, self.handles = pynvml, handles
        self.name = f"NVML total energy ({', '.join(gpus)})"

    def read(self) -> tuple[int, ...] | None:
        try:
            return tuple(self.pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles)
        except self.pynvml.NVMLError:
            return None

    def joules(self, before, after) -> float:
        return sum(b - a for a, b in zip(before, after)) * 1e-3

    def close(self) -> None:
        self.pynvml.nvmlShutdown()


class Opened(NamedTuple):
    """The counter of a model's devices, or None and the reason there is none; as a context manager, closes it."""

    counter: EnergyCounter | None
    reason: str | None

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc) -> None:
        if self.counter is not None:
            self.counter.close()


def _first_line(err: BaseException) -> str:
    text = (getattr(err, "strerror", None) or str(err) or type(err).__name__).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def open_rapl(powercap: Path = POWERCAP) -> Opened:
    """The RAPL package zones under ``powercap``, each read once to check it can be; or why not."""
    if not powercap.is_dir():
        return Opened(None, f"no RAPL: {powercap} does not exist (no powercap in this kernel, or not exposed here)")
    zones = []
    for folder in sorted(powercap.glob("intel-rapl:*")):
        if folder.name.count(":") != 1:  # intel-rapl:0:0 and the like are sub-zones of a package
            continue
        try:
            name = (folder / "name").read_text().strip()
            if not name.startswith("package"):  # psys (the platform) holds the packages: counting both would double
                continue
            range_uj = int((folder / "max_energy_range_uj").read_text())
            int((folder / "energy_uj").read_text())
        except PermissionError as err:
            return Opened(None, f"no RAPL: {err.filename}: permission denied (root only since Linux 5.10)")
        except (OSError, ValueError) as err:
            where = getattr(err, "filename", None) or folder
            return Opened(None, f"no RAPL: {where}: {_first_line(err)}")
        if range_uj <= 0:
            return Opened(None, f"no RAPL: {folder}/max_energy_range_uj is {range_uj}, not a range")
        zones.append((name, folder / "energy_uj", range_uj))
    if not zones:
        return Opened(None, f"no RAPL: no package zone (intel-rapl:N named package-N) in {powercap}")
    return Opened(RaplCounter(zones), None)


def _gpu_uuid(index: int) -> str:
    import torch  # only for a CUDA device, where torch is loaded already

    uuid = str(torch.cuda.get_device_properties(index).uuid)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def open_nvml(gpus: list[int]) -> Opened:
    """NVML's energy counter of the CUDA devices ``gpus`` (torch's indices, matched to NVML's by UUID, so
    ``CUDA_VISIBLE_DEVICES`` and device order do not matter), each read once; or why not."""
    try:
        import pynvml
    except ImportError:
        return Opened(None, "no NVML: the pynvml module is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return Opened(None, f"no NVML: {_first_line(err)}")
    try:
        handles = [pynvml.nvmlDeviceGetHandleByUUID(_gpu_uuid(index)) for index in gpus]
        for handle in handles:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as err:  # NVMLError_NotSupported before Volta, and on MIG instances
        pynvml.nvmlShutdown()
        return Opened(None, f"no NVML energy counter for cuda:{', cuda:'.join(map(str, gpus))}: {_first_line(err)} "
                            "(full GPUs of the Volta generation and later have one)")
    return Opened(NvmlCounter(pynvml, handles, [f"cuda:{index}" for index in gpus]), None)


def open_energy_counter(devices: Iterable[str], powercap: Path = POWERCAP) -> Opened:
    """The energy counter of the devices a model is on (``"cpu"``, ``"cuda:N"``, as its placement names them):
    NVML over its GPUs when it is on any (the board's energy; parts offloaded to the CPU are not counted), else
    RAPL over the CPU packages; or why there is none."""
    gpus = sorted({int(d.partition(":")[2] or 0) for d in map(str, devices) if d.startswith("cuda")})
    return open_nvml(gpus) if gpus else open_rapl(powercap)


@dataclass(frozen=True)
class EnergyRecord:
    """``run.json`` ``done.energy``: the counter read (``counter``, its ``update_s`` and the shortest pass it
    measures, ``min_pass_s``) and how many timed passes got an energy value, or, where there is none, ``reason``."""

    counter: str | None = None
    reason: str | None = None
    update_s: float | None = None
    min_pass_s: float | None = None
    passes: int = 0
    passes_measured: int = 0

    @classmethod
    def of(cls, opened: Opened, passes: int = 0, passes_measured: int = 0) -> EnergyRecord:
        counter = opened.counter
        if counter is None:
            return cls(reason=opened.reason, passes=passes)
        return cls(counter=counter.name, update_s=counter.update_s, min_pass_s=counter.min_pass_s, passes=passes,
                   passes_measured=passes_measured)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, document) -> EnergyRecord:
        """A record as a run writes it; a ``ValueError`` otherwise."""
        if not isinstance(document, dict) or set(document) - {f for f in cls.__dataclass_fields__}:
            raise ValueError("done.energy is not an energy record (counter, reason, update_s, min_pass_s, passes, "
                             "passes_measured)")
        record = cls(**document)
        if (record.counter is None) == (record.reason is None) or not all(
                isinstance(text, str) and text.isprintable() and len(text) <= 300
                for text in (record.counter, record.reason) if text is not None):
            raise ValueError("done.energy names a counter or the reason there is none (one line each), not both")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                   for n in (record.passes, record.passes_measured)) or record.passes_measured > record.passes:
            raise ValueError("done.energy's passes are whole numbers, measured ones no more than all")
        return record

    def line(self) -> str:
        """One sentence for the console and the report."""
        if self.counter is None:
            return f"no energy counter: {self.reason}"
        return (f"energy: {self.counter}, {self.passes_measured:,} of {self.passes:,} timed passes measured (a pass "
                f"under {self.min_pass_s * 1e3:g} ms, {MIN_UPDATES_PER_PASS} counter updates, gets none)")
