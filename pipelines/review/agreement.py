"""Inter-annotator agreement, exact and fast at a million items (item 9).

Every measure is computed from its sufficient statistics, which are aggregated once:

- Cohen's kappa for each annotator pair: ``statsmodels.stats.inter_rater.cohens_kappa``
  (unweighted) on the pair's V x V contingency table over the items both answered.
- Fleiss' kappa (Fleiss 1971, eqs. 2-9) over the items with the task's usual number of
  annotations (Fleiss needs the same count on every item), from the items x values count
  matrix: P_i = (sum_j n_ij^2 - n) / (n (n - 1)), p_j = sum_i n_ij / (N n),
  kappa = (mean P_i - sum p_j^2) / (1 - sum p_j^2).
- Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability",
  section C) from the coincidence matrix o_ck = sum_u n_uc (n_uk - [c = k]) / (m_u - 1), with
  delta^2 nominal (1 when c != k) for decisions, labels and flags and ordinal
  (delta^2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2) for ratings.

Why not ``krippendorff.alpha`` and ``statsmodels...fleiss_kappa`` directly: both take the
per-item matrix and, for alpha, materialise an items x V x V array; at 1M items that is
0.8 s per rating question, and a task measures nine questions, past the 3 s the agreement page
has. Both are the references here: ``tests/pipelines/review/test_agreement.py``
checks these functions against them, and against values worked out by hand.

The per-(item, annotator) values of every question come from ONE DuckDB scan
(``datastore.annotations.coded_table``, values coded as small integers in SQL); the count
matrices and pair tables are built with ``numpy.bincount``, without a sort. Each figure comes with
the number of items behind it. A figure that is undefined (one category only, no items) is ``None``.

Blindness: for users who may not read all annotations (annotators), every figure is
computed over adjudicated items only, and only their own row of per-annotator figures is
returned; before adjudication an annotator therefore learns nothing of others' answers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from datastore import annotations as A
from datastore import review_tasks as RT
from datastore import versions as V

from ._common import check, read_store, sees_all, task_of


# ---------------------------------------------------------------- the measures
def _clean(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def coincidences(value_counts) -> tuple[np.ndarray, int]:
    """``(o, items)``: the V x V coincidence matrix of a units x values count matrix
    (Krippendorff 2011, C.1) and the number of pairable units (two values or more).
    One matrix product, so it costs O(units x V^2) time and O(V^2) extra memory."""
    vc = np.asarray(value_counts, dtype=np.float64)
    if vc.ndim != 2 or vc.size == 0:
        return np.zeros((0, 0)), 0
    m = vc.sum(axis=1)
    vc = vc[m >= 2]
    if len(vc) == 0:
        return np.zeros((vc.shape[1], vc.shape[1])), 0
    weighted = vc / (m[m >= 2] - 1)[:, None]
    return weighted.T @ vc - np.diag(weighted.sum(axis=0)), len(vc)


def alpha_from_coincidences(o: np.ndarray, level: str = "nominal") -> float | None:
    """Krippendorff's alpha = 1 - D_o / D_e from a coincidence matrix (values in their order,
    which is the scale for ``level="ordinal"``); ``None`` when fewer than two values occur.
    Raises ValueError for a level other than ``nominal`` or ``ordinal``."""
    n_v = o.sum(axis=0)
    n = n_v.sum()
    if np.count_nonzero(n_v) < 2 or n <= 1:
        return None
    idx = np.arange(len(n_v))
    if level == "nominal":
        d = (idx[:, None] != idx[None, :]).astype(np.float64)
    elif level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        lo, hi = np.minimum(idx[:, None], idx[None, :]), np.maximum(idx[:, None], idx[None, :])
        d = (cum[hi + 1] - cum[lo] - (n_v[:, None] + n_v[None, :]) / 2) ** 2
    else:
        raise ValueError(f"level of measurement {level!r}: expected 'nominal' or 'ordinal'")
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1)
    d_e = float((e * d).sum())
    return None if d_e == 0 else 1 - float((o * d).sum()) / d_e


def krippendorff_alpha(value_counts, level: str = "nominal") -> tuple[float | None, int]:
    """``(alpha, items)`` from a units x values count matrix (shape (N, V), values in their
    order). Items: units with at least two values."""
    o, items = coincidences(value_counts)
    return (alpha_from_coincidences(o, level) if items else None), items


def fleiss_from_counts(items: int, raters: int, category_counts, agreeing_pairs: float) -> float | None:
    """Fleiss' kappa of ``items`` units rated by ``raters`` annotators each, from the count
    of each category over all their ratings (shape (V,)) and the number of agreeing
    unordered pairs of ratings within units (Fleiss 1971: mean P_i is the share of agreeing
    ordered pairs). ``None`` when undefined (no items, fewer than 2 raters, one category)."""
    if items == 0 or raters < 2:
        return None
    p = np.asarray(category_counts, dtype=np.float64) / (items * raters)
    p_e = float((p * p).sum())
    if np.count_nonzero(p) < 2 or p_e >= 1:  # one category only: P_e = 1, kappa undefined
        return None
    p_bar = 2 * float(agreeing_pairs) / (items * raters * (raters - 1))
    return (p_bar - p_e) / (1 - p_e)


def fleiss(value_counts, raters: int | None = None) -> tuple[float | None, int]:
    """``(Fleiss' kappa, items)`` over the units (rows of the (N, V) count matrix) rated by
    exactly ``raters`` annotators (default: the most common count among units with two or more)."""
    vc = np.asarray(value_counts, dtype=np.int64)
    if vc.ndim != 2 or len(vc) == 0:
        return None, 0
    n = vc.sum(axis=1)
    if raters is None:
        ok = n[n >= 2]
        if len(ok) == 0:
            return None, 0
        raters = int(np.bincount(ok).argmax())
    tab = vc[n == raters]
    agreeing = float((tab * (tab - 1)).sum()) / 2
    return fleiss_from_counts(len(tab), raters, tab.sum(axis=0), agreeing), len(tab)


def cohen_from_table(table) -> tuple[float | None, int, float | None]:
    """``(Cohen's kappa, items, observed agreement)`` from a V x V contingency table
    (rows: annotator a's value, columns: annotator b's), with ``statsmodels``' ``cohens_kappa``."""
    from statsmodels.stats.inter_rater import cohens_kappa
    t = np.asarray(table, dtype=np.float64)
    n = int(t.sum()) if t.size else 0
    if n == 0:
        return None, 0, None
    observed = float(np.trace(t)) / n
    marg = t.sum(axis=0) + t.sum(axis=1)
    keep = marg > 0  # categories nobody used do not change kappa
    t = t[np.ix_(keep, keep)]
    if len(t) < 2:
        return None, n, observed  # both always chose the same one value: p_e = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cohens_kappa(t, return_results=False)
    return _clean(float(k)), n, observed


def cohen_from_pairs(pairs: list[tuple], categories: list[str]) -> tuple[float | None, int, float | None]:
    """``(Cohen's kappa, items, observed agreement)`` from ``(value_a, value_b, count)`` rows
    over ``categories``. Raises KeyError for a value outside them."""
    pos = {c: i for i, c in enumerate(categories)}
    t = np.zeros((len(categories), len(categories)))
    for a, b, c in pairs:
        t[pos[a], pos[b]] += c
    return cohen_from_table(t)


# ---------------------------------------------------------------- questions as measured
def measured_questions(questions: list[dict]) -> list[dict]:
    """One entry per measured figure: decisions, ratings and labels as they are, each flag
    of a multi-label question as its own yes/no question; free text is not measured.
    Adds ``key``, ``level`` and ``categories``."""
    out = []
    for q in questions:
        kind = q["kind"]
        if kind == "decision":
            out.append({**q, "key": q["name"], "level": "nominal", "categories": list(q["options"])})
        elif kind == "rating":
            out.append({**q, "key": q["name"], "level": "ordinal",
                        "categories": [str(i) for i in range(q["min"], q["max"] + 1)]})
        elif kind == "label":
            out.append({**q, "key": q["name"], "level": "nominal", "categories": [str(o) for o in q["options"]]})
        elif kind == "multilabel":
            for f in q["options"]:
                out.append({**q, "flag": f, "key": f"{q['name']}:{f}", "level": "nominal", "categories": ["no", "yes"]})
    return out


def code_answers(measured: list[dict], answers: dict) -> list[int]:
    """The answers coded as agreement reads them: for each measured question (in order), the
    1-based position of its value in the question's categories, 0 when unanswered or not a
    category. A flag is "yes" when listed under its question and "no" otherwise. Stored
    with each annotation (``annotations.codes``); the same coding as the SQL fallback in
    ``datastore.annotations.coded_table`` (a test holds the two equal)."""
    out = []
    for q in measured:
        v = answers.get(q["name"])
        if "flag" in q:
            v = "yes" if isinstance(v, list) and q["flag"] in [x if isinstance(x, str) else json.dumps(x) for x in v] \
                else "no"
        elif isinstance(v, bool):
            v = "true" if v else "false"
        elif v is not None and not isinstance(v, str):
            v = json.dumps(v)
        cats = [str(c) for c in q["categories"]]
        out.append(cats.index(v) + 1 if v in cats else 0)
    return out


def _pair_rows(tab: dict) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)`` of every two annotations of the same item, ordered so that
    annotator ``i`` sorts before annotator ``j`` by name. Without a sort: pass r picks
    the r-th remaining row of each item (``numpy`` fancy assignment keeps the last write,
    so assigning in reverse keeps the first), and each pair of passes gives a pair of rows."""
    item = tab["item"]
    n_items = int(item.max()) + 1 if len(item) else 0
    rest = np.arange(len(item))
    slots = []
    while len(rest):
        slot = np.full(n_items, -1, dtype=np.int64)
        slot[item[rest][::-1]] = rest[::-1]
        slots.append(slot)
        rest = rest[slot[item[rest]] != rest]
    ii, jj = [], []
    for p in range(len(slots)):
        for q in range(p + 1, len(slots)):
            both = (slots[p] >= 0) & (slots[q] >= 0)
            ii.append(slots[p][both])
            jj.append(slots[q][both])
    if not ii:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    i, j = np.concatenate(ii), np.concatenate(jj)
    ann = tab["annotator"]
    swap = ann[i] > ann[j]
    return np.where(swap, j, i), np.where(swap, i, j)


def _pairs(tab: dict) -> dict:
    """What every question shares: the pairs of rows of the same item (:func:`_pair_rows`),
    each pair's annotator pair as a dense index (``pid``, with ``who[pid] = (a, b)``), the
    item of each pair, the number of items, the annotations per item (``size``) and that
    number when it is the same for every item (``uniform``, else None)."""
    i, j = _pair_rows(tab)
    m = max(1, len(tab["names"]))
    ann = tab["annotator"].astype(np.int64)
    pair = ann[i] * m + ann[j]
    pid, n_pairs = A.dense_index(pair)
    first = np.zeros(n_pairs, dtype=np.int64)
    first[pid[::-1]] = pair[::-1]
    n_items = int(tab["item"].max()) + 1 if len(tab["item"]) else 0
    size = np.bincount(tab["item"], minlength=n_items)  # annotations per item
    uniform = int(size[0]) if n_items and (size == size[0]).all() else None
    return {"i": i, "j": j, "pid": pid, "who": [divmod(int(p), m) for p in first], "item": tab["item"][i],
            "n_items": n_items, "size": size, "uniform": uniform}


def _measure(tab: dict, pr: dict, key: str, n_cat: int, k: int | None) -> dict:
    """One question's sufficient statistics from its codes, in a few ``bincount`` passes
    over the pairs (no per-item matrix): the V x V table of each annotator pair (Cohen),
    the coincidence matrix (Krippendorff: each pair of values in an item with m values
    counts 1 / (m - 1), both ways) and, over the items with exactly ``raters`` values, the
    category counts and agreeing pairs (Fleiss)."""
    v1 = n_cat + 1  # code 0: unanswered
    c = tab["codes"][key]
    cell = c[pr["i"]].astype(np.int64) * v1 + c[pr["j"]]
    n_pairs = len(pr["who"])
    tables = np.bincount(pr["pid"] * (v1 * v1) + cell, minlength=n_pairs * v1 * v1)
    tables = tables.reshape(n_pairs, v1, v1)[:, 1:, 1:]
    answered = c > 0
    every = bool(answered.all())  # the usual case (a required question): shortcuts below are exact
    m = pr["size"] if every else np.bincount(tab["item"], weights=answered, minlength=pr["n_items"])
    m_pair = m[pr["item"]]
    if every and pr["uniform"] == 2:  # every item has two values: each pair counts 1
        x = np.bincount(cell, minlength=v1 * v1)
    else:
        w = np.divide(1.0, m_pair - 1, out=np.zeros(len(m_pair)), where=m_pair >= 2)
        x = np.bincount(cell, weights=w, minlength=v1 * v1)
    x = x.reshape(v1, v1)[1:, 1:]
    raters = k
    if raters is None:
        rated = m[m >= 2].astype(np.int64)
        raters = int(np.bincount(rated).argmax()) if len(rated) else 0
    full = m == raters
    if every and pr["uniform"] == raters:
        agree = np.bincount(cell, minlength=v1 * v1)
        counts = np.bincount(c, minlength=v1)[1:]
    else:
        agree = np.bincount(cell, weights=m_pair == raters, minlength=v1 * v1)
        counts = np.bincount(c, weights=full[tab["item"]], minlength=v1)[1:]
    agree = agree.reshape(v1, v1)[1:, 1:]
    n_full = int(full.sum()) if raters >= 2 else 0
    return {"tables": tables, "o": x + x.T, "alpha_items": int((m >= 2).sum()),
            "fleiss_kappa": fleiss_from_counts(n_full, raters, counts, np.trace(agree)), "fleiss_items": n_full}


def _figures(conn, task_ids: list[int], questions: list[dict], only_adjudicated: bool, k: int | None,
             tab: dict | None = None, pr: dict | None = None, stored: dict | None = None) -> list[dict]:
    mq = measured_questions(questions)
    if tab is None:
        tab = A.coded_table(conn, task_ids, mq, only_adjudicated=only_adjudicated, stored=stored)
    if pr is None:
        pr = _pairs(tab)
    names = tab["names"]
    out = []
    for q in mq:
        n_cat = len(q["categories"])
        if not n_cat:
            out.append({"question": q["key"], "level": q["level"], "krippendorff_alpha": None, "alpha_items": 0,
                        "fleiss_kappa": None, "fleiss_items": 0, "pairs": []})
            continue
        st = _measure(tab, pr, q["key"], n_cat, k)
        rows = []
        for p in sorted(range(len(pr["who"])), key=lambda p: (names[pr["who"][p][0]], names[pr["who"][p][1]])):
            kappa, n, obs = cohen_from_table(st["tables"][p])
            if n:
                a, b = pr["who"][p]
                rows.append({"a": names[a], "b": names[b], "cohen_kappa": kappa, "observed_agreement": obs,
                             "items": n})
        alpha = alpha_from_coincidences(st["o"], q["level"]) if st["alpha_items"] else None
        out.append({"question": q["key"], "level": q["level"], "krippendorff_alpha": alpha,
                    "alpha_items": st["alpha_items"], "fleiss_kappa": st["fleiss_kappa"],
                    "fleiss_items": st["fleiss_items"], "pairs": rows, "_tables": st["tables"]})
    return out


def _annotator_rows(conn, task_ids: list[int], questions: list[dict], only_adjudicated: bool,
                    only: str | None, tab: dict, pr: dict, decision_tables: np.ndarray | None) -> list[dict]:
    """Per annotator: throughput, time, agreement with the others (Cohen's kappa on the
    decision tables of all their pairs, pooled), with the adjudicated result and on gold."""
    mq = measured_questions(questions)
    dq = next((q for q in mq if q["key"] == "decision"), None)
    names = tab["names"]
    adj = {r[0]: r[1:] for r in A.versus_reference(conn, task_ids, dq, "adjudicated", annotator=only)} if dq else {}
    gold = {r[0]: r[1:] for r in A.versus_reference(conn, task_ids, dq, "gold", annotator=only)} if dq else {}
    ann = tab["annotator"]
    n_by = np.bincount(ann, minlength=len(names)) if len(names) else np.zeros(0, dtype=np.int64)
    # annotator indices fit 16 bits for any real team, where numpy's stable sort is a radix sort
    order = np.argsort(ann.astype(np.uint16) if len(names) < 65536 else ann, kind="stable")
    bounds = np.searchsorted(ann[order], np.arange(len(names) + 1))
    rows = []
    for idx, name in enumerate(names):
        if not n_by[idx] or (only is not None and name != only):
            continue
        times = tab["time_ms"][order[bounds[idx]:bounds[idx + 1]]]
        times = times[~np.isnan(times)]
        median_ms = float(np.median(times)) if len(times) else None
        hours = float(times.sum()) / 3.6e6
        kappa, n_pair, obs = None, 0, None
        if dq is not None and decision_tables is not None:
            mine = np.zeros(decision_tables.shape[1:])
            for p, (a, b) in enumerate(pr["who"]):  # this annotator's values as rows
                if a == idx:
                    mine += decision_tables[p]
                elif b == idx:
                    mine += decision_tables[p].T
            kappa, n_pair, obs = cohen_from_table(mine)
        m_adj, n_adj = adj.get(name, (0, 0))
        m_gold, n_gold = gold.get(name, (0, 0))
        count = int(n_by[idx])
        rows.append({"annotator": name, "annotations": count,
                     "throughput_per_hour": round(count / hours, 1) if hours > 0 else None,
                     "median_time_s": round(median_ms / 1000, 2) if median_ms is not None else None,
                     "agreement_with_others": obs, "kappa_with_others": kappa, "paired_items": n_pair,
                     "agreement_with_adjudicated": (m_adj / n_adj) if n_adj else None, "adjudicated_items": n_adj,
                     "gold_accuracy": (m_gold / n_gold) if n_gold else None, "gold_items": n_gold})
    return rows


# ---------------------------------------------------------------- services
def _report(st, who: str, role: str, t: dict) -> tuple[dict, dict, dict]:
    """The report of task ``t`` and the coded table and pairs it was computed from."""
    full = sees_all(role)
    only_adj = not full
    ids = [t["task_id"]]
    # one scan of the annotations feeds every figure (the Agreement page must answer in under 3 s at 1M items)
    mq = measured_questions(t["questions"])
    tab = A.coded_table(st.conn, ids, mq, only_adjudicated=only_adj, stored={t["task_id"]: mq})
    pr = _pairs(tab)
    figures = _figures(st.conn, ids, t["questions"], only_adj, t["overlap_k"], tab, pr)
    dec = next((f["_tables"] for f in figures if f["question"] == "decision" and "_tables" in f), None)
    annotators = _annotator_rows(st.conn, ids, t["questions"], only_adj, None if full else who, tab, pr, dec)
    return ({"task": t["name"], "dataset": t["dataset"], "version": t["version_number"],
             "scope": "all" if full else "adjudicated",
             "questions": [{k: v for k, v in f.items() if k != "_tables"} for f in figures],
             "annotators": annotators}, tab, pr)


def _by_version(st, role: str, dataset: str, computed: dict | None = None) -> list[dict]:
    """Per-version rows; ``computed``: ``{(task_id, ...): (coded table, pairs)}`` already
    read for those tasks (same scope), reused instead of a second scan."""
    ds = V.get_dataset(st, dataset)
    tasks = RT.list_tasks(st.conn, ds.dataset_id)
    out = []
    for vnum in sorted({t["version_number"] for t in tasks}):
        ts = [t for t in tasks if t["version_number"] == vnum]
        qs = [q for q in ts[0]["questions"] if q["kind"] in ("decision", "rating")]
        ks = {t["overlap_k"] for t in ts}
        ids = [t["task_id"] for t in ts]
        stored = {t["task_id"]: measured_questions(t["questions"]) for t in ts}
        tab, pr = (computed or {}).get(tuple(ids), (None, None))
        for f in _figures(st.conn, ids, qs, not sees_all(role), ks.pop() if len(ks) == 1 else None,
                          tab, pr, stored=stored):
            out.append({"version": vnum, "tasks": [t["name"] for t in ts], "question": f["question"],
                        "krippendorff_alpha": f["krippendorff_alpha"], "alpha_items": f["alpha_items"],
                        "fleiss_kappa": f["fleiss_kappa"], "fleiss_items": f["fleiss_items"]})
    return out


def agreement_report(workspace: str | Path, user: str | None, task: int | str) -> dict:
    """Agreement on one task (one dataset version): ``{"task", "dataset", "version",
    "scope" ('all' | 'adjudicated'), "questions": [{"question", "level", "krippendorff_alpha",
    "alpha_items", "fleiss_kappa", "fleiss_items", "pairs": [{"a", "b", "cohen_kappa",
    "observed_agreement", "items"}]}], "annotators": [{"annotator", "annotations",
    "throughput_per_hour", "median_time_s", "agreement_with_others", "kappa_with_others",
    "paired_items", "agreement_with_adjudicated", "adjudicated_items", "gold_accuracy",
    "gold_items"}]}``. Needs ``read_own_annotations``; see the module note on blindness."""
    with read_store(workspace) as st:
        who, role = check(st, user, "read_own_annotations")
        return _report(st, who, role, task_of(st, task))[0]


def agreement_by_version(workspace: str | Path, user: str | None, dataset: str) -> list[dict]:
    """Decision and rating agreement per dataset version over all its tasks:
    ``[{"version", "tasks", "question", "krippendorff_alpha", "alpha_items", "fleiss_kappa",
    "fleiss_items"}]``. Same blindness rule as :func:`agreement_report`."""
    with read_store(workspace) as st:
        _, role = check(st, user, "read_own_annotations")
        return _by_version(st, role, dataset)


def agreement_page(workspace: str | Path, user: str | None, task: int | str) -> dict:
    """What the Agreement page shows, in one read: ``{"report": agreement_report(task),
    "by_version": agreement_by_version(its dataset)}``; a version whose only task is this one
    reuses the report's scan of the annotations. Same permission and blindness rules."""
    with read_store(workspace) as st:
        who, role = check(st, user, "read_own_annotations")
        t = task_of(st, task)
        rep, tab, pr = _report(st, who, role, t)
        return {"report": rep, "by_version": _by_version(st, role, t["dataset"], {(t["task_id"],): (tab, pr)})}
