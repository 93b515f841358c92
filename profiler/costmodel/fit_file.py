"""The cost-model file other AALP tools load: ``fits/<model>--<hardware-slug>.json`` (and
``--<dtype>`` before ``.json`` for a dtype other than the device's default: ``profiler.files.fit_path``).
``profiler.costmodel.fit_run`` fits a run's samples into one.

``write_fit`` validates a document (``validation_error``: the JSON Schema, ``fits/schema.json``,
then ``profiler.costmodel.fit_checks``) and writes it, keeping an earlier fit it replaces in
``<fits>/previous/``; ``load_cost_model`` reads one back as a ``CostModel`` and refuses, in one
line, a file that does not validate or whose major schema version is newer than this code.

Schema versions are ``MAJOR.MINOR``: a minor version adds fields older readers may
ignore; a major version changes what existing fields mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_checks import fit_problem
from profiler.costmodel.fit_document import FitDocument
from profiler.errors import UserError
from profiler.files import fit_path, keep_previous, read_json, write_json

SCHEMA_VERSION = "1.12"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In a wheel the schema sits inside the package; in a checkout, in fits/ beside it.
_SCHEMA_PATHS = (_PACKAGE_DIR / "fit_schema.json", _PACKAGE_DIR.parent / "fits" / "schema.json")


def schema() -> dict:
    return read_json(next(p for p in _SCHEMA_PATHS if p.is_file()))


def validation_error(document: dict) -> str | None:
    """The first way ``document`` breaks the schema or cannot price (``fit_checks``), in one line; None when valid."""
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(schema()).iter_errors(document)), None)
    if error is None:
        return fit_problem(document)
    where = "/".join(str(part) for part in error.absolute_path) or "top level"
    return f"{where}: {error.message.splitlines()[0][:200]}"


class WrittenFit(NamedTuple):
    """Where ``write_fit`` wrote a fit, and where it kept the earlier fit it replaced (None: there was none,
    or it was the same document)."""

    path: Path
    kept: Path | None


def write_fit(fit: FitDocument, fits_dir: Path) -> WrittenFit:
    """Validate ``fit`` and write it under ``fits_dir`` as ``profiler.files.fit_path`` names it (model, machine,
    dtype); an earlier, different fit there is kept in ``<fits_dir>/previous/`` first
    (``profiler.files.keep_previous``): a new fit never silently replaces one."""
    document = fit.to_json()
    problem = validation_error(document)
    if problem:
        raise ValueError(f"fit document does not match the schema: {problem}")
    path = fit_path(fits_dir, fit.model.name, fit.hardware_slug, fit.model.dtype, fit.hardware.get("device"))
    kept = None
    if path.exists():
        try:
            same = read_json(path) == document
        except UserError:  # unreadable or not JSON: kept all the same
            same = False
        kept = None if same else keep_previous(path)
    return WrittenFit(write_json(path, document), kept)


def load_cost_model(path) -> CostModel:
    """The cost model in ``path``; a one-line UserError if it is invalid or from a newer schema."""
    path = Path(path)
    document = read_json(path)
    version = str(document.get("schema_version", ""))
    major = version.split(".")[0]
    if major.isdigit() and int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise UserError(f"{path}: schema version {version} is newer than this profiler reads "
                        f"({SCHEMA_VERSION}); upgrade aalp-profiler")
    problem = validation_error(document)
    if problem:
        raise UserError(f"{path}: not a valid cost model ({problem})")
    return CostModel(FitDocument.from_json(document))  # nothing left to fail: validation_error checked what it reads
