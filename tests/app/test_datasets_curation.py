"""Datasets page curation: a filter is previewed (counts) before it can be committed, and
the Card tab shows the version's licences with the commercial-use warning."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from datastore import Sample, Store
from datastore import versions as V
from pipelines import catalog

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "app" / "Workbench.py")
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


def _ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    with Store(ws) as st:
        V.commit(st, "d", author="a", message="import", create=True, add=[
            Sample(instruction=f"Question {i}", output=f"Answer {i}", task_type="qa" if i % 2 else "code",
                   license="cc-by-nc-4.0" if i < 3 else "mit").to_row() for i in range(10)])
    return ws


def _page(ws: Path, view: str) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.session_state["workspace"] = str(ws)
    at.run()
    at.switch_page("pages/1_Datasets.py").run()
    at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_filter_preview_then_commit(tmp_path):
    ws = _ws(tmp_path)
    at = _page(ws, "Curate")
    assert _button(at, "Commit").disabled
    at.text_input(key="f_where").set_value("task_type = 'qa'").run()
    _button(at, "Preview").click().run()
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"source": "10", "kept": "5", "removed": "5"}
    assert catalog.get_version(ws, "d").number == 1      # nothing committed by a preview
    _button(at, "Commit").click().run()
    v = catalog.get_version(ws, "d")
    assert v.number == 2 and v.n_samples == 5 and v.message == "filter d v1 where (task_type = 'qa'): kept 5 of 10"
    assert any("committed d v2" in s.value for s in at.success)


def test_card_tab_lists_licences_and_warns(tmp_path):
    at = _page(_ws(tmp_path), "Card")
    assert any("not for commercial use: 3 sample(s) under cc-by-nc-4.0" in w.value for w in at.warning)
    df = at.dataframe[-1].value
    assert list(df["licence"]) == ["mit", "cc-by-nc-4.0"] and list(df["samples"]) == [7, 3]
