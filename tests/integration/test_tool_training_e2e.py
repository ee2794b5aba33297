"""End to end on real data: tool-calling and reasoning conversations imported from ../shared/data,
a 5-step LoRA run on the embedded model with the tool-aware ChatML template (``chatml-tools``)
launched through the product's run path (``pipelines.train.runs.launch``: pinned version export,
preflight; then the runner's ``train_from_run_dir``), and checks made on the batches the trainer
actually received: every tool call's arguments are learned, every tool result is masked, the tool
schemas are in the input but not learned, the reasoning is learned, the loss is finite.

Sources (read in place; each subset is written to tmp and imported through
:func:`pipelines.formats.import_file`):
- the LLaMA-Factory glaive tool-call demo (ShareGPT with ``function_call`` / ``observation`` turns and
  a ``tools`` string column): the 4 shortest conversations that hold a tool result;
- the OpenAI-format stock tool-call conversations (``messages`` with ``tool_calls``, a ``tools``
  column): the first 4;
- Sky-T1 reasoning traces (``question`` + ``code[0]`` with ``<|begin_of_thought|>`` markers), not a
  conversation format: the 2 shortest complete traces of the MINERVA file, written as ``messages``
  JSONL and imported with ``reasoning_markers="thought"``.
10 samples, batch size 2, 5 steps, no evaluation split: one epoch, so every sample reaches a batch.
"""
from __future__ import annotations

import gzip
import json
import math

import pytest

from tests.conftest import shared_file

pytestmark = pytest.mark.slow

GLAIVE = "sharegpt-openai-samples/llamafactory_glaive_toolcall_en_demo.json"
STOCK = "tool-calling-openai/stock_toolcall_training.jsonl"
SKY = "reasoning-traces/sky_t1_27b_correct5k_minerva_math.jsonl.gz"
N_GLAIVE, N_STOCK, N_REASONING = 4, 4, 2
MAX_LEN = 1664  # the longest of the 10 renders to 1610 tokens: nothing is cut (over_length_policy="fail")
IGNORE = -100


def _write_subsets(tmp_path) -> tuple[dict[str, tuple], dict[str, dict]]:
    """The three source subsets as files in tmp: ``{dataset: (path, import keyword arguments)}``, and
    the tool calls and tool results each subset holds, counted in the raw records
    (``{dataset: {"tool_calls": n, "tool_results": n}}``)."""
    glaive = json.loads(shared_file(GLAIVE).read_text(encoding="utf-8"))
    with_result = [r for r in glaive if any(t["from"] == "observation" for t in r["conversations"])]
    with_result.sort(key=lambda r: len(json.dumps(r)))  # stable: ties keep file order
    (tmp_path / "glaive.json").write_text(json.dumps(with_result[:N_GLAIVE]), encoding="utf-8")

    stock = shared_file(STOCK).read_text(encoding="utf-8").splitlines(keepends=True)[:N_STOCK]
    (tmp_path / "stock.jsonl").write_text("".join(stock), encoding="utf-8")

    with gzip.open(shared_file(SKY), "rt", encoding="utf-8") as f:
        sky = [json.loads(line) for line in f]
    complete = sorted((r for r in sky if "<|end_of_thought|>" in r["code"][0]), key=lambda r: len(r["code"][0]))
    lines = [json.dumps({"messages": [{"role": "user", "content": r["question"]},
                                      {"role": "assistant", "content": r["code"][0]}]}) + "\n"
             for r in complete[:N_REASONING]]
    (tmp_path / "reasoning.jsonl").write_text("".join(lines), encoding="utf-8")
    expected = {"glaive": {"tool_calls": sum(t["from"] == "function_call" for r in with_result[:N_GLAIVE]
                                             for t in r["conversations"]),
                           "tool_results": sum(t["from"] == "observation" for r in with_result[:N_GLAIVE]
                                               for t in r["conversations"])},
                "stock": {"tool_calls": sum(len(m.get("tool_calls") or []) for line in stock
                                            for m in json.loads(line)["messages"]), "tool_results": 0},
                "reasoning": {"tool_calls": 0, "tool_results": 0}}
    files = {"glaive": (tmp_path / "glaive.json", {}), "stock": (tmp_path / "stock.jsonl", {}),
             "reasoning": (tmp_path / "reasoning.jsonl", {"reasoning_markers": "thought"})}
    return files, expected


def _recording_trainer(batches: list[dict], losses: list[float]):
    """A ``_trainer_class`` replacement: the product's trainer, recording each training batch
    (``input_ids``, ``labels``, ``attention_mask`` as lists) and its loss."""
    from pipelines.train import sft

    base = sft._trainer_class()

    class Recording(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                batches.append({k: inputs[k].tolist() for k in ("input_ids", "labels", "attention_mask")})
                losses.append(float((out[0] if return_outputs else out).detach()))
            return out

    return lambda: Recording


def _runs(tok, ids: list[int], labels: list[int]) -> tuple[list[str], list[str]]:
    """The decoded text of each maximal run of learned (label != -100) and of masked positions."""
    learned, masked, start = [], [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (labels[i] != IGNORE) != (labels[start] != IGNORE):
            text = tok.decode(ids[start:i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            (learned if labels[start] != IGNORE else masked).append(text)
            start = i
    return learned, masked


def _rendered_arguments(call: dict) -> str:
    """A tool call's arguments as chatml-tools writes them: a JSON string as given, else JSON."""
    args = (call.get("function") or call)["arguments"]
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def test_tool_and_reasoning_training_on_real_data(tmp_path, monkeypatch):
    from pipelines.formats import import_file
    from pipelines.render import get_template, render_chat, render_with_mask, template_input
    from pipelines.train import runs as R
    from pipelines.train import sft
    from pipelines.train.card import read_card
    from pipelines.train.config import DatasetRef, TrainConfig
    from pipelines.train.data import load_exported
    from pipelines.train.runner import train_from_run_dir

    from datastore.errors import WorkbenchError
    from pipelines.models import load_tokenizer

    ws = tmp_path / "ws"
    ws.mkdir()
    files, expected = _write_subsets(tmp_path)
    assert expected["glaive"]["tool_results"] >= N_GLAIVE and expected["stock"]["tool_calls"] > 0
    for name, (path, kw) in files.items():
        rep = import_file(ws, path, name, user="cur", **kw)
        assert (rep.imported, rep.quarantined) == ({"glaive": N_GLAIVE, "stock": N_STOCK}.get(name, N_REASONING), 0)

    try:
        tok = load_tokenizer()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    tpl = get_template("chatml-tools")
    tok.chat_template = tpl.text

    batches: list[dict] = []
    losses: list[float] = []
    monkeypatch.setattr(sft, "_trainer_class", _recording_trainer(batches, losses))
    cfg = TrainConfig(datasets=[DatasetRef(dataset=n) for n in ("glaive", "stock", "reasoning")],
                      template="chatml-tools", max_steps=5, per_device_batch_size=2, max_length_tokens=MAX_LEN,
                      over_length_policy="fail", eval_ratio=0.0, learning_rate=1e-3, torch_threads=1,
                      device="cpu")
    run_dir = R.launch(ws, cfg, user="cur", start=False)  # pins, exports and preflights the versions
    result = train_from_run_dir(run_dir)

    # the run: 5 steps of 2 rows, finite losses, nothing truncated, one epoch of the 10 samples
    assert result.steps == 5 and len(batches) == 5 and all(len(b["input_ids"]) == 2 for b in batches)
    assert all(math.isfinite(x) and x > 0 for x in losses) and math.isfinite(result.final_loss)
    card = read_card(run_dir)
    assert card["data"]["truncated"] == 0 and card["data"]["examples"] == N_GLAIVE + N_STOCK + N_REASONING

    # which exported sample each batch row is: its render (ids) under the run's template
    by_ids = {}
    for vd in load_exported(run_dir):
        for s in vd.samples:
            ids, _ = render_with_mask(tok, template_input(s, tpl, tokenizer=tok), tpl)
            by_ids[tuple(ids)] = (vd.entry["dataset"], s)
    seen = []
    counts = {n: {"samples": 0, "tool_calls": 0, "tool_results": 0, "tool_schemas": 0, "reasoning": 0}
              for n in ("glaive", "stock", "reasoning")}
    for b in batches:
        for ids, labels, mask in zip(b["input_ids"], b["labels"], b["attention_mask"]):
            n = sum(mask)
            assert all(x == IGNORE for x in labels[n:])  # padding is never learned
            ids, labels = ids[:n], labels[:n]
            assert tuple(ids) in by_ids, "a batch row is no sample's render"
            name, s = by_ids[tuple(ids)]
            seen.append((name, s.sample_id))
            assert all(lab == i for lab, i in zip(labels, ids) if lab != IGNORE)  # labels are the tokens
            learned, masked = _runs(tok, ids, labels)
            c = counts[name]
            c["samples"] += 1
            text = render_chat(template_input(s, tpl, tokenizer=tok), tpl)
            for k, m in enumerate(s.messages):
                for call in m.get("tool_calls") or []:
                    args = _rendered_arguments(call)
                    assert args in text, f"{name} #{s.sample_id} message {k}: arguments not rendered as {args!r}"
                    assert any(args in r for r in learned), \
                        f"{name} #{s.sample_id} message {k}: tool call arguments {args!r} not in the labels"
                    c["tool_calls"] += 1
                if m.get("role") == "tool":
                    assert m["content"] and any(m["content"] in r for r in masked), \
                        f"{name} #{s.sample_id} message {k}: tool result not entirely masked"
                    assert not any(m["content"] in r for r in learned)
                    c["tool_results"] += 1
                if m.get("role") == "assistant" and isinstance(m.get("content"), str) and m["content"]:
                    assert any(m["content"] in r for r in learned), \
                        f"{name} #{s.sample_id} message {k}: assistant answer not learned"
                if m.get("reasoning_content"):
                    assert any(m["reasoning_content"] in r for r in learned), \
                        f"{name} #{s.sample_id} message {k}: reasoning not learned"
                    c["reasoning"] += 1
            for tool in (s.extra or {}).get("tools") or []:
                schema = json.dumps(tool, ensure_ascii=False)
                assert any(schema in r for r in masked), f"{name} #{s.sample_id}: tool schema not in the input"
                assert not any(schema in r for r in learned)
                c["tool_schemas"] += 1
    # one epoch: every sample exactly once
    assert sorted(seen) == sorted((n, s.sample_id) for _, (n, s) in by_ids.items())
    for name, n in (("glaive", N_GLAIVE), ("stock", N_STOCK), ("reasoning", N_REASONING)):
        got = counts[name]
        assert (got["samples"], got["tool_calls"], got["tool_results"]) == \
            (n, expected[name]["tool_calls"], expected[name]["tool_results"]), (name, got, expected[name])
    assert counts["glaive"]["tool_schemas"] >= N_GLAIVE  # every glaive sample offers at least one tool
    assert counts["stock"]["tool_schemas"] == 2 * N_STOCK  # each offers the two stock price functions
    assert counts["reasoning"]["reasoning"] == N_REASONING and counts["reasoning"]["tool_schemas"] == 0
    assert counts["glaive"]["reasoning"] == counts["stock"]["reasoning"] == 0
    print("counts per source:", json.dumps(counts))
