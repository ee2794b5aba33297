"""``wb prefs import|export`` and ``wb train-dpo`` failure handling through the real CLI entry."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, shared_file


def wb(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(ws), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_prefs_import_export_round_trip(tmp_workspace, tmp_path):
    src = shared_file("sharegpt-openai-samples/llamafactory_dpo_en_demo.json")
    r = wb(tmp_workspace, "prefs", "import", str(src), "-d", "lf", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["format"], info["records"], info["version"]) == ("llamafactory_dpo", 300, 1)
    from datastore import Store
    from datastore import versions as V
    with Store(tmp_workspace, create=False) as st:   # written where --workspace said
        assert V.resolve(st, "lf").content_hash == info["content_hash"]
    out = tmp_path / "lf.json"
    r = wb(tmp_workspace, "prefs", "export", "lf", str(out), "-f", "llamafactory_dpo")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(src.read_text(encoding="utf-8"))
    r = wb(tmp_workspace, "prefs", "export", "lf", str(tmp_path / "p.jsonl"), "--plain")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 300 and all(isinstance(x["prompt"], str) and isinstance(x["chosen"], str) for x in recs)
    assert sum(x["prompt"].startswith("<|im_start|>system") for x in recs) == 80   # system prompts rendered
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "a", "chosen": "b"}]), encoding="utf-8")
    r = wb(tmp_workspace, "prefs", "import", str(bad), "-d", "x")
    assert r.returncode == 1 and "row 1" in r.stderr and "not a preference record" in r.stderr


def test_dpo_process_marks_a_broken_run_failed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps({"stage": "dpo", "datasets": [{"dataset": "p"}]}))
    r = subprocess.run([sys.executable, "-m", "pipelines.preference.dpo", str(run)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no exported data" in r.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "no exported data" in status["error"]
