"""Exports that would lose data refuse with the sample's id; CLI errors stay one line."""
import json
import subprocess
import sys

import pytest

from datastore import Conflict, Store, WorkbenchError
from datastore import versions as V
from pipelines.formats import export_version, import_file


def conv_file(tmp_path):
    def conv(*turns):
        return {"conversations": [{"from": f, "value": v} for f, v in turns]}
    recs = [conv(("human", "hi"), ("gpt", "hello")),
            conv(("system", "be brief"), ("human", "a"), ("gpt", "b"), ("human", "c"), ("gpt", "d")),
            conv(("human", "a"), ("gpt", "b"), ("human", "c"))]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(recs))
    return p


def test_conversation_exports_refuse_instead_of_dropping_turns(tmp_workspace, tmp_path):
    import_file(tmp_workspace, conv_file(tmp_path), "c", user="t")
    with pytest.raises(WorkbenchError) as e:
        export_version(tmp_workspace, "c", None, "alpaca", tmp_path / "o.json")
    assert str(e.value).startswith("sample #3 cannot be written as alpaca without losing data: "
                                   "it ends on a user turn")
    with pytest.raises(WorkbenchError) as e:
        export_version(tmp_workspace, "c", None, "self-instruct", tmp_path / "o.jsonl")
    assert "sample #2 cannot be written as self-instruct" in str(e.value)
    with pytest.raises(WorkbenchError) as e:
        export_version(tmp_workspace, "c", None, "csv", tmp_path / "o.csv")
    assert "sample #1 is a conversation: CSV holds instruction samples" in str(e.value)
    assert not list(tmp_path.glob("o.*"))   # nothing half-written
    # the two that fit convert without loss: system, history pairs, last pair
    with Store(tmp_workspace) as st:
        V.commit(st, "c", author="t", message="drop the prompt", remove=[3])
    export_version(tmp_workspace, "c", None, "alpaca", tmp_path / "ok.json")
    assert json.loads((tmp_path / "ok.json").read_text()) == [
        {"instruction": "hi", "input": "", "output": "hello"},
        {"instruction": "c", "input": "", "output": "d", "system": "be brief", "history": [["a", "b"]]}]


def test_mixed_types_refuse_parquet_with_a_clear_error(tmp_workspace, tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_text('{"id": "42", "instruction": "a", "output": "x"}\n{"id": 42, "instruction": "b", "output": "y"}\n')
    import_file(tmp_workspace, src, "m", user="t")
    for fmt in ("parquet", "hf"):
        with pytest.raises(WorkbenchError) as e:
            export_version(tmp_workspace, "m", None, fmt, tmp_path / f"o.{fmt}")
        assert (f"cannot write {fmt}: column 'id' (str in record 1, int in record 2: 42; records count from 1 "
                "in export order) mixes value types") in str(e.value)


def test_lone_surrogate_is_a_row_error_not_a_crash(tmp_workspace, tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"instruction": "ok", "output": "1"}\n{"instruction": "lone \\ud83d", "output": "2"}\n')
    rep = import_file(tmp_workspace, src, "s", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (1, 1)
    from pipelines.workspace import quarantined
    q = quarantined(tmp_workspace, "s")[0]
    assert (q["line"], q["field"]) == (2, "instruction") and "lone UTF-16 surrogate" in q["reason"]


def test_tag_does_not_move_silently(tmp_workspace, tmp_path):
    src = tmp_path / "a.json"
    src.write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    import_file(tmp_workspace, src, "d", user="t")
    src.write_text(json.dumps([{"instruction": "c", "output": "d"}]))
    import_file(tmp_workspace, src, "d", user="t")
    with Store(tmp_workspace) as st:
        V.tag(st, "d", "release", 2, user="t")
        V.tag(st, "d", "release", 2, user="t")          # same place: fine
        with pytest.raises(Conflict, match="already names d v2; pass --force"):
            V.tag(st, "d", "release", 1, user="t")
        assert V.tag(st, "d", "release", 1, user="t", force=True).number == 1


def run_wb(ws, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(ws), *args],
                          capture_output=True, text=True)


def test_cli_missing_file_and_missing_workspace_are_one_line_errors(tmp_path):
    ws = tmp_path / "nows"
    r = run_wb(ws, "import", str(tmp_path / "nope.jsonl"), "--dataset", "x")
    assert r.returncode == 1 and "nope.jsonl: no such file or folder" in r.stderr and "Traceback" not in r.stderr
    r = run_wb(ws, "datasets")
    assert r.returncode == 1 and "no workspace at" in r.stderr and "wb init" in r.stderr
    assert not ws.exists()   # reading never creates a workspace


def test_stats_count_prompt_only_conversations(tmp_workspace, tmp_path):
    import_file(tmp_workspace, conv_file(tmp_path), "c", user="t")
    from pipelines.catalog import version_stats
    s = version_stats(tmp_workspace, "c")
    assert (s["prompt_only_conversations"], s["conversations_starting_with_assistant"]) == (1, 0)
    assert s["turns_per_conversation_mean"] == round((2 + 5 + 3) / 3, 2)
