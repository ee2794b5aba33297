"""Citation rule on a labelled fixture, in Python and in DuckDB (the same regular expression)."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipelines.quality.citation import CITATION_RE, cites_source

FIXTURE = Path(__file__).parent / "fixtures" / "citations.jsonl"


def _cases():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def test_rule_matches_every_label():
    cases = _cases()
    assert sum(c["cites"] for c in cases) == 16 and len(cases) == 30
    wrong = [(c["why"], c["text"]) for c in cases if cites_source(c["text"]) != c["cites"]]
    assert wrong == []


def test_duckdb_agrees_with_python():
    cases = _cases()
    got = duckdb.sql("SELECT coalesce(regexp_matches(t, $1), false) FROM (SELECT unnest($2::VARCHAR[]) AS t)",
                     params=[CITATION_RE, [c["text"] for c in cases]]).fetchall()
    # unnest keeps order for a single list
    assert [g[0] for g in got] == [c["cites"] for c in cases]


def test_missing_or_empty_response_is_not_a_citation():
    assert cites_source(None) is False and cites_source("") is False
