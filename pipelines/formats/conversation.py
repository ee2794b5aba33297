"""Checks shared by the conversation formats (ShareGPT, OpenAI messages).

A conversation is imported unchanged, never reordered or silently dropped. Problems
become warnings naming the message index (0-based, as in the source list):
starts with the assistant, two consecutive turns of the same role, a system turn
after the first position, ends on a user turn (a prompt-only sample: valid as a prompt,
not trainable as it stands), no assistant turn, an empty answer or an empty user turn
(:func:`empty_turns`). A sample is *trainable as it stands* when it has none of these.
Merging consecutive same-role turns is an explicit option.
"""
from __future__ import annotations

from .base import RowError


def empty_content(content) -> str | None:
    """How a message content is empty, or None when it holds something: ``"null"`` (None),
    ``"empty"`` (``""``), ``"whitespace only"`` (``str.isspace``), ``"an empty list"``, or
    ``"no text in its parts"`` (a list whose parts are all text parts with blank text; an image
    or other non-text part counts as content)."""
    if content is None:
        return "null"
    if isinstance(content, str):
        return None if content.strip() else ("empty" if content == "" else "whitespace only")
    if isinstance(content, list):
        if not content:
            return "an empty list"
        if all(isinstance(p, dict) and p.get("type", "text") == "text"
               and not (isinstance(p.get("text"), str) and p["text"].strip()) for p in content):
            return "no text in its parts"
    return None


def empty_turns(messages: list[dict]) -> list[tuple[int, str, str]]:
    """``[(message index, role, how)]`` of empty answers and user turns: an assistant or user
    message whose content is missing (``how`` = ``"missing"``) or :func:`empty_content`. An
    assistant message with ``tool_calls`` is not empty (its content is null by the OpenAI format)."""
    out = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("assistant", "user") or (role == "assistant" and m.get("tool_calls")):
            continue
        how = "missing" if "content" not in m else empty_content(m["content"])
        if how is not None:
            out.append((i, role, how))
    return out


def check_roles(roles: list[str], messages: list[dict] | None = None) -> list[str]:
    """Warnings for a role sequence (system/user/assistant/tool), and for the empty answers and
    user turns of ``messages`` when given (:func:`empty_turns`)."""
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
    for i, role, how in empty_turns(messages or []):
        w.append(f"empty {'answer' if role == 'assistant' else 'user turn'} at message {i}: content is {how}")
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
