"""A reviewer's edit of a conversation: checked with a message naming sample, message index
and field; merged so that every key the edit does not name stays as stored."""
from __future__ import annotations

import pytest

from datastore import Sample, WorkbenchError
from pipelines.review.adjudicate import apply_edit
from pipelines.review.edits import edited_messages, edited_tools, normalize_edit

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _sample() -> Sample:
    return Sample(kind="conversation", sample_id=7, extra={"tools": TOOLS, "source_id": "x"}, messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "content": None, "tool_calls": [CALL], "weight": 0},
        {"role": "tool", "tool_call_id": "call_1", "name": "f", "content": "1"},
        {"role": "assistant", "content": "done", "reasoning_content": "easy"}])


def test_unchanged_fields_keep_the_stored_text_byte_for_byte():
    s = _sample()
    edit = [{}, {"content": "", "tool_calls": [{"function": {"name": "f", "arguments": '{\n  "a": 1\n}'}}]},
            {"content": "1"}, {"content": "done", "reasoning_content": "easy"}]
    assert edited_messages(s, edit) == s.messages
    assert normalize_edit(s, {"messages": edit, "tools": TOOLS}) == {}     # nothing changed


def test_edited_fields_merge_and_other_keys_stay():
    s = _sample()
    edit = [{}, {"tool_calls": [{"function": {"name": " g ", "arguments": '{"a": 2}'}}]},
            {"content": "2"}, {"reasoning_content": "harder", "content": "done!"}]
    out = normalize_edit(s, {"messages": edit, "tools": '[{"type": "function", "function": {"name": "g"}}]'})
    assert out["messages"][1] == {"role": "assistant", "content": None, "weight": 0, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "g", "arguments": '{"a": 2}'}}]}
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "name": "f", "content": "2"}
    assert out["messages"][3] == {"role": "assistant", "content": "done!", "reasoning_content": "harder"}
    assert out["tools"] == [{"type": "function", "function": {"name": "g"}}]
    new = apply_edit(s, out)
    assert new.messages == out["messages"] and new.extra == {"tools": out["tools"], "source_id": "x"}
    assert apply_edit(s, {"tools": ""}).extra == {"source_id": "x"}           # tools removed


@pytest.mark.parametrize("edit, message", [
    ([{}, {"tool_calls": [{"function": {"name": "f", "arguments": "{'a': 1}"}}]}, {}, {}],
     "sample 7, message 1, field tool_calls[0].function.arguments: not valid JSON (Expecting property name "
     "enclosed in double quotes at line 1, column 2)"),
    ([{}, {"tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}, {}, {}],
     "sample 7, message 1, field tool_calls[0].function.arguments: must be a JSON object, got list"),
    ([{}, {"tool_calls": [{"function": {"name": " ", "arguments": "{}"}}]}, {}, {}],
     "sample 7, message 1, field tool_calls[0].function.name: a tool call needs a function name"),
    ([{}, {"tool_calls": []}, {}, {}],
     "sample 7, message 1, field tool_calls: expected 1 tool call(s) as stored"),
    ([{"content": "just text"}, {}, {}, {}],
     "sample 7, message 0, field content: this message holds typed content parts"),
    ([{}, {}, {"content": 3}, {}], "sample 7, message 2, field content: must be text, got int"),
    ([{}, {}], "sample 7, field messages: expected 4 message(s) as stored"),
])
def test_bad_edits_name_sample_message_and_field(edit, message):
    with pytest.raises(WorkbenchError) as e:
        edited_messages(_sample(), edit)
    assert str(e.value).startswith(message)


def test_tools_must_be_a_json_list_of_objects():
    with pytest.raises(WorkbenchError, match=r"^sample 7, field tools: not valid JSON"):
        edited_tools("[{", 7)
    with pytest.raises(WorkbenchError, match=r"^sample 7, field tools: must be a JSON list of tool schemas"):
        edited_tools('{"name": "f"}', 7)
    assert edited_tools("  ") is None and edited_tools(TOOLS) == TOOLS
