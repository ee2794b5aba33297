"""Opening a workspace's DuckDB file, with the one-writer rule made explicit.

DuckDB lets one process hold a database file; a second process cannot open it at all,
even read-only, while the first holds it (docs/architecture.md section 2). Our rule: **every
process opens the file briefly, does its work in one transaction and closes it**. The
Streamlit app opens per page render, ``wb`` per command, background jobs only to commit
their results. A process that finds the file held retries with a bounded wait
(``timeout_s``, default 8 s so a command always answers within 10 s) and then raises
:class:`StoreLocked` naming the holder's command line and PID.

The review services open with ``lease=True``: one process-wide connection is kept while
calls keep coming and released after ``LEASE_IDLE_S`` idle seconds, or as soon as another
process signals that it waits (``WAITING_FILE``); see :class:`Store` and docs/review.md
(Decisions) for why and for the limits.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
import time
from pathlib import Path

import duckdb

from .deadline import answer_by, answer_within, process_age_s  # noqa: F401 (re-exported)
from .errors import StoreLocked
from .schema import check_not_newer, ensure_schema, schema_version

DB_NAME = "workbench.duckdb"
DEFAULT_TIMEOUT_S = 8.0
_PID_RE = re.compile(r"PID (\d+)")

#: A leased connection is released after this many idle seconds (docs/review.md, Decisions:
#: well under the 8 s another process waits, so a CLI command or job still gets the file).
LEASE_IDLE_S = 1.0
#: A process waiting for the file touches this file in the workspace; a lease holder that
#: sees it drains its lease at the next chance and pauses ``LEASE_YIELD_S`` before reopening.
WAITING_FILE = ".wb-waiting"
LEASE_YIELD_S = 0.3


class _Lease:
    """One process-wide DuckDB connection to a workspace file, shared by leased stores
    (each gets its own ``cursor()``, so threads never share a connection object)."""

    def __init__(self, path: Path, base, ino: tuple):
        self.path, self.base, self.ino = path, base, ino
        self.users = 0
        self.opened = time.time()
        self.last = time.monotonic()
        self.draining = False
        self.timer: threading.Timer | None = None


_leases: dict[str, _Lease] = {}
_leases_lock = threading.RLock()


def _file_id(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def _close_base(lease: _Lease) -> None:
    if lease.timer is not None:
        lease.timer.cancel()
        lease.timer = None
    with contextlib.suppress(Exception):
        lease.base.close()


def _expire(lease: _Lease) -> None:
    with _leases_lock:
        lease.timer = None
        if lease.users:
            return
        left = LEASE_IDLE_S - (time.monotonic() - lease.last)
        if left > 0.01 and not lease.draining:
            lease.timer = threading.Timer(left, _expire, (lease,))
            lease.timer.daemon = True
            lease.timer.start()
            return
        if _leases.get(str(lease.path)) is lease:
            del _leases[str(lease.path)]
        _close_base(lease)


def release_leases(workspace: str | Path | None = None) -> int:
    """Close idle leased connections now (of ``workspace``, or all); busy ones close when
    their last store closes. Returns how many were closed. Call before replacing or
    deleting a workspace's DuckDB file from a process that used the review services."""
    n = 0
    with _leases_lock:
        for key, lease in list(_leases.items()):
            if workspace is not None and key != str(Path(workspace) / DB_NAME):
                continue
            del _leases[key]
            lease.draining = True
            if not lease.users:
                _close_base(lease)
                n += 1
    return n


def _waiter_since(path: Path, t: float) -> bool:
    try:
        return os.stat(path.parent / WAITING_FILE).st_mtime > t
    except OSError:
        return False


def _after_fork_in_child() -> None:  # a forked child must never use (or close) the parent's connections
    global _leases_lock
    _leases.clear()
    _leases_lock = threading.RLock()


atexit.register(release_leases)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        lease: share one process-wide connection, kept open while calls keep coming and
            released after ``LEASE_IDLE_S`` idle seconds (or sooner when another process
            waits for the file); see :func:`Store._lease_connect`. Used by the review
            services, where a fresh open (70-190 ms: catalog load, WAL replay, checkpoint
            on close) would dominate every call.

    Raises:
        StoreLocked: the file stayed held for ``timeout_s``.
    """

    def __init__(self, workspace: str | Path | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 read_only: bool = False, create: bool = True, lease: bool = False):
        self.workspace = Path(workspace) if workspace else default_workspace()
        self.path = self.workspace / DB_NAME
        if create:
            self.workspace.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            from .errors import NotFound
            raise NotFound(f"no workspace at {self.workspace} (run 'wb init' first)")
        self.read_only, self.timeout_s = read_only, timeout_s
        self.migrated_from: list[int] = []
        self._lease: _Lease | None = None
        if lease and self._lease_connect():
            return
        self._drop_idle_lease()
        if self._lease is not None:
            return
        self._connect()
        try:
            if not read_only:
                self.migrated_from = ensure_schema(self.conn, str(self.path))
            else:  # no writes: still refuse a file from a newer release with the clear message
                check_not_newer(schema_version(self.conn), str(self.path))
        except BaseException:
            self.close()
            raise

    def _drop_idle_lease(self) -> None:
        """A plain store behaves as before leases existed: an idle lease of this file is
        closed first, so this store's close really releases the file; a busy one (another
        thread inside a review call) is shared through a cursor (DuckDB refuses a second
        instance with another configuration in one process)."""
        with _leases_lock:
            lease = _leases.get(str(self.path))
            if lease is None:
                return
            if lease.users == 0:
                del _leases[str(self.path)]
                _close_base(lease)
            elif self.read_only:
                lease.users += 1
                self._lease = lease
                self.conn = lease.base.cursor()

    def _lease_connect(self) -> bool:
        """Open through the process-wide lease; False when this store must open plainly
        (read-only without a lease: it must not pin a read-only instance)."""
        key = str(self.path)
        with _leases_lock:
            lease = _leases.get(key)
            if lease is not None and (lease.draining or _file_id(self.path) != lease.ino
                                      or _waiter_since(self.path, lease.opened)):
                # the file was replaced, or another process waits: drain this lease
                del _leases[key]
                lease.draining = True
                if not lease.users:
                    _close_base(lease)
                    if _waiter_since(self.path, lease.opened):
                        time.sleep(LEASE_YIELD_S)  # let the waiting process take the file
                lease = None
            if lease is None:
                if self.read_only:
                    return False
                if not self.path.exists() and not self.workspace.exists():
                    return False
                self._connect()
                try:
                    self.migrated_from = ensure_schema(self.conn, str(self.path))
                except BaseException:
                    self.close()
                    raise
                lease = _Lease(self.path, self.conn, _file_id(self.path))
                _leases[key] = lease
            if lease.timer is not None:
                lease.timer.cancel()
                lease.timer = None
            lease.users += 1
            self._lease = lease
        self.conn = lease.base.cursor()
        self.conn.execute("SET enable_progress_bar = false")
        return True

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        if answer_by() is not None:
            deadline = min(deadline, max(answer_by(), time.monotonic() + 0.2))
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
                with contextlib.suppress(OSError):  # ask a lease holder to let go
                    (self.workspace / WAITING_FILE).touch()
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)
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
        with _leases_lock:  # a lease on the old file must not be reused
            lease = _leases.pop(str(self.path), None)
            if lease is not None:
                lease.draining = True
                if not lease.users:
                    _close_base(lease)
        self._connect()

    # context management -------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        lease, self._lease = getattr(self, "_lease", None), None
        if lease is None:
            return
        with _leases_lock:
            lease.users -= 1
            lease.last = time.monotonic()
            if lease.users:
                return
            if lease.draining or _leases.get(str(lease.path)) is not lease:
                _close_base(lease)
            elif lease.timer is None:
                lease.timer = threading.Timer(LEASE_IDLE_S, _expire, (lease,))
                lease.timer.daemon = True
                lease.timer.start()

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
