"""No lost work.

1. 20 annotators (threads through the same service functions as the UI: ``next_item`` then
   ``submit``) submit 500 annotations each, with retries: a retried submit reuses its submit
   id; some answers are "lost" on the way back and the submit is sent again. Afterwards no
   annotation is lost or doubled and every sample has exactly k = 2.
2. A separate process submitting in a loop is killed with SIGKILL; every submit it had
   acknowledged (printed after ``submit`` returned) is in the store afterwards.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from datastore import Sample, Store, WorkbenchError
from datastore import versions as V
from pipelines import auth
from pipelines.review import annotate, tasks

REPO = Path(__file__).resolve().parents[2]
N_ANNOTATORS = 20
PER_ANNOTATOR = 500
K = 2


def _workspace(ws: Path, n_samples: int, annotators: list[str]) -> None:
    auth.add_user(ws, None, "admin", "admin")
    auth.add_user(ws, "admin", "cora", "curator")
    for a in annotators:
        auth.add_user(ws, "admin", a, "annotator")
    rows = [Sample(instruction=f"Q{i}", output=f"A{i}").to_row() for i in range(n_samples)]
    with Store(ws) as st:
        V.commit(st, "big", author="admin", message="load", add=rows, create=True)
    tasks.open_task(ws, "cora", name="load", dataset="big", overlap_k=K, pool=annotators)


def _counts(ws: Path) -> dict:
    from datastore import annotations as A  # noqa: F401 - the SQL lives in datastore
    from datastore import review_tasks as RT
    with Store(ws) as st:
        return RT.task_counts(st.conn, 1)


@pytest.mark.slow
def test_twenty_concurrent_annotators_lose_and_double_nothing(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    names = [f"a{i:02d}" for i in range(N_ANNOTATORS)]
    n_samples = N_ANNOTATORS * PER_ANNOTATOR // K
    _workspace(ws, n_samples, names)
    errors: list[str] = []
    stats = Counter()

    def annotator(name: str, seed: int) -> None:
        rnd = random.Random(seed)
        done = 0
        pos = None
        while done < PER_ANNOTATOR:
            try:
                it = annotate.next_item(ws, name, "load", after_position=pos)
            except WorkbenchError:
                stats["next_retry"] += 1
                continue
            if it is None:
                break
            answers = {"decision": rnd.choice(["accept", "reject"]), "rating": rnd.randint(1, 5)}
            for attempt in range(100):
                try:
                    ack = annotate.submit(ws, name, "load", it.sample.sample_id, answers, submit_id=it.submit_id,
                                          time_spent_ms=rnd.randint(500, 5000))
                    if rnd.random() < 0.1:       # the answer was lost on the way back: send again
                        stats["resent"] += 1
                        again = annotate.submit(ws, name, "load", it.sample.sample_id, answers,
                                                submit_id=it.submit_id)
                        assert again.annotation_id == ack.annotation_id and not again.written
                    break
                except WorkbenchError as e:
                    stats["submit_retry"] += 1
                    if attempt == 99:
                        errors.append(f"{name}: {e}")
            done += 1
            pos = it.position

    threads = [threading.Thread(target=annotator, args=(n, i)) for i, n in enumerate(names)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert errors == []
    c = _counts(ws)
    assert c["annotations"] == N_ANNOTATORS * PER_ANNOTATOR, c
    assert c["assignments"] == {"done": N_ANNOTATORS * PER_ANNOTATOR}
    from datastore import annotations as A
    with Store(ws) as st:
        per_sample = Counter()
        per_pair = Counter()
        for sid in range(1, n_samples + 1, 97):   # spot-check rows in full
            for a in A.for_item(st.conn, 1, sid):
                per_pair[(sid, a["annotator"])] += 1
        assert set(per_pair.values()) == {1}
        # every sample: exactly k current annotations by k distinct annotators (checked in SQL)
        counts = st.conn.execute(
            "SELECT count(*), count(DISTINCT annotator) FROM annotations WHERE task_id = 1 GROUP BY sample_id"
        ).fetchall()
        per_sample.update(counts)
        submits = st.conn.execute("SELECT count(*) FROM review_submits").fetchone()[0]
    assert set(per_sample) == {(K, K)} and sum(per_sample.values()) == n_samples
    assert submits == N_ANNOTATORS * PER_ANNOTATOR
    print(f"\n{N_ANNOTATORS * PER_ANNOTATOR} submits by {N_ANNOTATORS} threads in {elapsed:.1f} s; {dict(stats)}")


CHILD = r"""
import sys
sys.path.insert(0, {repo!r})
from pipelines.review import annotate
ws, who = sys.argv[1], sys.argv[2]
pos = None
while True:
    it = annotate.next_item(ws, who, "load", after_position=pos)
    if it is None:
        break
    ack = annotate.submit(ws, who, "load", it.sample.sample_id, {{"decision": "accept"}}, submit_id=it.submit_id)
    print("ACK", ack.submit_id, ack.annotation_id, flush=True)
    pos = it.position
print("DONE", flush=True)
"""


def test_sigkill_mid_submits_loses_no_acknowledged_annotation(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    _workspace(ws, 400, ["ann", "bob"])
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script), str(ws), "ann"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    acked: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while len(acked) < 25 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("ACK"):
                acked.append(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)       # in the middle of its submits
        rest = proc.stdout.read()               # acks printed before the kill still count
        acked += [ln.split()[1] for ln in rest.splitlines() if ln.startswith("ACK")]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 25 <= len(acked) < 400, "the child must be killed mid-way"
    with Store(ws) as st:   # opening replays DuckDB's write-ahead log
        stored = {r[0] for r in st.conn.execute("SELECT submit_id FROM review_submits").fetchall()}
        n_ann = st.conn.execute("SELECT count(*) FROM annotations").fetchone()[0]
    missing = [s for s in acked if s not in stored]
    assert missing == []
    assert n_ann == len(stored) >= len(acked)   # nothing doubled; at most the in-flight one extra
    assert n_ann <= len(acked) + 1
