"""The adjudication queue, resolving in one transaction, staging -> target."""
from __future__ import annotations

import pytest

from datastore import Conflict, Store
from datastore import audit
from datastore import review_tasks as RT
from datastore import versions as V
from pipelines import catalog
from pipelines.review import adjudicate, annotate, tasks
from tests.pipelines.review.helpers import add_dataset, add_users, disagreement, with_candidates

#: sample -> (ann's answer, bob's answer)
ANSWERS = {
    1: ({"decision": "accept", "rating": 5}, {"decision": "accept", "rating": 5}),
    2: ({"decision": "accept", "rating": 4}, {"decision": "accept", "rating": 4}),
    3: ({"decision": "accept", "rating": 3}, {"decision": "edit", "rating": 2, "edit": {"response": "Paris."}}),
    4: ({"decision": "reject", "rating": 1}, {"decision": "reject", "rating": 1}),
    5: ({"decision": "accept", "rating": 5}, {"decision": "accept", "rating": 2}),
}


@pytest.fixture
def ws(tmp_path):
    ws = with_candidates(tmp_path / "ws", 5)
    tasks.open_task(ws, "cora", name="gen", dataset="cands", pool=["ann", "bob"], target_dataset="train")
    for sid, (a, b) in ANSWERS.items():
        annotate.submit(ws, "ann", "gen", sid, a, submit_id=f"a{sid}")
        annotate.submit(ws, "bob", "gen", sid, b, submit_id=f"b{sid}")
    return ws


def test_queue_lowest_agreement_first(ws):
    q = adjudicate.adjudication_queue(ws, "dora", "gen")
    assert [r["sample_id"] for r in q] == [3, 5, 4]   # 3: decisions split; 5: ratings 5 vs 2; 4: rejected
    assert q[0]["agreement"] == 0.5 and q[1]["rating_spread"] == 3 and q[2]["n_reject_or_edit"] == 2
    side = adjudicate.item_answers(ws, "dora", "gen", 3, hide_names=True)
    assert [a["annotator"] for a in side["annotations"]] == ["annotator 1", "annotator 2"]
    assert {a["decision"] for a in side["annotations"]} == {"accept", "edit"}


def test_adjudicate_commits_revision_and_record_together_and_merge_moves_accepted(ws):
    side = adjudicate.item_answers(ws, "dora", "gen", 3)
    bobs = next(a for a in side["annotations"] if a["annotator"] == "bob")
    r3 = adjudicate.adjudicate(ws, "dora", "gen", 3, pick=bobs["annotation_id"], note="the capital, not a guess")
    r4 = adjudicate.adjudicate(ws, "dora", "gen", 4, decision="reject", note="off topic")
    r5 = adjudicate.adjudicate(ws, "dora", "gen", 5, final={"decision": "accept", "rating": 4})
    log = catalog.dataset_log(ws, "cands")
    assert log[2].number == r3["version"] and "adjudicate #3" in log[2].message and "picked the answer of bob" in log[2].message
    assert log[2].operation["op"] == "adjudicate" and log[2].operation["note"] == "the capital, not a guess"
    assert r4["version"] == r3["version"] + 1 and r5["version"] == r4["version"] + 1
    with Store(ws) as st:
        head = V.resolve(st, "cands")
        s3, s4 = V.get_samples(st, head, [3, 4])
        adj = RT.adjudications(st.conn, 1, 3)[0]
    assert s3.output == "Paris." and "accepted" in s3.tags and set(s3.annotator_ids) == {"ann", "bob", "dora"}
    assert "rejected" in s4.tags
    assert adj["version_number"] == r3["version"] and adj["chosen_annotation_id"] == bobs["annotation_id"]
    with pytest.raises(Conflict, match="already adjudicated"):
        adjudicate.adjudicate(ws, "dora", "gen", 3, decision="accept")
    assert adjudicate.adjudication_queue(ws, "dora", "gen") == []
    # the curator finishes the task: consensus items 1, 2 accepted, then 1, 2, 3, 5 merged into train
    v = adjudicate.merge_task(ws, "cora", "gen")
    with Store(ws) as st:
        merged = [s for s in V.iter_samples(st, v) if s.source == "gen"]
    assert sorted(s.instruction for s in merged) == [f"Generated question {i}?" for i in (1, 2, 3, 5)]
    assert next(s for s in merged if s.instruction.endswith("3?")).output == "Paris."
    assert tasks.get_task(ws, "cora", "gen").merged_version == v.number
    with pytest.raises(Conflict, match="already merged"):
        adjudicate.merge_task(ws, "cora", "gen")


def test_a_failing_adjudication_record_rolls_the_revision_back(ws, monkeypatch):
    before = catalog.get_version(ws, "cands")

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(RT, "record_adjudication", boom)
    with pytest.raises(RuntimeError):
        adjudicate.adjudicate(ws, "dora", "gen", 3, decision="edit", final={"edit": {"response": "Lyon."}})
    after = catalog.get_version(ws, "cands")
    assert after.number == before.number and after.content_hash == before.content_hash
    with Store(ws) as st:
        assert RT.item(st.conn, 1, 3)["state"] == "open"
        assert [e for e in audit.entries(st, action="review.adjudicate")] == []


def test_merge_refuses_while_items_are_undecided(ws):
    from datastore import WorkbenchError
    with pytest.raises(WorkbenchError, match="awaiting adjudication"):
        adjudicate.merge_task(ws, "cora", "gen")


def test_reject_in_an_sft_dataset_removes_the_sample(tmp_path):
    ws = disagreement(tmp_path / "ws2", "s", n=2, sample=1, answers=({"decision": "reject"}, {"decision": "accept"}))
    r = adjudicate.adjudicate(ws, "admin", "s", 1, decision="reject", note="wrong answer")
    v = catalog.get_version(ws, "qa")
    assert v.number == r["version"] == 2 and v.n_samples == 1 and v.n_removed == 1


def test_pick_keeps_the_note_in_the_record_and_the_one_line_log_message(ws):
    side = adjudicate.item_answers(ws, "dora", "gen", 4)
    pick = side["annotations"][0]
    r = adjudicate.adjudicate(ws, "dora", "gen", 4, pick=pick["annotation_id"], note="  off topic,\n  spam  ")
    head = catalog.dataset_log(ws, "cands")[0]
    assert head.number == r["version"]
    assert head.message == f"adjudicate #4 in task 'gen': reject, picked the answer of {pick['annotator']} (off topic, spam)"
    assert head.operation["note"] == "off topic,\n  spam"
    with Store(ws) as st:
        rec = RT.adjudications(st.conn, 1, 4)[0]
    assert rec["note"] == "off topic,\n  spam" and rec["chosen_annotation_id"] == pick["annotation_id"]
    # a blank reason is no reason
    r5 = adjudicate.adjudicate(ws, "dora", "gen", 5, decision="accept", note="   ")
    with Store(ws) as st:
        assert RT.adjudications(st.conn, 1, 5)[0]["note"] is None
    assert catalog.dataset_log(ws, "cands")[0].message.endswith(": accept") and r5["version"]


def _two_tasks_one_rejected(tmp_path):
    """Tasks s and t on one SFT dataset; both disagree on sample 1; s rejects it (removed in v2)."""
    ws = tmp_path / "ws3"
    ws.mkdir()
    add_users(ws)
    add_dataset(ws, "qa", n=2)
    for name in ("s", "t"):
        tasks.open_task(ws, "cora", name=name, dataset="qa", pool=["ann", "bob"])
        annotate.submit(ws, "ann", name, 1, {"decision": "accept"}, submit_id=f"{name}-a1")
        annotate.submit(ws, "bob", name, 1, {"decision": "reject"}, submit_id=f"{name}-b1")
    r = adjudicate.adjudicate(ws, "dora", "s", 1, decision="reject", note="wrong answer")
    assert r["version"] == 2
    return ws


def test_item_answers_of_a_removed_sample_say_where_it_went(tmp_path):
    ws = _two_tasks_one_rejected(tmp_path)
    for task in ("s", "t"):     # s: removed by its own adjudication; t: by the other task's
        d = adjudicate.item_answers(ws, "dora", task, 1)
        assert d["sample"] is None and d["removed_in"] == 2 and d["dataset"] == "qa"
        assert d["last_revision"].sample_id == 1 and d["last_revision"].instruction == "Question 1?"
        assert {a["decision"] for a in d["annotations"]} == {"accept", "reject"}
    assert adjudicate.item_answers(ws, "dora", "t", 1)["state"] == "removed"   # closed by the removal
    with pytest.raises(Conflict, match="already removed"):
        adjudicate.adjudicate(ws, "dora", "t", 1, decision="accept")
    d = adjudicate.item_answers(ws, "dora", "s", 1)
    assert d["state"] == "adjudicated"
    assert [(a["decision"], a["note"], a["version_number"]) for a in d["adjudications"]] == [("reject", "wrong answer", 2)]
    kept = adjudicate.item_answers(ws, "dora", "t", 2)
    assert kept["sample"].sample_id == 2 and kept["removed_in"] is None and kept["last_revision"] is None
