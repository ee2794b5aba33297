"""Detached stages leave no zombie behind a long-lived parent (the Streamlit server)."""
from __future__ import annotations

import time
from pathlib import Path

from pipelines.processes import spawn_module


def _state(pid: int) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
    except FileNotFoundError:
        return None
    return None


def test_a_finished_child_is_reaped_and_its_output_logged(tmp_path):
    proc = spawn_module("platform", [], log_path=tmp_path / "out.log", cwd=tmp_path)
    deadline = time.monotonic() + 30
    while _state(proc.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(proc.pid) is None          # gone from the process table: not a zombie ("Z")
    assert proc.returncode == 0
    assert "Linux" in (tmp_path / "out.log").read_text()
