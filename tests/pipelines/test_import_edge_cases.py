"""Bad input loses nothing and explains itself, each case with its
exact expected result."""
import json
import subprocess
import sys

import pytest

from datastore import FormatError, Store
from datastore import versions as V
from pipelines.formats import export_version, import_file
from pipelines.workspace import quarantined


def write(p, text, encoding="utf-8"):
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def samples(ws, name="d"):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, name)))


def test_alpaca_input_missing_null_empty_whitespace(tmp_workspace, tmp_path):
    recs = [{"instruction": "A", "output": "1"},
            {"instruction": "B", "input": None, "output": "2"},
            {"instruction": "C", "input": "", "output": "3"},
            {"instruction": "D", "input": "   ", "output": "4"},
            {"instruction": "E", "input": "ctx", "output": "5"}]
    src = write(tmp_path / "a.json", json.dumps(recs))
    rep = import_file(tmp_workspace, src, "d", user="t")
    assert (rep.imported, rep.trainable) == (5, 5)
    users = [s.turns()[0]["content"] for s in samples(tmp_workspace)]
    assert users == ["A", "B", "C", "D", "E\n\nctx"]   # the first four mean "no input"
    out = tmp_path / "out.json"
    export_version(tmp_workspace, "d", None, "alpaca", out)
    assert json.loads(out.read_text()) == recs
    assert [list(r) for r in json.loads(out.read_text())] == [list(r) for r in recs]


def test_alpaca_row_without_output_is_an_error_naming_the_row(tmp_workspace, tmp_path):
    src = write(tmp_path / "a.jsonl", '{"instruction": "A", "output": "1"}\n{"instruction": "B", "output": "2"}\n'
                '{"instruction": "C", "input": ""}\n')
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t")
    assert (e.value.line, e.value.field) == (3, "output")
    assert str(e.value) == f"{src}, line 3, field 'output': missing required field 'output'"
    with Store(tmp_workspace) as st:  # atomic: nothing written
        assert V.list_datasets(st) == []


def test_sharegpt_problems_are_kept_unchanged_with_warnings(tmp_workspace, tmp_path):
    def conv(*turns):
        return {"conversations": [{"from": f, "value": v} for f, v in turns]}
    recs = [conv(("gpt", "hello"), ("human", "hi"), ("gpt", "yes")),          # starts with assistant
            conv(("human", "a"), ("human", "b"), ("gpt", "c")),               # consecutive same role
            conv(("human", "a"), ("system", "s"), ("gpt", "c")),              # system in the middle
            conv(("human", "a"), ("gpt", "b"), ("human", "c")),               # ends on user: a prompt
            conv(("system", "s"), ("human", "a"), ("gpt", "b"))]              # fine
    src = write(tmp_path / "s.json", json.dumps(recs))
    rep = import_file(tmp_workspace, src, "d", user="t")
    assert rep.imported == 5 and rep.trainable == 1 and rep.quarantined == 0
    assert [(w["row"], w["message"]) for w in rep.warnings] == [
        (1, "starts with the assistant at message 0"),
        (2, "two consecutive 'user' turns at messages 0 and 1"),
        (3, "system turn in the middle at message 1"),
        (4, "ends on a user turn at message 2 (prompt only)"),
    ]
    got = [[(m["role"], m["content"]) for m in s.messages] for s in samples(tmp_workspace)]
    assert got[0] == [("assistant", "hello"), ("user", "hi"), ("assistant", "yes")]   # never reordered
    out = tmp_path / "out.json"
    export_version(tmp_workspace, "d", None, "sharegpt", out)
    assert json.loads(out.read_text()) == recs
    # merging consecutive same-role turns is an explicit option
    rep2 = import_file(tmp_workspace, src, "merged", user="t", merge_same_role=True)
    merged = samples(tmp_workspace, "merged")[1].messages
    assert [(m["role"], m["content"]) for m in merged] == [("user", "a\n\nb"), ("assistant", "c")]
    assert rep2.trainable == 2


def test_bom_and_array_vs_lines_detected_by_content(tmp_workspace, tmp_path):
    rec = {"instruction": "A", "input": "", "output": "1"}
    bom = write(tmp_path / "bom.jsonl", "\ufeff" + json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    arr = write(tmp_path / "array.jsonl", json.dumps([rec, rec, rec]))
    lines = write(tmp_path / "lines.json", json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    got = [(r.container, r.imported) for r in (
        import_file(tmp_workspace, bom, "a", user="t"), import_file(tmp_workspace, arr, "b", user="t"),
        import_file(tmp_workspace, lines, "c", user="t"))]
    assert got == [("jsonl", 2), ("json", 3), ("jsonl", 2)]


def test_text_stays_text(tmp_workspace, tmp_path):
    recs = [{"id": "42", "instruction": "42", "output": "x"}, {"id": 42, "instruction": "b", "output": "y"}]
    src = write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n")
    import_file(tmp_workspace, src, "d", user="t")
    s = samples(tmp_workspace)
    assert s[0].instruction == "42" and s[0].extra == {"id": "42"} and s[1].extra == {"id": 42}
    out = tmp_path / "o.jsonl"
    export_version(tmp_workspace, "d", None, "alpaca", out)
    back = [json.loads(x) for x in out.read_text().splitlines()]
    assert back == recs and type(back[0]["id"]) is str and type(back[1]["id"]) is int
    bad = write(tmp_path / "bad.jsonl", '{"instruction": 42, "output": "x"}\n')
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, bad, "e", user="t")
    assert e.value.field == "instruction" and "must be text, got int 42" in str(e.value)


def test_csv_quoted_newlines_doubled_quotes_crlf_empty_input(tmp_workspace, tmp_path):
    text = ('instruction,input,output\r\n'
            '"Say ""hi""\r\nplease",,"line1\r\nline2"\r\n'
            'Plain,ctx,"a, b"\r\n')
    src = write(tmp_path / "t.csv", text)
    rep = import_file(tmp_workspace, src, "d", user="t")
    assert (rep.container, rep.imported) == ("csv", 2)
    s = samples(tmp_workspace)
    assert (s[0].instruction, s[0].input, s[0].output) == ('Say "hi"\r\nplease', "", "line1\r\nline2")
    assert s[0].turns()[0]["content"] == 'Say "hi"\r\nplease'   # empty input = no input
    assert (s[1].instruction, s[1].input, s[1].output) == ("Plain", "ctx", "a, b")
    out = tmp_path / "o.csv"
    export_version(tmp_workspace, "d", None, "csv", out)
    import csv
    with open(out, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["instruction", "input", "output"],
                                       ['Say "hi"\r\nplease', "", "line1\r\nline2"], ["Plain", "ctx", "a, b"]]


def test_invalid_json_names_the_line(tmp_workspace, tmp_path):
    src = write(tmp_path / "bad.json", '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",, }\n]\n')
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t")
    assert e.value.line == 3 and "not valid JSON" in str(e.value)


def test_jsonl_bad_line_atomic_or_quarantined(tmp_workspace, tmp_path):
    src = write(tmp_path / "q.jsonl", '{"instruction": "a", "output": "1"}\n{"instruction": "b", "output": \n'
                '{"instruction": "c"}\n{"instruction": "d", "output": "4"}\n')
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t")
    assert e.value.line == 2 and "1 more bad record" in str(e.value)
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (2, 2)
    q = quarantined(tmp_workspace, "d")
    assert [(r["line"], r["field"]) for r in q] == [(2, None), (3, "output")]
    assert q[1]["reason"] == "missing required field 'output'"
    assert q[0]["raw"] == '{"instruction": "b", "output": '
    assert [s.instruction for s in samples(tmp_workspace)] == ["a", "d"]


@pytest.mark.parametrize("content,reason", [
    ("", "the file is empty"),
    ("\ufeff  \n", "the file is empty"),
    ("[]", "contains 0 records; nothing to import"),
    ("instruction,input,output\r\n", "contains 0 records; nothing to import"),
])
def test_empty_file_and_zero_rows(tmp_workspace, tmp_path, content, reason):
    src = write(tmp_path / "e.json", content)
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t")
    assert e.value.reason == reason


def test_cli_error_is_one_line_on_stderr_with_nonzero_exit(tmp_workspace, tmp_path):
    src = write(tmp_path / "bad.jsonl", '{"instruction": "a", "output": "1"}\n{"instruction": "b"}\n')
    r = subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(tmp_workspace), "import", str(src),
                        "--dataset", "d"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "line 2, field 'output': missing required field 'output'" in r.stderr.replace("\n", "")


def test_any_table_with_a_column_mapping(tmp_workspace, tmp_path):
    """OpenOrca's columns map by synonym; an explicit mapping wins; unmapped columns stay."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [{"id": "niv.1", "system_prompt": "You are helpful.", "question": "2+2?", "response": "4"},
            {"id": "niv.2", "system_prompt": "", "question": "Capital of France?", "response": "Paris"}]
    src = tmp_path / "orca.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    rep = import_file(tmp_workspace, src, "orca", user="t")
    assert (rep.container, rep.schema, rep.imported, rep.trainable) == ("parquet", "alpaca", 2, 2)
    s = samples(tmp_workspace, "orca")
    assert (s[0].system, s[0].instruction, s[0].output, s[0].extra) == ("You are helpful.", "2+2?", "4", {"id": "niv.1"})
    assert s[0].turns() == [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "2+2?"},
                            {"role": "assistant", "content": "4"}]
    out = tmp_path / "back.parquet"
    export_version(tmp_workspace, "orca", None, "parquet", out)
    assert pq.read_table(out).to_pylist() == rows
    custom = write(tmp_path / "c.jsonl", json.dumps({"q": "hi", "a": "hello", "prompt": "ignored"}) + "\n")
    import_file(tmp_workspace, custom, "custom", user="t", mapping={"instruction": "q", "output": "a"})
    c = samples(tmp_workspace, "custom")[0]
    assert (c.instruction, c.output, c.extra) == ("hi", "hello", {"prompt": "ignored"})


def test_cli_render_prints_the_exact_template_text(tmp_workspace, tmp_path):
    src = write(tmp_path / "c.json", json.dumps([{"conversations": [
        {"from": "human", "value": "Hi " + "x" * 150}, {"from": "gpt", "value": "Hello"}]}]))
    import_file(tmp_workspace, src, "c", user="t")
    r = subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(tmp_workspace), "render", "--dataset", "c",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = json.loads(r.stdout)["samples"][0]["text"]
    assert text == f"<|im_start|>user\nHi {'x' * 150}<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
    r = subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(tmp_workspace), "render", "--dataset", "c"],
                       capture_output=True, text=True)
    assert text in r.stdout   # printed without wrapping
