"""Backup and restore: a workspace with datasets, annotations, an adjudication and a run
folder round-trips (every table's rows, sequences, files); a backup taken while another
process holds the store waits its turn; the backup needs the admin role."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from datastore import PermissionDenied, Sample, Store, WorkbenchError
from datastore import audit
from datastore import governance as G
from datastore import versions as V
from pipelines import catalog
from pipelines.curate import backup as B


def _workspace(ws):
    with Store(ws) as st:
        V.commit(st, "d", author="a", message="m", create=True,
                 add=[Sample(instruction=f"q{i}", output=f"a{i}", license="mit").to_row() for i in range(5)])
        c = st.conn
        c.execute("INSERT INTO review_tasks (task_id, name, dataset_id, version_number, version_id, overlap_k, pool, "
                  "questions) VALUES (nextval('review_task_ids'), 't', 1, 1, 'x', 2, ['ann1','ann2'], '[]')")
        for who in ("ann1", "ann2"):
            c.execute("INSERT INTO annotations (annotation_id, task_id, sample_id, annotator, round, decision, answers, "
                      "created_at, updated_at) VALUES (nextval('annotation_ids'), 1, 2, ?, 0, 'accept', '{}', now(), now())",
                      [who])
        c.execute("INSERT INTO review_adjudications (adjudication_id, task_id, sample_id, round, adjudicator, decision, "
                  "created_at) VALUES (nextval('adjudication_ids'), 1, 3, 0, 'adj', 'reject', now())")
    run = ws / "runs" / "run-1"
    (run / "adapter").mkdir(parents=True)
    (run / "run_card.json").write_text(json.dumps({"run_id": "run-1"}))
    (run / "adapter" / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 40)
    return ws


def test_backup_restore_round_trip(tmp_path):
    ws = _workspace(tmp_path / "ws")
    with Store(ws) as st:
        before = G.table_counts(st.conn)
        head = V.resolve(st, "d")
    m = B.backup(ws, tmp_path / "bk", user="local-admin")
    assert m["tables"]["annotations"] == 2 and m["tables"]["review_adjudications"] == 1
    assert {f["path"] for f in m["files"]} == {"runs/run-1/run_card.json", "runs/run-1/adapter/adapter_model.safetensors"}
    r = B.restore(tmp_path / "bk", tmp_path / "ws2", user=None)
    with Store(tmp_path / "ws2") as st:
        after = G.table_counts(st.conn)
        assert V.resolve(st, "d").content_hash == head.content_hash
        # sequences continue: a new annotation gets the next id, not a duplicate
        nxt = st.conn.execute("SELECT nextval('annotation_ids')").fetchone()[0]
        assert nxt == 3
        outcomes = G.annotation_outcomes(st, V.resolve(st, "d"))
    assert outcomes == {2: "accept", 3: "reject"}
    before["backups"] = after["backups"]  # the backup row is written before the copy
    assert after == {**before, "audit_log": before["audit_log"] + 1}
    assert (tmp_path / "ws2" / "runs" / "run-1" / "adapter" / "adapter_model.safetensors").read_bytes() == \
        bytes(range(256)) * 40
    assert r["migrated_from"] == [] and r["files"] == 2
    with pytest.raises(WorkbenchError, match="already holds a workspace"):
        B.restore(tmp_path / "bk", tmp_path / "ws2", user=None)
    r = B.restore(tmp_path / "bk", tmp_path / "ws2", user=None, force=True)
    assert r["previous"] and (tmp_path / "ws2" / r["previous"].rsplit("/", 1)[1]).exists()


def test_filter_by_annotation_outcome(tmp_path):
    from pipelines.curate import filter as F
    ws = _workspace(tmp_path / "ws")
    assert F.plan_filter(ws, "d", user="local-admin", outcome=["accept"]).counts["kept"] == 1
    v = F.filter_version(ws, "d", user="local-admin", where="outcome IS NULL OR outcome <> 'reject'")
    assert v.n_samples == 4 and "outcome" in v.message


def test_backup_waits_for_a_holder_and_refuses_bad_targets(tmp_path):
    ws = _workspace(tmp_path / "ws")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, duckdb; c = duckdb.connect(%r); print('held', flush=True); time.sleep(2); c.close()"
        % str(ws / "workbench.duckdb"))], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    m = B.backup(ws, tmp_path / "bk", user="local-admin")
    holder.wait()
    assert time.monotonic() - t0 >= 1.0 and m["tables"]["samples"] == 5
    with pytest.raises(WorkbenchError, match="not empty"):
        B.backup(ws, tmp_path / "bk", user="local-admin")
    with pytest.raises(WorkbenchError, match="outside the workspace"):
        B.backup(ws, ws / "inside", user="local-admin")
    with Store(ws) as st:
        st.conn.execute("INSERT INTO users VALUES ('cur', 'curator', NULL, ?)", [audit.now()])
    with pytest.raises(PermissionDenied):
        B.backup(ws, tmp_path / "bk2", user="cur")


def test_restore_refuses_a_newer_backup(tmp_path):
    ws = _workspace(tmp_path / "ws")
    B.backup(ws, tmp_path / "bk", user="local-admin")
    mf = tmp_path / "bk" / "backup.json"
    m = json.loads(mf.read_text())
    m["schema_version"] = 99
    mf.write_text(json.dumps(m))
    with pytest.raises(WorkbenchError, match="newer than this release"):
        B.restore(tmp_path / "bk", tmp_path / "ws3", user=None)
    assert not (tmp_path / "ws3" / "workbench.duckdb").exists()
    assert catalog.get_version(ws, "d").n_samples == 5
