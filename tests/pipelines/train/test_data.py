"""Training data: versions pinned by content hash and exported into the run folder, deterministic
split, mixing weights, assistant-only labels on multi-turn samples, packing without attention
between samples (packed logits equal unpacked ones within 1e-4)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from datastore import Conflict, Sample, Store
from datastore import versions as V
from datastore.errors import WorkbenchError
from pipelines.render import get_template
from pipelines.train.config import DatasetRef
from pipelines.train.data import (Collator, export_versions, load_exported, mix, pack, packing_ratio, pin_versions,
                                  split, tokenize)

CHAT = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Spain?"},
     {"role": "assistant", "content": "Madrid."}],
    [{"role": "user", "content": "Name a primary colour."}, {"role": "assistant", "content": "Red."}],
    [{"role": "user", "content": "What do bees make?"}, {"role": "assistant", "content": "Honey, and wax too."}],
    [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}],
]


def test_pin_export_and_verify(demo_ws, tmp_path):
    pinned = pin_versions(demo_ws, [DatasetRef(dataset="demo-sft", version=1, weight=2.0),
                                    DatasetRef(dataset="demo-chat")])
    with Store(demo_ws) as st:
        v1 = V.resolve(st, "demo-sft", 1)
        chat = V.resolve(st, "demo-chat")
    assert [(r.version_number, r.content_hash) for r in pinned] == [(1, v1.content_hash),
                                                                     (chat.number, chat.content_hash)]
    manifest = export_versions(demo_ws, pinned, tmp_path / "run")
    assert [e["file"] for e in manifest["datasets"]] == ["demo-sft-v1.parquet", f"demo-chat-v{chat.number}.parquet"]
    assert manifest["datasets"][0]["weight"] == 2.0 and manifest["datasets"][0]["samples"] == v1.n_samples
    data = load_exported(tmp_path / "run")  # recomputes the content hash from the rows
    assert [len(d.samples) for d in data] == [v1.n_samples, chat.n_samples]
    with Store(demo_ws) as st:
        stored = {s.sample_id: s.turns() for s in V.iter_samples(st, chat)}
    assert {s.sample_id: s.turns() for s in data[1].samples} == stored

    # an edited export no longer proves the pinned version
    f = tmp_path / "run" / "data" / "demo-sft-v1.parquet"
    t = pq.read_table(f).to_pylist()
    t[0]["output"] = "tampered"
    import pyarrow as pa
    pq.write_table(pa.Table.from_pylist(t), f)
    with pytest.raises(WorkbenchError, match="differs from the pinned"):
        load_exported(tmp_path / "run")


def test_pinned_hash_must_match(demo_ws):
    with pytest.raises(Conflict, match="not the pinned"):
        pin_versions(demo_ws, [DatasetRef(dataset="demo-sft", version=1, content_hash="0" * 64)])
    with pytest.raises(WorkbenchError, match="at least one dataset"):
        pin_versions(demo_ws, [])


def _samples(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        s = Sample(instruction=f"Question {i}", output=f"Answer {i}")
        s.row_hash = s.to_row()["row_hash"]
        s.sample_id = i + 1
        out.append(s)
    return out


def test_split_is_deterministic_and_content_based():
    samples = _samples(200)
    tr, ev = split(samples, 0.1, seed=3)
    assert len(tr) + len(ev) == 200 and 8 <= len(ev) <= 35  # binomial(200, 0.1): well inside 6 sigma
    assert split(samples, 0.1, seed=3) == (tr, ev)
    # a sample stays on its side when others change (hash of content, not position)
    held = {s.instruction for s in ev}
    tr2, ev2 = split(samples[50:] + _samples(260)[200:], 0.1, seed=3)
    assert {s.instruction for s in ev2} & {s.instruction for s in samples[50:]} == \
        held & {s.instruction for s in samples[50:]}
    assert split(samples, 0.1, seed=4)[1] != ev  # the seed matters
    assert len(split(_samples(3), 0.01, seed=0)[1]) == 1  # at least one held out
    assert split(_samples(5), 0.0, seed=0)[1] == []


def test_mix_by_weight():
    a, b = list(range(100)), list(range(1000, 1020))
    assert mix([(None, a), (None, b)], seed=0) == a + b
    m = mix([(3.0, a), (1.0, b)], seed=0)
    assert len(m) == 120
    assert sum(1 for x in m if x < 1000) == 90 and sum(1 for x in m if x >= 1000) == 30  # b upsampled
    assert all(m.count(x) >= 1 for x in b)  # whole repeats first
    assert mix([(3.0, a), (1.0, b)], seed=0) == m and mix([(3.0, a), (1.0, b)], seed=1) != m


def test_assistant_only_labels_multi_turn(tokenizer):
    tpl = get_template("chatml")
    rows, stats = tokenize(tokenizer, CHAT[:1], tpl, 512)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    target = tokenizer.decode([t for t, l in zip(ids, labels) if l != -100])
    assert "Paris." in target and "Madrid." in target  # both assistant turns
    assert "Capital" not in target and "Spain" not in target and "terse" not in target
    assert target.count("<|im_end|>") == 2  # each assistant turn learns to stop
    all_rows, _ = tokenize(tokenizer, CHAT[:1], tpl, 512, assistant_only=False)
    assert all_rows[0]["labels"] == ids
    short, st = tokenize(tokenizer, CHAT[:1], tpl, 12)
    assert st["truncated"] == 1 and st["no_assistant"] == 1 and short == []  # cut before any answer: dropped
    kept, st = tokenize(tokenizer, CHAT[:1], tpl, 30)
    assert st["truncated"] == 1 and len(kept[0]["input_ids"]) == 30 and kept[0]["labels"] == labels[:30]


def test_pack_bins_and_collator(tokenizer):
    rows, _ = tokenize(tokenizer, CHAT, get_template("chatml"), 512)
    packed = pack(rows, 64)
    lens = [len(r["input_ids"]) for r in rows]
    assert all(len(p["input_ids"]) <= 64 for p in packed)
    assert sorted(n for p in packed for n in p["seq_lengths"]) == sorted(lens)
    assert packing_ratio(rows, packed) == len(rows) / len(packed) > 1
    batch = Collator(tokenizer.pad_token_id)(packed)
    assert batch["input_ids"].shape == (1, sum(lens)) and "attention_mask" not in batch
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    assert len(starts) == len(rows)
    assert all(batch["labels"][0, s].item() == -100 for s in starts)


def test_packed_logits_equal_unpacked(tokenizer, base_model):
    import torch

    from pipelines.models import load_model

    model = load_model(base_model)
    rows, _ = tokenize(tokenizer, CHAT, get_template("chatml"), 512)
    packed = pack(rows, 10_000)
    assert len(packed) == 1
    batch = Collator(tokenizer.pad_token_id)(packed)
    with torch.no_grad():
        # use_cache=False as in training (WorkbenchTrainer.compute_loss): transformers builds the
        # block-diagonal mask from the position ids only when no cache is passed
        packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                              use_cache=False).logits[0]
        start, worst = 0, 0.0
        order = packed[0]["seq_lengths"]
        for n in order:
            seg = batch["input_ids"][0, start:start + n]
            alone = model(input_ids=seg[None]).logits[0]
            worst = max(worst, float((alone - packed_logits[start:start + n]).abs().max()))
            start += n
        # without the per-sample positions, samples attend across and the logits change
        crossed = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    assert worst <= 1e-4, worst
    assert float((crossed - packed_logits).abs().max()) > 1e-2
