"""``--map`` onto metadata columns: the value lands in its column (validated through the
vocabulary), an unknown target is refused before anything is written, a bad value is a
per-row error, and the export in the file's own format gives the file back byte for byte."""
import csv
import json

import pytest

from datastore import FormatError, Store, WorkbenchError
from datastore import quarantine as Q
from datastore import versions as V
from pipelines.formats import export_version, import_file
from tests.conftest import shared_file

ROWS = [
    {"instruction": "Add 2 and 3.", "input": "", "output": "5", "difficulty": "easy", "quality_score": 0.9,
     "origin": "handwritten", "tags": ["math", "arith"]},
    {"instruction": "Prove there are infinitely many primes.", "input": "", "output": "Assume finitely many...",
     "difficulty": "hard", "quality_score": 1, "origin": "textbook", "tags": None},
    {"instruction": "Name a colour.", "input": "", "output": "Red", "difficulty": None, "quality_score": 0.25,
     "origin": "handwritten", "tags": []},
]
MAP = {"difficulty": "difficulty", "quality_score": "quality_score", "source": "origin", "tags": "tags"}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _samples(ws, ds="d"):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, ds, None)))


def test_mapped_metadata_lands_in_columns_and_round_trips(tmp_workspace, tmp_path):
    src = tmp_path / "m.jsonl"
    _write_jsonl(src, ROWS)
    rep = import_file(tmp_workspace, src, "d", user="t", mapping=MAP)
    assert rep.imported == 3 and rep.quarantined == 0
    s = _samples(tmp_workspace)
    assert [x.difficulty for x in s] == ["easy", "hard", None]
    assert [x.quality_score for x in s] == [0.9, 1.0, 0.25]
    assert [x.source for x in s] == ["handwritten", "textbook", "handwritten"]
    assert s[0].tags == ["math", "arith"] and s[1].tags is None
    # mapped values are not duplicated in extra; a null stays there so it comes back as null
    assert "difficulty" not in (s[0].extra or {}) and "quality_score" not in (s[0].extra or {})
    assert s[2].extra == {"difficulty": None}
    out = tmp_path / "back.jsonl"
    export_version(tmp_workspace, "d", None, "alpaca", out, card=False)
    assert out.read_bytes() == src.read_bytes()


def test_csv_text_values_round_trip(tmp_workspace, tmp_path):
    src = tmp_path / "m.csv"
    # RFC 4180 line ends, as the CSV export writes them
    src.write_bytes(b"instruction,output,difficulty,quality_score\r\nSay hi,hi,medium,0.80\r\nSay bye,bye,easy,1\r\n")
    import_file(tmp_workspace, src, "d", user="t", mapping={"difficulty": "difficulty", "quality_score": "quality_score"})
    s = _samples(tmp_workspace)
    assert [(x.difficulty, x.quality_score) for x in s] == [("medium", 0.8), ("easy", 1.0)]
    out = tmp_path / "back.csv"
    export_version(tmp_workspace, "d", None, "csv", out, card=False)
    assert out.read_bytes() == src.read_bytes()


def test_real_xstest_type_maps_to_task_type(tmp_workspace, tmp_path):
    src = shared_file("xstest/xstest_prompts.csv")
    with open(src, newline="", encoding="utf-8") as f:
        types = [r["type"] for r in csv.DictReader(f)]
    rep = import_file(tmp_workspace, src, "x", user="t", mapping={"task_type": "type"})
    assert rep.imported == len(types) == 450
    s = _samples(tmp_workspace, "x")
    assert [x.task_type for x in s] == types
    assert s[0].task_type == "homonyms" and "type" not in s[0].extra
    out = tmp_path / "back.csv"
    export_version(tmp_workspace, "x", None, "csv", out, card=False)
    # same header, rows and cells (the export ends lines with CRLF, as RFC 4180 says; the file has LF)
    assert out.read_bytes().replace(b"\r\n", b"\n") == src.read_bytes()


def test_unknown_target_is_refused_before_anything(tmp_workspace, tmp_path):
    src = tmp_path / "m.jsonl"
    _write_jsonl(src, ROWS)
    with pytest.raises(WorkbenchError) as e:
        import_file(tmp_workspace, src, "d", user="t", mapping={"difficulty": "difficulty", "hardness": "difficulty"})
    msg = str(e.value)
    assert "'hardness'" in msg and "quality_score" in msg and "instruction" in msg
    assert not any(tmp_workspace.iterdir())  # no store was even opened


def test_bad_value_is_a_row_error_and_quarantinable(tmp_workspace, tmp_path):
    rows = [dict(ROWS[0]), dict(ROWS[1], quality_score=4), dict(ROWS[2], difficulty="trivial")]
    src = tmp_path / "m.jsonl"
    _write_jsonl(src, rows)
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "d", user="t", mapping=MAP)
    assert e.value.row == 2 and e.value.field == "quality_score"
    assert "from 0 to 1" in str(e.value) and "1 more bad record" in str(e.value)
    rep = import_file(tmp_workspace, src, "d", user="t", mapping=MAP, quarantine=True)
    assert rep.imported == 1 and rep.quarantined == 2
    with Store(tmp_workspace) as st:
        items = Q.list_rows(st, "d")
    assert [(q["row"], q["field"]) for q in items] == [(2, "quality_score"), (3, "difficulty")]
    assert "'trivial' is not one of easy, medium, hard" in items[1]["reason"]


def test_large_file_maps_like_a_small_one(tmp_workspace, tmp_path):
    """Above the bulk path's 1 MB threshold a mapped import gives the same columns."""
    from pipelines.formats.fast_alpaca import MIN_BYTES
    diffs = ("easy", "medium", "hard")
    rows = [{"instruction": f"Question {i} " + "x" * 200, "input": "", "output": f"Answer {i}.",
             "difficulty": diffs[i % 3]} for i in range(6000)]
    src = tmp_path / "big.jsonl"
    _write_jsonl(src, rows)
    assert src.stat().st_size > MIN_BYTES
    rep = import_file(tmp_workspace, src, "big", user="t", mapping={"difficulty": "difficulty"})
    assert rep.imported == 6000
    s = _samples(tmp_workspace, "big")
    assert [x.difficulty for x in s[:4]] == ["easy", "medium", "hard", "easy"] and s[5999].difficulty == "hard"
    assert all(x.extra is None for x in s)
    out = tmp_path / "back.jsonl"
    export_version(tmp_workspace, "big", None, "alpaca", out, card=False)
    assert out.read_bytes() == src.read_bytes()
