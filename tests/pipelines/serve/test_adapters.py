"""Adapters on one base: switch per request without reloading the base; combine by weight."""
from __future__ import annotations

import json
import threading

import pytest
import torch

from datastore.errors import WorkbenchError
from pipelines.serve.adapters import AdapterPool, combine_adapters, list_adapters

pytestmark = pytest.mark.slow

IDS = torch.tensor([[1, 504, 3458, 314, 253, 1345, 30]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits[0, -1].clone()


def test_switch_per_request_without_reloading_the_base(two_adapters):
    from peft import PeftModel

    from pipelines.models import load_model

    ws, a, b = two_adapters
    assert [r["name"] for r in list_adapters(ws)] == ["run-a", "run-b"]
    pool = AdapterPool()
    ids_before = pool.base_weight_ids()
    with pool.using(None) as m:
        base_out = logits(m)
    pool.ensure("a", a)
    pool.ensure("b", b)
    outs = {}
    for name in ("a", "b", None, "a", "b"):  # switch back and forth
        with pool.using(name) as m:
            outs.setdefault(name, []).append(logits(m))
    assert pool.base_loads == 1 and pool.base_weight_ids() == ids_before
    assert torch.equal(outs["a"][0], outs["a"][1]) and torch.equal(outs["b"][0], outs["b"][1])
    assert torch.allclose(outs[None][0], base_out, atol=1e-5)
    assert (outs["a"][0] - outs["b"][0]).abs().max() > 1e-3 and (outs["a"][0] - base_out).abs().max() > 1e-3
    # each adapter gives exactly what it gives when loaded alone
    alone = PeftModel.from_pretrained(load_model(), str(a)).eval()
    assert torch.allclose(logits(alone), outs["a"][0], atol=1e-5)
    # concurrent requests each get their own adapter
    got = {}

    def worker(name):
        with pool.using(name) as m:
            got[name] = logits(m)
    ts = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert torch.equal(got["a"], outs["a"][0]) and torch.equal(got["b"], outs["b"][0])


def test_combine_by_weight_is_the_weighted_sum_of_updates(two_adapters, tmp_path):
    from peft import PeftModel

    from pipelines.models import load_model

    _, a, b = two_adapters
    out = combine_adapters([a, b], [0.7, 0.3], tmp_path / "mix", combination_type="cat")
    card = json.loads((out / "adapter_card.json").read_text(encoding="utf-8"))
    assert card["stage"] == "combined" and [s["weight"] for s in card["sources"]] == [0.7, 0.3]
    assert card["template"] == {"name": "chatml"} and (out / "tokenizer.json").exists()

    def delta(path):
        m = PeftModel.from_pretrained(load_model(), str(path))
        layer = m.base_model.model.model.layers[0].self_attn.q_proj
        return layer.get_delta_weight("default")
    combined, da, db = delta(out), delta(a), delta(b)
    assert torch.allclose(combined, 0.7 * da + 0.3 * db, atol=1e-6)
    with pytest.raises(WorkbenchError, match="at least two"):
        combine_adapters([a], [1.0], tmp_path / "x")
    with pytest.raises(WorkbenchError, match="not empty"):
        combine_adapters([a, b], [1, 1], out)
