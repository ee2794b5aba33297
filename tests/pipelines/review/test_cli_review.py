"""``wb adjudicate show`` / ``wb annotate submit`` as a user runs them: readable output for a
sample that its own adjudication removed (no traceback), errors as one line on stderr, and a
submit acknowledgement without the global annotation id."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipelines.review import adjudicate
from tests.pipelines.review.helpers import disagreement

REPO = Path(__file__).resolve().parents[3]


def _wb(ws: Path, user: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "--workspace", str(ws),
                           "--user", user, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_show_a_sample_removed_by_its_own_adjudication_and_submit_ack(tmp_path):
    ws = disagreement(tmp_path / "ws", "rv", n=3, sample=2,
                      answers=({"decision": "accept", "rating": 4}, {"decision": "reject", "rating": 1}))
    bobs = next(a for a in adjudicate.item_answers(ws, "dora", "rv", 2)["annotations"] if a["annotator"] == "bob")
    r = adjudicate.adjudicate(ws, "dora", "rv", 2, pick=bobs["annotation_id"], note="answer is wrong")
    assert r["version"] == 2

    shown = _wb(ws, "dora", "adjudicate", "show", "--task", "rv", "--sample", "2")
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr and shown.stderr == ""
    lines = shown.stdout.splitlines()
    assert lines[0] == "sample #2 was removed from dataset 'qa' in v2; its last revision:"
    assert "user: Question 2?" in lines and "assistant: Answer 2." in lines
    assert any(ln.startswith(f"#{bobs['annotation_id']} bob: ") and '"reject"' in ln for ln in lines)
    assert lines[-1] == (f"adjudicated by dora: reject, picked #{bobs['annotation_id']} (v2): answer is wrong")

    js = _wb(ws, "dora", "adjudicate", "show", "--task", "rv", "--sample", "2", "--json")
    assert js.returncode == 0, js.stderr
    d = json.loads(js.stdout)
    assert d["sample"] is None and d["removed_in"] == 2 and d["last_revision"]["instruction"] == "Question 2?"
    assert d["adjudications"][0]["note"] == "answer is wrong"

    missing = _wb(ws, "dora", "adjudicate", "show", "--task", "rv", "--sample", "99")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().count("\n") == 0 and "sample 99 is not an item" in missing.stderr

    sub = _wb(ws, "ann", "annotate", "submit", "--task", "rv", "--sample", "1", "--decision", "accept",
              "--submit-id", "ann-1")
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == "sample #1 saved: 2 of 3 done, 1 to go (submit id ann-1)"
    again = _wb(ws, "ann", "annotate", "submit", "--task", "rv", "--sample", "1", "--decision", "accept",
                "--submit-id", "ann-1")
    assert again.stdout.strip() == "sample #1 was already saved: 2 of 3 done, 1 to go (submit id ann-1)"
