"""Stale annotations: an in-commit hook on every dataset commit.

When a commit changes a sample's text (system, instruction, input, output, history or
messages; tags and other metadata do not count), the annotations of that sample in every
review task of the dataset are marked stale, the item starts a new round and goes back into
its annotators' queues. The adjudication that made the change is exempt for its own item
(its commit's operation is ``{"op": "adjudicate", "task_id", "sample_ids"}``). Removed
samples close their items. Runs inside the commit's transaction: it lands with the version
or not at all.
"""
from __future__ import annotations


def mark_stale_on_commit(conn, ds, version_number: int, changed: dict) -> None:
    """``datastore.versions.IN_COMMIT_HOOKS`` entry (see there for the arguments)."""
    if not changed.get("updated") and not changed.get("removed"):
        return
    from datastore import annotations as A
    op = changed.get("operation") or {}
    skip = {}
    if op.get("op") == "adjudicate" and op.get("task_id") is not None:
        skip = {int(op["task_id"]): set(op.get("sample_ids") or [])}
    A.mark_stale(conn, ds.dataset_id, version_number, list(changed.get("updated") or []),
                 list(changed.get("removed") or []), skip)


def install() -> None:
    """Register the hook once (idempotent; imports nothing heavy)."""
    from datastore import versions as V
    if mark_stale_on_commit not in V.IN_COMMIT_HOOKS:
        V.IN_COMMIT_HOOKS.append(mark_stale_on_commit)
