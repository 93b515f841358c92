"""The fit document, typed: what ``fits/<model>--<hardware-slug>.json`` holds.

``FitDocument`` is the whole file: the schema version, the machine (its slug and
fingerprint), the model (``FittedModel``), where the samples came from, the units, the
fitted curves per phase and metric (``CurveFit``), the derived figures (per-call overhead,
cost per token, linearity horizons), since 1.2 the memory a curve should contain, since 1.5
the batch surfaces of prefill and decode (``SurfaceFit``: latency against the batch and ``n``) and,
since 1.6, the extend surface (``ExtendFit``: latency against the tokens cached and those appended).
``to_json`` and ``from_json`` are its one writer and one reader of JSON; checking a file
against the schema and its version, and the file itself, are ``profiler.costmodel.fit_file``'s.

``from_json`` also reads the partial documents a cost model is made from in code (a family's
model at another size, test fixtures): fields the schema requires of a file but a price does
not need default to ``None`` or empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from profiler.costmodel.extend import ExtendFit
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.surface import SurfaceFit


@dataclass(frozen=True)
class FittedModel:
    """The model a fit is of: its name and numbers (``params`` and ``non_embedding_params`` in
    parameters, ``max_positions`` in tokens, since 1.1), the dtype and attention it ran with, and
    whether its weights were random (cost does not depend on weight values)."""

    name: str
    model_type: str | None = None
    params: int | None = None
    non_embedding_params: float | None = None
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    max_positions: int | None = None
    dtype: str | None = None
    attn_implementation: str | None = None
    random_weights: bool | None = None

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, model: dict) -> FittedModel:
        return cls(**{f.name: model[f.name] for f in fields(cls) if f.name in model})


@dataclass(frozen=True)
class FitDocument:
    """A fitted cost model as written to and read from a fit file (``fits/schema.json``)."""

    model: FittedModel
    curves: dict[str, dict[str, CurveFit]]
    hardware_slug: str = ""
    hardware: dict = field(default_factory=dict)
    schema_version: str | None = None
    source: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    derived: dict = field(default_factory=dict)
    memory: dict | None = None
    surfaces: dict[str, SurfaceFit] = field(default_factory=dict)  # phase -> its batch surface (since 1.5)
    extend: ExtendFit | None = None  # T(c, s) of one pass (since 1.6)

    def to_json(self) -> dict:
        document = {
            "schema_version": self.schema_version, "hardware_slug": self.hardware_slug, "hardware": self.hardware,
            "model": self.model.to_json(), "source": self.source, "units": self.units,
            "curves": {phase: {metric: curve.as_dict() for metric, curve in metrics.items()}
                       for phase, metrics in self.curves.items()},
            "derived": self.derived,
        }
        return document | ({"memory": self.memory} if self.memory is not None else {}) | (
            {"surfaces": {phase: surface.as_dict() for phase, surface in self.surfaces.items()}} if self.surfaces else {}) | (
            {"extend": self.extend.as_dict()} if self.extend is not None else {})

    @classmethod
    def from_json(cls, document: dict) -> FitDocument:
        return cls(
            model=FittedModel.from_json(document["model"]),
            curves={phase: {metric: CurveFit.from_dict(curve) for metric, curve in metrics.items()}
                    for phase, metrics in document["curves"].items()},
            hardware_slug=document.get("hardware_slug", ""), hardware=document.get("hardware", {}),
            schema_version=document.get("schema_version"), source=document.get("source", {}),
            units=document.get("units", {}), derived=document.get("derived", {}), memory=document.get("memory"),
            surfaces={phase: SurfaceFit.from_dict(phase, surface) for phase, surface in document.get("surfaces", {}).items()},
            extend=ExtendFit.from_dict(document["extend"]) if "extend" in document else None,
        )
