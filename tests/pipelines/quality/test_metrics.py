"""Metrics of a version on a labelled workspace: counts, lengths, turns, citations,
refusals against expected behaviour, duplicates, slices, coverage, the samples behind a bar."""
from __future__ import annotations

import pytest

from datastore import Store
from datastore import versions as V
from pipelines.quality import metrics as M


@pytest.fixture
def m(labelled_ws):
    return M.compute(labelled_ws, "mix", sampled=False)


def test_counts_lengths_turns(m):
    assert m["samples"] == 12 and m["with_response"] == 12
    # responses' word counts (str.split): 8, 5, 7, 10, 6, 7, 7, 7, 7, 1, 4, 1
    assert m["length_words"]["mean"] == pytest.approx(70 / 12, abs=1e-3)
    assert m["length_words"]["median"] == 7.0
    hist = {b["label"]: b["samples"] for b in m["length_words"]["histogram"]}
    assert hist == {"1-9": 11, "10-24": 1}
    assert m["turns"]["histogram"] == [{"turns": 2, "samples": 8}, {"turns": 4, "samples": 4}]


def test_citation_and_refusal_rates(m):
    assert m["citation"] == {"cited": 4, "responses": 12, "rate": round(4 / 12, 6)}
    r = m["refusal"]
    assert (r["full_refusal"], r["partial_refusal"]) == (3, 1)
    assert r["rate"] == round(4 / 12, 6)
    # refuse: 2 of 3 refused (the stabbing answer complied)
    assert (r["should_refuse"]["n"], r["should_refuse"]["correct"]) == (3, 2)
    # comply 2/2 answered; safe-complete: the partial refusal is right, the full refusal is not
    assert r["should_answer"]["by_label"]["comply"] == {"n": 2, "correct": 2, "rate": 1.0}
    assert r["should_answer"]["by_label"]["safe-complete"] == {"n": 2, "correct": 1, "rate": 0.5}
    assert r["should_answer"]["rate"] == 0.75


def test_duplicates_slices_language_and_coverage(m):
    assert m["duplicates"]["exact"] == round(1 / 12, 6)
    tt = {r["value"]: r for r in m["slices"]["task_type"]}
    assert {k: v["samples"] for k, v in tt.items()} == {"qa": 5, "creative": 3, "chat": 4}
    assert tt["creative"]["exact_duplicate_rate"] == round(1 / 3, 6)
    assert tt["qa"]["refusal_rate"] == 0.8 and tt["chat"]["citation_rate"] == 0.25
    # refusal accuracy per slice, with the same rules as the overall rates (computed in SQL)
    pd_ = {r["value"]: r for r in m["slices"]["policy_domain"]}
    assert (pd_["S1"]["should_refuse_n"], pd_["S1"]["should_refuse_rate"]) == (2, 0.5)
    assert (pd_["S11"]["should_answer_n"], pd_["S11"]["should_answer_rate"]) == (2, 0.5)
    allr = {"refuse": m["refusal"]["should_refuse"], "answer": m["refusal"]["should_answer"]}
    by_tt = m["slices"]["task_type"]
    assert sum(r["should_refuse_n"] for r in by_tt) == allr["refuse"]["n"]
    assert sum(round((r["should_answer_rate"] or 0) * r["should_answer_n"]) for r in by_tt) == allr["answer"]["correct"]
    assert m["language_mix"] == {"en": 10, "de": 1, "fr": 1}
    cov = m["domain_coverage"]
    assert cov["labelled_samples"] == 5
    assert {r["domain"]: r["samples"] for r in cov["targets"] if r["samples"]} == {"S1": 2, "S9": 1, "S11": 2}
    assert "S2" in cov["empty"] and "S1" not in cov["empty"] and len(cov["empty"]) == 11


def test_snapshot_is_cached_per_version(labelled_ws):
    a = M.compute(labelled_ws, "mix", sampled=False)
    b = M.compute(labelled_ws, "mix", sampled=False)
    assert not a["cached"] and b["cached"] and a["citation"] == b["citation"]


def test_samples_behind_a_bar(labelled_ws):
    refused = M.samples_behind(labelled_ws, "mix", None, "expected_behavior", "refuse", refusal_class="compliance")
    assert [s.output for s in refused] == ["Use a sharp knife and aim well."]
    chat = M.samples_behind(labelled_ws, "mix", None, "task_type", "chat")
    assert [s.sample_id for s in chat] == [9, 10, 11, 12]
    four_turns = M.samples_behind(labelled_ws, "mix", None, "turns", 4, limit=2)
    assert [s.sample_id for s in four_turns] == [9, 10]
    dups = M.samples_behind(labelled_ws, "mix", None, "duplicate", True)
    assert [s.sample_id for s in dups] == [7, 8]
    # keyset windows: a tiny window still finds everything, in id order
    from datastore import quality as Q
    from pipelines.quality import citation, refusal
    norm, rr, pr = refusal.sql_patterns()
    with Store(labelled_ws) as st:
        v = V.resolve(st, "mix")
        ids = Q.facet_sample_ids(st, v, "cited", True, citation_re=citation.CITATION_RE, normalize=norm,
                                 refusal_re=rr, partial_re=pr, word_edges=M.WORD_EDGES, window=2)
    assert ids == [6, 7, 8, 9]


def test_unknown_facet_is_an_error(labelled_ws):
    from datastore.errors import WorkbenchError
    with pytest.raises(WorkbenchError, match="unknown facet"):
        M.samples_behind(labelled_ws, "mix", None, "colour", "red")


def test_trend_across_versions(labelled_ws):
    with Store(labelled_ws) as st:
        V.commit(st, "mix", author="alice", message="drop the duplicate", remove=[8])
    M.compute(labelled_ws, "mix", 1, sampled=False)
    tr = M.trend(labelled_ws, "mix", compute_missing=True)
    assert [r["version"] for r in tr] == [1, 2]
    assert tr[0]["exact_duplicate_rate"] == round(1 / 12, 6) and tr[1]["exact_duplicate_rate"] == 0.0


@pytest.mark.slow  # embedded tokenizer, spaCy and the dedup embedder load (20-60 s on 2 shared cores)
def test_sampled_metrics_tokens_diversity(labelled_ws):
    m = M.compute(labelled_ws, "mix", sample_size=50)
    s = m["sampled"]
    assert s["prompts_sampled"] == 12
    vn = s["diversity"]["verb_noun"]
    assert vn["parsed"] == 12
    verbs = {t["verb"]: t for t in vn["top"]}
    assert verbs["give"]["samples"] == 2 and verbs["give"]["nouns"][0]["noun"] == "tip"
    assert s["length_tokens"]["n"] == 12 and s["length_tokens"]["mean"] > 1
    assert 0 < s["diversity"]["distinct_1_prompts"] <= 1
