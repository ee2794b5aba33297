"""Inter-annotator agreement with the field's libraries (issue 3 item 4).

- Cohen's kappa for each annotator pair: ``sklearn.metrics.cohen_kappa_score`` (unweighted)
  over the items both annotated, fed as (value a, value b, count) with ``sample_weight``.
- Fleiss' kappa: ``statsmodels.stats.inter_rater.fleiss_kappa`` over the items with the
  task's usual number of annotations (Fleiss needs the same count on every item).
- Krippendorff's alpha: ``krippendorff.alpha`` from the units x values count matrix;
  nominal for decisions, labels and flags, ordinal for ratings.
The per-(item, annotator) values of every question come from ONE DuckDB scan
(``datastore.annotations.coded_table``, values coded as small integers in SQL); the count
matrices and pair confusion counts are built from those arrays with numpy and handed to
the libraries. Each figure comes with the number of items behind it. A figure that is undefined (one
category only, no items) is ``None``.

Blindness: for users who may not read all annotations (annotators), every figure is
computed over adjudicated items only, and only their own row of per-annotator figures is
returned; before adjudication an annotator therefore learns nothing of others' answers.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from datastore import annotations as A
from datastore import review_tasks as RT
from datastore import versions as V

from ._common import check, read_store, sees_all, task_of


# ---------------------------------------------------------------- the measures
def _clean(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def krippendorff_alpha(value_counts: np.ndarray, level: str = "nominal") -> tuple[float | None, int]:
    """``(alpha, items)`` from a units x values count matrix (values in their order, which
    is the ordinal scale for ``level="ordinal"``). Items: units with at least two values."""
    import krippendorff
    vc = np.asarray(value_counts, dtype=np.float64)
    if vc.ndim != 2 or vc.shape[1] < 2:
        return None, 0
    vc = vc[vc.sum(axis=1) >= 2]
    if len(vc) == 0:
        return None, 0
    if np.count_nonzero(vc.sum(axis=0)) < 2:  # one value only: expected disagreement 0, alpha undefined
        return None, len(vc)
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            a = krippendorff.alpha(value_counts=vc, level_of_measurement=level)
    except (ValueError, ZeroDivisionError):
        return None, len(vc)
    return _clean(a), len(vc)


def fleiss(value_counts: np.ndarray, raters: int | None = None) -> tuple[float | None, int]:
    """``(Fleiss' kappa, items)`` over the units rated by exactly ``raters`` annotators
    (default: the most common count among units with at least two)."""
    from statsmodels.stats.inter_rater import fleiss_kappa
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
    if len(tab) == 0 or raters < 2:
        return None, 0
    if np.count_nonzero(tab.sum(axis=0)) < 2:  # one category only: P_e = 1, kappa undefined
        return None, len(tab)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = fleiss_kappa(tab, method="fleiss")
    return _clean(k), len(tab)


def cohen_from_pairs(pairs: list[tuple], categories: list[str]) -> tuple[float | None, int, float | None]:
    """``(Cohen's kappa, items, observed agreement)`` from ``(value_a, value_b, count)`` rows."""
    from sklearn.metrics import cohen_kappa_score
    rows = [(a, b, c) for a, b, c in pairs if c]
    n = int(sum(c for _, _, c in rows))
    if n == 0:
        return None, 0, None
    y1 = [a for a, _, _ in rows]
    y2 = [b for _, b, _ in rows]
    w = [c for _, _, c in rows]
    observed = sum(c for a, b, c in rows if a == b) / n
    labels = [c for c in categories if c in set(y1) | set(y2)] or None
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            k = cohen_kappa_score(y1, y2, labels=labels, sample_weight=w)
    except ValueError:
        k = float("nan")
    return _clean(k), n, observed


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


def _pair_rows(tab: dict) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)`` of every two annotations of the same item, ordered so that
    annotator ``i`` sorts before annotator ``j`` by name."""
    item = tab["item"]
    if len(item) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(item, kind="stable")
    srt = item[order]
    ii, jj = [], []
    for d in range(1, len(order)):  # items are contiguous in ``srt``: offset d pairs rows d apart
        same = srt[:-d] == srt[d:]
        if not same.any():
            break
        ii.append(order[:-d][same])
        jj.append(order[d:][same])
    i, j = np.concatenate(ii), np.concatenate(jj)
    ann = tab["annotator"]
    swap = ann[i] > ann[j]
    return np.where(swap, j, i), np.where(swap, i, j)


def _pair_counts(tab: dict, pairs: tuple, key: str, n_cat: int) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    """``{(annotator a, annotator b): [(code a, code b, count)]}`` (codes 0-based) over the
    items both answered: the confusion counts behind Cohen's kappa."""
    i, j = pairs
    c = tab["codes"][key].astype(np.int64)
    ci, cj = c[i], c[j]
    ok = (ci > 0) & (cj > 0)
    m = max(1, len(tab["names"]))
    ann = tab["annotator"].astype(np.int64)
    cell = ((ann[i][ok] * m + ann[j][ok]) * n_cat + ci[ok] - 1) * n_cat + cj[ok] - 1
    cells, counts = np.unique(cell, return_counts=True)
    out: dict[tuple[int, int], list] = {}
    for cl, n in zip(cells.tolist(), counts.tolist()):
        pair, rest = divmod(cl, n_cat * n_cat)
        out.setdefault(divmod(pair, m), []).append((rest // n_cat, rest % n_cat, n))
    return out


def _figures(conn, task_ids: list[int], questions: list[dict], only_adjudicated: bool, k: int | None,
             tab: dict | None = None) -> list[dict]:
    mq = measured_questions(questions)
    if tab is None:
        tab = A.coded_table(conn, task_ids, mq, only_adjudicated=only_adjudicated)
    pairs = _pair_rows(tab)
    n_items = int(tab["item"].max()) + 1 if len(tab["item"]) else 0
    names = tab["names"]
    out = []
    for q in mq:
        cats = q["categories"]
        n_cat = len(cats)
        c = tab["codes"][q["key"]].astype(np.int64)
        has = c > 0
        vc = np.bincount(tab["item"][has] * n_cat + c[has] - 1, minlength=n_items * n_cat).reshape(n_items, n_cat) \
            if n_cat else np.zeros((0, 0), dtype=np.int64)
        vc = vc[vc.sum(axis=1) > 0]  # units: items with at least one value
        alpha, n_alpha = krippendorff_alpha(vc, q["level"])
        fk, n_fleiss = fleiss(vc, k)
        by_pair = _pair_counts(tab, pairs, q["key"], n_cat) if n_cat else {}
        rows = []
        for (a, b), cc in sorted(by_pair.items(), key=lambda kv: (names[kv[0][0]], names[kv[0][1]])):
            kappa, n, obs = cohen_from_pairs([(cats[x], cats[y], z) for x, y, z in cc], cats)
            rows.append({"a": names[a], "b": names[b], "cohen_kappa": kappa, "observed_agreement": obs, "items": n})
        out.append({"question": q["key"], "level": q["level"], "krippendorff_alpha": alpha, "alpha_items": n_alpha,
                    "fleiss_kappa": fk, "fleiss_items": n_fleiss, "pairs": rows})
    return out


def _annotator_rows(conn, task_ids: list[int], questions: list[dict], only_adjudicated: bool,
                    only: str | None, tab: dict | None = None) -> list[dict]:
    mq = measured_questions(questions)
    dq = next((q for q in mq if q["key"] == "decision"), None)
    if tab is None:
        tab = A.coded_table(conn, task_ids, mq, only_adjudicated=only_adjudicated)
    names = tab["names"]
    by_pair = _pair_counts(tab, _pair_rows(tab), "decision", len(dq["categories"])) if dq else {}
    adj = {r[0]: r[1:] for r in A.versus_reference(conn, task_ids, dq, "adjudicated", annotator=only)} if dq else {}
    gold = {r[0]: r[1:] for r in A.versus_reference(conn, task_ids, dq, "gold", annotator=only)} if dq else {}
    ann = tab["annotator"]
    n_by = np.bincount(ann, minlength=len(names)) if len(names) else np.zeros(0, dtype=np.int64)
    order = np.argsort(ann, kind="stable")
    bounds = np.searchsorted(ann[order], np.arange(len(names) + 1))
    rows = []
    for idx, name in enumerate(names):
        if not n_by[idx] or (only is not None and name != only):
            continue
        times = tab["time_ms"][order[bounds[idx]:bounds[idx + 1]]]
        times = times[~np.isnan(times)]
        median_ms = float(np.median(times)) if len(times) else None
        hours = float(times.sum()) / 3.6e6
        mine = []
        if dq:
            cats = dq["categories"]
            for (a, b), cc in by_pair.items():
                if a == idx:
                    mine += [(cats[x], cats[y], z) for x, y, z in cc]
                elif b == idx:
                    mine += [(cats[y], cats[x], z) for x, y, z in cc]
        kappa, n_pair, obs = cohen_from_pairs(mine, dq["categories"]) if dq else (None, 0, None)
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
        t = task_of(st, task)
        full = sees_all(role)
        only_adj = not full
        ids = [t["task_id"]]
        # one scan of the annotations feeds every figure (issue 3 item 9: < 3 s at 1M items)
        tab = A.coded_table(st.conn, ids, measured_questions(t["questions"]), only_adjudicated=only_adj)
        return {"task": t["name"], "dataset": t["dataset"], "version": t["version_number"],
                "scope": "all" if full else "adjudicated",
                "questions": _figures(st.conn, ids, t["questions"], only_adj, t["overlap_k"], tab),
                "annotators": _annotator_rows(st.conn, ids, t["questions"], only_adj, None if full else who, tab)}


def agreement_by_version(workspace: str | Path, user: str | None, dataset: str) -> list[dict]:
    """Decision and rating agreement per dataset version over all its tasks:
    ``[{"version", "tasks", "question", "krippendorff_alpha", "alpha_items", "fleiss_kappa",
    "fleiss_items"}]``. Same blindness rule as :func:`agreement_report`."""
    with read_store(workspace) as st:
        who, role = check(st, user, "read_own_annotations")
        ds = V.get_dataset(st, dataset)
        tasks = RT.list_tasks(st.conn, ds.dataset_id)
        out = []
        for vnum in sorted({t["version_number"] for t in tasks}):
            ts = [t for t in tasks if t["version_number"] == vnum]
            qs = [q for q in ts[0]["questions"] if q["kind"] in ("decision", "rating")]
            ks = {t["overlap_k"] for t in ts}
            for f in _figures(st.conn, [t["task_id"] for t in ts], qs, not sees_all(role),
                              ks.pop() if len(ks) == 1 else None):
                out.append({"version": vnum, "tasks": [t["name"] for t in ts], "question": f["question"],
                            "krippendorff_alpha": f["krippendorff_alpha"], "alpha_items": f["alpha_items"],
                            "fleiss_kappa": f["fleiss_kappa"], "fleiss_items": f["fleiss_items"]})
        return out
