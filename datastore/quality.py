"""All SQL of the quality area: per-version metric queries, validation suites, gate
results, overrides, evaluation sets, contamination and the metric cache.

The rules (what counts as a citation, a refusal, a word) live in ``pipelines/quality``;
the functions here take them as parameters (regular expressions as bind parameters, so
DuckDB compiles each once per query) and return plain Python values.

Every per-version query starts from :func:`_base_cte`, one row per sample of the version
with its *prompt* (the instruction, or the first user turn of a conversation) and its
*response* (the output, or the last assistant turn). A version is the revision rows with
``valid_from <= v < valid_to`` (see ``schema.py``). Expected behaviour and policy domain are
read through ``vocabulary.py`` (old spellings mapped to the canonical ones).
"""
from __future__ import annotations

import hashlib
import json

from . import audit, vocabulary
from .lazy import lazy
from .store import register

pa = lazy("pyarrow")  # quality metrics need it; `wb datasets` (which installs the hooks) must not load it

# --------------------------------------------------------------- per-sample base
# (dataset_id, number, number) are the first three parameters of every query below.
_MSG_TYPE = '[{"role": "VARCHAR", "content": "VARCHAR"}]'


def _base_cte() -> str:
    """``s``: one row per sample of the version with prompt, response, turns and labels."""
    return f"""
    raw AS (
        SELECT sample_id, kind, row_hash, task_type, {vocabulary.sql_policy_domain()} AS policy_domain,
               source, language, instruction, input, output, history, system,
               CASE WHEN kind = 'conversation' THEN from_json(messages, '{_MSG_TYPE}') END AS msgs,
               {vocabulary.sql_expected_behavior()} AS expected_behavior
        FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?),
    s AS (
        SELECT sample_id, kind, row_hash, task_type, policy_domain, source, language, expected_behavior,
               CASE WHEN kind = 'conversation'
                    THEN list_filter(msgs, lambda x: x.role = 'user')[1].content
                    ELSE instruction END AS prompt,
               CASE WHEN kind = 'conversation'
                    THEN list_filter(msgs, lambda x: x.role = 'assistant')[-1].content
                    ELSE output END AS response,
               CASE WHEN kind = 'conversation'
                    THEN len(list_filter(msgs, lambda x: x.role <> 'system'))
                    ELSE 2 * coalesce(json_array_length(history), 0) + 1 + (output IS NOT NULL)::INT END AS turns
        FROM raw)"""


_WORDS_SQL = "CASE WHEN response IS NULL THEN NULL ELSE len(regexp_extract_all(response, '\\S+')) END"
_FRAME_CTE = """
    s AS (SELECT * FROM _frame WHERE ?::INTEGER IS NOT NULL AND ?::INTEGER IS NOT NULL AND ?::INTEGER IS NOT NULL)"""


def version_frame(store, version) -> pa.Table:
    """The version's per-sample base rows (``s`` of :func:`_base_cte`: sample id, kind, row
    hash, slice columns, expected behaviour, prompt, response, turns) plus ``words`` (see
    :func:`word_counts`) as an Arrow table, so the metric queries can run on it with the
    workspace store closed."""
    store.conn.execute("SELECT 1").fetchall()  # finish any open result (DuckDB 2.0 refuses .sql otherwise)
    t = store.conn.sql("WITH " + _base_cte() + " SELECT * FROM s",
                       params=[version.dataset_id, version.number, version.number]).to_arrow_table()
    return t.append_column("words", word_counts(t.column("response")))


def word_counts(texts) -> pa.ChunkedArray:
    r"""Words per text: runs of characters other than ASCII whitespace (tab, newline, form
    feed, carriage return, space: RE2's ``\s``), i.e. exactly DuckDB's
    ``len(regexp_extract_all(t, '\S+'))`` (a test holds them equal); null stays null.

    Counted with numpy over the Arrow UTF-8 buffer (the byte positions where a word starts,
    then a binary search of each string's byte range), because DuckDB's per-row regex extraction took 24-37 s for
    the benchmark's 1M responses on this 2-core machine.
    """
    import numpy as np
    chunks = []
    for ch in (texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]):
        n = len(ch)
        if n == 0:
            chunks.append(pa.array([], pa.int64()))
            continue
        if not (pa.types.is_string(ch.type) or pa.types.is_large_string(ch.type)):
            ch = ch.cast(pa.string())
        bufs = ch.buffers()
        otype = np.int64 if pa.types.is_large_string(ch.type) else np.int32
        offs = np.frombuffer(bufs[1], dtype=otype)[ch.offset: ch.offset + n + 1].astype(np.int64)
        lo, hi = int(offs[0]), int(offs[-1])
        data = (np.frombuffer(bufs[2], dtype=np.uint8)[lo:hi] if bufs[2] is not None and hi > lo
                else np.zeros(0, np.uint8))
        space = (data - np.uint8(9)) < 5          # 9..13 (uint8 wraps below 9) ...
        space &= data != 11                        # ... but not vertical tab
        space |= data == 32
        start = ~space
        if len(data):
            start[1:] &= space[:-1]
            first = offs[:-1] - lo
            first = first[first < len(data)]
            start[first] = ~space[first]  # each string's first byte may start a word
        pos = np.flatnonzero(start)          # byte positions where a word starts
        counts = np.searchsorted(pos, offs[1:] - lo) - np.searchsorted(pos, offs[:-1] - lo)
        chunks.append(pa.array(counts, pa.int64(), mask=np.asarray(ch.is_null().to_numpy(zero_copy_only=False))))
    return pa.chunked_array(chunks, pa.int64())


def _metric_cte(frame: bool = False) -> str:
    """``m``: ``s`` plus per-sample metrics. Parameters after the version's three: the
    normalize-apostrophe flag, then ``?2`` citation regex, ``?3`` refusal regex, ``?4``
    partial-refusal regex. With ``frame``, ``s`` is the registered Arrow table ``_frame``."""
    words = "words" if frame else _WORDS_SQL  # the frame brings its word counts (version_frame)
    return (_FRAME_CTE if frame else _base_cte()) + """,
    n AS (
        SELECT *, CASE WHEN ? THEN replace(response, '’', '''') ELSE response END AS rnorm FROM s),
    m AS (
        SELECT sample_id, kind, row_hash, task_type, policy_domain, source, language, expected_behavior,
               prompt, response, turns,
               """ + words + """ AS words,
               coalesce(regexp_matches(response, ?2), false) AS cited,
               CASE WHEN response IS NULL THEN NULL
                    WHEN regexp_matches(lower(rnorm), ?3) THEN
                        CASE WHEN regexp_matches(lower(rnorm), ?4) THEN 'partial_refusal' ELSE 'full_refusal' END
                    ELSE 'compliance' END AS refusal_class,
               hash(coalesce(prompt, ''), coalesce(response, '')) AS text_key
        FROM n)"""


def _params(version, citation_re: str, normalize: bool, refusal_re: str, partial_re: str) -> list:
    return [version.dataset_id, version.number, version.number, normalize, citation_re, refusal_re, partial_re]


def _metric_sql(tail: str, frame: bool = False) -> str:
    return "WITH " + _metric_cte(frame) + "\n" + tail


def _numbered(sql: str) -> str:
    """Rewrite our placeholders to DuckDB's ``$n``: the three version ``?`` become $1..$3,
    the normalize flag $4, ``?2`` (citation) $5, ``?3`` (refusal) $6, ``?4`` (partial) $7."""
    sql = sql.replace("?2", "$5").replace("?3", "$6").replace("?4", "$7")
    out, k = [], 0
    for part in sql.split("?"):
        out.append(part)
        k += 1
        out.append(f"${k}")
    return "".join(out[:-1])


SLICE_COLUMNS = ("task_type", "policy_domain", "source", "language")


def version_aggregates(store, version, *, citation_re: str, normalize: bool, refusal_re: str,
                       partial_re: str, word_edges: list[int], frame: pa.Table | None = None) -> list[dict]:
    """One scan of the version, aggregated over grouping sets: the whole version, each
    slice column (task type, policy domain, source, language), the response-word bins,
    the turn counts and the (expected behaviour x refusal class) matrix.

    Returns rows ``{"set", "value", "value2", "samples", "with_response", "words_mean",
    "words_median", "words_p10", "words_p90", "turns_mean", "turns_median", "cited",
    "full_refusal", "partial_refusal", "distinct_texts", "should_refuse_n", "should_refuse_ok",
    "should_answer_n", "should_answer_ok"}``; ``set`` is ``all``, a slice
    column name, ``words_bin`` (value = bin index, see ``word_edges``), ``turns`` or
    ``expected`` (value = expected behaviour or None, value2 = refusal class).

    With ``frame`` (from :func:`version_frame`) the scan runs on that Arrow table in an
    in-memory DuckDB, so the caller can close the workspace store first (``store`` unused).
    """
    edges = list(word_edges)
    # one pass computes the per-sample metrics into a narrow table (no texts); the grouping
    # sets then aggregate that table (quantiles and distinct counts over 8 sets are cheap there)
    narrow = f"""
    SELECT sample_id, task_type, policy_domain, source, language, expected_behavior, turns, words, cited,
           refusal_class, text_key, response IS NOT NULL AS has_response,
           CASE WHEN words IS NULL THEN NULL
                ELSE list_count(list_filter({edges}::INTEGER[], lambda e: e <= words)) - 1 END AS words_bin FROM m"""
    tail = """
    SELECT GROUPING(task_type) AS g1, GROUPING(policy_domain) AS g2, GROUPING(source) AS g3,
           GROUPING(language) AS g4, GROUPING(words_bin) AS g5, GROUPING(turns) AS g6,
           GROUPING(expected_behavior) AS g7, GROUPING(refusal_class) AS g8,
           task_type, policy_domain, source, language, words_bin, turns, expected_behavior, refusal_class,
           count(*) AS samples, count(*) FILTER (WHERE has_response) AS with_response,
           avg(words) AS words_mean, median(words) AS words_median,
           quantile_cont(words, 0.1) AS words_p10, quantile_cont(words, 0.9) AS words_p90,
           avg(turns) AS turns_mean, median(turns) AS turns_median,
           count(*) FILTER (WHERE cited) AS cited,
           count(*) FILTER (WHERE refusal_class = 'full_refusal') AS full_refusal,
           count(*) FILTER (WHERE refusal_class = 'partial_refusal') AS partial_refusal,
           count(DISTINCT text_key) AS distinct_texts,
           -- refusal-accuracy rules, as pipelines.quality.refusal.correct_for (a test holds them equal)
           count(*) FILTER (WHERE expected_behavior = 'refuse' AND refusal_class IS NOT NULL) AS should_refuse_n,
           count(*) FILTER (WHERE expected_behavior = 'refuse'
                            AND refusal_class IN ('full_refusal', 'partial_refusal')) AS should_refuse_ok,
           count(*) FILTER (WHERE expected_behavior IN ('comply', 'safe-complete')
                            AND refusal_class IS NOT NULL) AS should_answer_n,
           count(*) FILTER (WHERE (expected_behavior = 'comply' AND refusal_class = 'compliance')
                            OR (expected_behavior = 'safe-complete'
                                AND refusal_class IN ('compliance', 'partial_refusal'))) AS should_answer_ok
    FROM _narrow
    GROUP BY GROUPING SETS ((), (task_type), (policy_domain), (source), (language), (words_bin), (turns),
                            (expected_behavior, refusal_class))"""
    sql = _numbered(_metric_sql(narrow, frame is not None))
    if frame is not None:  # on the version's frame in a private in-memory database
        import duckdb
        conn = duckdb.connect()
        conn.execute("SET enable_progress_bar = false")
        conn.execute("SET preserve_insertion_order = false")
        conn.register("_frame", frame)
    else:
        conn = store.conn
    conn.execute("CREATE OR REPLACE TEMP TABLE _narrow AS " + sql,
                 _params(version, citation_re, normalize, refusal_re, partial_re))
    try:
        cur = conn.execute(tail)
        rows_ = cur.fetchall()
        cols = [d[0] for d in cur.description]
    finally:
        conn.execute("DROP TABLE IF EXISTS _narrow")
    out = []
    for r in rows_:
        d = dict(zip(cols, r))
        g = [d.pop(f"g{i}") for i in range(1, 9)]
        if all(g):
            d.update(set="all", value=None, value2=None)
        elif not g[0]:
            d.update(set="task_type", value=d["task_type"], value2=None)
        elif not g[1]:
            d.update(set="policy_domain", value=d["policy_domain"], value2=None)
        elif not g[2]:
            d.update(set="source", value=d["source"], value2=None)
        elif not g[3]:
            d.update(set="language", value=d["language"], value2=None)
        elif not g[4]:
            d.update(set="words_bin", value=d["words_bin"], value2=None)
        elif not g[5]:
            d.update(set="turns", value=d["turns"], value2=None)
        else:
            d.update(set="expected", value=d["expected_behavior"], value2=d["refusal_class"])
        for c in (*SLICE_COLUMNS, "words_bin", "turns", "expected_behavior", "refusal_class"):
            d.pop(c, None)
        out.append(d)
    return out


#: facet name -> SQL predicate on ``m``/``b`` with one parameter (the value), or None-aware.
_FACETS = {
    "task_type": "task_type IS NOT DISTINCT FROM $8",
    "policy_domain": "policy_domain IS NOT DISTINCT FROM $8",
    "source": "source IS NOT DISTINCT FROM $8",
    "language": "language IS NOT DISTINCT FROM $8",
    "turns": "turns = $8::INTEGER",
    "words_bin": "words_bin = $8::INTEGER",
    "cited": "cited = $8::BOOLEAN",
    "refusal_class": "refusal_class IS NOT DISTINCT FROM $8",
    "expected_behavior": "expected_behavior IS NOT DISTINCT FROM $8",
    "duplicate": "text_key IN (SELECT text_key FROM b GROUP BY text_key HAVING count(*) > 1) AND $8::BOOLEAN",
}
FACETS = tuple(_FACETS)


def facet_sample_ids(store, version, facet: str, value, *, citation_re: str, normalize: bool,
                     refusal_re: str, partial_re: str, word_edges: list[int], refusal_class=None,
                     limit: int = 50, window: int = 5_000) -> list[int]:
    """Sample ids (ascending, at most ``limit``) of the version whose ``facet`` equals
    ``value``: the samples behind one bar of the dashboard. ``refusal_class`` narrows
    further (for the expected-behaviour matrix).

    Reads by key in windows of sample ids (``sample_id > a AND sample_id <= b``; the first
    ``window`` ids, then four times wider each time) and stops once ``limit`` ids are found,
    so a common facet of a 1M-sample version answers from its first window instead of
    classifying every sample.

    Raises:
        KeyError: unknown facet (names in :data:`FACETS`).
    """
    pred = _FACETS[facet]
    extra = ""
    params = _params(version, citation_re, normalize, refusal_re, partial_re) + [value]
    if refusal_class is not None:
        extra = " AND refusal_class = $9"
        params.append(refusal_class)
    edges = list(word_edges)
    lo, hi = store.conn.execute(
        "SELECT min(sample_id), max(sample_id) FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
        [version.dataset_id, version.number, version.number]).fetchall()[0]
    if lo is None:
        return []
    found: list[int] = []
    start = lo - 1
    # a duplicate facet needs every sample at once (duplicates can be far apart)
    step = (hi - lo + 1) if facet == "duplicate" else window
    while start < hi and len(found) < limit:
        end = start + step
        step *= 4  # a rare facet: widen the window (5K, 20K, 80K, ... ids)
        base = _metric_sql("").replace(
            "FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
            f"FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ? "
            f"AND sample_id > {int(start)} AND sample_id <= {int(end)}")
        tail = f"""
    , b AS (SELECT *, CASE WHEN words IS NULL THEN NULL
                       ELSE list_count(list_filter({edges}::INTEGER[], lambda e: e <= words)) - 1 END AS words_bin FROM m)
    SELECT sample_id FROM b WHERE {pred}{extra} ORDER BY sample_id LIMIT {int(limit - len(found))}"""
        found += [r[0] for r in store.conn.execute(_numbered(base + tail), params).fetchall()]
        start = end
    return found


def samples_by_ids(store, version, sample_ids: list[int]):
    """The given samples of the version as ``Sample`` objects, by id. Bounded by the ids'
    min and max so DuckDB skips the other row groups (faster than a join on a 1M-sample
    dataset when the ids are few and close together)."""
    from .samples import Sample
    from .versions import SAMPLE_SELECT, _SAMPLE_COLS
    ids = sorted(set(int(i) for i in sample_ids))
    if not ids:
        return []
    rows = store.conn.execute(
        f"SELECT {SAMPLE_SELECT} FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ? "
        "AND sample_id BETWEEN ? AND ? AND sample_id IN (SELECT unnest(?::BIGINT[])) ORDER BY sample_id",
        [version.dataset_id, version.number, version.number, ids[0], ids[-1], ids]).fetchall()
    return [Sample.from_row(dict(zip(_SAMPLE_COLS, r))) for r in rows]


def sample_texts(store, version, *, limit: int | None = None, field: str = "prompt") -> list[tuple[int, str]]:
    """``(sample_id, text)`` of the version's prompts or responses (``field``), in a fixed
    pseudo-random order by content (a hash of the row hash), at most ``limit``: the same
    version always gives the same sample, whatever the insertion order."""
    if field not in ("prompt", "response"):
        raise ValueError(field)
    lim = f"LIMIT {int(limit)}" if limit else ""
    sql = "WITH " + _base_cte() + f"""
    SELECT sample_id, {field} FROM s WHERE {field} IS NOT NULL AND trim({field}) <> ''
    ORDER BY hash(row_hash, sample_id) {lim}"""
    return store.conn.execute(sql, [version.dataset_id, version.number, version.number]).fetchall()


def gate_frame(store, version):
    """Per-sample columns the validation gate checks, as a pandas DataFrame indexed by
    nothing (``sample_id`` is a column): kind, system, instruction, input, output,
    messages (JSON text), prompt, response, turns, task type, policy domain, language,
    source, expected behaviour."""
    sql = "WITH " + _base_cte() + """
    SELECT s.sample_id, s.kind, raw.system, raw.instruction, raw.input, raw.output,
           to_json(raw.msgs)::VARCHAR AS messages, s.prompt, s.response, s.turns,
           s.task_type, s.policy_domain, s.language, s.source, s.expected_behavior
    FROM s JOIN raw USING (sample_id) ORDER BY s.sample_id"""
    return store.conn.execute(sql, [version.dataset_id, version.number, version.number]).df()


# --------------------------------------------------------------- suites
def suite_hash(suite: dict) -> str:
    return hashlib.sha256(json.dumps(suite, sort_keys=True).encode()).hexdigest()[:16]


def get_suite(store, dataset_id: int) -> dict | None:
    """The dataset's stored suite as ``{"suite", "suite_hash", "updated_by", "updated_at"}``."""
    r = store.conn.execute("SELECT suite, suite_hash, updated_by, updated_at FROM quality_suites "
                           "WHERE dataset_id = ?", [dataset_id]).fetchall()
    if not r:
        return None
    return {"suite": json.loads(r[0][0]), "suite_hash": r[0][1], "updated_by": r[0][2], "updated_at": r[0][3]}


def has_suite(conn, dataset_id: int) -> bool:
    return bool(conn.execute("SELECT 1 FROM quality_suites WHERE dataset_id = ?", [dataset_id]).fetchall())


def put_suite(store, dataset_id: int, dataset: str, suite: dict, *, user: str) -> str:
    """Store (replace) the dataset's suite in one transaction with its audit entry."""
    h = suite_hash(suite)
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO quality_suites VALUES (?, ?, ?, ?, ?)",
                     [dataset_id, json.dumps(suite, ensure_ascii=False), h, user, audit.now()])
        audit.record(conn, user, "quality.suite.edit", dataset, {"suite_hash": h,
                                                                 "expectations": len(suite.get("expectations", []))})
    return h


# --------------------------------------------------------------- gate results
def version_id_of(conn, dataset_id: int, number: int) -> str:
    return conn.execute("SELECT version_id FROM versions WHERE dataset_id = ? AND number = ?",
                        [dataset_id, number]).fetchall()[0][0]


def mark_pending(conn, dataset_id: int, number: int, suite_hash_: str | None) -> str:
    """Insert (or reset) the version's gate row as ``pending``; returns the version id."""
    vid = version_id_of(conn, dataset_id, number)
    conn.execute("INSERT OR REPLACE INTO quality_gate_results VALUES (?, ?, ?, 'pending', ?, NULL, NULL, ?, NULL)",
                 [vid, dataset_id, number, suite_hash_, audit.now()])
    return vid


def set_gate_job(store, version_id: str, job_dir: str) -> None:
    store.conn.execute("UPDATE quality_gate_results SET job_dir = ? WHERE version_id = ?", [job_dir, version_id])


def store_gate_result(store, version, status: str, suite_hash_: str, summary: dict, *, user: str) -> None:
    """Write the gate's outcome for ``version`` (replacing ``pending``) with an audit entry."""
    with store.transaction() as conn:
        prev = conn.execute("SELECT job_dir, scheduled_at FROM quality_gate_results WHERE version_id = ?",
                            [version.version_id]).fetchall()
        job_dir, sched = prev[0] if prev else (None, audit.now())
        conn.execute("INSERT OR REPLACE INTO quality_gate_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [version.version_id, version.dataset_id, version.number, status, suite_hash_,
                      json.dumps(summary, ensure_ascii=False, default=str), job_dir, sched, audit.now()])
        audit.record(conn, user, "quality.gate", f"{version.dataset}@v{version.number}",
                     {"status": status, "suite_hash": suite_hash_,
                      "failed": [e["type"] for e in summary.get("expectations", []) if not e.get("success")]})


def gate_result(store, version_id: str) -> dict | None:
    r = store.conn.execute(
        "SELECT status, suite_hash, summary, job_dir, scheduled_at, finished_at, number FROM quality_gate_results "
        "WHERE version_id = ?", [version_id]).fetchall()
    if not r:
        return None
    s, h, summ, jd, sch, fin, num = r[0]
    return {"status": s, "suite_hash": h, "summary": json.loads(summ) if summ else None, "job_dir": jd,
            "scheduled_at": sch, "finished_at": fin, "number": num}


def gate_history(store, dataset_id: int) -> list[dict]:
    """``[{"number", "version_id", "status", "overridden"}]`` for every version, oldest first
    (status None where no gate was scheduled)."""
    rows = store.conn.execute(
        "SELECT v.number, v.version_id, g.status, o.version_id IS NOT NULL FROM versions v "
        "LEFT JOIN quality_gate_results g USING (version_id) LEFT JOIN quality_overrides o USING (version_id) "
        "WHERE v.dataset_id = ? ORDER BY v.number", [dataset_id]).fetchall()
    return [{"number": r[0], "version_id": r[1], "status": r[2], "overridden": r[3]} for r in rows]


def put_override(store, version, reason: str, *, user: str) -> None:
    """Record a curator's override of a failing gate, with its audit entry, in one transaction."""
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO quality_overrides VALUES (?, ?, ?, ?, ?)",
                     [version.version_id, version.dataset_id, user, reason, audit.now()])
        audit.record(conn, user, "quality.gate.override", f"{version.dataset}@v{version.number}",
                     {"version_id": version.version_id, "reason": reason})


def get_override(store, version_id: str) -> dict | None:
    r = store.conn.execute('SELECT user_name, reason, "at" FROM quality_overrides WHERE version_id = ?',
                           [version_id]).fetchall()
    return {"user": r[0][0], "reason": r[0][1], "at": r[0][2]} if r else None


def review_task_count(store, dataset_id: int, number: int) -> int:
    """Review tasks opened on the version (0 when the review area's tables are absent)."""
    import duckdb
    try:
        return store.conn.execute("SELECT count(*) FROM review_tasks WHERE dataset_id = ? AND version_number = ?",
                                  [dataset_id, number]).fetchall()[0][0]
    except duckdb.CatalogException:
        return 0


# --------------------------------------------------------------- evaluation sets
def register_eval_set(store, version, name: str, texts: list[str], *, source: str | None, user: str) -> int:
    """Register an evaluation set on ``version`` (it applies to that version and later ones).

    Raises:
        Conflict: the dataset already has an evaluation set of that name.
    """
    from .errors import Conflict
    conn = store.conn
    if conn.execute("SELECT 1 FROM quality_eval_sets WHERE dataset_id = ? AND name = ?",
                    [version.dataset_id, name]).fetchall():
        raise Conflict(f"dataset '{version.dataset}' already has an evaluation set named '{name}'")
    with store.transaction():
        esid = conn.execute("SELECT nextval('quality_eval_set_ids')").fetchall()[0][0]
        conn.execute("INSERT INTO quality_eval_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [esid, version.dataset_id, name, version.number, source, len(texts), user, audit.now()])
        register(conn, "_items", pa.table({"item_no": pa.array(range(1, len(texts) + 1), pa.int64()),
                                           "text": pa.array(texts, pa.string())}))
        conn.execute("INSERT INTO quality_eval_items SELECT ?, item_no, text FROM _items", [esid])
        conn.unregister("_items")
        audit.record(conn, user, "quality.evalset.register", f"{version.dataset}@v{version.number}",
                     {"name": name, "items": len(texts), "source": source})
    return esid


def list_eval_sets(store, dataset_id: int, number: int | None = None) -> list[dict]:
    """Evaluation sets of the dataset (those registered at or before version ``number`` when given)."""
    sql = ("SELECT eval_set_id, name, from_version, source, n_items, created_by, created_at "
           "FROM quality_eval_sets WHERE dataset_id = ?")
    p: list = [dataset_id]
    if number is not None:
        sql += " AND from_version <= ?"
        p.append(number)
    cols = ["eval_set_id", "name", "from_version", "source", "items", "created_by", "created_at"]
    return [dict(zip(cols, r)) for r in store.conn.execute(sql + " ORDER BY name", p).fetchall()]


_TOKENS = "string_split_regex(trim(regexp_replace(lower({x}), '[^\\pL\\pN]+', ' ', 'g')), ' ')"


def contamination(store, version, eval_set_ids: list[int], n: int, *, list_limit: int = 200) -> dict:
    """Word n-gram overlap between the version's samples (prompt and response text) and the
    items of the given evaluation sets.

    Tokens: lower-cased runs of letters and digits (everything else separates). A sample
    is contaminated by a set when at least one of its word n-grams occurs in an item of
    that set. Items shorter than ``n`` words contribute no n-gram (counted as ``short_items``).

    Returns ``{"per_set": {eval_set_id: {"contaminated", "short_items"}}, "contaminated": total
    distinct samples, "samples": [(sample_id, eval_set_id, item_no, ngram_count)]}`` (first
    ``list_limit`` by sample id).
    """
    if not eval_set_ids:
        return {"per_set": {}, "contaminated": 0, "samples": []}
    conn = store.conn
    tok_s = _TOKENS.format(x="coalesce(prompt, '') || ' ' || coalesce(response, '')")
    tok_e = _TOKENS.format(x="text")
    grams = "list_transform(range(1, len(w) - {n} + 2), lambda i: hash(array_to_string(w[i:i + {n} - 1], ' ')))".format(n=int(n))
    sql = "WITH " + _base_cte() + f""",
    ew AS (SELECT eval_set_id, item_no, {tok_e} AS w FROM quality_eval_items
           WHERE eval_set_id IN (SELECT unnest(?::INTEGER[]))),
    eg AS (SELECT DISTINCT eval_set_id, item_no, unnest({grams}) AS h FROM ew WHERE len(w) >= {int(n)}),
    sw AS (SELECT sample_id, {tok_s} AS w FROM s),
    sg AS (SELECT sample_id, unnest({grams}) AS h FROM sw WHERE len(w) >= {int(n)}),
    hit AS (SELECT sg.sample_id, eg.eval_set_id, min(eg.item_no) AS item_no, count(*) AS ngrams
            FROM sg JOIN eg USING (h) GROUP BY ALL)
    SELECT sample_id, eval_set_id, item_no, ngrams FROM hit ORDER BY sample_id, eval_set_id"""
    rows = conn.execute(sql, [version.dataset_id, version.number, version.number, list(eval_set_ids)]).fetchall()
    short = dict(conn.execute(
        f"SELECT eval_set_id, count(*) FILTER (WHERE len({tok_e}) < ?) FROM quality_eval_items "
        "WHERE eval_set_id IN (SELECT unnest(?::INTEGER[])) GROUP BY 1", [int(n), list(eval_set_ids)]).fetchall())
    per: dict[int, dict] = {i: {"contaminated": 0, "short_items": short.get(i, 0)} for i in eval_set_ids}
    for _, es, _, _ in rows:
        per[es]["contaminated"] += 1
    return {"per_set": per, "contaminated": len({r[0] for r in rows}), "samples": rows[:list_limit]}


# --------------------------------------------------------------- metric cache
def cache_get(store, version_id: str, name: str, params: str):
    r = store.conn.execute("SELECT value FROM quality_metric_cache WHERE version_id = ? AND name = ? AND params = ?",
                           [version_id, name, params]).fetchall()
    return json.loads(r[0][0]) if r else None


def cache_put(store, version_id: str, name: str, params: str, value) -> None:
    store.conn.execute("INSERT OR REPLACE INTO quality_metric_cache VALUES (?, ?, ?, ?, ?)",
                       [version_id, name, params, json.dumps(value, ensure_ascii=False, default=str), audit.now()])
