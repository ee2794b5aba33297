"""Training methods by name: each module turns a base model into a trainable one.

A method module exposes ``NAME``, ``SAVES`` (``"adapter"``: a peft adapter folder, ``"model"``: a
whole model), ``prepare(model, config) -> model`` (wraps the base model for training) and
``load(base_model, saved_dir) -> model`` (reloads a saved run for inference); optionally
``load_base(path, config, device)`` (how to load the base, e.g. 4-bit for QLoRA) and
``check(model_config: dict)`` (refuse an architecture before a run starts). New methods are one
file plus one line here (docs/architecture.md section 9: one method per file, registered by name).
"""
from __future__ import annotations

from types import ModuleType

from datastore.errors import WorkbenchError
from pipelines.train.methods import full, lora, prefix, prompt_tuning, ptuning, qlora

METHODS: dict[str, ModuleType] = {m.NAME: m for m in (lora, qlora, prefix, ptuning, prompt_tuning, full)}


def get_method(name: str) -> ModuleType:
    """The method module registered as ``name``. Raises ``WorkbenchError`` for an unknown name."""
    try:
        return METHODS[name]
    except KeyError:
        raise WorkbenchError(f"unknown training method '{name}' (known: {', '.join(sorted(METHODS))})") from None


def load_base(method: ModuleType, path, config, device: str = "cpu"):
    """The base model as ``method`` trains on it (full precision unless the method says otherwise)."""
    if hasattr(method, "load_base"):
        return method.load_base(path, config, device)
    from pipelines.models import load_model

    m = load_model(path)
    return m.to(device) if device != "cpu" else m
