"""Filter a version into a new version: by metadata, a SQL-like condition, quality
metrics, or annotation outcome. One commit; the message states the condition.

The condition language is DuckDB expressions over the version's columns (checked by
:mod:`pipelines.curate.condition`) plus these derived per-sample columns:

- ``prompt`` / ``response``: the instruction (or first user turn) and the output (or
  last assistant turn), as the quality area defines them (``datastore/quality.py``);
- ``turns``: non-system turns; ``prompt_chars``, ``response_chars``, ``response_words``
  (runs of non-space characters, as the quality dashboard counts words);
- ``duplicate``: true when a sample with a lower id in the version has the same
  normalized prompt and response (:func:`pipelines.curate.base.normalize_text`), so
  ``NOT duplicate`` keeps the first of each group;
- ``refusal``: ``full_refusal`` / ``partial_refusal`` / ``compliance`` of the response
  by the quality area's classifier (``pipelines.quality.refusal.classify``);
- ``outcome``: the review outcome of the sample: the adjudicated decision (``accept``,
  ``reject``, ``edit``) where there is one, else the annotators' decision when all agree,
  ``disputed`` when they differ, NULL when nobody annotated it.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from datastore import Store, WorkbenchError
from datastore import governance as G
from datastore import versions as V
from pipelines.policy import require

from . import condition as C
from .base import Plan, apply_target, copy_rows, normalize_text

_MSGS = "from_json(messages, '[{\"role\": \"VARCHAR\", \"content\": \"VARCHAR\"}]')"
# derived column -> (stored columns it needs, derived columns it needs, SQL over them)
DERIVED: dict[str, tuple[list[str], list[str], str | None]] = {
    "prompt": (["kind", "instruction", "messages"], [],
               f"CASE WHEN kind = 'conversation' THEN list_filter({_MSGS}, lambda x: x.role = 'user')[1].content "
               "ELSE instruction END"),
    "response": (["kind", "output", "messages"], [],
                 f"CASE WHEN kind = 'conversation' THEN list_filter({_MSGS}, lambda x: x.role = 'assistant')[-1].content "
                 "ELSE output END"),
    "turns": (["kind", "messages", "history", "output"], [],
              f"CASE WHEN kind = 'conversation' THEN len(list_filter({_MSGS}, lambda x: x.role <> 'system')) "
              "ELSE 2 * coalesce(json_array_length(history), 0) + 1 + (output IS NOT NULL)::INT END"),
    "prompt_chars": ([], ["prompt"], "length(prompt)"),
    "response_chars": ([], ["response"], "length(response)"),
    "response_words": ([], ["response"],
                       "CASE WHEN response IS NULL THEN NULL ELSE len(regexp_extract_all(response, '\\S+')) END"),
    "duplicate": ([], ["prompt", "response"], None),   # computed in Python (normalize_text)
    "refusal": ([], ["response"], None),               # pipelines.quality.refusal.classify
    "outcome": ([], [], None),                          # review tables
}
C_COLUMNS = C.COLUMNS | set(DERIVED)


def _closure(names: set[str]) -> tuple[set[str], list[str]]:
    stored, derived = set(), []
    def visit(n):
        if n in DERIVED:
            st_cols, deps, _ = DERIVED[n]
            for d in deps:
                visit(d)
            stored.update(st_cols)
            if n not in derived:
                derived.append(n)
        else:
            stored.add(n)
    for n in sorted(names):
        visit(n)
    return stored, derived


def build_condition(where: str | None = None, *, fields: dict[str, str] | None = None,
                    tags: list[str] | None = None, min_quality: float | None = None,
                    outcome: list[str] | None = None) -> str:
    """One condition text from the filter options (ANDed): ``where`` as given, each
    ``fields`` item as ``column = 'value'``, each tag as ``list_contains(tags, 'tag')``,
    ``quality_score >= min_quality``, ``outcome IN (...)``.

    Raises:
        WorkbenchError: nothing to filter on, or a field that is not a column.
    """
    parts = []
    if where and where.strip():
        parts.append(f"({where.strip()})")
    for k, v in (fields or {}).items():
        if k not in C_COLUMNS:
            raise WorkbenchError(f"cannot filter on '{k}': not a sample column")
        parts.append(f"{k} = {C.quote_literal(v)}")
    for t in tags or []:
        parts.append(f"list_contains(tags, {C.quote_literal(t)})")
    if min_quality is not None:
        parts.append(f"quality_score >= {float(min_quality)!r}")
    if outcome:
        parts.append(f"outcome IN ({', '.join(C.quote_literal(o) for o in outcome)})")
    if not parts:
        raise WorkbenchError("nothing to filter on: give --where, --field, --tag, --min-quality or --outcome")
    return " AND ".join(parts)


def _derive_python(st, version, table: pa.Table, derived: list[str]) -> pa.Table:
    if "duplicate" in derived:
        p = table.column("prompt").to_pylist()
        r = table.column("response").to_pylist()
        keys = [normalize_text(a or "") + "\x00" + normalize_text(b or "") for a, b in zip(p, r)]
        seen: set[str] = set()
        dup = []
        for k in keys:   # rows are in sample id order: the first occurrence is not a duplicate
            dup.append(k in seen)
            seen.add(k)
        table = table.append_column("duplicate", pa.array(dup, pa.bool_()))
    if "refusal" in derived:
        try:
            from pipelines.quality.refusal import classify
        except ImportError as e:
            raise WorkbenchError(f"the refusal classifier is not available here: {e}") from None
        table = table.append_column("refusal", pa.array([classify(x) for x in table.column("response").to_pylist()],
                                                        pa.string()))
    if "outcome" in derived:
        outcomes = G.annotation_outcomes(st, version)
        if outcomes is None:
            raise WorkbenchError("this workspace has no review tables: nothing to filter by outcome")
        ids = table.column("sample_id").to_pylist()
        table = table.append_column("outcome", pa.array([outcomes.get(i) for i in ids], pa.string()))
    return table


def matching_ids(st, version: V.Version, cond_text: str) -> list[int]:
    """Ids of the samples of ``version`` that satisfy ``cond_text`` (ascending).

    Raises:
        WorkbenchError: the condition is refused by the checker or fails when run.
    """
    import duckdb
    cond = C.parse_condition(cond_text, columns=C_COLUMNS)
    stored, derived = _closure(set(cond.columns))
    table = G.read_columns(st, version, sorted(stored - {"sample_id"}))
    sql_derived = [n for n in derived if DERIVED[n][2] is not None]
    if sql_derived:
        con = duckdb.connect(":memory:")
        try:
            con.register("raw", table)
            sql = "SELECT * FROM raw"
            for n in sql_derived:   # in dependency order: each level can use the previous
                sql = f"SELECT *, {DERIVED[n][2]} AS {n} FROM ({sql})"
            table = con.sql(sql + " ORDER BY sample_id").to_arrow_table()
        finally:
            con.close()
    table = _derive_python(st, version, table, derived)
    keep = set(cond.columns) | {"sample_id"}
    table = table.select([c for c in table.column_names if c in keep])
    return C.evaluate(cond, table)


def plan_filter(workspace: str | Path, dataset: str, version: str | int | None = None, *, user: str,
                where: str | None = None, fields: dict[str, str] | None = None, tags: list[str] | None = None,
                min_quality: float | None = None, outcome: list[str] | None = None,
                into: str | None = None) -> Plan:
    """Counts of a filter without committing: ``{"source", "kept", "removed"}``.

    Raises:
        PermissionDenied: ``user`` may not edit samples. WorkbenchError: a bad condition.
    """
    with Store(workspace, create=False) as st:
        require(st, user, "edit_samples", dataset)
        return _plan(st, dataset, version, where, fields, tags, min_quality, outcome, into)[0]


def _plan(st, dataset, version, where, fields, tags, min_quality, outcome, into):
    v = V.resolve(st, dataset, version)
    cond = build_condition(where, fields=fields, tags=tags, min_quality=min_quality, outcome=outcome)
    kept = matching_ids(st, v, cond)
    target = into or dataset
    msg = (f"filter {dataset} v{v.number} where {cond}: kept {len(kept)} of {v.n_samples}"
           + (f" into {into}" if into else ""))
    op = {"op": "filter", "from": dataset, "from_version": v.number, "from_version_id": v.version_id,
          "where": cond, "kept": len(kept), "removed": v.n_samples - len(kept)}
    if into:
        op["into"] = into
    return Plan("filter", target, msg, op, {"source": v.n_samples, "kept": len(kept),
                                            "removed": v.n_samples - len(kept)}), v, kept


def filter_version(workspace: str | Path, dataset: str, version: str | int | None = None, *, user: str,
                   where: str | None = None, fields: dict[str, str] | None = None, tags: list[str] | None = None,
                   min_quality: float | None = None, outcome: list[str] | None = None,
                   into: str | None = None) -> V.Version:
    """Commit the samples of ``dataset`` at ``version`` (default head) that satisfy the
    condition as one new version: of ``dataset`` itself (samples keep their ids; an older
    version's samples are reinstated where the head lost them), or of the dataset ``into``
    (created if missing; the kept samples are copied with lineage to their source).

    Raises:
        PermissionDenied, WorkbenchError (bad condition), Conflict (nothing would change).
    """
    with Store(workspace, create=False) as st:
        name, _ = require(st, user, "edit_samples", dataset)
        plan, v, kept = _plan(st, dataset, version, where, fields, tags, min_quality, outcome, into)
        if into:
            rows = copy_rows(V.get_samples(st, v, kept), parent=v)
            if not rows:
                raise WorkbenchError(f"the filter keeps no sample of {dataset} v{v.number}: nothing to copy into {into}")
            return V.commit(st, into, author=name, message=plan.message, add=rows, operation=plan.operation,
                            create=True)
        return apply_target(st, dataset, v, kept, author=name, message=plan.message, operation=plan.operation)
