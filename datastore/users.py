"""Users and roles: rows of the ``users`` table (name, role, argon2 password hash).

Before any user exists, every command acts as the local admin. Password
hashing itself lives in ``pipelines/auth.py`` (argon2-cffi); this module stores only the
encoded hash string, never a password.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ROLES = ("annotator", "adjudicator", "curator", "admin")
LOCAL_ADMIN = "local-admin"


@dataclass
class User:
    name: str
    role: str
    has_password: bool
    created_at: datetime | None


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


def count(store) -> int:
    return store.conn.execute("SELECT count(*) FROM users").fetchone()[0]


def list_users(store) -> list[User]:
    """All users by name."""
    return [User(r[0], r[1], r[2], r[3]) for r in store.conn.execute(
        "SELECT name, role, password_hash IS NOT NULL, created_at FROM users ORDER BY name").fetchall()]


def names_with_role(store, role: str) -> list[str]:
    return [r[0] for r in store.conn.execute(
        "SELECT name FROM users WHERE role = ? ORDER BY name", [role]).fetchall()]


def password_hash(store, name: str) -> str | None:
    """The stored encoded hash (None: no password set). Raises NotFound for an unknown user."""
    from .errors import NotFound
    row = store.conn.execute("SELECT password_hash FROM users WHERE name = ?", [name]).fetchone()
    if not row:
        raise NotFound(f"no user named '{name}' in this workspace")
    return row[0]


def insert(store, name: str, role: str, pw_hash: str | None, *, actor: str) -> None:
    """Add a user (one transaction with its audit entry).

    Raises:
        Conflict: the name exists. WorkbenchError: unknown role or empty name.
    """
    from . import audit
    from .errors import Conflict, WorkbenchError
    if role not in ROLES:
        raise WorkbenchError(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    if not name or not name.strip() or name != name.strip():
        raise WorkbenchError("a user name must be non-empty, without leading or trailing spaces")
    with store.transaction():
        if store.conn.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
            raise Conflict(f"a user named '{name}' already exists")
        store.conn.execute("INSERT INTO users VALUES (?, ?, ?, ?)", [name, role, pw_hash, audit.now()])
        audit.record(store.conn, actor, "user.add", name, {"role": role})


def update_role(store, name: str, role: str, *, actor: str) -> None:
    """Change a user's role. Raises NotFound, WorkbenchError (unknown role), Conflict (it
    would leave the workspace without an admin)."""
    from . import audit
    from .errors import Conflict, NotFound, WorkbenchError
    if role not in ROLES:
        raise WorkbenchError(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    with store.transaction():
        row = store.conn.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
        if not row:
            raise NotFound(f"no user named '{name}' in this workspace")
        if row[0] == "admin" and role != "admin":
            admins = store.conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone()[0]
            if admins <= 1:
                raise Conflict(f"'{name}' is the last admin; make another user admin first")
        store.conn.execute("UPDATE users SET role = ? WHERE name = ?", [role, name])
        audit.record(store.conn, actor, "user.role", name, {"from": row[0], "to": role})


def update_password_hash(store, name: str, pw_hash: str, *, actor: str) -> None:
    from . import audit
    from .errors import NotFound
    with store.transaction():
        if not store.conn.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
            raise NotFound(f"no user named '{name}' in this workspace")
        store.conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", [pw_hash, name])
        audit.record(store.conn, actor, "user.password", name, {})
