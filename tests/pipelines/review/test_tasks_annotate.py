"""Tasks with overlap k, queues, drafts, time spent, idempotent submits."""
from __future__ import annotations

from collections import Counter

import pytest

from datastore import Conflict, NotFound, PermissionDenied, Store, WorkbenchError
from datastore import annotations as A
from pipelines.review import annotate, tasks
from tests.pipelines.review.helpers import build


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = build(tmp_path_factory.mktemp("tasks") / "ws", n=9)
    tasks.open_task(ws, "cora", name="t", dataset="qa", guidelines="# Rules\nBe kind.")  # pool: every annotator
    return ws


def _queue(ws, user, task="t"):
    out, pos = [], None
    while True:
        it = annotate.next_item(ws, user, task, after_position=pos)
        if it is None or it.sample.sample_id in out:
            return out
        out.append(it.sample.sample_id)
        pos = it.position


def test_every_item_gets_k_distinct_annotators_and_queues_hold_only_their_own(ws):
    t = tasks.get_task(ws, "cora", "t")
    assert t.pool == ["ann", "bob", "cat"] and t.overlap_k == 2 and t.guidelines.startswith("# Rules")
    queues = {u: _queue(ws, u) for u in t.pool}
    per_sample = Counter(s for q in queues.values() for s in q)
    assert set(per_sample) == set(range(1, 10)) and set(per_sample.values()) == {2}
    assert sorted(len(q) for q in queues.values()) == [6, 6, 6]  # balanced: 18 assignments over 3
    for u, q in queues.items():
        assert len(set(q)) == len(q)
        for sid in set(range(1, 10)) - set(q):  # not in the queue: refused
            with pytest.raises(PermissionDenied):
                annotate.open_item(ws, u, "t", sid)


def test_task_needs_enough_annotators_and_valid_questions(ws):
    with pytest.raises(WorkbenchError, match="at least 4 annotators"):
        tasks.open_task(ws, "cora", name="big", dataset="qa", overlap_k=4)
    with pytest.raises(WorkbenchError, match="kind must be one of"):
        tasks.open_task(ws, "cora", name="q", dataset="qa", questions=[{"name": "x", "kind": "essay"}])
    with pytest.raises(Conflict):
        tasks.open_task(ws, "cora", name="t", dataset="qa")
    with pytest.raises(NotFound):
        tasks.open_task(ws, "cora", name="n", dataset="qa", pool=["ann", "zed"])


def test_custom_questions_are_validated_on_submit(ws):
    tasks.open_task(ws, "cora", name="labels", dataset="qa", overlap_k=1, pool=["ann"], questions=[
        {"name": "decision", "kind": "decision", "options": ["accept", "reject"]},
        {"name": "tone", "kind": "label", "options": ["formal", "casual"]},
        {"name": "topics", "kind": "multilabel", "options": ["math", "code", "law"]},
        {"name": "helpfulness", "kind": "rating", "min": 1, "max": 7},
        {"name": "comment", "kind": "text"}])
    it = annotate.next_item(ws, "ann", "labels")
    sid = it.sample.sample_id
    with pytest.raises(WorkbenchError, match="Tone"):
        annotate.submit(ws, "ann", "labels", sid, {"decision": "accept", "tone": "rude"}, submit_id="l1")
    with pytest.raises(WorkbenchError, match="Helpfulness"):
        annotate.submit(ws, "ann", "labels", sid, {"decision": "accept", "helpfulness": 9}, submit_id="l2")
    with pytest.raises(WorkbenchError, match="decision must be one of"):
        annotate.submit(ws, "ann", "labels", sid, {"decision": "edit"}, submit_id="l3")
    ack = annotate.submit(ws, "ann", "labels", sid, {"decision": "accept", "tone": "formal", "topics": ["code", "math"],
                                                     "helpfulness": 6, "comment": "ok"}, submit_id="l4")
    mine = annotate.my_annotations(ws, "ann", "labels")
    assert mine[0]["annotation_id"] == ack.annotation_id
    assert mine[0]["answers"] == {"decision": "accept", "tone": "formal", "topics": ["math", "code"],
                                  "helpfulness": 6, "comment": "ok"}


def test_drafts_autosave_time_spent_and_idempotent_submit(ws):
    it = annotate.next_item(ws, "bob", "t")
    sid = it.sample.sample_id
    assert it.draft is None and it.own_answers is None and it.progress == {"done": 0, "pending": 6, "total": 6}
    annotate.save_draft(ws, "bob", "t", sid, {"decision": "edit", "edit": {"response": "half"}}, 4000)
    again = annotate.open_item(ws, "bob", "t", sid)
    assert again.draft == {"decision": "edit", "edit": {"response": "half"}} and again.draft_elapsed_ms == 4000
    with pytest.raises(WorkbenchError, match="corrected response"):
        annotate.submit(ws, "bob", "t", sid, {"decision": "edit"}, submit_id=it.submit_id)
    answers = {"decision": "edit", "edit": {"response": "Full answer."}, "rating": 2, "flags": ["factually_wrong"]}
    first = annotate.submit(ws, "bob", "t", sid, answers, submit_id=it.submit_id, time_spent_ms=6500,
                            row_hash=it.sample.row_hash)
    retry = annotate.submit(ws, "bob", "t", sid, answers, submit_id=it.submit_id, time_spent_ms=6500)
    assert first.written and not retry.written and retry.annotation_id == first.annotation_id
    with Store(ws) as st:
        anns = A.for_item(st.conn, 1, sid)
    mine = [a for a in anns if a["annotator"] == "bob"]
    assert len(mine) == 1 and mine[0]["time_spent_ms"] == 6500 and mine[0]["decision"] == "edit"
    done = annotate.open_item(ws, "bob", "t", sid)
    assert done.draft is None and done.own_answers["edit"] == {"response": "Full answer."} and done.status == "done"
    # going back and changing the answer replaces it (a new submit id), never adds one
    back = annotate.previous_item(ws, "bob", "t", before_position=None)
    assert back is not None
    annotate.submit(ws, "bob", "t", sid, {"decision": "accept", "rating": 4}, submit_id=annotate.new_submit_id())
    with Store(ws) as st:
        mine = [a for a in A.for_item(st.conn, 1, sid) if a["annotator"] == "bob"]
    assert len(mine) == 1 and mine[0]["decision"] == "accept" and mine[0]["annotation_id"] == first.annotation_id
    # a submit id is bound to its user
    with pytest.raises(Conflict):
        other = next(s for s in _queue(ws, "ann") if True)
        annotate.submit(ws, "ann", "t", other, {"decision": "accept"}, submit_id=it.submit_id)
    assert annotate.my_progress(ws, "bob", "t")["done"] == 1


def test_changed_text_since_shown_is_refused(ws):
    it = annotate.next_item(ws, "cat", "t")
    with pytest.raises(Conflict, match="changed since it was shown"):
        annotate.submit(ws, "cat", "t", it.sample.sample_id, {"decision": "accept"}, submit_id="c-1",
                        row_hash="0" * 64)
