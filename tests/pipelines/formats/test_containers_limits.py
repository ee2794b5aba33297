"""Imports that never crash: parser limits as per-row errors, sniffed CSV dialects and
encodings, the summary of a file in which no record parses, and content parts kept."""
from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datastore import FormatError, Store
from datastore import versions as V
from pipelines.formats import MAX_WARNINGS_KEPT, export_version, import_file  # noqa: F401
from pipelines.formats import containers as C
from pipelines.workspace import quarantined

GOOD = [{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(4)]
DEPTH = 100_000


def _deep(depth: int = DEPTH) -> str:
    return '{"instruction": "deep", "output": "x", "meta": ' + "[" * depth + "]" * depth + "}"


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _wb(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(ws), *args],
                          capture_output=True, text=True, env=env)


def _samples(ws, dataset):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, dataset, None)))


def test_cli_deep_record_is_quarantined_with_its_line_or_one_line_error(tmp_workspace, tmp_path):
    lines = [json.dumps(GOOD[0]), json.dumps(GOOD[1]), _deep(), json.dumps(GOOD[2])]
    src = _jsonl(tmp_path / "deep.jsonl", lines)
    r = _wb(tmp_workspace, "import", str(src), "--dataset", "d")
    assert r.returncode != 0
    assert "Traceback" not in r.stdout + r.stderr
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "deep.jsonl" in msg and "line 3" in msg and "field 'meta'" in msg and "nested deeper than" in msg

    r = _wb(tmp_workspace, "import", str(src), "--dataset", "d", "--quarantine")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "imported 3 samples" in r.stdout and "1 quarantined" in r.stdout
    q = quarantined(tmp_workspace, "d")
    assert [(x["line"], x["row"], x["field"]) for x in q] == [(3, 3, "meta")]
    assert q[0]["raw"] == lines[2]  # kept whole, to fix and import again
    assert [s.instruction for s in _samples(tmp_workspace, "d")] == ["Say 0.", "Say 1.", "Say 2."]


def test_deep_record_in_a_json_array_is_a_per_row_error(tmp_workspace, tmp_path):
    src = tmp_path / "deep.json"
    src.write_text("[\n" + json.dumps(GOOD[0]) + ",\n" + _deep() + ",\n" + json.dumps(GOOD[1]) + "\n]\n",
                   encoding="utf-8")
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t")
    assert (e.value.row, e.value.line, e.value.field) == (2, 3, "meta")
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (2, 1)


def test_nesting_just_over_the_limit_parses_in_json_but_is_refused(tmp_workspace, tmp_path):
    # deep enough to break recursive walks later, shallow enough for json.loads
    src = _jsonl(tmp_path / "d.jsonl", [json.dumps(GOOD[0]), _deep(C.MAX_NESTING)])
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (1, 1)
    assert quarantined(tmp_workspace, "d")[0]["field"] == "meta"
    ok = _jsonl(tmp_path / "ok.jsonl", [_deep(C.MAX_NESTING - 2)])
    assert import_file(tmp_workspace, ok, "ok", user="t").imported == 1


@pytest.mark.parametrize("name", ["n.jsonl", "n.json"])
def test_an_integer_too_long_for_python_is_a_per_row_error(tmp_workspace, tmp_path, name):
    huge = '{"instruction": "big", "output": "x", "n": 1' + "0" * 5000 + "}"
    src = tmp_path / name
    recs = [json.dumps(GOOD[0]), huge, json.dumps(GOOD[1])]
    src.write_text("\n".join(recs) + "\n" if name.endswith("l") else "[\n" + ",\n".join(recs) + "\n]\n",
                   encoding="utf-8")
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (2, 1)
    q = quarantined(tmp_workspace, "d")[0]
    assert (q["row"], q["line"]) == (2, 2 if name.endswith("l") else 3) and "number too long" in q["reason"]


def test_a_line_that_is_not_utf8_is_a_per_row_error(tmp_workspace, tmp_path):
    src = tmp_path / "enc.jsonl"
    src.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n'
                    + json.dumps(GOOD[1]).encode() + b"\n")
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (2, 1)
    q = quarantined(tmp_workspace, "d")[0]
    assert q["line"] == 2 and "not valid UTF-8" in q["reason"]


def test_no_record_parses_names_the_first_three_problems(tmp_workspace, tmp_path):
    src = _jsonl(tmp_path / "bad.jsonl", ['{"instruction": 1, "output": "a"}', '{"output": "b"', "[1, 2]",
                                          '{"instruction": "x"}'])
    for quarantine in (False, True):
        with pytest.raises(FormatError) as e:
            import_file(tmp_workspace, src, "d", user="t", quarantine=quarantine)
        msg = str(e.value)
        assert "no record parses (4 bad" in msg
        assert "line 1, field 'instruction'" in msg and "line 2: not valid JSON" in msg
        assert "line 3: a record must be a JSON object" in msg and "line 4" not in msg
    all_syntax = _jsonl(tmp_path / "syntax.jsonl", ['{"instruction": ', "{x", "nope", _deep()])
    r = _wb(tmp_workspace, "import", str(all_syntax), "--dataset", "d")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no record parses (4 bad" in r.stderr and "line 3" in r.stderr and "line 4" not in r.stderr


ROWS = [["instruction", "input", "output"], ["Split a; b", "x, y", 'He said "hi"; then left'],
        ["Second", "", "two\nlines"]]


def _csv_text(delim: str) -> str:
    import csv
    import io
    buf = io.StringIO()
    csv.writer(buf, delimiter=delim, lineterminator="\r\n").writerows(ROWS)
    return buf.getvalue()


@pytest.mark.parametrize("delim,encoding", [(",", "utf-8"), (";", "utf-8"), ("\t", "utf-8"),
                                            (";", "utf-8-sig"), ("\t", "utf-16"), (",", "utf-8-sig")])
def test_csv_delimiter_quoting_and_encoding_are_sniffed(tmp_workspace, tmp_path, delim, encoding):
    src = tmp_path / "t.csv"
    src.write_bytes(_csv_text(delim).encode(encoding))
    rep = import_file(tmp_workspace, src, "d", user="t")
    assert (rep.container, rep.imported) == ("csv", 2)
    assert rep.dialect == {"encoding": encoding, "delimiter": delim, "quotechar": '"'}
    got = [(s.instruction, s.input, s.output) for s in _samples(tmp_workspace, "d")]
    assert got == [tuple(r) for r in ROWS[1:]]


def test_delimiter_option_overrides_the_sniffer(tmp_workspace, tmp_path):
    src = tmp_path / "pipe.csv"
    src.write_text("instruction|output\nA, b; c|1\nD|2\n", encoding="utf-8")
    r = _wb(tmp_workspace, "import", str(src), "--dataset", "d", "--delimiter", "|")
    assert r.returncode == 0, r.stderr
    assert "imported 2 samples" in r.stdout and "delimiter '|'" in r.stdout
    assert [(s.instruction, s.output) for s in _samples(tmp_workspace, "d")] == [("A, b; c", "1"), ("D", "2")]
    tsv = tmp_path / "t.txt"
    tsv.write_text("instruction\toutput\nA;B;C\t1\n", encoding="utf-8")
    rep = import_file(tmp_workspace, tsv, "t", user="t", delimiter="\t")
    assert rep.dialect["delimiter"] == "\t" and _samples(tmp_workspace, "t")[0].instruction == "A;B;C"
    r = _wb(tmp_workspace, "import", str(src), "--dataset", "e", "--delimiter", "||")
    assert r.returncode == 1 and "--delimiter takes one character" in r.stderr


def test_csv_cell_over_the_csv_module_default_limit_imports(tmp_workspace, tmp_path):
    big = "x" * (200 << 10)  # csv.field_size_limit() defaults to 128 KiB
    src = tmp_path / "big.csv"
    src.write_text(f'instruction,output\nshort,"{big}"\n', encoding="utf-8")
    import_file(tmp_workspace, src, "d", user="t")
    assert _samples(tmp_workspace, "d")[0].output == big


def test_csv_row_with_wrong_cell_count_names_the_delimiter(tmp_workspace, tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("instruction;output\na;1\nb;2;3\nc;3\n", encoding="utf-8")
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (2, 1)
    q = quarantined(tmp_workspace, "d")[0]
    assert q["line"] == 3 and "3 cells but the header has 2" in q["reason"] and "';'" in q["reason"]


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}


def test_image_and_audio_parts_are_kept_through_import_and_export(tmp_workspace, tmp_path):
    recs = [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture and this clip?"}, IMAGE, AUDIO]},
        {"role": "assistant", "content": "A cat, and a meow."}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    src = _jsonl(tmp_path / "mm.jsonl", [json.dumps(r) for r in recs])
    rep = import_file(tmp_workspace, src, "mm", user="t")
    assert rep.imported == 2
    assert _samples(tmp_workspace, "mm")[0].messages[0]["content"][1:] == [IMAGE, AUDIO]
    for name in ("out.jsonl", "out.json"):
        out = tmp_path / name
        export_version(tmp_workspace, "mm", None, "messages", out, card=False)
        assert [r.value for r in C.read_records(out, C.sniff(out))] == recs


def test_first_line_problems_are_reported_per_line(tmp_workspace, tmp_path):
    """An over-long integer on line 1, or a .jsonl file whose lines are none of them JSON: the
    per-line errors (file and line), not an "unexpected ValueError" or a CSV-header guess."""
    huge = '{"instruction": "big", "output": "x", "n": 1' + "0" * 5000 + "}"
    src = _jsonl(tmp_path / "first.jsonl", [huge, json.dumps(GOOD[0])])
    rep = import_file(tmp_workspace, src, "d", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (1, 1)
    assert quarantined(tmp_workspace, "d")[0]["line"] == 1
    r = _wb(tmp_workspace, "import", str(_jsonl(tmp_path / "one.jsonl", [huge])), "--dataset", "e")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "unexpected" not in r.stderr
    assert "one.jsonl, line 1" in r.stderr and "number too long" in r.stderr
    bad = _jsonl(tmp_path / "none.jsonl", ["not json", "{broken", "[1, 2"])
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, bad, "f", user="t")
    msg = str(e.value)
    assert "no record parses (3 bad" in msg and "line 1: not valid JSON" in msg and "line 3" in msg
