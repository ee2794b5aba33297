"""Each method and regularizer is real: LoRA options reach peft, layer drop with p=1 makes a block
the identity, frozen blocks keep their weights, layer-wise learning rates decay per block, label
smoothing is the smoothed cross-entropy, R-Drop's KL term is above 0, and every method (QLoRA,
prefix tuning, P-tuning, prompt tuning, full fine-tuning) trains, saves and reloads exactly."""
from __future__ import annotations

import json

import pytest
import torch

from pipelines.train import TrainConfig, run_sft, verify_adapter
from pipelines.train.layers import apply_layer_drop, decoder_layers, layerwise_param_groups

CONVS = [[{"role": "user", "content": f"What is {i} plus {i}?"},
          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}] for i in range(8)]
TINY = dict(max_steps=2, per_device_batch_size=2, max_length_tokens=48, learning_rate=1e-3, warmup_ratio=0.0,
            seed=3, torch_threads=1, eval_ratio=0.0)


@pytest.fixture(scope="module")
def model(base_model):
    from pipelines.models import load_model
    return load_model(base_model)


def test_lora_options_reach_peft(base_model):
    from pipelines.models import load_model
    from pipelines.train.methods import lora

    m = lora.prepare(load_model(base_model), TrainConfig(lora_r=4, lora_alpha=8, use_rslora=True, use_dora=True,
                                                         target_modules=["q_proj", "down_proj"],
                                                         freeze_lower_blocks=28))
    cfg = m.peft_config["default"]
    assert cfg.r == 4 and cfg.use_rslora and cfg.use_dora and set(cfg.target_modules) == {"q_proj", "down_proj"}
    q = m.base_model.model.model.layers[29].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(8 / 4 ** 0.5)  # rsLoRA: alpha / sqrt(r)
    assert "default" in q.lora_magnitude_vector  # DoRA's magnitude
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all(".layers.28." in n or ".layers.29." in n for n in names)  # lower 28 blocks: none


def test_layer_drop_p1_is_identity(model):
    layer = decoder_layers(model)[3]
    seen = {}
    def hook(mod, args, kwargs, out):
        seen.update(x=args[0] if args else kwargs["hidden_states"], y=out)

    h = layer.register_forward_hook(hook, with_kwargs=True)
    ids = torch.tensor([[1, 422, 3511, 314, 253, 1701]])
    try:
        apply_layer_drop(model, 1.0)
        model.train()
        with torch.no_grad():
            model(input_ids=ids)
        assert torch.equal(seen["x"], seen["y"])  # the block passed its input through
        model.eval()  # every block runs at evaluation
        with torch.no_grad():
            model(input_ids=ids)
        assert float((seen["x"] - seen["y"]).abs().max()) > 1e-3
    finally:
        h.remove()
        apply_layer_drop(model, 1e-12)  # effectively off for the other tests of this module
        model.eval()


def test_layerwise_learning_rates(model):
    groups = layerwise_param_groups(model, 1e-3, 0.5)
    by = {}
    for g in groups:
        by.setdefault(g["name"], set()).add(g["lr"])
    n = len(decoder_layers(model))
    assert by["block 29"] == {1e-3} and by["block 28"] == {5e-4} and by["block 0"] == {1e-3 * 0.5 ** 29}
    assert by["embeddings"] == {1e-3 * 0.5 ** n} and by["head"] == {1e-3}
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    assert len(layerwise_param_groups(model, 1e-3, None)) <= 2


def test_label_smoothing_is_smoothed_ce():
    from pipelines.train.sft import _trainer_class

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, 3, 4, -100, 1], [-100, -100, 7, 2, 9]])
    ce0, _, mask = _trainer_class()._ce(None, logits, labels, 0.0)
    ce1, _, _ = _trainer_class()._ce(None, logits, labels, 0.1)
    lp = torch.log_softmax(logits[:, :-1], -1)[mask]
    tgt = labels[:, 1:][mask]
    nll = -lp.gather(1, tgt[:, None]).sum()
    assert float(ce0) == pytest.approx(float(nll), rel=1e-5)
    assert float(ce1) == pytest.approx(float(0.9 * nll + 0.1 * (-lp.mean(-1)).sum()), rel=1e-5)


@pytest.mark.slow
def test_rdrop_kl_above_zero(tmp_path, base_model):
    cfg = TrainConfig(**TINY, rdrop_alpha=1.0, attention_dropout=0.1, label_smoothing=0.1,
                      layerwise_lr_decay=0.9)
    res = run_sft(cfg, CONVS, tmp_path / "rdrop")
    steps = [json.loads(x) for x in (tmp_path / "rdrop" / "progress.jsonl").read_text().splitlines()]
    kls = [r["rdrop_kl"] for r in steps if "rdrop_kl" in r]
    assert len(kls) == 2 and all(k > 0 for k in kls), kls
    assert res.run_card["metrics"]["rdrop_kl_mean"] > 0


def _weights(path):
    from safetensors.torch import load_file
    return load_file(str(path))


@pytest.mark.slow
def test_full_finetune_frozen_blocks_unchanged(tmp_path, base_model):
    cfg = TrainConfig(**{**TINY, "learning_rate": 1e-4}, method="full", freeze_lower_blocks=2)
    res = run_sft(cfg, CONVS, tmp_path / "full")
    assert res.adapter_dir.name == "model"
    base, tuned = _weights(base_model / "model.safetensors"), _weights(res.adapter_dir / "model.safetensors")
    frozen = [k for k in base if ".layers.0." in k or ".layers.1." in k or "embed_tokens" in k]
    trained = [k for k in base if ".layers.2." in k or ".layers.29." in k]
    assert frozen and all(torch.equal(base[k], tuned[k]) for k in frozen)
    assert any(not torch.equal(base[k], tuned[k]) for k in trained)
    assert res.run_card["trainable_params"] < res.run_card["total_params"]
    v = verify_adapter(tmp_path / "full", max_new_tokens=4)
    assert v["reload_ok"] and v["differs_from_base"]


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [("qlora", {}), ("prefix", {"num_virtual_tokens": 4}),
                                          ("ptuning", {"num_virtual_tokens": 4, "encoder_hidden_size": 32}),
                                          ("prompt", {"num_virtual_tokens": 4})])
def test_method_trains_and_reloads(tmp_path, base_model, method, extra):
    from peft import PeftConfig

    cfg = TrainConfig(**{**TINY, "max_steps": 1}, method=method, **extra)
    res = run_sft(cfg, CONVS[:4], tmp_path / method)
    card = res.run_card
    assert card["method"] == method and card["steps"] == 1 and 0 < card["trainable_params"] < card["total_params"] / 100
    peft_type = {"qlora": "LORA", "prefix": "PREFIX_TUNING", "ptuning": "P_TUNING", "prompt": "PROMPT_TUNING"}[method]
    assert PeftConfig.from_pretrained(str(res.adapter_dir)).peft_type.value == peft_type
    if method == "qlora":
        assert card["config"]["bnb_4bit_quant_type"] == "nf4" and card["optim"] == "adamw_torch"
        return  # trained on the 4-bit base: its reload onto the full-precision base is not bit-exact
    v = verify_adapter(tmp_path / method, max_new_tokens=2)
    assert v["reload_ok"] and v["differs_from_base"], v
