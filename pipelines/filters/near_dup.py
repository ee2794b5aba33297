"""Fast ROUGE-L near-duplicate filter, exact against rouge-score.

The reference (yizhongw/self-instruct ``bootstrap_instructions.py``, Stanford
Alpaca ``generate_instruction.py``): a candidate instruction is dropped when its ROUGE-L
F-measure, as ``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)`` computes it,
is above 0.7 against any instruction in the pool (the seeds, then every earlier kept candidate,
in order). Done pairwise that is quadratic: rouge-score manages about 14,000 pairs a second per
core (docs/architecture.md section 4), so 52K instructions against each other take about 26 core-hours.

Why our own code (the project's craft rule: own code only for the core, and say why): no library
does an exact, incremental ROUGE-L similarity join. MinHash/LSH (datasketch) is approximate and
measures Jaccard of shingles, not LCS; rouge-score itself is the pairwise reference. This module is
exact: it returns the same keep/drop decisions as the reference, by construction.

How (docs/architecture.md section 4, "Pruning can be exact"):

* **Tokens** exactly as rouge-score's ``tokenize.tokenize`` with no stemmer: ``text.lower()``, every
  run of characters outside ``[a-z0-9]`` is a separator, empty tokens dropped (see
  :func:`rouge_tokens`; a test checks equality with rouge-score on real and adversarial text).
* **Bound.** With |a|, |b| the token counts and L the LCS length, rouge-score's F-measure is
  ``2 p r / (p + r)`` with ``p = L/|pred|``, ``r = L/|target|``, which equals ``2 L / (|a| + |b|)``.
  L is at most the multiset overlap O of the two token lists, so F > t needs
  ``O > t (|a| + |b|) / 2`` (a Dice bound) and, because ``O <= min(|a|, |b|)``, a length ratio above
  ``t / (2 - t)`` (0.538 at t = 0.7).
* **Candidates** by prefix filtering (Chaudhuri et al. 2006, "A primitive operator for similarity
  joins"; Bayardo et al. 2007 "All-Pairs"): each text becomes a set of elements (token, k-th
  occurrence), so set overlap equals multiset overlap. Elements are sorted in one global order
  (rarest first); two texts whose overlap is at least ``alpha`` share an element among the first
  ``|x| - alpha + 1`` of each. An item is indexed under the elements of its prefix for the smallest
  ``alpha`` that any partner could need (``alpha(n) = floor(t n / (2 - t)) + 1``), and a query probes
  the posting lists of its own prefix. Each posting row carries the item's length and a 128-bucket
  count sketch (:func:`_sketch`), so the length filter and an upper bound of the multiset overlap
  prune the candidates with a few vectorized numpy operations over contiguous rows.
* **Verification**: the LCS of the two token lists by ``rapidfuzz.distance.LCSseq`` (C++, bit-parallel;
  tokens are mapped to one code point each), then the F-measure computed with rouge-score's own float
  expression (``scoring.fmeasure``), so the comparison ``F > t`` gives the same answer as rouge-score
  bit for bit. The pruning keeps a 1e-9 margin so float rounding can never prune a pair that
  rouge-score would score above the threshold.

The global order: with ``order_hint`` (all texts known up front, as in :func:`filter_in_order`), the
element frequencies of the hint; otherwise the index re-ranks by the frequencies of its own items and
re-indexes each time it doubles (amortized linear). Any fixed total order is correct; the frequency
order only makes it fast.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from rapidfuzz.distance import LCSseq

from .textnorm import normalize_text

__all__ = ["DEFAULT_THRESHOLD", "RougeLIndex", "filter_in_order", "rouge_f", "rouge_tokens"]

#: Self-Instruct's ROUGE-L threshold (Wang et al. 2023, section 2.3; yizhongw/self-instruct
#: ``bootstrap_instructions.py``: ``if max(rouge_scores) > 0.7: continue``).
DEFAULT_THRESHOLD = 0.7

# rouge_score/tokenize.py: lower-case, replace [^a-z0-9]+ by a space, split on whitespace, keep tokens
# matching ^[a-z0-9]+$. The surviving tokens are exactly the maximal runs of [a-z0-9].
_TOKEN_RE = re.compile(r"[a-z0-9]+")

# float margin of the pruning bounds: the bounds are exact rationals; rouge-score's float F can exceed
# the exact value by a few ulps, so the filters admit pairs within this margin below the bound.
_EPS = 1e-9

# word ids map to one code point each for rapidfuzz; 0 is "a word the index has never seen";
# the surrogate block is skipped so every code point is a valid scalar value.
_MAX_CP = 0x10FFFF


def rouge_tokens(text: str) -> list[str]:
    """Tokens of ``text`` exactly as rouge-score's default tokenizer without stemmer.

    Source: ``rouge_score/tokenize.py`` (rouge-score 0.1.2): ``text.lower()``, then the maximal runs
    of ``[a-z0-9]``. Non-ASCII letters are separators (so ``"café"`` gives ``["caf"]``), but
    ``str.lower`` runs first, so e.g. the Kelvin sign U+212A becomes ``k``. Empty, punctuation-only or
    non-Latin text gives ``[]``, which rouge-score scores 0 against anything.
    """
    return _TOKEN_RE.findall(text.lower())


def rouge_f(lcs: int, n_target: int, n_prediction: int) -> float:
    """ROUGE-L F-measure from an LCS length and the two token counts, with rouge-score's floats.

    Source: ``rouge_score.rouge_scorer._score_lcs`` and ``rouge_score.scoring.fmeasure``:
    ``p = lcs / n_prediction``, ``r = lcs / n_target``, ``F = 2 * p * r / (p + r)`` (0 when either
    text has no tokens or the LCS is empty). The value is symmetric in the two texts bit for bit
    (``2 * p`` is exact, IEEE products and sums commute).
    """
    if not n_target or not n_prediction:
        return 0.0
    p = lcs / n_prediction
    r = lcs / n_target
    if p + r > 0:
        return 2 * p * r / (p + r)
    return 0.0


def _alpha(n: int, t: float) -> int:
    """Smallest overlap any partner of a text of ``n`` tokens needs for F > t (at least 1)."""
    # O > t (n + m) / 2 and m >= O  =>  O > t n / (2 - t)
    return max(1, int(t * n / (2.0 - t) - _EPS) + 1)


def _cp(wid: int) -> int:
    cp = wid + 1
    return cp if cp < 0xD800 else cp + 0x800


_SKETCH_BITS = 7       # 128 buckets for the overlap sketch
_SKETCH_SHIFT = 32 - _SKETCH_BITS
_ROW = 7               # a posting row: id, tokens, excess, plane 1 (2 words), plane 2 (2 words)


def _sketch(elems: Sequence[int]) -> tuple[int, list[int]]:
    """``(excess, planes)`` of an element list: each element falls in one of 128 buckets (a
    multiplicative hash); with c the count of a bucket, plane k holds the buckets with c >= k
    (k = 1, 2), as two signed 64-bit words each, and excess is the sum of max(0, c - 2).

    For two texts, ``popcount(P1x & P1y) + popcount(P2x & P2y) + min(excess_x, excess_y)`` is at least
    the sum over buckets of min(cx, cy) (``min(cx, cy) = [both >= 1] + [both >= 2] + max(0, min - 2)``
    and the last terms sum to at most either excess), which is at least the multiset overlap: a
    shared element adds one to the same bucket on both sides."""
    p1 = p2 = ex = 0
    for e in elems:
        bit = 1 << (((e * 2654435761) & 0xFFFFFFFF) >> _SKETCH_SHIFT)
        if not p1 & bit:
            p1 |= bit
        elif not p2 & bit:
            p2 |= bit
        else:
            ex += 1
    return ex, [_signed(p1 & _LO), _signed(p1 >> 64), _signed(p2 & _LO), _signed(p2 >> 64)]


_LO = (1 << 64) - 1


def _flat_sketch(elems: Sequence[int]) -> list[int]:
    ex, planes = _sketch(elems)
    return [ex, *planes]


def _signed(w: int) -> int:
    return w - (1 << 64) if w >= 1 << 63 else w


class _Prepared:
    __slots__ = ("n", "wids", "seq")

    def __init__(self, n: int, wids: list[int], seq):
        self.n = n
        self.wids = wids
        self.seq = seq


class _Posting:
    """A growable ``(size, 7)`` int64 array of posting rows (see :func:`_sketch`): the item id, its token
    count, its sketch excess and its two sketch planes, so a probe reads contiguous memory."""
    __slots__ = ("buf", "size")

    def __init__(self):
        self.buf = np.empty((4, _ROW), dtype=np.int64)
        self.size = 0

    def append(self, row: "np.ndarray") -> None:
        if self.size == len(self.buf):
            self.buf = np.concatenate([self.buf, np.empty_like(self.buf)])
        self.buf[self.size] = row
        self.size += 1

    def view(self) -> "np.ndarray":
        return self.buf[: self.size]


class RougeLIndex:
    """A growing pool of texts that answers "which item has ROUGE-L F above the threshold?".

    ``add(text) -> int`` appends (ids are 0, 1, 2, ... in order of addition); ``nearest_above(text)``
    returns ``(id, F)`` of the item with the highest F above ``threshold`` (ties: the lowest id), or
    None; ``above(text)`` returns every such ``(id, F)`` in id order. F is rouge-score's F-measure,
    bit for bit (``RougeScorer(["rougeL"], use_stemmer=False).score(item, text)["rougeL"].fmeasure``),
    and no item above the threshold is ever missed (the pruning is exact; see the module docstring).

    Filters between the prefix probe and the LCS, all safe upper bounds: the length filter, then the
    multiset overlap bounded by a 64-bucket count sketch (the sum over buckets of the smaller count
    is at least the overlap, since every shared element adds one to the same bucket on both sides;
    counts are uint8, and a text with 255 or more elements in one bucket is never pruned by it).

    ``threshold`` in [0, 1): Self-Instruct's 0.7 by default. ``order_hint``: texts whose token
    frequencies fix the element order (pass every text you will add or query when you know them; it
    only affects speed). Memory: about 300 bytes per indexed text plus about 100 per token.
    ``normalize`` (default True): texts are compared in the form
    :func:`pipelines.filters.textnorm.normalize_text` gives (the same normalisation as exact dedup:
    NFKC, invisible characters removed), so F is rouge-score's on the normalised texts; on plain
    ASCII text that is rouge-score's on the texts themselves. False: the raw texts.
    Raises ValueError for a threshold outside [0, 1).
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, order_hint: Iterable[str] | None = None,
                 normalize: bool = True):
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)
        self.normalize = bool(normalize)
        self._wid: dict[str, int] = {}
        self._eid: dict[tuple[int, int], int] = {}
        self._rank: list[int] = []          # per element id: its position in the global order
        self._count: list[int] = []         # per element id: items (and hint texts) holding it
        self._new_rank = -1                 # elements created after the last ranking: rarest, unique
        self._seqs: list = []               # per item: its tokens as one code point each
        self._elems: list[list[int]] = []   # per item: its element ids
        self._rows: list[np.ndarray] = []   # per item: its posting row
        self._post: dict[int, _Posting] = {}
        self._ranked_at = 0
        self._frozen = False
        self._lists = False                 # vocabulary beyond one code point per word: use int lists
        if order_hint is not None:
            self._set_order(self._prepare_new(text)[1] for text in order_hint)

    def _set_order(self, element_lists: Iterable[list[int]]) -> None:
        """Fix the global order from the frequencies of these element lists (and never re-rank)."""
        cnt = self._count
        for elems in element_lists:
            for e in elems:
                cnt[e] += 1
        self._rerank()
        self._frozen = True

    # ------------------------------------------------------------------ preparation
    def _tokens(self, text: str) -> list[str]:
        return rouge_tokens(normalize_text(text) if self.normalize else text)

    def _wids(self, tokens: Sequence[str], create: bool) -> list[int]:
        w = self._wid
        if create:
            out = []
            for tok in tokens:
                i = w.get(tok)
                if i is None:
                    i = w[tok] = len(w)
                    if _cp(i) > _MAX_CP:
                        self._to_lists()
                out.append(i)
            return out
        return [w.get(tok, -1) for tok in tokens]

    def _elements(self, wids: list[int], create: bool) -> list[int]:
        """Element ids (word id, k-th occurrence); -1 for an element the index has never seen."""
        seen: dict[int, int] = {}
        eid = self._eid
        out = []
        for wi in wids:
            k = seen.get(wi, 0)
            seen[wi] = k + 1
            key = (wi, k)
            e = eid.get(key)
            if e is None:
                if not create:
                    out.append(-1)
                    continue
                e = eid[key] = len(self._rank)
                self._rank.append(self._new_rank)
                self._new_rank -= 1
                self._count.append(0)
            out.append(e)
        return out

    def _seq(self, wids: list[int]):
        if self._lists:
            return wids
        return "".join([chr(_cp(i)) if i >= 0 else "\x00" for i in wids])

    def _to_lists(self) -> None:
        if not self._lists:
            self._lists = True
            self._seqs = [[self._wid_of_cp(ord(ch)) for ch in s] for s in self._seqs]

    @staticmethod
    def _wid_of_cp(cp: int) -> int:
        return (cp - 0x800 if cp >= 0xE000 else cp) - 1

    def _prepare_new(self, text: str) -> tuple[_Prepared, list[int]]:
        """Like :meth:`_prepare`, adding unseen words and elements to the vocabulary."""
        wids = self._wids(self._tokens(text), create=True)
        return _Prepared(len(wids), wids, self._seq(wids)), self._elements(wids, create=True)

    def _prepare(self, text: str) -> tuple[_Prepared, list[int]]:
        wids = self._wids(self._tokens(text), create=False)
        return _Prepared(len(wids), wids, self._seq(wids)), self._elements(wids, create=False)

    # ------------------------------------------------------------------ index
    def _prefix(self, elems: list[int], n: int) -> list[int]:
        plen = n - _alpha(n, self.threshold) + 1
        # never-seen elements (-1) are in no item: they sort first and only use up prefix slots
        unknown = elems.count(-1)
        if unknown >= plen:
            return []
        known = sorted((e for e in elems if e >= 0), key=self._rank.__getitem__)
        return known[: plen - unknown]

    def _index(self, item_id: int) -> None:
        post = self._post
        row = self._rows[item_id]
        for e in self._prefix(self._elems[item_id], int(row[1])):
            p = post.get(e)
            if p is None:
                p = post[e] = _Posting()
            p.append(row)

    def _rerank(self) -> None:
        order = sorted(range(len(self._count)), key=lambda e: (self._count[e], e))
        rank = self._rank
        for r, e in enumerate(order):
            rank[e] = r
        self._new_rank = -1
        self._post = {}
        for i in range(len(self._rows)):
            self._index(i)
        self._ranked_at = len(self._rows)

    def add(self, text: str) -> int:
        """Append ``text`` to the pool; returns its id (0, 1, 2, ...). Texts without tokens are kept
        (they get an id) but can match nothing, as in rouge-score."""
        wids = self._wids(self._tokens(text), create=True)
        elems = self._elements(wids, create=True)
        return self._add_prepared(_Prepared(len(wids), wids, self._seq(wids)), elems)

    def _add_prepared(self, item: _Prepared, elems: list[int]) -> int:
        i = len(self._rows)
        ex, planes = _sketch(elems)
        row = np.array([i, item.n, ex, *planes], dtype=np.int64)
        self._rows.append(row)
        self._seqs.append(item.seq)
        self._elems.append(elems)
        cnt = self._count
        for e in elems:
            cnt[e] += 1
        if not self._frozen and len(self._rows) >= max(256, 2 * self._ranked_at):
            self._rerank()
        else:
            self._index(i)
        return i

    def _bulk_add(self, prepared: Sequence[tuple[_Prepared, list[int]]]) -> None:
        """Append many prepared items at once (same result as :meth:`_add_prepared` in order): the
        posting lists are built by one sort instead of one append per prefix element."""
        if not self._frozen:
            for item, elems in prepared:
                self._add_prepared(item, elems)
            return
        start = len(self._rows)
        block = np.array([[start + k, item.n, *_flat_sketch(elems)]
                          for k, (item, elems) in enumerate(prepared)], dtype=np.int64).reshape(-1, _ROW)
        E: list[int] = []
        I: list[int] = []
        cnt = self._count
        for k, (item, elems) in enumerate(prepared):
            self._rows.append(block[k])
            self._seqs.append(item.seq)
            self._elems.append(elems)
            for e in elems:
                cnt[e] += 1
            pre = self._prefix(elems, item.n)
            E.extend(pre)
            I.extend([k] * len(pre))
        if not E:
            return
        Ea = np.array(E, dtype=np.int64)
        order = np.argsort(Ea, kind="stable")
        Ea, Ia = Ea[order], np.array(I, dtype=np.int64)[order]
        cuts = [0, *(np.flatnonzero(np.diff(Ea)) + 1).tolist(), len(Ea)]
        post = self._post
        for a, b in zip(cuts[:-1], cuts[1:]):
            e = int(Ea[a])
            rows = block[Ia[a:b]]
            p = post.get(e)
            if p is None:
                p = post[e] = _Posting()
                p.buf, p.size = rows, len(rows)
            else:
                p.buf = np.concatenate([p.view(), rows])
                p.size = len(p.buf)

    def __len__(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------ queries
    def _above(self, q: _Prepared, elems: list[int]) -> list[tuple[int, float]]:
        n = q.n
        t = self.threshold
        if n == 0:
            return []
        post = self._post
        arrays = []
        for e in self._prefix(elems, n):
            p = post.get(e)
            if p is not None:
                arrays.append(p.view())
        if not arrays:
            return []
        rows = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        # length filter: F <= 2 min(n, m) / (n + m)  =>  t n / (2 - t) < m < (2 - t) n / t
        lo = t * n / (2.0 - t) - _EPS
        hi = (2.0 - t) * n / t + _EPS if t > 0 else float("inf")
        m = rows[:, 1]
        rows = rows[(m > lo) & (m < hi)]
        if not len(rows):
            return []
        # overlap filter: F > t needs overlap > t (n + m) / 2; the sketch bounds the overlap from above
        qex, qplanes = _sketch([e for e in elems if e >= 0])
        pl = rows[:, 3:].view(np.uint64) & np.array(qplanes, dtype=np.int64).view(np.uint64)
        ov = np.bitwise_count(pl).sum(axis=1, dtype=np.int64) + np.minimum(rows[:, 2], qex)
        m = rows[:, 1]
        rows = rows[2.0 * ov > t * (n + m) - _EPS]
        if not len(rows):
            return []
        if len(arrays) > 1 and len(rows) > 1:
            _, first = np.unique(rows[:, 0], return_index=True)
            rows = rows[first]
        cand, m = rows[:, 0], rows[:, 1]
        half_t = t / 2.0
        seqs = self._seqs
        qseq = q.seq
        if self._lists and isinstance(qseq, str):
            qseq = q.wids
        out = []
        for c, mc in zip(cand.tolist(), m.tolist()):
            need = half_t * (n + mc) - _EPS      # the LCS must exceed this
            L = LCSseq.similarity(qseq, seqs[c], score_cutoff=int(need) if need > 0 else 0)
            if L <= need:
                continue
            f = rouge_f(L, mc, n)
            if f > t:
                out.append((c, f))
        out.sort()
        return out

    def above(self, text: str) -> list[tuple[int, float]]:
        """Every ``(id, F)`` with F above the threshold, in id order ([] when none)."""
        return self._above(*self._prepare(text))

    def nearest_above(self, text: str) -> tuple[int, float] | None:
        """``(id, F)`` of the item with the highest F above the threshold (lowest id on ties), or None."""
        return _best(self._above(*self._prepare(text)))


def _best(found: list[tuple[int, float]]) -> tuple[int, float] | None:
    best = None
    for i, f in found:
        if best is None or f > best[1]:
            best = (i, f)
    return best


def filter_in_order(pool: list[str], candidates: list[str],
                    threshold: float = DEFAULT_THRESHOLD, normalize: bool = True) -> list[dict]:
    """Self-Instruct's ROUGE-L filter: each candidate, in order, against ``pool`` plus every earlier
    kept candidate; a candidate whose F is above ``threshold`` against any of them is dropped.

    Returns one dict per candidate: ``kept`` (bool), ``score`` (float) and ``match`` (int | None).
    For a dropped candidate, ``score`` is its highest F and ``match`` the index of that item in
    ``pool + candidates`` (``match < len(pool)``: a pool text; else ``candidates[match - len(pool)]``,
    an earlier kept candidate). A kept candidate has ``score`` 0.0 and ``match`` None: the index never
    computes scores at or below the threshold (that is what makes it fast).

    ``normalize``: compare the :func:`pipelines.filters.textnorm.normalize_text` forms (default; see
    :class:`RougeLIndex`). Same decisions as the reference (rouge-score, pairwise, in order, on the
    compared forms), by construction; the test
    ``tests/pipelines/filters/test_near_dup.py`` checks it. Speed: ``benchmarks/bench_near_dup.py``.
    """
    idx = RougeLIndex(threshold, normalize=normalize)
    prepared = [idx._prepare_new(t) for t in pool]
    cands = [idx._prepare_new(t) for t in candidates]
    idx._set_order(elems for _, elems in [*prepared, *cands])
    idx._bulk_add(prepared)
    ids: list[int] = list(range(len(pool)))     # index id -> position in pool + candidates
    out = []
    for j, (q, elems) in enumerate(cands):
        best = _best(idx._above(q, elems))
        if best is None:
            idx._add_prepared(q, elems)
            ids.append(len(pool) + j)
            out.append({"kept": True, "score": 0.0, "match": None})
        else:
            out.append({"kept": False, "score": best[1], "match": ids[best[0]]})
    return out
