"""Opening a workspace's DuckDB file, with the one-writer rule made explicit.

DuckDB lets one process hold a database file; a second process cannot open it at all,
even read-only, while the first holds it (ARCHITECTURE.md section 2). Our rule: **every
process opens the file briefly, does its work in one transaction and closes it**. The
Streamlit app opens per page render, ``wb`` per command, background jobs only to commit
their results. A process that finds the file held retries with a bounded wait
(``timeout_s``, default 8 s so a command always answers within 10 s) and then raises
:class:`StoreLocked` naming the holder's command line and PID.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import duckdb

from .errors import StoreLocked
from .schema import check_not_newer, ensure_schema, schema_version

DB_NAME = "workbench.duckdb"
DEFAULT_TIMEOUT_S = 8.0
_PID_RE = re.compile(r"PID (\d+)")
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
    (the ``wb`` CLI uses 8.5 s: issue 2 asks for an answer within 10 s, and exiting takes a moment)."""
    global _answer_by
    _answer_by = time.monotonic() + max(0.5, seconds - process_age_s())


def default_workspace() -> Path:
    """``$WB_WORKSPACE`` if set, else ``./workspace``."""
    return Path(os.environ.get("WB_WORKSPACE", "workspace"))


def _describe_pid(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = "unknown process"
    return f"'{cmd[:160]}' (PID {pid})"


def holder_from_error(msg: str) -> str:
    """Turn DuckDB's lock error text into 'command line (PID n)'."""
    m = _PID_RE.search(msg)
    return _describe_pid(int(m.group(1))) if m else "another process"


class Store:
    """A workspace: a folder with one DuckDB file plus job and run folders.

    Use as a context manager; the connection is closed on exit. ``Store.open`` creates
    the folder and schema when missing.

    Args:
        workspace: the workspace folder.
        timeout_s: how long to retry while another process holds the file.
        read_only: open without write intent (DuckDB still takes the file lock).

    Raises:
        StoreLocked: the file stayed held for ``timeout_s``.
    """

    def __init__(self, workspace: str | Path | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 read_only: bool = False, create: bool = True):
        self.workspace = Path(workspace) if workspace else default_workspace()
        self.path = self.workspace / DB_NAME
        if create:
            self.workspace.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            from .errors import NotFound
            raise NotFound(f"no workspace at {self.workspace} (run 'wb init' first)")
        self.read_only, self.timeout_s = read_only, timeout_s
        self.migrated_from: list[int] = []
        self._connect()
        try:
            if not read_only:
                self.migrated_from = ensure_schema(self.conn, str(self.path))
            else:  # no writes: still refuse a file from a newer release with the clear message
                check_not_newer(schema_version(self.conn), str(self.path))
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        if _answer_by is not None:
            deadline = min(deadline, max(_answer_by, time.monotonic() + 0.2))
        delay = 0.05
        start = time.monotonic()
        while True:
            try:
                self.conn = duckdb.connect(str(self.path), read_only=self.read_only and self.path.exists())
                break
            except duckdb.IOException as e:  # lock held by another process
                msg = str(e)
                if "lock" not in msg.lower():
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLocked(str(self.path), holder_from_error(msg),
                                      time.monotonic() - start) from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        self.conn.execute("SET preserve_insertion_order = false")
        self.conn.execute("SET enable_progress_bar = false")

    def rewrite_file(self) -> None:
        """Rewrite the DuckDB file from its live data and swap it in, so that nothing
        deleted leaves bytes behind.

        Why: DuckDB's DELETE, CHECKPOINT and VACUUM mark blocks free but do not overwrite
        them (checked with DuckDB 2.0.1: a deleted string stays readable in the file), so a
        purge needs a fresh file. ``COPY FROM DATABASE`` copies tables, constraints and
        sequences (with their current values). The new file replaces the old path while we
        still hold the old one's lock, so no other process can open the old file in
        between; it then reopens the path (retrying like :meth:`__init__`).

        Raises:
            WorkbenchError: a read-only store.
        """
        from .errors import WorkbenchError
        if self.read_only:
            raise WorkbenchError("cannot rewrite a store opened read-only")
        tmp = self.path.with_name(self.path.name + ".rewrite")
        for p in (tmp, tmp.with_name(tmp.name + ".wal")):
            p.unlink(missing_ok=True)
        self.conn.execute("CHECKPOINT")
        db = self.conn.execute("SELECT current_database()").fetchone()[0]
        self.conn.execute(f"ATTACH '{tmp.as_posix()}' AS _wb_rewrite")
        try:
            self.conn.execute(f'COPY FROM DATABASE "{db}" TO _wb_rewrite')
        finally:
            self.conn.execute("DETACH _wb_rewrite")
        os.replace(tmp, self.path)
        self.close()
        self._connect()

    # context management -------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    @contextlib.contextmanager
    def transaction(self):
        """One DuckDB transaction: commit on success, roll back on any exception."""
        self.conn.execute("BEGIN TRANSACTION")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # folders ------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write everything to the main file (the WAL is folded in and emptied)."""
        self.conn.execute("CHECKPOINT")

    def subdir(self, name: str) -> Path:
        d = self.workspace / name
        d.mkdir(parents=True, exist_ok=True)
        return d


def register(conn, name: str, obj) -> None:
    """``conn.register`` that first completes any result left open by a ``fetchone``.

    DuckDB 2.0 refuses ``register`` while a previous ``execute`` result is unfinished;
    running (and fully fetching) a trivial statement closes it.
    """
    conn.execute("SELECT 1").fetchall()
    conn.register(name, obj)
