"""Word counts of the metric frame equal DuckDB's ``len(regexp_extract_all(t, '\\S+'))``."""
from __future__ import annotations

import duckdb
import pyarrow as pa

from datastore.quality import word_counts

TEXTS = ["", "one", "  two  words ", "tab\tand\nnew\r\nlines", "vertical\x0btab stays in a word",
         "form\x0cfeed", "ünïcode wörds — dash", "non\u00a0breaking space", "x", None, "   ", "a  b   c",
         "emoji 🙂 here", "line\n\nbreaks\n"]


def test_word_counts_match_duckdb_regex():
    want = [r[0] for r in duckdb.sql(
        "SELECT CASE WHEN t IS NULL THEN NULL ELSE len(regexp_extract_all(t, '\\S+')) END "
        "FROM (SELECT unnest($1::VARCHAR[]) AS t, unnest(range(len($1::VARCHAR[]))) AS i) ORDER BY i",
        params=[TEXTS]).fetchall()]
    got = word_counts(pa.chunked_array([pa.array(TEXTS[:5]), pa.array(TEXTS[5:])])).to_pylist()
    assert got == want
    # a sliced array (non-zero offset) and a large_string array
    assert word_counts(pa.array(TEXTS).slice(3, 4)).to_pylist() == want[3:7]
    assert word_counts(pa.array(TEXTS, pa.large_string())).to_pylist() == want
