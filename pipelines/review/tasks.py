"""Annotation tasks: a curator opens one on a dataset version with an overlap k, an
annotator pool, guidelines and questions; every item gets exactly k distinct annotators.

Assignment is static and balanced (round-robin over the pool, done in one SQL statement when
the task opens), so a queue is a filtered scan and a 1M-sample task opens in seconds. Gold
items are the exception: they go to every pool annotator (see :mod:`.gold`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datastore import Store, WorkbenchError
from datastore import review_tasks as RT
from datastore import users as U
from datastore import versions as V

from ._common import check, read_store, sees_all, task_of
from .questions import normalize_questions

DEFAULT_OVERLAP_K = 2  # blind double annotation: two annotators per sample


@dataclass
class TaskInfo:
    task_id: int
    name: str
    dataset: str
    dataset_kind: str
    version_number: int
    version_id: str
    overlap_k: int
    pool: list[str]
    guidelines: str
    questions: list[dict]
    target_dataset: str | None
    status: str
    created_by: str
    merged_version: int | None


def _info(t: dict) -> TaskInfo:
    return TaskInfo(**{k: t[k] for k in TaskInfo.__dataclass_fields__})


def open_task(workspace: str | Path, user: str | None, *, name: str, dataset: str, version: str | int | None = None,
              overlap_k: int = DEFAULT_OVERLAP_K, pool: list[str] | None = None, guidelines: str = "",
              questions: list[dict] | None = None, target_dataset: str | None = None) -> TaskInfo:
    """Open a review task on ``dataset`` at ``version`` (default head); returns it.

    ``pool`` defaults to every user with the role annotator. ``target_dataset`` (staging
    datasets) is where :func:`pipelines.review.adjudicate.merge_task` moves accepted samples.

    Raises PermissionDenied (needs ``manage_tasks``), NotFound (dataset, version, pool
    user), WorkbenchError (k < 1, pool smaller than k, user in the pool who may not annotate,
    bad questions), Conflict (name taken).
    """
    from datastore.review_retry import run_write
    from .. import policy
    qs = normalize_questions(questions)
    if overlap_k < 1:
        raise WorkbenchError("overlap k must be at least 1")

    def write(st):
        who, _ = check(st, user, "manage_tasks")
        v = V.resolve(st, dataset, version)
        members = list(dict.fromkeys(pool)) if pool else U.names_with_role(st, "annotator")
        for m in members:
            _, role = U.get_role(st, m)
            if not policy.can(role, "annotate"):
                raise WorkbenchError(f"'{m}' ({role}) may not annotate")
        if len(members) < overlap_k:
            raise WorkbenchError(f"overlap k={overlap_k} needs at least {overlap_k} annotators in the pool; "
                                 f"it has {len(members)}")
        if target_dataset:
            V.get_dataset(st, target_dataset)
        return RT.create_task(st.conn, name=name, dataset_id=v.dataset_id, version_number=v.number,
                              version_id=v.version_id, overlap_k=overlap_k, pool=members, guidelines=guidelines,
                              questions=qs, target_dataset=target_dataset, user=who)

    task_id = run_write(workspace, write, what="opening a task")
    with read_store(workspace) as st:
        return _info(RT.get_task(st.conn, task_id))


def list_tasks(workspace: str | Path, user: str | None, dataset: str | None = None) -> list[TaskInfo]:
    """Tasks visible to ``user``: all of them for roles that read all annotations, else the
    open tasks where the user has assignments."""
    with read_store(workspace) as st:
        who, role = check(st, user, "read_own_annotations")
        if sees_all(role):
            ds_id = V.get_dataset(st, dataset).dataset_id if dataset else None
            return [_info(t) for t in RT.list_tasks(st.conn, ds_id)]
        ts = RT.tasks_of_annotator(st.conn, who)
        return [_info(t) for t in ts if dataset is None or t["dataset"] == dataset]


def get_task(workspace: str | Path, user: str | None, task: int | str) -> TaskInfo:
    """One task (``task`` is its id or name). Annotators see only tasks they are in."""
    with read_store(workspace) as st:
        who, role = check(st, user, "read_own_annotations")
        t = task_of(st, task)
        if not sees_all(role) and who not in t["pool"]:
            from datastore import PermissionDenied
            raise PermissionDenied(who, "read_own_annotations", f"task {t['name']}")
        return _info(t)


def task_summary(workspace: str | Path, user: str | None, task: int | str) -> dict:
    """Counts: items by state, assignments by status, current and stale annotations, and the
    adjudication queue length. Needs ``read_all_annotations`` (the counts reveal progress of
    others)."""
    with read_store(workspace) as st:
        check(st, user, "read_all_annotations")
        t = task_of(st, task)
        out = RT.task_counts(st.conn, t["task_id"])
        out["queue"] = len(RT.adjudication_queue(st.conn, t["task_id"], limit=1_000_000))
        out["task"] = t["name"]
        return out


def add_suggestions(workspace: str | Path, user: str | None, dataset: str, suggestions: list[dict]) -> int:
    """Store model drafts shown beside samples as suggestions: each ``{"sample_id", "source"
    ('generator' | 'scoring_head' | 'reference'), "text"?, "decision"?, "score"?, "model"?}``.
    Returns how many were stored. Needs ``manage_tasks``."""
    sources = ("generator", "scoring_head", "reference")
    for s in suggestions:
        if s.get("source") not in sources:
            raise WorkbenchError(f"suggestion source must be one of {', '.join(sources)}, not '{s.get('source')}'")
    with Store(workspace) as st:
        who, _ = check(st, user, "manage_tasks")
        ds = V.get_dataset(st, dataset)
        with st.transaction():
            return RT.add_suggestions(st.conn, ds.dataset_id, suggestions, who)
