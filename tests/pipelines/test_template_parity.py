"""Parity with Hugging Face ``apply_chat_template``.

* the 53 reference cases of ../shared/data/chat-templates: our rendering equals the stored
  ``hf_apply_chat_template_output`` character for character (or raises the stored error with the
  template's own message), with ``strftime_now`` pinned to the cases' date (2025-07-10);
* the ``add_generation_prompt`` value a case does not store: compared live against
  ``apply_chat_template`` on a stub tokenizer carrying the same template and tokens, clock pinned;
* the registered Llama 3.1 / Mistral v0.3 / Zephyr templates render like the Hub templates;
* the embedded model: ids equal ``apply_chat_template(tokenize=True)`` for real conversations.
"""
from __future__ import annotations

import datetime as _dt
import gzip
import json
import re

import pytest

from pipelines.render import (
    TemplateRenderError,
    control_strings_in,
    encode_conversations,
    get_template,
    render_chat_text,
    render_with_mask,
    template_from_tokenizer,
)
from tests.conftest import SHARED_DATA, shared_file

PINNED = _dt.datetime(2025, 7, 10, 12, 0, 0)  # the JS test's mocked clock, used for the stored outputs
CASES_FILE = SHARED_DATA / "chat-templates" / "chat_template_cases.json"
_CASES = json.loads(CASES_FILE.read_text())["cases"] if CASES_FILE.exists() else []
_IDS = [c["name"] for c in _CASES] or ["absent"]


def _case(i: int) -> dict:
    shared_file("chat-templates/chat_template_cases.json")
    return _CASES[i]


def _template_text(case: dict) -> str:
    index = json.loads(shared_file("chat-templates/templates/INDEX.json").read_text())
    fname = next(e["template_file"] for e in index if e["case"] == case["name"])
    text = shared_file(f"chat-templates/templates/{fname}").read_text(encoding="utf-8")
    assert text == case["chat_template"]
    return text


def _tokens(case: dict) -> dict:
    return {k: v for k, v in case["special_tokens"].items() if v is not None}


def _ours(case: dict, text: str, add_generation_prompt: bool) -> str:
    return render_chat_text(text, case["messages"], add_generation_prompt=add_generation_prompt,
                            tools=case["tools"], documents=case["documents"], name=case["name"], now=PINNED,
                            **_tokens(case), **case["extra_context"])[0]


class _PinnedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return PINNED


@pytest.fixture
def hf_pinned(monkeypatch):
    """transformers' ``strftime_now`` reads ``datetime.now()`` of its module: pin it."""
    import transformers.utils.chat_template_utils as ctu
    monkeypatch.setattr(ctu, "datetime", _PinnedDatetime)


def _stub_tokenizer(case: dict, text: str):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, unk_token="x")),
                                  **_tokens(case))
    tok.chat_template = text
    return tok


def _error_text(msg: str) -> str:
    return msg.split(": ", 1)[1] if re.match(r"^\w+Error: ", msg) else msg


@pytest.mark.parametrize("i", range(max(len(_CASES), 1)), ids=_IDS)
def test_stored_case_equals_hf_output(i):
    case = _case(i)
    text = _template_text(case)
    stored_agp = bool(case["add_generation_prompt_in_js_test"])
    if case["hf_apply_chat_template_error"]:
        with pytest.raises(TemplateRenderError) as ei:
            _ours(case, text, stored_agp)
        assert _error_text(case["hf_apply_chat_template_error"]) in str(ei.value)
    else:
        assert _ours(case, text, stored_agp) == case["hf_apply_chat_template_output"]


@pytest.mark.parametrize("i", range(max(len(_CASES), 1)), ids=_IDS)
def test_other_generation_prompt_equals_live_hf(i, hf_pinned):
    case = _case(i)
    text = _template_text(case)
    agp = not bool(case["add_generation_prompt_in_js_test"])
    tok = _stub_tokenizer(case, text)
    try:
        ref = tok.apply_chat_template(case["messages"], tools=case["tools"], documents=case["documents"],
                                      tokenize=False, add_generation_prompt=agp, **case["extra_context"])
    except Exception as e:  # noqa: BLE001 - parity: the same error, with the template's own message
        with pytest.raises(TemplateRenderError) as ei:
            _ours(case, text, agp)
        assert str(e) in str(ei.value)
        return
    assert _ours(case, text, agp) == ref


def test_raise_exception_keeps_template_message(hf_pinned):
    """A template that demands alternating roles: HF raises; we raise the same message."""
    case = next((c for c in _CASES if "alternate" in c["chat_template"]), None)
    if case is None:
        pytest.skip("no reference template with a role-alternation check")
    text = case["chat_template"]
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    tok = _stub_tokenizer(case, text)
    with pytest.raises(Exception) as hf_err:
        tok.apply_chat_template(bad, tokenize=False)
    with pytest.raises(TemplateRenderError) as ours:
        render_chat_text(text, bad, **_tokens(case))
    assert str(hf_err.value) in str(ours.value)


@pytest.mark.parametrize("name,case_name", [
    ("llama3.1", "meta-llama/Llama-3.1-8B-Instruct"),
    ("mistral-v0.3", "mistralai/Mistral-7B-Instruct-v0.3 (JSON Schema)"),
    ("zephyr", "HuggingFaceH4/zephyr-7b-beta (add_generation_prompt=false)"),
    ("zephyr", "HuggingFaceH4/zephyr-7b-beta (add_generation_prompt=true)"),
])
def test_registered_templates_render_like_the_hub(name, case_name):
    shared_file("chat-templates/chat_template_cases.json")
    case = next(c for c in _CASES if c["name"] == case_name)
    tpl = get_template(name)
    for agp in (False, True):
        assert _ours(case, tpl.text, agp) == _ours(case, case["chat_template"], agp)
    assert _ours(case, tpl.text, bool(case["add_generation_prompt_in_js_test"])) == \
        case["hf_apply_chat_template_output"]


# ----------------------------------------------------------------- embedded model: token ids

# `tokenizer`: the embedded model's tokenizer, a fixture in tests/conftest.py


def hh_conversations(n: int) -> list[list[dict]]:
    """Real multi-turn conversations: the ``chosen`` side of hh-rlhf's harmless-base test split."""
    path = shared_file("hh-rlhf-harmless-base-test/test.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            parts = re.split(r"\n\n(Human|Assistant): ", json.loads(line)["chosen"])
            msgs = [{"role": "user" if r == "Human" else "assistant", "content": c}
                    for r, c in zip(parts[1::2], parts[2::2])]
            if msgs and msgs[-1]["role"] == "assistant" and msgs[-1]["content"].strip():
                out.append(msgs)
            if len(out) >= n:
                break
    return out


@pytest.mark.parametrize("which", ["tokenizer", "chatml"])
def test_embedded_model_ids_equal_apply_chat_template(tokenizer, which):
    convs = hh_conversations(150)
    convs.append([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ☃ 你好"},
                  {"role": "assistant", "content": "  Hello\n\n"}])
    tpl = template_from_tokenizer(tokenizer) if which == "tokenizer" else get_template("chatml")
    saved = tokenizer.chat_template
    try:
        tokenizer.chat_template = tpl.text
        checked = 0
        batch = encode_conversations(tokenizer, convs, tpl)
        for conv, (bids, blabels) in zip(convs, batch):
            assert not control_strings_in(conv, tokenizer)
            ref = tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
            ids, labels = render_with_mask(tokenizer, conv, tpl)
            assert ids == list(ref) and bids == ids and blabels == labels
            checked += 1
    finally:
        tokenizer.chat_template = saved
    assert checked == len(convs)
