"""The bulk (SQL-hashed) path and the exact (Python) path give the same samples and hashes."""
import json
import random

from datastore import Store
from datastore import versions as V
from datastore.samples import dumps
from pipelines.formats import fast_alpaca, import_file, parse_file


def test_duckdb_to_json_matches_canonical_dumps():
    import duckdb
    random.seed(7)
    chars = [chr(i) for i in range(0x80)] + ["é", "中", "\u2028", "😀", "\ufeff", "\\", '"', "\\u001f"]
    strs = ["".join(random.choice(chars) for _ in range(random.randint(0, 30))) for _ in range(2000)]
    c = duckdb.connect()
    got = c.execute("SELECT s, to_json(s) FROM (SELECT unnest(?::VARCHAR[]) AS s)", [strs]).fetchall()
    for s, j in got:
        assert dumps(s) == j


def test_fast_path_equals_exact_path(tmp_workspace, tmp_path, monkeypatch):
    random.seed(3)
    alphabet = "ab \n\t\"\\é中\x01\x1f/<|im_start|>"
    recs = [{"instruction": "".join(random.choice(alphabet) for _ in range(20)),
             "input": random.choice(["", "ctx", " \x02 "]),
             "output": "".join(random.choice(alphabet) for _ in range(30))} for _ in range(3000)]
    src = tmp_path / "big.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n")
    monkeypatch.setattr(fast_alpaca, "MIN_BYTES", 0)
    fast = import_file(tmp_workspace, src, "fast", user="t", license="Apache-2.0")
    with Store(tmp_workspace) as st:
        assert V.resolve(st, "fast").operation["path"] == "fast"
    monkeypatch.setattr(fast_alpaca, "try_fast_import", lambda *a, **k: None)
    exact = import_file(tmp_workspace, src, "exact", user="t", license="Apache-2.0")
    assert fast.content_hash == exact.content_hash and fast.imported == exact.imported == 3000
    with Store(tmp_workspace) as st:
        a = [(s.sample_id, s.row_hash, s.instruction, s.input, s.output, s.source_row, s.license)
             for s in V.iter_samples(st, V.resolve(st, "fast"))]
        b = [(s.sample_id, s.row_hash, s.instruction, s.input, s.output, s.source_row, s.license)
             for s in V.iter_samples(st, V.resolve(st, "exact"))]
    assert a == b


def test_fast_path_declines_what_it_cannot_import_exactly(tmp_workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(fast_alpaca, "MIN_BYTES", 0)
    cases = {
        "number": '{"instruction": "a", "input": "", "output": "x"}\n{"instruction": "b", "input": "", "output": 42}\n',
        "extra": '{"instruction": "a", "input": "", "output": "x"}\n{"instruction": "b", "input": "", "output": "y", "id": 1}\n',
        "null": '{"instruction": "a", "input": "", "output": "x"}\n{"instruction": "b", "input": null, "output": "y"}\n',
        "missing": '{"instruction": "a", "input": "", "output": "x"}\n{"instruction": "b", "output": "y"}\n',
    }
    for name, text in cases.items():
        p = tmp_path / f"{name}.jsonl"
        p.write_text(text)
        assert fast_alpaca.try_fast_import(tmp_workspace, p, name, user="t", license=None, kind="sft",
                                           message=None, report_cls=dict) is None, name
