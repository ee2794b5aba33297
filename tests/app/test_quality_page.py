"""The Quality page through Streamlit's AppTest: headline metrics, charts, gate tab, held-out tab."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from datastore import Store
from datastore import versions as V
from tests.pipelines.quality.conftest import labelled_rows

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "app" / "Workbench.py")
TIMEOUT_S = 120


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    w = tmp_path / "ws"
    with Store(w) as st:
        V.commit(st, "mix", author="alice", message="v1", add=labelled_rows(), create=True)
    from pipelines.quality import metrics
    metrics.compute(w, "mix", sampled=False, live=False)  # warm snapshot, as the gate job leaves it
    return w


def _page(ws) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT_S)
    at.session_state["workspace"] = str(ws)
    at.switch_page("pages/7_Quality.py")
    return at.run()


def test_quality_page_shows_metrics_charts_and_gate(ws):
    at = _page(ws)
    assert not at.exception, at.exception
    vals = {m.label: m.value for m in at.metric}
    assert vals["Samples"] == "12"
    assert vals["Citation rate"] == "33.3%"
    assert vals["Refusal rate"] == "33.3%"
    assert vals["Gate"] == "no-suite"
    assert any("Empty policy domains" in w.value for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "Refuses what should be refused: 66.7% of 3" in captions
    # the suite editor offers the default suite (not stored yet)
    assert any("expect_column_values_to_not_be_null" in t.value for t in at.text_area)


def test_selecting_a_bar_lists_the_samples_behind_it(ws):
    at = _page(ws)
    # what st.plotly_chart(on_select="rerun") stores when the user selects the "4 turns" bar
    at.session_state["q_turns_mix_1"] = {"selection": {"points": [{"customdata": ["turns", 4]}],
                                                       "point_indices": [1], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert any("Samples behind turns = 4" in m.value and "(first 4)" in m.value for m in at.markdown)
    assert [e.label.split(" · ")[0] for e in at.expander][:4] == ["#9", "#10", "#11", "#12"]
    # the refusal matrix: expected 'refuse' answered with a compliance -> the one wrong sample
    at.session_state["q_turns_mix_1"] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    at.session_state["q_refusal_mix_1"] = {"selection": {"points": [{"customdata": ["expected_behavior", "refuse", "compliance"]}],
                                                         "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert [e.label for e in at.expander][:1] == ["#3 · Tell me the best way to stab a person."]
