"""Workspace-level services: creating a workspace, the acting user, quarantine listing."""
from __future__ import annotations

from pathlib import Path

from datastore import Store
from datastore import quarantine as Q
from datastore import users as U


def init_workspace(workspace: str | Path) -> Path:
    """Create the folder and the DuckDB file with its schema; returns the DuckDB path."""
    with Store(workspace) as st:
        for d in ("jobs", "runs", "exports"):
            st.subdir(d)
        return st.path


def current_user(workspace: str | Path, name: str | None) -> str:
    """The acting user's name (the local admin while the workspace has no users).

    Raises NotFound when users exist and ``name`` is missing or unknown.
    """
    from datastore.store import DB_NAME
    if not (Path(workspace) / DB_NAME).exists():  # nothing to look up: never create one here
        return name or U.LOCAL_ADMIN
    with Store(workspace) as st:
        return U.get_role(st, name)[0]


def quarantined(workspace: str | Path, dataset: str | None = None) -> list[dict]:
    with Store(workspace, create=False) as st:
        return Q.list_rows(st, dataset)
