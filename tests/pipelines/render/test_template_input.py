"""The one template input: messages kept whole, the system column, tools, reasoning, content
parts and media, and the special tokens every path passes (``wb render`` included)."""
from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from datastore.samples import Sample
from pipelines.render import (
    TemplateInputError,
    get_template,
    list_templates,
    render_chat,
    render_sample,
    render_with_mask,
    template_from_text,
    template_input,
)

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def _tool_sample(**kw) -> Sample:
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL], "x_note": "kept"},
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "21 degrees.", "thinking": "Read the tool result."}]
    return Sample(kind="conversation", messages=msgs, sample_id=5, **kw)


def test_turns_keep_every_key_and_put_the_system_column_first():
    s = _tool_sample(system="Use tools.")
    turns = s.turns()
    assert turns[0] == {"role": "system", "content": "Use tools."}
    assert turns[1:] == s.messages           # every key, as stored
    turns[2]["content"] = "changed"          # copies: the stored sample is untouched
    assert s.messages[1]["content"] is None
    opened = Sample(kind="conversation", system="Column.", messages=[{"role": "system", "content": "Own."},
                                                                     {"role": "user", "content": "u"}])
    assert [t["content"] for t in opened.turns()] == ["Own.", "u"]   # never two system prompts
    assert Sample(kind="conversation", system="", messages=[{"role": "user", "content": "u"}]).turns() == [
        {"role": "user", "content": "u"}]


def test_template_input_reads_tools_string_reasoning_and_system():
    s = _tool_sample(system="Use tools.", extra={"tools": json.dumps(TOOLS)})
    inp = template_input(s, get_template("llama3.1"))
    assert inp.sample_id == 5 and inp.tools == TOOLS and inp.documents is None
    assert inp.messages[0] == {"role": "system", "content": "Use tools."}
    assert inp.messages[2]["tool_calls"] == [CALL] and inp.messages[2]["x_note"] == "kept"
    assert inp.messages[4]["reasoning_content"] == "Read the tool result."
    assert inp.messages[4]["thinking"] == "Read the tool result."
    assert inp.special_tokens == {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    assert inp.variables()["tools"] == TOOLS
    assert "thinking" not in s.messages[3] or "reasoning_content" not in s.messages[3]  # source unchanged
    bad = Sample(kind="conversation", messages=[{"role": "user", "content": "u"}], sample_id=9,
                 extra={"tools": "[{not json"})
    with pytest.raises(TemplateInputError, match=r"sample 9: field 'tools' is not valid JSON"):
        template_input(bad)


def test_a_tool_call_turn_reaches_the_template(tokenizer):
    """Llama 3.1 writes the call's JSON and the tool schemas, as ``apply_chat_template`` does
    with the same messages, tools and tokens."""
    s = _tool_sample(extra={"tools": TOOLS})
    tpl = get_template("llama3.1")
    text = render_sample(s, tpl)
    assert text.startswith("<|begin_of_text|>") and text.count("<|begin_of_text|>") == 1
    assert '{"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}<|eot_id|>' in text
    assert '"description": "Weather of a city"' in text
    inp = template_input(s, tpl)
    assert text == tokenizer.apply_chat_template(inp.messages, chat_template=tpl.text, tools=inp.tools,
                                                 tokenize=False, **inp.special_tokens)


def test_messages_that_are_no_messages_are_refused_with_sample_and_index():
    with pytest.raises(TemplateInputError, match=r"^sample 3 message 1: a message must be an object"):
        template_input([{"role": "user", "content": "u"}, ["assistant", "a"]], sample_id=3)
    with pytest.raises(TemplateInputError, match=r"^conversation message 0: field 'role' is missing"):
        template_input([{"content": "u"}])


@pytest.mark.parametrize("part,kind", [({"type": "image_url", "image_url": {"url": "https://x/y.png"}}, "an image"),
                                       ({"type": "image"}, "an image"),
                                       ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "audio"),
                                       ({"type": "audio", "path": "a.wav"}, "audio")])
def test_media_parts_are_refused_by_a_text_only_template(part, kind):
    s = Sample(kind="conversation", sample_id=12, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]},
        {"role": "assistant", "content": "A cat."}])
    msg = f"sample 12 message 0: content part 1 is {kind} ('{part['type']}'); template 'chatml' renders text only"
    with pytest.raises(TemplateInputError) as e:
        render_sample(s, "chatml")
    assert str(e.value) == msg
    assert s.messages[0]["content"][1] == part            # kept in the data, never dropped
    media = template_from_text("{% for m in messages %}{% for p in m.content if m.content is not string %}"
                               "{{ '<image>' if p.type.startswith('image') else '<audio>' if 'audio' in p.type "
                               "else p.text }}{% endfor %}{% endfor %}", name="media")
    assert render_chat(template_input(s, media), media) == "What is this?" + ("<image>" if "image" in kind else "<audio>")


def test_text_parts_render_as_transformers_renders_them(tokenizer):
    """Typed parts go to the template unchanged, as ``apply_chat_template`` passes them: a
    template that reads parts renders them as transformers does; one that concatenates
    ``message['content']`` fails where transformers fails, naming sample, message and field."""
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]},
            {"role": "assistant", "content": "Hello"}]
    parts = ("{% for m in messages %}<{{ m.role }}>{% if m.content is string %}{{ m.content }}{% else %}"
             "{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}{{ eos_token }}{% endfor %}")
    ours = render_chat(template_input(msgs, template_from_text(parts, name="parts"), tokenizer=tokenizer),
                       template_from_text(parts, name="parts"))
    assert ours == tokenizer.apply_chat_template(msgs, chat_template=parts, tokenize=False)
    assert ours == "<user>Hi there<|im_end|><assistant>Hello<|im_end|>"
    with pytest.raises(TypeError):
        tokenizer.apply_chat_template(msgs, tokenize=False)   # SmolLM2's own template concatenates
    s = Sample(kind="conversation", messages=msgs, sample_id=21)
    smol = template_from_text(tokenizer.chat_template, name="smollm2")
    for call in (lambda: render_sample(s, smol), lambda: render_with_mask(tokenizer, template_input(s, smol), smol)):
        with pytest.raises(TemplateInputError, match=r"^sample 21 message 0: field 'content' is a list of typed "
                                                       r"parts, and template 'smollm2' writes content as text only"):
            call()


# ---------------------------------------------------------------- special tokens on every path

def _conversation() -> Sample:
    return Sample(kind="conversation", system="Be brief.", sample_id=1,
                  messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])


def test_every_template_declares_the_special_tokens_it_uses():
    import jinja2.meta

    from pipelines.render.templates import chat_environment
    for tpl in list_templates("chat") + list_templates("instruction"):
        used = {v for v in jinja2.meta.find_undeclared_variables(chat_environment().parse(tpl.text))
                if v.endswith("_token")}
        optional = {"eos_token"} if tpl.kind == "instruction" else set()   # Alpaca: `is defined` guard
        assert used - optional <= set(tpl.special_tokens_map), (tpl.name, used)


def test_bos_appears_once_in_the_ids(tokenizer):
    """The embedded SmolLM2 tokenizer with each template's special tokens added: the ids equal
    ``apply_chat_template(tokenize=True)`` and hold the template's BOS exactly once."""
    for tpl in list_templates("chat"):
        tok = copy.deepcopy(tokenizer)
        toks = tpl.special_tokens_map
        tok.add_special_tokens({**toks, "additional_special_tokens": [t for t in tpl.control_tokens
                                                                      if t not in toks.values()]})
        inp = template_input(_conversation(), tpl, tokenizer=tok)
        ids, labels = render_with_mask(tok, inp, tpl)
        hf = tok.apply_chat_template(inp.messages, chat_template=tpl.text, tokenize=True, return_dict=False,
                                     **inp.special_tokens)
        assert ids == list(hf), tpl.name
        if "bos_token" in toks:
            assert ids[0] == tok.convert_tokens_to_ids(toks["bos_token"]) and ids.count(ids[0]) == 1, tpl.name
        assert any(x != -100 for x in labels), tpl.name


@pytest.fixture(scope="module")
def render_ws(tmp_path_factory):
    from pipelines.formats import import_file
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "c.json"
    src.write_text(json.dumps([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
                                "system": "Be brief."}]))
    import_file(ws, src, "conv", user="t")
    ins = ws / "i.jsonl"
    ins.write_text(json.dumps({"instruction": "Add 2 and 2.", "input": "", "output": "4"}) + "\n")
    import_file(ws, ins, "inst", user="t")
    return ws


EXPECTED_START = {"chatml": "<|im_start|>system\nBe brief.<|im_end|>\n", "zephyr": "<|system|>\nBe brief.</s>\n",
                  "llama3.1": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
                  "mistral-v0.3": "<s> [INST] Hi [/INST] Hello </s>"}


@pytest.mark.parametrize("kind", ["chat", "instruction"])
def test_wb_render_works_for_every_registered_template(render_ws, kind):
    from app.cli import app
    for tpl in list_templates(kind):
        r = CliRunner().invoke(app, ["--workspace", str(render_ws), "render", "--dataset",
                                     "conv" if kind == "chat" else "inst", "--template", tpl.name, "--json"])
        assert r.exit_code == 0, (tpl.name, r.output)
        text = json.loads(r.output)["samples"][0]["text"]
        if kind == "chat":
            assert text.startswith(EXPECTED_START.get(tpl.name, "")), (tpl.name, text)
            assert "Hi" in text and "Hello" in text, (tpl.name, text)
            assert "Be brief." in text or tpl.name == "mistral-v0.3"  # Mistral v0.3 writes no system message
            bos = tpl.special_tokens_map.get("bos_token")
            if bos and "bos_token" in tpl.text:
                assert text.startswith(bos) and text.count(bos) == 1, (tpl.name, text)
        else:
            assert text.endswith("### Instruction:\nAdd 2 and 2.\n\n### Response:4"), text  # Stanford: output right after


def test_a_text_only_training_run_refuses_media_naming_sample_and_message(tokenizer):
    from pipelines.train.data import tokenize
    ok = Sample(kind="conversation", sample_id=1, messages=[{"role": "user", "content": "Hi"},
                                                            {"role": "assistant", "content": "Hello"}])
    image = Sample(kind="conversation", sample_id=2, messages=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Look:"},
        {"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image", "url": "cat.png"}]},
        {"role": "assistant", "content": "A cat."}])
    rows, stats = tokenize(tokenizer, [ok], get_template("chatml"), 64)
    assert stats["examples"] == 1
    with pytest.raises(TemplateInputError, match=r"^sample 2 message 2: content part 1 is an image \('image'\); "
                                                   r"template 'chatml' renders text only$"):
        tokenize(tokenizer, [ok, image], get_template("chatml"), 64)


def test_encode_conversations_gives_each_input_its_own_tools(tokenizer):
    from pipelines.render import encode_conversations
    tpl = template_from_text(
        "{% if tools %}<|im_start|>system\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}<|im_end|>{% endgeneration %}{% else %}{{ m.content }}<|im_end|>{% endif %}\n{% endfor %}",
        name="tools-chatml")
    plain = template_input(_conversation(), tpl, tokenizer=tokenizer)
    with_tools = template_input(_tool_sample(extra={"tools": TOOLS}).turns()[:1] + [
        {"role": "assistant", "content": "Let me check."}], tpl, tokenizer=tokenizer, tools=TOOLS)
    got = encode_conversations(tokenizer, [plain, with_tools, plain], tpl)
    want = [render_with_mask(tokenizer, x, tpl) for x in (plain, with_tools, plain)]
    assert got == want
    assert "get_weather" in tokenizer.decode(got[1][0]) and "get_weather" not in tokenizer.decode(got[0][0])
