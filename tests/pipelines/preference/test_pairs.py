"""Pair extraction from edits and rankings: exact expected pairs on a fixture."""
from __future__ import annotations

import pytest

from datastore import Sample
from datastore.errors import WorkbenchError
from pipelines.preference.pairs import (EditRecord, RankingRecord, extract_pairs, pairs_from_edits,
                                        pairs_from_rankings, records_from_annotations)

P1 = [{"role": "user", "content": "Capital of France?"}]
P2 = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
SRC = {"task": "t1", "dataset": "stage", "version_id": "abc123"}


def triples(pairs):
    return [(p.prompt[-1]["content"], p.chosen_text, p.rejected_text) for p in pairs]


def edits_fixture():
    return [
        EditRecord(P1, "Lyon.", "Paris.", 1, "ann", {**SRC, "sample_id": 1}),
        EditRecord(P1, "Lyon.", "  Paris.\n", 2, "bob", {**SRC, "sample_id": 1}),   # same edit, other annotator
        EditRecord(P1, "Lyon.", "Paris is the capital.", 3, "cat", {**SRC, "sample_id": 1}),
        EditRecord(P2, "4", " 4 ", 4, "ann", {**SRC, "sample_id": 2}),               # whitespace only: no pair
        EditRecord(P2, "5", "4", 5, "bob", {**SRC, "sample_id": 3}),
    ]


def test_edits_give_exact_pairs():
    from pipelines.preference.pairs import ExtractionReport
    rep = ExtractionReport()
    pairs = pairs_from_edits(edits_fixture(), rep)
    assert triples(pairs) == [("Capital of France?", "Paris.", "Lyon."),
                              ("Capital of France?", "Paris is the capital.", "Lyon."),
                              ("2+2?", "4", "5")]
    assert [p.lineage["annotations"] for p in pairs] == [[1, 2], [3], [5]]
    assert pairs[0].lineage["annotators"] == ["ann", "bob"]
    assert pairs[0].lineage["rule"] == "edit" and pairs[0].lineage["sample_id"] == 1
    assert pairs[2].prompt == P2  # the system turn stays in the prompt
    assert (rep.edits_seen, rep.unchanged_edits, rep.duplicate_edits, rep.pairs) == (5, 1, 1, 3)


def test_ranking_all_pairs_and_best_vs_rest():
    r = RankingRecord(P1, ["A", "B", "C", "D"], ranks=[2, 1, 4, 3], annotation_id=10, annotator="ann", source=SRC)
    all_pairs = pairs_from_rankings([r], "all")
    # every ordered pair: B>A, B>D, B>C, A>D, A>C, D>C  (4 choose 2 = 6)
    assert [(p.chosen_text, p.rejected_text) for p in all_pairs] == [
        ("B", "A"), ("B", "D"), ("B", "C"), ("A", "D"), ("A", "C"), ("D", "C")]
    best = pairs_from_rankings([r], "best")
    assert [(p.chosen_text, p.rejected_text) for p in best] == [("B", "A"), ("B", "C"), ("B", "D")]
    assert all(p.lineage["annotations"] == [10] and p.lineage["mode"] == "best" for p in best)


def test_ties_and_preferred_only():
    tied = RankingRecord(P1, ["A", "B", "C"], ranks=[1, 1, 2], annotation_id=11)
    assert [(p.chosen_text, p.rejected_text) for p in pairs_from_rankings([tied], "all")] == [("A", "C"), ("B", "C")]
    pref = RankingRecord(P2, ["x", "y", "z"], preferred=2, annotation_id=12)
    assert [(p.chosen_text, p.rejected_text) for p in pairs_from_rankings([pref], "all")] == [("z", "x"), ("z", "y")]
    assert [(p.chosen_text, p.rejected_text) for p in pairs_from_rankings([pref], "best")] == [("z", "x"), ("z", "y")]


def test_annotators_vote_majority_wins_tie_drops():
    a = RankingRecord(P1, ["A", "B"], preferred=0, annotation_id=1, annotator="ann", source=SRC)
    b = RankingRecord(P1, ["B", "A"], preferred=1, annotation_id=2, annotator="bob", source=SRC)  # shown swapped, same vote
    c = RankingRecord(P1, ["A", "B"], preferred=1, annotation_id=3, annotator="cat", source=SRC)
    from pipelines.preference.pairs import ExtractionReport
    rep = ExtractionReport()
    pairs = pairs_from_rankings([a, b, c], "all", rep)
    assert [(p.chosen_text, p.rejected_text) for p in pairs] == [("A", "B")]
    assert pairs[0].lineage["annotations"] == [1, 2] and pairs[0].lineage["votes"] == {"for": 2, "against": 1}
    rep2 = ExtractionReport()
    assert pairs_from_rankings([a, c], "all", rep2) == [] and rep2.conflicts == 1


def test_malformed_rankings_are_refused():
    with pytest.raises(WorkbenchError, match="at least two responses"):
        pairs_from_rankings([RankingRecord(P1, ["A"], preferred=0)])
    with pytest.raises(WorkbenchError, match="3 ranks for 2 responses"):
        pairs_from_rankings([RankingRecord(P1, ["A", "B"], ranks=[1, 2, 3])])
    with pytest.raises(WorkbenchError, match="not among"):
        pairs_from_rankings([RankingRecord(P1, ["A", "B"], preferred=5)])
    with pytest.raises(WorkbenchError, match="mode"):
        pairs_from_rankings([RankingRecord(P1, ["A", "B"], preferred=0)], "some")


def test_records_from_annotations_and_dedupe_across_rules():
    s1 = Sample(kind="conversation", messages=P1 + [{"role": "assistant", "content": "Lyon."}], sample_id=1)
    s2 = Sample(kind="conversation", messages=list(P1), extra={"candidates": ["Paris.", "Lyon."]}, sample_id=2)
    s3 = Sample(kind="instruction", instruction="2+2?", output="5", sample_id=3)
    anns = [
        {"annotation_id": 1, "sample_id": 1, "annotator": "ann", "decision": "edit", "answers": {"edited_output": "Paris."}},
        {"annotation_id": 2, "sample_id": 1, "annotator": "bob", "decision": "accept", "answers": {}},
        {"annotation_id": 3, "sample_id": 2, "annotator": "ann", "decision": None, "answers": {"preferred": 0}},
        {"annotation_id": 4, "sample_id": 3, "annotator": "bob", "decision": "edit", "answers": '{"output": "4"}'},
        {"annotation_id": 5, "sample_id": 3, "annotator": "cat", "decision": "edit", "answers": {"output": "four"},
         "stale": True},
    ]
    edits, ranks = records_from_annotations({1: s1, 2: s2, 3: s3}, anns, source={"task": "t1"})
    assert [(e.annotation_id, e.original, e.edited) for e in edits] == [(1, "Lyon.", "Paris."), (4, "5", "4")]
    assert [(r.annotation_id, r.responses, r.preferred) for r in ranks] == [(3, ["Paris.", "Lyon."], 0)]
    pairs, rep = extract_pairs(edits, ranks)
    # the edit of sample 1 and the comparison of sample 2 give the same pair: kept once, lineage merged
    assert triples(pairs) == [("Capital of France?", "Paris.", "Lyon."), ("2+2?", "4", "5")]
    assert pairs[0].lineage["annotations"] == [1, 3] and pairs[0].lineage["also"] == ["ranking"]
    assert rep.pairs == 2
