"""Reasoning written inline between markers, moved into ``reasoning_content`` and back.

Reasoning models write their reasoning inside the assistant text, before the answer:
``<think>...</think>`` (DeepSeek-R1, Qwen3, SmolLM3 chat templates) or
``<|begin_of_thought|>...<|end_of_thought|>`` (Sky-T1 / Bespoke-Stratos traces, whose answer
then follows between ``<|begin_of_solution|>`` and ``<|end_of_solution|>``). The message model
keeps reasoning in the message key ``reasoning_content`` (the key transformers' chat templates
read), so an import option moves it there and an export option writes it back inline.

Import rule (:func:`extract`): only an assistant message whose text *starts* (after optional
whitespace) with an opening marker and that holds the matching closing marker is changed; the
text between the markers, without its surrounding whitespace, becomes ``reasoning_content``,
and the text after the closing marker, without its leading whitespace, stays the ``content``
verbatim (the Sky-T1 solution markers included). The marker pair and the four whitespace runs
(before the opening marker, after it, before the closing marker, after it) are recorded in
``sample.layout["reasoning"]`` under the message index, so :func:`inline` gives back the
original text byte for byte. An opening marker that is never closed (a trace cut at the
generation limit) is left in the content with a warning; a message that already has
``reasoning_content`` is not touched.

Export rule (:func:`inline`): ``content = lead + open + ws1 + reasoning + ws2 + close + ws3 +
content``, with the recorded markers and whitespace, or for reasoning that was not imported
inline ``<think>\\n{reasoning}\\n</think>\\n\\n{content}`` (the layout DeepSeek-R1 and Qwen3
templates write).
"""
from __future__ import annotations

import copy

from datastore.errors import WorkbenchError

#: Marker pairs by option name.
MARKERS: dict[str, tuple[str, str]] = {
    "think": ("<think>", "</think>"),
    "thought": ("<|begin_of_thought|>", "<|end_of_thought|>"),
}
#: ``--reasoning-markers`` choices: one pair, or ``auto`` (whichever pair opens the text).
IMPORT_CHOICES = (*MARKERS, "auto")
#: ``--reasoning`` export choices: ``keep`` the ``reasoning_content`` key, or write it ``inline``.
EXPORT_CHOICES = ("keep", "inline")
#: Whitespace written around new inline reasoning: before the opening marker, after it,
#: before the closing marker, after it.
DEFAULT_WS = ("", "\n", "\n", "\n\n")


def check_choice(value: str | None, choices: tuple[str, ...], option: str) -> None:
    """Raise WorkbenchError for a value outside ``choices`` (None is allowed)."""
    if value is not None and value not in choices:
        raise WorkbenchError(f"{option} must be one of {', '.join(choices)}, got '{value}'")


def _split_ws(text: str, *, lead: bool) -> tuple[str, str]:
    body = text.lstrip() if lead else text.rstrip()
    ws = text[:len(text) - len(body)] if lead else text[len(body):]
    return ws, body


def extract(sample, markers: str) -> list[str]:
    """Move inline reasoning of ``sample``'s assistant messages into ``reasoning_content``.

    Args:
        sample: a conversation :class:`datastore.samples.Sample`; changed in place
            (``messages`` and ``layout["reasoning"]``).
        markers: ``think``, ``thought`` or ``auto``.
    Returns:
        Warnings naming the message index (unclosed markers).
    Raises:
        WorkbenchError: an unknown ``markers`` value.
    """
    check_choice(markers, IMPORT_CHOICES, "--reasoning-markers")
    pairs = list(MARKERS.values()) if markers == "auto" else [MARKERS[markers]]
    warnings: list[str] = []
    kept: dict[str, dict] = {}
    msgs = sample.messages or []
    for i, m in enumerate(msgs):
        c = m.get("content") if isinstance(m, dict) else None
        if m.get("role") != "assistant" or not isinstance(c, str) or "reasoning_content" in m:
            continue
        lead, body = _split_ws(c, lead=True)
        pair = next(((o, cl) for o, cl in pairs if body.startswith(o)), None)
        if pair is None:
            continue
        op, cl = pair
        end = body.find(cl, len(op))
        if end < 0:
            warnings.append(f"reasoning opened with {op} at message {i} is never closed "
                            "(a truncated trace?); left in the content")
            continue
        ws1, inner = _split_ws(body[len(op):end], lead=True)
        ws2, reasoning = _split_ws(inner, lead=False)
        ws3, rest = _split_ws(body[end + len(cl):], lead=True)
        msgs[i] = {**m, "content": rest, "reasoning_content": reasoning}
        kept[str(i)] = {"markers": [op, cl], "ws": [lead, ws1, ws2, ws3]}
    if kept:
        sample.layout = {**(sample.layout or {}), "reasoning": kept}
    return warnings


def inline(sample):
    """A copy of ``sample`` whose ``reasoning_content`` is written inline in the content.

    Returns the sample itself when no message has reasoning. A ``reasoning_content`` of
    None is dropped (it holds nothing).

    Raises:
        WorkbenchError: reasoning on a message whose content is a list of parts (names the
            sample id, the message index and the field).
    """
    msgs = sample.messages or []
    if not any(isinstance(m, dict) and "reasoning_content" in m for m in msgs):
        return sample
    out = copy.copy(sample)
    recorded = (sample.layout or {}).get("reasoning", {})
    new = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "reasoning_content" not in m:
            new.append(m)
            continue
        r = m["reasoning_content"]
        m = {k: v for k, v in m.items() if k != "reasoning_content"}
        if r is not None:
            c = m.get("content")
            if not isinstance(r, str) or not (c is None or isinstance(c, str)):
                bad = "reasoning_content" if not isinstance(r, str) else "content"
                raise WorkbenchError(f"sample #{sample.sample_id}, message {i}, field '{bad}': reasoning can "
                                     "only be written inline into text content; export with --reasoning keep")
            rec = recorded.get(str(i), {})
            op, cl = rec.get("markers", MARKERS["think"])
            lead, ws1, ws2, ws3 = rec.get("ws", DEFAULT_WS)
            m["content"] = f"{lead}{op}{ws1}{r}{ws2}{cl}{ws3}{c or ''}"
        new.append(m)
    out.messages = new
    return out
