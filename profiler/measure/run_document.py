"""The documents a run writes beside its samples: ``run.json`` and ``hardware.json``, typed.

``RunDocument`` is what was asked, the model that ran, what was done and the per-point
summary; ``HardwareDocument`` the machine's fingerprint and measured ceilings. Each has one
writer (``write``: atomic, ``profiler.files.write_json``) and one reader (``read``: a one-line
``UserError`` for a missing, unreadable or incomplete file). The JSON keys are the ones
README documents; a non-finite number (an unbounded interval of a single repeat) is written
as ``null``, so the files are standard JSON.

Torch-free: the report and the fit read these documents without building a model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from profiler.errors import UserError
from profiler.files import read_json, write_json
from profiler.measure.disturbance import Disturbance
from profiler.measure.endpoint.endpoint_document import EndpointRecord
from profiler.measure.energy import EnergyRecord
from profiler.measure.grid import MAX_BATCH_SIZE, MAX_BATCH_SIZES
from profiler.measure.routing import Routing

FORMAT_VERSION = 1
RUN_FILE, HARDWARE_FILE = "run.json", "hardware.json"


def finite_or_none(value):
    """``value`` with every non-finite float inside it (lists and dicts too) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def _whole(value, least: int, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most


def _batch_sizes(sizes, what: str):
    """``sizes`` checked as a run writes them (``None`` in runs before batches): a ``ValueError`` otherwise."""
    if sizes is not None and not (isinstance(sizes, list) and 0 < len(sizes) <= MAX_BATCH_SIZES
                                  and all(_whole(b, 1, MAX_BATCH_SIZE) for b in sizes)):
        raise ValueError(f"{what} is not a list of 1 to {MAX_BATCH_SIZES} batch sizes of 1 to {MAX_BATCH_SIZE:,}")
    return sizes


def _batch_points(records, what: str, text: str) -> list[dict]:
    """Batch points not measured (``batch_skipped``, ``batch_out_of_memory``) checked as a run writes them: each a
    record of a batched phase, a batch size, a context length and its ``text`` (the reason, the error); a
    ``ValueError`` otherwise."""
    if not isinstance(records, list) or not all(
            isinstance(r, dict) and r.get("phase") in ("prefill", "decode") and _whole(r.get("batch"), 1, MAX_BATCH_SIZE)
            and _whole(r.get("n_ctx"), 1, 2**53) and isinstance(r.get(text), str) for r in records):
        raise ValueError(f"{what} is not a list of batch points (phase prefill or decode, batch 1 to "
                         f"{MAX_BATCH_SIZE:,}, n_ctx, {text})")
    return records


def _extend_points(records, what: str, text: str) -> list[dict]:
    """Extend points not measured (``extend_skipped``, ``extend_out_of_memory``) checked as a run writes them: each a
    record of a cache length ``c`` and tokens appended ``s`` (whole, at least 1) and its ``text`` (the reason, the
    error); a ``ValueError`` otherwise."""
    if not isinstance(records, list) or not all(
            isinstance(r, dict) and _whole(r.get("c"), 1, 2**53) and _whole(r.get("s"), 1, 2**53)
            and isinstance(r.get(text), str) for r in records):
        raise ValueError(f"{what} is not a list of extend points (c and s whole numbers of at least 1, {text})")
    return records


def _raised_budget(seconds):
    """``done.budget_raised_to_s`` checked as a run writes it (None, or seconds above 0): a ``ValueError`` otherwise."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                                    and 0 < seconds < math.inf):
        raise ValueError("done.budget_raised_to_s is not a number of seconds above 0")
    return seconds


def _caches_prefilled(reason):
    """``done.caches_prefilled`` checked as a run writes it (None, or one line of 1 to 200 characters): a
    ``ValueError`` otherwise."""
    if reason is not None and not (isinstance(reason, str) and reason.isprintable() and 0 < len(reason) <= 200):
        raise ValueError("done.caches_prefilled is not one line of text")
    return reason


def _require(document: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in document]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)}")


@dataclass(frozen=True)
class RunAsked:
    """The options of the run, as given (``lengths`` is the text of ``--lengths`` or ``"default"``;
    ``batch_sizes`` those of ``--batch`` or the device's default, None in runs before batches were measured)."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    lengths: str = "default"
    budget_s: float | None = None
    seed: int | None = None
    threads: int | None = None
    attn_implementation: str = "sdpa"
    device_map: str | None = None
    batch_sizes: list[int] | None = None

    def __post_init__(self):
        _batch_sizes(self.batch_sizes, "asked.batch_sizes")


@dataclass(frozen=True)
class ModelRecord:
    """The model that ran: where it was found, how it was built, and its architecture's numbers
    (``architecture``: ``model_type``, ``layers``, ``hidden``, ``heads``, ``kv_heads``, ``params``,
    ``max_positions`` ... as ``profiler.measure.architecture.Architecture.as_dict`` gives them), and why
    its attention is not sdpa when none was asked for (``attn_fallback``: the architecture cannot run it), and of a
    composite model, the part built and measured (``part_measured``: ``profiler.measure.composite``)."""

    name: str
    path: str
    found_in: str
    random_weights: bool
    dtype: str
    attn_implementation: str
    device_map: dict | str | None
    build_s: float
    architecture: dict
    attn_fallback: str | None = None
    part_measured: str | None = None

    @property
    def params(self) -> int:
        return self.architecture["params"]

    @property
    def max_positions(self) -> int | None:
        return self.architecture.get("max_positions")

    def to_json(self) -> dict:
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "architecture"}
        return {**record, **self.architecture}

    @classmethod
    def from_json(cls, document: dict, where: str) -> ModelRecord:
        own = tuple(f.name for f in fields(cls) if f.name != "architecture")
        sentences = ("attn_fallback", "part_measured")
        _require(document, tuple(name for name in own if name not in sentences) + ("params",), where)
        for name in sentences:
            sentence = document.get(name)
            if sentence is not None and not (isinstance(sentence, str) and sentence.isprintable()
                                             and len(sentence) <= 500):
                raise ValueError(f"{name}: not a sentence of at most 500 printable characters, nor null")
        return cls(**{name: document[name] for name in own if name in document},
                   architecture={key: value for key, value in document.items() if key not in own})


@dataclass(frozen=True)
class RunDone:
    """What the sweep did: lengths and generate pairs measured, rows written, anything skipped
    (``{"n_ctx", "reason"}``), out of memory, interrupted, the drift check, unstable points, and
    what the disturbance watch saw (``profiler.measure.disturbance``); the batch sizes measured (1 alone
    where no batch was), the batch points not measured (``batch_skipped``: ``{"phase", "batch", "n_ctx",
    "reason"}``, with the predicted cost of those the budget left out) and those out of memory; the extend points
    not measured (``extend_skipped``: ``{"c", "s", "reason"}``, with the predicted cost of those the budget left
    out) and those out of memory (``extend_out_of_memory``: ``{"c", "s", "error"}``); the energy counter read, or
    why there is none (``energy``: ``profiler.measure.energy.EnergyRecord``).
    Fields added after the first runs default to what those runs did (nothing skipped, memory
    measured, no watch: ``disturbance`` None, batch 1 only, no extend grid, ``energy`` None: not recorded)."""

    lengths: list[int]
    rows: int
    elapsed_s: float
    generate_pairs: list[list[int]] = field(default_factory=list)
    interrupted: bool = False
    out_of_memory: dict | None = None
    skipped: list[dict] = field(default_factory=list)
    drift_check: dict | None = None
    peak_memory_measured: bool = True
    finished_at: str | None = None
    unstable_points: list[dict] = field(default_factory=list)
    disturbance: Disturbance | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    batch_skipped: list[dict] = field(default_factory=list)
    batch_out_of_memory: list[dict] = field(default_factory=list)
    extend_skipped: list[dict] = field(default_factory=list)
    extend_out_of_memory: list[dict] = field(default_factory=list)
    energy: EnergyRecord | None = None
    budget_raised_to_s: float | None = None  # the default budget raised so the curves can be fitted (None: not)
    caches_prefilled: str | None = None  # why decode and extend caches were built by prefills (None: filled)

    @classmethod
    def from_json(cls, document: dict) -> RunDone:
        watched, energy = document.get("disturbance"), document.get("energy")
        return cls(**{**document, "disturbance": Disturbance.from_json(watched) if watched else None,
                      "energy": None if energy is None else EnergyRecord.from_json(energy),
                      "batch_sizes": _batch_sizes(document.get("batch_sizes", [1]), "done.batch_sizes"),
                      "batch_skipped": _batch_points(document.get("batch_skipped", []), "done.batch_skipped",
                                                     "reason"),
                      "batch_out_of_memory": _batch_points(document.get("batch_out_of_memory", []),
                                                           "done.batch_out_of_memory", "error"),
                      "extend_skipped": _extend_points(document.get("extend_skipped", []), "done.extend_skipped",
                                                       "reason"),
                      "extend_out_of_memory": _extend_points(document.get("extend_out_of_memory", []),
                                                             "done.extend_out_of_memory", "error"),
                      "budget_raised_to_s": _raised_budget(document.get("budget_raised_to_s")),
                      "caches_prefilled": _caches_prefilled(document.get("caches_prefilled"))})


@dataclass(frozen=True)
class RunDocument:
    """``run.json``: the command line, what was asked, the model, what was done, the per-point
    summary (``points``: one record per measured point, of one phase, batch and length -- median latency,
    95% CI, tokens/s, ...),
    and, for a mixture of experts, the routing of one prefill pass (``profiler.measure.routing``;
    None for a dense model and in runs written before it was measured); for a run of a served model, the
    endpoint's side of it (``endpoint``: ``profiler.measure.endpoint.endpoint_document``; None for a local run)."""

    command: list[str]
    asked: RunAsked
    model: ModelRecord
    done: RunDone
    points: list[dict]
    format_version: int = FORMAT_VERSION
    routing: Routing | None = None
    endpoint: EndpointRecord | None = None

    def to_json(self) -> dict:
        return finite_or_none({
            "format_version": self.format_version, "command": list(self.command), "asked": asdict(self.asked),
            "model": self.model.to_json(), "done": asdict(self.done), "points": self.points,
            "routing": self.routing.to_json() if self.routing else None,
        } | ({"endpoint": self.endpoint.to_json()} if self.endpoint else {}))

    def write(self, folder: Path) -> Path:
        return write_json(Path(folder) / RUN_FILE, self.to_json())

    @classmethod
    def read(cls, folder: Path) -> RunDocument:
        path = Path(folder) / RUN_FILE
        document = read_json(path)
        _require(document, ("asked", "model", "done"), str(path))
        routing = document.get("routing")
        if routing is not None and not isinstance(routing, dict):
            raise UserError(f"{path}: not a run document (routing is {type(routing).__name__}, not a record)")
        try:
            return cls(command=document.get("command", []),
                       asked=RunAsked(**document["asked"]),
                       model=ModelRecord.from_json(document["model"], f"{path}: model"),
                       done=RunDone.from_json(document["done"]),
                       points=document.get("points", []),
                       format_version=document.get("format_version", FORMAT_VERSION),
                       routing=None if routing is None else Routing.from_json(routing),
                       endpoint=None if document.get("endpoint") is None else EndpointRecord.from_json(
                           document["endpoint"]))
        except (TypeError, ValueError, KeyError) as err:  # a key missing or unknown, or counts that do not add up
            raise UserError(f"{path}: not a run document ({err})") from None


@dataclass(frozen=True)
class HardwareDocument:
    """``hardware.json``: the machine's fingerprint (``facts``: CPU, cores, threads, memory, GPU,
    driver, library versions, as ``profiler.measure.hardware.fingerprint`` gives them), its slug,
    the dtype and attention of the run, and the measured ceilings (matmul FLOP/s, memory bandwidth)."""

    slug: str
    facts: dict
    dtype: str
    attn_implementation: str
    ceilings: dict
    format_version: int = FORMAT_VERSION

    @property
    def device(self) -> str:
        return self.facts["device"]

    def to_json(self) -> dict:
        return finite_or_none({"format_version": self.format_version, "slug": self.slug, **self.facts,
                               "dtype": self.dtype, "attn_implementation": self.attn_implementation,
                               "ceilings": self.ceilings})

    def write(self, folder: Path) -> Path:
        return write_json(Path(folder) / HARDWARE_FILE, self.to_json())

    @classmethod
    def read(cls, folder: Path) -> HardwareDocument:
        path = Path(folder) / HARDWARE_FILE
        document = dict(read_json(path))
        _require(document, ("slug", "device", "dtype", "ceilings"), str(path))
        own = {name: document.pop(name) for name in ("slug", "dtype", "ceilings")}
        version = document.pop("format_version", FORMAT_VERSION)
        attn = document.pop("attn_implementation", "sdpa")
        return cls(**own, facts=document, attn_implementation=attn, format_version=version)
