"""OpenAI chat messages records: ``{"messages": [{"role": ..., "content": ...}], ...}``.

The format of OpenAI fine-tuning files and trl's conversational datasets. Messages are
kept as they come (extra keys such as ``name``, ``tool_calls`` or ``weight`` stay on the
message); ``content`` may be text, null (an assistant tool call) or a list of parts.

Export writes every message whole and every record-level field of the sample's ``extra``
beside ``messages`` (``tools`` as a list, as OpenAI's fine-tuning files and trl's
``SFTTrainer`` read it), whatever format the sample was imported from.
"""
from __future__ import annotations

from datastore.samples import Sample

from .base import ImportContext, Parsed, RecordSchema, RowError, ordered_record
from .conversation import check_roles, merge_same_role

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


class MessagesSchema(RecordSchema):
    name = "messages"
    description = "OpenAI chat messages (role/content), JSON Lines"

    @classmethod
    def matches(cls, keys: set[str]) -> bool:
        return "messages" in keys

    def parse(self, rec: dict, ctx: ImportContext) -> Parsed:
        msgs = rec.get("messages")
        if not isinstance(msgs, list):
            raise RowError("messages", "'messages' must be a list of {role, content}")
        out = []
        for i, m in enumerate(msgs):
            f = f"messages[{i}]"
            if not isinstance(m, dict):
                raise RowError(f, "a message must be an object with 'role' and 'content'")
            if m.get("role") not in ROLES:
                raise RowError(f + ".role", f"unknown or missing role {m.get('role')!r}; expected one of {sorted(ROLES)}")
            c = m.get("content")
            if "content" not in m and not m.get("tool_calls"):
                raise RowError(f + ".content", "missing 'content'")
            if c is not None and not isinstance(c, (str, list)):
                raise RowError(f + ".content", f"content must be text, null or a list of parts, got {type(c).__name__}")
            out.append(dict(m))
        if ctx.merge_same_role:
            out = merge_same_role(out)
        roles = [{"developer": "system", "function": "tool"}.get(m["role"], m["role"]) for m in out]
        warnings = check_roles(roles, out)
        extra = {k: v for k, v in rec.items() if k != "messages"}
        layout = {"schema": self.name, "keys": list(rec.keys())}
        s = Sample(kind="conversation", messages=out, extra=extra or None, layout=layout)
        return Parsed(s, warnings, trainable=not warnings)

    def dump(self, s: Sample) -> dict:
        lay = s.layout or {}
        same = lay.get("schema") == self.name
        if s.kind == "conversation":
            msgs = list(s.messages or [])
            if s.system is not None and not (msgs and msgs[0].get("role") == "system"):
                msgs = [{"role": "system", "content": s.system}] + msgs
        else:
            msgs = s.turns()
        keys = lay.get("keys", []) if same else ["messages"]
        return ordered_record(keys, {"messages": msgs}, s.extra)
