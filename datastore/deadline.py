"""When this process must have answered: the bound every lock wait in ``store.py`` obeys.

Kept apart from ``store.py`` (which imports duckdb) so that the ``wb`` CLI sets its bound
before parsing arguments without paying for duckdb on ``wb --help``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

_answer_by: float | None = None  # monotonic time by which a command must have answered


def process_age_s() -> float:
    """Seconds since this process started (from /proc; 0 where unavailable)."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(stat[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def answer_within(seconds: float) -> None:
    """Cap every later lock wait so this process answers within ``seconds`` of its start
    (the ``wb`` CLI uses 8.5 s: a command answers within 10 s, and exiting takes a moment)."""
    global _answer_by
    _answer_by = time.monotonic() + max(0.5, seconds - process_age_s())


def answer_by() -> float | None:
    """The monotonic time set by :func:`answer_within`, or None when no bound was set."""
    return _answer_by
