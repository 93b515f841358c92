"""Where files go and how JSON is read and written: the one place for both.

Locations (every one under a root the user chose, ``--out`` or ``--fits``):

- a run's folder: ``<out>/<hardware-slug>/<model>/`` (``run_folder``);
- a fitted cost model: ``<fits>/<model>--<hardware-slug>.json``, or ``<model>--<hardware-slug>--<dtype>.json``
  in a dtype other than the one ``--dtype auto`` picks on its device (``fit_path``; ``fit_pattern`` for
  every fit of one machine and dtype in a folder);
- an earlier fit a new one replaces, kept: ``<fits>/previous/<its name>--<its time>.json`` (``keep_previous``);
- the figure ``breakeven`` draws beside a fit: ``<fit stem>.breakeven-<exercise>.png``.

The names in these paths come from documents a user may have edited (a model's name in ``run.json``, a
slug in ``hardware.json``): each must be one plain file name (``file_name``), or the path is refused
in one line, so nothing is ever written outside ``--out`` and ``--fits``.

A run's folder has one writer at a time: ``hold_run_folder`` locks it (``<folder>/.lock``) for
as long as a run or a validation writes into it and reads its files back.

JSON: ``read_json`` gives a dict or a one-line ``UserError`` (missing, unreadable, not JSON,
not an object); ``write_json`` writes atomically (a temporary file in the same folder, then a
rename), so a reader never sees half a document, and turns an unwritable folder into a
one-line ``UserError``. Non-finite numbers are refused on writing: a document never holds
``NaN`` or ``Infinity``, which standard JSON does not have.

Imports no layer of the package; every layer may import it.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from profiler.errors import UserError

# The dtype ``--dtype auto`` runs in on each device (profiler.measure.devices.resolve_dtype; a test holds
# the two alike). A fit in it is named without its dtype, as every fit was before dtypes were named.
AUTO_DTYPES = {"cpu": "float32", "cuda": "bfloat16"}
# The dtype of a served model (an endpoint run, device ``endpoint``): the server's own, which a client cannot see. Its
# fits are named without it, as there is no other.
SERVED_DTYPE = "served"
_UNNAMED_DTYPES = AUTO_DTYPES | {"endpoint": SERVED_DTYPE}


def file_name(name: str, what: str) -> str:
    """``name`` if it can be one file name as it stands; a one-line ``UserError`` saying why not.

    Refused rather than rewritten: two names made alike would share a file. Refused: empty, ``.`` or
    ``..``, a path separator (``/`` or ``\\``), and control characters. ``what`` says whose name it is."""
    reason = ("it is empty" if not name else
              "it names a folder" if name in (".", "..") else
              "it holds a path separator" if "/" in name or "\\" in name else
              "it holds control characters" if not name.isprintable() else None)
    if reason:
        raise UserError(f"{what} {name!r} cannot name a file: {reason}")
    return name


def run_folder(out: Path, hardware_slug: str, model: str) -> Path:
    """The folder of a run of ``model`` on the machine ``hardware_slug`` under ``out``."""
    return Path(out) / file_name(hardware_slug, "hardware slug") / file_name(model, "model name")


def _fit_stem(model: str, hardware_slug: str, dtype: str | None, device: str | None) -> str:
    stem = f"{file_name(model, 'model name')}--{file_name(hardware_slug, 'hardware slug')}"
    if dtype is None or dtype == _UNNAMED_DTYPES.get(device):
        return stem
    return f"{stem}--{file_name(dtype, 'dtype')}"


def fit_path(fits: Path, model: str, hardware_slug: str, dtype: str | None = None, device: str | None = None) -> Path:
    """The fitted cost model of ``model`` on ``hardware_slug`` in ``dtype`` on ``device`` (``cpu``, ``cuda``)
    under ``fits``; ``dtype`` None: the device's ``auto`` dtype (``validate`` runs in no other)."""
    return Path(fits) / f"{_fit_stem(model, hardware_slug, dtype, device)}.json"


def fit_pattern(hardware_slug: str, dtype: str | None, device: str | None) -> str:
    """A glob of the names of every model's fit on ``hardware_slug`` in ``dtype`` on ``device`` (as ``fit_path``)."""
    return f"*--{glob.escape(_fit_stem('*', hardware_slug, dtype, device).removeprefix('*--'))}.json"


def keep_previous(path: Path) -> Path | None:
    """Copy the file at ``path``, if there is one, to ``previous/<its stem>--<its time>.json`` beside it,
    before something replaces it: the earlier one is never lost. The copy's path, or None."""
    path = Path(path)
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    stamp = datetime.fromtimestamp(modified).strftime("%Y%m%dT%H%M%S.%f")  # as runs name previous/<time>/
    kept = path.parent / "previous" / f"{path.stem}--{stamp}{path.suffix}"
    try:
        kept.parent.mkdir(exist_ok=True)
        shutil.copy2(path, kept)  # a copy: the file stays in place, whole, until its replacement is
    except OSError as err:
        raise UserError(f"cannot keep the earlier {path} in {kept.parent}: {err.strerror or err}") from None
    return kept


LOCK_FILE = ".lock"
_HELD: set[Path] = set()  # the run folders this process holds (resolved)
# A holder writes its pid just after it takes the lock: a run refused in between reads the file again, this many
# times this far apart (under 0.1 s in all, only when refused), before it names the holder "unknown"
HOLDER_READS, HOLDER_READ_WAIT_S = 20, 0.005


def _holder(descriptor: int) -> str:
    """The pid the lock file ``descriptor`` names (see ``HOLDER_READS``), or "unknown"."""
    for read in range(HOLDER_READS):
        if read:
            time.sleep(HOLDER_READ_WAIT_S)
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        if holder:
            return holder
    return "unknown"


@contextmanager
def hold_run_folder(folder: Path) -> Iterator[Path]:
    """Hold the run folder ``folder`` (made if missing) for the block: no other process writes into it meanwhile.

    An exclusive ``flock`` on ``<folder>/.lock``, which names the holder's pid while held. The kernel
    releases it when the process ends, however it ends (SIGKILL included), so a lock is never stale;
    the file stays behind, empty. Another process holding the folder: a one-line ``UserError`` naming
    it at once (within 0.1 s, where it has not yet written its pid: ``HOLDER_READS``), not a wait (a
    waiting run would look hung, then move the other's results aside the moment they were written).
    Re-entrant within one process: ``validate`` holds its folder while the run it may start for a
    missing fit takes it again.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
        descriptor = None if key in _HELD else os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"cannot write to {folder}: {err.strerror or err}") from None
    if descriptor is None:  # this process holds it already
        yield folder
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(descriptor) if isinstance(err, BlockingIOError) else None
        os.close(descriptor)
        if holder is not None:
            raise UserError(f"{folder} is being written by another run (pid {holder}); wait for it or use "
                            "another --out") from None
        raise UserError(f"cannot lock {folder}: {err.strerror or err}") from None
    try:
        pid = f"{os.getpid()}\n".encode()
        os.pwrite(descriptor, pid, 0)
        os.ftruncate(descriptor, len(pid))  # written, then cut: never empty while held, once first written
        _HELD.add(key)
        yield folder
    finally:
        _HELD.discard(key)
        os.ftruncate(descriptor, 0)  # a pid left behind would name a process that no longer holds it
        os.close(descriptor)  # releases the lock


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
    except (OSError, ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError; nesting too deep
        raise UserError(f"{path}: not readable as JSON ({(str(err) or type(err).__name__).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: not a JSON object")
    return document


def write_json(path: Path, document: dict, indent: int = 2) -> Path:
    """Write ``document`` to ``path`` atomically (creating its folder); a one-line ``UserError`` if it cannot."""
    return write_text(path, json.dumps(document, indent=indent, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename; its folder created); a
    one-line ``UserError`` if it cannot."""
    path = Path(path)
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
