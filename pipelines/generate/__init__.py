"""Generation stages: backends (``backends/``) and generators (``self_instruct``, ...).

Importing this package is cheap: its re-exports load ``backends`` (and pydantic) on first use
(:func:`datastore.lazy.lazy_exports`), so ``pipelines.jobs`` can import
``generate.checkpoint`` without them; torch and transformers load only when a backend first
generates.
"""
from __future__ import annotations

from datastore.lazy import lazy_exports

__all__ = ["BACKENDS", "Backend", "GenerationOutput", "SamplingConfig", "get_backend", "list_backends",
           "register_backend"]

__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "backends"))
