"""Purge: the text is gone from the DuckDB file and every workspace file (exports and run
folders included), version hashes are recomputed and amended, tombstone and audit stay,
runs trained on an affected version are flagged."""
from __future__ import annotations

import json

import pytest

from datastore import PermissionDenied, Store, WorkbenchError
from datastore import audit
from datastore import governance as G
from datastore import versions as V
from datastore.store import DB_NAME
from pipelines import catalog
from pipelines.curate import filter as F
from pipelines.curate import merge as M
from pipelines.curate import purge as P
from pipelines.formats import export_version

from .conftest import SECRET

FORMS = [SECRET.encode("utf-8"), json.dumps(SECRET)[1:-1].encode("utf-8")]


def _files_with_secret(ws):
    out = []
    for p in sorted(x for x in ws.rglob("*") if x.is_file()):
        data = p.read_bytes()
        if any(f in data for f in FORMS):
            out.append(str(p.relative_to(ws)))
        elif data[:4] == b"PAR1":
            import pyarrow.parquet as pq
            if SECRET in json.dumps(pq.read_table(p).to_pylist(), ensure_ascii=False):
                out.append(str(p.relative_to(ws)))
    return out


def _recomputed_hash(st, v):
    rows = st.conn.execute("SELECT row_hash FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
                           [v.dataset_id, v.number, v.number]).fetchall()
    return V.content_hash(sum(int(r[0], 16) for r in rows) % V.MOD, len(rows))


def test_purge_removes_text_everywhere(ws):
    F.filter_version(ws, "d", user="local-admin", where="sample_id <> 1")
    M.merge_datasets(ws, ["d"], "copy", user="local-admin")
    export_version(ws, "d", None, "parquet", ws / "exports" / "d.parquet")
    export_version(ws, "copy", None, "alpaca", ws / "runs" / "run-1" / "data" / "copy.jsonl")
    export_version(ws, "d", None, "hf", ws / "exports" / "d-hf")
    export_version(ws, "d", 1, "csv", ws / "exports" / "d.csv")
    cv = catalog.get_version(ws, "copy")
    (ws / "runs" / "run-1" / "run_card.json").write_text(json.dumps(
        {"run_id": "run-1", "datasets": [{"dataset": "copy", "version_number": 1, "version_id": cv.version_id,
                                          "content_hash": cv.content_hash}]}))
    (ws / "runs" / "run-1" / "train.log").write_text(f"first sample: {SECRET}\nloss 1.0\n")
    (ws / "runs" / "run-2").mkdir()
    (ws / "runs" / "run-2" / "run_card.json").write_text(json.dumps({"datasets": [{"dataset": "other",
                                                                                   "version_id": "nope"}]}))
    with Store(ws) as st:
        st.checkpoint()
        old = {(v.dataset, v.number): v.content_hash for n in ("d", "copy") for v in V.log(st, n)}
    before = _files_with_secret(ws)
    assert DB_NAME in before and "exports/d.parquet" in before and "runs/run-1/train.log" in before  # not vacuous

    plan = P.plan_purge(ws, "d", [4], user="local-admin")
    assert plan["samples"] == ["copy#3", "d#4"] and plan["runs"] == ["run-1"]
    rep = P.purge_samples(ws, "d", [4], user="local-admin", reason="GDPR erasure request 17")

    assert _files_with_secret(ws) == [] and rep.residual == []
    assert rep.samples == ["copy#3", "d#4"] and rep.runs_flagged == ["run-1"]
    with Store(ws) as st:
        st.conn.execute("CHECKPOINT")
        for name in ("d", "copy"):
            for v in V.log(st, name):
                assert v.content_hash == _recomputed_hash(st, v)
                assert v.content_hash != old[(name, v.number)]
                assert v.amendments and v.amendments[-1]["purge_id"] == rep.purge_id
                assert v.amendments[-1]["old_content_hash"] == old[(name, v.number)]
        assert V.resolve(st, "d", 1).n_samples == 20 and V.resolve(st, "d", 2).n_samples == 19
        tomb = G.tombstones(st)
        assert {(t["dataset"], t["sample_id"]) for t in tomb} == {("d", 4), ("copy", 3)}
        assert all(t["reason"] == "GDPR erasure request 17" and t["purged_by"] == "local-admin" for t in tomb)
        assert [e["details"]["purge_id"] for e in audit.entries(st, action="sample.purge")] == [rep.purge_id]
        assert [r["run_id"] for r in G.flagged_runs(st)] == ["run-1"]
        assert G.occurrences(st.conn, G.needles([SECRET])) == {}
    assert (ws / "runs" / "run-1" / P.MARKER_FILE).is_file() and not (ws / "runs" / "run-2" / P.MARKER_FILE).exists()
    # exports keep every other record
    import pyarrow.parquet as pq
    assert pq.read_table(ws / "exports" / "d.parquet").num_rows == 19
    assert len((ws / "runs" / "run-1" / "data" / "copy.jsonl").read_text().splitlines()) == 19 == catalog.get_version(ws, "copy").n_samples
    assert "loss 1.0" in (ws / "runs" / "run-1" / "train.log").read_text()
    # the datasets still work after the file rewrite
    assert catalog.get_version(ws, "d").n_samples == 19
    F.filter_version(ws, "d", user="local-admin", where="sample_id > 10")


def test_purge_needs_admin_and_reason(ws):
    with Store(ws) as st:
        st.conn.execute("INSERT INTO users VALUES ('cur', 'curator', NULL, ?), ('adm', 'admin', NULL, ?)",
                        [audit.now(), audit.now()])
    with pytest.raises(PermissionDenied):
        P.purge_samples(ws, "d", [4], user="cur", reason="x")
    with pytest.raises(WorkbenchError, match="reason"):
        P.purge_samples(ws, "d", [4], user="adm", reason=" ")
    with pytest.raises(WorkbenchError, match="no sample"):
        P.purge_samples(ws, "d", [999], user="adm", reason="x")
    assert catalog.get_version(ws, "d").n_samples == 21


def test_shared_text_of_other_samples_is_not_scrubbed(ws):
    # the instruction of sample 1 also occurs in sample 21 (a duplicate): purging 21 alone
    # must not scrub that text from sample 1's exports
    export_version(ws, "d", None, "alpaca", ws / "exports" / "d.jsonl")
    P.purge_samples(ws, "d", [21], user="local-admin", reason="test", copies=False)
    lines = (ws / "exports" / "d.jsonl").read_text().splitlines()
    assert len(lines) == 21 and "Question number 0 about art" in lines[0]
