"""Conversation checks of preflight: what a reader of the rendered text cannot see.

Each check takes one sample's template input (:func:`pipelines.render.inputs.template_input`) and
a :class:`CheckContext` (the training template) and returns :class:`Finding` items, each naming the
sample id, the message index (in the stored ``messages``; None for the conversation-level
``system`` column or ``tools``), the field and a severity. :data:`CHECKS` is the registry that
:func:`run_checks` (and so :func:`pipelines.preflight.run_preflight`) iterates.

``not_rendered``
    Text the template never writes. Each non-blank text field (``content`` or the ``text`` of a
    content part, ``reasoning_content`` / ``thinking`` / ``reasoning``, ``name``, tool call
    ``arguments``) is replaced by a unique sentinel, the input rendered with the template, and every
    field whose sentinel is absent from the output is reported: a system message Mistral v0.3 drops,
    a ``name`` ChatML ignores, reasoning Qwen3 strips from earlier turns. Dropped content and tool
    call arguments are errors (the model would train on a conversation without them); a dropped
    ``name`` or reasoning is a warning (templates drop them by design, the same way at serving).
``empty_turn``
    An assistant answer or a user turn whose content is missing, null, ``""`` or only whitespace,
    or a list of parts none of which holds text or other data
    (:func:`pipelines.formats.conversation.empty_turns`, the rule the import applies). An assistant
    turn with ``tool_calls`` is not empty. Empty answers are errors (the model learns to say
    nothing), empty user turns warnings.
``invisible_chars``
    Zero-width and bidirectional control characters
    (:data:`pipelines.filters.textnorm.INVISIBLE_CHARS`) inside any text field: a warning naming
    the code points and the first offset.
``mixed_normal_forms``
    A sample holding both composed characters (text not NFD-stable) and decomposed sequences (text
    not NFC-stable), e.g. ``"é"`` as U+00E9 in one place and ``"e" + U+0301`` in another
    (``unicodedata.is_normalized``; Unicode Standard Annex #15): the same word tokenizes two ways.
    A warning on each field that is not NFC.
``tool_calls``
    Tool call arguments that are not valid JSON, that do not validate against the declared tool's
    JSON schema (``parameters``, checked with the ``jsonschema`` library, draft chosen by the
    schema's ``$schema``, 2020-12 otherwise), or that call a tool the sample does not declare
    (when it declares tools); a declared schema that is not valid JSON Schema; a tool result
    (role ``tool``) whose ``tool_call_id`` matches no earlier assistant tool call, or that follows
    no tool call at all. Errors; a tool result without ``tool_call_id`` after calls that have ids is
    a warning (matched by position, as ShareGPT ``observation`` turns are).

Tools are read as transformers' ``get_json_schema`` writes them
(``{"type": "function", "function": {"name", "description", "parameters"}}``) or bare
(``{"name", "parameters"}``).
"""
from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from datastore.errors import WorkbenchError
from pipelines.filters.textnorm import invisible_chars

__all__ = ["CHECKS", "DESCRIPTIONS", "CheckContext", "Finding", "check_empty_turns", "check_invisible_chars",
           "check_mixed_normal_forms", "check_not_rendered", "check_tool_calls", "run_checks"]

Severity = Literal["error", "warning"]

# reasoning keys in the order the renderer reads them (pipelines.render.templates.prepare_messages)
_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


class Finding(BaseModel):
    """One problem in one field of one sample.

    ``message_index`` is the 0-based index in the stored ``messages`` (for instruction samples,
    in the turns ``Sample.turns()`` gives); None for a conversation-level field (``system``,
    ``tools[k]...``). ``field`` is a path inside the message (``content``, ``content[1].text``,
    ``tool_calls[0].function.arguments``) or the conversation-level field."""

    check: str
    severity: Severity
    sample_id: int | None
    message_index: int | None
    field: str
    message: str

    def line(self) -> str:
        """``[error] sample 7, message 2, content: ...``"""
        where = f"message {self.message_index}" if self.message_index is not None else "conversation"
        return f"[{self.severity}] {self.check}: sample {self.sample_id}, {where}, {self.field}: {self.message}"


@dataclass
class CheckContext:
    """What the checks need beside the sample: the training template (a
    :class:`pipelines.render.Template`), or None to skip the render check."""

    template: Any = None


@dataclass
class _Where:
    """Maps an index of the template input's messages to the stored message index and field
    prefix: a conversation's ``system`` column is written first by the template input."""

    sample_id: int | None
    offset: int

    def at(self, i: int) -> tuple[int | None, str]:
        if i < self.offset:
            return None, "system"
        return i - self.offset, ""


def _where(inp, sample=None) -> _Where:
    offset = 0
    if sample is not None and getattr(sample, "kind", None) == "conversation":
        offset = max(0, len(inp.messages) - len(sample.messages or []))
    return _Where(inp.sample_id, offset)


def _finding(w: _Where, check: str, severity: Severity, i: int | None, field: str, message: str) -> Finding:
    idx, col = w.at(i) if i is not None else (None, "")
    if col:  # the system column: its only field is itself
        field = col
    return Finding(check=check, severity=severity, sample_id=w.sample_id, message_index=idx, field=field,
                   message=message)


def _blank(text) -> bool:
    return not isinstance(text, str) or not text.strip()


def _reasoning_key(m: dict) -> str | None:
    """The key of a message's reasoning, as the source named it: the renderer reads the first of
    ``reasoning_content``, ``thinking``, ``reasoning`` that is set, and the template input copies
    ``thinking`` into ``reasoning_content``, so an equal ``thinking`` is the source's key."""
    key = next((k for k in _REASONING_KEYS if m.get(k) is not None), None)
    if key == "reasoning_content" and m.get("thinking") == m["reasoning_content"]:
        return "thinking"
    return key


def _text_fields(m: dict) -> Iterator[tuple[str, str]]:
    """``(field path, text)`` of every text field of one message, blank ones included."""
    c = m.get("content")
    if isinstance(c, str):
        yield "content", c
    elif isinstance(c, list):
        for k, part in enumerate(c):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield f"content[{k}].text", part["text"]
    key = _reasoning_key(m)
    if key is not None and isinstance(m[key], str):
        yield key, m[key]
    if isinstance(m.get("name"), str):
        yield "name", m["name"]
    for j, call in enumerate(m.get("tool_calls") or []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            yield f"tool_calls[{j}].function.arguments", fn["arguments"]


# --------------------------------------------------------------------------- not rendered

def _sentinel(n: int) -> str:
    # letters and digits only: survives strip/trim, tojson and splitting on markup
    return f"wbsentinel{n:05d}q"


def _with_sentinels(messages: list[dict]) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """A copy of ``messages`` with each non-blank text field replaced by a sentinel, and
    ``[(message index, field, sentinel)]``. Only the first reasoning key counts (the renderer
    reads that one); dict arguments become ``{"wbsentinel": sentinel}``."""
    out, marks = [], []

    def mark(i, field):
        s = _sentinel(len(marks))
        marks.append((i, field, s))
        return s

    for i, m in enumerate(messages):
        m = dict(m)
        c = m.get("content")
        if isinstance(c, str) and not _blank(c):
            m["content"] = mark(i, "content")
        elif isinstance(c, list):
            parts = []
            for k, part in enumerate(c):
                if isinstance(part, dict) and not _blank(part.get("text")):
                    part = {**part, "text": mark(i, f"content[{k}].text")}
                parts.append(part)
            m["content"] = parts
        key = _reasoning_key(m)
        if key is not None and not _blank(m[key]):
            s = mark(i, key)
            for k in _REASONING_KEYS:
                if k in m:
                    m[k] = s
        if not _blank(m.get("name")):
            m["name"] = mark(i, "name")
        if isinstance(m.get("tool_calls"), list):
            calls = []
            for j, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                args = fn.get("arguments") if isinstance(fn, dict) else None
                if isinstance(args, str) and not _blank(args):
                    call = {**call, "function": {**fn, "arguments": mark(i, f"tool_calls[{j}].function.arguments")}}
                elif isinstance(args, dict) and args:
                    s = mark(i, f"tool_calls[{j}].function.arguments")
                    call = {**call, "function": {**fn, "arguments": {"wbsentinel": s}}}
                calls.append(call)
            m["tool_calls"] = calls
        out.append(m)
    return out, marks


def _field_kind(field: str) -> str:
    if field.startswith("content"):
        return "content"
    if field.startswith("tool_calls"):
        return "tool call arguments"
    return "reasoning" if field in _REASONING_KEYS else field


def check_not_rendered(inp, ctx: CheckContext, w: _Where) -> list[Finding]:
    """Text fields the template does not write (see the module doc). A template that fails on the
    input gives no finding here (preflight reports the render error itself)."""
    if ctx.template is None:
        return []
    from pipelines.render import render_chat

    msgs, marks = _with_sentinels(inp.messages)
    if not marks:
        return []
    try:
        text = render_chat(msgs, ctx.template, add_generation_prompt=inp.add_generation_prompt, **inp.variables())
    except WorkbenchError:
        return []
    out = []
    name = getattr(ctx.template, "name", str(ctx.template))
    for i, field, s in marks:
        if s in text:
            continue
        kind = _field_kind(field)
        role = inp.messages[i].get("role")
        sev: Severity = "error" if kind in ("content", "tool call arguments") else "warning"
        out.append(_finding(w, "not_rendered", sev, i, field,
                            f"template '{name}' does not write the {kind} of this {role} message"))
    return out


# --------------------------------------------------------------------------- empty turns

def check_empty_turns(inp, ctx: CheckContext, w: _Where) -> list[Finding]:
    """Empty assistant answers (errors) and user turns (warnings), as
    :func:`pipelines.formats.conversation.empty_turns` defines them (the import's rule)."""
    from pipelines.formats.conversation import empty_turns

    out = []
    for i, role, how in empty_turns(inp.messages):
        if role == "assistant":
            out.append(_finding(w, "empty_turn", "error", i, "content",
                                f"empty answer: the assistant content is {how} and there is no tool call"))
        else:
            out.append(_finding(w, "empty_turn", "warning", i, "content", f"empty user turn: the content is {how}"))
    return out


# --------------------------------------------------------------------------- Unicode

def _all_texts(inp) -> Iterator[tuple[int, str, str]]:
    for i, m in enumerate(inp.messages):
        for field, text in _text_fields(m):
            yield i, field, text


def check_invisible_chars(inp, ctx: CheckContext, w: _Where) -> list[Finding]:
    """Zero-width and bidi control characters inside text (warnings)."""
    out = []
    for i, field, text in _all_texts(inp):
        found = invisible_chars(text)
        if found:
            cps = ", ".join(sorted({f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}" for _, ch in found}))
            out.append(_finding(w, "invisible_chars", "warning", i, field,
                                f"{len(found)} invisible character(s) ({cps}), first at character {found[0][0]}"))
    return out


def check_mixed_normal_forms(inp, ctx: CheckContext, w: _Where) -> list[Finding]:
    """Composed and decomposed forms in one sample (warnings on the fields that are not NFC)."""
    texts = list(_all_texts(inp))
    composed = [(i, f) for i, f, t in texts if not unicodedata.is_normalized("NFD", t)]
    decomposed = [(i, f) for i, f, t in texts if not unicodedata.is_normalized("NFC", t)]
    if not composed or not decomposed:
        return []
    def where(i, f):
        if (i, f) in composed:
            return "this field"
        ci, cf = composed[0]
        return "the system prompt" if w.at(ci)[0] is None else f"message {w.at(ci)[0]} {cf}"

    return [_finding(w, "mixed_normal_forms", "warning", i, f,
                     f"decomposed characters (not NFC) here, composed ones in {where(i, f)}: the same "
                     "text tokenizes two ways; normalise the dataset to NFC") for i, f in decomposed]


# --------------------------------------------------------------------------- tool calls

def _tool_schemas(tools) -> dict[str, tuple[int, Any]]:
    """``{name: (index in tools, parameters schema or None)}`` of the declared tools."""
    out = {}
    for k, t in enumerate(tools or []):
        if not isinstance(t, dict):
            continue
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn.get("name"), str):
            out[fn["name"]] = (k, fn.get("parameters"))
    return out


def _validator(schema):
    import jsonschema
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def check_tool_calls(inp, ctx: CheckContext, w: _Where) -> list[Finding]:
    """Tool call arguments (JSON, schema, declared tool) and tool result ids (see the module doc)."""
    import jsonschema

    out: list[Finding] = []
    declared = _tool_schemas(inp.tools)
    validators: dict[str, Any] = {}
    for name, (k, schema) in declared.items():
        if isinstance(schema, dict):
            try:
                validators[name] = _validator(schema)
            except jsonschema.SchemaError as e:
                out.append(Finding(check="tool_calls", severity="error", sample_id=w.sample_id, message_index=None,
                                   field=f"tools[{k}].parameters",
                                   message=f"tool '{name}' declares an invalid JSON Schema: {e.message}"))
    call_ids: set[str] = set()
    calls_seen = 0
    for i, m in enumerate(inp.messages):
        role = m.get("role")
        if role == "assistant":
            for j, call in enumerate(m.get("tool_calls") or []):
                calls_seen += 1
                fn = call.get("function") if isinstance(call, dict) else None
                fn = fn if isinstance(fn, dict) else {}
                if isinstance(call, dict) and call.get("id") is not None:
                    call_ids.add(str(call["id"]))
                name = fn.get("name")
                field = f"tool_calls[{j}].function.arguments"
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError as e:
                        out.append(_finding(w, "tool_calls", "error", i, field,
                                            f"arguments of '{name}' are not valid JSON: {e.msg} at character {e.pos}"))
                        continue
                if declared and name not in declared:
                    out.append(_finding(w, "tool_calls", "error", i, f"tool_calls[{j}].function.name",
                                        f"calls '{name}', which the sample does not declare "
                                        f"(declared: {', '.join(sorted(declared))})"))
                    continue
                v = validators.get(name)
                if v is not None:
                    err = jsonschema.exceptions.best_match(v.iter_errors(args))
                    if err is not None:
                        at = "/".join(map(str, err.absolute_path))
                        out.append(_finding(w, "tool_calls", "error", i, field,
                                            f"arguments of '{name}' do not match its schema"
                                            f"{' at ' + at if at else ''}: {err.message}"))
        elif role == "tool":
            tid = m.get("tool_call_id")
            if tid is not None and str(tid) not in call_ids:
                out.append(_finding(w, "tool_calls", "error", i, "tool_call_id",
                                    f"tool result for call id '{tid}', which no earlier assistant tool call has"))
            elif tid is None and not calls_seen:
                out.append(_finding(w, "tool_calls", "error", i, "role",
                                    "tool result without any earlier assistant tool call"))
            elif tid is None and call_ids:
                out.append(_finding(w, "tool_calls", "warning", i, "tool_call_id",
                                    "tool result without tool_call_id after calls that have ids "
                                    "(matched by position)"))
    return out


#: One line per check, for reports.
DESCRIPTIONS = {
    "not_rendered": "text the template never writes (content, name, reasoning, tool call arguments)",
    "empty_turn": "empty, null or whitespace-only assistant answer or user turn",
    "invisible_chars": "zero-width or bidi control characters inside text",
    "mixed_normal_forms": "composed and decomposed Unicode forms in one sample",
    "tool_calls": "tool call arguments invalid or undeclared tool, or a tool result without its call",
    "template_input": "the sample's tools or documents cannot be read",
}

#: The checks :func:`run_checks` runs, in order: ``(name, function)``.
CHECKS: list[tuple[str, Callable[..., list[Finding]]]] = [
    ("not_rendered", check_not_rendered),
    ("empty_turn", check_empty_turns),
    ("invisible_chars", check_invisible_chars),
    ("mixed_normal_forms", check_mixed_normal_forms),
    ("tool_calls", check_tool_calls),
]


def run_checks(source, template=None, *, tokenizer=None, tools: list | None = None,
               checks: list[str] | None = None) -> list[Finding]:
    """Every check of :data:`CHECKS` (or ``checks``, a list of names) on one sample.

    Args:
        source: a stored :class:`datastore.samples.Sample` or a list of message dicts (then
            message indexes are list indexes and the sample id is None).
        template: the training :class:`pipelines.render.Template` (None: no render check).
        tokenizer: its special tokens reach the template (:func:`template_input`).
        tools: the declared tools, overriding the sample's own (for a list of messages).
    Returns:
        The findings, in check order then message order.
    A sample whose ``tools`` or ``documents`` cannot be read gives one ``template_input`` error
    finding instead of the checks.
    """
    from pipelines.render.inputs import template_input

    try:
        inp = template_input(source, template, tokenizer=tokenizer, tools=tools)
    except WorkbenchError as e:
        return [Finding(check="template_input", severity="error", sample_id=getattr(source, "sample_id", None),
                        message_index=None, field="extra", message=str(e))]
    w = _where(inp, source if not isinstance(source, list) else None)
    ctx = CheckContext(template=template)
    out: list[Finding] = []
    for name, fn in CHECKS:
        if checks is None or name in checks:
            out.extend(fn(inp, ctx, w))
    return out
