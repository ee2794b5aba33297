"""ShareGPT records: ``{"conversations": [{"from": ..., "value": ...}], ...}``.

Role names as used by FastChat (human/gpt) and LLaMA-Factory's sharegpt format
(human/gpt/system/function_call/observation, plus top-level ``system`` and ``tools``
columns). The original role names are kept in the layout, so export writes them back.
"""
from __future__ import annotations

from datastore.samples import Sample

from .base import ImportContext, Parsed, RecordSchema, RowError, ordered_record, want_text
from .conversation import check_roles, merge_same_role

ROLE_OF = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
           "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
           "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool",
           "function": "tool"}
FROM_OF = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


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
        messages, froms = [], []
        for i, t in enumerate(conv):
            f = f"{self.conv_key}[{i}]"
            if not isinstance(t, dict):
                raise RowError(f, "a turn must be an object with 'from' and 'value'")
            who = t.get("from")
            if not isinstance(who, str) or who.lower() not in ROLE_OF:
                raise RowError(f + ".from", f"unknown or missing role {who!r}; expected one of {sorted(ROLE_OF)}")
            val = want_text(t, "value", field=f + ".value", required=True)
            extras = {k: v for k, v in t.items() if k not in ("from", "value")}
            messages.append({"role": ROLE_OF[who.lower()], "content": val, **extras})
            froms.append(who)
        system = want_text(rec, "system") if "system" in rec else None
        extra = {k: v for k, v in rec.items() if k not in (self.conv_key, "system")}
        layout = {"schema": self.name, "keys": list(rec.keys()), "from": froms}
        if "system" in rec and rec["system"] is None:
            layout["nulls"] = ["system"]
        if ctx.merge_same_role:
            messages = merge_same_role(messages)
            layout.pop("from")
        warnings = check_roles([m["role"] for m in messages])
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
        conv = []
        for i, m in enumerate(msgs):
            who = froms[i] if froms else FROM_OF.get(m["role"], m["role"])
            extras = {k: v for k, v in m.items() if k not in ("role", "content")}
            conv.append({"from": who, "value": m.get("content"), **extras})
        values: dict = {self.conv_key: conv}
        if s.system is not None:
            values["system"] = s.system
        elif same and "system" in lay.get("nulls", []):
            values["system"] = None
        keys = lay.get("keys", []) if same else [self.conv_key]
        return ordered_record(keys, values, s.extra if same else None)
