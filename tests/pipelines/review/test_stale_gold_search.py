"""Gold items, stale annotations, and search and bulk actions."""
from __future__ import annotations

import dataclasses

import pytest

from datastore import Conflict, PermissionDenied, Store
from datastore import annotations as A
from datastore import audit
from datastore import versions as V
from pipelines import catalog
from pipelines.review import adjudicate, annotate, gold, search, tasks
from tests.pipelines.review.helpers import build


@pytest.fixture
def ws(tmp_path):
    ws = build(tmp_path / "ws", n=6)
    tasks.open_task(ws, "cora", name="t", dataset="qa", pool=["ann", "bob"])
    return ws


def _answer_all(ws, who, decision="accept"):
    pos = None
    while (it := annotate.next_item(ws, who, "t", after_position=pos)) is not None:
        annotate.submit(ws, who, "t", it.sample.sample_id, {"decision": decision, "rating": 3},
                        submit_id=f"{who}-{it.sample.sample_id}-{it.round}")
        pos = it.position


def _in_queue(ws, who, task, sid) -> bool:
    try:
        annotate.open_item(ws, who, task, sid)
        return True
    except PermissionDenied:
        return False


def _edit(ws, sid, **changes):
    with Store(ws) as st:
        s = V.get_samples(st, V.resolve(st, "qa"), [sid])[0]
        return V.commit(st, "qa", author="cora", message="curator edit",
                        update={sid: dataclasses.replace(s, **changes).to_row()})


def test_text_change_marks_annotations_stale_and_requeues(ws):
    _answer_all(ws, "ann")
    _answer_all(ws, "bob")
    assert annotate.next_item(ws, "ann", "t") is None
    _edit(ws, 2, tags=["reviewed"])                      # metadata only: not stale
    assert annotate.next_item(ws, "ann", "t") is None
    _edit(ws, 2, output="A rewritten answer.")           # text: stale, back in both queues
    for who in ("ann", "bob"):
        it = annotate.next_item(ws, who, "t")
        assert it.sample.sample_id == 2 and it.round == 1 and it.own_answers is None
        assert it.sample.output == "A rewritten answer."
    with Store(ws) as st:
        anns = A.for_item(st.conn, 1, 2, include_stale=True)
    assert [a["stale"] for a in anns] == [True, True]
    assert tasks.task_summary(ws, "cora", "t")["stale_annotations"] == 2
    annotate.submit(ws, "ann", "t", 2, {"decision": "accept"}, submit_id="ann-2-again")
    with Store(ws) as st:
        cur = A.for_item(st.conn, 1, 2)
    assert [(a["annotator"], a["round"]) for a in cur] == [("ann", 1)]


def test_own_adjudication_is_not_stale_but_other_tasks_are(ws):
    tasks.open_task(ws, "cora", name="t2", dataset="qa", pool=["ann", "cat"])
    annotate.submit(ws, "ann", "t", 1, {"decision": "edit", "edit": {"response": "New."}}, submit_id="x1")
    annotate.submit(ws, "bob", "t", 1, {"decision": "accept"}, submit_id="x2")
    annotate.submit(ws, "ann", "t2", 1, {"decision": "accept"}, submit_id="x3")
    adjudicate.adjudicate(ws, "dora", "t", 1, decision="edit", final={"edit": {"response": "New."}})
    with Store(ws) as st:
        assert [a["stale"] for a in A.for_item(st.conn, 1, 1, include_stale=True)] == [False, False]
        assert [a["stale"] for a in A.for_item(st.conn, 2, 1, include_stale=True)] == [True]


def test_removed_sample_leaves_the_queues(ws):
    with Store(ws) as st:
        V.commit(st, "qa", author="cora", message="drop 3", remove=[3])
    for who in ("ann", "bob"):
        seen, pos = [], None
        while (it := annotate.next_item(ws, who, "t", after_position=pos)) is not None and it.sample.sample_id not in seen:
            seen.append(it.sample.sample_id)
            pos = it.position
        assert 3 not in seen


def test_gold_items_are_mixed_in_unannounced_and_scored(ws):
    tasks.open_task(ws, "cora", name="g", dataset="qa", pool=["ann", "bob", "cat"])  # k=2 of 3
    holders = [u for u in ("ann", "bob", "cat") if _in_queue(ws, u, "g", 5)]
    assert len(holders) == 2
    gold.mark_gold(ws, "cora", "g", 5, {"decision": "reject"})
    assert all(_in_queue(ws, u, "g", 5) for u in ("ann", "bob", "cat"))  # every pool annotator gets it
    with pytest.raises(PermissionDenied):
        gold.list_gold(ws, "ann", "g")
    assert gold.list_gold(ws, "cora", "g") == {5: {"decision": "reject"}}
    it = annotate.open_item(ws, "cat", "g", 5)
    fields = set(dataclasses.asdict(it))
    assert not any("gold" in f for f in fields) and "gold" not in repr(it).lower()


def test_search_filters_and_bulk_actions(ws):
    _answer_all(ws, "ann")
    annotate.submit(ws, "bob", "t", 1, {"decision": "reject"}, submit_id="b1")
    annotate.submit(ws, "bob", "t", 2, {"decision": "accept"}, submit_id="b2")
    tasks.add_suggestions(ws, "cora", "qa", [{"sample_id": 4, "source": "scoring_head", "score": 0.91, "decision": "accept"},
                                             {"sample_id": 5, "source": "reference", "text": "Reference five.", "score": 0.4}])
    s = search.search(ws, "dora", {"dataset": "qa", "text": "question 4"})
    assert s["count"] == 1 and s["samples"][0].sample_id == 4
    assert search.search(ws, "dora", {"task": "t", "disagreement": True})["count"] == 1
    assert search.search(ws, "dora", {"task": "t", "status": "complete"})["count"] == 2
    assert search.search(ws, "dora", {"task": "t", "status": "partial"})["count"] == 4
    assert search.search(ws, "dora", {"task": "t", "min_score": 0.5})["count"] == 1
    flt = {"task": "t", "status": "partial"}
    n = search.bulk_preview(ws, "cora", flt)
    assert n == 4
    with pytest.raises(Conflict, match="preview again"):
        search.bulk_apply(ws, "cora", flt, "tag", expected_count=3, tag="second-pass")
    res = search.bulk_apply(ws, "cora", flt, "tag", expected_count=4, tag="second-pass")
    v = catalog.get_version(ws, "qa")
    assert res["version"] == v.number and v.n_modified == 4 and v.operation["op"] == "bulk.tag"
    with Store(ws) as st:
        assert audit.entries(st, limit=1)[0]["details"]["modified"] == 4
    res = search.bulk_apply(ws, "cora", {"task": "t", "status": "partial"}, "assign", expected_count=4, annotator="cat")
    assert res["assigned"] == 4 and annotate.my_progress(ws, "cat", "t")["pending"] == 4
    res = search.bulk_apply(ws, "cora", {"dataset": "qa", "max_score": 0.5}, "accept_suggestions", expected_count=1)
    with Store(ws) as st:
        s5 = V.get_samples(st, V.resolve(st, "qa"), [5])[0]
    assert res["changed"] == 1 and s5.output == "Reference five."
