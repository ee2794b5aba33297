"""Parity with ``tokenizer.apply_chat_template`` on the tool and reasoning templates.

Every template of ../shared/data/chat-templates/templates whose text names ``tools``,
``tool_calls``, ``reasoning_content`` or ``thinking`` renders conversations with tool calls,
tool results, tool schemas, documents and reasoning (tests/pipelines/render/tool_cases.py):

* our text (the template input from :func:`pipelines.render.inputs.template_input`, rendered by
  our renderer) equals ``apply_chat_template(tokenize=False)`` character for character;
* our ids (:func:`pipelines.render.render_with_mask`) equal ``apply_chat_template(tokenize=True)``
  on a copy of the embedded SmolLM2 tokenizer carrying the template and its special tokens,
  except for conversations holding control-token strings in their text: those are counted apart,
  and their ids must decode to the same text with every such string kept as plain text;
* where transformers raises for a case, so do we, with the template's own message.
"""
from __future__ import annotations

import datetime as _dt
import json
import re

import pytest

from pipelines.render import (
    TemplateRenderError,
    control_strings_in,
    pinned_clock,
    render_chat,
    render_with_mask,
    template_from_text,
)
from pipelines.render.inputs import template_input
from tests.conftest import SHARED_DATA, shared_file
from tests.pipelines.render import tool_cases as tc

PINNED = _dt.datetime(2025, 7, 10, 12, 0, 0)  # dated templates (SmolLM3, Llama 3.1) read this clock
USES_TOOLS_OR_REASONING = re.compile(r"tools|tool_calls|reasoning_content|thinking")
NAMED = ("Llama-3.1", "Qwen2.5-7B", "Qwen3-0.6B", "Hermes-2-Pro", "DeepSeek-R1", "Kimi-K2-Thinking",
         "SmolLM3", "Mistral-7B-Instruct-v0.3", "command-r")


def _tool_templates() -> list[tuple[str, dict]]:
    """``[(file name, reference case)]``: each tool or reasoning template once, with the special
    tokens and extra context of the first reference case that uses it."""
    index_file = SHARED_DATA / "chat-templates" / "templates" / "INDEX.json"
    cases_file = SHARED_DATA / "chat-templates" / "chat_template_cases.json"
    if not (index_file.exists() and cases_file.exists()):
        return []
    cases = {c["name"]: c for c in json.loads(cases_file.read_text())["cases"]}
    out: dict[str, dict] = {}
    for entry in json.loads(index_file.read_text()):
        f = entry["template_file"]
        text = (index_file.parent / f).read_text(encoding="utf-8")
        if f not in out and USES_TOOLS_OR_REASONING.search(text):
            out[f] = cases[entry["case"]]
    return sorted(out.items())


TEMPLATES = _tool_templates()


@pytest.fixture(scope="module")
def corpus():
    """The conversations every template renders (71)."""
    return (tc.glaive_cases(24) + tc.openai_cases("stock_toolcall_training.jsonl", 14)
            + tc.openai_cases("stock_toolcall_validation.jsonl", 4)
            + tc.openai_cases("zava_retail_sft_test.jsonl.gz", 3)
            + tc.openai_cases("zava_retail_datagen_valid.jsonl.gz", 2)
            + tc.sky_t1_cases("sky_t1_32b_reflection0.5_amc23.jsonl.gz", 4)
            + tc.sky_t1_cases("sky_t1_27b_correct5k_minerva_math.jsonl.gz", 3)
            + tc.gsm8k_cases(6) + tc.written_cases())


class _PinnedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return PINNED


@pytest.fixture(scope="module")
def results(corpus, tokenizer):
    """``{file: [(case_id, outcome, detail)]}`` for every template and conversation; outcome is
    "equal" (text and ids equal HF's), "control" (text equal; control-token strings in the text,
    ids checked apart), or "raised" (both sides raised). Any mismatch fails in the tests."""
    import transformers.utils.chat_template_utils as ctu

    saved = ctu.datetime
    ctu.datetime = _PinnedDatetime  # transformers' strftime_now reads datetime.now() of its module
    out: dict[str, list] = {}
    try:
        with pinned_clock(PINNED):
            for fname, case in TEMPLATES:
                out[fname] = _run_template(fname, case, corpus, tokenizer)
    finally:
        ctu.datetime = saved
    return out


def _run_template(fname: str, case: dict, corpus, base) -> list:
    text = shared_file(f"chat-templates/templates/{fname}").read_text(encoding="utf-8")
    tokens = tc.special_tokens_of(fname, case["special_tokens"])
    tok = tc.tokenizer_for_text(base, text, tokens)
    tpl = template_from_text(text, name=fname)
    kw = case["extra_context"]
    rows = []
    for cid, messages, tools, documents in corpus:
        agp = messages[-1]["role"] == "user"  # a prompt: render it as for generation
        try:
            ref = tok.apply_chat_template(messages, tools=tools, documents=documents, tokenize=False,
                                          add_generation_prompt=agp, **kw)
        except Exception as e:  # noqa: BLE001 - parity: HF's own error, whatever its type
            inp = template_input(messages, tpl, tokenizer=tok, tools=tools, documents=documents,
                                 add_generation_prompt=agp)
            with pytest.raises(TemplateRenderError) as ours:
                render_chat(inp, tpl, **kw)
            assert str(e) in str(ours.value), (fname, cid)
            with pytest.raises(TemplateRenderError):
                render_with_mask(tok, inp, tpl, **kw)
            rows.append((cid, "raised", str(e)))
            continue
        inp = template_input(messages, tpl, tokenizer=tok, tools=tools, documents=documents,
                             add_generation_prompt=agp)
        ours = render_chat(inp, tpl, **kw)
        assert ours == ref, (fname, cid)
        try:
            ids, labels = render_with_mask(tok, inp, tpl, require_loss=False, **kw)
        except TemplateRenderError as e:  # no loss mask from prefixes: refused, with the reason
            assert "differently once later turns follow" in str(e), (fname, cid, str(e))
            ids, labels = tok(ours, add_special_tokens=False)["input_ids"], None
            rows.append((cid, "no prefix mask", None))
        ref_ids = list(tok.apply_chat_template(messages, tools=tools, documents=documents, tokenize=True,
                                               return_dict=True, add_generation_prompt=agp, **kw)["input_ids"])
        control = control_strings_in(inp.messages + [{"tools": tools, "documents": documents}], tok)
        if control:
            # kept as text: same characters, and no control id where the sample wrote the string
            assert tok.decode(ids) == ours, (fname, cid)
            assert ids != ref_ids and len(ids) > len(ref_ids), (fname, cid)
            rows.append((cid, "control", sorted({t for _, t in control})))
        else:
            assert ids == ref_ids, (fname, cid)
            rows.append((cid, "equal", None))
        assert labels is None or len(labels) == len(ids)
    return rows


def _count(results, outcome) -> int:
    return sum(1 for rows in results.values() for _, o, _ in rows if o == outcome)


def test_every_tool_and_reasoning_template_is_covered():
    shared_file("chat-templates/templates/INDEX.json")
    names = [f for f, _ in TEMPLATES]
    assert len(names) >= 20
    for model in NAMED:
        assert any(model.lower() in f.lower() for f in names), model


def test_text_and_ids_equal_apply_chat_template(results):
    compared = {f: sum(1 for _, o, _ in rows if o in ("equal", "control")) for f, rows in results.items()}
    assert sum(compared.values()) >= 200
    assert sum(1 for n in compared.values() if n) >= 8
    for model in ("Llama-3.1", "Qwen2.5-7B", "Qwen3-0.6B", "Hermes-2-Pro", "DeepSeek-R1", "Kimi-K2-Thinking",
                  "SmolLM3", "Mistral-7B-Instruct-v0.3"):
        f = next(f for f in results if model in f)
        assert compared[f] >= 25, (f, compared[f])
    # the sources each reached a comparison: glaive, both OpenAI files, Sky-T1, GSM8K, written cases
    kinds = {cid.split("-")[0] for rows in results.values() for cid, o, _ in rows if o == "equal"}
    assert {"glaive", "stock_toolcall_training", "zava_retail_sft_test", "sky_t1_32b_reflection0.5_amc23",
            "gsm8k", "multi", "parallel", "reasoning"} <= kinds


def test_control_token_text_is_counted_apart(results):
    """Only the written case with control-token strings in its text differs in ids (by design:
    the strings stay plain text); it is checked in every template that renders it."""
    control = [(f, cid) for f, rows in results.items() for cid, o, _ in rows if o == "control"]
    rendered = [f for f, rows in results.items() for cid, o, _ in rows if cid == "control-text" and o != "raised"]
    assert {cid for _, cid in control} == {"control-text"}
    assert len(control) == len(rendered) == _count(results, "control") >= 8


def test_template_errors_are_raised_on_both_sides(results):
    raised = {(f, cid): why for f, rows in results.items() for cid, o, why in rows if o == "raised"}
    assert raised[("meta-llama__Llama-3.1-8B-Instruct.jinja", "parallel-calls")] == \
        "This model only supports single tool-calls at once!"
    nemo = "mistralai__Mistral-Nemo-Instruct-2407.jinja"
    assert "roles must alternate" in raised[(nemo, "not-alternating")]


def test_prefix_masks_refused_only_where_the_template_rewrites_earlier_turns(results):
    """Command-R's tool-use template writes its instructions after the last user message, and
    Qwen3.5 opens earlier tool-call turns with an empty ``<think></think>`` only while they are
    last: no mask comes from prefixes there (render_with_mask says so), yet the text and ids agree."""
    refused = {f for f, rows in results.items() for _, o, _ in rows if o == "no prefix mask"}
    assert refused <= {"CohereForAI__c4ai-command-r-v01.ae1b4b3c0d79.jinja", "Qwen__Qwen3.5-4B.jinja"}
