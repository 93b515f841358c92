"""The validation document, typed: what ``validate.validate`` measures, ``validate --json`` prints and
``validate-<exercise>.json`` holds.

It is the break-even document (``profiler.lba.breakeven_document``) of the grid values that
were run, each row (``ValidationRow``) extended with the runs of both programs and what they
measured, and the document with the model that ran them, what was skipped and whether the
targets were met. Per-variant values are ``{variant: value}`` dicts; ``to_json`` flattens
them to the row keys README documents (``measured_optimistic``, ``error_optimized``, ...:
spelled out once, in ``FLAT_KEYS``), ``from_json`` reads them back. One writer, ``write``
(atomic, ``profiler.files.write_json``), and one reader, ``read`` (a one-line ``UserError``
for a file that is not a validation document or comes from a newer profiler).

Times are wall seconds; a cost error is ``predicted / measured - 1``. With prefix reuse the
document has the break-even document's ``reuse`` (its capacity: the rows are replayed prices) and
each run the tokens its calls read from kept caches (``cached_tokens``). Under a parallel schedule
the rows are the predicted makespan and the document says so: ``schedule`` (its kind, batch
limit and devices) and ``measure`` (``makespan``), the break-even document's own keys; without
them (a document of a sequential validate, or one written before schedules) every call ran alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from profiler.errors import UserError
from profiler.files import read_json, write_json
from profiler.lba.breakeven_document import FORMAT_VERSION, BreakevenDocument, BreakevenRow
from profiler.lba.exercises import VARIANTS

# The row keys of the per-variant measurements, as validate-<exercise>.json has always had them.
FLAT_KEYS = {
    "measured": {"optimistic": "measured_optimistic", "optimized": "measured_optimized"},
    "error": {"optimistic": "error_optimistic", "optimized": "error_optimized"},
    "error_given_calls": {"optimistic": "error_given_calls_optimistic", "optimized": "error_given_calls_optimized"},
    "draw_quantile": {"optimistic": "draw_quantile_optimistic", "optimized": "draw_quantile_optimized"},
}


def _number(value, key: str, low: float = -math.inf, high: float = math.inf):
    """A measured value read back: None, or a finite number from ``low`` to ``high``; otherwise a ``ValueError``
    naming ``key`` (``ValidationDocument.read`` makes it one line)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{key} = {value!r}")
    return value


# The bounds of the per-variant measurements read back (a quantile is a share; the others any finite number)
_BOUNDS = {"draw_quantile": (0.0, 1.0)}
_RUN_TIMES = ("latency_s", "calls_latency_s", "predicted_s", "speed_before", "speed_after")  # seconds and ratios


@dataclass(frozen=True)
class Run:
    """One run of a program with seed ``seed``: its wall time ``latency_s`` (the program's own Python
    between calls included), its ``calls``, run as ``generates`` generates (one a call in sequence, one a
    batch in parallel; None in a document written before schedules) whose times sum to ``calls_latency_s``,
    the cost model's price of exactly those calls ``predicted_s`` (under the document's schedule), and the
    machine's speed (a reference call's measured over fitted time, 1 at the profiled speed) just before and
    just after it. With prefix reuse, ``cached_tokens``: the input tokens its calls read from caches kept from
    earlier calls, in all (None without reuse)."""

    seed: int
    latency_s: float
    calls: int
    calls_latency_s: float
    predicted_s: float
    speed_before: float
    speed_after: float
    generates: int | None = None
    cached_tokens: int | None = None

    def to_json(self) -> dict:
        return {"seed": self.seed, "latency_s": self.latency_s, "calls": self.calls,
                "calls_latency_s": self.calls_latency_s, "predicted_s": self.predicted_s,
                "speed_before": self.speed_before, "speed_after": self.speed_after} | (
            {} if self.generates is None else {"generates": self.generates}) | (
            {} if self.cached_tokens is None else {"cached_tokens": self.cached_tokens})

    @classmethod
    def from_json(cls, run: dict) -> Run:
        for key in _RUN_TIMES:
            if _number(run[key], key, low=0.0) is None:
                raise ValueError(f"{key} = None")
        return cls(**run)


@dataclass(frozen=True)
class Skipped:
    """A grid value not run, or (with ``variant`` and ``seed``) one run stopped, and why."""

    value: float
    reason: str
    variant: str | None = None
    seed: int | None = None

    def to_json(self) -> dict:
        which = {} if self.variant is None else {"variant": self.variant, "seed": self.seed}
        return {"value": self.value, **which, "reason": self.reason}

    @classmethod
    def from_json(cls, entry: dict) -> Skipped:
        return cls(**entry)


@dataclass(frozen=True)
class Targets:
    """The issue's targets: ``costs_met`` of the ``costs_checked`` measured costs on target (``costs``:
    all of them, None when none was checked), ``costs_unsteady`` left out (a slow spell around the
    run), and whether the break-even was found within one grid step (None with under two measured
    values). The defaults: nothing measured yet."""

    costs_met: int = 0
    costs_checked: int = 0
    costs: bool | None = None
    costs_unsteady: int = 0
    breakeven: bool | None = None

    def to_json(self) -> dict:
        return {"costs_met": self.costs_met, "costs_checked": self.costs_checked, "costs": self.costs,
                "costs_unsteady": self.costs_unsteady, "breakeven": self.breakeven}

    @classmethod
    def from_json(cls, targets: dict) -> Targets:
        return cls(**targets)


def _per_variant(value=None) -> dict:
    return {variant: value for variant in VARIANTS}


@dataclass(kw_only=True)
class ValidationRow(BreakevenRow):
    """A break-even row (the prediction) with what was measured at its value.

    ``runs``: ``{variant: [Run]}`` in seed order. ``measured``: ``{variant: mean latency_s of its
    runs}``, None until every seed ran; ``error``: ``{variant: predicted / measured - 1}``;
    ``error_given_calls``: the mean over runs of ``predicted_s / latency_s - 1`` (the cost model's
    error on the calls actually made, without the oracle draws' luck). ``predicted_interval``:
    for a stochastic exercise, ``{variant: (5th, 95th percentile)}`` of the predicted mean of
    ``seeds`` runs, once the run reached this value; ``draw_quantile``: where the mean of its seeds'
    ``predicted_s`` lies among the simulated means behind that interval (the share below it, 0 to 1;
    None until every seed ran, and for a deterministic exercise). ``measured_ratio``: optimistic /
    optimized measured, None until both are."""

    runs: dict[str, list[Run]] = field(default_factory=lambda: {variant: [] for variant in VARIANTS})
    predicted_interval: dict[str, tuple[float, float]] | None = None
    measured: dict[str, float | None] = field(default_factory=_per_variant)
    error: dict[str, float | None] = field(default_factory=_per_variant)
    error_given_calls: dict[str, float | None] = field(default_factory=_per_variant)
    draw_quantile: dict[str, float | None] = field(default_factory=_per_variant)
    measured_ratio: float | None = None

    def to_json(self) -> dict:
        row = super().to_json() | {"runs": {variant: [run.to_json() for run in self.runs[variant]]
                                            for variant in VARIANTS}}
        if self.predicted_interval is not None:
            row["predicted_interval"] = {variant: list(self.predicted_interval[variant]) for variant in VARIANTS}
            row |= {FLAT_KEYS["draw_quantile"][variant]: quantile for variant, quantile in self.draw_quantile.items()
                    if quantile is not None}  # absent until every seed ran (and in a file written before it)
        for variant in VARIANTS:
            for name, values in (("measured", self.measured), ("error", self.error),
                                 ("error_given_calls", self.error_given_calls)):
                row[FLAT_KEYS[name][variant]] = values[variant]
        row["measured_ratio"] = self.measured_ratio
        return row

    @classmethod
    def from_json(cls, row: dict) -> ValidationRow:
        interval = row.get("predicted_interval")
        return ValidationRow(
            **vars(BreakevenRow.from_json(row)),
            runs={variant: [Run.from_json(run) for run in row["runs"][variant]] for variant in VARIANTS},
            predicted_interval=None if interval is None else {v: tuple(interval[v]) for v in VARIANTS},
            **{name: {v: _number(row.get(key), key, *_BOUNDS.get(name, ())) for v, key in keys.items()}
               for name, keys in FLAT_KEYS.items()},
            measured_ratio=_number(row.get("measured_ratio"), "measured_ratio"))


@dataclass(kw_only=True)
class ValidationDocument(BreakevenDocument):
    """The prediction of the grid values run (a ``BreakevenDocument`` of ``ValidationRow``) and the
    measurement: ``model`` (its ``max_positions``) on ``hardware_slug`` ran every role
    (``executed_by`` says so); ``seeds`` runs per variant and value (1 unless ``stochastic``);
    ``measurement`` says what was timed (JSON key ``measured``). ``skipped``: values and runs not
    made, and why; ``interrupted``: by Ctrl-C. ``measured_breakeven`` and
    ``measured_winner_throughout``: the break-even of the measured ratios, as ``breakeven`` is of
    the predicted; ``targets``: whether the issue's targets were met. The system load average
    at the start and at the end (None while running); ``fit``: the fit file that priced it."""

    rows: list[ValidationRow]
    model: str
    hardware_slug: str
    max_positions: int
    stochastic: bool
    seeds: int
    executed_by: str
    measurement: str
    skipped: list[Skipped] = field(default_factory=list)
    interrupted: bool = False
    load_average_start: float
    load_average_end: float | None = None
    measured_breakeven: float | None = None
    measured_winner_throughout: str | None = None
    targets: Targets = field(default_factory=Targets)
    fit: str | None = None

    @classmethod
    def unmeasured(cls, predicted: BreakevenDocument, **measurement) -> ValidationDocument:
        """The document of ``predicted`` before any run: its rows with nothing measured, and the other
        fields (``model``, ``seeds``, ...) from ``measurement``."""
        header = {name: value for name, value in vars(predicted).items() if name != "rows"}
        return cls(**(header | measurement), rows=[ValidationRow(**vars(row)) for row in predicted.rows])

    def to_json(self) -> dict:
        document = super().to_json() | {
            "model": self.model, "hardware_slug": self.hardware_slug, "max_positions": self.max_positions,
            "stochastic": self.stochastic, "seeds": self.seeds, "executed_by": self.executed_by,
            "measured": self.measurement, "skipped": [entry.to_json() for entry in self.skipped],
            "interrupted": self.interrupted, "load_average_start": self.load_average_start,
            "measured_breakeven": self.measured_breakeven,
            "measured_winner_throughout": self.measured_winner_throughout, "targets": self.targets.to_json()}
        if self.load_average_end is not None:
            document["load_average_end"] = self.load_average_end
        if self.fit is not None:
            document["fit"] = self.fit
        return document

    @classmethod
    def from_json(cls, document: dict) -> ValidationDocument:
        return ValidationDocument(
            **BreakevenDocument.header(document), rows=[ValidationRow.from_json(row) for row in document["rows"]],
            model=document["model"], hardware_slug=document["hardware_slug"],
            max_positions=document["max_positions"], stochastic=document["stochastic"], seeds=document["seeds"],
            executed_by=document["executed_by"], measurement=document["measured"],
            skipped=[Skipped.from_json(entry) for entry in document["skipped"]],
            interrupted=document["interrupted"], load_average_start=document["load_average_start"],
            load_average_end=document.get("load_average_end"),
            measured_breakeven=document.get("measured_breakeven"),
            measured_winner_throughout=document.get("measured_winner_throughout"),
            targets=Targets.from_json(document["targets"]) if "targets" in document else Targets(),
            fit=document.get("fit"))

    def write(self, path: Path) -> Path:
        """Write the document to ``path`` atomically: a reader never sees half of it."""
        return write_json(path, self.to_json(), indent=1)

    @classmethod
    def read(cls, path: Path) -> ValidationDocument:
        """The validation document in ``path``; a one-line ``UserError`` for anything else."""
        document = read_json(path)
        version = document.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(f"{path}: format version {version} is newer than this profiler reads "
                            f"({FORMAT_VERSION}): update the profiler")
        try:
            return cls.from_json(document)
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: not a validation document (missing or unexpected {err})") from None
