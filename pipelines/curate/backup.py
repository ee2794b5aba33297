"""Backup and restore of a whole workspace, safe while the app runs.

Backup: under the store's brief lock (the one-writer rule of ``datastore/store.py``), the
backup is recorded, the database checkpointed and its file copied (a consistent snapshot:
nobody can write while we hold the file); the lock is released at once, and the copy is
written out with DuckDB's ``EXPORT DATABASE`` as Parquet plus ``schema.sql``/``load.sql``
(readable by any later DuckDB, which a raw file copy is not promised to be). Then the
workspace's other files (run folders, exports, jobs) are copied. ``backup.json`` lists
the schema version, every table's row count and every file with its SHA-256.

Restore: into an empty workspace folder (or over one with ``force``, keeping the old file
aside): ``IMPORT DATABASE`` into a new file, opened once so an older backup migrates
forward, row counts checked against the manifest, then the files copied back.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path

import duckdb

from datastore import Store, WorkbenchError
from datastore import governance as G
from datastore.schema import SCHEMA_VERSION, check_not_newer
from datastore.store import DB_NAME
from pipelines.policy import require

MANIFEST = "backup.json"


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(ws: Path) -> list[Path]:
    skip = {DB_NAME, DB_NAME + ".wal", DB_NAME + ".rewrite"}
    return sorted(p for p in ws.rglob("*") if p.is_file() and not (p.parent == ws and p.name in skip)
                  and ".restore-tmp" not in p.parts)


def backup(workspace: str | Path, out: str | Path, *, user: str) -> dict:
    """Write a backup of ``workspace`` into the new folder ``out``; returns the manifest.

    Raises:
        PermissionDenied: ``user`` may not back up (admins). WorkbenchError: ``out`` exists
        and is not empty, or lies inside the workspace.
    """
    ws, out = Path(workspace).resolve(), Path(out).resolve()
    if out == ws or ws in out.parents:
        raise WorkbenchError(f"put the backup outside the workspace folder ({ws})")
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError(f"backup folder {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    backup_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    snap = out / "snapshot.duckdb"
    t0 = time.monotonic()
    with Store(ws, create=False) as st:
        name, _ = require(st, user, "backup")
        with st.transaction():
            G.record_backup(st.conn, backup_id=backup_id, path=str(out), user=name, schema_version=SCHEMA_VERSION,
                            tables={}, files=len(_files(ws)))
        st.checkpoint()
        shutil.copyfile(st.path, snap)
    locked_s = time.monotonic() - t0
    try:
        counts = G.export_file(str(snap), str(out / "db"))
    finally:
        snap.unlink(missing_ok=True)
    files = []
    for p in _files(ws):
        rel = p.relative_to(ws)
        dst = out / "files" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)
        files.append({"path": str(rel), "bytes": dst.stat().st_size, "sha256": _sha256(dst)})
    manifest = {"backup_id": backup_id, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "created_by": name, "workspace": str(ws), "schema_version": SCHEMA_VERSION,
                "duckdb": duckdb.__version__, "tables": counts, "files": files,
                "store_locked_s": round(locked_s, 3)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def restore(backup_dir: str | Path, workspace: str | Path, *, user: str, force: bool = False) -> dict:
    """Restore the backup in ``backup_dir`` into ``workspace``; returns ``{"workspace",
    "tables", "files", "migrated_from", "previous"}``.

    Raises:
        WorkbenchError: not a backup folder; the workspace already has a database and
            ``force`` is false; the backup comes from a newer release; row counts differ.
        PermissionDenied: ``user`` may not restore (needs ``backup`` in the restored workspace).
    """
    src, ws = Path(backup_dir).resolve(), Path(workspace).resolve()
    mf = src / MANIFEST
    if not mf.is_file() or not (src / "db" / "schema.sql").is_file():
        raise WorkbenchError(f"{src} is not a workbench backup (no {MANIFEST} or db/schema.sql)")
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    check_not_newer(int(manifest.get("schema_version", 0)), str(src))
    if (ws / DB_NAME).exists() and not force:
        raise WorkbenchError(f"{ws} already holds a workspace; restore into an empty folder or pass --force "
                             "(the current database is kept beside it)")
    for f in manifest["files"]:
        p = src / "files" / f["path"]
        if not p.is_file() or _sha256(p) != f["sha256"]:
            raise WorkbenchError(f"backup file {f['path']} is missing or changed since the backup (SHA-256 differs)")
    tmp = ws / ".restore-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        counts = G.import_new_file(str(tmp / DB_NAME), str(src / "db"))
        bad = {t: (n, counts.get(t)) for t, n in manifest["tables"].items() if counts.get(t) != n}
        if bad:
            raise WorkbenchError(f"restored row counts differ from the backup: {bad}")
        with Store(tmp, create=False) as st:   # migrates an older backup forward
            migrated = st.migrated_from
            require(st, user, "backup")
        previous = None
        from datastore.store import release_leases
        release_leases(ws)  # no leased connection may stay open on the file being replaced
        if (ws / DB_NAME).exists():
            previous = ws / f"{DB_NAME}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(ws / DB_NAME, previous)
            (ws / (DB_NAME + ".wal")).unlink(missing_ok=True)
        os.replace(tmp / DB_NAME, ws / DB_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in manifest["files"]:
        dst = ws / f["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "files" / f["path"], dst)
    return {"workspace": str(ws), "tables": counts, "files": len(manifest["files"]), "migrated_from": migrated,
            "previous": str(previous) if previous else None, "backup_id": manifest["backup_id"]}
