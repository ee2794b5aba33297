"""Deferred imports of heavy libraries, so that the ``wb`` CLI starts fast.

``wb --help`` and ``wb datasets`` must answer in under 0.5 s wall. Importing pyarrow (with
numpy) takes about 0.3 s, duckdb about 0.25 s, torch or transformers seconds; a module that
needs such a library only inside its functions binds it with :func:`lazy` instead of a
top-level ``import``, and the real import happens at the first attribute access. Nothing is
put into ``sys.modules`` before that, so ``"pyarrow" in sys.modules`` stays an honest test of
what a command loaded (tests/app/test_cli_startup.py checks it by name).

A package that re-exports names from heavy submodules uses :func:`lazy_exports` for its
module ``__getattr__`` (PEP 562), so ``from datastore.errors import WorkbenchError`` does not
import duckdb through ``datastore/__init__.py``.

This is the one place the project defers imports; a module that defers one says so by
importing this helper.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


class _LazyModule:
    """Stands for module ``name``; imports it at the first attribute access."""

    __slots__ = ("_lazy_name", "_lazy_module")

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)
        object.__setattr__(self, "_lazy_module", None)

    def _load(self):
        mod = object.__getattribute__(self, "_lazy_module")
        if mod is None:
            mod = importlib.import_module(object.__getattribute__(self, "_lazy_name"))
            object.__setattr__(self, "_lazy_module", mod)
        return mod

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self) -> str:
        name = object.__getattribute__(self, "_lazy_name")
        loaded = object.__getattribute__(self, "_lazy_module") is not None
        return f"<lazy module {name!r}{'' if loaded else ' (not loaded yet)'}>"


def lazy(name: str) -> Any:
    """A stand-in for ``importlib.import_module(name)`` that imports on first use.

    ``pa = lazy("pyarrow")`` at module level, then ``pa.table(...)`` inside functions, as
    with ``import pyarrow as pa``. Raises ``ModuleNotFoundError`` at that first use (not at
    binding time) when the module is missing.
    """
    return _LazyModule(name)


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for ``package``'s ``__init__``: attribute ``n`` is imported
    from submodule ``package + "." + names[n]`` when first asked for (PEP 562).

    Unknown names raise ``AttributeError`` as a plain module would.
    """

    def __getattr__(attr: str) -> Any:
        sub = names.get(attr)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        return getattr(importlib.import_module(f"{package}.{sub}"), attr)

    def __dir__() -> list:
        return sorted(set(names) | set(importlib.import_module(package).__dict__))

    return __getattr__, __dir__
