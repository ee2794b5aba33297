"""Blindness: every public function of ``pipelines.review``, called as an
annotator, never returns another annotator's answer on a sample before it is adjudicated.

The test enumerates the package's public functions itself and fails when one is not
covered here, so a new service function must be added (and checked) to pass.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import pipelines.review as review_pkg
from datastore import PermissionDenied
from tests.pipelines.review.helpers import build

CANARY = "CANARY-BOB"


def _public_functions() -> dict[str, object]:
    out = {}
    for m in pkgutil.iter_modules(review_pkg.__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"pipelines.review.{m.name}")
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if not name.startswith("_") and fn.__module__ == mod.__name__:
                out[f"{m.name}.{name}"] = fn
    return out


#: Functions that take no workspace: they cannot read anyone's answers.
PURE = {
    "questions.default_questions": lambda f, ws: f(),
    "questions.normalize_questions": lambda f, ws: f(None),
    "questions.validate_answers": lambda f, ws: f([{"name": "decision", "kind": "decision", "label": "D",
                                                    "options": ["accept"], "required": True}], {"decision": "accept"}),
    "agreement.krippendorff_alpha": lambda f, ws: f([[2, 0], [1, 1]]),
    "agreement.fleiss": lambda f, ws: f([[2, 0], [1, 1]]),
    "agreement.fleiss_from_counts": lambda f, ws: f(2, 2, [3, 1], 1),
    "agreement.cohen_from_pairs": lambda f, ws: f([("a", "a", 1)], ["a", "b"]),
    "agreement.cohen_from_table": lambda f, ws: f([[1, 0], [0, 1]]),
    "agreement.coincidences": lambda f, ws: f([[2, 0], [1, 1]]),
    "agreement.alpha_from_coincidences": lambda f, ws: f(np.array([[2.0, 1.0], [1.0, 0.0]])),
    "agreement.measured_questions": lambda f, ws: f([]),
    "agreement.code_answers": lambda f, ws: f([], {}),
    "annotate.new_submit_id": lambda f, ws: f(),
    "adjudicate.apply_edit": lambda f, ws: None,  # pure transformation of a Sample it is given
    # pure: an edit checked and merged onto a Sample it is given
    "edits.edited_tools": lambda f, ws: f("[]"),
    "edits.edited_messages": lambda f, ws: None,
    "edits.normalize_edit": lambda f, ws: None,
    "edits.apply_conversation_edit": lambda f, ws: None,
    "hooks.install": lambda f, ws: f(),
    "hooks.mark_stale_on_commit": lambda f, ws: None,  # called by versions.commit inside a commit
}
#: Service functions, called as the annotator "ann" (``ws`` is the workspace).
SERVICES = {
    "tasks.open_task": lambda f, ws: f(ws, "ann", name="x", dataset="qa", pool=["ann", "bob"]),
    "tasks.list_tasks": lambda f, ws: f(ws, "ann"),
    "tasks.get_task": lambda f, ws: f(ws, "ann", "blind"),
    "tasks.task_summary": lambda f, ws: f(ws, "ann", "blind"),
    "tasks.add_suggestions": lambda f, ws: f(ws, "ann", "qa", [{"sample_id": 1, "source": "reference", "text": "x"}]),
    "annotate.next_item": lambda f, ws: f(ws, "ann", "blind"),
    "annotate.previous_item": lambda f, ws: f(ws, "ann", "blind"),
    "annotate.open_item": lambda f, ws: [f(ws, "ann", "blind", i) for i in range(1, 7)],
    "annotate.save_draft": lambda f, ws: f(ws, "ann", "blind", 3, {"decision": "reject"}, 500),
    "annotate.submit": lambda f, ws: f(ws, "ann", "blind", 2, {"decision": "accept", "rating": 5}, submit_id="s-ann-2"),
    "annotate.my_annotations": lambda f, ws: f(ws, "ann", "blind"),
    "annotate.my_progress": lambda f, ws: f(ws, "ann", "blind"),
    "annotate.my_tasks": lambda f, ws: f(ws, "ann"),
    "agreement.agreement_report": lambda f, ws: f(ws, "ann", "blind"),
    "agreement.agreement_by_version": lambda f, ws: f(ws, "ann", "qa"),
    "agreement.agreement_page": lambda f, ws: f(ws, "ann", "blind"),
    "adjudicate.adjudication_queue": lambda f, ws: f(ws, "ann", "blind"),
    "adjudicate.item_answers": lambda f, ws: f(ws, "ann", "blind", 1),
    "adjudicate.adjudicate": lambda f, ws: f(ws, "ann", "blind", 1, decision="accept"),
    "adjudicate.merge_task": lambda f, ws: f(ws, "ann", "blind"),
    "gold.mark_gold": lambda f, ws: f(ws, "ann", "blind", 1, {"decision": "accept"}),
    "gold.list_gold": lambda f, ws: f(ws, "ann", "blind"),
    "search.search": lambda f, ws: f(ws, "ann", {"task": "blind", "text": "Question"}),
    "search.bulk_preview": lambda f, ws: f(ws, "ann", {"task": "blind"}),
    "search.bulk_apply": lambda f, ws: f(ws, "ann", {"task": "blind"}, "tag", expected_count=6, tag="t"),
    "export.export_annotations": lambda f, ws: f(ws, "ann", "blind", ws / "out.parquet"),
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from pipelines.review import annotate, tasks
    ws = build(tmp_path_factory.mktemp("blind") / "ws", n=6)
    tasks.open_task(ws, "cora", name="blind", dataset="qa", pool=["ann", "bob"])
    # bob answers everything with text and values ann must never see
    for sid in range(1, 7):
        annotate.submit(ws, "bob", "blind", sid, {"decision": "edit", "rating": 1, "note": f"{CANARY} note {sid}",
                                                 "edit": {"response": f"{CANARY} edit {sid}"},
                                                 "flags": ["personal_data"], "difficulty": "hard"},
                        submit_id=f"bob-{sid}", time_spent_ms=1000)
    # ann answers two of the six; the rest stay open in her queue
    for sid in (1, 4):
        annotate.submit(ws, "ann", "blind", sid, {"decision": "accept", "rating": 4}, submit_id=f"ann-{sid}",
                        time_spent_ms=900)
    return ws


def test_every_public_function_is_covered():
    found = set(_public_functions())
    covered = set(PURE) | set(SERVICES)
    assert found - covered == set(), f"new public function(s) not checked for blindness: {sorted(found - covered)}"
    assert covered - found == set(), f"stale entries: {sorted(covered - found)}"


def test_no_service_function_reveals_another_annotators_answer(ws):
    fns = _public_functions()
    bob_ids = set()
    from datastore import Store
    from datastore import annotations as A
    with Store(ws) as st:
        bob_ids = {a["annotation_id"] for sid in range(1, 7) for a in A.for_item(st.conn, 1, sid)
                   if a["annotator"] == "bob"}
    assert len(bob_ids) == 6
    results = {}
    for name, call in {**PURE, **SERVICES}.items():
        try:
            results[name] = call(fns[name], ws)
        except PermissionDenied:
            results[name] = "denied"
    text = repr(results)
    assert CANARY not in text
    # nothing that came back carries bob's values or annotation ids
    for name, res in results.items():
        blob = repr(res)
        assert "'bob'" not in blob or name in ("tasks.get_task", "tasks.list_tasks"), name  # pool names only
        for aid in bob_ids:
            assert f"'annotation_id': {aid}," not in blob, name
    # the annotator got her own items and answers, and no figure over unadjudicated items
    assert results["annotate.next_item"] is not None
    items = {it.sample.sample_id: it for it in results["annotate.open_item"]}
    assert items[1].own_answers == {"decision": "accept", "rating": 4}
    assert items[3].own_answers is None and items[3].draft is None  # draft saved after this call
    rep = results["agreement.agreement_report"]
    assert rep["scope"] == "adjudicated"
    assert all(q["alpha_items"] == 0 and q["pairs"] == [] for q in rep["questions"])
    assert [r["annotator"] for r in rep["annotators"]] == []
    for denied in ("tasks.open_task", "tasks.task_summary", "tasks.add_suggestions", "adjudicate.adjudication_queue",
                   "adjudicate.item_answers", "adjudicate.adjudicate", "adjudicate.merge_task", "gold.mark_gold",
                   "gold.list_gold", "search.search", "search.bulk_preview", "search.bulk_apply",
                   "export.export_annotations"):
        assert results[denied] == "denied", denied


def test_after_adjudication_the_annotator_sees_figures_of_adjudicated_items_only(ws):
    from pipelines.review import adjudicate, agreement
    adjudicate.adjudicate(ws, "dora", "blind", 4, decision="accept", note="ann was right")
    rep = agreement.agreement_report(ws, "ann", "blind")
    dec = next(q for q in rep["questions"] if q["question"] == "decision")
    assert dec["alpha_items"] == 1 and dec["pairs"][0]["items"] == 1
    assert [r["annotator"] for r in rep["annotators"]] == ["ann"]
    assert rep["annotators"][0]["agreement_with_adjudicated"] == 1.0
