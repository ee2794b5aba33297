"""The audit log: every write, with who, when and what (in the writer's transaction)."""
from __future__ import annotations

import json
from datetime import datetime, timezone


def now() -> datetime:
    """UTC now, naive (DuckDB TIMESTAMP)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def record(conn, user: str, action: str, target: str | None = None, details: dict | None = None) -> None:
    """Append one audit entry. Call inside the transaction of the write it describes."""
    conn.execute(
        "INSERT INTO audit_log VALUES (nextval('audit_ids'), ?, ?, ?, ?, ?)",
        [now(), user, action, target, json.dumps(details or {}, ensure_ascii=False, default=str)])


def entries(store, limit: int = 100, action: str | None = None) -> list[dict]:
    """Newest first: ``[{"at", "user", "action", "target", "details"}]``."""
    sql = 'SELECT "at", user_name, action, target, details FROM audit_log'
    params: list = []
    if action:
        sql += " WHERE action = ?"
        params.append(action)
    sql += " ORDER BY audit_id DESC LIMIT ?"
    params.append(limit)
    return [{"at": r[0], "user": r[1], "action": r[2], "target": r[3], "details": json.loads(r[4])}
            for r in store.conn.execute(sql, params).fetchall()]
