"""Review pages through AppTest: the sign-in gate, the annotation form (buttons with
shortcuts, drafts, idempotent submit), adjudication, agreement and users."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines import auth, catalog
from pipelines.review import adjudicate, annotate, tasks
from tests.app.pages import ENTRY, button, open_page
from tests.pipelines.review.helpers import add_dataset, add_users, disagreement

TIMEOUT_S = 120
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("pages") / "ws"
    ws.mkdir()
    add_users(ws)
    auth.set_password(ws, "admin", "ann", "ann-password-1")
    add_dataset(ws, "qa", n=4)
    tasks.open_task(ws, "cora", name="pg", dataset="qa", pool=["ann", "bob"], guidelines="**Be strict.**")
    tasks.add_suggestions(ws, "cora", "qa", [{"sample_id": s, "source": "reference", "text": f"Ref {s}."}
                                             for s in range(1, 5)])
    return ws


def _app(ws: Path, user: str | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT_S)
    at.session_state["workspace"] = str(ws)
    if user:
        at.session_state["user"] = user
    return at


def _page(ws, page, user) -> AppTest:
    return open_page(ws, page, user, timeout_s=TIMEOUT_S)




def test_sign_in_gate(ws):
    at = _app(ws)
    at.run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Sign in"] and not at.title[0].value == "Review"
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input("wrong-password")
    at.button[0].click().run()
    assert any("wrong user name or password" in e.value for e in at.error)
    at.text_input(key="login_password").input("ann-password-1")
    at.button[0].click().run()
    assert at.session_state["user"] == "ann"
    assert any("Signed in as" in c.value for c in at.caption)


def _key(at, name: str) -> str:
    it = at.session_state["review_item"]["pg"]
    return f"rv-{it.task_id}-{it.sample.sample_id}-{it.round}-{name}"


def _parent(at, node):
    return next(b for b in at._tree if getattr(b, "children", None) and any(c is node for c in b.children.values()))


def _row(at, name: str):
    """A keyed button row: a horizontal flex container that wraps (no fixed columns that cut
    the labels), with its buttons at their own width."""
    row = at.get_by_key(_key(at, name))
    fc = row.proto.flex_container
    assert row.type == "flex_container" and fc.direction == fc.HORIZONTAL and fc.wrap
    return row


def test_annotation_form_submits_once_and_moves_on(ws):
    at = _page(ws, "pages/3_Review.py", "ann")
    actions = _row(at, "actions")
    buttons = [c for c in actions.children.values() if c.type == "button"]
    assert [(b.label, b.proto.shortcut.upper()) for b in buttons] == [
        ("Accept", "A"), ("Reject", "X"), ("Submit", "S"), ("Take suggestion", "T"), ("Back", "B"), ("Next", "N")]
    ratings = [(c.label, c.proto.shortcut) for c in _row(at, "ratings").children.values() if c.type == "button"]
    assert ratings == [(str(v), str(v)) for v in range(1, 6)]
    assert any("Be strict." in m.value for m in at.markdown)
    domain = at.selectbox(key=_key(at, "policy_domain"))
    assert "S9 Indiscriminate Weapons" in domain.options    # the code shown with its name
    assert any("Suggestion" in c.value for c in at.caption)
    first = at.session_state["review_item"]["pg"].sample.sample_id
    button(at, "4").click().run()              # rates 4; autosaves a draft
    assert annotate.open_item(ws, "ann", "pg", first).draft == {"rating": 4}
    button(at, "Accept").click().run()
    assert not at.exception
    # the annotator's own counts, not the global annotation id (that tells how many others answered)
    assert [s.value for s in at.success] == [f"Saved sample #{first} (accept). 1 of 4 done, 3 to go."]
    mine = annotate.my_annotations(ws, "ann", "pg")
    assert [(m["sample_id"], m["decision"], m["rating"]) for m in mine] == [(first, "accept", 4)]
    assert mine[0]["time_spent_ms"] is not None
    second = at.session_state["review_item"]["pg"].sample.sample_id
    assert second != first
    button(at, "Take suggestion").click().run()
    button(at, "Submit").click().run()
    mine = {m["sample_id"]: m for m in annotate.my_annotations(ws, "ann", "pg")}
    assert mine[second]["answers"]["edit"] == {"response": f"Ref {second}."}
    assert [s.value for s in at.success] == [f"Saved sample #{second} (edit). 2 of 4 done, 2 to go."]


def test_submit_without_a_decision_says_so_once_just_under_the_buttons(ws):
    at = _page(ws, "pages/3_Review.py", "ann")
    shown = at.session_state["review_item"]["pg"].sample.sample_id
    submit = button(at, "Submit")
    submit.click().run()
    at.button(key=submit.key).click().run()          # a double click
    assert not at.exception
    assert [e.value for e in at.error] == ["'Decision' is required"]
    actions = _row(at, "actions")
    column = _parent(at, actions)
    order = list(column.children.values())
    under = order[order.index(actions) + 1]          # the next element after the button row
    assert [e.value for e in under if getattr(e, "type", None) == "error"] == ["'Decision' is required"]
    assert at.session_state["review_item"]["pg"].sample.sample_id == shown   # nothing saved, no move
    assert shown not in {m["sample_id"] for m in annotate.my_annotations(ws, "ann", "pg")}


def test_adjudication_and_agreement_pages(ws):
    for sid in range(1, 5):
        annotate.submit(ws, "bob", "pg", sid, {"decision": "reject", "rating": 2}, submit_id=f"pg-b{sid}")
    at = _page(ws, "pages/4_Adjudication.py", "dora")
    assert any(m.label == "Awaiting adjudication" for m in at.metric)
    picks = [b for b in at.button if b.label == "Pick this answer"]
    assert len(picks) == 2
    sid = at.selectbox(key="adj_sample").value
    bobs = next(a for a in adjudicate.item_answers(ws, "dora", "pg", sid)["annotations"] if a["annotator"] == "bob")
    # the reason typed above the answers goes with "Pick this answer" too
    next(t for t in at.text_input if t.label == "Why (goes into the version log)").input("bob is right")
    at.button(key=f"pick-{bobs['annotation_id']}").click().run()
    assert not at.exception
    rec = adjudicate.item_answers(ws, "dora", "pg", sid)["adjudications"][0]
    assert (rec["decision"], rec["chosen_annotation_id"], rec["note"]) == ("reject", bobs["annotation_id"], "bob is right")
    head = catalog.dataset_log(ws, "qa")[0]
    assert head.number == rec["version_number"]
    assert head.message == f"adjudicate #{sid} in task 'pg': reject, picked the answer of bob (bob is right)"
    assert sid not in at.selectbox(key="adj_sample").options   # out of the queue
    assert all(t.value == "" for t in at.text_input if t.label == "Why (goes into the version log)")
    at = _page(ws, "pages/5_Agreement.py", "dora")
    assert any("Krippendorff" in m.label for m in at.metric)
    assert len(at.dataframe) >= 2
    at = _page(ws, "pages/5_Agreement.py", "ann")
    assert any("adjudicated items only" in c.value for c in at.caption)


def test_users_page_for_admins_only(ws):
    at = _page(ws, "pages/11_Users.py", "ann")
    assert any("Only admins" in i.value for i in at.info)
    at = _page(ws, "pages/11_Users.py", "admin")
    assert at.dataframe[0].value["name"].tolist()[:2] == ["admin", "ann"]
    at.text_input[0].input("eve")
    at.selectbox[0].select("annotator")
    at.button[0].click().run()
    assert not at.exception
    assert "eve" in [u.name for u in auth.list_users(ws, "admin")]


def test_adjudication_page_shows_a_removed_sample_without_crashing(tmp_path, monkeypatch):
    """The queue was read just before another adjudicator rejected (removed) the sample."""
    ws = disagreement(tmp_path / "ws", "rm", n=2, sample=2, answers=({"decision": "accept"}, {"decision": "reject"}))
    stale = adjudicate.adjudication_queue(ws, "dora", "rm")
    assert [q["sample_id"] for q in stale] == [2]
    adjudicate.adjudicate(ws, "admin", "rm", 2, decision="reject", note="gone")
    monkeypatch.setattr(adjudicate, "adjudication_queue", lambda *a, **k: stale)
    at = _page(ws, "pages/4_Adjudication.py", "dora")
    assert [w.value for w in at.warning] == ["Sample #2 was removed from dataset qa in v2, its last revision is shown."]
    assert [t.value for t in at.text] == ["Question 2?", "Answer 2."]     # its last revision
    assert any("adjudicated by admin: reject (v2): gone" in c.value for c in at.caption)
    picks = [b for b in at.button if b.label == "Pick this answer"]
    assert len(picks) == 2 and all(b.disabled for b in picks)     # nothing left to decide
    assert at.button(key="FormSubmitter:final-Resolve").disabled
