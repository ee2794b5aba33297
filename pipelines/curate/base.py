"""Pieces shared by the curation operations: the plan/commit shape, text normalization
for exact dedup, and committing a target content onto a dataset's head.

Every operation has a ``plan_*`` function (counts only, nothing written: what the UI and
``--dry-run`` show before committing) and a function that commits the plan as **one
version** whose message states the operation and its parameters and whose ``operation``
JSON holds them machine-readably, so ``wb log`` reads as the recipe of the dataset.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from datastore import Sample, WorkbenchError
from datastore import versions as V
from pipelines.filters.textnorm import NORMALIZATION, normalize_text  # noqa: F401  (the one normalisation)


@dataclass
class Plan:
    """What an operation would do. ``counts`` are what the preview shows (e.g.
    ``{"source": 100, "kept": 80, "removed": 20}``); ``message`` and ``operation`` are
    what the commit will record."""
    op: str
    dataset: str
    message: str
    operation: dict
    counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"op": self.op, "dataset": self.dataset, "message": self.message,
                "operation": self.operation, "counts": self.counts}


def sample_text(s: Sample) -> str:
    """One string per sample for dedup: its turns as ``role: content`` lines."""
    parts = []
    for t in s.turns():
        c = t.get("content")
        parts.append(f"{t.get('role')}: {c if isinstance(c, str) else repr(c)}")
    return "\n".join(parts)


def fmt_ref(v: V.Version) -> str:
    return f"{v.dataset} v{v.number}"


def apply_target(st, name: str, source: V.Version, keep_ids: list[int] | None, *, author: str, message: str,
                 operation: dict, allow_empty: bool = False) -> V.Version:
    """Commit onto ``name``'s head so that the new version holds exactly the samples of
    ``source`` (a version of the same dataset) whose ids are in ``keep_ids`` (all when
    None), with their ids and content as in ``source``. Costs what changed: head samples
    not kept are removed, samples changed since ``source`` are set back, samples removed
    since ``source`` are reinstated under their ids.

    Raises:
        Conflict: nothing would change (unless ``allow_empty``).
    """
    head = V.resolve(st, name)
    keep = None if keep_ids is None else set(keep_ids)
    d = V.diff(st, name, head.number, source.number)     # b = source against a = head
    src_only = [i for i in d.added if keep is None or i in keep]
    changed = [i for i in d.modified if keep is None or i in keep]
    head_ids = [r[0] for r in st.conn.execute(
        "SELECT sample_id FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
        [head.dataset_id, head.number, head.number]).fetchall()] if keep is not None else []
    removed_since = set(d.removed)
    remove = sorted(removed_since | {i for i in head_ids if i not in keep}) if keep is not None else sorted(removed_since)
    rows = {s.sample_id: s for s in V.get_samples(st, source, src_only + changed)}
    update = {i: rows[i].to_row() for i in changed}
    reinstate = {i: rows[i].to_row() for i in src_only}
    return V.commit(st, name, author=author, message=message, remove=remove, update=update,
                    reinstate=reinstate, operation=operation, allow_empty=allow_empty)


def copy_rows(samples, *, parent: V.Version) -> list[dict]:
    """Stored rows for copies of ``samples`` into another dataset, each with lineage back
    to the sample it came from (``lineage.parent``: dataset, version id, sample id), which
    is also how a purge finds copies."""
    out = []
    for s in samples:
        lineage = {**(s.lineage or {}), "parent": {"dataset": parent.dataset, "version_id": parent.version_id,
                                                   "sample_id": s.sample_id}}
        out.append(dataclasses.replace(s, lineage=lineage, sample_id=None, row_hash=None).to_row())
    return out


def check_name(name: str) -> str:
    if not name or not name.strip():
        raise WorkbenchError("a dataset name must not be empty")
    return name.strip()


def user_role(workspace, user: str | None) -> str:
    """The role of ``user`` in the workspace (for pages deciding what to show; services
    still call ``require``). Raises NotFound for an unknown user."""
    from datastore import Store
    from datastore import users as U
    with Store(workspace, create=False) as st:
        return U.get_role(st, user)[1]
