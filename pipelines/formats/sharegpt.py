"""ShareGPT records: ``{"conversations": [{"from": ..., "value": ...}], ...}``.

Role names as used by FastChat (human/gpt) and LLaMA-Factory's sharegpt format
(human/gpt/system/function_call/observation, plus top-level ``system`` and ``tools``
columns). The original role names are kept in the layout, so export writes them back.

Tool calls follow LLaMA-Factory (``src/llamafactory/data/converter.py``
``SharegptDatasetConverter`` and ``formatter.py`` ``FunctionFormatter``, ``ToolFormatter``;
its ``data/glaive_toolcall_en_demo.json``):

* a ``function_call`` turn's value is the JSON text of ``{"name", "arguments"}`` or of a
  list of them (parallel calls). On import it becomes an assistant message
  ``{"role": "assistant", "content": None, "tool_calls": [{"id": "call_<n>", "type":
  "function", "function": {"name", "arguments"}}]}``, arguments kept exactly as given (an
  object stays an object, text stays text); ``n`` counts the sample's calls from 1. The ids
  are generated (``layout["generated_ids"]``) and never written to ShareGPT.
* an ``observation`` turn becomes ``{"role": "tool", "tool_call_id": <id>, "content": value}``,
  where the k-th observation after a ``function_call`` turn answers its k-th call (no
  ``tool_call_id`` when there is no call left to answer).
* the ``tools`` column, a JSON string, is stored parsed in ``extra["tools"]`` with
  ``layout["tools_as_string"] = True``.

The JSON text of these values is rebuilt on export with the same ``json.dumps`` settings
(``layout["json"]``: escaping and separators), so an imported file is written back byte for
byte; a value in a JSON layout that no such setting reproduces is kept as it is (a tool-call
turn then stays a text turn, with a warning).

Export refuses (:class:`ConversionError`, naming the message index and field) what a
ShareGPT file read by LLaMA-Factory, or read back by this importer, would not give back:
content that is not text (null, or a list of typed parts), text and tool calls in one turn,
tool call ids or result ids other than those the import generates, argument text that
LLaMA-Factory would write differently (it writes ``json.dumps(arguments,
ensure_ascii=False)``), ``reasoning_content`` or ``thinking`` (write it inline with the
reasoning export option), and roles ShareGPT has no name for. Other message keys are
written on the turn, as FastChat and axolotl files carry them, and come back on import.
``tool_calls``, ``tool_call_id`` and reasoning keys that are null or empty (as a Parquet or
``datasets`` round trip fills them in) hold nothing and are not written.
"""
from __future__ import annotations

import json

from datastore.samples import Sample

from .base import ConversionError, ImportContext, Parsed, RecordSchema, RowError, ordered_record, want_text
from .conversation import check_roles, merge_same_role

ROLE_OF = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
           "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
           "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool",
           "function": "tool"}
FROM_OF = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
CALL_FROM = "function_call"
#: ``json.dumps`` settings tried, in order, to reproduce a JSON string of the source.
JSON_STYLES: dict[str, dict] = {
    "a": {},
    "u": {"ensure_ascii": False},
    "ac": {"separators": (",", ":")},
    "uc": {"ensure_ascii": False, "separators": (",", ":")},
    "i2": {"indent": 2},
    "i2u": {"indent": 2, "ensure_ascii": False},
}
#: Keys ShareGPT cannot hold as LLaMA-Factory reads it (reasoning goes inline instead).
REASONING_KEYS = ("reasoning_content", "thinking")


def json_style(text: str, obj) -> str | None:
    """The name of the :data:`JSON_STYLES` setting whose ``json.dumps(obj)`` equals ``text``."""
    return next((k for k, kw in JSON_STYLES.items() if json.dumps(obj, **kw) == text), None)


def call_id(n: int) -> str:
    """The id the import gives the n-th tool call of a sample (1-based)."""
    return f"call_{n}"


def _parse_calls(value: str, field: str) -> tuple[object, list[dict]]:
    """The parsed ``function_call`` value and its ``function`` dicts. Raises RowError naming
    ``field``."""
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise RowError(field, f"a function_call value must be JSON {{\"name\": ..., \"arguments\": ...}}: "
                              f"{e.msg} at character {e.pos}") from None
    items = obj if isinstance(obj, list) else [obj]
    if not items or not all(isinstance(c, dict) and isinstance(c.get("name"), str) and "arguments" in c
                            for c in items):
        raise RowError(field, "a function_call value must be an object with 'name' and 'arguments', "
                              "or a list of them (parallel calls)")
    return obj, items


class ShareGPTSchema(RecordSchema):
    name = "sharegpt"
    description = "ShareGPT conversations with from/value turns"
    conv_key = "conversations"

    @classmethod
    def matches(cls, keys: set[str]) -> bool:
        return "conversations" in keys

    def parse(self, rec: dict, ctx: ImportContext) -> Parsed:
        conv = rec.get(self.conv_key)
        if not isinstance(conv, list):
            raise RowError(self.conv_key, f"'{self.conv_key}' must be a list of turns")
        messages, froms, styles, lists, warnings = [], [], {}, [], []
        pending: list[str] = []     # call ids of the last function_call turn not yet answered
        n_calls = 0
        for i, t in enumerate(conv):
            f = f"{self.conv_key}[{i}]"
            if not isinstance(t, dict):
                raise RowError(f, "a turn must be an object with 'from' and 'value'")
            who = t.get("from")
            if not isinstance(who, str) or who.lower() not in ROLE_OF:
                raise RowError(f + ".from", f"unknown or missing role {who!r}; expected one of {sorted(ROLE_OF)}")
            val = want_text(t, "value", field=f + ".value", required=True)
            extras = {k: v for k, v in t.items() if k not in ("from", "value")}
            role = ROLE_OF[who.lower()]
            msg: dict = {"role": role, "content": val}
            if who.lower() == CALL_FROM:
                obj, fns = _parse_calls(val, f + ".value")
                style = json_style(val, obj)
                if style is None:
                    warnings.append(f"function_call at message {i} is kept as text: its JSON layout "
                                    "cannot be written back byte for byte")
                else:
                    if style != "a":
                        styles[str(i)] = style
                    if isinstance(obj, list):
                        lists.append(i)
                    ids = [call_id(n_calls + k + 1) for k in range(len(fns))]
                    n_calls += len(fns)
                    pending = list(ids)
                    msg = {"role": role, "content": None,
                           "tool_calls": [{"id": c, "type": "function", "function": dict(fn)}
                                          for c, fn in zip(ids, fns)]}
            elif role == "tool":
                msg = {"role": role, **({"tool_call_id": pending.pop(0)} if pending else {}), "content": val}
            messages.append({**msg, **extras})
            froms.append(who)
        system = want_text(rec, "system") if "system" in rec else None
        extra = {k: v for k, v in rec.items() if k not in (self.conv_key, "system")}
        layout: dict = {"schema": self.name, "keys": list(rec.keys()), "from": froms}
        tools = rec.get("tools")
        if isinstance(tools, str) and tools.strip():
            try:
                parsed = json.loads(tools)
            except json.JSONDecodeError as e:
                raise RowError("tools", f"the tools column must be a JSON list of tool schemas: "
                                        f"{e.msg} at character {e.pos}") from None
            if not isinstance(parsed, list):
                raise RowError("tools", f"the tools column must be a JSON list of tool schemas, "
                                        f"got a JSON {type(parsed).__name__}")
            style = json_style(tools, parsed)
            if style is not None:       # else the text is kept as it is (still read as JSON)
                extra["tools"] = parsed
                layout["tools_as_string"] = True
                if style != "a":
                    styles["tools"] = style
        if n_calls:
            layout["generated_ids"] = True
        if lists:
            layout["call_lists"] = lists
        if styles:
            layout["json"] = styles
        if "system" in rec and rec["system"] is None:
            layout["nulls"] = ["system"]
        if ctx.merge_same_role:
            messages = merge_same_role(messages)
            for k in ("from", "call_lists", "json"):
                layout.pop(k, None)
        warnings += check_roles([m["role"] for m in messages], messages)
        s = Sample(kind="conversation", messages=messages, system=system, extra=extra or None, layout=layout)
        return Parsed(s, warnings, trainable=not warnings)

    def dump(self, s: Sample) -> dict:
        lay = s.layout or {}
        same = lay.get("schema") == self.name
        msgs = s.messages if s.kind == "conversation" else [
            t for t in s.turns() if not (t["role"] == "system" and s.system)]
        froms = lay.get("from") if same else None
        if froms is not None and len(froms) != len(msgs):
            froms = None
        styles = lay.get("json", {}) if froms else {}
        tools_style = lay.get("json", {}).get("tools", "a") if same else "a"
        lists = set(lay.get("call_lists", [])) if froms else set()
        conv, pending, n_calls = [], [], 0
        for i, m in enumerate(msgs):
            def refuse(field: str, why: str):
                raise ConversionError(f"message {i}, field '{field}': {why}")
            role, calls = m.get("role"), m.get("tool_calls")
            for k in REASONING_KEYS:
                if m.get(k) is not None:
                    refuse(k, "ShareGPT has no field for reasoning; export with the reasoning written "
                              "inline (wb export --reasoning inline) or as messages")
            if role not in FROM_OF:
                refuse("role", f"ShareGPT has no role name for {role!r}")
            extras = {k: v for k, v in m.items()
                      if k not in ("role", "content", "tool_calls", "tool_call_id", *REASONING_KEYS)}
            if calls:
                if m.get("content") == "":
                    refuse("content", "empty text beside tool calls would read back as null")
                if m.get("content") is not None:
                    refuse("content", "ShareGPT holds text and tool calls in separate turns; this turn has both")
                fns = []
                for k, c in enumerate(calls):
                    n_calls += 1
                    fns.append(self._function(c, call_id(n_calls), keep_text=bool(froms), field=f"tool_calls[{k}]",
                                              refuse=refuse))
                pending = [call_id(n_calls - len(calls) + k + 1) for k in range(len(calls))]
                obj = fns if (len(fns) > 1 or i in lists) else fns[0]
                who = froms[i] if froms and froms[i].lower() == CALL_FROM else CALL_FROM
                conv.append({"from": who, "value": json.dumps(obj, **JSON_STYLES[styles.get(str(i), "a")]), **extras})
                continue
            want = pending.pop(0) if role == "tool" and pending else None
            if m.get("tool_call_id") != want:
                refuse("tool_call_id", f"ShareGPT links a tool result to a call by order only; "
                                       f"{m.get('tool_call_id')!r} would read back as {want!r}")
            c = m.get("content")
            if not isinstance(c, str):
                what = "a list of content parts" if isinstance(c, list) else type(c).__name__
                refuse("content", f"a ShareGPT value is text; this content is {what}")
            who = froms[i] if froms and ROLE_OF[froms[i].lower()] == role else FROM_OF[role]
            conv.append({"from": who, "value": c, **extras})
        values: dict = {self.conv_key: conv}
        if s.system is not None:
            values["system"] = s.system
        elif same and "system" in lay.get("nulls", []):
            values["system"] = None
        extra = dict(s.extra or {}) if (same or s.kind == "conversation") else {}
        if isinstance(extra.get("tools"), list):
            extra["tools"] = json.dumps(extra["tools"], **JSON_STYLES[tools_style]) \
                if lay.get("tools_as_string") or not same else extra["tools"]
        keys = lay.get("keys", []) if same else [self.conv_key]
        return ordered_record(keys, values, extra)

    @staticmethod
    def _function(call, expected_id: str, *, keep_text: bool, field: str, refuse) -> dict:
        """A tool call as LLaMA-Factory's ``{"name", "arguments"}``, or ``refuse(field, why)``."""
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            refuse(field, "a tool call must be {id, type: function, function: {name, arguments}}")
        if set(call) - {"id", "type", "function"}:
            refuse(field, f"ShareGPT cannot hold the tool call keys {sorted(set(call) - {'id', 'type', 'function'})}")
        if call.get("type") != "function":
            refuse(field + ".type", f"ShareGPT holds function calls only (type 'function'), got {call.get('type')!r}")
        if call.get("id") != expected_id:
            refuse(field + ".id", f"ShareGPT holds no call ids; {call.get('id')!r} would read back as {expected_id!r}")
        fn = dict(call["function"])
        if not isinstance(fn.get("name"), str) or "arguments" not in fn:
            refuse(field + ".function", "a function needs 'name' and 'arguments'")
        args = fn["arguments"]
        if isinstance(args, str) and not keep_text:
            try:
                parsed = json.loads(args)
                same_text = json.dumps(parsed, ensure_ascii=False) == args
            except json.JSONDecodeError:
                same_text = False
            if not same_text:
                refuse(field + ".function.arguments",
                       "LLaMA-Factory writes arguments as json.dumps(arguments, ensure_ascii=False); this "
                       "text is not JSON in that layout, so the model would train on different text")
            fn["arguments"] = parsed
        return fn
