"""Who may do what: one pure policy function per action, called by the service functions.

The matrix below is the single source of truth (docs/architecture.md section 7).
Service functions call :func:`require` before they act; pages and the CLI may call
:func:`can` only to decide what to show, never instead of ``require``.

Roles, from least to most trusted: annotator, adjudicator, curator, admin. The local admin
(before a workspace has any user) is an admin.
"""
from __future__ import annotations

from datastore import PermissionDenied
from datastore import users as U

ROLES = U.ROLES

#: action -> roles allowed. Source: docs/architecture.md section 7
#: (only curators and admins generate or train; annotators never read others' answers).
MATRIX: dict[str, frozenset[str]] = {
    "read_datasets": frozenset({"annotator", "adjudicator", "curator", "admin"}),
    "read_own_annotations": frozenset({"annotator", "adjudicator", "curator", "admin"}),
    "read_all_annotations": frozenset({"adjudicator", "curator", "admin"}),
    "annotate": frozenset({"annotator", "adjudicator", "curator", "admin"}),
    "adjudicate": frozenset({"adjudicator", "admin"}),
    "manage_tasks": frozenset({"curator", "admin"}),       # open tasks, gold items, bulk assign
    "generate": frozenset({"curator", "admin"}),
    "train": frozenset({"curator", "admin"}),
    "edit_samples": frozenset({"curator", "admin"}),       # import, edit, filter, merge, split, revert
    "override_gate": frozenset({"curator", "admin"}),      # launch on a version that failed its gate
    "purge_samples": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
    "backup": frozenset({"admin"}),
}
ACTIONS = tuple(MATRIX)


def can(role: str, action: str) -> bool:
    """True when ``role`` may perform ``action``.

    Raises:
        KeyError: ``action`` is not in :data:`MATRIX` (a typo must not silently deny or allow).
    """
    return role in MATRIX[action]


def require(store, user: str | None, action: str, resource: str | None = None) -> tuple[str, str]:
    """Check that ``user`` may perform ``action``; returns ``(name, role)``.

    ``store`` is an open :class:`datastore.Store`. Raises :class:`PermissionDenied` (carrying
    user and action) when the role does not allow it, and ``NotFound`` for an unknown user.
    """
    name, role = U.get_role(store, user)
    if not can(role, action):
        raise PermissionDenied(name, action, resource)
    return name, role
