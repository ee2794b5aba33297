"""The fast render + tokenize path: identical ids and loss masks.

* :mod:`pipelines.render.fast_bpe` builds a tiktoken encoding from the embedded tokenizer and
  proves it equal (structure, merges = ranks, probe); it refuses tokenizers where that fails;
* its ids equal the HF tokenizer's on every hh-rlhf conversation, on the 53 rendered reference
  chat-template outputs, on whitespace runs and on code points across Unicode;
* ``encode_conversations`` on the fast path gives the same ``(ids, labels)`` as
  ``render_with_mask`` (HF tokenizer, per sample), and the marked renderer the same text and
  spans as the tracked render.
"""
from __future__ import annotations

import copy
import json

import pytest

from pipelines.render import encode_conversations, get_template, render_chat_text, render_with_mask
from pipelines.render import _idle_workers  # noqa: F401  (monkeypatched below)
from pipelines.render.fast_bpe import FAST_PATTERN, GPT2_PATTERN, fast_encoder, fast_encoder_status
from pipelines.render.templates import GEN_OPEN, marked_renderer
from tests.conftest import shared_file
from tests.pipelines.test_template_parity import hh_conversations


@pytest.fixture(scope="module")
def fe(tokenizer):
    enc, why = fast_encoder_status(tokenizer)
    assert why == "ok", why
    return enc


def _hf_ids(tokenizer, texts):
    return [e.ids for e in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_embedded_tokenizer_is_proven_and_patterns_differ_only_in_lookahead(fe):
    assert GPT2_PATTERN.replace(r"\s+(?!\S)|", "") == FAST_PATTERN
    assert fe.n_vocab == 49152 and fe.byte_len[fe.specials["<|im_end|>"]] == len("<|im_end|>")


def test_ids_equal_hf_on_every_hh_rlhf_conversation(tokenizer, fe):
    tpl = get_template("chatml")
    texts = [render_chat_text(tpl.text, c)[0] for c in hh_conversations(10**6)]
    assert len(texts) > 2000
    ours = [fe.encode(t) for t in texts]
    assert all(o is not None for o in ours)
    assert [o[0] for o in ours] == _hf_ids(tokenizer, texts)


def test_ids_equal_hf_on_rendered_reference_chat_templates(tokenizer, fe):
    cases = json.loads(shared_file("chat-templates/chat_template_cases.json").read_text())["cases"]
    texts = [c["hf_apply_chat_template_output"] for c in cases if c.get("hf_apply_chat_template_output")]
    assert len(texts) >= 40
    texts += [t.replace("<|", "< |") for t in texts]  # and with no added token left
    assert [fe.encode(t)[0] for t in texts] == _hf_ids(tokenizer, texts)


WS = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2007", "\u200a", "\u2028",
      "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1f", "\u200b", "\u180e"]


def test_whitespace_runs_before_words_added_tokens_and_end(tokenizer, fe):
    texts = []
    for a in WS:
        for b in WS:
            for after in ("word", "1", "!", "<|im_end|>", "", " x", "\u00e9"):
                texts += [f"x{a}{b}{after}", f"{a}{b}{a}{after}", f"a {a}{after}y", f"{a}{after}"]
    assert [fe.encode(t)[0] for t in texts] == _hf_ids(tokenizer, texts)


@pytest.mark.slow
def test_ids_equal_hf_across_unicode(tokenizer, fe):
    """Every BMP code point and every 7th one beyond, in letter, digit and space contexts: the
    regex classes (\\p{L}, \\p{N}, \\s) of tiktoken's engine and of Oniguruma agree."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000 and (c < 0x10000 or c % 7 == 0)]
    texts = []
    for i in range(0, len(cps), 2048):
        texts.append("".join(f"a{chr(c)}b {chr(c)}1{chr(c)}  {chr(c)}'s\n" for c in cps[i:i + 2048]))
    hf = _hf_ids(tokenizer, texts)
    ours = [fe.encode(t) for t in texts]
    bad = [i for i, (o, h) in enumerate(zip(ours, hf)) if o is not None and o[0] != h]
    assert not bad
    refused = [t for t, o in zip(texts, ours) if o is None]  # hold a byte the vocab lacks: HF path
    assert all(any(chr(c) in t for c in (4, 6, 0x13, 0x14, 0x16, 0x1D)) or
               any(0x40000 <= ord(ch) < 0xC0000 for ch in t) for t in refused)


def test_refuses_bytes_the_vocab_lacks_and_lone_surrogates(tokenizer, fe):
    assert fe.encode("a\x04b") is None  # HF drops U+0004 (not in the vocab, no unk): not ours to guess
    assert fe.encode("a\ud800b") is None
    conv = [{"role": "user", "content": "ctrl \x04 char"}, {"role": "assistant", "content": "ok \x06"}]
    tpl = get_template("chatml")
    assert encode_conversations(tokenizer, [conv] * 3, tpl) == [render_with_mask(tokenizer, conv, tpl)] * 3


EDGE = [
    [{"role": "user", "content": "Hi ☃ 你好"}, {"role": "assistant", "content": "  Hello\n\n"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"},
     {"role": "assistant", "content": "\n\nStarts with blank lines"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "😀 emoji first"},
     {"role": "user", "content": "again"}, {"role": "assistant", "content": "é\u0301 and   spaces   "}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": " leading space"}],
    [{"role": "user", "content": "use <|im_end|> here"}, {"role": "assistant", "content": "<|im_start|>no"}],
    [{"role": "user", "content": "marker \U000f0000 in text"}, {"role": "assistant", "content": "fine"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\t\u3000tab and ideographic space"}],
]


def test_encode_conversations_fast_equals_render_with_mask(tokenizer, fe):
    tpl = get_template("chatml")
    convs = hh_conversations(400) + EDGE
    assert fast_encoder(tokenizer, build=False) is fe  # built: the fast path is taken
    assert encode_conversations(tokenizer, convs, tpl) == [render_with_mask(tokenizer, c, tpl) for c in convs]


def test_worker_threads_give_the_same_result(tokenizer, fe, monkeypatch):
    import pipelines.render as R
    tpl = get_template("chatml")
    convs = hh_conversations(700) + EDGE
    inline = encode_conversations(tokenizer, convs, tpl)
    monkeypatch.setattr(R, "_idle_workers", lambda cpus: 2)
    assert encode_conversations(tokenizer, convs, tpl) == inline
    texts = [render_chat_text(tpl.text, c)[0] for c in convs]
    fe2 = copy.copy(fe)
    fe2.threads = 2
    assert fe2.encode_many(texts) == _hf_ids(tokenizer, texts)


@pytest.mark.slow
def test_all_hh_rlhf_labels_equal_render_with_mask(tokenizer, fe):
    tpl = get_template("chatml")
    convs = hh_conversations(10**6)
    assert encode_conversations(tokenizer, convs, tpl) == [render_with_mask(tokenizer, c, tpl) for c in convs]


def test_added_special_tokens_are_matched_like_hf(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["[INST]", "[/INST]", "<|eot_id|>"]})
    enc, why = fast_encoder_status(tok)
    assert why == "ok"
    text = "[INST] hi [/INST] there<|eot_id|>[INST][/INST]<|im_end|>"
    assert enc.encode(text)[0] == tok.backend_tokenizer.encode(text, add_special_tokens=False).ids
    tok.add_special_tokens({"additional_special_tokens": ["[INST]x"]})  # "[INST]" is a prefix of it
    assert fast_encoder_status(tok) == (None, "added token '[INST]' is a prefix of '[INST]x'")


def _tiny_bpe(merges):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from pipelines.render.fast_bpe import _unicode_to_bytes
    chars = sorted(_unicode_to_bytes(), key=lambda ch: _unicode_to_bytes()[ch])
    vocab = {ch: i for i, ch in enumerate(chars)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tk = Tokenizer(models.BPE(vocab, merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tk)


def test_refuses_a_bpe_whose_token_is_unreachable_by_its_merges():
    # "abc" comes from (ab, c), but on "abc" HF merges (b, c) first and stops at [a, bc];
    # tiktoken would return "abc" (a whole-piece hit): not equivalent, so refused.
    bad = _tiny_bpe([("b", "c"), ("a", "b"), ("ab", "c")])
    enc, why = fast_encoder_status(bad)
    assert enc is None and "condition c" in why
    good = _tiny_bpe([("a", "b"), ("b", "c"), ("ab", "c")])
    enc, why = fast_encoder_status(good)
    assert why == "ok"
    for t in ("abc abcabc bcab", "cab  abc\n\nabc", "a"):
        assert enc.encode(t)[0] == good.backend_tokenizer.encode(t).ids


def test_refuses_other_tokenizer_kinds():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    enc, why = fast_encoder_status(PreTrainedTokenizerFast(tokenizer_object=tk))
    assert enc is None and "pre-tokenizer" in why


def _tracked(text, messages, **ctx):
    return render_chat_text(text, messages, track=True, **ctx)


def test_marked_renderer_refuses_a_template_assigning_inside_generation():
    text = shared_file("chat-templates/templates/LiquidAI__LFM2.5-VL-450M.jinja").read_text(encoding="utf-8")
    assert "{%- set content" in text and marked_renderer(text) is None  # encode_conversations: tracked render


@pytest.mark.parametrize("source", ["chatml", "HuggingFaceTB__SmolLM3-3B.jinja"])
def test_marked_renderer_equals_tracked_render(source):
    from pipelines.render.templates import pinned_clock
    if source == "chatml":
        text = get_template("chatml").text
    else:
        text = shared_file(f"chat-templates/templates/{source}").read_text(encoding="utf-8")
    run = marked_renderer(text, source)
    assert run is not None
    ctx = {"bos_token": "<s>", "eos_token": "</s>"}
    plain = {"tools": None, "documents": None, "add_generation_prompt": False, **ctx}
    convs = hh_conversations(60) + [c for c in EDGE if not any(GEN_OPEN in m["content"] for m in c)]
    import datetime as dt
    with pinned_clock(dt.datetime(2025, 7, 10)):
        for conv in convs:
            assert run(conv, plain) == _tracked(text, conv, **ctx)


def test_marked_renderer_refuses_captured_generation_blocks():
    captured = ("{% for m in messages %}{% set x %}{% generation %}{{ m['content'] }}{% endgeneration %}"
                "{% endset %}{{ x }}{% endfor %}")
    assigns = "{% for m in messages %}{% generation %}{% set y = 1 %}{{ m['content'] }}{% endgeneration %}{% endfor %}"
    in_string = "{{ '{% generation %}' }}{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    assert marked_renderer(captured) is None and marked_renderer(assigns) is None
    assert marked_renderer(in_string) is None
    ws = ("{%- for m in messages %}\n  {%- generation %}\n  {{ m['content'] }}  \n  {% endgeneration -%}\n"
          "  x\n{% endfor %}")
    run = marked_renderer(ws)
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert run(msgs, {"add_generation_prompt": False}) == _tracked(ws, msgs)
