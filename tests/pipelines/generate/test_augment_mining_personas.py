"""Augmentation (paraphrase, counterfactual, rebalancing), challenging-sample mining and
persona conversations: metadata and lineage kept, filters with reasons."""
from __future__ import annotations

import pytest

from datastore import Sample
from datastore.errors import WorkbenchError
from pipelines.generate.augment import (counterfactual_samples, paraphrase_samples, rebalance, rebalance_plan)
from pipelines.generate.backends import get_backend
from pipelines.generate.mining import MinedSource, mine_followups
from pipelines.generate.personas import BEHAVIOURS, PersonaConfig, generate_persona_samples, persona_system_prompt


def _samples():
    return [Sample(kind="instruction", instruction=f"Add the numbers {i} and {i + 1} and explain.", output=str(2 * i + 1),
                   task_type="math" if i < 2 else "qa", language="en", policy_domain=None, tags=["seed"],
                   sample_id=i + 1, row_hash=f"h{i}") for i in range(5)]


def test_paraphrase_keeps_answer_metadata_and_links_source():
    be = get_backend("scripted", responses=["Please explain the result of combining quantity {uid} with another."])
    res = paraphrase_samples(be, _samples(), source_ref={"dataset": "pool", "version": 3})
    assert res.generated == 5 and len(res.samples) + len(res.dropped) == 5 and res.samples
    for s in res.samples:
        src = _samples()[s.lineage["parent"]["sample_id"] - 1]
        assert s.output == src.output and s.task_type == src.task_type and s.language == "en"
        assert s.instruction != src.instruction and s.sample_id is None
        assert s.lineage["parent"] == {"dataset": "pool", "version": 3, "sample_id": src.sample_id, "row_hash": src.row_hash}
        assert s.lineage["augment"]["op"] == "paraphrase" and set(s.tags) == {"seed", "paraphrase"}


def test_paraphrase_drops_unchanged_and_too_similar():
    same = get_backend("scripted", responses=["x"], by_prompt={
        "numbers 0 and 1": ["Add the numbers 0 and 1 and explain."],
        "numbers 1 and 2": ["Add the numbers 1 and 2 and then explain."]})
    res = paraphrase_samples(same, _samples()[:2])
    assert [d["reason"] for d in res.dropped] == ["unchanged", "too_similar"]


def test_counterfactual_regenerates_the_answer():
    be = get_backend("scripted", responses=["Subtract number {n} from seven hundred and explain."])
    res = counterfactual_samples(be, _samples()[:2])
    assert res.samples and all(s.output != "1" and s.lineage["augment"]["attribute"] for s in res.samples)
    assert all("answer" in s.lineage["augment"] for s in res.samples)


def test_rebalance_plan_and_fill():
    plan = rebalance_plan(_samples(), "task_type", {"math": 1, "qa": 1})
    assert plan["current"] == {"math": 2, "qa": 3} and plan["target"] == {"math": 3, "qa": 3}
    assert plan["add"] == {"math": 1, "qa": 0} and plan["surplus"] == {}
    assert rebalance_plan(_samples(), "task_type", {"math": 0.5, "qa": 0.5}, total=4)["surplus"] == {"qa": 1}
    with pytest.raises(WorkbenchError, match="no samples"):
        rebalance_plan(_samples(), "task_type", {"code": 1})
    with pytest.raises(WorkbenchError, match="cannot balance by"):
        rebalance_plan(_samples(), "colour", {"x": 1})
    be = get_backend("scripted", responses=["Compute the total of value {uid} plus its neighbour please."])
    plan, res = rebalance(be, _samples(), "task_type", {"math": 3, "qa": 1}, total=8)
    assert plan["add"] == {"math": 4, "qa": 0}
    assert 0 < len(res.samples) <= 4 and all(s.task_type == "math" for s in res.samples)


def test_mining_links_to_the_source_and_changes_the_surface():
    src = [MinedSource(sample=s, reason="answer was wrong", origin="eval_failed", ref={"run": "r1"}) for s in _samples()[:2]]
    be = get_backend("scripted", responses=["Multiply the prices {uid} of two fruit baskets and show your work.",
                                            "Add the numbers 0 and 1 and explain."])
    res = mine_followups(be, src)
    assert res.generated == 4 and len(res.samples) + len(res.dropped) == 4
    for s in res.samples:
        m = s.lineage["mined_from"]
        assert m["run"] == "r1" and m["origin"] == "eval_failed" and m["reason"] == "answer was wrong"
        assert m["sample_id"] in (1, 2) and s.task_type == "math" and "mined" in s.tags
    assert {d["reason"] for d in res.dropped} <= {"same_surface", "duplicate", "near_duplicate"}
    with pytest.raises(WorkbenchError, match="at least one"):
        mine_followups(be, [])


def test_personas_have_system_prompts_and_behaviours():
    be = get_backend("scripted", responses=["Could you help me understand topic {uid} for my exam tomorrow?"])
    res = generate_persona_samples(be, PersonaConfig(personas=("teacher", "lawyer"), behaviours=tuple(BEHAVIOURS),
                                                               near_dup_threshold=0.99))
    assert res.generated == 8 and len(res.samples) == 8
    s = next(x for x in res.samples if "behaviour:clarify" in x.tags and "persona:lawyer" in x.tags)
    assert s.messages[0]["role"] == "system" and s.messages[0]["content"] == persona_system_prompt("lawyer", "clarify")
    assert "clarification question" in s.messages[0]["content"] and [m["role"] for m in s.messages] == ["system", "user", "assistant"]
    assert s.lineage["system_prompt"] == "system/lawyer"
    with pytest.raises(WorkbenchError, match="unknown persona"):
        generate_persona_samples(be, PersonaConfig(personas=("pirate",)))


def test_sources_from_review_rows_fixture():
    from pipelines.generate.mining import sources_from_review_rows
    rows = [
        {"sample_id": 1, "kind": "instruction", "instruction": "Sum 2 and 2.", "output": "5", "row_hash": "a",
         "annotations": [{"decision": "reject", "rating": 1, "answers": '{"note": "wrong sum", "flags": ["factually_wrong"]}',
                          "stale": False}], "adjudication": None},
        {"sample_id": 2, "kind": "instruction", "instruction": "Name a bird.", "output": "Robin", "row_hash": "b",
         "annotations": [{"decision": "accept", "rating": 2, "answers": "{}", "stale": False},
                         {"decision": "accept", "rating": 1, "answers": "{}", "stale": False}], "adjudication": None},
        {"sample_id": 3, "kind": "instruction", "instruction": "Name a fish.", "output": "Cod", "row_hash": "c",
         "annotations": [{"decision": "reject", "rating": 1, "answers": "{}", "stale": False}],
         "adjudication": {"decision": "accept", "note": "fine"}},
        {"sample_id": 4, "kind": "instruction", "instruction": "Name a tree.", "output": "Oak", "row_hash": "d",
         "annotations": [{"decision": "reject", "rating": 1, "answers": "{}", "stale": True}], "adjudication": None},
    ]
    got = sources_from_review_rows(rows, ref={"review_task": "t"})
    assert [(m.sample.sample_id, m.origin) for m in got] == [(1, "review_rejected"), (2, "review_low_rating")]
    assert got[0].reason == "rejected in review: wrong sum; flag: factually_wrong"
    assert got[1].reason.startswith("rated 1.5 of 5") and got[0].ref == {"review_task": "t", "sample_id": 1}
    assert sources_from_review_rows(rows, max_rating=None)[-1].sample.sample_id == 1


def test_sources_from_a_real_review_task(tmp_workspace):
    pytest.importorskip("pipelines.review.tasks")
    from pipelines.generate.mining import sources_from_review
    from pipelines.review.annotate import next_item, submit
    from pipelines.review.tasks import open_task

    from .helpers import make_workspace
    ws = make_workspace(tmp_workspace)
    open_task(ws, "cur", name="check-pool", dataset="pool", overlap_k=1, pool=["ann"])
    decisions = {}
    item = next_item(ws, "ann", "check-pool")
    while item is not None and len(decisions) < 3:
        d = ["reject", "accept", "accept"][len(decisions)]
        answers = {"decision": d, "rating": [1, 5, 2][len(decisions)], "note": f"note {len(decisions)}"}
        submit(ws, "ann", "check-pool", item.sample.sample_id, answers, submit_id=item.submit_id)
        decisions[item.sample.sample_id] = d
        item = next_item(ws, "ann", "check-pool", after_position=item.position)
    got = sources_from_review(ws, "check-pool", user="cur", max_rating=2)
    ids = list(decisions)
    assert [(m.sample.sample_id, m.origin) for m in got] == [(ids[0], "review_rejected"), (ids[2], "review_low_rating")]
    assert got[0].ref["review_task"] == "check-pool" and got[0].sample.instruction
