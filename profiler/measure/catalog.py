"""Where a ``--model`` comes from: resolve a name or path to a local folder, never downloading.

Resolution order (the first that matches wins):

1. a folder under ``models/`` -- the working directory's ``models/`` first, then the models
   shipped with the package (``models/`` of the checkout, or the copy inside the wheel);
   names match case-insensitively (``SmolLM2-135M`` finds ``models/smollm2-135m``);
2. a path to a local folder in Hugging Face layout (``config.json``, optional ``*.safetensors``);
3. a hub id already in the local Hugging Face cache (looked up offline).
"""

from __future__ import annotations

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
        return sorted(p for p in self.path.iterdir() if p.suffix in PICKLE_SUFFIXES)

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

    hit = try_to_load_from_cache(repo_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def resolve_model(spec: str) -> ModelSource:
    """Find ``spec`` (a name, a folder path or a cached hub id) or raise a one-line UserError."""
    for source in named_models():
        if source.name.lower() == spec.lower():
            return source
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{spec}: folder has no config.json (expected Hugging Face layout)")
        return ModelSource(path.resolve().name, path.resolve(), "local")
    if "/" in spec and not path.exists():
        cached = _from_hf_cache(spec)
        if cached is not None:
            return ModelSource(spec.replace("/", "--"), cached, "hf-cache")
    known = ", ".join(s.name for s in named_models()) or "none"
    raise UserError(
        f"unknown model {spec!r}: not under models/ ({known}), not a local folder with config.json, "
        "and not in the local Hugging Face cache (nothing is downloaded)"
    )
