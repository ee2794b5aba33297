"""Runs as processes (item 3), refusals before any process starts (item 8), and what a finished
default LoRA run leaves (items 1, 2, 4, 5): a real 20-step run on the demo data in its own process."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from datastore import PermissionDenied
from datastore.errors import WorkbenchError
from pipelines.train import runs as R
from pipelines.train.config import DatasetRef, TrainConfig
from pipelines.train.validate import ConfigRefused, parse_config, validate_config

THREADS = 1  # 2 shared cores: one torch thread each keeps runs predictable under load
DEMO = [DatasetRef(dataset="seed-tasks"), DatasetRef(dataset="demo-sft")]


def _tiny(**kw) -> TrainConfig:
    base = dict(datasets=DEMO, max_steps=3, per_device_batch_size=2, max_length_tokens=64, learning_rate=1e-3,
                torch_threads=THREADS, eval_ratio=0.1)
    base.update(kw)
    return TrainConfig(**base)


def _runs_dirs(ws):
    root = R.runs_root(ws)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ---------------------------------------------------------------- item 8: refused before a process starts
def test_impossible_configs_are_refused(demo_ws, base_model, tmp_path):
    before = _runs_dirs(demo_ws)
    with pytest.raises(ConfigRefused, match=r"lora_r: Input should be greater than or equal to 1 \(got 0\)"):
        R.launch(demo_ws, {"lora_r": 0, "datasets": [{"dataset": "demo-sft"}]}, user="cur")
    with pytest.raises(ConfigRefused, match="no module named qkv_proj"):
        R.launch(demo_ws, _tiny(target_modules=["q_proj", "qkv_proj"]), user="cur")
    with pytest.raises(ConfigRefused, match="freeze_lower_blocks=30 leaves nothing to train"):
        validate_config(_tiny(freeze_lower_blocks=30), base_model)
    with pytest.raises(ConfigRefused, match="packing cannot be combined with prefix"):
        parse_config({"method": "prefix", "packing": True})
    with pytest.raises(ConfigRefused, match="R-Drop needs a dropout source"):
        parse_config({"rdrop_alpha": 1.0, "lora_dropout": 0.0})
    # prefix tuning on an architecture without a key/value cache (a Mamba config, no weights needed)
    mamba = tmp_path / "mamba"
    mamba.mkdir()
    (mamba / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2}))
    with pytest.raises(ConfigRefused, match="prefix tuning is not supported on the 'mamba' architecture"):
        R.launch(demo_ws, _tiny(method="prefix", base_model=str(mamba)), user="cur")
    validate_config(_tiny(method="prefix"), base_model)  # llama: accepted
    assert _runs_dirs(demo_ws) == before  # nothing written, nothing started


def test_only_curators_and_admins_launch(demo_ws):
    with pytest.raises(PermissionDenied):
        R.launch(demo_ws, _tiny(), user="ann", start=False)
    with pytest.raises(PermissionDenied):
        R.stop_run(demo_ws, "whatever", user="ann")


def test_preflight_and_gate_stop_the_launch(demo_ws):
    from pipelines.preflight import PreflightFailed
    before = _runs_dirs(demo_ws)
    # demo-chat v1 holds a conversation without an assistant turn: the preflight's empty_mask error
    with pytest.raises(PreflightFailed, match="empty_mask: 1 sample"):
        R.launch(demo_ws, _tiny(datasets=[DatasetRef(dataset="demo-chat")]), user="cur", start=False)
    try:
        from pipelines.quality import gates as G
    except ModuleNotFoundError:
        pytest.skip("the quality gate (pipelines.quality.gates) is not installed in this checkout")
    G.save_suite(demo_ws, "demo-chat", G.default_suite(), user="cur")
    with pytest.raises(G.GateFailed):
        R.launch(demo_ws, _tiny(datasets=[DatasetRef(dataset="demo-chat")]), user="cur", start=False)
    G.override_gate(demo_ws, "demo-chat", 1, "known: one unanswered chat, dropped by the preflight", user="cur")
    with pytest.raises(PreflightFailed):  # past the gate, still stopped by the preflight
        R.launch(demo_ws, _tiny(datasets=[DatasetRef(dataset="demo-chat")]), user="cur", start=False)
    assert _runs_dirs(demo_ws) == before


# ---------------------------------------------------------------- item 3: process, stop, resume, crash
@pytest.mark.slow
def test_stop_saves_and_resume_finishes(demo_ws):
    d = R.launch(demo_ws, _tiny(max_steps=8, save_steps=None), user="cur")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = R.run_status(d)
        if st["step"] >= 1 or st["state"] in R.TERMINAL:
            break
        time.sleep(0.5)
    assert st["state"] == "running", st
    R.stop_run(demo_ws, d.name, user="cur")
    st = R.wait_run(demo_ws, d.name, timeout_s=300)
    assert st["state"] == "stopped" and st["has_checkpoint"], st
    stopped_at = st["card"]["steps"]
    assert 1 <= stopped_at < 8 and (d / "adapter" / "adapter_model.safetensors").exists()
    assert [r["event"] for r in R.progress_records(d) if r.get("event") in ("stopped", "done")] == ["stopped"]

    # a restart of the app: nothing in memory, the folder is found again
    R._CHILDREN.clear()
    assert d.name in [r["run_id"] for r in R.list_runs(demo_ws)]
    R.resume_run(demo_ws, d.name, user="cur")
    st = R.wait_run(demo_ws, d.name, timeout_s=600)
    assert st["state"] == "succeeded", st
    card = st["card"]
    assert card["steps"] == 8 and card["metrics"]["eval_loss_before"] is not None
    assert [x["step"] for x in card["losses"]] == list(range(1, 9))  # one curve across the resume


@pytest.mark.slow
def test_crash_marks_failed_with_log_tail(demo_ws):
    d = R.launch(demo_ws, _tiny(max_steps=500), user="cur")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (R.run_status(d)["state"] == "running"
                                               and "trainable parameters" in R.log_tail(d, 200)):
        time.sleep(0.3)
    pid = R.run_status(d)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while R.run_status(d)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
    st = R.run_status(d)
    assert st["state"] == "failed" and f"pid {pid}" in st["error"], st
    assert "trainable parameters" in st["log_tail"]
    assert json.loads((d / "status.json").read_text())["state"] == "failed"  # recorded, not only reported

    # a crash inside the child (the exported data no longer matches its pinned hash)
    d2 = R.launch(demo_ws, _tiny(), user="cur", start=False)
    f = d2 / "data" / "demo-sft-v2.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = pq.read_table(f).to_pylist()
    pq.write_table(pa.Table.from_pylist(rows[1:]), f)
    R._spawn(d2)
    st = R.wait_run(demo_ws, d2.name, timeout_s=300)
    assert st["state"] == "failed" and "differs from the pinned" in st["error"]
    assert "differs from the pinned" in st["log_tail"]
