"""Find and act in bulk.

Filters (a dict; every key optional): ``dataset`` (required unless ``task`` is given),
``task`` (id or name: limits to its items and enables the annotation filters), ``text``
(words, each a case-insensitive substring of the sample's text), ``source``, ``task_type``,
``language``, ``difficulty``, ``policy_domain``, ``kind``, ``tag``, ``min_score`` /
``max_score`` (suggestion scores), ``status`` (unannotated, partial, complete, disputed,
adjudicated, stale, gold) and ``disagreement`` (True: annotators' decisions differ).
Text search is a substring scan (DuckDB's full-text extension would have to be downloaded;
a scan of 1M samples takes well under a second here).

Bulk actions show the count first (:func:`bulk_preview`); :func:`bulk_apply` takes that
count back and refuses if the selection changed meanwhile, then acts in one audited commit:
``assign`` (add the selection to an annotator's queue in the task), ``tag`` (a new dataset
version adding a tag), ``accept_suggestions`` (a new dataset version: each selected sample
takes its suggestion's text as the response; in a staging dataset it is also accepted).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from datastore import Conflict, Store, WorkbenchError
from datastore import audit
from datastore import review_tasks as RT
from datastore import users as U
from datastore import versions as V

from .. import policy
from ._common import check, read_store, task_of

ACTIONS = ("assign", "tag", "accept_suggestions")
MAX_PAGE = 500


def _filters(st, filters: dict) -> tuple[dict, dict | None]:
    f = dict(filters)
    t = None
    if f.get("task") is not None:
        t = task_of(st, f.pop("task"))
        f["task_id"] = t["task_id"]
        f["dataset_id"] = t["dataset_id"]
        f.pop("dataset", None)
    elif f.get("dataset"):
        f["dataset_id"] = V.get_dataset(st, f.pop("dataset")).dataset_id
    else:
        raise WorkbenchError("a search needs a dataset or a review task")
    return f, t


def search(workspace: str | Path, user: str | None, filters: dict, *, after_id: int = 0,
           limit: int = 50) -> dict:
    """``{"count", "samples": [Sample], "next_after"}``: the matching samples (head
    revisions) in id order, keyset-paged. Needs ``read_all_annotations`` (the annotation
    filters reveal others' answers)."""
    with read_store(workspace) as st:
        check(st, user, "read_all_annotations")
        f, _ = _filters(st, filters)
        n = RT.select_count(st.conn, f)
        ids = RT.select_ids(st.conn, f, after_id=after_id, limit=min(max(limit, 1), MAX_PAGE))
        samples = [RT.current_sample(st.conn, f["dataset_id"], i) for i in ids]
        return {"count": n, "samples": [s for s in samples if s is not None],
                "next_after": ids[-1] if len(ids) == limit else None}


def bulk_preview(workspace: str | Path, user: str | None, filters: dict) -> int:
    """How many samples a bulk action on ``filters`` would touch. Needs ``manage_tasks``."""
    with read_store(workspace) as st:
        check(st, user, "manage_tasks")
        f, _ = _filters(st, filters)
        return RT.select_count(st.conn, f)


def bulk_apply(workspace: str | Path, user: str | None, filters: dict, action: str, *, expected_count: int,
               annotator: str | None = None, tag: str | None = None) -> dict:
    """Apply ``action`` to the selection; ``expected_count`` is what :func:`bulk_preview`
    showed. Returns ``{"action", "count", "version"?, "assigned"?}``.

    Raises PermissionDenied (needs ``manage_tasks``), Conflict (the selection now has a
    different count), WorkbenchError (unknown action, missing annotator or tag, nothing
    selected).
    """
    if action not in ACTIONS:
        raise WorkbenchError(f"bulk action must be one of {', '.join(ACTIONS)}, not '{action}'")
    with Store(workspace) as st:
        who, _ = check(st, user, "manage_tasks")
        f, t = _filters(st, filters)
        ids = RT.select_ids(st.conn, f, limit=None)
        if len(ids) != expected_count:
            raise Conflict(f"the selection now holds {len(ids)} sample(s), not the {expected_count} previewed; "
                           "preview again")
        if not ids:
            raise WorkbenchError("the selection is empty")
        ds_name = t["dataset"] if t else filters["dataset"]
        desc = {k: v for k, v in filters.items()}
        if action == "assign":
            if t is None or not annotator:
                raise WorkbenchError("assign needs a review task and an annotator")
            _, role = U.get_role(st, annotator)
            if not policy.can(role, "annotate"):
                raise WorkbenchError(f"'{annotator}' ({role}) may not annotate")
            with st.transaction():
                n = RT.add_assignments(st.conn, t["task_id"], ids, annotator)
                audit.record(st.conn, who, "review.bulk.assign", f"task {t['name']}",
                             {"annotator": annotator, "selected": len(ids), "assigned": n, "filters": desc})
            return {"action": action, "count": len(ids), "assigned": n}
        head = V.resolve(st, ds_name)
        samples = V.get_samples(st, head, ids)
        update = {}
        if action == "tag":
            if not tag:
                raise WorkbenchError("tag needs a tag name")
            for s in samples:
                if tag not in (s.tags or []):
                    update[s.sample_id] = dataclasses.replace(s, tags=sorted({*(s.tags or []), tag})).to_row()
            msg = f"bulk tag '{tag}' on {len(update)} sample(s)"
        else:
            staging = V.get_dataset(st, ds_name).kind == "staging"
            for s in samples:
                sugg = [g for g in RT.suggestions(st.conn, head.dataset_id, s.sample_id)]
                text = next((g["text"] for g in sugg if g.get("text")), None)
                if not sugg:
                    continue
                new = dataclasses.replace(s)
                if text is not None:
                    from .adjudicate import apply_edit
                    new = apply_edit(new, {"response": text})
                if staging:
                    new.tags = sorted({*(s.tags or []), "accepted"})
                    new.annotator_ids = list(dict.fromkeys([*(s.annotator_ids or []), who]))
                row = new.to_row()
                if row["row_hash"] != s.row_hash:
                    update[s.sample_id] = row
            msg = f"bulk accept suggestions on {len(update)} sample(s)"
        if not update:
            return {"action": action, "count": len(ids), "version": None, "changed": 0}
        v = V.commit(st, ds_name, author=who, message=msg, update=update,
                     operation={"op": f"bulk.{action}", "by": who, "filters": desc, "selected": len(ids),
                                "changed": len(update), **({"tag": tag} if tag else {})})
        return {"action": action, "count": len(ids), "version": v.number, "changed": len(update)}
