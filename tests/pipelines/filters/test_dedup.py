"""Exact, semantic and MinHash dedup, and dataset-level duplicate rates."""
from __future__ import annotations

import random

import numpy as np
import pytest

from benchmarks.bench_near_dup import perturb, seed_instructions
from pipelines.filters.dedup import (NORMALIZATION, duplicate_rates, exact_dedup, exact_dedup_report,
                                     minhash_near_dup, normalize, semantic_dedup)
from pipelines.filters.near_dup import filter_in_order
from pipelines.filters.textnorm import INVISIBLE_CHARS, invisible_chars
from tests.conftest import SHARED_DATA, shared_file


@pytest.fixture(scope="module")
def seeds() -> list[str]:
    shared_file("self-instruct-seed-tasks/seed_tasks.jsonl")
    return seed_instructions(SHARED_DATA)


def test_normalize():
    assert normalize("  Ｈｅｌｌｏ\n\tWORLD ") == "hello world"
    assert normalize("Straße") == "strasse"                     # case folding, not just lower()
    assert normalize("ﬁne") == "fine"                           # NFKC ligature
    assert normalize("Sort the list.") != normalize("Sort the list?")
    assert normalize("") == "" and normalize(" \n ") == ""
    # zero-width and bidi control characters go; a no-break space is a space
    assert normalize("a\u200bb\u00a0c\ufeff \u202eD\u2060") == "ab c d"
    assert len(INVISIBLE_CHARS) == 16 and "\u200b" in INVISIBLE_CHARS and "\u2064" in INVISIBLE_CHARS
    assert "\u2010" not in INVISIBLE_CHARS and "\u202f" not in INVISIBLE_CHARS
    assert invisible_chars("x\u200by\ufeff") == [(1, "\u200b"), (3, "\ufeff")]


def test_invisible_differences_are_duplicates_and_texts_stay_raw():
    a = "Name three primary colors."
    b = "Name three\u00a0primary col\u200bors."          # NBSP and a zero-width space
    texts = [a, b, "Name three primary colours."]
    before = list(texts)
    assert exact_dedup(texts) == [0, 2]
    assert texts == before and "\u200b" in texts[1]   # the raw text is never changed
    rep = exact_dedup_report(texts)
    assert rep == {"kept": [0, 2], "dropped": 1, "normalization": NORMALIZATION}
    assert "NFKC" in NORMALIZATION and "zero-width" in NORMALIZATION
    # the flag turns it off: raw texts differ
    assert exact_dedup(texts, normalize=False) == [0, 1, 2]
    assert exact_dedup_report(texts, normalize=False)["normalization"].startswith("none")
    # the near-duplicate filter compares the same normalised form: rouge-score splits "col\u200bors"
    # into two tokens, the normalised text does not
    assert [r["kept"] for r in filter_in_order([], [a, b], threshold=0.99)] == [True, False]
    assert [r["kept"] for r in filter_in_order([], [a, b], threshold=0.99, normalize=False)] == [True, True]
    # and so does the generators' novelty filter
    from pipelines.generate.batching import novelty_filter
    assert [(r["kept"], r["reason"]) for r in novelty_filter([b], pool=[a])] == [(False, "duplicate")]


def test_exact_dedup_first_wins(seeds):
    texts = [seeds[0], seeds[1], "  " + seeds[0].upper() + "\n", seeds[2], seeds[1].replace(" ", "  "),
             seeds[1] + "?"]
    assert exact_dedup(texts) == [0, 1, 3, 5]
    assert exact_dedup([]) == []
    assert exact_dedup(["", " ", "x"]) == [0, 2]
    # on the 175 real seeds: no two are the same after normalization
    assert exact_dedup(seeds) == list(range(len(seeds)))


def test_semantic_dedup_real_embedder(seeds):
    base = seeds[:40]
    paraphrases = {3: "Give me " + base[3][0].lower() + base[3][1:],      # near-identical wording
                   10: base[10].upper(), 20: "  " + base[20] + "  "}
    texts = list(base) + list(paraphrases.values())
    kept = semantic_dedup(texts, threshold=0.95)
    assert kept[:40] == list(range(40))        # the seeds themselves are distinct
    assert 41 not in kept and 42 not in kept   # case and spacing are not new content
    # configurable: a higher threshold never drops more
    assert set(kept) <= set(semantic_dedup(texts, threshold=0.999))
    # at a low threshold most of these short English instructions collapse
    assert len(semantic_dedup(texts, threshold=0.2)) < 20
    with pytest.raises(ValueError):
        semantic_dedup(texts, threshold=1.5)


def test_semantic_dedup_given_embeddings_is_greedy_in_order():
    e = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.6, 0.8], [0.28, 0.96]], dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    # 1 is close to 0 (cos 0.96); 3 is close to neither kept row at 0.95; 4 is close to 2 (0.96)
    assert semantic_dedup(["a"] * 5, threshold=0.95, embeddings=e) == [0, 2, 3]
    assert semantic_dedup(["a"] * 5, threshold=0.97, embeddings=e) == [0, 1, 2, 3, 4]
    assert semantic_dedup([], embeddings=np.zeros((0, 2))) == []
    with pytest.raises(ValueError):
        semantic_dedup(["a", "b"], embeddings=e)


def test_minhash_near_dup(seeds):
    rng = random.Random(3)
    long = [" ".join(seeds[i:i + 6]) for i in range(0, 120, 6)]          # 20 paragraph-length texts
    near = [perturb(t, rng, ops=1) for t in long[:10]]                   # one small edit each
    kept = minhash_near_dup(long + near, threshold=0.7)
    assert kept[:20] == list(range(20))
    assert len([k for k in kept if k >= 20]) <= 2     # LSH is approximate; most near copies go
    assert minhash_near_dup(["", "?!", "a b c"]) == [0, 1, 2]


def test_duplicate_rates(seeds):
    texts = seeds[:50] + [seeds[0], seeds[1].upper(), seeds[2] + " please", seeds[3]]
    r = duplicate_rates(texts)
    assert set(r) == {"exact", "near", "semantic"}
    assert r["exact"] == pytest.approx(3 / 54)
    assert r["near"] == pytest.approx(4 / 54)
    assert 3 / 54 <= r["semantic"] <= 4 / 54 + 1e-9
    assert duplicate_rates([]) == {"exact": 0.0, "near": 0.0, "semantic": 0.0}
    assert duplicate_rates(texts, semantic=False)["semantic"] is None
