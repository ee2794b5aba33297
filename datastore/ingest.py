"""Bulk ingestion of plain instruction rows, hashed in SQL.

Why our own code: a 1M-row Alpaca import must validate, hash and commit faster than
``datasets.load_dataset("json")`` reads the file, which a Python loop
per row cannot do. The caller (``pipelines/formats/fast_alpaca.py``) hands over an Arrow
table whose columns pyarrow has already type-checked; here DuckDB builds each row's
canonical JSON with ``to_json`` and hashes it with ``sha256``, vectorized. The canonical
text is byte-identical to ``samples.dumps(samples.canonical(row))`` for these rows (a
test holds the two paths to the same hashes).
"""
from __future__ import annotations

import json

import pyarrow as pa

from .store import register

# Canonical JSON of an instruction row with text columns only (keys in sorted order:
# input, instruction, kind, meta, output, system; absent values omitted).
_CANONICAL_SQL = """'{' ||
  CASE WHEN input IS NULL THEN '' ELSE '"input":' || to_json(input) || ',' END ||
  '"instruction":' || to_json(instruction) || ',"kind":"instruction"' ||
  CASE WHEN ?::VARCHAR IS NULL THEN '' ELSE ',"meta":{"license":' || to_json(?::VARCHAR) || '}' END ||
  CASE WHEN output IS NULL THEN '' ELSE ',"output":' || to_json(output) END ||
  CASE WHEN system IS NULL THEN '' ELSE ',"system":' || to_json(system) END || '}'"""


def stage_plain_instructions(conn, table: pa.Table, *, source: str, license: str | None,
                             layout: dict) -> "Staged":
    """Describe the rows of an Arrow table with string columns ``instruction``, ``output``
    and optionally ``input`` and ``system`` as a :class:`versions.Staged` SELECT producing
    the samples columns (``row_hash`` computed in SQL). ``source_row`` counts from 1 in
    table order. Nothing is materialized: ``versions.commit`` inserts straight from it.
    """
    import numpy as np

    from .versions import Staged

    cols = set(table.column_names)
    table = table.append_column("source_row", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    register(conn, "_arrow_in", table)
    sys_col = "system" if "system" in cols else "NULL::VARCHAR"
    inp_col = "input" if "input" in cols else "NULL::VARCHAR"
    sql = f"""SELECT source_row, 'instruction' AS kind, system, instruction, input, output,
        NULL::VARCHAR AS history, NULL::VARCHAR AS messages,
        ?::VARCHAR AS source, source_row AS source_row_, ?::VARCHAR AS license,
        NULL::VARCHAR AS task_type, NULL::VARCHAR AS language, NULL::VARCHAR AS difficulty,
        NULL::DOUBLE AS quality_score, NULL::VARCHAR AS policy_domain,
        NULL::VARCHAR[] AS tags, NULL::VARCHAR[] AS annotator_ids,
        NULL::VARCHAR AS lineage, NULL::VARCHAR AS extra, ?::VARCHAR AS layout,
        sha256({_CANONICAL_SQL}) AS row_hash
        FROM (SELECT source_row, instruction, {inp_col} AS input, output, {sys_col} AS system FROM _arrow_in)"""
    return Staged(sql=sql, params=[source, license, json.dumps(layout), license, license],
                  count=table.num_rows, registered=["_arrow_in"])


def inserted_hash_sum(conn, dataset_id: int, number: int) -> int:
    """Sum of the 256-bit row hashes of the revisions version ``number`` added, summed in
    SQL by 64-bit limbs (HUGEINT holds any count of them)."""
    parts = ", ".join(f"sum(('0x' || substr(row_hash, {1 + 16 * i}, 16))::UBIGINT::HUGEINT)" for i in range(4))
    row = conn.execute(f"SELECT {parts} FROM samples WHERE dataset_id = ? AND valid_from = ?",
                       [dataset_id, number]).fetchall()[0]
    total = 0
    for limb in row:
        total = (total << 64) + int(limb or 0)
    return total
