"""Gold items: samples with a known expected answer, mixed unannounced
into every pool annotator's queue (an item shows nothing that marks it gold); each
annotator's accuracy on them is on the agreement page (:mod:`.agreement`)."""
from __future__ import annotations

from pathlib import Path

from datastore import review_tasks as RT
from datastore.review_retry import run_write

from ._common import check, read_store, task_of
from .questions import validate_answers


def mark_gold(workspace: str | Path, user: str | None, task: int | str, sample_id: int, expected: dict) -> None:
    """Mark ``sample_id`` gold with ``expected`` answers (validated against the task's
    questions) and assign it to every pool annotator. Needs ``manage_tasks``."""
    def write(st):
        who, _ = check(st, user, "manage_tasks")
        t = task_of(st, task)
        clean = validate_answers(t["questions"], expected)
        RT.set_gold(st.conn, t["task_id"], sample_id, clean, who, t["pool"])
        from datastore import audit
        audit.record(st.conn, who, "review.gold", f"task {t['name']} sample {sample_id}", {"expected": clean})
    run_write(workspace, write, what="marking a gold item")


def list_gold(workspace: str | Path, user: str | None, task: int | str) -> dict[int, dict]:
    """``{sample_id: expected answers}``. Needs ``manage_tasks`` (annotators must not know)."""
    with read_store(workspace) as st:
        check(st, user, "manage_tasks")
        return RT.gold_items(st.conn, task_of(st, task)["task_id"])
