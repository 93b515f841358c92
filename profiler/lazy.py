"""Names a package exports but imports only on first use (PEP 562), so that importing the package
loads none of the heavy modules behind them."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, public: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``public`` maps each exported name to the module
    that defines it."""

    def __getattr__(name: str):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(public[name]), name)

    def __dir__() -> list[str]:
        return sorted({*import_module(package).__dict__, *public})

    return __getattr__, __dir__
