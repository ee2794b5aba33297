"""Checks shared by the conversation formats (ShareGPT, OpenAI messages).

A conversation is imported unchanged, never reordered or silently dropped. Problems
become warnings naming the message index (0-based, as in the source list):
starts with the assistant, two consecutive turns of the same role, a system turn
after the first position, ends on a user turn (a prompt-only sample: valid as a prompt,
not trainable as it stands), no assistant turn. A sample is *trainable as it stands*
when it has none of these. Merging consecutive same-role turns is an explicit option.
"""
from __future__ import annotations

from .base import RowError


def check_roles(roles: list[str]) -> list[str]:
    """Warnings for a role sequence (system/user/assistant/tool)."""
    if not roles:
        raise RowError("messages", "empty conversation")
    w = []
    for i, r in enumerate(roles):
        if r == "system" and i > 0:
            w.append(f"system turn in the middle at message {i}")
    body = [(i, r) for i, r in enumerate(roles) if r != "system"]
    if body and body[0][1] == "assistant":
        w.append(f"starts with the assistant at message {body[0][0]}")
    for (i0, r0), (i1, r1) in zip(body, body[1:]):
        if r0 == r1 and r0 != "tool":
            w.append(f"two consecutive '{r0}' turns at messages {i0} and {i1}")
    if body and body[-1][1] == "user":
        w.append(f"ends on a user turn at message {body[-1][0]} (prompt only)")
    if not any(r == "assistant" for r in roles) and not (body and body[-1][1] == "user"):
        w.append("no assistant turn")
    return w


def merge_same_role(messages: list[dict]) -> list[dict]:
    """Join consecutive turns of the same role (content joined by a blank line)."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"] and isinstance(out[-1].get("content"), str) \
                and isinstance(m.get("content"), str):
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n\n" + m["content"]}
        else:
            out.append(dict(m))
    return out
