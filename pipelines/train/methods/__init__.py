"""Training methods by name: each module turns a base model into a trainable one.

A method module exposes ``NAME``, ``prepare(model, config) -> model`` (wraps the base
model for training) and ``load(base_model, adapter_dir) -> model`` (reloads a saved run
for inference). New methods are one file plus one line here.
"""
from __future__ import annotations

from types import ModuleType

from datastore.errors import WorkbenchError
from pipelines.train.methods import lora

METHODS: dict[str, ModuleType] = {lora.NAME: lora}


def get_method(name: str) -> ModuleType:
    """The method module registered as ``name``. Raises ``WorkbenchError`` for an unknown name."""
    try:
        return METHODS[name]
    except KeyError:
        raise WorkbenchError(f"unknown training method '{name}' (known: {', '.join(sorted(METHODS))})") from None
