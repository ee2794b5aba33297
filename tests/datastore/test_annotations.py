"""datastore.annotations and datastore.review_tasks: the SQL under the review services."""
from __future__ import annotations

import dataclasses

import pytest

from datastore import Conflict, Sample, Store
from datastore import annotations as A
from datastore import review_tasks as RT
from datastore import users as U
from datastore import versions as V


@pytest.fixture
def st(tmp_workspace):
    with Store(tmp_workspace) as st:
        rows = [Sample(instruction=f"q{i}", output=f"a{i}").to_row() for i in range(10)]
        V.commit(st, "d", author="t", message="m", add=rows, create=True)
        yield st


def _task(st, pool=("p", "q", "r"), k=2):
    v = V.resolve(st, "d")
    with st.transaction():
        return RT.create_task(st.conn, name="t", dataset_id=v.dataset_id, version_number=v.number,
                              version_id=v.version_id, overlap_k=k, pool=list(pool), guidelines="",
                              questions=[{"name": "decision", "kind": "decision"}], target_dataset=None, user="t")


def test_round_robin_assignment_is_balanced_and_distinct(st):
    tid = _task(st)
    rows = st.conn.execute("SELECT sample_id, annotator FROM review_assignments WHERE task_id = ?", [tid]).fetchall()
    assert len(rows) == 20 and len(set(rows)) == 20
    per = {}
    for _, a in rows:
        per[a] = per.get(a, 0) + 1
    assert sorted(per.values()) == [6, 7, 7]


def test_submit_is_idempotent_by_submit_id_and_unique_per_round(st):
    tid = _task(st)
    with st.transaction():
        a1, w1 = A.submit(st.conn, submit_id="s1", task_id=tid, sample_id=1, annotator="p", round_=0, row_hash=None,
                          answers={"decision": "accept"}, time_spent_ms=10)
    with st.transaction():
        a2, w2 = A.submit(st.conn, submit_id="s1", task_id=tid, sample_id=1, annotator="p", round_=0, row_hash=None,
                          answers={"decision": "reject"}, time_spent_ms=10)
    assert a1 == a2 and w1 is True and w2 is False
    assert A.get(st.conn, a1)["decision"] == "accept"
    with st.transaction():   # a new submit id for the same item replaces the answer
        a3, w3 = A.submit(st.conn, submit_id="s2", task_id=tid, sample_id=1, annotator="p", round_=0, row_hash=None,
                          answers={"decision": "reject"}, time_spent_ms=5)
    assert a3 == a1 and w3 and A.get(st.conn, a1)["decision"] == "reject" and A.get(st.conn, a1)["time_spent_ms"] == 15
    with pytest.raises(Conflict):
        with st.transaction():
            A.submit(st.conn, submit_id="s2", task_id=tid, sample_id=2, annotator="q", round_=0, row_hash=None,
                     answers={"decision": "accept"}, time_spent_ms=1)
    # the unique key refuses a second annotation for the same (task, sample, annotator, round)
    import duckdb
    with pytest.raises(duckdb.ConstraintException):
        st.conn.execute("INSERT INTO annotations (annotation_id, task_id, sample_id, annotator, round, answers, "
                        "created_at, updated_at) VALUES (999, ?, 1, 'p', 0, '{}', now(), now())", [tid])


def test_mark_stale_only_on_text_changes(st, monkeypatch):
    monkeypatch.setattr(V, "IN_COMMIT_HOOKS", [])   # call mark_stale by hand below
    tid = _task(st)
    who = RT.assignees(st.conn, tid, 3)[0]
    with st.transaction():
        A.submit(st.conn, submit_id="s1", task_id=tid, sample_id=3, annotator=who, round_=0, row_hash=None,
                 answers={"decision": "accept"}, time_spent_ms=1)
    s = V.get_samples(st, V.resolve(st, "d"), [3])[0]
    v = V.commit(st, "d", author="t", message="tag", update={3: dataclasses.replace(s, tags=["x"]).to_row()})
    with st.transaction():
        assert A.mark_stale(st.conn, 1, v.number, [3], [])["stale_items"] == 0
    v = V.commit(st, "d", author="t", message="text", update={3: dataclasses.replace(s, output="new").to_row()})
    with st.transaction():
        assert A.mark_stale(st.conn, 1, v.number, [3], []) == {"stale_items": 1, "stale_annotations": 1,
                                                               "removed_items": 0}
    assert RT.item(st.conn, tid, 3)["round"] == 1 and A.for_item(st.conn, tid, 3) == []
    assert RT.assignment(st.conn, tid, who, 3)[1] == "pending"


def test_users_insert_role_and_last_admin(st):
    U.insert(st, "a", "admin", None, actor="t")
    U.insert(st, "b", "annotator", "hash", actor="t")
    with pytest.raises(Conflict):
        U.insert(st, "b", "admin", None, actor="t")
    with pytest.raises(Conflict, match="last admin"):
        U.update_role(st, "a", "curator", actor="t")
    U.update_role(st, "b", "admin", actor="t")
    U.update_role(st, "a", "curator", actor="t")
    assert [(u.name, u.role, u.has_password) for u in U.list_users(st)] == [("a", "curator", False), ("b", "admin", True)]
