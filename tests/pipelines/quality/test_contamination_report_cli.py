"""Evaluation sets and contamination, the self-contained HTML report, and the wb commands."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from datastore.errors import Conflict, FormatError
from pipelines.quality import contamination as C
from pipelines.quality import report

EVAL_ITEM = "Give me three tips for sleeping well tonight please"  # 9 words


def test_contamination_lists_overlapping_samples(labelled_ws, tmp_path):
    f = tmp_path / "eval.jsonl"
    f.write_text(json.dumps({"prompt": EVAL_ITEM}) + "\n" + json.dumps({"question": "short one"}) + "\n")
    r = C.register_eval_set(labelled_ws, "mix", 1, "sleep-eval", f, user=None)
    assert r == {"eval_set_id": 1, "name": "sleep-eval", "items": 2, "version": 1}
    with pytest.raises(Conflict):
        C.register_eval_set(labelled_ws, "mix", 1, "sleep-eval", texts=["x"], user=None)
    res = C.check(labelled_ws, "mix", n=6)
    # samples 7 and 8 share "give me three tips for sleeping" (6 words) with the item
    assert [o["sample_id"] for o in res["overlapping"]] == [7, 8]
    assert res["contaminated"] == 2 and res["rate"] == round(2 / 12, 6)
    assert res["sets"][0]["short_items"] == 1
    assert C.check(labelled_ws, "mix", n=13)["contaminated"] == 0  # the item is shorter than 13 words


def test_eval_file_errors_name_the_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok"}\n{"label": 1}\n')
    with pytest.raises(FormatError, match="line 2"):
        C.read_items(f)


def test_report_is_self_contained(labelled_ws, tmp_path):
    p = report.write_report(labelled_ws, "mix", None, tmp_path / "r.html", sampled=False)
    html = p.read_text()
    assert "Quality report: mix v1" in html
    assert html.count("Plotly.newPlot") >= 8  # charts embedded
    assert "plotly.js v" in html or "plotly" in html[:6_000_000]
    assert not re.search(r"<script[^>]+src=", html)  # no external script
    assert not re.search(r"<link[^>]+href=", html)  # no external stylesheet or font
    assert "Refusals by expected behaviour" in html


@pytest.mark.slow  # great-expectations import and a 4.6 MB report (about 20 s here)
def test_cli_quality_report_and_gate(labelled_ws, tmp_path, monkeypatch):
    from app.cli import app
    monkeypatch.setenv("WB_WORKSPACE", str(labelled_ws))
    r = CliRunner().invoke(app, ["quality", "--dataset", "mix", "--no-sample", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["samples"] == 12 and m["refusal"]["should_refuse"]["correct"] == 2
    r = CliRunner().invoke(app, ["report", "--dataset", "mix", "--no-sample", "--out", str(tmp_path / "q.html")])
    assert r.exit_code == 0 and (tmp_path / "q.html").stat().st_size > 1_000_000
    r = CliRunner().invoke(app, ["gate", "init", "--dataset", "mix"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["gate", "run", "--dataset", "mix"])
    assert r.exit_code == 0 and "passed" in r.output  # the labelled data meets the default suite
    r = CliRunner().invoke(app, ["gate", "show", "--dataset", "mix", "--suite"])
    suite = json.loads(r.output)
    for e in suite["expectations"]:
        if e["kwargs"].get("column") == "response_words":
            e["kwargs"]["max_value"] = 8  # sample 4's response has 10 words
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    r = CliRunner().invoke(app, ["gate", "edit", "--dataset", "mix", "--file", str(tmp_path / "suite.json")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["gate", "run", "--dataset", "mix"])
    assert r.exit_code == 1 and "FAIL expect_column_values_to_be_between(response_words)" in r.output
    assert "samples [4]" in r.output
    r = CliRunner().invoke(app, ["gate", "override", "--dataset", "mix", "--reason", "known prompt gaps"])
    assert r.exit_code == 0 and "overridden" in r.output
    r = CliRunner().invoke(app, ["gate", "check", "--dataset", "mix"])
    assert r.exit_code == 0 and "launchable" in r.output
