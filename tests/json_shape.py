"""The shape of a JSON document, for tests that hold a document's keys to those of a fixture."""

from __future__ import annotations


def key_paths(document, at: str = "") -> set[str]:
    """Every key of a JSON document as a path, list items collapsed to ``[]``."""
    if isinstance(document, dict):
        return {path for key, value in document.items() for path in {f"{at}/{key}"} | key_paths(value, f"{at}/{key}")}
    if isinstance(document, list):
        return {path for item in document for path in key_paths(item, f"{at}[]")}
    return set()
