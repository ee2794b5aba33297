"""Scoring heads learn a simple rule (>= 0.9 held-out accuracy) and score candidates for review."""
from __future__ import annotations

import pytest

from datastore import Sample
from pipelines.preference.pairs import Pair
from pipelines.preference.scoring import (HeadConfig, LabeledExample, examples_from_annotations, load_head,
                                          score_candidates, suggestions_for_review, train_head)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


TOPICS = ["tea", "rain", "bicycles", "chess", "bread", "volcanoes", "owls", "jazz", "maps", "tides", "glass",
          "honey", "kites", "comets", "moss", "cheese", "violins", "deserts", "coral", "salt", "clocks", "maple trees",
          "penguins", "lighthouses", "origami", "yoga", "lemons", "bridges", "snow", "copper", "wolves", "pottery"]


def good(t):
    return f"Here are two facts about {t}: people have studied {t} for centuries, and {t} appear in many stories."


def rude(t):
    return f"Whatever. I don't care about {t}, look it up yourself."


def rule_fixture():
    """Labelled by a rule: a dismissive answer is rejected, an informative one accepted."""
    ex = []
    for i, t in enumerate(TOPICS):
        q = [{"role": "user", "content": f"Tell me something about {t}."}]
        ex.append(LabeledExample(q + [{"role": "assistant", "content": good(t)}], 1.0, 2 * i))
        ex.append(LabeledExample(q + [{"role": "assistant", "content": rude(t)}], 0.0, 2 * i + 1))
    return ex


def test_accept_head_learns_the_rule_and_scores_candidates(tmp_path):
    cfg = HeadConfig(task="accept", name="accept-head", epochs=2, batch_size=8, max_length_tokens=48,
                     learning_rate=2e-3, eval_ratio=0.25)
    res = train_head(cfg, rule_fixture(), tmp_path / "head")
    assert res.metrics["n_eval"] == 16 and res.metrics["accuracy"] >= 0.9, res.metrics
    head = load_head(res.head_dir)
    cands = [Sample(kind="conversation", sample_id=1, messages=[
                {"role": "user", "content": "Tell me something about rivers."},
                {"role": "assistant", "content": good("rivers")}]),
             Sample(kind="conversation", sample_id=2, messages=[
                {"role": "user", "content": "Tell me something about rivers."},
                {"role": "assistant", "content": rude("rivers")}])]
    scores = score_candidates(head, cands)
    assert [s["decision"] for s in scores] == ["accept", "reject"]
    assert scores[0]["score"] > 0.5 > scores[1]["score"] and scores[0]["head"] == "accept-head"
    rows = suggestions_for_review(head, cands)
    assert [(r["sample_id"], r["source"], r["decision"], r["model"]) for r in rows] == [
        (1, "scoring_head", "accept", "accept-head"), (2, "scoring_head", "reject", "accept-head")]


def test_pair_head_with_margin_ranking_loss(tmp_path):
    pairs = [Pair([{"role": "user", "content": f"Tell me something about {t}."}],
                  [{"role": "assistant", "content": good(t)}], [{"role": "assistant", "content": rude(t)}])
             for t in TOPICS]
    cfg = HeadConfig(task="pairs", epochs=2, batch_size=8, max_length_tokens=48, learning_rate=2e-3,
                     eval_ratio=0.25, ranking_margin=1.0)
    res = train_head(cfg, pairs, tmp_path / "rm")
    assert res.metrics["n_eval"] == 8 and res.metrics["pair_accuracy"] >= 0.9, res.metrics


def test_labels_from_annotations():
    s = {1: Sample(kind="instruction", instruction="Q", output="A", sample_id=1),
         2: Sample(kind="instruction", instruction="Q2", output="B", sample_id=2)}
    anns = [{"sample_id": 1, "decision": "accept", "rating": 4, "answers": {"flags": []}},
            {"sample_id": 2, "decision": "reject", "rating": None, "answers": {"flags": ["should_refuse"], "rating": 2}},
            {"sample_id": 2, "decision": "edit", "answers": {}},
            {"sample_id": 1, "decision": "reject", "stale": True, "answers": {}}]
    assert [(e.sample_id, e.label) for e in examples_from_annotations(s, anns, "accept")] == [(1, 1.0), (2, 0.0)]
    assert [e.label for e in examples_from_annotations(s, anns, "should_refuse")] == [0.0, 1.0, 0.0]
    assert [(e.sample_id, e.label) for e in examples_from_annotations(s, anns, "rating")] == [(1, 4.0), (2, 2.0)]
    assert examples_from_annotations(s, anns, "accept")[0].turns[-1] == {"role": "assistant", "content": "A"}
