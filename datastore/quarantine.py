"""Rows an import kept aside with their reasons (``wb import --quarantine``)."""
from __future__ import annotations

from . import audit


def add(conn, *, dataset_id: int | None, import_id: str, file: str, items: list[dict], user: str) -> None:
    """Store bad rows: each item has ``row``, ``line``, ``field``, ``reason``, ``raw`` (text)."""
    for it in items:
        conn.execute(
            "INSERT INTO quarantine VALUES (nextval('quarantine_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [dataset_id, import_id, file, it.get("row"), it.get("line"), it.get("field"), it["reason"],
             it.get("raw"), audit.now(), user])


def list_rows(store, dataset: str | None = None, limit: int = 1000) -> list[dict]:
    """Quarantined rows, oldest first, optionally for one dataset."""
    sql = ("SELECT q.quarantine_id, d.name, q.import_id, q.file, q.row_number, q.line_number, q.field, "
           "q.reason, q.raw, q.created_at FROM quarantine q LEFT JOIN datasets d USING (dataset_id)")
    params: list = []
    if dataset:
        sql += " WHERE d.name = ?"
        params.append(dataset)
    sql += " ORDER BY q.quarantine_id LIMIT ?"
    params.append(limit)
    keys = ["id", "dataset", "import_id", "file", "row", "line", "field", "reason", "raw", "created_at"]
    return [dict(zip(keys, r)) for r in store.conn.execute(sql, params).fetchall()]
