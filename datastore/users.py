"""Users and roles (minimal for now: the walking skeleton acts as the local admin).

Before any user exists, every command acts as the local admin (issue 2, item 6).
"""
from __future__ import annotations

ROLES = ("annotator", "adjudicator", "curator", "admin")
LOCAL_ADMIN = "local-admin"


def get_role(store, name: str | None) -> tuple[str, str]:
    """``(user name, role)`` for ``name``; the local admin when no user exists yet.

    Raises:
        NotFound: users exist and ``name`` is not one of them.
    """
    from .errors import NotFound

    n = store.conn.execute("SELECT count(*) FROM users").fetchone()[0]
    if n == 0:
        return (name or LOCAL_ADMIN, "admin")
    if not name:
        raise NotFound("this workspace has users: pass --user NAME (or set WB_USER)")
    row = store.conn.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
    if not row:
        raise NotFound(f"no user named '{name}' in this workspace")
    return (name, row[0])
