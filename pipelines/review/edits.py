"""A reviewer's edit of a conversation: the edited fields checked and merged onto the stored
messages, every other key of each message kept as it was.

The edit form sends ``{"messages": [...], "tools": ...}``: one dict per stored message (same
order and count) holding only the fields the form edits: ``content`` (text), ``reasoning_content``
(text), ``tool_calls`` (``[{"function": {"name", "arguments"}}]``, one per stored call, the
arguments as JSON text or as a dict) and, for the conversation, ``tools`` (the JSON schemas, as
JSON text or a list). Tool calls follow the OpenAI chat format that transformers'
``apply_chat_template`` takes: ``{"id", "type": "function", "function": {"name", "arguments"}}``,
where ``arguments`` is a JSON string or a dict; an edit keeps the form the message had (a
string stays a string, a dict a dict).
"""
from __future__ import annotations

import dataclasses
import json

from datastore import Sample, WorkbenchError


def _where(sample_id, index: int | None, field: str) -> str:
    at = f"sample {sample_id}" if sample_id is not None else "the sample"
    return f"{at}, message {index}, field {field}" if index is not None else f"{at}, field {field}"


def _json(text: str, sample_id, index: int | None, field: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WorkbenchError(f"{_where(sample_id, index, field)}: not valid JSON ({e.msg} at line {e.lineno}, "
                             f"column {e.colno})") from None


def _text_field(old: dict, edit: dict, key: str, sample_id, index: int) -> dict:
    """``old`` with ``edit[key]`` (text) set; an empty text where the message had none keeps
    the message as it was (no key added)."""
    if key not in edit or edit[key] == old.get(key):
        return old
    value = edit[key]
    if value is not None and not isinstance(value, str):
        raise WorkbenchError(f"{_where(sample_id, index, key)}: must be text, got {type(value).__name__}")
    if value in (None, "") and old.get(key) in (None, ""):
        return old
    if key == "content" and isinstance(old.get("content"), list):
        raise WorkbenchError(f"{_where(sample_id, index, key)}: this message holds typed content parts; "
                             "they are not edited as text")
    return {**old, key: value}


def _arguments(old, new, sample_id, index: int, field: str):
    """The edited arguments in the form the stored ones had (JSON string or dict)."""
    parsed = _json(new, sample_id, index, field) if isinstance(new, str) else new
    if not isinstance(parsed, dict):
        raise WorkbenchError(f"{_where(sample_id, index, field)}: must be a JSON object, "
                             f"got {type(parsed).__name__}")
    if isinstance(old, str):
        try:
            if json.loads(old) == parsed:
                return old                    # unchanged: the stored text, byte for byte
        except json.JSONDecodeError:
            pass
        return json.dumps(parsed, ensure_ascii=False)
    return parsed


def _tool_calls(old: dict, edit: dict, sample_id, index: int) -> dict:
    if "tool_calls" not in edit:
        return old
    stored, edited = old.get("tool_calls") or [], edit["tool_calls"]
    if not isinstance(edited, list) or len(edited) != len(stored):
        raise WorkbenchError(f"{_where(sample_id, index, 'tool_calls')}: expected {len(stored)} tool call(s) "
                             "as stored (an edit changes calls, it does not add or remove them)")
    calls = []
    for j, (call, new) in enumerate(zip(stored, edited)):
        where = f"tool_calls[{j}].function"
        fn = (call.get("function") if isinstance(call, dict) else None) or {}
        new_fn = (new.get("function") if isinstance(new, dict) else None) or {}
        if not isinstance(new_fn, dict):
            raise WorkbenchError(f"{_where(sample_id, index, where)}: must be an object with name and arguments")
        name = new_fn.get("name", fn.get("name"))
        if not isinstance(name, str) or not name.strip():
            raise WorkbenchError(f"{_where(sample_id, index, where + '.name')}: a tool call needs a function name")
        args = fn.get("arguments")
        if "arguments" in new_fn:
            args = _arguments(fn.get("arguments"), new_fn["arguments"], sample_id, index, where + ".arguments")
        calls.append({**call, "function": {**fn, "name": name.strip(), "arguments": args}})
    return {**old, "tool_calls": calls}


def edited_tools(new, sample_id=None):
    """The conversation's tool schemas after an edit: ``new`` as JSON text (empty: none) or a
    list of JSON-schema dicts. Raises WorkbenchError naming the sample and the field."""
    if isinstance(new, str):
        if not new.strip():
            return None
        new = _json(new, sample_id, None, "tools")
    if new is None:
        return None
    if not isinstance(new, list) or not all(isinstance(t, dict) for t in new):
        raise WorkbenchError(f"{_where(sample_id, None, 'tools')}: must be a JSON list of tool schemas (objects)")
    return new


def edited_messages(sample: Sample, edits: list) -> list[dict]:
    """The sample's stored messages with ``edits`` merged in (see the module docstring).

    Returns a new list; each message keeps every key the edit does not name. Raises
    WorkbenchError naming the sample, the message index and the field: a count of messages or
    tool calls other than stored, text fields that are not text, tool-call arguments that are
    not valid JSON or not a JSON object, an empty function name.
    """
    stored = sample.messages or []
    if not isinstance(edits, list) or len(edits) != len(stored):
        raise WorkbenchError(f"{_where(sample.sample_id, None, 'messages')}: expected {len(stored)} message(s) "
                             "as stored (an edit changes messages, it does not add or remove them)")
    out = []
    for i, (old, new) in enumerate(zip(stored, edits)):
        if not isinstance(new, dict):
            raise WorkbenchError(f"{_where(sample.sample_id, i, 'message')}: must be an object")
        m = dict(old)
        for key in ("content", "reasoning_content"):
            m = _text_field(m, new, key, sample.sample_id, i)
        out.append(_tool_calls(m, new, sample.sample_id, i))
    return out


def normalize_edit(sample: Sample, edit: dict) -> dict:
    """An edit answer checked against the sample it edits: ``messages`` become the whole edited
    message list and ``tools`` the parsed schemas, each kept only when it changes something;
    ``instruction`` / ``response`` pass through. Raises WorkbenchError (see
    :func:`edited_messages`)."""
    out = {k: v for k, v in edit.items() if k not in ("messages", "tools")}
    if "messages" in edit:
        msgs = edited_messages(sample, edit["messages"])
        if msgs != (sample.messages or []):
            out["messages"] = msgs
    if "tools" in edit:
        before = (sample.extra or {}).get("tools")
        tools = edited_tools(edit["tools"], sample.sample_id)
        if isinstance(before, str):          # stored as text: compare what it means
            try:
                before = edited_tools(before)
            except WorkbenchError:
                pass
        if tools != before:
            out["tools"] = tools
    return out


def apply_conversation_edit(sample: Sample, edit: dict) -> Sample:
    """``sample`` (a copy) with the ``messages`` and ``tools`` of a normalized edit applied: the
    messages replace the stored ones, the tools go to ``extra["tools"]`` (removed when None);
    every other field and key is kept. Checked again against this sample (it may have
    changed since the edit was answered)."""
    s = dataclasses.replace(sample)
    if "messages" in edit:
        s.messages = edited_messages(sample, edit["messages"])
    if "tools" in edit:
        extra = dict(sample.extra or {})
        tools = edited_tools(edit["tools"], sample.sample_id)
        if tools is None:
            extra.pop("tools", None)
        else:
            extra["tools"] = tools
        s.extra = extra or None
    return s
