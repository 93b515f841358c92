"""Where a ``--model`` comes from: resolve a name or path to a local folder, never downloading.

Resolution order (the first that matches wins):

1. a folder under ``models/`` -- the working directory's ``models/`` first, then the models
   shipped with the package (``models/`` of the checkout, or the copy inside the wheel);
   names match case-insensitively (``SmolLM2-135M`` finds ``models/smollm2-135m``);
2. a path to a local folder in Hugging Face layout (``config.json``, optional ``*.safetensors``);
3. a hub id already in the local Hugging Face cache (looked up offline).

Anything else is one ``UserError`` line: an empty name or one with control characters (it
would break the one-line message and name a folder), a path to a file, a link to nothing
(broken, or a loop), a folder that cannot be read or has no config.json, an unknown name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from profiler.errors import UserError

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# In a wheel the shipped configs sit inside the package; in a checkout, beside it.
_SHIPPED_DIRS = (_PACKAGE_DIR / "bundled_models", _PACKAGE_DIR.parent / "models")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ModelSource:
    """A model folder found on disk, and how it was found (``models/``, ``local`` or ``hf-cache``)."""

    name: str
    path: Path
    origin: str

    @property
    def safetensors_files(self) -> list[Path]:
        return sorted(self.path.glob("*.safetensors"))

    @property
    def pickle_files(self) -> list[Path]:
        return sorted(p for p in self.path.glob("*") if p.suffix in PICKLE_SUFFIXES)  # glob: no error if unlistable

    @property
    def has_weights(self) -> bool:
        return bool(self.safetensors_files)


def model_dirs() -> list[Path]:
    """The ``models/`` folders searched by name, in order, without duplicates."""
    found: list[Path] = []
    for folder in (Path.cwd() / "models", *_SHIPPED_DIRS):
        if folder.is_dir() and folder.resolve() not in found:
            found.append(folder.resolve())
    return found


def named_models() -> list[ModelSource]:
    """Every model under the ``models/`` folders; a name found twice keeps its first folder."""
    by_name: dict[str, ModelSource] = {}
    for folder in model_dirs():
        for config in sorted(folder.glob("*/config.json")):
            by_name.setdefault(config.parent.name.lower(), ModelSource(config.parent.name, config.parent, "models/"))
    return list(by_name.values())


def _from_hf_cache(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:  # not a hub id (a path, odd characters): so not in the cache either
        return None
    except (OSError, UnicodeDecodeError) as err:  # the cache's own files spoilt (a ref, its snapshots)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UserError(f"--model {repo_id!r}: cannot read the Hugging Face cache ({reason})") from None
    return Path(hit).parent if isinstance(hit, str) else None


def _expand_user(spec: str) -> Path:
    try:
        return Path(spec).expanduser()
    except RuntimeError:  # ~someone who has no home here: taken as written
        return Path(spec)


def _check_readable(spec: str, folder: Path) -> None:
    """A folder that cannot be listed would hide its weights: the model would silently be random."""
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UserError(f"--model {spec!r}: a folder this user may not read")


def _local_folder(spec: str, path: Path) -> ModelSource | None:
    """The model at ``path`` when it is a folder; None when nothing is there."""
    try:
        if path.is_dir():
            _check_readable(spec, path)
            if not (path / "config.json").is_file():
                raise UserError(f"--model {spec!r}: folder has no config.json (expected Hugging Face layout)")
            folder = path.resolve()
            if not folder.name.isprintable() or not folder.name:  # the name becomes a folder of reports/
                raise UserError(f"--model {spec!r}: the folder's name {folder.name!r} cannot name a model")
            return ModelSource(folder.name, folder, "local")
        if path.exists():
            raise UserError(f"--model {spec!r}: a file, not a model folder (give the folder that holds config.json)")
        if path.is_symlink():
            raise UserError(f"--model {spec!r}: a link that leads nowhere (broken, or a loop)")
    except OSError as err:  # a folder above it that may not be entered
        raise UserError(f"--model {spec!r}: cannot look at it ({err.strerror or err})") from None
    return None


def resolve_model(spec: str) -> ModelSource:
    """Find ``spec`` (a name, a folder path or a cached hub id) or raise a one-line UserError."""
    if not spec.strip():
        raise UserError(f"--model {spec!r}: empty (a name under models/, a local folder or a cached hub id)")
    if not spec.isprintable():
        raise UserError(f"--model {spec!r}: control characters in a model name")
    for source in named_models():
        if source.name.lower() == spec.lower():
            _check_readable(spec, source.path)
            return source
    local = _local_folder(spec, _expand_user(spec))
    if local is not None:
        return local
    cached = _from_hf_cache(spec) if "/" in spec else None
    if cached is not None:
        return ModelSource(spec.replace("/", "--"), cached, "hf-cache")
    known = ", ".join(s.name for s in named_models()) or "none"
    raise UserError(
        f"unknown model {spec!r}: not under models/ ({known}), not a local folder with config.json, "
        "and not in the local Hugging Face cache (nothing is downloaded)"
    )
