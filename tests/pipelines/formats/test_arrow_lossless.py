"""Parquet and HF exports keep the data exactly or refuse: Arrow gives a column one struct type,
so keys that only some records have (tool schemas, tool calls) would come back as nulls."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from datastore import WorkbenchError
from pipelines.formats import export_version, import_file
from tests.conftest import shared_file

TOOLS_A = [{"type": "function", "function": {"name": "quote", "parameters": {
    "type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}}}]
TOOLS_B = [{"type": "function", "function": {"name": "history", "parameters": {
    "type": "object", "properties": {"period": {"type": "string"}}}}}]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_tool_schemas_with_different_keys_are_refused_naming_record_and_field(tmp_workspace, tmp_path):
    src = _write(tmp_path / "tools.jsonl", [
        {"messages": [{"role": "user", "content": "AAPL?"}, {"role": "assistant", "content": "190."}], "tools": TOOLS_A},
        {"messages": [{"role": "user", "content": "Last month?"}, {"role": "assistant", "content": "Up."}], "tools": TOOLS_B},
    ])
    import_file(tmp_workspace, src, "t", user="t")
    for fmt in ("parquet", "hf"):
        with pytest.raises(WorkbenchError) as e:
            export_version(tmp_workspace, "t", None, fmt, tmp_path / f"out.{fmt}", card=False)
        msg = str(e.value)
        assert f"cannot write {fmt} without changing the data: record 1" in msg
        assert "'tools[0].function.parameters.properties.period'" in msg
        assert not (tmp_path / f"out.{fmt}").exists()


def test_uniform_records_still_export_and_read_back_equal(tmp_workspace, tmp_path):
    recs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "tools": TOOLS_A} for i in range(3)]
    import_file(tmp_workspace, _write(tmp_path / "u.jsonl", recs), "u", user="t")
    export_version(tmp_workspace, "u", None, "parquet", tmp_path / "u.parquet", card=False)
    assert pq.read_table(tmp_path / "u.parquet").to_pylist() == recs


def test_real_tool_calling_file_is_refused_not_altered(tmp_workspace, tmp_path):
    src = shared_file("tool-calling-openai/stock_toolcall_training.jsonl")
    import_file(tmp_workspace, src, "stock", user="t")
    with pytest.raises(WorkbenchError, match=r"without changing the data: record 1 \(in export order, from 1\), field 'messages\[0\].tool_calls'"):
        export_version(tmp_workspace, "stock", None, "parquet", tmp_path / "s.parquet", card=False)
    export_version(tmp_workspace, "stock", None, "messages", tmp_path / "s.jsonl", card=False)
    assert [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()] == \
        [json.loads(x) for x in src.read_text().splitlines()]
