"""An annotator's side: the queue, one item at a time, drafts, and idempotent submits.

Blind annotation: nothing here returns another annotator's answer. An item
carries the sample (its current revision), the task's guidelines and questions, model
suggestions (marked as such), the user's own draft and own earlier answer, and progress
counts of the user's own queue. Whether an item is gold is not revealed.

Submits: the client supplies ``submit_id`` (:func:`new_submit_id`, made
when the item is shown); the store keeps it under a unique key, so a double click or a retry
after a lost answer returns the first acknowledgement and writes nothing. :func:`submit`
returns only after DuckDB's COMMIT, so an acknowledged annotation is durable.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from datastore import Conflict, PermissionDenied, Sample, WorkbenchError
from datastore import annotations as A
from datastore import review_tasks as RT
from datastore.review_retry import run_write

from ._common import check, read_store, task_of
from .agreement import code_answers, measured_questions
from .edits import normalize_edit
from .questions import validate_answers


@dataclass
class ReviewItem:
    """One sample in an annotator's queue.

    ``position`` orders the queue (pass it back as ``after_position``/``before_position``);
    ``submit_id`` is fresh for this showing; ``own_answers`` is the user's submitted answer
    for the current round (None before they answered); ``draft`` their autosaved answers.
    """
    task_id: int
    task: str
    guidelines: str
    questions: list[dict]
    sample: Sample
    position: int
    status: str
    round: int
    submit_id: str
    suggestions: list[dict] = field(default_factory=list)
    own_answers: dict | None = None
    draft: dict | None = None
    draft_elapsed_ms: int | None = None
    progress: dict = field(default_factory=dict)


@dataclass
class Ack:
    """A durable submit: ``annotation_id`` and whether this call wrote it (False: a retry)."""
    annotation_id: int
    submit_id: str
    written: bool


def new_submit_id() -> str:
    """A fresh client-side submit id (UUID4 hex)."""
    return uuid.uuid4().hex


def _item(st, t: dict, who: str, sample_id: int, position: int, status: str) -> ReviewItem:
    import json
    v = RT.item_view(st.conn, t["task_id"], sample_id, who)
    sample = RT.current_sample(st.conn, t["dataset_id"], sample_id)
    has_draft = v["draft_answers"] is not None or v["draft_elapsed_ms"] is not None
    return ReviewItem(task_id=t["task_id"], task=t["name"], guidelines=t["guidelines"] or "", questions=t["questions"],
                      sample=sample, position=position, status=status, round=v["round"], submit_id=new_submit_id(),
                      suggestions=RT.suggestions(st.conn, t["dataset_id"], sample_id),
                      own_answers=json.loads(v["own_answers"]) if v["own_answers"] else None,
                      draft=(json.loads(v["draft_answers"]) if v["draft_answers"] else {}) if has_draft else None,
                      draft_elapsed_ms=v["draft_elapsed_ms"] if has_draft else None,
                      progress={"done": v["done"], "pending": v["pending"], "total": v["done"] + v["pending"]})


def next_item(workspace: str | Path, user: str | None, task: int | str, *,
              after_position: int | None = None) -> ReviewItem | None:
    """The user's next pending item after ``after_position`` (wrapping round), or None when
    their queue is empty. Needs ``annotate``."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "annotate")
        t = task_of(st, task)
        nxt = RT.next_assignment(st.conn, t["task_id"], who, after_position)
        if nxt is None:
            return None
        return _item(st, t, who, nxt[0], nxt[1], "pending")


def previous_item(workspace: str | Path, user: str | None, task: int | str, *,
                  before_position: int | None = None) -> ReviewItem | None:
    """The user's item just before ``before_position`` in their queue (done or pending), to
    go back and change an answer; None at the start."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "annotate")
        t = task_of(st, task)
        prv = RT.previous_assignment(st.conn, t["task_id"], who, before_position)
        if prv is None:
            return None
        status = RT.assignment(st.conn, t["task_id"], who, prv[0])[1]
        return _item(st, t, who, prv[0], prv[1], status)


def open_item(workspace: str | Path, user: str | None, task: int | str, sample_id: int) -> ReviewItem:
    """One of the user's own assigned items. Raises PermissionDenied when it is not theirs."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "annotate")
        t = task_of(st, task)
        a = RT.assignment(st.conn, t["task_id"], who, sample_id)
        if a is None or a[1] == "removed":
            raise PermissionDenied(who, "annotate", f"sample {sample_id} (not in your queue)")
        return _item(st, t, who, sample_id, a[0], a[1])


def save_draft(workspace: str | Path, user: str | None, task: int | str, sample_id: int, answers: dict,
               elapsed_ms: int | None = None) -> None:
    """Autosave the user's unfinished answers (not validated) and the time spent so far."""
    def write(st):
        who, _ = check(st, user, "annotate")
        t = task_of(st, task)
        a = RT.assignment(st.conn, t["task_id"], who, sample_id)
        if a is None or a[1] == "removed":
            raise PermissionDenied(who, "annotate", f"sample {sample_id} (not in your queue)")
        A.save_draft(st.conn, t["task_id"], sample_id, who, answers, elapsed_ms)
    run_write(workspace, write, what="saving a draft")


def _shown_texts(sample) -> dict:
    """The texts an edit replaces, as the annotator saw them: ``{"instruction", "response"}``
    (the instruction and output, or a conversation's last user and last assistant turn; a
    missing one is None). Stored with an edit's answers under ``shown``, so the edit's
    before and after stay known after an adjudicator adopts it (preference pairs are made
    from them: ``pipelines.preference.pairs.records_from_annotations``)."""
    if sample.kind == "conversation":
        last = {}
        for m in sample.messages or []:
            if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str):
                last[m["role"]] = m["content"]
        return {"instruction": last.get("user"), "response": last.get("assistant")}
    return {"instruction": sample.instruction, "response": sample.output}


def submit(workspace: str | Path, user: str | None, task: int | str, sample_id: int, answers: dict, *,
           submit_id: str, time_spent_ms: int | None = None, row_hash: str | None = None) -> Ack:
    """Submit the user's answers for one item; returns once the annotation is committed.

    Idempotent by ``submit_id``: calling again with the same id returns the same ``Ack``
    with ``written=False``. A second submit (new id) for the same item replaces the user's
    own answer for the current round (going back to change an answer), never adds one.
    ``row_hash`` (of the sample as shown) guards against answering a text that has changed.
    An edit's answers also keep the texts it replaces as shown (``shown``: :func:`_shown_texts`).

    An ``edit`` of a conversation's messages or tools is checked against the sample and stored
    whole (``pipelines.review.edits.normalize_edit``).

    Raises PermissionDenied (not the user's item, or may not annotate), WorkbenchError
    (invalid answers, naming the question; an invalid edit, naming the message index and
    field), Conflict (already adjudicated; the sample changed
    since it was shown; persistent write conflicts).
    """
    if not submit_id or len(submit_id) > 128:
        raise WorkbenchError("a submit needs a submit id (at most 128 characters)")

    def write(st):
        who, _ = check(st, user, "annotate")
        prior = A.find_submit(st.conn, submit_id)
        if prior:
            if prior[1] != who:
                raise Conflict(f"submit id {submit_id} was used by another user")
            return Ack(prior[0], submit_id, False)
        t = task_of(st, task)
        it = RT.item_of_annotator(st.conn, t["task_id"], sample_id, who)
        if it is None or it["status"] in (None, "removed"):
            raise PermissionDenied(who, "annotate", f"sample {sample_id} (not in your queue)")
        if it["state"] != "open":
            raise Conflict(f"sample {sample_id} of task '{t['name']}' is {it['state']}; answers are closed")
        clean = validate_answers(t["questions"], answers)
        current = RT.current_sample(st.conn, t["dataset_id"], sample_id)
        if row_hash and current is not None and current.row_hash != row_hash:
            raise Conflict(f"sample {sample_id} changed since it was shown; reload it and answer again")
        if clean.get("decision") == "edit" and current is not None:
            clean["edit"] = normalize_edit(current, clean["edit"])
            if not clean["edit"]:
                raise WorkbenchError(f"sample {sample_id}: the edit changes nothing; change a turn or "
                                     "choose accept")
        if clean.get("edit") and current is not None:
            clean["shown"] = _shown_texts(current)
        ann_id, written = A.submit(st.conn, submit_id=submit_id, checked=True, task_id=t["task_id"], sample_id=sample_id,
                                   annotator=who, round_=it["round"],
                                   row_hash=current.row_hash if current else row_hash, answers=clean,
                                   time_spent_ms=time_spent_ms,
                                   codes=code_answers(measured_questions(t["questions"]), clean))
        return Ack(ann_id, submit_id, written)

    return run_write(workspace, write, what="submitting an annotation")


def my_annotations(workspace: str | Path, user: str | None, task: int | str, *, limit: int = 1000) -> list[dict]:
    """The user's own current annotations in the task, newest first."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "read_own_annotations")
        t = task_of(st, task)
        return A.by_annotator(st.conn, t["task_id"], who, limit=limit)


def my_progress(workspace: str | Path, user: str | None, task: int | str) -> dict:
    """``{"done", "pending", "total"}`` of the user's own queue."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "read_own_annotations")
        t = task_of(st, task)
        return RT.progress(st.conn, t["task_id"], who)


def my_tasks(workspace: str | Path, user: str | None) -> list[dict]:
    """Open tasks where the user has assignments, with their own progress."""
    with read_store(workspace) as st:
        who, _ = check(st, user, "read_own_annotations")
        return [{"task_id": t["task_id"], "name": t["name"], "dataset": t["dataset"], "version": t["version_number"],
                 **RT.progress(st.conn, t["task_id"], who)} for t in RT.tasks_of_annotator(st.conn, who)]


