"""The break-even document, typed: what ``breakeven.sweep`` builds and ``breakeven --json`` prints.

One ``BreakevenDocument`` per exercise: both variants' cost at each value of the varied
parameter (``BreakevenRow``), the break-even along it, and what the prices rest on. A
per-variant value is a ``{variant: value}`` dict over ``VARIANTS``; ``to_json`` flattens it
to the keys README documents (``"optimistic"``, ``"optimized"`` in each row), ``from_json``
reads them back, so ``from_json(d.to_json()) == d``. Costs are in the document's ``unit``
(``s`` for a fitted latency, ``m*token`` for the paper's primitive).

Under a parallel schedule (``profiler.lba.schedule``) the rows stay the paper's sequential
sum, and the document adds ``schedule`` (``{"kind", "max_batch", "devices"}``) and ``prices``:
one document per price (``measure``: ``device_time``, then ``makespan``), each with its rows,
break-even and assumptions, and without ``schedule`` or ``prices`` of its own. With prefix reuse
(sequential only) the rows are priced with it and ``reuse`` records its capacity
(``{"capacity_tokens": N}``, null: unbounded).

Format versions: ``FORMAT_VERSION`` counts changes of what existing keys mean; a document
written before the field existed reads as version 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiler.lba.exercises import VARIANTS

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Spread:
    """A variant's total cost over ``seeds`` seeded runs of its program (``monte_carlo.monte_carlo``):
    the mean and the 5th and 95th percentiles, in the document's unit; or, for a program of too
    many calls to run, only why it was ``skipped``."""

    mean: float | None = None
    p5: float | None = None
    p95: float | None = None
    seeds: int | None = None
    skipped: str | None = None

    def to_json(self) -> dict:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {"mean": self.mean, "p5": self.p5, "p95": self.p95, "seeds": self.seeds}

    @classmethod
    def from_json(cls, spread: dict) -> Spread:
        return cls(**spread)


@dataclass(frozen=True)
class PracticalComparison:
    """At ``params``: the ratio priced by the fit, by the paper's primitive (``paper_ratio``), and
    the paper's order of improvement (``order``, e.g. ``"b*k^2"``) evaluated there (``order_value``)."""

    params: dict[str, float]
    ratio: float
    paper_ratio: float
    order: str
    order_value: float

    def to_json(self) -> dict:
        return {"params": dict(self.params), "ratio": self.ratio, "paper_ratio": self.paper_ratio,
                "order": self.order, "order_value": self.order_value}

    @classmethod
    def from_json(cls, practical: dict) -> PracticalComparison:
        return cls(**practical)


@dataclass(kw_only=True)
class BreakevenRow:
    """Both variants at one ``value`` of the varied parameter.

    - ``cost``: ``{variant: total cost}``; ``ratio`` = optimistic / optimized (above 1: the
      decomposition wins); ``roles``: ``{variant: {role: cost}}``, summing to ``cost``.
    - ``longest_context``: the positions the longest call of either variant needs
      (``profiler.lba.calls.positions_needed``: the tokens it reads plus those it writes, less
      the last one written, which is never fed back).
    - ``extrapolated``: some role's longest call needs more positions than its cost model
      measured; ``beyond_max_positions``: more than its model has (priced as if a model of the
      same cost could make it).
    - ``monte_carlo``: ``{variant: Spread}`` when ``breakeven --monte-carlo`` ran the programs.
    """

    value: float
    cost: dict[str, float]
    ratio: float
    roles: dict[str, dict[str, float]]
    longest_context: int
    extrapolated: bool
    beyond_max_positions: bool
    monte_carlo: dict[str, Spread] | None = None

    def to_json(self) -> dict:
        row = {"value": self.value, **{variant: self.cost[variant] for variant in VARIANTS}, "ratio": self.ratio,
               "roles": {variant: dict(self.roles[variant]) for variant in VARIANTS},
               "longest_context": self.longest_context, "extrapolated": self.extrapolated,
               "beyond_max_positions": self.beyond_max_positions}
        if self.monte_carlo is not None:
            row["monte_carlo"] = {variant: self.monte_carlo[variant].to_json() for variant in VARIANTS}
        return row

    @classmethod
    def from_json(cls, row: dict) -> BreakevenRow:
        spreads = row.get("monte_carlo")
        return BreakevenRow(
            value=row["value"], cost={variant: row[variant] for variant in VARIANTS}, ratio=row["ratio"],
            roles={variant: dict(row["roles"][variant]) for variant in VARIANTS},
            longest_context=row["longest_context"], extrapolated=row["extrapolated"],
            beyond_max_positions=row["beyond_max_positions"],
            monte_carlo=None if spreads is None else {v: Spread.from_json(spreads[v]) for v in VARIANTS})


@dataclass(kw_only=True)
class BreakevenDocument:
    """Both variants of ``exercise`` along ``vary`` (the other parameters ``params``), priced by
    ``pricing`` (its name) in ``unit``.

    ``breakeven`` is the value of ``vary`` where the ratio crosses 1 going up the grid
    (interpolated in log ratio), or None; then ``winner_throughout`` says which variant costs
    less at every value (None when neither does). ``asymptotic`` is the paper's order of
    improvement, ``assumptions`` what the prices rest on beyond the measurements. With a fit and
    every exercise, the command adds ``practical`` (the ratio at the default sizes against the
    paper's) and ``figure`` (the PNG drawn beside the fit).

    Under a parallel schedule: ``schedule`` (its kind, batch limit and devices) and ``prices``, a
    document per price whose ``measure`` says which (``device_time`` or ``makespan``); the rows
    of this one are the sequential sum. ``measure`` is None for a sequential sum. ``reuse``: the prefix
    cache the rows were priced with (``Reuse.to_json``), None without.
    """

    exercise: str
    vary: str
    params: dict[str, float]
    pricing: str
    unit: str
    asymptotic: str
    rows: list[BreakevenRow]
    breakeven: float | None
    winner_throughout: str | None
    assumptions: list[str]
    practical: PracticalComparison | None = None
    figure: str | None = None
    format_version: int = FORMAT_VERSION
    schedule: dict | None = None
    measure: str | None = None
    prices: list[BreakevenDocument] | None = None
    reuse: dict | None = None

    def to_json(self) -> dict:
        document = {"format_version": self.format_version, "exercise": self.exercise, "vary": self.vary,
                    "params": dict(self.params), "pricing": self.pricing, "unit": self.unit,
                    "asymptotic": self.asymptotic, "rows": [row.to_json() for row in self.rows],
                    "breakeven": self.breakeven, "winner_throughout": self.winner_throughout,
                    "assumptions": list(self.assumptions)}
        if self.practical is not None:
            document["practical"] = self.practical.to_json()
        if self.figure is not None:
            document["figure"] = self.figure
        if self.schedule is not None:
            document["schedule"] = dict(self.schedule)
        if self.measure is not None:
            document["measure"] = self.measure
        if self.prices is not None:
            document["prices"] = [price.to_json() for price in self.prices]
        if self.reuse is not None:
            document["reuse"] = dict(self.reuse)
        return document

    @classmethod
    def from_json(cls, document: dict) -> BreakevenDocument:
        return BreakevenDocument(**cls.header(document), rows=[BreakevenRow.from_json(row) for row in document["rows"]])

    @staticmethod
    def header(document: dict) -> dict:
        """Every field of ``document`` but its rows, by name: for this type's reader and one extending it."""
        practical = document.get("practical")
        return {"exercise": document["exercise"], "vary": document["vary"], "params": dict(document["params"]),
                "pricing": document["pricing"], "unit": document["unit"], "asymptotic": document["asymptotic"],
                "breakeven": document["breakeven"], "winner_throughout": document["winner_throughout"],
                "assumptions": list(document["assumptions"]),
                "practical": None if practical is None else PracticalComparison.from_json(practical),
                "figure": document.get("figure"), "format_version": document.get("format_version", 1),
                "schedule": None if document.get("schedule") is None else dict(document["schedule"]),
                "measure": document.get("measure"),
                "prices": None if document.get("prices") is None else
                [BreakevenDocument.from_json(price) for price in document["prices"]],
                "reuse": None if document.get("reuse") is None else dict(document["reuse"])}

    def priced(self, measure: str) -> BreakevenDocument:
        """The document of ``measure`` (``device_time`` or ``makespan``) under a parallel schedule; this one
        (the sequential sum, where both are the same) otherwise."""
        if self.prices is None:
            return self
        (price,) = (price for price in self.prices if price.measure == measure)
        return price

    def values(self) -> list[float]:
        """The grid: each row's value of ``vary``, in order."""
        return [row.value for row in self.rows]
