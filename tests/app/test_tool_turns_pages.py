"""Tool calls, tool results, tool schemas and reasoning on the pages that show a sample: the
Datasets page shows them as parts of their turn, the Review edit form edits them (and saves
every other key as it was), the Templates page labels them in the loss-mask view."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pipelines import catalog
from pipelines.formats import import_file
from pipelines.review import adjudicate, annotate, tasks
from tests.app.pages import button, open_page
from tests.app.test_templates_page import tok  # noqa: F401 - the embedded tokenizer fixture
from tests.pipelines.review.helpers import add_users

TIMEOUT_S = 120
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}]
AGENT = {"messages": [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "reasoning_content": "The user wants live data, so call the tool.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}],
     "weight": 1},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temp": 18}'},
    {"role": "assistant", "content": "It is 18 degrees in Paris."}], "tools": TOOLS}
# Arguments given as a dict, an image part, and arguments that are not JSON.
PARTS = {"messages": [
    {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                 {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}]},
    {"role": "assistant", "content": "Let me look it up.",
     "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": {"q": "cat"}}},
                    {"id": "c3", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}]},
    {"role": "tool", "tool_call_id": "c2", "name": "lookup", "content": "a cat"},
    {"role": "assistant", "content": "A cat."}]}

# A ChatML template that writes tools, reasoning and tool calls (the Qwen2.5 layout): the
# tool calls sit inside the generation block, tool results outside it.
TOOLS_CHATML = r"""{%- if tools -%}
{{- '<|im_start|>system\n' -}}
{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\n\n' -}}{%- endif -%}
{{- '# Tools\n<tools>' -}}
{%- for t in tools -%}{{- '\n' + (t | tojson) -}}{%- endfor -%}
{{- '\n</tools><|im_end|>\n' -}}
{%- elif messages[0]['role'] == 'system' -%}
{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
{{- '<|im_start|>assistant\n' -}}
{%- generation -%}
{%- if message.reasoning_content -%}{{- '<think>\n' + message.reasoning_content + '\n</think>\n' -}}{%- endif -%}
{%- if message.content -%}{{- message.content -}}{%- endif -%}
{%- for tc in message.tool_calls or [] -%}
{{- '<tool_call>\n{"name": "' + tc.function.name + '", "arguments": ' + (tc.function.arguments if tc.function.arguments is string else tc.function.arguments | tojson) + '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>' -}}
{%- endgeneration -%}
{{- '\n' -}}
{%- elif message['role'] == 'tool' -%}
{{- '<|im_start|>tool\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' -}}
{%- elif message['role'] != 'system' or not loop.first -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"""


def _import(ws: Path, tmp: Path) -> None:
    src = tmp / "agent.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in (AGENT, PARTS)) + "\n", encoding="utf-8")
    rep = import_file(ws, src, "agent", user="admin")
    assert rep.imported == 2


@pytest.fixture
def ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    add_users(ws)
    _import(ws, tmp_path)
    tasks.open_task(ws, "cora", name="tc", dataset="agent", pool=["ann"], overlap_k=1)
    return ws


def _head(ws: Path, sample_id: int):
    _, rows = catalog.sample_page(ws, "agent", catalog.dataset_log(ws, "agent")[0].number,
                                  after_id=sample_id - 1, limit=1)
    assert rows and rows[0].sample_id == sample_id
    return rows[0]


def test_datasets_page_shows_tool_calls_results_tools_and_reasoning(ws):
    at = open_page(ws, "pages/1_Datasets.py", "admin", timeout_s=TIMEOUT_S)
    md = [m.value for m in at.markdown]
    assert "🔧 **get\\_weather** · `call_1`" in md     # an id in code shows as written (no "call\\_1")
    codes = [c.value for c in at.code]
    # arguments stored as a JSON string are shown parsed and indented; dict arguments too
    assert '{\n  "city": "Paris",\n  "unit": "celsius"\n}' in codes
    assert '{\n  "q": "cat"\n}' in codes
    assert "{not json" in codes          # invalid JSON shown as written, with a warning
    assert [w.value for w in at.warning] == ["The arguments are not valid JSON; shown as written."]
    reasoning = [e for e in at.expander if e.label == "Reasoning"]
    assert len(reasoning) == 1 and not reasoning[0].proto.expanded
    assert [t.value for t in reasoning[0].text] == ["The user wants live data, so call the tool."]
    tools = [e for e in at.expander if e.label.startswith("Tools")]
    assert len(tools) == 1 and not tools[0].proto.expanded and "get\\_weather" in tools[0].label
    assert json.loads(tools[0].code[0].value) == TOOLS
    captions = [c.value for c in at.caption]
    assert "**tool result** · call `call_1` · **get\\_weather**" in captions
    assert any("image url · https" in c and "example\\.org/cat\\.png" in c for c in captions)
    assert "What is in this picture?" in [t.value for t in at.text]
    # a pure tool call has no "(empty)" text; the roles stay in order
    assert [c.name for c in at.chat_message][:4] == ["user", "assistant", "tool", "assistant"]
    assert "(empty)" not in captions


def _key(at, name: str) -> str:
    it = at.session_state["review_item"]["tc"]
    return f"rv-{it.task_id}-{it.sample.sample_id}-{it.round}-{name}"


def _open_on(ws: Path, sample_id: int):
    """The Review page as ann, moved to ``sample_id`` (the queue order is random)."""
    at = open_page(ws, "pages/3_Review.py", "ann", timeout_s=TIMEOUT_S)
    while at.session_state["review_item"]["tc"].sample.sample_id != sample_id:
        button(at, "Next").click().run()
    return at


def _review_on(ws: Path, sample_id: int):
    at = _open_on(ws, sample_id)
    at.session_state[_key(at, "decision")] = "edit"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_review_edit_form_changes_a_tool_call_and_keeps_every_other_key(ws):
    before = _head(ws, 1)
    at = _review_on(ws, 1)
    args = at.text_area(key=_key(at, "edit_m2_call0_args"))
    assert json.loads(args.value) == {"city": "Paris", "unit": "celsius"}
    assert at.text_area(key=_key(at, "edit_m2_reasoning_content")).value == AGENT["messages"][2]["reasoning_content"]
    assert at.text_input(key=_key(at, "edit_m2_call0_name")).value == "get_weather"
    assert at.text_area(key=_key(at, "edit_m3_content")).value == '{"temp": 18}'
    assert json.loads(at.text_area(key=_key(at, "edit_tools")).value) == TOOLS
    args.input('{"city": "Lyon", "unit": "celsius"}').run()
    at.text_area(key=_key(at, "edit_m2_reasoning_content")).input("Lyon, not Paris.").run()
    button(at, "Submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    saved = annotate.my_annotations(ws, "ann", "tc")[0]
    assert saved["sample_id"] == 1 and saved["decision"] == "edit"
    # the adjudicator sees the sample's turns and, of the answer, the edited message only
    adj = open_page(ws, "pages/4_Adjudication.py", "dora", timeout_s=TIMEOUT_S)
    assert adj.selectbox(key="adj_sample").value == 1
    codes = [c.value for c in adj.code]
    assert codes.count('{\n  "city": "Paris",\n  "unit": "celsius"\n}') == 1      # the sample
    assert codes.count('{\n  "city": "Lyon",\n  "unit": "celsius"\n}') == 1       # the edit
    assert "message 2 (edited)" in [c.value for c in adj.caption]
    assert [e.label for e in adj.expander if e.label == "Reasoning"] == ["Reasoning", "Reasoning"]
    adjudicate.adjudicate(ws, "dora", "tc", 1, pick=saved["annotation_id"], note="Lyon")
    after = _head(ws, 1)
    call = after.messages[2]["tool_calls"][0]
    # arguments stored as a JSON string stay a string; id, type, weight and the rest are kept
    assert call == {"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon", "unit": "celsius"}'}}
    assert after.messages[2]["reasoning_content"] == "Lyon, not Paris."
    assert {k: v for k, v in after.messages[2].items() if k not in ("tool_calls", "reasoning_content")} == \
        {"role": "assistant", "content": None, "weight": 1}
    assert after.messages[:2] == before.messages[:2] and after.messages[3:] == before.messages[3:]
    assert after.extra == before.extra


def test_review_edit_with_invalid_json_arguments_names_message_and_field_and_saves_nothing(ws):
    at = _review_on(ws, 1)
    at.text_area(key=_key(at, "edit_m2_call0_args")).input('{"city": "Lyon",}').run()
    button(at, "Submit").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(
        "sample 1, message 2, field tool_calls[0].function.arguments: not valid JSON"), errors
    assert annotate.my_annotations(ws, "ann", "tc") == []
    at.text_area(key=_key(at, "edit_tools")).input('[{"type": "function"').run()
    at.text_area(key=_key(at, "edit_m2_call0_args")).input('{"city": "Lyon"}').run()
    button(at, "Submit").click().run()
    assert [e.value for e in at.error][0].startswith("sample 1, field tools: not valid JSON")
    assert annotate.my_annotations(ws, "ann", "tc") == []


def test_review_edit_of_dict_arguments_and_tool_result_keeps_their_form(ws):
    at = _review_on(ws, 2)
    assert at.text_area(key=_key(at, "edit_m1_call1_args")).value == "{not json"   # as written
    at.text_area(key=_key(at, "edit_m1_call1_args")).input('{"fixed": true}').run()
    at.text_area(key=_key(at, "edit_m1_call0_args")).input('{"q": "kitten"}').run()
    at.text_area(key=_key(at, "edit_m2_content")).input("a kitten").run()
    button(at, "Submit").click().run()
    assert not at.error, [e.value for e in at.error]
    saved = annotate.my_annotations(ws, "ann", "tc")[0]
    adjudicate.adjudicate(ws, "dora", "tc", 2, pick=saved["annotation_id"])
    after = _head(ws, 2)
    calls = after.messages[1]["tool_calls"]
    assert calls[0]["function"]["arguments"] == {"q": "kitten"}          # a dict stays a dict
    assert calls[1]["function"]["arguments"] == '{"fixed": true}'        # a string stays a string
    assert after.messages[2] == {"role": "tool", "tool_call_id": "c2", "name": "lookup", "content": "a kitten"}
    assert after.messages[0] == PARTS["messages"][0]                      # content parts untouched


def _spans(html: str, label: str) -> list[tuple[str, str]]:
    """``(title, text)`` of the rendered spans of one label."""
    cls = "wb-" + label.replace(" ", "-")
    return [(t, re.sub("<br>", "\n", x)) for t, x in
            re.findall(rf'<span class="{cls}" title="([^"]*)"[^>]*>(.*?)</span>', html)]


def test_templates_page_labels_tool_parts_and_marks_calls_learned_and_results_masked(tmp_path, tok):
    import html as H
    ws = tmp_path / "ws"
    ws.mkdir()
    _import(ws, tmp_path)
    from pipelines.render import list_templates
    registered = {f"{t.kind}/{t.name}" for t in list_templates()}
    at = open_page(ws, "pages/2_Templates.py", timeout_s=TIMEOUT_S)
    at.selectbox(key="tpl_dataset").select("agent").run()
    at.selectbox(key="tpl_sample").select(1).run()
    if "chat/chatml-tools" in registered:
        at.selectbox(key="tpl_template").select("chat/chatml-tools").run()
    else:
        at.selectbox(key="tpl_template").select("Custom template").run()
        at.text_area(key="tpl_custom_text").input(TOOLS_CHATML).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rendered = next(m.value for m in at.markdown if m.value.startswith('<div class="wb-rendered"'))
    calls = _spans(rendered, "tool call")
    results = _spans(rendered, "tool result")
    reasoning = _spans(rendered, "reasoning")
    tools = _spans(rendered, "tools")
    assert calls and all(t.endswith("· learned") for t, _ in calls)
    assert "get_weather" in H.unescape("".join(x for _, x in calls))
    assert "Paris" in H.unescape("".join(x for _, x in calls))
    assert results and all(t == "tool result" for t, _ in results)        # masked
    assert H.unescape("".join(x for _, x in results)) == '{"temp": 18}'
    assert reasoning and "live data" in H.unescape("".join(x for _, x in reasoning))
    assert tools and all(t == "tools" for t, _ in tools) and "Current weather" in H.unescape("".join(x for _, x in tools))
    loss = {r["part"]: r["loss"] for r in next(d for d in at.dataframe if "loss" in d.value.columns).value.to_dict("records")}
    assert loss == {"system": "off", "tools": "off", "user": "off", "reasoning": "on", "tool call": "on",
                    "tool result": "off", "assistant": "on"}
    legend = next(m.value for m in at.markdown if 'class="wb-legend"' in m.value)
    for label in ("tool call", "tool result", "tools", "reasoning"):
        assert f">{label}<" in legend


def test_tools_stored_as_text_are_parsed_and_text_that_is_not_json_is_shown_as_written():
    from streamlit.testing.v1 import AppTest

    def script():
        from app.common import render_sample
        from datastore import Sample
        msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        render_sample(Sample(kind="conversation", sample_id=3, messages=msgs,
                             extra={"tools": '[{"name": "f", "parameters": {}}]'}))
        render_sample(Sample(kind="conversation", sample_id=4, messages=msgs, extra={"tools": "[{oops"}))

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    labels = [e.label for e in at.expander]
    assert labels[0] == "Tools (1): f" and json.loads(at.expander[0].code[0].value) == [{"name": "f", "parameters": {}}]
    assert "Tools (not valid JSON)" in labels and "[{oops" in [c.value for c in at.code]
    assert [w.value for w in at.warning] == [
        "sample 4: field tools is not valid JSON (Expecting property name enclosed in double quotes at "
        "character 2); shown as written"]


def test_choosing_edit_then_coming_back_shows_the_draft_and_the_stored_names(ws):
    at = _open_on(ws, 1)
    at.segmented_control(key=_key(at, "decision")).set_value("edit").run()   # autosaves before the form exists
    assert annotate.open_item(ws, "ann", "tc", 1).draft["edit"]["messages"] == [{}, {}, {}, {}, {}]
    at.text_area(key=_key(at, "edit_m2_call0_args")).input('{"city": "Nice"}').run()   # autosaves the typed text
    again = _open_on(ws, 1)
    assert again.text_input(key=_key(again, "edit_m2_call0_name")).value == "get_weather"
    assert json.loads(again.text_area(key=_key(again, "edit_m2_call0_args")).value) == {"city": "Nice"}
    assert again.text_area(key=_key(again, "edit_m3_content")).value == '{"temp": 18}'


@pytest.mark.parametrize("part, label", [
    ({"type": "image_url", "image_url": {"url": "https://example.org/a.png"}}, "image url · https://example.org/a.png"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 300}},
     "image url · 322 characters of inline data"),
    ({"type": "input_audio", "input_audio": {"data": "B" * 1000, "format": "wav"}},
     "input audio · 1,000 characters of inline data · wav"),
    ({"type": "image", "image": "C" * 500}, "image · 500 characters of inline data"),
    ({"type": "image", "url": "/data/cat.jpg"}, "image · /data/cat.jpg"),
])
def test_media_parts_are_labelled_with_where_or_how_much(part, label):
    from app.common import media_label
    assert media_label(part) == label
