"""The Alpaca instruction template against Stanford Alpaca's own prompt strings.

PROMPT_DICT below is copied from tatsu-lab/stanford_alpaca, train.py (commit 15b51ae); its
SupervisedDataset picks ``prompt_input`` when ``example.get("input", "") != ""`` and builds each
training example as ``source + f"{example['output']}{tokenizer.eos_token}"`` (``preprocess``),
learning only the target.
"""
from __future__ import annotations

import json

import pytest

from datastore import Sample
from pipelines.formats import import_file
from pipelines.render import TemplateRenderError, get_template, render_instruction, render_sample, render_with_mask
from pipelines.render.inputs import template_input

PROMPT_DICT = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}
EXAMPLES = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."},
    {"instruction": "Translate to French.", "input": "Good morning, {name}!", "output": "Bonjour, {name} !"},
    {"instruction": "Summarize:\n\nline two", "input": "A text\nwith lines.\n", "output": " Short.\n"},
]


def stanford_source(example: dict) -> str:
    """train.py's choice and format_map, as written there."""
    prompt = PROMPT_DICT["prompt_input"] if example.get("input", "") != "" else PROMPT_DICT["prompt_no_input"]
    return prompt.format_map(example)


@pytest.mark.parametrize("example", EXAMPLES, ids=["no-input", "input", "newlines"])
def test_prompt_and_target_are_stanfords_byte_for_byte(example):
    prompt_only = {k: v for k, v in example.items() if k != "output"}
    assert render_instruction(prompt_only).encode("utf-8") == stanford_source(example).encode("utf-8")
    text, spans = render_instruction({**example, "eos_token": "</s>"}, with_spans=True)
    target = f"{example['output']}</s>"
    assert text.encode("utf-8") == (stanford_source(example) + target).encode("utf-8")
    assert [text[a:b] for a, b in spans] == [target]


def test_template_file_holds_both_header_sentences_verbatim():
    text = get_template("alpaca").text
    for prompt in PROMPT_DICT.values():
        assert prompt[: prompt.index("\n\n")] in text


def test_mask_learns_exactly_output_and_eos_with_input(tokenizer):
    s = Sample(kind="instruction", instruction="Translate to French.", input="Good morning.", output="Bonjour.")
    tpl = get_template("alpaca")
    inp = template_input(s, tpl, tokenizer=tokenizer)
    ids, labels = render_with_mask(tokenizer, inp.messages, tpl, **inp.variables())
    example = {"instruction": s.instruction, "input": s.input, "output": s.output}
    assert tokenizer.decode(ids) == stanford_source(example) + s.output + tokenizer.eos_token
    learned = [i for i, lab in zip(ids, labels) if lab != -100]
    assert tokenizer.decode(learned).endswith(tokenizer.eos_token)
    # the learned tokens are exactly the tail that holds output + eos
    first = next(k for k, lab in enumerate(labels) if lab != -100)
    assert all(lab != -100 for lab in labels[first:])
    assert tokenizer.decode(ids[first:]) == s.output + tokenizer.eos_token


def test_system_and_history_render_in_the_stated_layout(tokenizer):
    s = Sample(kind="instruction", system="You answer in French.", history=[["Hi.", "Salut."], ["Thanks.", "Merci."]],
               instruction="Translate.", input="Good night.", output="Bonne nuit.")
    expected = ("You answer in French.\n\n"
                + PROMPT_DICT["prompt_input"].split("### Instruction:")[0]
                + "### Instruction:\nHi.\n\n### Response:Salut.\n\n"
                + "### Instruction:\nThanks.\n\n### Response:Merci.\n\n"
                + "### Instruction:\nTranslate.\n\n### Input:\nGood night.\n\n### Response:Bonne nuit.")
    assert render_sample(s, "alpaca") == expected
    tpl = get_template("alpaca")
    inp = template_input(s, tpl, tokenizer=tokenizer)
    ids, labels = render_with_mask(tokenizer, inp.messages, tpl, **inp.variables())
    assert tokenizer.decode(ids) == expected + tokenizer.eos_token
    first = next(k for k, lab in enumerate(labels) if lab != -100)
    assert tokenizer.decode(ids[first:]) == "Bonne nuit." + tokenizer.eos_token  # history is context only
    assert all(lab != -100 for lab in labels[first:])


def test_what_the_layout_cannot_hold_is_refused_never_cut(tokenizer):
    calls = [{"role": "user", "content": "Weather?"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}]
    with pytest.raises(TemplateRenderError, match=r"message 1 .*tool_calls"):
        render_with_mask(tokenizer, calls, "alpaca")
    two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(TemplateRenderError, match="message 1 is a 'user' turn"):
        render_with_mask(tokenizer, two_users, "alpaca")
    s = Sample(kind="instruction", instruction=None, output="x", sample_id=42)
    with pytest.raises(TemplateRenderError, match="sample 42"):
        render_sample(s, "alpaca")


def test_whitespace_only_input_warns_and_states_the_rule(tmp_workspace, tmp_path):
    f = tmp_path / "a.jsonl"
    rows = [{"instruction": "Name a color.", "input": "  \t", "output": "Blue."},
            {"instruction": "Name a fruit.", "input": "", "output": "Apple."}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rep = import_file(tmp_workspace, f, "a", user="admin")
    assert rep.imported == 2 and rep.n_warnings == 1
    w = rep.warnings[0]
    assert w["line"] == 1 and "'input' is only whitespace" in w["message"]
    assert "no-input prompt" in w["message"] and "Stanford" in w["message"]
    s = Sample(kind="instruction", instruction="Name a color.", input="  \t", output="Blue.")
    assert render_sample(s, "alpaca") == stanford_source({"instruction": "Name a color.", "input": ""}) + "Blue."


def test_large_file_with_a_whitespace_only_input_also_warns(tmp_workspace, tmp_path):
    from pipelines.formats.fast_alpaca import MIN_BYTES
    f = tmp_path / "big.jsonl"
    row = {"instruction": "Name a color. " + "x" * 200, "input": "", "output": "Blue."}
    n = MIN_BYTES // len(json.dumps(row)) + 10
    lines = [json.dumps(row)] * n
    lines[n // 2] = json.dumps({**row, "input": " "})
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = import_file(tmp_workspace, f, "big", user="admin")
    assert rep.imported == n and rep.n_warnings == 1 and rep.warnings[0]["line"] == n // 2 + 1


def test_templates_page_view_marks_every_field_of_the_stanford_layout(tokenizer):
    from app.template_view import build_view
    s = Sample(kind="instruction", system="Be brief.", history=[["Hi.", "Hello."]], instruction="Translate.",
               input="Good night.", output="Bonne nuit.", sample_id=7)
    view = build_view(s, get_template("alpaca"), tokenizer)
    assert view.text == render_sample(s, "alpaca") + tokenizer.eos_token
    marked = [(view.text[a:b], lab) for a, b, lab in view.pieces if lab]
    assert marked == [("Be brief.", "system"), ("Hi.", "instruction"), ("Hello.", "output"),
                      ("Translate.", "instruction"), ("Good night.", "input"), ("Bonne nuit.", "output")]
