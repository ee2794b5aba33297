"""Adjudication: the queue of disagreements, all answers side by side, and the final call.

An adjudication commits the new sample revision and the adjudication record in ONE
transaction (``versions.commit(..., on_commit=...)``), so the dataset log says what changed,
who decided and why. In a staging dataset the sample gets the tag ``accepted`` (accept or
edit) or ``rejected``; :func:`merge_task` then moves the accepted samples into the task's
target dataset through ``pipelines.curation``. In any other dataset a rejected sample is
removed in the new version, an edited one replaced.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from datastore import Conflict, NotFound, Sample, Store, WorkbenchError
from datastore import annotations as A
from datastore import review_tasks as RT
from datastore import versions as V
from datastore import vocabulary
from datastore.review_retry import run_write

from ._common import check, read_store, task_of
from .edits import apply_conversation_edit
from .questions import DECISIONS, validate_answers

REJECTED = "rejected"


def adjudication_queue(workspace: str | Path, user: str | None, task: int | str, *, limit: int = 50) -> list[dict]:
    """Items whose annotators disagree (decision or rating) or that any annotator rejected or
    edited, not yet adjudicated, lowest agreement first: ``[{"sample_id", "n_annotations",
    "n_decisions", "n_reject_or_edit", "rating_spread", "agreement"}]`` (agreement: share of
    the item's annotations holding its most common decision). Needs ``adjudicate``."""
    with read_store(workspace) as st:
        check(st, user, "adjudicate")
        t = task_of(st, task)
        return RT.adjudication_queue(st.conn, t["task_id"], limit=limit)


def _last_revision(st, dataset: str, sample_id: int) -> tuple[Sample | None, int | None]:
    """A sample no longer in the head: its last revision and the number of the version that
    removed it, found by walking the log back from the head (a removal is usually recent,
    so this reads one or two versions). ``(None, None)`` when no version holds it (purged)."""
    later = None
    for v in V.log(st, dataset):          # newest first
        found = V.get_samples(st, v, [sample_id])
        if found:
            return found[0], later
        later = v.number
    return None, None


def item_answers(workspace: str | Path, user: str | None, task: int | str, sample_id: int, *,
                 hide_names: bool = False) -> dict:
    """Everything about one item for the adjudicator: ``{"sample", "annotations" (current
    round, by annotator; names replaced by "annotator 1..n" with ``hide_names``),
    "suggestions", "gold" (expected answer or None), "adjudications", "round", "state",
    "removed_in", "last_revision"}``.

    ``sample`` is the head revision, or None when the sample is no longer in the dataset (an
    adjudication rejected it, or a curator removed it; the items of other tasks on it are
    then in state "removed"): then ``removed_in`` is the number of the version that removed
    it and ``last_revision`` the sample as it was before (both None while the sample is in
    the head). Needs ``read_all_annotations``."""
    with read_store(workspace) as st:
        check(st, user, "read_all_annotations")
        t = task_of(st, task)
        it = RT.item(st.conn, t["task_id"], sample_id)
        anns = A.for_item(st.conn, t["task_id"], sample_id)
        if hide_names:
            for i, a in enumerate(anns, 1):
                a["annotator"] = f"annotator {i}"
        sample = RT.current_sample(st.conn, t["dataset_id"], sample_id)
        last, removed_in = _last_revision(st, t["dataset"], sample_id) if sample is None else (None, None)
        return {"sample": sample, "annotations": anns,
                "suggestions": RT.suggestions(st.conn, t["dataset_id"], sample_id),
                "gold": RT.gold_items(st.conn, t["task_id"]).get(sample_id),
                "adjudications": RT.adjudications(st.conn, t["task_id"], sample_id),
                "round": it["round"], "state": it["state"], "questions": t["questions"],
                "dataset": t["dataset"], "removed_in": removed_in, "last_revision": last}


def _task_options(t: dict, key: str) -> tuple:
    """The task's own options for question ``key`` in canonical spelling (a task may use a
    custom taxonomy's domain codes); they are allowed besides the shared vocabulary's values."""
    f = vocabulary.FIELDS[key]
    opts = [f.canonical(o) for q in t["questions"] if q["name"] == key for o in q.get("options") or []]
    return tuple(o for o in opts if isinstance(o, str) and o != vocabulary.NO_DOMAIN)


def apply_edit(sample: Sample, edit: dict) -> Sample:
    """The sample with an edit applied: edited ``messages`` and ``tools`` first
    (:func:`pipelines.review.edits.apply_conversation_edit`: every other key of each message
    kept), then ``instruction`` replaces the instruction (the last user turn of a
    conversation), ``response`` the output (the last assistant turn)."""
    s = apply_conversation_edit(sample, edit) if ("messages" in edit or "tools" in edit) else dataclasses.replace(sample)
    if s.kind == "conversation":
        msgs = [dict(m) for m in (s.messages or [])]
        for key, role in (("response", "assistant"), ("instruction", "user")):
            if edit.get(key) is not None:
                idx = [i for i, m in enumerate(msgs) if m.get("role") == role]
                if not idx:
                    raise WorkbenchError(f"sample {sample.sample_id} has no {role} turn to replace")
                msgs[idx[-1]]["content"] = edit[key]
        s.messages = msgs
    else:
        if edit.get("instruction") is not None:
            s.instruction = edit["instruction"]
        if edit.get("response") is not None:
            s.output = edit["response"]
    return s


def adjudicate(workspace: str | Path, user: str | None, task: int | str, sample_id: int, *,
               decision: str | None = None, pick: int | None = None, final: dict | None = None,
               note: str | None = None) -> dict:
    """Resolve one item: ``pick`` an annotation (its answers become the final answers), and/or
    give ``final`` answers (merged over the picked ones: merge, or write the final text with
    ``final={"decision": "edit", "edit": {"response": ...}}``); ``decision`` overrides.

    Commits the new sample revision (if the sample changes) and the adjudication record in
    one transaction; the version's message and operation say what and why. Returns
    ``{"adjudication_id", "version" (number or None when the sample did not change),
    "decision", "final"}``.

    ``note`` (why) goes into the adjudication record, the version's operation and, on one
    line, its message.

    Raises PermissionDenied (needs ``adjudicate``), NotFound, Conflict (already adjudicated,
    or adjudicated concurrently), WorkbenchError (invalid final answers).
    """
    note = (note or "").strip() or None
    with Store(workspace) as st:
        who, _ = check(st, user, "adjudicate")
        t = task_of(st, task)
        it = RT.item(st.conn, t["task_id"], sample_id)
        if it["state"] != "open":
            raise Conflict(f"sample {sample_id} of task '{t['name']}' is already {it['state']}")
        anns = A.for_item(st.conn, t["task_id"], sample_id)
        chosen = None
        if pick is not None:
            chosen = next((a for a in anns if a["annotation_id"] == pick), None)
            if chosen is None:
                raise NotFound(f"annotation {pick} is not a current answer on sample {sample_id}")
        answers = {**(chosen["answers"] if chosen else {}), **(final or {})}
        if decision is not None:
            answers["decision"] = decision
        if answers.get("decision") not in DECISIONS:
            raise WorkbenchError("an adjudication needs a decision (accept, reject or edit), a picked annotation "
                                 "or final answers")
        answers = validate_answers(t["questions"], answers)
        dec = answers["decision"]
        sample = RT.current_sample(st.conn, t["dataset_id"], sample_id)
        if sample is None:
            raise NotFound(f"sample {sample_id} is no longer in dataset '{t['dataset']}'")
        staging = t["dataset_kind"] == "staging"
        new = dataclasses.replace(sample)
        if dec == "edit":
            new = apply_edit(new, answers["edit"])
        for key in ("difficulty", "policy_domain"):
            if answers.get(key) and any(q["name"] == key for q in t["questions"]):
                value = vocabulary.canonical_domain(answers[key]) if key == "policy_domain" else answers[key]
                setattr(new, key, vocabulary.FIELDS[key].check(value, allowed=_task_options(t, key)))
        annotators = sorted({a["annotator"] for a in anns})
        new.annotator_ids = list(dict.fromkeys([*(sample.annotator_ids or []), *annotators, who]))
        update, remove = {}, []
        if staging:
            tags = set(new.tags or []) - {REJECTED, "accepted"}
            tags.add("accepted" if dec in ("accept", "edit") else REJECTED)
            new.tags = sorted(tags)
        elif dec == "reject":
            remove = [sample_id]
        row = new.to_row()
        if not remove and row["row_hash"] != sample.row_hash:
            update = {sample_id: row}
        round_ = it["round"]

        def record(conn, version_number):
            state = RT.item(conn, t["task_id"], sample_id)
            if state["state"] != "open" or state["round"] != round_:
                raise Conflict(f"sample {sample_id} was adjudicated or changed concurrently; reload")
            return RT.record_adjudication(conn, task_id=t["task_id"], sample_id=sample_id, round_=round_,
                                          adjudicator=who, decision=dec,
                                          chosen_annotation_id=chosen["annotation_id"] if chosen else None,
                                          final=answers, note=note, version_number=version_number)

        ids: list[int] = []
        if update or remove:
            why = f"adjudicate #{sample_id} in task '{t['name']}': {dec}"
            if chosen:
                why += f", picked the answer of {chosen['annotator']}"
            if note:
                why += f" ({' '.join(note.split())})"     # the log message stays one line
            v = V.commit(st, t["dataset"], author=who, message=why, update=update, remove=remove,
                         operation={"op": "adjudicate", "task_id": t["task_id"], "task": t["name"],
                                    "sample_ids": [sample_id], "decision": dec, "by": who,
                                    "chosen_annotation_id": chosen["annotation_id"] if chosen else None,
                                    "annotators": annotators, "note": note},
                         on_commit=lambda conn, ds: ids.append(record(conn, ds.head + 1)))
            return {"adjudication_id": ids[0], "version": v.number, "decision": dec, "final": answers}
        with st.transaction():
            head = V.get_dataset(st, t["dataset"]).head
            aid = record(st.conn, None)
        return {"adjudication_id": aid, "version": None, "decision": dec, "final": answers, "head": head}


def merge_task(workspace: str | Path, user: str | None, task: int | str, *, allow_incomplete: bool = False):
    """Finish a task on a staging dataset: accept the items all annotators accepted
    (consensus, no adjudication needed) through ``pipelines.curation.accept_candidates``, then
    move every accepted sample into the task's target dataset with
    ``pipelines.curation.merge_accepted`` (one new target version). Once per task.

    Raises PermissionDenied (needs ``manage_tasks``), WorkbenchError (not a staging task, no
    target, items still open unless ``allow_incomplete``), Conflict (already merged).
    """
    from .. import curation
    with read_store(workspace) as st:
        who, _ = check(st, user, "manage_tasks")
        t = task_of(st, task)
        if t["dataset_kind"] != "staging" or not t["target_dataset"]:
            raise WorkbenchError(f"task '{t['name']}' is not on a staging dataset with a target dataset")
        if t["merged_version"]:
            raise Conflict(f"task '{t['name']}' was already merged into {t['target_dataset']} v{t['merged_version']}")
        consensus = RT.consensus_accepted(st.conn, t["task_id"])
        queue = RT.adjudication_queue(st.conn, t["task_id"], limit=1_000_000)
        counts = RT.task_counts(st.conn, t["task_id"])
        open_items = counts["items"].get("open", 0)
        head = V.resolve(st, t["dataset"])
        already = {s.sample_id for s in V.get_samples(st, head, consensus) if "accepted" in (s.tags or [])}
        mine = RT.item_ids(st.conn, t["task_id"])
    undecided = open_items - len(consensus)
    if (queue or undecided) and not allow_incomplete:
        raise WorkbenchError(f"task '{t['name']}' has {len(queue)} item(s) awaiting adjudication and "
                             f"{undecided} open item(s) without a consensus; finish them or pass allow_incomplete")
    todo = [s for s in consensus if s not in already]
    if todo:
        curation.accept_candidates(workspace, t["dataset"], todo, user=who,
                                   note=f"review task '{t['name']}': {len(todo)} sample(s) accepted by all annotators")
    v = curation.merge_accepted(workspace, t["dataset"], t["target_dataset"], user=who, sample_ids=mine)

    def write(st):
        RT.set_task_status(st.conn, t["task_id"], "merged", v.number)
    run_write(workspace, write, what="closing a task")
    return v
