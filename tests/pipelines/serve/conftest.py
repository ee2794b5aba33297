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
