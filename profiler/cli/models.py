"""``python -m profiler models``: what can be profiled offline, with sizes.

Lists the models under the ``models/`` folders and the causal LMs in the local Hugging
Face cache; sizes come from each config, built on the meta device (no memory, no weights).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.measure.catalog import ModelSource, named_models
from profiler.errors import UserError
from profiler.measure.loading import meta_architecture, reads_own_weights


def cached_hub_models() -> list[ModelSource]:
    """Repos in the local Hugging Face cache that have a config.json (offline scan)."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(constants.HF_HUB_CACHE)  # read now, as resolve_model's look-up reads it
    except CacheNotFound:
        return []
    except (ValueError, OSError) as err:  # HF_HUB_CACHE names a file, or a folder that cannot be read
        raise UserError(f"cannot scan the Hugging Face cache ({err})") from None
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        for revision in repo.revisions:
            if any(f.file_name == "config.json" for f in revision.files):
                found.append(ModelSource(repo.repo_id, revision.snapshot_path, "hf-cache"))
                break
    return found


def print_inventory(console: Console) -> None:
    table = Table(title="Models that can be profiled offline", title_justify="left")
    for name in ("model", "type", "params", "non-emb.", "layers", "hidden", "heads q/kv", "max pos.", "weights",
                 "found in"):
        left = name in ("model", "type", "weights", "found in")
        table.add_column(name, justify="left" if left else "right", no_wrap=name != "found in")
    for source in [*named_models(), *cached_hub_models()]:
        try:
            arch = meta_architecture(source)
        except UserError as err:
            table.add_row(source.name, "-", "-", "-", "-", "-", "-", "-", "-", f"{source.origin}: {err}")
            continue
        weights = ("safetensors" if reads_own_weights(source)
                   else "pickle: refused" if source.pickle_files and not source.has_weights else "random")
        table.add_row(
            source.name, arch.model_type, f"{arch.params / 1e6:,.0f}M", f"{arch.non_embedding_params / 1e6:,.0f}M",
            str(arch.layers), str(arch.hidden), f"{arch.heads}/{arch.kv_heads}", str(arch.max_positions),
            weights, source.origin if source.origin != "local" else str(source.path),
        )
    console.print(table)
