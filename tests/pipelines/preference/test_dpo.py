"""DPO with LoRA on the demo preference data: reward margin grows; run folder; stop and resume."""
from __future__ import annotations

import json

import pytest

from pipelines.preference import store as PS
from pipelines.preference.dpo import DPORunConfig, prepare_run, run_from_folder
from pipelines.preference.formats import read_file
from tests.conftest import shared_file

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]



def _demo_dataset(ws, n=12):
    """The n pairs of LLaMA-Factory's DPO demo with the shortest prompts (quick on CPU)."""
    items, _ = read_file(shared_file("sharegpt-openai-samples/llamafactory_dpo_en_demo.json"))
    items.sort(key=lambda p: sum(len(t["content"]) for t in p.prompt))
    PS.commit_items(ws, "prefs", items[:n], user="local-admin", message="demo pairs")


def _progress(run_dir):
    return [json.loads(x) for x in (run_dir / "progress.jsonl").read_text(encoding="utf-8").splitlines()]


def test_reward_margin_grows_over_the_steps(tmp_workspace):
    _demo_dataset(tmp_workspace, n=6)
    cfg = DPORunConfig(datasets=[{"dataset": "prefs"}], max_steps=6, eval_steps=3, probe_pairs=4,
                       max_length_tokens=64, per_device_batch_size=2, learning_rate=2e-3, eval_ratio=0.0)
    run_dir = tmp_workspace / "runs" / "dpo1"
    cfg = prepare_run(tmp_workspace, cfg, run_dir, user="local-admin")
    assert cfg.datasets[0].content_hash and (run_dir / "data" / "manifest.json").exists()
    res = run_from_folder(run_dir)
    m = [r["eval_reward_margin"] for r in res.margins]
    assert [r["step"] for r in res.margins] == [0, 3, 6]
    assert m[0] == pytest.approx(0.0, abs=1e-6)        # fresh LoRA: policy equals the reference
    assert all(b > a for a, b in zip(m, m[1:])), m      # grows at every evaluation on the fixed probe pairs
    assert res.margins[-1]["eval_reward_accuracy"] >= 0.75
    prog = _progress(run_dir)
    steps = [r for r in prog if "loss" in r and "event" not in r]
    assert len(steps) == 6 and all("reward_margin" in r for r in steps)
    assert 0 < steps[0]["tokens_seen"] < steps[-1]["tokens_seen"]
    assert [r["step"] for r in prog if r.get("event") == "eval"] == [0, 3, 6]
    assert prog[-1]["event"] == "done"
    card = json.loads((run_dir / "run_card.json").read_text(encoding="utf-8"))
    assert card["stage"] == "dpo" and card["datasets"][0]["content_hash"] == cfg.datasets[0].content_hash
    assert card["reward_margins"][-1]["eval_reward_margin"] == pytest.approx(m[-1])
    # the adapter reloads with peft and holds only the trained adapter (no frozen reference copy)
    from peft import PeftModel
    from pipelines.models import load_model
    pm = PeftModel.from_pretrained(load_model(), str(res.adapter_dir))
    assert list(pm.peft_config) == ["default"] and not (res.adapter_dir / "ref").exists()


def test_stop_then_resume_from_checkpoint(tmp_workspace):
    _demo_dataset(tmp_workspace, n=4)
    cfg = DPORunConfig(datasets=[{"dataset": "prefs"}], max_steps=3, probe_pairs=1, max_length_tokens=48,
                       per_device_batch_size=1, eval_ratio=0.0)
    run_dir = tmp_workspace / "runs" / "dpo2"
    prepare_run(tmp_workspace, cfg, run_dir, user="local-admin")

    def stop_after_first_log(rec):  # STOP is read at the end of the next step (as a user pressing Stop)
        if rec.get("step") == 1 and "loss" in rec:
            (run_dir / "STOP").write_text("")
    first = run_from_folder(run_dir, progress=stop_after_first_log)
    assert first.stopped_early and first.steps == 2
    assert (run_dir / "checkpoints" / "checkpoint-2").is_dir() and (run_dir / "adapter").is_dir()
    second = run_from_folder(run_dir, resume=True)
    assert second.steps == 3 and not second.stopped_early
    assert second.run_card["resumed_from"].endswith("checkpoint-2")
    logged = [r["step"] for r in _progress(run_dir) if "loss" in r and "event" not in r]
    assert logged == [1, 2, 3]


def test_dpo_on_top_of_an_sft_adapter(tmp_workspace):
    """DPO continues the SFT adapter; its reference is the SFT model (margin 0 before training, although
    the SFT adapter changes the outputs), and the saved adapter is one adapter on the base model."""
    from tests.pipelines.serve.conftest import _make_adapter

    sft = _make_adapter(tmp_workspace / "runs" / "sft-1", 3, 4, "chatml")
    _demo_dataset(tmp_workspace, n=2)
    cfg = DPORunConfig(datasets=[{"dataset": "prefs"}], max_steps=2, probe_pairs=1, max_length_tokens=48,
                       per_device_batch_size=1, eval_ratio=0.0, sft_adapter=str(sft.parent), learning_rate=1e-3)
    run_dir = tmp_workspace / "runs" / "dpo3"
    prepare_run(tmp_workspace, cfg, run_dir, user="local-admin")
    res = run_from_folder(run_dir)
    assert res.margins[0]["step"] == 0 and res.margins[0]["eval_reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert res.run_card["sft_adapter"] == str(sft)
    import torch
    from peft import PeftModel
    from pipelines.models import load_model
    before = PeftModel.from_pretrained(load_model(), str(sft)).state_dict()
    after = PeftModel.from_pretrained(load_model(), str(res.adapter_dir)).state_dict()
    keys = [k for k in before if "lora_" in k]
    assert keys and set(keys) <= set(after)
    assert any(not torch.equal(before[k], after[k]) for k in keys)   # the SFT adapter was trained further
