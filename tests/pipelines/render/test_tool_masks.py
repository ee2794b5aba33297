"""Loss masks for tool calls, tool results, tool schemas and reasoning, with real tokenizers.

Each template runs on a copy of the embedded SmolLM2 tokenizer with the template's special
tokens added (tests/pipelines/render/tool_cases.py): ChatML (our ``chatml-tools`` with
``{% generation %}`` blocks, and plain ``chatml``), our Llama 3.1 (masks from prefix
differences) and Qwen3 as published (read in place from ../shared/data; prefix differences, and
it drops the reasoning of turns before the last user message). The learned runs of the labels
are decoded and compared with the exact text the model must produce.
"""
from __future__ import annotations

import json

import pytest

from pipelines.render import (
    encode_conversations,
    get_template,
    render_chat,
    render_with_mask,
    template_from_file,
)
from pipelines.render.inputs import template_input
from tests.conftest import shared_file
from tests.pipelines.render import tool_cases as tc
from tests.pipelines.test_template_masks import learned_runs

CASES = {c[0]: c for c in tc.written_cases()}
PARIS_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def learned(tok, ids, labels) -> list[str]:
    """The decoded runs of consecutive learned tokens (each label equal to its id)."""
    assert all(lab in (-100, i) for i, lab in zip(ids, labels))
    return [tok.decode(r) for r in learned_runs(ids, labels)]


def masked(tok, tpl, case, **kw):
    """``(learned runs, rendered text)`` of a case through the template input and render_with_mask."""
    _, messages, tools, documents = case
    inp = template_input(messages, tpl, tokenizer=tok, tools=tools, documents=documents)
    ids, labels = render_with_mask(tok, inp, tpl, **kw)
    assert tok.decode(ids) == render_chat(inp, tpl)
    return learned(tok, ids, labels), tok.decode(ids)


@pytest.fixture(scope="module")
def chatml_tools(tokenizer):
    tpl = get_template("chatml-tools")
    return tc.tokenizer_for_text(tokenizer, tpl.text, tpl.special_tokens_map), tpl


@pytest.fixture(scope="module")
def llama(tokenizer):
    tpl = get_template("llama3.1")
    return tc.tokenizer_for_text(tokenizer, tpl.text, tpl.special_tokens_map), tpl


@pytest.fixture(scope="module")
def qwen3(tokenizer):
    tpl = template_from_file(shared_file("chat-templates/templates/Qwen__Qwen3-0.6B.jinja"), "chat")
    return tc.tokenizer_for_text(tokenizer, tpl.text, tc.special_tokens_of("Qwen3", {})), tpl


def test_chatml_tools_learns_calls_not_results_schemas_or_system(chatml_tools):
    tok, tpl = chatml_tools
    runs, text = masked(tok, tpl, CASES["multi-turn-calls"])
    assert runs == [PARIS_CALL + "<|im_end|>", "18 degrees and cloudy in Paris.<|im_end|>",
                    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n'
                    "</tool_call><|im_end|>", "4 degrees in Oslo.<|im_end|>"]
    assert '<tool_response>\n{"temp": 18, "sky": "cloudy"}\n</tool_response>' in text
    assert "<tools>" in text and "You are a travel assistant." in text


def test_chatml_tools_parallel_calls_and_grouped_results(chatml_tools):
    tok, tpl = chatml_tools
    runs, text = masked(tok, tpl, CASES["parallel-calls"])
    assert runs == [PARIS_CALL + '\n<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>'
                    "<|im_end|>", "18 degrees, and it is 14:05.<|im_end|>"]
    assert '<|im_start|>user\n<tool_response>\n{"temp": 18}\n</tool_response>\n<tool_response>\n"14:05"\n' \
           "</tool_response><|im_end|>" in text


def test_chatml_tools_reasoning_learned_or_masked(chatml_tools):
    tok, tpl = chatml_tools
    case = CASES["reasoning-and-calls"]
    runs, _ = masked(tok, tpl, case)
    assert runs == ["<think>\nI need the weather first.\n</think>\n\n" + PARIS_CALL + "<|im_end|>",
                    "<think>\nRain is forecast.\n</think>\n\nYes, take one.<|im_end|>",
                    "<think>\nNo forecast tool for tomorrow.\n</think>\n\nI cannot tell yet.<|im_end|>"]
    runs, _ = masked(tok, tpl, case, train_on_reasoning=False)
    assert runs == ["<think>\n", "\n</think>\n\n" + PARIS_CALL + "<|im_end|>",
                    "<think>\n", "\n</think>\n\nYes, take one.<|im_end|>",
                    "<think>\n", "\n</think>\n\nI cannot tell yet.<|im_end|>"]
    # the batch path (marked render, fast tokenizer) gives the same labels
    inp = template_input(case[1], tpl, tokenizer=tok, tools=case[2])
    for flag in (True, False):
        assert encode_conversations(tok, [inp], tpl, train_on_reasoning=flag)[0] == \
            render_with_mask(tok, inp, tpl, train_on_reasoning=flag)


def test_chatml_tools_on_real_tool_data(chatml_tools):
    """The glaive demo and the stock tool-call rows: every tool call's text is learned, no tool
    result or tool schema is."""
    tok, tpl = chatml_tools
    cases = tc.glaive_cases(40) + tc.openai_cases("stock_toolcall_training.jsonl", 40)
    calls = results = 0
    for cid, messages, tools, documents in cases:
        inp = template_input(messages, tpl, tokenizer=tok, tools=tools)
        batch_ids, batch_labels = encode_conversations(tok, [inp], tpl)[0]
        ids, labels = render_with_mask(tok, inp, tpl)
        assert (ids, labels) == (batch_ids, batch_labels)
        runs = learned(tok, ids, labels)
        want = [m for m in messages if m["role"] == "assistant"]
        assert len(runs) == len(want), cid
        for m, run in zip(want, runs):
            assert run.endswith("<|im_end|>")
            for call in m.get("tool_calls") or []:
                args = call["function"]["arguments"]
                args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
                assert f'{{"name": "{call["function"]["name"]}", "arguments": {args}}}' in run, cid
                calls += 1
        for m in messages:
            if m["role"] == "tool":
                assert not any(m["content"] in r for r in runs), cid
                results += 1
        assert not any("<tools>" in r or "<tool_response>" in r for r in runs)
    assert calls >= 50 and results >= 20


def test_plain_chatml_masks_tool_results_and_system(tokenizer):
    tpl = get_template("chatml")
    tok = tc.tokenizer_for_text(tokenizer, tpl.text, {})
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking."}, {"role": "tool", "content": "18 degrees"},
            {"role": "assistant", "content": "18 degrees."}]
    ids, labels = render_with_mask(tok, template_input(msgs, tpl, tokenizer=tok), tpl)
    assert learned(tok, ids, labels) == ["Checking.<|im_end|>", "18 degrees.<|im_end|>"]


def test_llama31_prefix_masks_cover_calls_not_ipython_results(llama):
    tok, tpl = llama
    runs, text = masked(tok, tpl, CASES["multi-turn-calls"])
    assert runs == ['{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
                    "18 degrees and cloudy in Paris.<|eot_id|>",
                    '{"name": "get_weather", "parameters": "{\\"city\\": \\"Oslo\\", \\"unit\\": \\"c\\"}"}<|eot_id|>',
                    "4 degrees in Oslo.<|eot_id|>"]
    # the tool result (Llama writes string content through tojson) is in the text, not learned
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temp\\": 18, \\"sky\\": \\"cloudy\\"}"<|eot_id|>' in text
    assert text.count("<|begin_of_text|>") == 1 and '"name": "get_time"' in text  # schemas in the first user turn
    # Llama 3.1 writes no reasoning: the flag changes nothing
    assert masked(tok, tpl, CASES["reasoning-and-calls"], train_on_reasoning=False)[0] == \
        masked(tok, tpl, CASES["reasoning-and-calls"])[0]


def test_mistral_v03_masks_when_the_tool_schemas_move(tokenizer):
    """Mistral v0.3 writes ``[AVAILABLE_TOOLS]`` before the last user message, so an earlier
    turn's prefix differs from the whole render: the turn is found after the previous one, and
    neither the schemas nor the ``[TOOL_RESULTS]`` are learned."""
    tpl = get_template("mistral-v0.3")
    tok = tc.tokenizer_for_text(tokenizer, tpl.text, tpl.special_tokens_map)
    runs, text = masked(tok, tpl, CASES["multi-turn-calls"])
    assert runs == [' [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}] </s>',
                    " 18 degrees and cloudy in Paris. </s>",
                    ' [TOOL_CALLS] [{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\", \\"unit\\": '
                    '\\"c\\"}", "id": "call_2"}] </s>',
                    " 4 degrees in Oslo. </s>"]
    assert text.index("[AVAILABLE_TOOLS]") > text.index("18 degrees")
    assert '[TOOL_RESULTS] {"call_id": "call_1", "content": {"temp": 18, "sky": "cloudy"}} [/TOOL_RESULTS]' in text


def test_qwen3_mask_follows_dropped_reasoning(qwen3):
    """Qwen3 writes the reasoning of the turns after the last user message only: the earlier
    turn's reasoning is neither in the text nor learned; the last turn's is learned, or masked
    with ``train_on_reasoning=False`` (the ``<think>`` tags and the answer stay learned)."""
    tok, tpl = qwen3
    case = CASES["reasoning-several-turns"]
    runs, text = masked(tok, tpl, case)
    assert "Try 7" not in text
    assert runs == ["No: 91 = 7 x 13.<|im_end|>", "<think>\nNo divisor up to 9 divides 97.\n</think>\n\nYes.<|im_end|>"]
    runs, _ = masked(tok, tpl, case, train_on_reasoning=False)
    assert runs == ["No: 91 = 7 x 13.<|im_end|>", "<think>\n", "\n</think>\n\nYes.<|im_end|>"]


def test_qwen3_tool_calls_with_reasoning(qwen3):
    """Tool calls, tool results and reasoning together: the call turn and the answer before the
    last user message lose their reasoning (as Qwen3 writes them), the tool result is not learned."""
    tok, tpl = qwen3
    cid, messages, tools, docs = CASES["reasoning-and-calls"]
    messages = [{**m, "content": ""} if m.get("content", "") is None else m for m in messages]  # Qwen3 reads content
    runs, text = masked(tok, tpl, (cid, messages, tools, docs))
    assert "I need the weather first." not in text and "Rain is forecast." not in text
    assert runs == [PARIS_CALL + "<|im_end|>", "Yes, take one.<|im_end|>",
                    "<think>\nNo forecast tool for tomorrow.\n</think>\n\nI cannot tell yet.<|im_end|>"]
    assert '<tool_response>\n{"rain": true}\n</tool_response>' in text
    runs, _ = masked(tok, tpl, (cid, messages, tools, docs), train_on_reasoning=False)
    assert runs[-2:] == ["<think>\n", "\n</think>\n\nI cannot tell yet.<|im_end|>"]


def test_train_on_reasoning_is_a_validated_config_field_and_reaches_the_rows(chatml_tools):
    from pydantic import ValidationError

    from pipelines.train.config import TrainConfig
    from pipelines.train.data import tokenize

    assert TrainConfig().train_on_reasoning is True
    assert TrainConfig(train_on_reasoning=False).train_on_reasoning is False
    with pytest.raises(ValidationError):
        TrainConfig(train_on_reasoning="sometimes")
    tok, tpl = chatml_tools
    conv = template_input(CASES["reasoning-several-turns"][1], tpl, tokenizer=tok).messages
    on, s_on = tokenize(tok, [conv], tpl, 512)
    off, s_off = tokenize(tok, [conv], tpl, 512, train_on_reasoning=False)
    assert on[0]["input_ids"] == off[0]["input_ids"]
    gone = [i for i, (a, b) in enumerate(zip(on[0]["labels"], off[0]["labels"])) if a != b]
    assert tok.decode([on[0]["input_ids"][i] for i in gone]) == "Try 7: 7 x 13 = 91.No divisor up to 9 divides 97."
    assert s_on["loss_tokens"] - s_off["loss_tokens"] == len(gone)


def test_run_card_records_the_loss_mask_settings(tmp_path):
    from pipelines.render import get_template as gt
    from pipelines.train.card import build_card
    from pipelines.train.config import TrainConfig

    (tmp_path / "base").mkdir()
    for flag in (True, False):
        card = build_card(run_dir=tmp_path, config=TrainConfig(train_on_reasoning=flag), template=gt("chatml-tools"),
                          base_path=tmp_path / "base", base_name="b", data_stats={}, trainable=1, total_params=2,
                          steps=1, stopped=False, losses=[], eval_losses=[], metrics={}, train_time_s=0.0,
                          wall_time_s=0.0, device="cpu", tokens_seen=0, tokens_per_s=None, saved="adapter",
                          optim="adamw_torch")
        assert card["loss_mask"] == {"assistant_only": True, "train_on_reasoning": flag}
        assert card["config"]["train_on_reasoning"] is flag
