"""Preference pairs from reviewers' edits come from the annotation (the text the annotator saw
against the text they wrote), so extracting before or after adjudication gives the same pairs."""
from __future__ import annotations

from pipelines.preference.store import extract_from_review, read_items
from pipelines.review import adjudicate, annotate
from tests.pipelines.review.helpers import disagreement

EDIT_2 = {"decision": "edit", "edit": {"response": "Answer 2, with the reason spelled out."}}
EDIT_3 = {"decision": "edit", "edit": {"instruction": "Question 3, asked plainly?", "response": "Answer 3, fixed."}}


def _pairs(ws, dataset):
    _, items = read_items(ws, dataset, user="cora")
    return sorted((tuple(t["content"] for t in p.prompt), p.chosen_text, p.rejected_text, p.lineage["annotators"][0])
                  for p in items)


def _review(ws, task):
    """ann edits samples 2 and 3 (bob accepts them); returns ann's annotation ids by sample."""
    disagreement(ws, task, n=4, sample=2, answers=(EDIT_2, {"decision": "accept"}))
    annotate.submit(ws, "ann", task, 3, EDIT_3, submit_id="ann-3")
    annotate.submit(ws, "bob", task, 3, {"decision": "accept"}, submit_id="bob-3")
    return {sid: next(a["annotation_id"] for a in adjudicate.item_answers(ws, "dora", task, sid)["annotations"]
                      if a["annotator"] == "ann") for sid in (2, 3)}


def _adjudicate(ws, task, ann_ids):
    for sid, aid in ann_ids.items():
        res = adjudicate.adjudicate(ws, "dora", task, sid, pick=aid)
        assert res["decision"] == "edit" and res["version"] is not None   # the edit is now the sample's text


WANT = [(("Question 2?",), "Answer 2, with the reason spelled out.", "Answer 2.", "ann"),
        (("Question 3?",), "Answer 3, fixed.", "Answer 3.", "ann")]


def test_pairs_before_and_after_adjudication_are_the_same(tmp_path):
    ws = tmp_path / "a"
    ids = _review(ws, "t")
    extract_from_review(ws, "t", "before", user="cora")
    _adjudicate(ws, "t", ids)
    after_sample = adjudicate.item_answers(ws, "dora", "t", 2)["sample"]
    assert after_sample.output == "Answer 2, with the reason spelled out."
    extract_from_review(ws, "t", "after", user="cora")
    assert _pairs(ws, "before") == _pairs(ws, "after") == WANT


def test_adjudicating_first_then_extracting_gives_the_same_pairs(tmp_path):
    ws = tmp_path / "b"
    _adjudicate(ws, "t", _review(ws, "t"))
    extract_from_review(ws, "t", "only_after", user="cora")
    assert _pairs(ws, "only_after") == WANT
