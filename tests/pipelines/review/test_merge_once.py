"""Merging accepted staging samples never copies a sample twice: ``merge_accepted`` skips
staging samples that already have a copy in the target (found by lineage), and a review
task merges only its own items (``sample_ids``), so two tasks on one staging dataset each
move their own accepted samples once."""
from __future__ import annotations

from collections import Counter

import pytest

from datastore import Sample, Store, WorkbenchError
from datastore import versions as V
from pipelines import curation
from pipelines.review import adjudicate, annotate, tasks
from tests.pipelines.review.helpers import with_candidates


def _cands(ids):
    return [Sample(instruction=f"Generated question {i}?", output=f"Generated answer {i}.", source="gen") for i in ids]


def _parents(ws, target="train") -> Counter:
    with Store(ws) as st:
        return Counter(s.lineage["parent"]["sample_id"] for s in V.iter_samples(st, V.resolve(st, target))
                       if s.source == "gen")


@pytest.fixture
def ws(tmp_path):
    return with_candidates(tmp_path / "ws", 4)


def test_merge_accepted_takes_sample_ids_and_skips_what_was_merged(ws):
    curation.accept_candidates(ws, "cands", [1, 2, 3], user="cora")
    v1 = curation.merge_accepted(ws, "cands", "train", user="cora", sample_ids=[1, 4])  # 4 is not accepted
    assert _parents(ws) == Counter({1: 1}) and v1.n_samples == 3
    v2 = curation.merge_accepted(ws, "cands", "train", user="cora")   # everything accepted: only 2 and 3 are new
    assert _parents(ws) == Counter({1: 1, 2: 1, 3: 1}) and v2.n_samples == 5
    assert v2.operation["skipped_already_merged"] == 1 and v2.operation["count"] == 2
    with pytest.raises(WorkbenchError, match="3 already merged into train"):
        curation.merge_accepted(ws, "cands", "train", user="cora")
    with Store(ws) as st:
        assert V.resolve(st, "train").number == v2.number   # the refused merge committed nothing


def test_two_tasks_on_one_staging_dataset_merge_each_sample_once(ws):
    # task A reviews the first four candidates; more candidates arrive; task B reviews all six
    tasks.open_task(ws, "cora", name="a", dataset="cands", pool=["ann", "bob"], target_dataset="train")
    curation.stage_candidates(ws, "cands", _cands(range(5, 7)), user="cora", message="more")
    tasks.open_task(ws, "cora", name="b", dataset="cands", pool=["ann", "cat"], target_dataset="train")
    for task, pool, ids in (("a", ("ann", "bob"), range(1, 5)), ("b", ("ann", "cat"), range(1, 7))):
        for sid in ids:
            for who in pool:
                annotate.submit(ws, who, task, sid, {"decision": "accept", "rating": 4}, submit_id=f"{task}{who}{sid}")
    va = adjudicate.merge_task(ws, "cora", "a")
    assert _parents(ws) == Counter({1: 1, 2: 1, 3: 1, 4: 1})
    vb = adjudicate.merge_task(ws, "cora", "b")
    assert _parents(ws) == Counter({i: 1 for i in range(1, 7)})   # B brought only 5 and 6
    assert vb.number == va.number + 1 and vb.n_samples == 2 + 6
    assert vb.operation["count"] == 2 and vb.operation["skipped_already_merged"] == 4
