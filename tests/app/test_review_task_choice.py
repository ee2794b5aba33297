"""The Review page keeps the task the annotator picked after a submit (the task's label shows
its progress, which changes with every submit)."""
from __future__ import annotations

import os

from pipelines.review import annotate, tasks
from tests.app.pages import button, open_page
from tests.pipelines.review.helpers import add_dataset, add_users

os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


def test_submit_stays_on_the_picked_task(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    add_users(ws)
    add_dataset(ws, "qa", n=3)
    add_dataset(ws, "qb", n=3)
    tasks.open_task(ws, "cora", name="first", dataset="qa", pool=["ann"], overlap_k=1)
    tasks.open_task(ws, "cora", name="second", dataset="qb", pool=["ann"], overlap_k=1)
    at = open_page(ws, "pages/3_Review.py", "ann")
    box = at.selectbox(key="review_task")
    assert box.value == "first"
    box.select("second").run()
    assert at.selectbox(key="review_task").value == "second"
    shown = at.session_state["review_item"]["second"].sample.sample_id
    button(at, "Accept").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [f"Saved sample #{shown} (accept). 1 of 3 done, 2 to go."]
    assert at.selectbox(key="review_task").value == "second"     # not back on the first task
    assert [m["sample_id"] for m in annotate.my_annotations(ws, "ann", "second")] == [shown]
    assert "second · qb v1 · 1/3 done" in at.selectbox(key="review_task").options
