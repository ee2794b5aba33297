"""``wb train`` / ``wb runs`` / ``wb stop`` from the shell: one-line errors, runs found from folders."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _wb(ws, *args, user="cur"):
    env = {**os.environ, "WB_MODEL_CACHE": os.environ.get("WB_MODEL_CACHE", "/tmp/wbcache")}
    return subprocess.run([sys.executable, "-m", "app.cli", "-w", str(ws), "-u", user, *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_refuses_and_lists(demo_ws, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: lora\nlora_r: 0\ndatasets:\n  - {dataset: demo-sft}\n")
    r = _wb(demo_ws, "train", "--config", str(bad))
    assert r.returncode == 1
    assert "training config refused: lora_r: Input should be greater than or equal to 1 (got 0)" in r.stderr
    assert "Traceback" not in r.stderr
    r = _wb(demo_ws, "train", "--config", str(bad), user="ann")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = _wb(demo_ws, "runs", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    from pipelines.train import runs as R
    assert [x["run_id"] for x in listed] == [x["run_id"] for x in R.list_runs(demo_ws)]
    r = _wb(demo_ws, "stop", "no-such-run")
    assert r.returncode == 1 and "no training run 'no-such-run'" in r.stderr
