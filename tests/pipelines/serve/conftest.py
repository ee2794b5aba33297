"""Two small LoRA adapters on the embedded base (random non-zero weights, no training: quick),
laid out as run folders with run cards, once per test session."""
from __future__ import annotations

import json

import pytest


def _make_adapter(run_dir, seed: int, r: int, template: str):
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from pipelines.models import ensure_base_model, load_model, load_tokenizer

    torch.manual_seed(seed)
    cfg = LoraConfig(task_type=TaskType.CAUSAL_LM, r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"],
                     init_lora_weights=False)  # random A and B: the adapter changes the outputs
    m = get_peft_model(load_model(), cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.mul_(0.05)
    (run_dir / "adapter").mkdir(parents=True)
    m.save_pretrained(str(run_dir / "adapter"))
    load_tokenizer().save_pretrained(str(run_dir / "adapter"))
    base = ensure_base_model()
    import hashlib
    card = {"run_id": run_dir.name, "stage": "sft", "template": {"name": template},
            "base_model": {"name": base.name, "config_sha256": hashlib.sha256((base / "config.json").read_bytes()).hexdigest()}}
    (run_dir / "run_card.json").write_text(json.dumps(card), encoding="utf-8")
    return run_dir / "adapter"


def _make_prompt_adapter(run_dir, seed: int, template: str = "chatml"):
    """A prompt-tuning adapter (4 random virtual tokens, no training) laid out as a run folder."""
    import torch
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from pipelines.models import ensure_base_model, load_model, load_tokenizer

    torch.manual_seed(seed)
    m = get_peft_model(load_model(), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4))
    (run_dir / "adapter").mkdir(parents=True)
    m.save_pretrained(str(run_dir / "adapter"))
    load_tokenizer().save_pretrained(str(run_dir / "adapter"))
    card = {"run_id": run_dir.name, "stage": "sft", "method": "prompt", "template": {"name": template},
            "base_model": {"name": ensure_base_model().name}}
    (run_dir / "run_card.json").write_text(json.dumps(card), encoding="utf-8")
    return run_dir / "adapter"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread: on 2 cores shared with other processes two threads run 5-20x slower
    (docs/decisions.md, 'Generation on 2 cores')."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def two_adapters(tmp_path_factory):
    from datastore.errors import WorkbenchError
    try:
        from pipelines.models import ensure_base_model
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    ws = tmp_path_factory.mktemp("serve") / "ws"
    a = _make_adapter(ws / "runs" / "run-a", 1, 4, "chatml")
    b = _make_adapter(ws / "runs" / "run-b", 2, 8, "chatml")
    return ws, a, b


CONVS = [[{"role": "user", "content": f"What is {i} plus {i}?"},
          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}] for i in range(4)]


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, _one_torch_thread):
    """Finished 1-step runs on the embedded model, one per serving case: ``lora``, ``prompt``
    (prompt tuning), ``prefix`` (prefix tuning) and ``full`` (a full fine-tune: ``model/``, no
    adapter), trained by :func:`pipelines.train.run_sft` into ``<ws>/runs/run-<method>``.
    Returns ``(workspace, {method: run folder})``."""
    from datastore.errors import WorkbenchError
    try:
        from pipelines.models import ensure_base_model
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    from pipelines.train import TrainConfig, run_sft

    ws = tmp_path_factory.mktemp("serve-runs") / "ws"
    out = {}
    for method in ("lora", "prompt", "prefix", "full"):
        cfg = TrainConfig(method=method, max_steps=1, per_device_batch_size=2, max_length_tokens=48,
                          learning_rate=1e-3, warmup_ratio=0.0, num_virtual_tokens=4, torch_threads=1,
                          eval_ratio=0.0, seed=5)
        out[method] = run_sft(cfg, CONVS, ws / "runs" / f"run-{method}").run_dir
    return ws, out
