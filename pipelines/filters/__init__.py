"""Filters: per-sample or per-turn checks that flag or drop samples (one filter per file).

* :mod:`pipelines.filters.override_detector`: user turns that try to override the system
  prompt (prompt injection / jailbreak phrasing), a documented rule-based detector.
"""
from __future__ import annotations

__all__: list[str] = []
