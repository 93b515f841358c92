"""Where files go and how JSON is read and written: the one place for both.

Locations (every one under a root the user chose, ``--out`` or ``--fits``):

- a run's folder: ``<out>/<hardware-slug>/<model>/`` (``run_folder``);
- a fitted cost model: ``<fits>/<model>--<hardware-slug>.json`` (``fit_path``);
- the figure ``breakeven`` draws beside a fit: ``<fit stem>.breakeven-<exercise>.png``.

JSON: ``read_json`` gives a dict or a one-line ``UserError`` (missing, unreadable, not JSON,
not an object); ``write_json`` writes atomically (a temporary file in the same folder, then a
rename), so a reader never sees half a document, and turns an unwritable folder into a
one-line ``UserError``. Non-finite numbers are refused on writing: a document never holds
``NaN`` or ``Infinity``, which standard JSON does not have.

Imports no layer of the package; every layer may import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from profiler.errors import UserError


def run_folder(out: Path, hardware_slug: str, model: str) -> Path:
    """The folder of a run of ``model`` on the machine ``hardware_slug`` under ``out``."""
    return Path(out) / hardware_slug / model


def fit_path(fits: Path, model: str, hardware_slug: str) -> Path:
    """The fitted cost model of ``model`` on ``hardware_slug`` under ``fits``."""
    return Path(fits) / f"{model}--{hardware_slug}.json"


def breakeven_figure_path(fit: Path, exercise: str) -> Path:
    """The break-even figure of ``exercise`` drawn beside the fit file ``fit``."""
    fit = Path(fit)
    return fit.with_name(f"{fit.stem}.breakeven-{exercise}.png")


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; a one-line ``UserError`` for anything else."""
    path = Path(path)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a JSON file") from None
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise UserError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: not a JSON object")
    return document


def write_json(path: Path, document: dict, indent: int = 2) -> Path:
    """Write ``document`` to ``path`` atomically (creating its folder); a one-line ``UserError`` if it cannot."""
    path = Path(path)
    text = json.dumps(document, indent=indent, allow_nan=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    return path
