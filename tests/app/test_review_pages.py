"""Review pages through AppTest: the sign-in gate, the annotation form (buttons with
shortcuts, drafts, idempotent submit), adjudication, agreement and users."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines import auth
from pipelines.review import annotate, tasks
from tests.pipelines.review.helpers import add_dataset, add_users

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "app" / "Workbench.py")
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
    at = _app(ws, user)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _button(at, label):
    return next(b for b in at.button if b.label == label)


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


def test_annotation_form_submits_once_and_moves_on(ws):
    at = _page(ws, "pages/3_Review.py", "ann")
    labels = [b.label for b in at.button]
    for want in ("Accept", "Reject", "Submit", "Take suggestion", "Back", "Next", "Rate 1", "Rate 5"):
        assert want in labels
    assert any("Be strict." in m.value for m in at.markdown)
    assert any("Suggestion" in c.value for c in at.caption)
    first = at.session_state["review_item"]["pg"].sample.sample_id
    _button(at, "Rate 4").click().run()              # autosaves a draft
    assert annotate.open_item(ws, "ann", "pg", first).draft == {"rating": 4}
    _button(at, "Accept").click().run()
    assert not at.exception
    assert any(f"Saved sample #{first}" in s.value for s in at.success)
    mine = annotate.my_annotations(ws, "ann", "pg")
    assert [(m["sample_id"], m["decision"], m["rating"]) for m in mine] == [(first, "accept", 4)]
    assert mine[0]["time_spent_ms"] is not None
    second = at.session_state["review_item"]["pg"].sample.sample_id
    assert second != first
    _button(at, "Take suggestion").click().run()
    _button(at, "Submit").click().run()
    mine = {m["sample_id"]: m for m in annotate.my_annotations(ws, "ann", "pg")}
    assert mine[second]["answers"]["edit"] == {"response": f"Ref {second}."}


def test_adjudication_and_agreement_pages(ws):
    for sid in range(1, 5):
        annotate.submit(ws, "bob", "pg", sid, {"decision": "reject", "rating": 2}, submit_id=f"pg-b{sid}")
    at = _page(ws, "pages/4_Adjudication.py", "dora")
    assert any(m.label == "Awaiting adjudication" for m in at.metric)
    picks = [b for b in at.button if b.label == "Pick this answer"]
    assert len(picks) == 2
    picks[0].click().run()
    assert not at.exception
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
