"""SQL of curation and governance: purge (tombstones, hash recomputation, scrubbing),
flagged runs, import provenance, licence counts, backups, and column reads for filters.

Purge is our own code because it is the core of versioning: a purged sample's revisions
are deleted from ``samples``; every version that held one of them gets its multiset hash
(``versions.py``) recomputed by subtracting exactly those revisions' hashes, its counts
corrected, and an entry appended to its ``amendments`` (the version's log says what
changed and why the hash moved). Text left in other tables (audit details, job results,
other areas' rows) is replaced by :data:`PURGED_MARK`; the tombstone (id, who, when, why)
and the audit entry of the purge hold no text.
"""
from __future__ import annotations

import json
from typing import Iterable

from . import audit
from .schema import OPEN_END
from .store import register

PURGED_MARK = "[purged]"
#: Shortest text searched for when scrubbing other tables and files, in characters. Shorter
#: texts ("yes", "Paris") are too likely to occur by chance in unrelated data; the samples
#: themselves are always removed whole. Source: our choice, documented in docs/curation.md.
MIN_SCRUB_CHARS = 12
#: Tables whose rows the purge handles itself (not scrubbed generically).
OWN_TABLES = ("samples", "purges", "tombstones", "meta")
#: ``hook(conn, targets: list[dict], purge_id: str)`` called inside the purge transaction, for
#: areas that want to delete their own rows of purged samples (``targets``: ``{"dataset_id",
#: "dataset", "sample_id"}``). The generic scrub runs after the hooks.
PURGE_HOOKS: list = []


# ---------------------------------------------------------------- purge: what goes
def find_targets(conn, dataset_id: int, sample_ids: list[int], *, copies: bool = True) -> list[dict]:
    """The samples a purge removes: the given ones, plus (with ``copies``) every sample in
    any dataset that has a revision with the same content hash as one of theirs or whose
    lineage names one of them as parent (a merge or split copy).

    Returns ``[{"dataset_id", "dataset", "sample_id", "copy_of"}]`` (``copy_of`` is
    ``"dataset#id"`` for copies, None for the given samples); ids not in the dataset are skipped.
    """
    ids = sorted(set(int(i) for i in sample_ids))
    if not ids:
        return []
    rows = conn.execute(
        "SELECT DISTINCT s.dataset_id, d.name, s.sample_id FROM samples s JOIN datasets d USING (dataset_id) "
        "WHERE s.dataset_id = ? AND s.sample_id IN (SELECT unnest(?::BIGINT[]))", [dataset_id, ids]).fetchall()
    found = {(r[0], r[2]): {"dataset_id": r[0], "dataset": r[1], "sample_id": r[2], "copy_of": None} for r in rows}
    if not copies:
        return list(found.values())
    frontier = list(found.values())
    while frontier:
        keys = [(t["dataset_id"], t["sample_id"]) for t in frontier]
        register(conn, "_purge_keys", _keys_table(keys))
        try:
            hashes = [r[0] for r in conn.execute(
                "SELECT DISTINCT row_hash FROM samples JOIN _purge_keys USING (dataset_id, sample_id)").fetchall()]
            names = {t["dataset_id"]: t["dataset"] for t in frontier}
            new = conn.execute(
                """SELECT DISTINCT s.dataset_id, d.name, s.sample_id, k.dataset_id, k.sample_id
                   FROM _purge_keys k JOIN datasets kd ON kd.dataset_id = k.dataset_id
                   JOIN samples s ON json_extract_string(s.lineage, '$.parent.dataset') = kd.name
                        AND TRY_CAST(json_extract_string(s.lineage, '$.parent.sample_id') AS BIGINT) = k.sample_id
                   JOIN datasets d ON d.dataset_id = s.dataset_id""").fetchall()
            same = conn.execute(
                "SELECT DISTINCT s.dataset_id, d.name, s.sample_id FROM samples s JOIN datasets d USING (dataset_id) "
                "WHERE s.row_hash IN (SELECT unnest(?::VARCHAR[]))", [hashes]).fetchall() if hashes else []
        finally:
            conn.unregister("_purge_keys")
        frontier = []
        for r in new:
            key = (r[0], r[2])
            if key not in found:
                found[key] = {"dataset_id": r[0], "dataset": r[1], "sample_id": r[2],
                              "copy_of": f"{names.get(r[3], r[3])}#{r[4]}"}
                frontier.append(found[key])
        for r in same:
            key = (r[0], r[2])
            if key not in found:
                found[key] = {"dataset_id": r[0], "dataset": r[1], "sample_id": r[2], "copy_of": "same content"}
                frontier.append(found[key])
    return sorted(found.values(), key=lambda t: (t["dataset"], t["sample_id"]))


def _keys_table(keys: list[tuple[int, int]]):
    import pyarrow as pa
    return pa.table({"dataset_id": pa.array([k[0] for k in keys], pa.int32()),
                     "sample_id": pa.array([k[1] for k in keys], pa.int64())})


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def target_texts(conn, targets: list[dict]) -> list[str]:
    """Texts of every revision of ``targets`` (system, instruction, input, output, turn
    contents, history, string values of ``extra``) that are at least :data:`MIN_SCRUB_CHARS`
    long and do not also occur as a whole field of a sample that stays (a shared system
    prompt is not the purged sample's text). Longest first."""
    if not targets:
        return []
    register(conn, "_purge_keys", _keys_table([(t["dataset_id"], t["sample_id"]) for t in targets]))
    try:
        rows = conn.execute(
            "SELECT system, instruction, input, output, history, messages, extra FROM samples "
            "JOIN _purge_keys USING (dataset_id, sample_id)").fetchall()
        texts: list[str] = []
        for r in rows:
            for v in r[:4]:
                if v:
                    texts.append(v)
            for v in r[4:]:
                if v:
                    _strings(json.loads(v), texts)
        cand = sorted({t for t in texts if len(t) >= MIN_SCRUB_CHARS}, key=lambda t: (-len(t), t))
        if not cand:
            return []
        # texts that a remaining sample holds as a whole field are not this sample's own
        shared = {r[0] for r in conn.execute(
            """WITH keep AS (SELECT s.* FROM samples s ANTI JOIN _purge_keys k USING (dataset_id, sample_id)),
                    c AS (SELECT unnest(?::VARCHAR[]) AS t)
               SELECT DISTINCT c.t FROM c JOIN keep ON keep.system = c.t OR keep.instruction = c.t
                    OR keep.input = c.t OR keep.output = c.t""", [cand]).fetchall()}
        msg_shared = {r[0] for r in conn.execute(
            """WITH keep AS (SELECT s.messages FROM samples s ANTI JOIN _purge_keys k USING (dataset_id, sample_id)
                             WHERE s.messages IS NOT NULL),
                    turns AS (SELECT unnest(from_json(messages, '[{"content": "VARCHAR"}]')).content AS c FROM keep),
                    c AS (SELECT unnest(?::VARCHAR[]) AS t)
               SELECT DISTINCT c.t FROM c JOIN turns ON turns.c = c.t""", [cand]).fetchall()}
    finally:
        conn.unregister("_purge_keys")
    return [t for t in cand if t not in shared and t not in msg_shared]


def needles(texts: Iterable[str]) -> list[str]:
    """The forms a text takes in stored data: as is, JSON-escaped (UTF-8 kept and
    ``\\uXXXX``), and CSV-quoted (doubled quotes); duplicates removed, longest first."""
    out: set[str] = set()
    for t in texts:
        out.add(t)
        out.add(json.dumps(t, ensure_ascii=False)[1:-1])
        out.add(json.dumps(t, ensure_ascii=True)[1:-1])
        if '"' in t:
            out.add(t.replace('"', '""'))
    return sorted(out, key=lambda s: (-len(s), s))


def versions_holding(conn, targets: list[dict]) -> list[dict]:
    """Versions that hold a revision of a target: ``[{"dataset", "dataset_id", "number",
    "version_id", "content_hash"}]``."""
    if not targets:
        return []
    register(conn, "_purge_keys", _keys_table([(t["dataset_id"], t["sample_id"]) for t in targets]))
    try:
        rows = conn.execute(
            """SELECT DISTINCT d.name, v.dataset_id, v.number, v.version_id, v.content_hash
               FROM samples s JOIN _purge_keys USING (dataset_id, sample_id)
               JOIN versions v ON v.dataset_id = s.dataset_id AND v.number >= s.valid_from AND v.number < s.valid_to
               JOIN datasets d ON d.dataset_id = v.dataset_id ORDER BY d.name, v.number""").fetchall()
    finally:
        conn.unregister("_purge_keys")
    return [{"dataset": r[0], "dataset_id": r[1], "number": r[2], "version_id": r[3], "content_hash": r[4]}
            for r in rows]


# ---------------------------------------------------------------- purge: doing it
def purge(conn, targets: list[dict], texts: list[str], *, user: str, reason: str, purge_id: str) -> dict:
    """Delete every revision of ``targets``, recompute the hash and counts of each version
    that held one, amend those versions' log, write tombstones and the purge row, run
    :data:`PURGE_HOOKS`, scrub ``texts`` from other tables, and audit. Call inside one
    transaction (the caller's).

    Returns ``{"samples", "revisions", "versions": [{"dataset", "number", "version_id",
    "old_content_hash", "new_content_hash", "samples_removed"}], "scrubbed": {"table.column": rows}}``.
    """
    from .versions import MOD, content_hash

    now = audit.now()
    register(conn, "_purge_keys", _keys_table([(t["dataset_id"], t["sample_id"]) for t in targets]))
    try:
        revs = conn.execute(
            "SELECT dataset_id, sample_id, valid_from, valid_to, row_hash FROM samples "
            "JOIN _purge_keys USING (dataset_id, sample_id) ORDER BY dataset_id, sample_id, valid_from").fetchall()
        conn.execute("DELETE FROM samples s USING _purge_keys k "
                     "WHERE s.dataset_id = k.dataset_id AND s.sample_id = k.sample_id")
    finally:
        conn.unregister("_purge_keys")
    # per version: hash and count to subtract, and the add/modify/remove counts to correct
    by_sample: dict[tuple[int, int], list[tuple]] = {}
    for r in revs:
        by_sample.setdefault((r[0], r[1]), []).append(r)
    delta: dict[tuple[int, int], dict] = {}

    def d(ds: int, n: int) -> dict:
        return delta.setdefault((ds, n), {"hash": 0, "count": 0, "added": 0, "modified": 0, "removed": 0})

    versions = {(r[0], r[1]): r for r in conn.execute(
        "SELECT dataset_id, number, version_id, hash_sum, n_samples, n_added, n_removed, n_modified, content_hash, "
        "amendments FROM versions WHERE dataset_id IN (SELECT unnest(?::INTEGER[]))",
        [sorted({t["dataset_id"] for t in targets})]).fetchall()}
    for (ds, _sid), rs in by_sample.items():
        for i, (_, _, vf, vt, h) in enumerate(rs):
            for (vds, n) in versions:
                if vds == ds and vf <= n < vt:
                    x = d(ds, n)
                    x["hash"] += int(h, 16)
                    x["count"] += 1
            prev_to = rs[i - 1][3] if i else None
            d(ds, vf)["modified" if prev_to == vf else "added"] += 1
            nxt_from = rs[i + 1][2] if i + 1 < len(rs) else None
            if vt != OPEN_END and nxt_from != vt:
                d(ds, vt)["removed"] += 1
    names = {t["dataset_id"]: t["dataset"] for t in targets}
    changed = []
    for (ds, n), x in sorted(delta.items()):
        v = versions.get((ds, n))
        if v is None:
            continue
        hsum = (int(v[3], 16) - x["hash"]) % MOD
        count = v[4] - x["count"]
        new_hash = content_hash(hsum, count)
        amend = list(json.loads(v[9]) if v[9] else [])
        if x["count"] or x["added"] or x["modified"] or x["removed"]:
            amend.append({"op": "purge", "purge_id": purge_id, "at": now.isoformat(timespec="seconds"), "by": user,
                          "samples_removed": x["count"], "old_content_hash": v[8], "new_content_hash": new_hash,
                          "note": f"purge {purge_id} removed {x['count']} sample(s) from this version; "
                                  f"content hash recomputed"})
            conn.execute(
                "UPDATE versions SET hash_sum = ?, content_hash = ?, n_samples = ?, n_added = greatest(0, n_added - ?), "
                "n_modified = greatest(0, n_modified - ?), n_removed = greatest(0, n_removed - ?), amendments = ? "
                "WHERE version_id = ?",
                [f"{hsum:064x}", new_hash, count, x["added"], x["modified"], x["removed"],
                 json.dumps(amend), v[2]])
            if x["count"]:
                changed.append({"dataset": names[ds], "number": n, "version_id": v[2], "old_content_hash": v[8],
                                "new_content_hash": new_hash, "samples_removed": x["count"]})
    for t in targets:
        conn.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [purge_id, t["dataset_id"], t["dataset"], t["sample_id"], user, now, reason,
                      len(by_sample.get((t["dataset_id"], t["sample_id"]), [])), t.get("copy_of")])
    conn.execute("INSERT INTO purges VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [purge_id, user, now, reason, len(targets), len(revs), json.dumps(changed), json.dumps({})])
    for hook in PURGE_HOOKS:
        hook(conn, targets, purge_id)
    scrubbed = scrub_tables(conn, needles(texts))
    audit.record(conn, user, "sample.purge", ", ".join(sorted({t["dataset"] for t in targets})),
                 {"purge_id": purge_id, "samples": [f"{t['dataset']}#{t['sample_id']}" for t in targets],
                  "revisions": len(revs), "versions": [f"{c['dataset']}@v{c['number']}" for c in changed],
                  "reason": reason})
    return {"samples": len(targets), "revisions": len(revs), "versions": changed, "scrubbed": scrubbed}


def _text_columns(conn, exclude: tuple[str, ...] = OWN_TABLES) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND data_type IN ('VARCHAR', 'JSON') ORDER BY table_name, column_index").fetchall()
        if r[0] not in exclude]


def scrub_tables(conn, forms: list[str], exclude: tuple[str, ...] = OWN_TABLES) -> dict[str, int]:
    """Replace each of ``forms`` by :data:`PURGED_MARK` in every text and JSON column of
    every table except ``exclude``; returns ``{"table.column": rows changed}``."""
    out: dict[str, int] = {}
    if not forms:
        return out
    for table, col in _text_columns(conn, exclude):
        q = f'"{table}"."{col}"'
        for f in forms:
            n = conn.execute(f'SELECT count(*) FROM "{table}" WHERE contains({q}, ?)', [f]).fetchone()[0]
            if n:
                conn.execute(f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) WHERE contains("{col}", ?)',
                             [f, PURGED_MARK, f])
                out[f"{table}.{col}"] = out.get(f"{table}.{col}", 0) + n
    return out


def occurrences(conn, forms: list[str]) -> dict[str, int]:
    """Rows per ``table.column`` (all tables) still holding one of ``forms``."""
    out: dict[str, int] = {}
    for table, col in _text_columns(conn, exclude=()):
        for f in forms:
            n = conn.execute(f'SELECT count(*) FROM "{table}" WHERE contains("{col}", ?)', [f]).fetchone()[0]
            if n:
                out[f"{table}.{col}"] = out.get(f"{table}.{col}", 0) + n
    return out


def set_purge_files(conn, purge_id: str, files: dict) -> None:
    conn.execute("UPDATE purges SET files = ? WHERE purge_id = ?", [json.dumps(files), purge_id])


def tombstones(store, dataset: str | None = None) -> list[dict]:
    """``[{"purge_id", "dataset", "sample_id", "purged_by", "purged_at", "reason", "revisions", "copy_of"}]``, newest first."""
    sql = ("SELECT purge_id, dataset, sample_id, purged_by, purged_at, reason, revisions, copy_of FROM tombstones"
           + (" WHERE dataset = ?" if dataset else "") + " ORDER BY purged_at DESC, dataset, sample_id")
    cols = ["purge_id", "dataset", "sample_id", "purged_by", "purged_at", "reason", "revisions", "copy_of"]
    return [dict(zip(cols, r)) for r in store.conn.execute(sql, [dataset] if dataset else []).fetchall()]


def purges(store) -> list[dict]:
    cols = ["purge_id", "purged_by", "purged_at", "reason", "samples", "revisions", "versions", "files"]
    rows = store.conn.execute(f"SELECT {', '.join(cols)} FROM purges ORDER BY purged_at DESC").fetchall()
    out = []
    for r in rows:
        d = dict(zip(cols, r))
        d["versions"] = json.loads(d["versions"] or "[]")
        d["files"] = json.loads(d["files"] or "{}")
        out.append(d)
    return out


def flag_run(conn, *, run_id: str, run_dir: str, purge_id: str, dataset: str | None,
             version_id: str | None, note: str) -> None:
    conn.execute("INSERT OR REPLACE INTO flagged_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                 [run_id, run_dir, purge_id, dataset, version_id, audit.now(), note])


def flagged_runs(store) -> list[dict]:
    cols = ["run_id", "run_dir", "purge_id", "dataset", "version_id", "flagged_at", "note"]
    return [dict(zip(cols, r)) for r in store.conn.execute(
        f"SELECT {', '.join(cols)} FROM flagged_runs ORDER BY flagged_at DESC").fetchall()]


# ---------------------------------------------------------------- provenance and licences
def record_provenance(conn, *, version_id: str, dataset: str, file: str | None, file_sha256: str | None,
                      source: str | None, license: str | None, license_origin: str | None,
                      card: dict | None, user: str) -> None:
    conn.execute("INSERT OR REPLACE INTO provenance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [version_id, dataset, file, file_sha256, source, license, license_origin,
                  json.dumps(card or {}, ensure_ascii=False, default=str), audit.now(), user])


def provenance(store, dataset: str) -> list[dict]:
    cols = ["version_id", "dataset", "file", "file_sha256", "source", "license", "license_origin", "card",
            "created_at", "created_by"]
    out = []
    for r in store.conn.execute(f"SELECT {', '.join(cols)} FROM provenance WHERE dataset = ? ORDER BY created_at",
                                [dataset]).fetchall():
        d = dict(zip(cols, r))
        d["card"] = json.loads(d["card"] or "{}")
        out.append(d)
    return out


def licence_counts(store, version) -> list[tuple[str | None, str | None, int]]:
    """``[(license, source, samples)]`` of a version, largest first."""
    return store.conn.execute(
        "SELECT license, source, count(*) FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ? "
        "GROUP BY ALL ORDER BY 3 DESC, 1, 2", [version.dataset_id, version.number, version.number]).fetchall()


# ---------------------------------------------------------------- reading columns for curation
def read_columns(store, version, columns: list[str]):
    """``sample_id`` plus ``columns`` of a version as an Arrow table, ordered by id.
    ``columns`` must be sample column names (the caller checks them against a whitelist)."""
    from .versions import _SAMPLE_COLS
    bad = [c for c in columns if c not in _SAMPLE_COLS]
    if bad:
        raise ValueError(f"not sample columns: {bad}")
    cols = ", ".join(["sample_id", *[c for c in columns if c != "sample_id"]])
    return store.conn.sql(
        f"SELECT {cols} FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ? ORDER BY sample_id",
        params=[version.dataset_id, version.number, version.number]).to_arrow_table()


def table_names(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1").fetchall()]


def table_columns(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND table_name = ? "
        "ORDER BY column_index", [table]).fetchall()]


def annotation_outcomes(store, version) -> dict[int, str] | None:
    """``{sample_id: outcome}`` of the review area for a version's dataset, or None when
    the workspace has no review tables. Outcome: the latest adjudication's decision
    (``accept`` / ``reject`` / ``edit``) where there is one; else the current (non-stale)
    annotations' decision when all annotators agree; else ``disputed``. Samples nobody
    annotated are absent. Tables: ``review_tasks``, ``review_adjudications``,
    ``annotations`` (``datastore/ddl/annotations.py``)."""
    conn = store.conn
    tables = set(table_names(conn))
    if not {"review_tasks", "annotations"} <= tables:
        return None
    out: dict[int, str] = {}
    rows = conn.execute(
        """SELECT a.sample_id, CASE WHEN count(DISTINCT a.decision) = 1 THEN any_value(a.decision) ELSE 'disputed' END
           FROM annotations a JOIN review_tasks t USING (task_id)
           WHERE t.dataset_id = ? AND NOT a.stale AND a.decision IS NOT NULL GROUP BY a.sample_id""",
        [version.dataset_id]).fetchall()
    out.update({int(r[0]): r[1] for r in rows})
    if "review_adjudications" in tables:
        rows = conn.execute(
            """SELECT j.sample_id, j.decision FROM review_adjudications j JOIN review_tasks t USING (task_id)
               WHERE t.dataset_id = ?
               QUALIFY row_number() OVER (PARTITION BY j.sample_id ORDER BY j.created_at DESC, j.adjudication_id DESC) = 1""",
            [version.dataset_id]).fetchall()
        out.update({int(r[0]): r[1] for r in rows})
    return out


# ---------------------------------------------------------------- backup
def table_counts(conn) -> dict[str, int]:
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in table_names(conn)}


def export_database(conn, folder: str) -> None:
    """``EXPORT DATABASE`` as Parquet into ``folder`` (schema.sql, load.sql, one file per table)."""
    conn.execute(f"EXPORT DATABASE '{_sql_path(folder)}' (FORMAT parquet)")


def import_database(conn, folder: str) -> None:
    """``IMPORT DATABASE`` from a folder written by :func:`export_database` into an empty file."""
    conn.execute(f"IMPORT DATABASE '{_sql_path(folder)}'")


def record_backup(conn, *, backup_id: str, path: str, user: str, schema_version: int, tables: dict,
                  files: int) -> None:
    conn.execute("INSERT OR REPLACE INTO backups VALUES (?, ?, ?, ?, ?, ?, ?)",
                 [backup_id, path, audit.now(), user, schema_version, json.dumps(tables), files])
    audit.record(conn, user, "workspace.backup", path, {"backup_id": backup_id, "files": files})


def _sql_path(p: str) -> str:
    return str(p).replace("'", "''")


def export_file(db_path: str, folder: str) -> dict[str, int]:
    """Open a DuckDB file (a private copy) read-only, ``EXPORT DATABASE`` it into ``folder``;
    returns its table row counts."""
    import duckdb
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        counts = table_counts(con)
        export_database(con, folder)
    finally:
        con.close()
    return counts


def import_new_file(db_path: str, folder: str) -> dict[str, int]:
    """Create ``db_path`` (must not exist) from an ``EXPORT DATABASE`` folder; returns its
    table row counts."""
    import duckdb
    con = duckdb.connect(str(db_path))
    try:
        import_database(con, folder)
        con.execute("CHECKPOINT")
        return table_counts(con)
    finally:
        con.close()
