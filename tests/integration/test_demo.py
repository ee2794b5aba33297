"""`wb demo --small` end to end on real data, with no network for
the whole process tree (`unshare -rn`), and the demo's checks read back from what it wrote."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datastore import Store
from datastore import audit
from datastore import versions as V
from pipelines.models import ensure_base_model

REPO = Path(__file__).resolve().parents[2]


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rn", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_wb_demo_small_offline(tmp_path):
    if not _unshare_works():
        pytest.skip("unshare -rn (a network namespace) is not permitted on this machine")
    ensure_base_model()  # the one-time conversion happens at install (make), not here
    ws = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(["unshare", "-rn", sys.executable, "-m", "app.cli", "--workspace", str(ws), "demo", "--small"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for step in ("[1] imported", "[3] generated", "[4] committed", "accepted", "[6] rendered",
                 "2 sample(s) with an empty answer", "preflight sft-train v3", "policy drop: dropped", "result: ok", "[7] training LoRA",
                 "[8] reloaded the adapter", "demo finished"):
        assert step in out, step
    run_dir = next((ws / "runs").iterdir())
    summary = json.loads((run_dir / "demo_summary.json").read_text())
    assert summary["kept"] >= 5
    assert summary["final_loss"] < summary["first_loss"]
    assert summary["max_abs_diff_trained"] <= 1e-4 and summary["max_abs_diff_base"] > 0
    assert summary["answer"].strip()
    card = json.loads((run_dir / "run_card.json").read_text())
    with Store(ws) as st:
        train = V.resolve(st, "sft-train")
        staged = V.resolve(st, "self-instruct-candidates")
        assert V.get_dataset(st, "self-instruct-candidates").kind == "staging"
        cands = list(V.iter_samples(st, staged))
        merged = [s for s in V.iter_samples(st, train) if s.source == "self-instruct"]
        acts = [(e["user"], e["action"]) for e in audit.entries(st, limit=50)]
    # the run is pinned to the merged version by content hash, with its template and base model
    assert card["datasets"][0]["content_hash"] == train.content_hash == summary["content_hash"]
    assert card["datasets"][0]["version_id"] == train.version_id
    assert card["template"]["name"] == "chatml" and len(card["template"]["sha256"]) == 64
    assert card["base_model"]["name"] == "SmolLM2-135M-Instruct"
    assert len(card["losses"]) == card["config"]["max_steps"]
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    assert (run_dir / "data" / "sft-train.parquet").exists()
    # candidates: committed in staging with lineage, accepted by the demo curator, merged with a parent link
    assert len(cands) == summary["kept"] and all("accepted" in (c.tags or []) for c in cands)
    assert all(c.annotator_ids == ["demo-curator"] for c in cands)
    assert all(len(c.lineage["seed_instructions"]) + len(c.lineage["machine_instructions"]) == 8 for c in cands)
    assert len(merged) == len(cands)
    assert all(m.lineage["parent"]["dataset"] == "self-instruct-candidates" for m in merged)
    assert ("demo-curator", "curation.merge") in acts
