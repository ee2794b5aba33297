"""Shared helpers of the review services (private: not part of the public surface)."""
from __future__ import annotations

from pathlib import Path

from datastore import Store
from datastore import review_tasks as RT

from .. import policy


def read_store(workspace: str | Path) -> Store:
    """Open an existing workspace (never creates one)."""
    return Store(workspace, create=False, lease=True)


def task_of(st, task: int | str) -> dict:
    return RT.get_task(st.conn, task)


def check(st, user: str | None, action: str, resource: str | None = None) -> tuple[str, str]:
    return policy.require(st, user, action, resource)


def sees_all(role: str) -> bool:
    return policy.can(role, "read_all_annotations")
