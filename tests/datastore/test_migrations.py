"""Schema versioning: an older workspace migrates forward in one transaction; a newer one
is refused with a clear message; a failing step changes nothing."""
from __future__ import annotations

import duckdb
import pytest

from datastore import Store, WorkbenchError
from datastore import schema as S
from datastore import versions as V
from datastore.store import DB_NAME
from pipelines.catalog import dataset_log

# The versions table as release 1 (schema version 1) created it: no amendments column.
V1_VERSIONS = """CREATE TABLE versions (
    version_id VARCHAR PRIMARY KEY, dataset_id INTEGER NOT NULL, number INTEGER NOT NULL, parent_id VARCHAR,
    author VARCHAR NOT NULL, message VARCHAR, created_at TIMESTAMP NOT NULL, content_hash VARCHAR NOT NULL,
    hash_sum VARCHAR NOT NULL, n_samples BIGINT NOT NULL, n_added BIGINT, n_removed BIGINT, n_modified BIGINT,
    operation JSON, UNIQUE (dataset_id, number))"""


def make_v1_workspace(ws):
    """A workspace as release 1 left it: its DDL (versions without ``amendments``), schema
    version 1, a dataset with one version, and none of the later areas' tables."""
    ws.mkdir(parents=True)
    con = duckdb.connect(str(ws / DB_NAME))
    for stmt in S.DDL:
        con.execute(V1_VERSIONS if "CREATE TABLE IF NOT EXISTS versions" in stmt else stmt)
    con.execute("INSERT INTO datasets (dataset_id, name, created_by, created_at, head, next_sample_id) "
                "VALUES (nextval('dataset_ids'), 'old', 'x', now(), 1, 2)")
    con.execute("INSERT INTO versions VALUES ('aaaaaaaaaaaa', 1, 1, NULL, 'x', 'import', now(), ?, ?, 1, 1, 0, 0, NULL)",
                [V.content_hash(5, 1), f"{5:064x}"])
    con.execute("INSERT INTO samples (dataset_id, sample_id, valid_from, valid_to, row_hash, kind, instruction, output) "
                "VALUES (1, 1, 1, ?, ?, 'instruction', 'q', 'a')", [S.OPEN_END, f"{5:064x}"])
    con.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('ddl_fingerprint', 'old')")
    con.close()


def test_old_workspace_migrates_forward(tmp_path):
    ws = tmp_path / "ws"
    make_v1_workspace(ws)
    with Store(ws) as st:
        assert st.migrated_from == [1]
        assert S.schema_version(st.conn) == S.SCHEMA_VERSION == 2
        assert st.conn.execute("SELECT value FROM meta WHERE key = 'migrated_from'").fetchone()[0] == "1"
        assert "tombstones" in [r[0] for r in st.conn.execute("SHOW TABLES").fetchall()]
    log = dataset_log(ws, "old")
    assert [(v.number, v.amendments) for v in log] == [(1, [])]
    with Store(ws) as st:   # and it works: a new commit on the migrated file
        from datastore import Sample
        v = V.commit(st, "old", author="y", message="more", add=[Sample(instruction="q2", output="b").to_row()])
        assert v.number == 2 and st.migrated_from == []


def test_newer_workspace_is_refused_clearly(tmp_path):
    ws = tmp_path / "ws"
    with Store(ws) as st:
        st.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for ro in (False, True):
        with pytest.raises(WorkbenchError, match=r"schema version 99, newer than this release supports \(2\).*"
                                                 r"Upgrade Instruction Workbench"):
            Store(ws, read_only=ro)
    con = duckdb.connect(str(ws / DB_NAME))  # untouched
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "99"
    con.close()


def test_failing_migration_changes_nothing(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    make_v1_workspace(ws)

    def broken(conn):
        conn.execute("ALTER TABLE versions ADD COLUMN amendments JSON")
        raise RuntimeError("disk on fire")
    monkeypatch.setitem(S.MIGRATIONS, 1, broken)
    with pytest.raises(WorkbenchError, match="could not migrate this workspace from schema version 1 to 2: disk on fire"):
        Store(ws)
    con = duckdb.connect(str(ws / DB_NAME))
    cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'versions'").fetchall()]
    assert "amendments" not in cols
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    assert "tombstones" not in [r[0] for r in con.execute("SHOW TABLES").fetchall()]
    con.close()
