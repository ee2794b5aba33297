"""The process-wide connection lease of ``Store(..., lease=True)`` (docs/review.md, Decisions):
calls reuse one connection, the file is released after ``LEASE_IDLE_S`` idle seconds, a
process waiting for the file gets it while calls keep coming, and plain stores behave as
before (their close releases the file)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from datastore import Store
from datastore import store as S

REPO = Path(__file__).resolve().parents[2]
OPEN_ONCE = ("import sys, time; sys.path.insert(0, {repo!r}); from datastore import Store; t = time.monotonic(); "
             "s = Store({ws!r}); s.conn.execute('SELECT 1').fetchall(); s.close(); print(round(time.monotonic() - t, 2))")


def _other_process_open(ws: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", OPEN_ONCE.format(repo=str(REPO), ws=str(ws))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_leased_stores_share_one_connection_and_release_it_when_idle(tmp_workspace):
    with Store(tmp_workspace, lease=True) as st:
        st.conn.execute("CREATE TABLE t (x INTEGER)")
        base = S._leases[str(st.path)].base
    with Store(tmp_workspace, lease=True) as st:
        assert S._leases[str(st.path)].base is base      # reused, no second open
        with st.transaction():
            st.conn.execute("INSERT INTO t VALUES (1)")
    deadline = time.monotonic() + S.LEASE_IDLE_S + 5
    while str(tmp_workspace / S.DB_NAME) in S._leases and time.monotonic() < deadline:
        time.sleep(0.1)
    assert str(tmp_workspace / S.DB_NAME) not in S._leases   # released after the idle time
    p = _other_process_open(tmp_workspace)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err


def test_a_plain_store_closes_an_idle_lease_first(tmp_workspace):
    with Store(tmp_workspace, lease=True):
        pass
    assert str(tmp_workspace / S.DB_NAME) in S._leases
    with Store(tmp_workspace) as st:
        st.conn.execute("SELECT 1").fetchall()
    assert str(tmp_workspace / S.DB_NAME) not in S._leases   # its close releases the file as before


def test_a_waiting_process_gets_the_file_while_leased_calls_keep_coming(tmp_workspace):
    with Store(tmp_workspace, lease=True):
        pass
    stop = threading.Event()
    calls = []

    def busy():
        while not stop.is_set():
            with Store(tmp_workspace, lease=True) as st:
                st.conn.execute("SELECT 1").fetchall()
            calls.append(1)
            time.sleep(0.05)   # calls every 50 ms: the lease never goes idle for LEASE_IDLE_S
    t = threading.Thread(target=busy)
    t.start()
    try:
        time.sleep(0.5)
        p = _other_process_open(tmp_workspace)
        out, err = p.communicate(timeout=60)
    finally:
        stop.set()
        t.join()
    assert p.returncode == 0, err            # within the other process's 8 s retry bound
    assert float(out.strip()) < S.DEFAULT_TIMEOUT_S
    assert len(calls) > 5


def test_threads_use_their_own_cursor_of_the_lease(tmp_workspace):
    with Store(tmp_workspace, lease=True) as st:
        st.conn.execute("CREATE TABLE c (k INTEGER PRIMARY KEY)")
    errors = []

    def insert(k):
        try:
            with Store(tmp_workspace, lease=True) as st:
                with st.transaction():
                    st.conn.execute("INSERT INTO c VALUES (?)", [k])
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=insert, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(tmp_workspace) as st:
        assert st.conn.execute("SELECT count(*) FROM c").fetchone()[0] == 20
