"""SQL of annotations: idempotent submits, drafts, reads, stale marking, agreement inputs
and export.

Idempotency: every submit carries a client-supplied ``submit_id`` (the primary key of
``review_submits``); the annotation itself is unique on (task, sample, annotator, round).
A submit that finds its id already stored returns the stored acknowledgement and writes
nothing. Durability: :func:`submit` runs in the caller's transaction; the service layer
acknowledges only after DuckDB's COMMIT returned (the WAL is flushed then).
"""
from __future__ import annotations

import json

import pyarrow as pa

from . import audit
from .errors import Conflict, NotFound
from .review_tasks import valid_ident
from .schema import OPEN_END

ANN_COLS = ("annotation_id, task_id, sample_id, annotator, round, row_hash, decision, rating, answers, "
            "time_spent_ms, created_at, updated_at, stale, submit_id")
ANN_KEYS = [c.strip() for c in ANN_COLS.split(",")]


def _ann(row) -> dict:
    d = dict(zip(ANN_KEYS, row))
    d["answers"] = json.loads(d["answers"]) if d["answers"] else {}
    return d


# ---------------------------------------------------------------- submit
def find_submit(conn, submit_id: str) -> tuple | None:
    """``(annotation_id, annotator)`` stored for ``submit_id``, or None."""
    return conn.execute("SELECT annotation_id, annotator FROM review_submits WHERE submit_id = ?",
                        [submit_id]).fetchone()


def submit(conn, *, submit_id: str, task_id: int, sample_id: int, annotator: str, round_: int,
           row_hash: str | None, answers: dict, time_spent_ms: int | None, checked: bool = False) -> tuple[int, bool]:
    """Write one annotation (insert, or replace the annotator's own current one for this
    round) and its submit id, mark the assignment done, drop the draft. Call inside a
    transaction. Returns ``(annotation_id, written)``; ``written`` is False when the submit
    id was already stored (a retry or a double click), in which case nothing is written.

    Raises:
        Conflict: the submit id belongs to another user.

    ``checked=True``: the caller already looked the submit id up in this transaction.
    """
    prior = None if checked else find_submit(conn, submit_id)
    if prior:
        if prior[1] != annotator:
            raise Conflict(f"submit id {submit_id} was used by another user")
        return prior[0], False
    now = audit.now()
    body = json.dumps(answers, ensure_ascii=False, sort_keys=True)
    rating = answers.get("rating")
    existing = conn.execute(
        "SELECT annotation_id FROM annotations WHERE sample_id = ? AND task_id = ? AND annotator = ? AND round = ?",
        [sample_id, task_id, annotator, round_]).fetchone()
    if existing:
        ann_id = existing[0]
        conn.execute("UPDATE annotations SET decision = ?, rating = ?, answers = ?, time_spent_ms = "
                     "coalesce(time_spent_ms, 0) + coalesce(?, 0), updated_at = ?, submit_id = ?, row_hash = ? "
                     "WHERE annotation_id = ?",
                     [answers.get("decision"), rating, body, time_spent_ms, now, submit_id, row_hash, ann_id])
    else:
        ann_id = conn.execute("SELECT nextval('annotation_ids')").fetchone()[0]
        conn.execute(f"INSERT INTO annotations ({ANN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?)",
                     [ann_id, task_id, sample_id, annotator, round_, row_hash, answers.get("decision"), rating,
                      body, time_spent_ms, now, now, submit_id])
    conn.execute('INSERT INTO review_submits VALUES (?, ?, ?, ?)', [submit_id, ann_id, annotator, now])
    conn.execute("UPDATE review_assignments SET status = 'done' WHERE task_id = ? AND sample_id = ? AND annotator = ? "
                 "AND status = 'pending'", [task_id, sample_id, annotator])
    conn.execute("DELETE FROM review_drafts WHERE task_id = ? AND sample_id = ? AND annotator = ?",
                 [task_id, sample_id, annotator])
    return ann_id, True


def get(conn, annotation_id: int) -> dict:
    r = conn.execute(f"SELECT {ANN_COLS} FROM annotations WHERE annotation_id = ?", [annotation_id]).fetchone()
    if not r:
        raise NotFound(f"no annotation {annotation_id}")
    return _ann(r)


def own_current(conn, task_id: int, sample_id: int, annotator: str, round_: int | None = None) -> dict | None:
    """The annotator's own annotation of the item's current round (``round_`` when the
    caller already read it), or None."""
    if round_ is not None:
        r = conn.execute(f"SELECT {ANN_COLS} FROM annotations WHERE sample_id = ? AND task_id = ? AND annotator = ? "
                         "AND round = ?", [sample_id, task_id, annotator, round_]).fetchone()
        return _ann(r) if r else None
    r = conn.execute(
        f"SELECT {', '.join('a.' + k for k in ANN_KEYS)} FROM annotations a JOIN review_items i "
        "ON i.task_id = a.task_id AND i.sample_id = a.sample_id AND i.round = a.round "
        "WHERE a.task_id = ? AND a.sample_id = ? AND a.annotator = ?", [task_id, sample_id, annotator]).fetchone()
    return _ann(r) if r else None


def by_annotator(conn, task_id: int, annotator: str, *, include_stale: bool = False, limit: int = 1000) -> list[dict]:
    sql = f"SELECT {ANN_COLS} FROM annotations WHERE task_id = ? AND annotator = ?"
    if not include_stale:
        sql += " AND NOT stale"
    return [_ann(r) for r in conn.execute(sql + " ORDER BY annotation_id DESC LIMIT ?",
                                          [task_id, annotator, limit]).fetchall()]


def for_item(conn, task_id: int, sample_id: int, *, include_stale: bool = False) -> list[dict]:
    """Every annotation of an item (current round unless ``include_stale``), by annotator."""
    sql = f"SELECT {ANN_COLS} FROM annotations WHERE task_id = ? AND sample_id = ?"
    if not include_stale:
        sql += " AND NOT stale"
    return [_ann(r) for r in conn.execute(sql + " ORDER BY annotator", [task_id, sample_id]).fetchall()]


def count_for_task(conn, task_id: int) -> dict:
    keys = ["annotations", "stale", "submits"]
    r = conn.execute("SELECT count(*) FILTER (WHERE NOT stale), count(*) FILTER (WHERE stale), "
                     "(SELECT count(*) FROM review_submits s JOIN annotations b USING (annotation_id) "
                     " WHERE b.task_id = ?) FROM annotations WHERE task_id = ?", [task_id, task_id]).fetchone()
    return dict(zip(keys, r))


# ---------------------------------------------------------------- drafts
def save_draft(conn, task_id: int, sample_id: int, annotator: str, answers: dict, elapsed_ms: int | None) -> None:
    conn.execute("INSERT OR REPLACE INTO review_drafts VALUES (?, ?, ?, ?, ?, ?)",
                 [task_id, sample_id, annotator, json.dumps(answers, ensure_ascii=False), elapsed_ms, audit.now()])


def get_draft(conn, task_id: int, sample_id: int, annotator: str) -> dict | None:
    r = conn.execute("SELECT answers, elapsed_ms, updated_at FROM review_drafts WHERE task_id = ? AND sample_id = ? "
                     "AND annotator = ?", [task_id, sample_id, annotator]).fetchone()
    return {"answers": json.loads(r[0]) if r[0] else {}, "elapsed_ms": r[1], "updated_at": r[2]} if r else None


# ---------------------------------------------------------------- stale
def mark_stale(conn, dataset_id: int, version_number: int, updated: list[int], removed: list[int],
               skip: dict[int, set[int]] | None = None) -> dict:
    """After a commit of ``version_number``: for every review item of the dataset whose
    sample's *text* (system, instruction, input, output, history, messages) changed in this
    version, mark its current annotations stale, start a new round and put its assignments
    back to pending; items whose sample was removed are closed as removed. ``skip`` maps a
    task id to sample ids to leave alone (the adjudication that made the change).
    Returns ``{"stale_items", "stale_annotations", "removed_items"}``."""
    out = {"stale_items": 0, "stale_annotations": 0, "removed_items": 0}
    if not updated and not removed:
        return out
    tasks = [r[0] for r in conn.execute("SELECT task_id FROM review_tasks WHERE dataset_id = ?", [dataset_id]).fetchall()]
    if not tasks:
        return out
    changed: list[int] = []
    if updated:
        changed = [r[0] for r in conn.execute(
            """SELECT n.sample_id FROM samples n JOIN samples o
                 ON o.dataset_id = n.dataset_id AND o.sample_id = n.sample_id AND o.valid_to = n.valid_from
               WHERE n.dataset_id = ? AND n.valid_from = ? AND n.sample_id IN (SELECT unnest(?::BIGINT[]))
                 AND (o.system IS DISTINCT FROM n.system OR o.instruction IS DISTINCT FROM n.instruction
                      OR o.input IS DISTINCT FROM n.input OR o.output IS DISTINCT FROM n.output
                      OR o.history::VARCHAR IS DISTINCT FROM n.history::VARCHAR
                      OR o.messages::VARCHAR IS DISTINCT FROM n.messages::VARCHAR)""",
            [dataset_id, version_number, updated]).fetchall()]
    skip = skip or {}
    for task_id in tasks:
        ids = [s for s in changed if s not in skip.get(task_id, set())]
        if ids:
            n_ann = conn.execute(
                "SELECT count(*) FROM annotations a JOIN review_items i ON i.task_id = a.task_id AND "
                "i.sample_id = a.sample_id AND i.round = a.round WHERE a.task_id = ? AND NOT a.stale "
                "AND a.sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, ids]).fetchone()[0]
            n_items = conn.execute(
                "SELECT count(*) FROM review_items WHERE task_id = ? AND sample_id IN (SELECT unnest(?::BIGINT[]))",
                [task_id, ids]).fetchone()[0]
            conn.execute("UPDATE annotations SET stale = true WHERE task_id = ? AND NOT stale "
                         "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, ids])
            conn.execute("UPDATE review_items SET round = round + 1, state = 'open' WHERE task_id = ? "
                         "AND state <> 'removed' AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, ids])
            conn.execute("UPDATE review_assignments SET status = 'pending' WHERE task_id = ? AND status = 'done' "
                         "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, ids])
            out["stale_items"] += n_items
            out["stale_annotations"] += n_ann
        rm = [s for s in removed if s not in skip.get(task_id, set())]
        if rm:
            out["removed_items"] += conn.execute(
                "SELECT count(*) FROM review_items WHERE task_id = ? AND state <> 'removed' "
                "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, rm]).fetchone()[0]
            conn.execute("UPDATE review_items SET state = 'removed' WHERE task_id = ? "
                         "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, rm])
            conn.execute("UPDATE review_assignments SET status = 'removed' WHERE task_id = ? "
                         "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [task_id, rm])
    return out


# ---------------------------------------------------------------- agreement inputs
def _value_expr(question: dict) -> str:
    """SQL for one question's value in an annotation row ``a`` (as text; NULL when unanswered)."""
    name, kind = valid_ident(question["name"]), question["kind"]
    if name == "decision":
        return "a.decision"
    if name == "rating":
        return "a.rating::VARCHAR"
    # the substring guard skips parsing the JSON when the key is absent (the extraction would
    # give NULL, or 'no' for a flag): at 2M annotations it halves the agreement scan
    guard = f"contains(a.answers::VARCHAR, '\"{name}\"')"
    if kind == "multilabel":
        flag = question["flag"].replace("'", "''")
        return (f"CASE WHEN {guard} AND list_contains(coalesce(json_extract_string(a.answers, '$.{name}[*]'), []), "
                f"'{flag}') THEN 'yes' ELSE 'no' END")
    return f"CASE WHEN {guard} THEN json_extract_string(a.answers, '$.{name}') END"


def _scope(task_ids: list[int], only_adjudicated: bool) -> tuple[str, list]:
    cond = ("a.task_id IN (SELECT unnest(?::INTEGER[])) AND NOT a.stale AND i.state <> 'removed'"
            + (" AND i.state = 'adjudicated'" if only_adjudicated else ""))
    return (f"FROM annotations a JOIN review_items i ON i.task_id = a.task_id AND i.sample_id = a.sample_id "
            f"AND i.round = a.round WHERE {cond}", [task_ids])


def value_counts(conn, task_ids: list[int], question: dict, categories: list[str], *,
                 only_adjudicated: bool = False) -> "np.ndarray":  # noqa: F821
    """Units x categories matrix of counts (units: items with at least one value), as
    ``numpy`` int64: the input of Krippendorff's alpha and Fleiss' kappa."""
    import numpy as np
    expr = _value_expr(question)
    frm, params = _scope(task_ids, only_adjudicated)
    cols = ", ".join(f"count(*) FILTER (WHERE v = ?)" for _ in categories)
    res = conn.execute(
        f"SELECT {cols} FROM (SELECT a.task_id, a.sample_id, {expr} AS v {frm}) WHERE v IS NOT NULL "
        f"GROUP BY task_id, sample_id", [*categories, *params]).fetchnumpy()
    if not categories:
        return np.zeros((0, 0), dtype=np.int64)
    return np.column_stack([np.asarray(res[k], dtype=np.int64) for k in res]) if res else np.zeros((0, len(categories)))


def coded_table(conn, task_ids: list[int], questions: list[dict], *, only_adjudicated: bool = False) -> dict:
    """Every current annotation in scope, in ONE scan, as numpy arrays (the input of the
    agreement report; issue 3 item 9 asks for it in under 3 s at 2M annotations).

    ``questions`` are measured questions (``key``, ``categories``, as made by
    ``pipelines.review.agreement.measured_questions``). Returns ``{"item": int64 (n,),
    dense 0-based item index (task, sample), "annotator": int32 (n,) index into "names"
    (sorted), "names": list[str], "time_ms": float64 (n,) time spent (NaN when not recorded),
    "codes": {key: int8 (n,) 1-based position of the value in the question's categories,
    0 when unanswered or not a category}}``. Values are coded in SQL, so no text crosses
    into Python."""
    import numpy as np
    # Same scope as ``_scope`` without joining all items: an annotation that is not stale is
    # of its item's current round (``mark_stale`` marks every annotation of an item stale
    # before it starts a new round), so only the few removed (or, for annotators, the
    # adjudicated) items are looked up: an anti/semi join with a small build side (at 2M
    # annotations 1.5-2 s instead of 9-10 s for the full join, under load).
    frm = ("FROM annotations a WHERE a.task_id IN (SELECT unnest(?::INTEGER[])) AND NOT a.stale "
           "AND NOT EXISTS (SELECT 1 FROM review_items r WHERE r.task_id = a.task_id AND r.sample_id = a.sample_id "
           "AND r.state = 'removed')")
    params: list = [task_ids]
    if only_adjudicated:
        frm += (" AND EXISTS (SELECT 1 FROM review_items r2 WHERE r2.task_id = a.task_id AND r2.sample_id = a.sample_id "
                "AND r2.state = 'adjudicated')")
    names = [r[0] for r in conn.execute(
        "SELECT DISTINCT annotator FROM annotations WHERE task_id IN (SELECT unnest(?::INTEGER[])) ORDER BY 1",
        [task_ids]).fetchall()]
    cats: list = []
    cols = []
    for i, q in enumerate(questions):
        cols.append(f"coalesce(list_position(?::VARCHAR[], ({_value_expr(q)})), 0)::TINYINT AS c{i}")
        cats.append([str(c) for c in q["categories"]])
    select = ", ".join(["(a.task_id::BIGINT << 40) | a.sample_id AS key",
                        "(coalesce(list_position(?::VARCHAR[], a.annotator), 0) - 1)::INTEGER AS ai",
                        "a.time_spent_ms::DOUBLE AS t", *cols])
    conn.execute("SELECT 1").fetchall()  # finish any result left open by a fetchone (DuckDB 2.0)
    res = conn.execute(f"SELECT {select} {frm}", [names, *cats, *params]).fetchnumpy()
    ai = np.asarray(res["ai"], dtype=np.int32)
    keep = ai >= 0  # an annotator who appeared after the names were read is left out
    key = np.asarray(res["key"], dtype=np.int64)[keep]
    _, item = np.unique(key, return_inverse=True)
    t = np.ma.filled(np.ma.asarray(res["t"], dtype=np.float64), np.nan)[keep]
    codes = {q["key"]: np.ma.filled(np.ma.asarray(res[f"c{i}"]), 0).astype(np.int8)[keep]
             for i, q in enumerate(questions)}
    return {"item": item.astype(np.int64).reshape(-1), "annotator": ai[keep], "names": names, "time_ms": t,
            "codes": codes}


def pair_table(conn, task_ids: list[int], question: dict, *, only_adjudicated: bool = False) -> list[tuple]:
    """``(annotator_a, annotator_b, value_a, value_b, count)`` over items both annotated
    (a < b by name): the confusion counts behind Cohen's kappa for each pair."""
    expr = _value_expr(question)
    frm, params = _scope(task_ids, only_adjudicated)
    return conn.execute(
        f"""WITH v AS (SELECT a.task_id, a.sample_id, a.annotator, {expr} AS v {frm})
            SELECT x.annotator, y.annotator, x.v, y.v, count(*) FROM v x JOIN v y
              ON x.task_id = y.task_id AND x.sample_id = y.sample_id AND x.annotator < y.annotator
            WHERE x.v IS NOT NULL AND y.v IS NOT NULL GROUP BY ALL ORDER BY ALL""", params).fetchall()


def annotator_stats(conn, task_ids: list[int], *, only_adjudicated: bool = False,
                    annotator: str | None = None) -> list[dict]:
    """Per annotator: annotations, first and last submit, median and total time spent (ms)."""
    frm, params = _scope(task_ids, only_adjudicated)
    if annotator:
        frm += " AND a.annotator = ?"
        params = [*params, annotator]
    keys = ["annotator", "annotations", "first_at", "last_at", "median_time_ms", "total_time_ms"]
    return [dict(zip(keys, r)) for r in conn.execute(
        f"SELECT a.annotator, count(*), min(a.created_at), max(a.updated_at), median(a.time_spent_ms), "
        f"sum(a.time_spent_ms) {frm} GROUP BY 1 ORDER BY 1", params).fetchall()]


def versus_reference(conn, task_ids: list[int], question: dict, reference: str, *,
                     annotator: str | None = None) -> list[tuple]:
    """``(annotator, matches, items)`` of each annotator's value against the adjudicated
    result (``reference='adjudicated'``) or the gold answer (``reference='gold'``).
    For adjudication, stale annotations of the adjudicated round still count."""
    name = valid_ident(question["name"])
    expr = _value_expr(question)
    ref_src = {"adjudicated": ("review_adjudications", "final"), "gold": ("review_gold", "expected")}[reference]
    if question.get("kind") == "multilabel":
        flag = question["flag"].replace("'", "''")
        ref_expr = (f"CASE WHEN list_contains(coalesce(json_extract_string(r.{ref_src[1]}, '$.{name}[*]'), []), "
                    f"'{flag}') THEN 'yes' ELSE 'no' END")
    else:
        ref_expr = f"json_extract_string(r.{ref_src[1]}, '$.{name}')"
    extra = " AND r.round = a.round" if reference == "adjudicated" else " AND NOT a.stale"
    params: list = [task_ids]
    who = ""
    if annotator:
        who = " AND a.annotator = ?"
        params.append(annotator)
    return conn.execute(
        f"""SELECT a.annotator, count(*) FILTER (WHERE ({expr}) = ({ref_expr})), count(*)
            FROM annotations a JOIN {ref_src[0]} r ON r.task_id = a.task_id AND r.sample_id = a.sample_id {extra}
            WHERE a.task_id IN (SELECT unnest(?::INTEGER[])){who} AND ({ref_expr}) IS NOT NULL AND ({expr}) IS NOT NULL
            GROUP BY 1 ORDER BY 1""", params).fetchall()


# ---------------------------------------------------------------- export
def export_table(conn, task_id: int, dataset_id: int, *, after_id: int = 0, limit: int | None = None) -> pa.Table:
    """One row per item of the task with the sample's current text and every current
    annotation as a list of structs (annotator, decision, rating, answers JSON, time ms,
    stale), plus the adjudication if any. Arrow, ordered by sample id."""
    lim = f" LIMIT {int(limit)}" if limit else ""
    conn.execute("SELECT 1").fetchall()  # finish any result left open by a fetchone (DuckDB 2.0)
    return conn.sql(
        f"""WITH it AS (SELECT sample_id, round, state, is_gold FROM review_items
                        WHERE task_id = ? AND sample_id > ? ORDER BY sample_id{lim}),
                 ann AS (SELECT a.sample_id, list({{'annotation_id': a.annotation_id, 'annotator': a.annotator,
                                'decision': a.decision, 'rating': a.rating, 'answers': a.answers::VARCHAR,
                                'time_spent_ms': a.time_spent_ms, 'stale': a.stale, 'round': a.round}}
                                ORDER BY a.annotator, a.round) AS annotations
                         FROM annotations a SEMI JOIN it USING (sample_id) WHERE a.task_id = ? GROUP BY 1),
                 adj AS (SELECT sample_id, arg_max({{'adjudicator': adjudicator, 'decision': decision,
                                'final': final::VARCHAR, 'note': note, 'version': version_number}}, adjudication_id)
                                AS adjudication
                         FROM review_adjudications WHERE task_id = ? GROUP BY 1)
            SELECT it.sample_id, it.state, it.round, it.is_gold, s.kind, s.system, s.instruction, s.input,
                   s.output, s.messages::VARCHAR AS messages, s.row_hash, ann.annotations, adj.adjudication
            FROM it LEFT JOIN samples s ON s.dataset_id = ? AND s.sample_id = it.sample_id AND s.valid_to = ?
            LEFT JOIN ann ON ann.sample_id = it.sample_id LEFT JOIN adj ON adj.sample_id = it.sample_id
            ORDER BY it.sample_id""",
        params=[task_id, after_id, task_id, task_id, dataset_id, OPEN_END]).to_arrow_table()
