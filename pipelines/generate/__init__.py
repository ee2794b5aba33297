"""Generation stages: backends (``backends/``) and generators (``self_instruct``, ...).

Importing this package is cheap: torch and transformers load only when a backend first
generates.
"""
from __future__ import annotations

from .backends import (BACKENDS, Backend, GenerationOutput, SamplingConfig, get_backend, list_backends,
                       register_backend)

__all__ = ["BACKENDS", "Backend", "GenerationOutput", "SamplingConfig", "get_backend", "list_backends",
           "register_backend"]
