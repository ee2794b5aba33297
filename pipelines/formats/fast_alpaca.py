"""The fast path for large plain Alpaca JSON Lines files.

pyarrow's multi-threaded JSON reader parses the file against an explicit all-text
schema with ``unexpected_field_behavior="error"``: any extra key, any non-text value
(``42``, ``true``, an object) or malformed line makes it raise, and any null in a column
is ambiguous (missing or null?). In each of those cases we return ``None`` and the
caller takes the exact row-by-row path, which names the file, line and field. So the fast
path only ever accepts files the exact path would import unchanged and without warnings
(a whitespace-only ``input`` also goes to the exact path, which warns), and gives the same
samples and the same hashes (SQL hashing in ``datastore/ingest.py``). An import with a
``--map`` never comes here (``import_file``): mapped metadata columns are validated per row on
the exact path, so a large file and a small one map the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

from datastore import Store
from datastore import ingest
from datastore import versions as V

PLAIN_KEYS = ("instruction", "input", "output", "system")
MIN_BYTES = 1 << 20  # below 1 MB the exact path is as fast; keep one path for small files


def try_fast_import(workspace, path: Path, dataset: str, *, user: str, license: str | None,
                    kind: str, message: str | None, report_cls):
    """Import ``path`` on the fast path, or return None when it does not qualify."""
    import pyarrow as pa
    import pyarrow.json as pj

    path = Path(path)
    if path.is_dir() or path.stat().st_size < MIN_BYTES:
        return None
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        first = f.readline()
    if head in (b"\x1f\x8b", b"\xef\xbb"):
        return None
    try:
        rec = json.loads(first)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    keys = list(rec.keys())
    if not set(keys) <= set(PLAIN_KEYS) or "instruction" not in keys or "output" not in keys:
        return None
    schema = pa.schema([(k, pa.string()) for k in keys])
    try:
        table = pj.read_json(path, parse_options=pj.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="error", newlines_in_values=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0 or any(table.column(k).null_count for k in keys):
        return None
    if "input" in keys and _has_whitespace_only(table.column("input")):
        return None  # the exact path warns about each (AlpacaSchema.parse)
    if any(_has_blank(table.column(k)) for k in ("instruction", "output")):
        return None  # an empty answer or instruction: the exact path warns and does not count it trainable
    layout = {"schema": "alpaca", "keys": keys}
    op = {"op": "import", "file": str(path), "container": "jsonl", "schema": "alpaca",
          "records": table.num_rows, "quarantined": 0, "path": "fast"}
    with Store(workspace) as st:
        staged = ingest.stage_plain_instructions(st.conn, table, source=path.name, license=license, layout=layout)
        v = V.commit(st, dataset, author=user, message=message or f"import {path.name}", add=staged,
                     operation=op, create=True, kind=kind)
    return report_cls(dataset=dataset, file=str(path), container="jsonl", schema="alpaca",
                      imported=table.num_rows, quarantined=0, trainable=table.num_rows,
                      version=v.number, version_id=v.version_id, content_hash=v.content_hash)


def _has_blank(column) -> bool:
    """Whether a text column holds an empty or whitespace-only value (``utf8_trim_whitespace``)."""
    import pyarrow.compute as pc
    return bool(pc.any(pc.equal(pc.utf8_trim_whitespace(column), "")).as_py())


def _has_whitespace_only(column) -> bool:
    """Whether a text column holds a non-empty value that is only whitespace (Arrow's
    ``utf8_trim_whitespace``, Unicode whitespace as utf8proc classifies it)."""
    import pyarrow.compute as pc
    blank = pc.and_(pc.greater(pc.utf8_length(column), 0), pc.equal(pc.utf8_trim_whitespace(column), ""))
    return bool(pc.any(blank).as_py())
