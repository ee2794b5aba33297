"""Every finished run is servable, one at a time on the same base: a LoRA, a prompt-tuning and a
prefix-tuning adapter in turn (switching PEFT types unloads the previous adapters, so they never
combine), and a full fine-tune from its own ``model/`` folder; each answer names what served it."""
from __future__ import annotations

import pytest
import torch

from pipelines.serve import chat as C
from pipelines.serve.adapters import AdapterPool, list_adapters, list_servable

pytestmark = pytest.mark.slow

IDS = torch.tensor([[1, 504, 3458, 314, 253, 1345, 30]])
MSGS = [{"role": "user", "content": "What is 2 + 2?"}]


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits[0, -1].clone()


def test_list_servable_names_every_run_and_method(trained_runs):
    ws, runs = trained_runs
    rows = {r["name"]: r for r in list_servable(ws)}
    assert {n: (r["kind"], r["method"]) for n, r in rows.items()} == {
        "run-full": ("model", "full fine-tune"), "run-lora": ("adapter", "LoRA"),
        "run-prefix": ("adapter", "prefix tuning"), "run-prompt": ("adapter", "prompt tuning")}
    assert rows["run-full"]["path"] == str(runs["full"] / "model")
    assert {r["base_model"] for r in rows.values()} == {"SmolLM2-135M-Instruct"}
    assert [r["name"] for r in list_adapters(ws)] == ["run-lora", "run-prefix", "run-prompt"]


def test_peft_types_one_at_a_time_on_one_base(trained_runs):
    from peft import PeftModel

    from pipelines.models import load_model

    _, runs = trained_runs
    pool = AdapterPool()
    ids_before = pool.base_weight_ids()
    with pool.using(None) as m:
        base_out = logits(m)
    answers, outs = {}, {}
    for name in ("lora", "prompt", "prefix", "lora"):
        r = C.reply(pool, f"run-{name}", MSGS, adapter_path=runs[name], max_new_tokens=6)
        assert r.text and 0 < r.new_tokens <= 6 and r.template == "chatml"
        assert set(pool.loaded) == {f"run-{name}"}  # the other PEFT type was unloaded, not combined
        with pool.using(f"run-{name}") as m:
            out = logits(m)
        if name in answers:  # back to LoRA after two other types: the same answer, the same logits
            assert r.text == answers[name].text and torch.allclose(out, outs[name], atol=1e-5)
        answers[name], outs[name] = r, out
    assert pool.unloads == 3 and pool.peft_type == "LORA"
    assert {n: (a.served["name"], a.served["method"], a.served["base_model"]) for n, a in answers.items()} == {
        "lora": ("run-lora", "LoRA", "SmolLM2-135M-Instruct"),
        "prompt": ("run-prompt", "prompt tuning", "SmolLM2-135M-Instruct"),
        "prefix": ("run-prefix", "prefix tuning", "SmolLM2-135M-Instruct")}
    assert pool.base_loads == 1 and pool.base_weight_ids() == ids_before
    for name in ("lora", "prompt", "prefix"):  # each answered as it does when loaded alone on a fresh base
        alone = PeftModel.from_pretrained(load_model(), str(runs[name] / "adapter")).eval()
        assert torch.allclose(logits(alone), outs[name], atol=1e-4), name
        assert (outs[name] - base_out).abs().max() > 1e-4, name
    pool.ensure("run-prompt", runs["prompt"])  # unloading LoRA leaves the base as it was
    with pool.using(None) as m:
        assert torch.allclose(logits(m), base_out, atol=1e-5)


def test_full_fine_tune_answers_from_its_model_folder(trained_runs):
    from pipelines.models import load_model

    _, runs = trained_runs
    pool = AdapterPool()
    pool.ensure("lora", runs["lora"])
    r = C.reply(pool, "full", MSGS, adapter_path=runs["full"], max_new_tokens=6)
    assert r.text and r.template == "chatml"
    assert r.served["kind"] == "model" and r.served["method"] == "full fine-tune"
    assert r.served["path"] == str(runs["full"] / "model")
    assert set(pool.loaded) == {"lora", "full"}  # a full fine-tune does not touch the adapters
    with pool.using("full") as m:
        out = logits(m)
    assert torch.allclose(out, logits(load_model(runs["full"] / "model")), atol=1e-5)
    with pool.using(None) as m:
        assert (out - logits(m)).abs().max() > 1e-4  # the fine-tune's own weights, not the base's
    assert C.reply(pool, "lora", MSGS, max_new_tokens=4).served["method"] == "LoRA"
    readme = (runs["full"] / "model" / "README.md").read_text()  # the model card written for model/
    assert "## Training data licences" in readme and "licences were not recorded" in readme
