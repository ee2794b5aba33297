"""Users, roles and passwords.

Passwords are hashed with argon2-cffi's ``PasswordHasher`` (Argon2id, RFC 9106 parameters as
the library ships them); nothing here hashes by hand and no password is ever stored or logged.
Managing users requires the ``manage_users`` action (admins), except that while a workspace
has no user the acting user is the local admin, so the first admin can be created.
"""
from __future__ import annotations

import functools
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from datastore import NotFound, PermissionDenied, Store, WorkbenchError
from datastore import users as U

from . import policy

ROLES = U.ROLES
#: Shortest password accepted (NIST SP 800-63B section 5.1.1.2: at least 8 characters).
MIN_PASSWORD_CHARS = 8
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """Encoded Argon2id hash of ``password``. Raises WorkbenchError if it is too short."""
    if password is None or len(password) < MIN_PASSWORD_CHARS:
        raise WorkbenchError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _HASHER.hash(password)


def generate_password() -> str:
    """A random 16-character URL-safe password (``secrets``, 96 bits)."""
    return secrets.token_urlsafe(12)


def add_user(workspace: str | Path, actor: str | None, name: str, role: str,
             password: str | None = None) -> U.User:
    """Add user ``name`` with ``role`` (and a password for the web UI, optional for CLI-only
    users). Returns the stored user.

    Raises PermissionDenied (actor may not manage users), Conflict (name taken),
    WorkbenchError (unknown role, short password).
    """
    pw_hash = hash_password(password) if password is not None else None
    with Store(workspace) as st:
        who, _ = policy.require(st, actor, "manage_users")
        U.insert(st, name, role, pw_hash, actor=who)
        return next(u for u in U.list_users(st) if u.name == name)


def set_role(workspace: str | Path, actor: str | None, name: str, role: str) -> None:
    """Change ``name``'s role. Raises PermissionDenied, NotFound, Conflict (last admin)."""
    with Store(workspace) as st:
        who, _ = policy.require(st, actor, "manage_users")
        U.update_role(st, name, role, actor=who)


def set_password(workspace: str | Path, actor: str | None, name: str, password: str) -> None:
    """Set ``name``'s password: an admin for anyone, any user for themself."""
    pw_hash = hash_password(password)
    with Store(workspace) as st:
        who, role = U.get_role(st, actor)
        if who != name and not policy.can(role, "manage_users"):
            raise PermissionDenied(who, "manage_users", name)
        U.update_password_hash(st, name, pw_hash, actor=who)


def list_users(workspace: str | Path, actor: str | None) -> list[U.User]:
    """Every user with role and whether a password is set (never the hash)."""
    with Store(workspace) as st:
        policy.require(st, actor, "manage_users")
        return U.list_users(st)


def has_users(workspace: str | Path) -> bool:
    """True when the workspace has at least one user (the web UI then asks for a login)."""
    from datastore.store import DB_NAME
    if not (Path(workspace) / DB_NAME).exists():
        return False
    with Store(workspace) as st:
        return U.count(st) > 0


def authenticate(workspace: str | Path, name: str, password: str) -> tuple[str, str]:
    """Check ``name``'s password; returns ``(name, role)``.

    Raises PermissionDenied (carrying action ``login``) for an unknown user, a user without a
    password, or a wrong password: the message does not say which, so names cannot be probed.
    """
    with Store(workspace) as st:
        try:
            stored = U.password_hash(st, name)
            role = U.get_role(st, name)[1]
        except NotFound:
            stored, role = None, None
    if stored is None:
        # spend the same time as a real check, so response time does not reveal names
        try:
            _HASHER.verify(_dummy_hash(), password or "")
        except VerificationError:
            pass
        raise PermissionDenied(name, "login", "wrong user name or password")
    try:
        _HASHER.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise PermissionDenied(name, "login", "wrong user name or password") from None
    if _HASHER.check_needs_rehash(stored):
        with Store(workspace) as st:
            U.update_password_hash(st, name, _HASHER.hash(password), actor=name)
    return name, role


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_hex(8))
