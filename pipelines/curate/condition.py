"""A SQL-like filter condition over a version's columns, checked before it runs.

Why our own checker: the condition is user text that DuckDB will evaluate, and DuckDB
has functions that read files (``read_csv``), reach the network or change settings. So the
condition is parsed by DuckDB itself (``json_serialize_sql``, the engine's own parser: no
hand-written grammar to drift), and its syntax tree is walked against whitelists: node
classes, the functions and operators in :data:`FUNCTIONS`, and the sample columns in
:data:`COLUMNS`. It must be a single expression (no subquery, no second statement, no
window, no lambda). It then runs in a separate in-memory DuckDB with external access
switched off and the configuration locked, over an Arrow table holding only ``sample_id``
and the columns the condition names: even a check we got wrong could not read a file,
write anywhere or see another table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from datastore import WorkbenchError

#: Columns a condition may name (the stored sample columns; see datastore/samples.py).
COLUMNS = frozenset({
    "sample_id", "kind", "system", "instruction", "input", "output", "history", "messages",
    "source", "source_row", "license", "task_type", "language", "difficulty", "quality_score",
    "policy_domain", "tags", "annotator_ids", "lineage", "extra", "row_hash"})

#: Functions and operators a condition may call: pure, row-wise text, number, list and JSON
#: functions of DuckDB (names as its parser reports them; operators such as ``~~`` are LIKE).
FUNCTIONS = frozenset({
    # arithmetic and text operators
    "+", "-", "*", "/", "//", "%", "^", "**", "||",
    "~~", "!~~", "~~*", "!~~*", "~~~", "!~~~",
    # lists and JSON
    "@>", "<@", "&&", "->", "->>", "list_value", "array_value", "array_extract", "list_extract",
    "list_contains", "list_has", "array_contains", "array_has", "list_has_any", "list_has_all",
    "len", "length", "array_length", "list_length",
    "json_extract", "json_extract_string", "json_array_length", "json_exists", "json_value",
    "json_type", "json_keys", "json_contains",
    # text
    "strlen", "length_grapheme", "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim",
    "contains", "starts_with", "ends_with", "prefix", "suffix", "strpos", "instr", "position",
    "regexp_matches", "regexp_full_match", "concat", "substring", "substr", "left", "right",
    "replace", "string_split", "split", "levenshtein",
    # numbers and nulls
    "abs", "round", "floor", "ceil", "least", "greatest", "coalesce", "ifnull", "nullif",
    "isnan", "isfinite",
})

_NODE_CLASSES = frozenset({"CONSTANT", "COLUMN_REF", "COMPARISON", "CONJUNCTION", "OPERATOR", "FUNCTION",
                           "BETWEEN", "CASE", "CAST"})
_OPERATOR_TYPES = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN",
                             "COMPARE_NOT_IN", "OPERATOR_COALESCE", "ARRAY_EXTRACT", "ARRAY_SLICE",
                             "STRUCT_EXTRACT"})
_CAST_TYPES = frozenset({"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "FLOAT", "BOOLEAN", "DECIMAL", "JSON",
                         "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"})


@dataclass
class Condition:
    """A checked condition: its text and the sample columns it reads."""
    text: str
    columns: list[str]


def _parse(text: str) -> dict:
    con = duckdb.connect(":memory:")
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [f"SELECT 1 FROM t WHERE ({text})"]).fetchone()[0]
    finally:
        con.close()
    return json.loads(raw)


def _fail(text: str, why: str) -> WorkbenchError:
    return WorkbenchError(f"filter condition '{text}' is not allowed: {why}")


def parse_condition(text: str, columns: frozenset[str] | set[str] = COLUMNS) -> Condition:
    """Check ``text`` (e.g. ``task_type = 'qa' AND length(output) > 20``); ``columns`` are
    the names it may use (default: the stored sample columns).

    Raises:
        WorkbenchError: a syntax error, or anything outside the whitelists (naming it).
    """
    if not text or not text.strip():
        raise WorkbenchError("an empty filter condition")
    tree = _parse(text)
    if tree.get("error"):
        if "Only SELECT" in str(tree.get("error_message")):
            raise _fail(text, "it must be a single expression")
        raise WorkbenchError(f"filter condition '{text}' does not parse: {tree.get('error_message', 'syntax error')}")
    stmts = tree.get("statements") or []
    if len(stmts) != 1:
        raise _fail(text, "one expression only")
    node = stmts[0].get("node") or {}
    frm = node.get("from_table") or {}
    if (node.get("type") != "SELECT_NODE" or node.get("modifiers") or (node.get("cte_map") or {}).get("map")
            or frm.get("type") != "BASE_TABLE" or frm.get("table_name") != "t" or node.get("group_expressions")
            or node.get("having") or node.get("qualify") or node.get("sample") or len(node.get("select_list") or []) != 1):
        raise _fail(text, "it must be a single expression")
    cols: set[str] = set()
    _walk(node.get("where_clause"), text, cols, frozenset(columns))
    return Condition(text=text.strip(), columns=sorted(cols))


def _walk(n, text: str, cols: set[str], allowed: frozenset[str]) -> None:
    if n is None:
        return
    if isinstance(n, list):
        for x in n:
            _walk(x, text, cols, allowed)
        return
    if not isinstance(n, dict):
        return
    cls = n.get("class")
    if cls is None:  # containers such as function arguments {"name", "expression"}
        if "expression" in n:
            _walk(n["expression"], text, cols, allowed)
        return
    if cls not in _NODE_CLASSES:
        raise _fail(text, f"{cls.lower().replace('_', ' ')} expressions are not allowed")
    if cls == "COLUMN_REF":
        names = n.get("column_names") or []
        if len(names) != 1 or names[0] not in allowed:
            raise _fail(text, f"unknown column {'.'.join(names)}; columns: {', '.join(sorted(allowed))}")
        cols.add(names[0])
        return
    if cls == "CONSTANT":
        return
    if cls == "FUNCTION":
        name = (n.get("function_name") or "").lower()
        if name not in FUNCTIONS or n.get("schema") or n.get("catalog") or n.get("filter") \
                or (n.get("order_bys") or {}).get("orders") or n.get("distinct") or n.get("export_state"):
            raise _fail(text, f"function '{n.get('function_name')}' is not allowed "
                              "(allowed: text, number, list and JSON functions; see docs/curation.md)")
        _walk(n.get("arguments") or n.get("children"), text, cols, allowed)
        return
    if cls == "OPERATOR" and n.get("type") not in _OPERATOR_TYPES:
        raise _fail(text, f"operator {n.get('type')} is not allowed")
    if cls == "CAST":
        t = str((n.get("cast_type") or {}).get("id") or (n.get("cast_type") or {}).get("type_info") or "")
        if t and t.upper() not in _CAST_TYPES and not any(t.upper().startswith(c) for c in _CAST_TYPES):
            raise _fail(text, f"cast to {t} is not allowed")
        _walk(n.get("child"), text, cols, allowed)
        return
    for key in ("children", "left", "right", "input", "lower", "upper", "child", "case_checks",
                "when_expr", "then_expr", "else_expr", "arguments"):
        if key in n:
            _walk(n[key], text, cols, allowed)


def evaluate(cond: Condition, table) -> list[int]:
    """Sample ids of the rows of ``table`` (Arrow: ``sample_id`` plus ``cond.columns``) that
    satisfy the condition (NULL counts as false), ascending.

    Raises:
        WorkbenchError: the condition fails at run time (a type mismatch, bad JSON path...).
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.register("t", table)
        try:
            rows = con.execute(f"SELECT sample_id FROM t WHERE ({cond.text}) ORDER BY sample_id").fetchall()
        except duckdb.Error as e:
            raise WorkbenchError(f"filter condition '{cond.text}' failed: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
    return [r[0] for r in rows]


def quote_literal(value: str) -> str:
    """A SQL string literal for ``value`` (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"
