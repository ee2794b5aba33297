"""Near-duplicate filter (ROUGE-L 0.7): ours against pairwise rouge-score; 100K x 100K filtering.

Rows:

1. ``filter_in_order`` on ``BENCH_NEARDUP_N`` (default 5,000) instructions (the real instructions
   pooled from ../shared/data plus deterministic perturbations of them) against the 175
   Self-Instruct seeds, next to the reference: rouge-score's ``RougeScorer(["rougeL"],
   use_stemmer=False)``, each candidate against the seeds plus every earlier kept candidate, in order.
   The full reference would take about 10 minutes here, so its *time* is estimated: a random sample
   of the pairs it compares is scored with ``scorer.score`` and timed, and the per-pair time is
   multiplied by the number of pairs the in-order reference compares (the row says so). Its
   *decisions* are exact: rouge-score ``scorer.score`` is run on every pair whose token-multiset
   overlap admits F > 0.7 (found by a sparse matrix product, independent of our index); every other
   pair has F <= Dice(multisets) <= 0.7 (LCS <= multiset overlap), and the timed random sample checks
   that bound on rouge-score itself. Recall and precision of our keep/drop decisions are against that.
2. ``BENCH_NEARDUP_BIG`` (default 100,000) candidates against a pool of as many, both built
   deterministically from the pooled real instructions (target: under 5 minutes on 2 cores).

Built sets are cached in ``.bench/near_dup_*.json``.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import time
from pathlib import Path

from .data import BENCH_DIR, SHARED

# ----------------------------------------------------------------------------- real instructions

_ALPACA = ["alpaca-format-samples/code_alpaca_2k.json",
           "alpaca-format-samples/llamafactory_alpaca_en_demo.json",
           "alpaca-format-samples/llamafactory_identity.json"]


def seed_instructions(shared: Path = SHARED) -> list[str]:
    """The 175 Self-Instruct seed instructions, in file order."""
    p = shared / "self-instruct-seed-tasks" / "seed_tasks.jsonl"
    return [json.loads(line)["instruction"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def pooled_instructions(shared: Path = SHARED) -> list[str]:
    """Every real instruction-like prompt in ../shared/data, deduplicated exactly, in a fixed order:
    Self-Instruct seeds and user-oriented tasks, the Alpaca-format files (instruction + input when the
    instruction alone is a word or two), MT-bench first turns, XSTest prompts, the first human turn of
    the HH-RLHF harmless test transcripts. About 6,000 texts."""
    out: list[str] = []
    out += seed_instructions(shared)
    p = shared / "self-instruct-user-oriented" / "user_oriented_instructions.jsonl"
    out += [json.loads(x)["instruction"] for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    for rel in _ALPACA:
        for r in json.loads((shared / rel).read_text(encoding="utf-8")):
            out.append(r["instruction"])
    p = shared / "sharegpt-openai-samples" / "mt_bench_question.jsonl"
    out += [json.loads(x)["turns"][0] for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    with open(shared / "xstest" / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
        out += [r["prompt"] for r in csv.DictReader(f)]
    with gzip.open(shared / "hh-rlhf-harmless-base-test" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            m = re.search(r"Human: (.*?)(?:\n\nAssistant:|$)", json.loads(line)["chosen"], re.S)
            if m:
                out.append(m.group(1).strip())
    seen, uniq = set(), []
    for t in out:
        if t and t not in seen:
            seen.add(t)
            uniq.append(t)
    return uniq


# ----------------------------------------------------------------------------- perturbations

_FILLERS = ["please", "briefly", "also", "now", "carefully", "the", "a", "really", "simple", "new",
            "in", "detail", "quickly", "for", "me", "short", "example", "given", "following", "clearly"]


def perturb(text: str, rng: random.Random, ops: int = 1, donors: list[str] | None = None) -> str:
    """``text`` with ``ops`` deterministic edits drawn from ``rng``: swap two adjacent words, insert a
    filler word, delete a word, replace a word (with a word of a donor text), change case, change or add
    punctuation, or splice (keep a prefix, append the tail of a donor text)."""
    words = text.split()
    for _ in range(ops):
        op = rng.choice(["swap", "insert", "delete", "replace", "case", "punct", "splice"]
                        if donors else ["swap", "insert", "delete", "case", "punct"])
        if not words:
            words = [rng.choice(_FILLERS)]
            continue
        i = rng.randrange(len(words))
        if op == "swap" and len(words) > 1:
            i = min(i, len(words) - 2)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "insert":
            words.insert(i, rng.choice(_FILLERS))
        elif op == "delete" and len(words) > 1:
            del words[i]
        elif op == "replace":
            dw = rng.choice(donors).split() or ["x"]
            words[i] = rng.choice(dw)
        elif op == "case":
            words[i] = rng.choice([str.upper, str.lower, str.title])(words[i])
        elif op == "punct":
            words[i] = words[i] + rng.choice([",", ".", "!", "?", ";", " -", ":"])
        elif op == "splice":
            dw = rng.choice(donors).split()
            cut = rng.randrange(1, len(words) + 1)
            words = words[:cut] + dw[rng.randrange(len(dw)):] if dw else words
    return " ".join(words)


def _cached(name: str, build) -> list:
    p = BENCH_DIR / name
    if p.exists():
        return json.loads(p.read_text(encoding="utf-8"))
    data = build()
    BENCH_DIR.mkdir(exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tmp.rename(p)
    return data


def candidate_set(n: int, seed: int = 0, shared: Path = SHARED) -> list[str]:
    """``n`` candidates: about half real pooled instructions, half perturbations (1 to 4 edits) of real
    ones (often of instructions already in the set), shuffled with ``seed``."""
    base = pooled_instructions(shared)
    rng = random.Random(seed)
    real = rng.sample(base, min(len(base), (n + 1) // 2))
    out = list(real)
    while len(out) < n:
        src = rng.choice(real) if rng.random() < 0.7 else rng.choice(base)
        out.append(perturb(src, rng, ops=rng.randint(1, 4), donors=base))
    rng.shuffle(out)
    return out


def big_sets(n: int, shared: Path = SHARED) -> tuple[list[str], list[str]]:
    """``(pool, candidates)``, ``n`` each: the pool is every pooled real instruction then perturbations of
    them (2 to 8 edits, splices with other instructions included); the candidates are other perturbations
    (1 to 6 edits), so some are near duplicates of the pool and of each other, and many are not."""
    def build():
        base = pooled_instructions(shared)
        rng = random.Random(12345)
        pool = list(base[:n])
        while len(pool) < n:
            pool.append(perturb(rng.choice(base), rng, ops=rng.randint(2, 8), donors=base))
        cands = [perturb(rng.choice(base), rng, ops=rng.randint(1, 6), donors=base) for _ in range(n)]
        return [pool, cands]
    pool, cands = _cached(f"near_dup_big_{n}.json", build)
    return pool, cands


# ----------------------------------------------------------------------------- reference

def reference_in_order(pool: list[str], candidates: list[str], threshold: float = 0.7) -> list[bool]:
    """rouge-score, pairwise, in order: kept flags. Exact and slow (for test-sized sets)."""
    from rouge_score import rouge_scorer
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    tok = sc._tokenizer.tokenize
    kept_tokens = [tok(t) for t in pool]
    out = []
    for c in candidates:
        ct = tok(c)
        drop = any(rouge_scorer._score_lcs(p, ct).fmeasure > threshold for p in kept_tokens)
        out.append(not drop)
        if not drop:
            kept_tokens.append(ct)
    return out


def overlap_pairs(texts: list[str], threshold: float = 0.7):
    """Every pair (i < j) of ``texts`` whose rouge-score token multisets have Dice overlap above
    ``threshold`` minus 1e-9 (a superset of the pairs with ROUGE-L F above it), by a sparse product of
    (token, k-th occurrence) indicator vectors. Independent of :mod:`pipelines.filters.near_dup`'s index."""
    import numpy as np
    from scipy import sparse
    from rouge_score import rouge_scorer
    tok = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)._tokenizer.tokenize
    vocab: dict = {}
    rows, cols, lens = [], [], []
    for i, t in enumerate(texts):
        seen: dict = {}
        toks = tok(t)
        lens.append(len(toks))
        for w in toks:
            k = seen.get(w, 0)
            seen[w] = k + 1
            rows.append(i)
            cols.append(vocab.setdefault((w, k), len(vocab)))
    X = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(texts), len(vocab)))
    XT = X.T.tocsc()
    lens = np.asarray(lens)
    out = []
    for s in range(0, len(texts), 1000):       # row blocks keep the product small
        ov = (X[s:s + 1000] @ XT).tocoo()
        r = ov.row + s
        ok = (r < ov.col) & (2 * ov.data > threshold * (lens[r] + lens[ov.col]) - 1e-9)
        out.extend(zip(r[ok].tolist(), ov.col[ok].tolist()))
    return sorted(out)


def reference_in_order_pruned(pool: list[str], candidates: list[str], threshold: float = 0.7):
    """The in-order reference decisions with rouge-score ``scorer.score`` on every pair that
    :func:`overlap_pairs` admits (all others are <= threshold by LCS <= multiset overlap).
    Returns ``(kept flags, number of pairs the full reference compares)``."""
    from rouge_score import rouge_scorer
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = [*pool, *candidates]
    above: dict[int, set[int]] = {}
    for i, j in overlap_pairs(texts, threshold):
        if sc.score(texts[i], texts[j])["rougeL"].fmeasure > threshold:
            above.setdefault(j, set()).add(i)
    kept_ids = set(range(len(pool)))
    flags, compared = [], 0
    for j in range(len(pool), len(texts)):
        compared += len(kept_ids)
        drop = any(i in kept_ids for i in above.get(j, ()))
        flags.append(not drop)
        if not drop:
            kept_ids.add(j)
    return flags, compared


def recall_precision(ours: list[bool], ref: list[bool]) -> tuple[float, float, int]:
    """Recall and precision of the *drops* (positives = dropped as near duplicates); and disagreements."""
    tp = sum(1 for a, b in zip(ours, ref) if not a and not b)
    fp = sum(1 for a, b in zip(ours, ref) if not a and b)
    fn = sum(1 for a, b in zip(ours, ref) if a and not b)
    rec = tp / (tp + fn) if tp + fn else 1.0
    prec = tp / (tp + fp) if tp + fp else 1.0
    return rec, prec, fp + fn


# ----------------------------------------------------------------------------- benchmark

def run(console) -> list[dict]:
    from .data import shared_available
    if not (shared_available() and (SHARED / "self-instruct-seed-tasks" / "seed_tasks.jsonl").exists()):
        console.print("[yellow]near_dup skipped: ../shared/data is absent[/]")
        return []
    from rouge_score import rouge_scorer
    from pipelines.filters.near_dup import filter_in_order

    n = int(os.environ.get("BENCH_NEARDUP_N", 5000))
    big = int(os.environ.get("BENCH_NEARDUP_BIG", 100_000))
    sample = int(os.environ.get("BENCH_NEARDUP_SAMPLE", 20_000))
    rows = []

    seeds = seed_instructions()
    cands = _cached(f"near_dup_cands_{n}.json", lambda: candidate_set(n, seed=7))
    t, c = time.perf_counter(), time.process_time()
    res = filter_in_order(seeds, cands)
    t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
    ours = [r["kept"] for r in res]

    t = time.perf_counter()
    ref, compared = reference_in_order_pruned(seeds, cands)
    t_ref_exact = time.perf_counter() - t
    rec, prec, diff = recall_precision(ours, ref)

    # time pairwise rouge-score on a random sample of the pairs the in-order reference compares
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(3)
    kept_pos = [i for i in range(len(seeds))] + [len(seeds) + j for j, k in enumerate(ref) if k]
    texts = [*seeds, *cands]
    pairs = []
    for _ in range(sample):
        j = rng.randrange(len(cands))
        # the pool candidate j saw: seeds + kept candidates before j; draw uniformly from it
        nb = len(seeds) + _kept_before(ref, j)
        pairs.append((kept_pos[rng.randrange(nb)], len(seeds) + j))
    t = time.perf_counter()
    bound_violations = 0
    allowed = None
    for i, j in pairs:
        f = sc.score(texts[i], texts[j])["rougeL"].fmeasure
        if f > 0.7:
            if allowed is None:
                allowed = set(overlap_pairs(texts))
            bound_violations += (min(i, j), max(i, j)) not in allowed
    per_pair = (time.perf_counter() - t) / len(pairs)
    t_peer = per_pair * compared
    ratio = t_peer / t_ours
    rows.append({"measure": f"ROUGE-L 0.7 filter, {n:,} candidates vs 175 seeds + kept, in order "
                            f"({sum(not k for k in ours):,} dropped)",
                 "ours": f"{t_ours:.2f} s; recall {rec:.4f}, precision {prec:.4f} ({diff} differ)",
                 "peer": f"rouge-score pairwise: {t_peer:.0f} s (est.: {compared:,} pairs x "
                         f"{per_pair * 1e6:.0f} us/pair timed on {len(pairs):,} random pairs; "
                         f"bound violations {bound_violations})",
                 "ratio": f"{ratio:.0f}x", "target": ">= 500x, recall/precision >= 0.99",
                 "met": ratio >= 500 and rec >= 0.99 and prec >= 0.99 and bound_violations == 0,
                 "ours_s": t_ours, "ours_cpu_s": c_ours, "peer_s_estimated": t_peer, "reference_exact_s": t_ref_exact,
                 "pairs_compared": compared, "recall": rec, "precision": prec})
    console.print(f"near_dup: {n:,} in order: ours {t_ours:.2f} s, rouge-score est. {t_peer:.0f} s, "
                  f"recall {rec:.4f} precision {prec:.4f}")

    pool, bc = big_sets(big)
    t, c = time.perf_counter(), time.process_time()
    res = filter_in_order(pool, bc)
    t_big, c_big = time.perf_counter() - t, time.process_time() - c
    dropped = sum(not r["kept"] for r in res)
    rows.append({"measure": f"ROUGE-L 0.7 filter, {big:,} candidates vs {big:,} pool (+ kept), in order",
                 "ours": f"{t_big:.1f} s wall, {c_big:.1f} s CPU ({dropped:,} dropped)", "peer": "", "ratio": "",
                 "target": "< 300 s on 2 cores", "met": t_big < 300, "ours_s": t_big, "ours_cpu_s": c_big,
                 "dropped": dropped})
    console.print(f"near_dup: {big:,} x {big:,}: {t_big:.1f} s, {dropped:,} dropped")
    return rows


def _kept_before(flags: list[bool], j: int, _cache: dict = {}) -> int:
    key = id(flags)
    pref = _cache.get(key)
    if pref is None or len(pref) != len(flags) + 1:
        pref = [0]
        for k in flags:
            pref.append(pref[-1] + k)
        _cache.clear()
        _cache[key] = pref
    return pref[j]
