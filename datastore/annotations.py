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
            "time_spent_ms, created_at, updated_at, stale, submit_id, codes")
ANN_KEYS = [c.strip() for c in ANN_COLS.split(",")]


def _ann(row) -> dict:
    d = dict(zip(ANN_KEYS, row))
    d["answers"] = json.loads(d["answers"]) if d["answers"] else {}
    d.pop("codes", None)  # an agreement input, not part of the annotation
    return d


# ---------------------------------------------------------------- submit
def find_submit(conn, submit_id: str) -> tuple | None:
    """``(annotation_id, annotator)`` stored for ``submit_id``, or None."""
    return conn.execute("SELECT annotation_id, annotator FROM review_submits WHERE submit_id = ?",
                        [submit_id]).fetchone()


def submit(conn, *, submit_id: str, task_id: int, sample_id: int, annotator: str, round_: int,
           row_hash: str | None, answers: dict, time_spent_ms: int | None, checked: bool = False,
           codes: list[int] | None = None) -> tuple[int, bool]:
    """Write one annotation (insert, or replace the annotator's own current one for this
    round) and its submit id, mark the assignment done, drop the draft. Call inside a
    transaction. Returns ``(annotation_id, written)``; ``written`` is False when the submit
    id was already stored (a retry or a double click), in which case nothing is written.

    Raises:
        Conflict: the submit id belongs to another user.

    ``checked=True``: the caller already looked the submit id up in this transaction.
    ``codes``: the answers coded for agreement, one small integer per measured question of
    the task (``pipelines.review.agreement.code_answers``); see :func:`coded_table`.
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
                     "coalesce(time_spent_ms, 0) + coalesce(?, 0), updated_at = ?, submit_id = ?, row_hash = ?, codes = ? "
                     "WHERE annotation_id = ?",
                     [answers.get("decision"), rating, body, time_spent_ms, now, submit_id, row_hash, codes, ann_id])
    else:
        ann_id = conn.execute("SELECT nextval('annotation_ids')").fetchone()[0]
        conn.execute(f"INSERT INTO annotations ({ANN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?, ?)",
                     [ann_id, task_id, sample_id, annotator, round_, row_hash, answers.get("decision"), rating,
                      body, time_spent_ms, now, now, submit_id, codes])
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






def dense_index(key) -> tuple["np.ndarray", int]:  # noqa: F821
    """``(index, n)``: each integer key's 0-based rank among the distinct keys (int64 array of
    the keys' shape) and the number of distinct keys. A bitmap over the key range when it
    is at most a few times the number of keys (no sort: O(n)), ``numpy.unique`` otherwise."""
    import numpy as np
    key = np.asarray(key, dtype=np.int64)
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64), 0
    lo, hi = int(key.min()), int(key.max())
    if hi - lo <= 4 * len(key) + 1_000_000:
        seen = np.zeros(hi - lo + 1, dtype=bool)
        seen[key - lo] = True
        rank = np.cumsum(seen, dtype=np.int64) - 1
        return rank[key - lo], int(rank[-1]) + 1
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), len(uniq)


def _code_expr(question: dict) -> str:
    """SQL coding one question's value of an annotation row ``a`` as its 1-based position
    in the question's categories (0: unanswered or not a category); categories inlined."""
    cats = ", ".join("'" + str(c).replace("'", "''") + "'" for c in question["categories"])
    return f"coalesce(list_position([{cats}]::VARCHAR[], ({_value_expr(question)})), 0)"


def coded_table(conn, task_ids: list[int], questions: list[dict], *, only_adjudicated: bool = False,
                stored: dict[int, list[dict]] | None = None) -> dict:
    """Every current annotation in scope, in ONE scan, as numpy arrays (the input of the
    agreement report; the Agreement page needs it in under 3 s at 2M annotations).

    ``questions`` are measured questions (``key``, ``categories``, as made by
    ``pipelines.review.agreement.measured_questions``). ``stored``: ``{task_id: the measured
    questions whose codes each of its annotations stores in ``codes``, in order}``; a question
    is read from ``codes`` when its key and categories match there, and coded from the
    answers JSON in SQL otherwise (rows written before the codes column, or questions that
    differ between tasks). Reading the stored codes is what makes the scan fast: extracting
    one JSON field from 2M rows costs about 0.5 s per question.

    Returns ``{"item": int64 (n,) dense 0-based item index (task, sample), "annotator":
    int32 (n,) index into "names" (sorted), "names": list[str], "time_ms": float64 (n,) time
    spent (NaN when not recorded), "codes": {key: int8 (n,) 1-based position of the value in
    the question's categories, 0 when unanswered or not a category}}``."""
    import numpy as np
    # An annotation that is not stale is of its item's current round (``mark_stale`` marks
    # every annotation of an item stale before it starts a new round), so only the removed
    # (or, for annotators, the adjudicated) items are looked up. The removed ones are few:
    # they are read first and left out by key, with no join at all when there are none
    # (an anti-join against every item costs about 0.5 s at 1M items).
    removed = [r[0] for r in conn.execute(
        "SELECT (task_id::BIGINT << 40) | sample_id FROM review_items "
        "WHERE task_id IN (SELECT unnest(?::INTEGER[])) AND state = 'removed'", [task_ids]).fetchall()]
    frm = "FROM annotations a WHERE a.task_id IN (SELECT unnest(?::INTEGER[])) AND NOT a.stale"
    params: list = [task_ids]
    if removed:
        frm += " AND ((a.task_id::BIGINT << 40) | a.sample_id) NOT IN (SELECT unnest(?::BIGINT[]))"
        params.append(removed)
    if only_adjudicated:
        frm += (" AND EXISTS (SELECT 1 FROM review_items r2 WHERE r2.task_id = a.task_id AND r2.sample_id = a.sample_id "
                "AND r2.state = 'adjudicated')")
    names = [r[0] for r in conn.execute(
        "SELECT DISTINCT annotator FROM annotations WHERE task_id IN (SELECT unnest(?::INTEGER[])) ORDER BY 1",
        [task_ids]).fetchall()]
    # the stored codes are read as one Arrow list column (a flat uint8 buffer, no per-row
    # work) when every task in scope stores the same questions; a question not stored
    # there, and any row without codes, is coded from the answers JSON in SQL
    layouts = {tuple((s["key"], tuple(str(c) for c in s["categories"])) for s in (stored or {}).get(tid, []))
               for tid in task_ids}
    layout = list(layouts.pop()) if len(layouts) == 1 else []
    width = len(layout)
    uncoded = width and conn.execute(
        f"SELECT count(*) FROM annotations WHERE task_id IN (SELECT unnest(?::INTEGER[])) "
        f"AND (codes IS NULL OR len(codes) <> {width})", [task_ids]).fetchone()[0]
    cols, pos = [], {}
    for i, q in enumerate(questions):
        want = (q["key"], tuple(str(c) for c in q["categories"]))
        if want in layout:
            pos[i] = layout.index(want)
            if uncoded:
                cols.append(f"(CASE WHEN a.codes IS NULL OR len(a.codes) <> {width} THEN {_code_expr(q)} END)"
                            f"::TINYINT AS c{i}")
        else:
            cols.append(f"({_code_expr(q)})::TINYINT AS c{i}")
    if pos:
        cols.append("a.codes AS codes")
    select = ", ".join(["(a.task_id::BIGINT << 40) | a.sample_id AS key",
                        "(coalesce(list_position(?::VARCHAR[], a.annotator), 0) - 1)::INTEGER AS ai",
                        "a.time_spent_ms::DOUBLE AS t", *cols])
    conn.execute("SELECT 1").fetchall()  # finish any result left open by a fetchone (DuckDB 2.0)
    res = conn.sql(f"SELECT {select} {frm}", params=[names, *params]).to_arrow_table()

    def col(name, dtype, fill):
        return res.column(name).to_numpy(zero_copy_only=False).astype(dtype) if res.column(name).null_count == 0 \
            else np.asarray(res.column(name).fill_null(fill).to_numpy(zero_copy_only=False), dtype=dtype)

    ai = col("ai", np.int32, -1)
    keep = ai >= 0  # an annotator who appeared after the names were read is left out
    key = col("key", np.int64, 0)[keep]
    item, _ = dense_index(key)
    t = col("t", np.float64, np.nan)[keep]
    stored_mat = None
    if pos:  # the list column as its offsets and flat values (numpy views, no per-row work)
        lists = res.column("codes").combine_chunks()
        offsets = lists.offsets.to_numpy()
        values = lists.values.to_numpy(zero_copy_only=False).astype(np.int8)
        ok = np.diff(offsets) == width
        if lists.null_count:
            ok &= lists.is_valid().to_numpy(zero_copy_only=False)
        if ok.all():  # every row coded: the flat values are the matrix
            stored_mat = values[offsets[0]:offsets[0] + len(lists) * width].reshape(len(lists), width)
        else:
            stored_mat = np.zeros((len(lists), width), dtype=np.int8)
            stored_mat[ok] = values[(offsets[:-1][ok] - offsets[0])[:, None] + np.arange(width)]
    codes = {}
    for i, q in enumerate(questions):
        if i in pos:  # rows with stored codes have NULL in c{i} (0 after the fill): add the stored code
            c = stored_mat[:, pos[i]] + col(f"c{i}", np.int8, 0) if uncoded else stored_mat[:, pos[i]]
        else:
            c = col(f"c{i}", np.int8, 0)
        codes[q["key"]] = c[keep]
    return {"item": item, "annotator": ai[keep], "names": names, "time_ms": t, "codes": codes}


def fill_codes(conn, task_id: int, questions: list[dict]) -> int:
    """Store the codes of every annotation of ``task_id`` that has none, coded in SQL from
    its answers (``questions``: the task's measured questions, in order). For bulk-loaded
    fixtures and workspaces made before the codes column. Returns the rows updated."""
    if not questions:
        return 0
    lst = ", ".join(f"({_code_expr(q)})::UTINYINT" for q in questions)
    return conn.execute(f"UPDATE annotations a SET codes = [{lst}] WHERE a.task_id = ? AND a.codes IS NULL",
                        [task_id]).fetchone()[0]


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


def accepted_ratings(conn, dataset_id: int) -> dict[int, dict]:
    """The review ratings of each sample of a dataset: ``{sample_id: {"mean", "n", "tasks"}}``
    over the current-round (not stale) annotations of every review task on the dataset whose
    decision is ``accept`` and that hold a rating (1..5 on the default form)."""
    rows = conn.execute(
        """SELECT a.sample_id, avg(a.rating), count(*), list(DISTINCT t.name ORDER BY t.name)
           FROM annotations a JOIN review_tasks t USING (task_id)
           WHERE t.dataset_id = ? AND NOT a.stale AND a.decision = 'accept' AND a.rating IS NOT NULL
           GROUP BY a.sample_id""", [dataset_id]).fetchall()
    return {int(r[0]): {"mean": float(r[1]), "n": int(r[2]), "tasks": list(r[3])} for r in rows}
