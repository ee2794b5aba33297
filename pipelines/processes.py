"""Background processes: one way to start a stage detached and reap it.

The app (a long-lived Streamlit server) and ``wb`` start generation jobs, training runs and
DPO runs as ``python -m <module> <folder>`` in their own session, so closing a browser tab or
a terminal does not kill them. A child that exits stays a zombie until its parent waits on
it; the Streamlit server never would, so every child gets a daemon thread that waits on it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def spawn_module(module: str, args: list[str], *, log_path: Path, cwd: str | Path) -> subprocess.Popen:
    """Start ``python -m module *args`` detached (new session, stdin closed, stdout and stderr
    appended to ``log_path``), with the repository first on ``PYTHONPATH``; returns the
    ``Popen``. Its exit status is collected by a daemon thread, so it leaves no zombie.
    Raises OSError when the log cannot be opened or the interpreter cannot start."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if x)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(cwd), env=env)
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc
