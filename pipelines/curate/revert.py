"""Revert a dataset to an earlier version: one new version whose content equals it.

Samples keep their ids (removed ones are reinstated under their old ids, changed ones set
back), so the new version has the same content hash as the version reverted to.
"""
from __future__ import annotations

from pathlib import Path

from datastore import Store
from datastore import versions as V
from pipelines.policy import require

from .base import Plan, apply_target


def plan_revert(workspace: str | Path, dataset: str, to: str | int, *, user: str) -> Plan:
    """Counts without committing: ``{"head", "target", "reinstated", "removed", "restored"}``."""
    with Store(workspace, create=False) as st:
        require(st, user, "edit_samples", dataset)
        head, target = V.resolve(st, dataset), V.resolve(st, dataset, to)
        d = V.diff(st, dataset, head.number, target.number)
        msg, op = _describe(head, target)
        return Plan("revert", dataset, msg, op, {"head": head.n_samples, "target": target.n_samples,
                                                 "reinstated": len(d.added), "removed": len(d.removed),
                                                 "restored": len(d.modified)})


def _describe(head: V.Version, target: V.Version) -> tuple[str, dict]:
    msg = (f"revert {head.dataset} to v{target.number} ({target.version_id}, content hash "
           f"{target.content_hash[:12]}) from v{head.number}")
    return msg, {"op": "revert", "to": target.number, "to_version_id": target.version_id,
                 "from": head.number, "content_hash": target.content_hash}


def revert(workspace: str | Path, dataset: str, to: str | int, *, user: str) -> V.Version:
    """Commit the content of version ``to`` as the new head.

    Raises:
        PermissionDenied; NotFound; Conflict (the head already equals ``to``).
    """
    with Store(workspace, create=False) as st:
        name, _ = require(st, user, "edit_samples", dataset)
        head, target = V.resolve(st, dataset), V.resolve(st, dataset, to)
        msg, op = _describe(head, target)
        return apply_target(st, dataset, target, None, author=name, message=msg, operation=op)
