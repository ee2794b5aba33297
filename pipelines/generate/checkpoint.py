"""Checkpoints that make generation resumable: one JSON line per finished unit of work.

A generator splits its work into units whose inputs are known before they run (a
Self-Instruct round, a batch of prompts), and after each unit appends one record
``{"stage", "index", ...}`` to ``checkpoint.jsonl`` in the job folder, flushed and fsynced.
On resume it replays the recorded units instead of regenerating them and continues with the
first missing one, so a job killed at any moment neither repeats nor loses a finished unit;
the unit that was running when the process died is generated again (its output was never
recorded). A torn last line (the process died mid-write) is ignored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from datastore.errors import WorkbenchError


class Cancelled(WorkbenchError):
    """The job was asked to stop (its ``cancel`` file exists); raised between units."""


class Checkpoint:
    """Unit records, in memory and (when ``path`` is given) in an append-only JSON Lines file."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self._records: dict[tuple[str, int], dict] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed process
                self._records[(rec["stage"], int(rec["index"]))] = rec

    def get(self, stage: str, index: int) -> dict | None:
        return self._records.get((stage, index))

    def records(self, stage: str | None = None) -> list[dict]:
        """Records of ``stage`` (all stages when None), in index order."""
        return [r for (s, _), r in sorted(self._records.items(), key=lambda kv: (kv[0][0], kv[0][1]))
                if stage is None or s == stage]

    def put(self, stage: str, index: int, record: dict) -> dict:
        rec = {"stage": stage, "index": index, **record}
        self._records[(stage, index)] = rec
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return rec

    def __len__(self) -> int:
        return len(self._records)


def stop_file_checker(path: str | Path | None) -> Callable[[], None]:
    """A ``should_stop`` callable that raises :class:`Cancelled` once ``path`` exists."""
    p = Path(path) if path else None

    def check() -> None:
        if p is not None and p.exists():
            raise Cancelled("cancelled by request")
    return check


def never_stop() -> None:
    return None
