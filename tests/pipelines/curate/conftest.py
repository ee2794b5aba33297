"""A small workspace with one Alpaca import (licence from a dataset card) for curation tests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.formats import import_file

SECRET = "My name is Zelda Quixotic-Personal and I live at 7 Hidden Road, Springfield"


def make_records(n: int = 20) -> list[dict]:
    recs = [{"instruction": f"Question number {i} about {'math' if i % 2 else 'art'}", "input": "",
             "output": " ".join(["word"] * (i % 5 + 1)) + f" answer {i}"} for i in range(n)]
    recs[3]["output"] = SECRET
    recs.append(dict(recs[0]))  # an exact duplicate of the first record
    return recs


@pytest.fixture
def ws(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.json").write_text(json.dumps(make_records()), encoding="utf-8")
    (src / "README.md").write_text("---\nlicense: cc-by-nc-4.0\npretty_name: Test\n---\n# Test\n", encoding="utf-8")
    ws = tmp_path / "ws"
    import_file(ws, src / "data.json", "d", user="local-admin")
    return ws
