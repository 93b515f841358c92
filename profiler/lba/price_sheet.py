"""Price sheets: a provider's published per-million-token prices, with where and when they were read.

A price sheet is a JSON file (``models/price-sheets/`` holds published ones)::

    {"format_version": 1,
     "source": "https://...",        the page the prices were read from (http or https)
     "read_on": "YYYY-MM-DD",        the day they were read there (not after today)
     "currency": "USD",              the only currency priced
     "note": "...",                  optional: how the date was found, what the sheet leaves out
     "models": {NAME: {"input_usd_per_mtok": 3.0,           USD per million (MTok) input tokens
                       "cached_input_usd_per_mtok": 0.3,    optional: input tokens read from the
                                                            provider's prompt cache; absent, the
                                                            input price (said where it is used)
                       "output_usd_per_mtok": 15.0}}}       USD per million output tokens

``read_price_sheet`` is the one check: anything else -- an unreadable or oversized file, not JSON
(or JSON with ``NaN``, ``Infinity`` or a key twice), an unknown or missing key, a price that is no
finite number of at least 0, a bad or future date, a source that is no web address, no models, a
model name that is not printable -- is a one-line ``UserError``. The file is read as text and parsed
as JSON only (never unpickled), at most ``MAX_SHEET_BYTES`` of it, at most ``MAX_MODELS`` models.

``ModelPrices.call_usd`` is what a call costs at a model's prices: its uncached input tokens at the
input price, its cached ones at the cached-input price and its output tokens at the output price,
over a million. Nothing else a provider may bill is priced (a prompt-cache write premium, per-request
fees, long-context tiers, batch discounts): a sheet has no field for them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from profiler.errors import UserError

FORMAT_VERSION = 1
MAX_SHEET_BYTES = 1 << 20  # a sheet of a thousand models is some 100 KB
MAX_MODELS = 1_000
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 2_000  # the source address and the note
TOKENS_PER_MILLION = 1e6
CURRENCY = "USD"
_TOP_KEYS = {"format_version", "source", "read_on", "currency", "note", "models"}
_REQUIRED = ("format_version", "source", "read_on", "currency", "models")
_PRICE_KEYS = ("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ModelPrices:
    """One model's prices, USD per million tokens; ``cached_input_given``: whether the sheet gave the
    cached-input price (when it did not, it is the input price)."""

    name: str
    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    output_usd_per_mtok: float
    cached_input_given: bool

    def call_usd(self, n_in, n_out, cached=0):
        """USD of a call reading ``n_in`` tokens, the first ``cached`` of them from the provider's cache, and
        writing ``n_out``: ``((n_in - cached) * input + cached * cached input + n_out * output) / 1e6``; arrays
        broadcast."""
        n_in, n_out, cached = (np.asarray(x, dtype=float) for x in (n_in, n_out, cached))
        return ((n_in - cached) * self.input_usd_per_mtok + cached * self.cached_input_usd_per_mtok
                + n_out * self.output_usd_per_mtok) / TOKENS_PER_MILLION


@dataclass(frozen=True)
class PriceSheet:
    """A read price sheet: ``source`` (a web address), ``read_on``, ``note`` and the ``models`` by name."""

    source: str
    read_on: date
    note: str | None
    models: dict[str, ModelPrices]

    @property
    def host(self) -> str:
        """The source's host name, for a table's title."""
        return urlsplit(self.source).hostname or self.source

    def model(self, name: str, option: str) -> ModelPrices:
        """The prices of ``name``; a one-line UserError naming ``option`` and the sheet's models otherwise."""
        try:
            return self.models[name]
        except KeyError:
            names = ", ".join(list(self.models)[:20]) + (", ..." if len(self.models) > 20 else "")
            raise UserError(f"{option}: no model {_shown(name)} in the price sheet (it has {names})") from None


def _shown(text: str) -> str:
    """A name from a file, quoted and cut short for a one-line message."""
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _value(value) -> str:
    """A value from a file as JSON would show it, cut short for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _no_duplicates(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"the key {_shown(key)} is given twice")
    return dict(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is no number a price sheet may hold")


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SHEET_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a price sheet") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror or err})") from None
    if len(data) > MAX_SHEET_BYTES:
        raise UserError(f"{path}: more than {MAX_SHEET_BYTES:,} bytes, too large for a price sheet")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text, so no price sheet") from None


def read_price_sheet(path: Path) -> PriceSheet:
    """The price sheet in ``path`` (see the module doc); a one-line ``UserError`` for anything else."""
    path = Path(path)
    try:
        document = json.loads(_read_text(path), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; nesting too deep
        raise UserError(f"{path}: not a price sheet's JSON ({(str(err) or type(err).__name__).splitlines()[0]})") \
            from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: not a JSON object, so no price sheet")
    problem = _sheet_problem(document)
    if problem:
        raise UserError(f"{path}: {problem}")
    return PriceSheet(source=document["source"], read_on=date.fromisoformat(document["read_on"]),
                      note=document.get("note"),
                      models={name: _prices(name, entry) for name, entry in document["models"].items()})


def _prices(name: str, entry: dict) -> ModelPrices:
    given = "cached_input_usd_per_mtok" in entry
    return ModelPrices(name=name, input_usd_per_mtok=float(entry["input_usd_per_mtok"]),
                       cached_input_usd_per_mtok=float(entry["cached_input_usd_per_mtok" if given
                                                             else "input_usd_per_mtok"]),
                       output_usd_per_mtok=float(entry["output_usd_per_mtok"]), cached_input_given=given)


def _sheet_problem(document: dict) -> str | None:
    """What makes ``document`` no price sheet, in words; None when it is one."""
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        return f"unknown key {_shown(unknown[0])} (a price sheet has {', '.join(sorted(_TOP_KEYS))})"
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        return f"no {missing[0]!r}"
    if document["format_version"] != FORMAT_VERSION or isinstance(document["format_version"], bool):
        return f"format_version {_value(document['format_version'])}: this code reads version {FORMAT_VERSION}"
    if document["currency"] != CURRENCY:
        return f"currency {_shown(str(document['currency']))}: prices are read in {CURRENCY} only"
    return (_source_problem(document["source"]) or _date_problem(document["read_on"])
            or _note_problem(document.get("note")) or _models_problem(document["models"]))


def _source_problem(source) -> str | None:
    if not isinstance(source, str) or not source or len(source) > MAX_TEXT_CHARS or not source.isprintable() \
            or any(c.isspace() for c in source):
        return f"source: expected the web address the prices were read from, at most {MAX_TEXT_CHARS:,} characters"
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"source {_shown(source)}: expected an http or https address"
    return None


def _date_problem(read_on) -> str | None:
    expected = "read_on: expected the day the prices were read, YYYY-MM-DD"
    if not isinstance(read_on, str) or not _DATE.fullmatch(read_on):
        return expected
    try:
        day = date.fromisoformat(read_on)
    except ValueError:
        return f"read_on {read_on}: no such day"
    if day > date.today():
        return f"read_on {read_on}: after today"
    return None


def _note_problem(note) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > MAX_TEXT_CHARS or not note.isprintable():
        return f"note: expected printable text of at most {MAX_TEXT_CHARS:,} characters"
    return None


def _models_problem(models) -> str | None:
    if not isinstance(models, dict) or not models:
        return "models: expected an object of at least one model's prices"
    if len(models) > MAX_MODELS:
        return f"models: {len(models):,} of them, more than the limit of {MAX_MODELS:,}"
    for name, entry in models.items():
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or name.strip() != name:
            return (f"model name {_shown(name)}: expected printable text of 1 to {MAX_NAME_CHARS} characters, "
                    "no spaces at its ends")
        problem = _entry_problem(entry)
        if problem:
            return f"model {_shown(name)}: {problem}"
    return None


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, dict):
        return f"expected an object of {', '.join(_PRICE_KEYS)}"
    unknown = sorted(set(entry) - set(_PRICE_KEYS))
    if unknown:
        return f"unknown key {_shown(unknown[0])} (a model has {', '.join(_PRICE_KEYS)})"
    for key in _PRICE_KEYS:
        if key not in entry:
            if key == "cached_input_usd_per_mtok":
                continue
            return f"no {key!r}"
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return f"{key} {_value(value)}: expected a finite number of US dollars, at least 0"
    return None
