"""The fast ROUGE-L filter against rouge-score itself: tokens, F values bit for bit,
recall and precision of the pairs above 0.7 and of the in-order keep/drop decisions, edge cases."""
from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer

from benchmarks.bench_near_dup import (overlap_pairs, perturb, pooled_instructions, recall_precision,
                                       reference_in_order, seed_instructions)
from pipelines.filters import near_dup
from pipelines.filters.near_dup import RougeLIndex, filter_in_order, rouge_f, rouge_tokens
from tests.conftest import SHARED_DATA, shared_file

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def ref_f(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


@pytest.fixture(scope="module")
def real() -> list[str]:
    shared_file("self-instruct-seed-tasks/seed_tasks.jsonl")
    shared_file("alpaca-format-samples/code_alpaca_2k.json")
    return pooled_instructions(SHARED_DATA)


@pytest.fixture(scope="module")
def pair_set(real) -> tuple[list[str], list[tuple[int, int]]]:
    """Real instructions (seeds, user-oriented, Alpaca-format, MT-bench, XSTest, HH-RLHF; every 8th) and
    one or two deterministic perturbations of each of the first 450, shuffled; plus the rouge-score
    pairs above 0.7 among all of them (scored by rouge-score on every pair whose token multisets could
    reach 0.7: every other pair has F <= Dice <= 0.7)."""
    rng = random.Random(2024)
    base = real[::8]
    texts = list(base)
    for t in base[:450]:
        for _ in range(rng.choice([1, 2])):
            texts.append(perturb(t, rng, ops=rng.randint(1, 3), donors=base))
    rng.shuffle(texts)
    pairs = [(i, j) for i, j in overlap_pairs(texts) if ref_f(texts[i], texts[j]) > 0.7]
    return texts, pairs


def test_tokens_equal_rouge_score(real):
    odd = ["", "   ", "?!...", "日本語のテキスト", "Café naïve coöperate", "K\u212a K", "İstanbul ǅemal",
           "snake_case and CamelCase42 x-ray 3.14", "tab\there\nnew line\r\n", "ﬁne ligature", "①②③ ½",
           "emoji 🙂 ok", "Ａｂｃ full-width", "a" * 5000, " ".join(["word"] * 3000)]
    for t in [*real, *odd]:
        assert rouge_tokens(t) == SCORER._tokenizer.tokenize(t), t


def test_enough_pairs_above_threshold(pair_set):
    texts, pairs = pair_set
    assert len(texts) >= 1000
    assert len(pairs) >= 500


def test_pairs_recall_precision_and_exact_scores(pair_set):
    texts, ref_pairs = pair_set
    idx = RougeLIndex(0.7)
    ours: dict[tuple[int, int], float] = {}
    for j, t in enumerate(texts):
        for i, f in idx.above(t):
            ours[(i, j)] = f
        assert idx.add(t) == j
    ref = set(ref_pairs)
    tp = len(ref & ours.keys())
    recall, precision = tp / len(ref), tp / len(ours)
    assert recall >= 0.99 and precision >= 0.99, (recall, precision)
    assert ours.keys() == ref        # the pruning is exact: no pair differs at all
    for (i, j), f in ours.items():   # and every F is rouge-score's float, bit for bit
        assert f == ref_f(texts[i], texts[j])


def test_random_pairs_outside_the_bound_are_below(pair_set):
    """The reference above scores only pairs the multiset bound admits; check that bound on rouge-score
    itself over random pairs (including all perturbation pairs)."""
    texts, ref_pairs = pair_set
    admitted = set(overlap_pairs(texts))
    rng = random.Random(5)
    for _ in range(3000):
        i, j = sorted(rng.sample(range(len(texts)), 2))
        if (i, j) not in admitted:
            assert ref_f(texts[i], texts[j]) <= 0.7


def test_in_order_decisions_equal_rouge_score(real):
    """filter_in_order against the exact reference, rouge-score pairwise in order (seeds, then each
    kept candidate), on 300 candidates of which many are perturbations of seeds and of each other."""
    seeds = seed_instructions(SHARED_DATA)
    rng = random.Random(11)
    cands = []
    for k in range(300):
        src = rng.choice(seeds if k % 3 == 0 else (cands or seeds) if k % 3 == 1 else real)
        cands.append(perturb(src, rng, ops=rng.randint(1, 4), donors=real) if k % 5 else src)
    res = filter_in_order(seeds, cands)
    ref = reference_in_order(seeds, cands)
    ours = [r["kept"] for r in res]
    recall, precision, differ = recall_precision(ours, ref)
    assert sum(not k for k in ref) >= 100          # the set really exercises the filter
    assert recall >= 0.99 and precision >= 0.99 and differ == 0
    pool = [*seeds, *cands]
    for j, r in enumerate(res):
        if not r["kept"]:
            m = r["match"]
            assert m < len(seeds) or ours[m - len(seeds)]      # matched a seed or an earlier kept one
            assert m < len(seeds) + j
            assert r["score"] == ref_f(pool[m], cands[j]) > 0.7
        else:
            assert r["score"] == 0.0 and r["match"] is None


def test_nearest_is_the_best_match():
    idx = RougeLIndex()
    a = idx.add("Write a short poem about the sea and the sky.")
    b = idx.add("Write a short poem about the sea and the sky at night.")
    idx.add("Translate this sentence into French.")
    q = "Write a short poem about the sea and the sky at night!"
    found = idx.above(q)
    assert [i for i, _ in found] == [a, b]
    assert idx.nearest_above(q) == (b, 1.0)
    assert found[0][1] == ref_f("Write a short poem about the sea and the sky.", q)
    assert idx.nearest_above("Translate that text into German, please.") is None
    assert len(idx) == 3


def test_edge_cases():
    idx = RougeLIndex()
    assert idx.nearest_above("anything at all") is None          # empty index
    assert idx.add("") == 0 and idx.add("?!...") == 1 and idx.add("日本語") == 2
    for q in ["", "?!...", "日本語", "中文"]:                       # no tokens: F = 0 with anything
        assert idx.nearest_above(q) is None
        assert ref_f(q, "") == 0.0
    idx.add("Café au lait, s'il vous plaît")
    hit = idx.nearest_above("CAFÉ AU LAIT S'IL VOUS PLAÎT!!")     # case, accents and punctuation
    assert hit == (3, 1.0) and ref_f("Café au lait, s'il vous plaît", "CAFÉ AU LAIT S'IL VOUS PLAÎT!!") == 1.0
    rng = random.Random(1)
    words = [f"w{rng.randrange(300)}" for _ in range(1500)]      # rouge-score's DP is O(n m) in Python
    long_a = " ".join(words)
    long_b = " ".join(words[:600] + words[650:])                   # a 50-token cut
    i = idx.add(long_a)
    assert idx.nearest_above(long_b) == (i, ref_f(long_a, long_b))
    assert idx.nearest_above(long_b)[1] > 0.95
    with pytest.raises(ValueError):
        RougeLIndex(1.0)
    with pytest.raises(ValueError):
        RougeLIndex(-0.1)


def test_threshold_is_strict_and_configurable():
    a, b = "one two three four five", "one two three four six"     # LCS 4 of 5 and 5: F = 0.8
    assert ref_f(a, b) == pytest.approx(0.8)
    idx = RougeLIndex(0.8)
    idx.add(a)
    assert (idx.nearest_above(b) is None) == (not ref_f(a, b) > 0.8)
    idx = RougeLIndex(0.5)
    idx.add(a)
    assert idx.nearest_above("one two three seven eight nine")[1] == ref_f(a, "one two three seven eight nine")


def test_filter_in_order_match_indices():
    pool = ["Give three tips for staying healthy."]
    cands = ["Give three tips for staying healthy!", "Name the capital city of France.",
             "name the capital city of france", "Give 3 tips for staying very healthy."]
    res = filter_in_order(pool, cands)
    assert [r["kept"] for r in res] == [False, True, False, False]
    assert res[0]["match"] == 0 and res[2]["match"] == 2 and res[3]["match"] == 0
    assert res[2]["score"] == 1.0
    assert filter_in_order([], []) == []
    assert [r["kept"] for r in filter_in_order([], ["a b c", "a b c"])] == [True, False]


def test_incremental_index_reranks_and_stays_exact(pair_set):
    """Without an order hint the index re-ranks as it grows (at 256, 512, ... items): answers must not
    change across those rebuilds."""
    texts, ref_pairs = pair_set
    texts = texts[:700]
    ref = {(i, j) for i, j in ref_pairs if j < 700}
    idx = RougeLIndex()
    got = set()
    for j, t in enumerate(texts):
        got |= {(i, j) for i, _ in idx.above(t)}
        idx.add(t)
    assert got == ref


def test_vocabulary_beyond_code_points(monkeypatch, pair_set):
    """Past one code point per word, sequences switch to integer lists; answers stay the same."""
    monkeypatch.setattr(near_dup, "_MAX_CP", 300)
    texts, ref_pairs = pair_set
    texts = texts[:400]
    ref = {(i, j) for i, j in ref_pairs if j < 400}
    idx = RougeLIndex()
    got = set()
    for j, t in enumerate(texts):
        got |= {(i, j) for i, _ in idx.above(t)}
        idx.add(t)
    assert idx._lists
    assert got == ref


def test_rouge_f_formula():
    assert rouge_f(0, 3, 4) == 0.0 and rouge_f(3, 0, 4) == 0.0
    assert rouge_f(3, 4, 5) == rouge_scorer._score_lcs(list("abcd"), list("abcxy")).fmeasure
