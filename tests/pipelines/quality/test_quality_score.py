"""``quality_score`` filled from review ratings (accepted annotations, 1..5 -> 0..1) and the
head-score conversion, with the source recorded in lineage and a new version committed."""
import math

import pytest

from datastore import PermissionDenied, Store, WorkbenchError
from datastore import versions as V
from datastore import vocabulary
from pipelines.quality import scores
from pipelines.review import annotate, tasks
from tests.pipelines.review.helpers import build


def _head(ws, ds="qa"):
    with Store(ws) as st:
        v = V.resolve(st, ds, None)
        return v, {s.sample_id: s for s in V.iter_samples(st, v)}


@pytest.fixture
def rated(tmp_path):
    ws = build(tmp_path / "ws", n=4)
    tasks.open_task(ws, "cora", name="t1", dataset="qa", pool=["ann", "bob"], overlap_k=2)
    answers = {1: ({"decision": "accept", "rating": 5}, {"decision": "accept", "rating": 4}),
               2: ({"decision": "accept", "rating": 3}, {"decision": "reject", "rating": 1}),
               3: ({"decision": "reject", "rating": 2}, {"decision": "reject", "rating": 1})}
    for sid, pair in answers.items():
        for who, a in zip(("ann", "bob"), pair):
            annotate.submit(ws, who, "t1", sid, a, submit_id=f"{who}-{sid}")
    return ws


def test_ratings_fill_scores_and_record_source(rated):
    before, _ = _head(rated)
    res = scores.fill(rated, "qa", user="cora", source="ratings")
    assert res["scored"] == 2 and res["version"] == before.number + 1
    v, s = _head(rated)
    assert v.content_hash != before.content_hash and v.content_hash == res["content_hash"]
    assert s[1].quality_score == 0.875          # mean(5, 4) = 4.5 -> (4.5 - 1) / 4
    assert s[2].quality_score == 0.5            # only the accepted 3 counts
    assert s[3].quality_score is None and s[4].quality_score is None  # rejected / not reviewed
    assert s[1].lineage["quality_score"] == {"source": "review ratings", "mean_rating": 4.5, "n_ratings": 2,
                                             "tasks": ["t1"]}
    assert s[2].lineage["quality_score"]["n_ratings"] == 1
    # a second run finds nothing new to score and commits nothing
    again = scores.fill(rated, "qa", user="cora", source="ratings")
    assert again["scored"] == 0 and again["version"] is None and _head(rated)[0].number == v.number


def test_needs_permission_and_known_source(rated):
    with pytest.raises(PermissionDenied):
        scores.fill(rated, "qa", user="ann", source="ratings")
    with pytest.raises(WorkbenchError, match="unknown quality score source 'judge'"):
        scores.fill(rated, "qa", user="cora", source="judge")
    with pytest.raises(WorkbenchError, match="--head"):
        scores.fill(rated, "qa", user="cora", source="head")


def test_rating_scale_and_head_conversion():
    assert [vocabulary.quality_from_rating(r) for r in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(WorkbenchError, match="not from 1 to 5"):
        vocabulary.quality_from_rating(6)
    assert scores.head_to_unit("rating", 4.0) == 0.75
    assert scores.head_to_unit("rating", 7.3) == 1.0      # clipped to the form's range
    assert scores.head_to_unit("pairs", 0.0) == 0.5
    assert scores.head_to_unit("pairs", 2.0) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert scores.head_to_unit("pairs", -800.0) == 0.0    # no overflow
    assert scores.head_to_unit("accept", 0.83) == 0.83
    with pytest.raises(WorkbenchError, match="predicts refusal"):
        scores.head_to_unit("should_refuse", 0.9)


def test_cli_quality_score(rated, capsys):
    import json

    from app.cli import main
    main(["-w", str(rated), "-u", "cora", "quality", "score", "--dataset", "qa", "--from", "ratings", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert (res["scored"], res["skipped"], res["source"]) == (2, 2, "ratings")
    assert _head(rated)[1][1].quality_score == 0.875
    # again with --overwrite: the same scores, no new version
    main(["-w", str(rated), "-u", "cora", "quality", "score", "-d", "qa", "--overwrite", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert (res["scored"], res["unchanged"], res["version"]) == (0, 2, None)
    with pytest.raises(SystemExit) as e:
        main(["-w", str(rated), "-u", "cora", "quality", "score", "-d", "qa", "--from", "judge"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.strip() == "error: unknown quality score source 'judge'; choose from ratings, head"


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_head_fills_scores(tmp_path):
    """An accept head trained on a rule (informative answers accepted, dismissive ones rejected)
    scores the informative sample above 0.5 and the dismissive one below."""
    from datastore import Sample
    from pipelines.preference.scoring import HeadConfig, train_head
    from tests.pipelines.preference.test_scoring import good, rude, rule_fixture
    from tests.pipelines.review.helpers import add_users
    ws = tmp_path / "ws"
    ws.mkdir()
    add_users(ws)
    rows = [Sample(kind="instruction", instruction="Tell me something about rivers.", output=f("rivers")).to_row()
            for f in (good, rude)]
    with Store(ws) as st:
        V.commit(st, "qa", author="admin", message="two answers", add=rows, create=True)
    cfg = HeadConfig(task="accept", name="accept-head", epochs=2, batch_size=8, max_length_tokens=48,
                     learning_rate=2e-3, eval_ratio=0.25)
    res = train_head(cfg, rule_fixture(), tmp_path / "head")
    out = scores.fill(ws, "qa", user="cora", source="head", head_dir=res.head_dir)
    assert out["scored"] == 2 and out["version"] == 2
    _, s = _head(ws)
    assert s[1].quality_score > 0.5 > s[2].quality_score
    why = s[1].lineage["quality_score"]
    assert (why["source"], why["head"], why["task"]) == ("scoring head", "accept-head", "accept")
    assert why["head_score"] == pytest.approx(s[1].quality_score, abs=1e-6)
