"""Run one review write as a transaction, retrying DuckDB's optimistic-concurrency conflicts.

Threads of one process share the DuckDB database instance (``duckdb.connect`` on the same
file returns connections to one instance), and DuckDB detects write-write conflicts at
statement or COMMIT time instead of blocking (a ``TransactionException``, or a
``ConstraintException`` when two transactions insert the same key). Such a transaction has
written nothing, so running it again is safe; the caller's function must be a pure
function of what it reads. The result is returned only after COMMIT succeeded: that is the
acknowledgement (durable: DuckDB flushes its WAL at COMMIT).
"""
from __future__ import annotations

import random
import time

import duckdb

from .errors import Conflict
from .store import Store

#: Bound on retries: with 20 writers a submit needed at most a handful in the concurrency test.
MAX_ATTEMPTS = 60


def run_write(workspace, fn, *, attempts: int = MAX_ATTEMPTS, what: str = "write"):
    """``fn(store)`` inside one transaction on a freshly opened store; retried on conflicts.

    Raises:
        Conflict: still conflicting after ``attempts`` tries (the caller may retry later:
            nothing was written). Any other error from ``fn`` is raised as it is.
    """
    delay = 0.002
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with Store(workspace, lease=True) as st:
                with st.transaction():
                    result = fn(st)
                return result
        except (duckdb.TransactionException, duckdb.ConstraintException) as e:
            last = e
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 1.6, 0.2)
    raise Conflict(f"{what} kept conflicting with concurrent writes ({attempts} tries; nothing written): {last}")
