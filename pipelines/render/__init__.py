"""Rendering samples through templates: text, loss spans and token-level loss masks.

Chat templates (``templates/chat``) turn ``[{"role", "content"}]`` turns into one string,
exactly as ``tokenizer.apply_chat_template(tokenize=False)`` would with the same template
text; instruction templates (``templates/instruction``) turn a sample's fields
(``instruction``, ``input``, ``output``, ``system``) into a prompt and fail loudly on a
missing field. ``{% generation %}`` blocks mark what the model must learn to produce;
:func:`render_with_mask` turns them into training labels and tokenizes message content so
that it can never become a control token (docs/architecture.md section 5).

Errors: :class:`TemplateRenderError` (a ``WorkbenchError``) and
:class:`TemplateSecurityError` (also ``jinja2.exceptions.SecurityError``); ``NotFound`` for
an unknown template name.
"""
from __future__ import annotations

import re
from collections import deque
from contextlib import contextmanager
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from datastore.errors import WorkbenchError
from pipelines.render.fast_bpe import fast_encoder, literal_alternation
from pipelines.render.inputs import TemplateInput, TemplateInputError, explain_render_error, template_input
from pipelines.render.templates import (
    GEN_CLOSE,
    GEN_OPEN,
    Template,
    TemplateRenderError,
    TemplateSecurityError,
    add_template,
    check_template_source,
    compile_chat,
    _plain,
    get_template,
    list_templates,
    marked_renderer,
    pinned_clock,
    render_chat_text,
    render_strict,
    template_control_tokens,
    template_from_file,
    template_from_text,
    template_from_tokenizer,
    templates_root,
)

__all__ = [
    "EmptyLossMask", "Template", "TemplateInput", "TemplateInputError", "TemplateRenderError",
    "TemplateSecurityError", "add_template",
    "assistant_char_spans", "check_template_source", "control_strings_in", "encode_conversations",
    "get_template", "list_templates", "pinned_clock", "render_chat", "render_chat_text", "render_instruction",
    "render_sample", "render_with_mask", "template_control_tokens", "template_from_file", "template_from_text",
    "template_from_tokenizer", "template_info", "template_input", "templates_root",
]

INSTRUCTION_FIELDS = ("system", "history", "instruction", "input", "output")


class EmptyLossMask(TemplateRenderError):
    """A training sample has no token to learn (no assistant turn, or the template dropped it):
    an error rather than a silent zero loss."""


def _resolve(template: str | Template, kind: str | None = None) -> Template:
    return template if isinstance(template, Template) else get_template(template, kind)


def template_info(name: str | Template) -> dict:
    """``{"name", "kind", "version", "sha256", "path"}`` of a registered template.

    ``sha256`` is the hex SHA-256 of the file text; a run records it. Raises ``NotFound``.
    """
    return _resolve(name).info()


def _input(messages, tpl: Template, tokenizer, add_generation_prompt: bool | None,
           extra: dict) -> tuple[TemplateInput, dict]:
    """``(input, variables)`` for one render: ``messages`` as :func:`template_input` builds
    them (a :class:`TemplateInput` keeps its tools, documents and generation flag unless
    ``add_generation_prompt`` is given), its variables (special tokens of the tokenizer and
    the template, tools, documents), then the caller's ``extra``."""
    if isinstance(messages, TemplateInput):
        agp = messages.add_generation_prompt if add_generation_prompt is None else add_generation_prompt
    else:
        agp = bool(add_generation_prompt)
    inp = template_input(messages, tpl, tokenizer=tokenizer, add_generation_prompt=agp)
    return inp, {**inp.variables(), **extra}


@contextmanager
def _explained(inp: TemplateInput, name: str):
    """Re-raise a render failure caused by the input's shape (content given as typed parts to
    a text template) as a :class:`TemplateInputError` naming sample, message and field."""
    try:
        yield
    except TemplateRenderError as e:
        better = explain_render_error(e, inp, name)
        if better is e:
            raise
        raise better from e


def render_chat(messages: TemplateInput | list[dict], template: str | Template = "chatml",
                add_generation_prompt: bool | None = None, **extra: Any) -> str:
    """Render a conversation with a chat template.

    Args:
        messages: a :class:`TemplateInput` (from :func:`template_input`), or its ``messages``
            (``[{"role": "system"|"user"|"assistant"|"tool", "content": ..., ...}]``).
        template: a registered chat template name, or a :class:`Template`.
        add_generation_prompt: append the opening of an assistant turn (for generation); None:
            the input's own flag (False for a list).
        extra: more template variables (``tools``, ...), after the input's own and the
            special tokens (the template's declared ones when no tokenizer is involved).
    Returns:
        The rendered text (equal to ``apply_chat_template(tokenize=False)`` with this template).
    Raises:
        TemplateInputError: the input's shape fails the template (names sample, message, field).
        TemplateRenderError / TemplateSecurityError.
    """
    tpl = _resolve(template)
    inp, ctx = _input(messages, tpl, None, add_generation_prompt, extra)
    with _explained(inp, tpl.name):
        return render_chat_text(tpl.text, inp.messages, add_generation_prompt=inp.add_generation_prompt,
                                name=tpl.name, **ctx)[0]


def assistant_char_spans(messages: TemplateInput | list[dict], template: str | Template = "chatml",
                         add_generation_prompt: bool | None = None, **extra: Any) -> tuple[str, list[tuple[int, int]]]:
    """Render as :func:`render_chat` and return ``(text, spans)``: ``spans`` are the
    ``[start, end)`` character ranges of the template's ``{% generation %}`` blocks (assistant
    content plus its end marker for ChatML). Empty when the template has no such block or
    there is no assistant turn."""
    tpl = _resolve(template)
    inp, ctx = _input(messages, tpl, None, add_generation_prompt, extra)
    with _explained(inp, tpl.name):
        return render_chat_text(tpl.text, inp.messages, add_generation_prompt=inp.add_generation_prompt,
                                name=tpl.name, track=True, **ctx)


def render_instruction(fields: dict | TemplateInput, template: str | Template = "alpaca", *,
                       with_spans: bool = False) -> str | tuple[str, list[tuple[int, int]]]:
    """Render an instruction template over a sample's fields.

    ``fields`` holds ``instruction`` and optionally ``input``, ``output``, ``system``, ``history``
    (``[[instruction, response], ...]``) and special tokens such as ``eos_token``; keys with value
    None are passed as None (the Alpaca template treats None like a missing input). The Alpaca
    template writes Stanford's ``PROMPT_DICT`` prompt exactly and states in its header where
    ``system`` and ``history`` go. Returns the text, or ``(text, spans)`` of the ``output``
    generation block with ``with_spans``. A :class:`TemplateInput` gives the fields from its
    messages (:func:`_fields_from_messages`) plus its special tokens.

    Raises:
        TemplateRenderError: a field the template needs is missing (``err.field`` names it), or
        the input is not one instruction and its answer.
    """
    tpl = _resolve(template)
    if isinstance(fields, TemplateInput):
        inp = template_input(fields, tpl)
        fields = _fields_from_messages(inp.messages, tpl.name)
        fields.update({k: v for k, v in inp.special_tokens.items() if k not in fields and k.endswith("_token")})
    text, spans = render_strict(tpl.text, dict(fields), name=tpl.name, track=True)
    return (text, spans) if with_spans else text


def render_sample(sample, template: str | Template = "chatml", add_generation_prompt: bool = False, *,
                  tokenizer=None) -> str:
    """Render a :class:`datastore.samples.Sample` with a chat template (its
    :func:`template_input`: messages whole, system, tools, documents, the special tokens of
    ``tokenizer`` and of the template) or an instruction template (its fields and the special
    tokens; conversations are refused by instruction templates)."""
    tpl = _resolve(template)
    inp = template_input(sample, tpl, tokenizer=tokenizer, add_generation_prompt=add_generation_prompt)
    if tpl.kind == "instruction":
        if sample.kind != "instruction":
            raise TemplateRenderError(f"template '{tpl.name}' renders instruction samples, not conversations",
                                      template=tpl.name)
        fields = {k: getattr(sample, k) for k in INSTRUCTION_FIELDS if getattr(sample, k) is not None}
        fields.update({k: v for k, v in inp.special_tokens.items() if k not in fields})
        try:
            return render_instruction(fields, tpl)
        except TemplateRenderError as e:
            raise TemplateRenderError(f"sample {sample.sample_id}: {e}", template=tpl.name,
                                      field=getattr(e, "field", None)) from None
    return render_chat(inp, tpl)


# --------------------------------------------------------------------------- tokenized masks

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _control_regex(tokens) -> re.Pattern | None:
    toks = sorted({t for t in tokens if isinstance(t, str) and t.strip()}, key=lambda t: (-len(t), t))
    return re.compile("|".join(map(re.escape, toks))) if toks else None


_ADDED_CACHE: dict = {}


def _added_regex(tokenizer) -> re.Pattern | None:
    """Regex of every added token of ``tokenizer`` (the strings its tokenizer turns into a
    single control id wherever they appear), longest first. Cached per tokenizer state."""
    key = (id(tokenizer), len(tokenizer))
    hit = _ADDED_CACHE.get(key)
    if hit is None or hit[0] is not tokenizer:
        hit = (tokenizer, _control_regex(tokenizer.get_added_vocab()))
        _ADDED_CACHE.clear()
        _ADDED_CACHE[key] = hit
    return hit[1]


def _strings_of(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings_of(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings_of(v)


def control_strings_in(messages: list[dict], tokenizer_or_template) -> list[tuple[int, str]]:
    """Control-token strings written inside messages: ``[(message_index, token_string)]``,
    one entry per distinct token per message, in message order then order of appearance.

    ``tokenizer_or_template``: a tokenizer (its added tokens, e.g. ``<|im_start|>``: what it would
    turn into control ids), a :class:`Template` or registered template name (its
    :attr:`Template.control_tokens`), or template text. Every string in a message is searched
    (content, reasoning, tool calls) except its ``role``. Such samples tokenize differently from
    ``apply_chat_template``: we keep the text as plain text (:func:`render_with_mask`).
    """
    if hasattr(tokenizer_or_template, "get_added_vocab"):
        rx = _added_regex(tokenizer_or_template)
    elif isinstance(tokenizer_or_template, Template):
        rx = _control_regex(tokenizer_or_template.control_tokens)
    elif isinstance(tokenizer_or_template, str) and ("{{" in tokenizer_or_template or "{%" in tokenizer_or_template):
        rx = _control_regex(template_control_tokens(tokenizer_or_template))
    else:
        rx = _control_regex(_resolve(tokenizer_or_template).control_tokens)
    out: list[tuple[int, str]] = []
    if rx is None:
        return out
    for i, m in enumerate(messages):
        seen: list[str] = []
        items = m.items() if isinstance(m, dict) else []
        for k, v in items:
            if k == "role":
                continue
            for s in _strings_of(v):
                for mo in rx.finditer(s):
                    if mo.group(0) not in seen:
                        seen.append(mo.group(0))
        out.extend((i, t) for t in seen)
    return out


def _has_control(messages: list[dict], rx: re.Pattern | None) -> bool:
    if rx is None:
        return False
    for m in messages:
        for k, v in m.items():
            if k != "role":
                for s in _strings_of(v):
                    if rx.search(s):
                        return True
    return False


def split_sentinel_text(stext: str, contents: list[str]) -> tuple[list[tuple[int, int, int | None]], str]:
    """Undo a render made with sentinels (``\ue000<i>\ue001``) in place of message contents.

    Returns ``(pieces, text)``: ``text`` is the render with each sentinel replaced by
    ``contents[i]``; ``pieces`` are ``(start, end, i)`` spans of it, ``i`` the content index
    or None for template text. A sentinel index past ``contents`` ends the scan.
    Used to find which characters of a render came from which message.
    """
    pieces: list[tuple[int, int, int | None]] = []
    rebuilt, pos, last = [], 0, 0
    for mo in _SENTINEL.finditer(stext):
        lit = stext[last:mo.start()]
        if lit:
            pieces.append((pos, pos + len(lit), None))
            rebuilt.append(lit)
            pos += len(lit)
        i = int(mo.group(1))
        if i >= len(contents):
            break
        pieces.append((pos, pos + len(contents[i]), i))
        rebuilt.append(contents[i])
        pos += len(contents[i])
        last = mo.end()
    tail = stext[last:]
    if tail:
        pieces.append((pos, pos + len(tail), None))
        rebuilt.append(tail)
    return pieces, "".join(rebuilt)


def _content_pieces(render, messages: list[dict], text: str, name: str) -> list[tuple[int, int, bool]]:
    """Split ``text`` into ``(start, end, is_content)`` pieces, where content pieces are
    message contents inserted verbatim by the template. Found by rendering the messages with
    sentinels in place of their content; raises when the template alters content."""
    masked, contents = [], []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str) and c:
            masked.append({**m, "content": f"\ue000{len(contents)}\ue001"})
            contents.append(c)
        else:
            masked.append(m)
    stext = render(masked)
    found, rebuilt = split_sentinel_text(stext, contents)
    pieces = [(a, b, i is not None) for a, b, i in found]
    if rebuilt != text:
        raise WorkbenchError(
            f"template '{name}' changes message content while rendering, and a message contains "
            "control-token text; cannot tokenize it safely. Remove the control-token text or use a "
            "template that inserts content verbatim.")
    return pieces


_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")  # read as reasoning (templates.prepare_messages)


def _reasoning_of(m) -> str | None:
    if not isinstance(m, dict) or m.get("role") != "assistant":
        return None
    r = next((m[k] for k in _REASONING_KEYS if m.get(k) is not None), None)
    return r if isinstance(r, str) and r else None


def reasoning_spans(tpl: Template, messages: list[dict], text: str, ctx: dict,
                    add_generation_prompt: bool = False) -> dict[int, tuple[int, int]]:
    """Where the template writes each assistant turn's reasoning: ``{message_index: (start, end)}``,
    character ranges of ``text`` (the render of ``messages``). A turn whose reasoning the template
    does not write (Qwen3 drops the reasoning of turns before the last user message) is absent.

    Found as the content pieces are (:func:`split_sentinel_text`): the conversation is rendered with
    a sentinel in place of each reasoning (``reasoning_content``, ``thinking`` or ``reasoning``),
    and the template text around the sentinels is matched against ``text``; the span is what the
    template wrote in the sentinel's place (the reasoning as it is, or trimmed as Qwen3 trims it).

    Raises:
        TemplateRenderError: the text around the reasoning differs once the reasoning is replaced
            (the template branches on the reasoning's text), so it cannot be located.
    """
    owners = [i for i, m in enumerate(messages) if _reasoning_of(m) is not None]
    if not owners:
        return {}
    probe = [dict(m) for m in messages]
    for k, i in enumerate(owners):
        for key in _REASONING_KEYS:
            probe[i].pop(key, None)
        probe[i]["reasoning_content"] = f"\ue000{k}\ue001"
    stext = render_chat_text(tpl.text, probe, add_generation_prompt=add_generation_prompt, name=tpl.name, **ctx)[0]
    parts = _SENTINEL.split(stext)  # [literal, index, literal, index, ..., literal]
    lits, idx = parts[0::2], [int(x) for x in parts[1::2]]
    out: dict[int, tuple[int, int]] = {}
    ok = text.startswith(lits[0])
    pos = len(lits[0])
    for n, k in enumerate(idx):
        if not ok or k >= len(owners):
            ok = False
            break
        nxt = lits[n + 1]
        if n + 1 == len(idx):
            end = len(text) - len(nxt)
            ok = text.endswith(nxt) and end >= pos
        else:
            end = text.find(nxt, pos) if nxt else pos
            ok = end >= 0
        if ok:
            out[owners[k]] = (pos, end)
            pos = end + len(nxt)
    if not ok:
        raise TemplateRenderError(
            f"template '{tpl.name}' writes the text around a reasoning differently depending on the reasoning "
            "itself, so the reasoning cannot be located for the loss mask", template=tpl.name)
    return out


def _without_unwritten_reasoning(tpl: Template, messages: list[dict], text: str, ctx: dict) -> list[dict]:
    """``messages`` less the reasoning the template does not write in ``text`` (rendering a prefix
    of the conversation would write it: Qwen3 keeps the reasoning after the last user message)."""
    written = reasoning_spans(tpl, messages, text, ctx)
    return [{k: v for k, v in m.items() if k not in _REASONING_KEYS}
            if _reasoning_of(m) is not None and i not in written else m for i, m in enumerate(messages)]


def _prefix_spans(tpl: Template, messages: list[dict], text: str, ctx: dict) -> list[tuple[int, int]]:
    """Assistant spans of a template without generation markers: for each assistant turn,
    the text the conversation gains from the prompt before it (rendered with the generation
    prompt) to the conversation including it, ended at its end token (``eos_token``).

    A template may write a turn differently once later turns follow: Qwen3, DeepSeek-R1 and
    Kimi-K2-Thinking drop the reasoning of turns before the last user message, and write an empty
    ``<think></think>`` on a last turn without reasoning. The mask follows what the template
    writes in the whole conversation:

    * the prefixes are rendered without the reasoning the whole render drops;
    * a turn the prefix renders differently starts where the whole render and the prefix with
      its generation prompt part, and ends at the first end token after it;
    * where the text before a turn differs (Mistral v0.3 and Command-R write the tool schemas
      before the last user message), the turn as the prefix writes it is found in the whole
      render after the previous turn.

    Tool results, tool schemas and system text are never inside a span (they are not assistant
    turns). Raises :class:`TemplateRenderError` when none of these finds the turn."""
    spans = []
    eos = ctx.get("eos_token") if isinstance(ctx.get("eos_token"), str) and ctx.get("eos_token") else None
    msgs, retried = messages, False
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if not isinstance(m, dict) or m.get("role") != "assistant":
            i += 1
            continue
        before = render_chat_text(tpl.text, msgs[:i], add_generation_prompt=True, name=tpl.name, **ctx)[0] \
            if i else ""
        upto = render_chat_text(tpl.text, msgs[:i + 1], add_generation_prompt=False, name=tpl.name, **ctx)[0]
        start = len(before) if upto.startswith(before) else len(_common_prefix(before, upto))
        end = len(upto)
        if eos is not None:  # end the turn at its end token (Zephyr writes "\n" after it)
            last = upto.rfind(eos, start)
            if last >= 0:
                end = last + len(eos)
        if text.startswith(upto):
            pass
        elif eos is not None and (opened := _opening_in(tpl, msgs[:i], before, text, ctx, eos)) is not None:
            start = opened  # the turn is written differently: it ends at its first end token
            end = text.find(eos, start) + len(eos)
        elif upto[start:end] and text.find(upto[start:end], spans[-1][1] if spans else 0) >= 0:
            # the text before the turn differs (Mistral v0.3 and Command-R write the tools before
            # the last user message): the turn as the prefix writes it, first found after the last one
            turn = upto[start:end]
            start = text.find(turn, spans[-1][1] if spans else 0)
            end = start + len(turn)
        elif not retried and any(_reasoning_of(x) is not None for x in messages):
            msgs, retried, spans, i = _without_unwritten_reasoning(tpl, messages, text, ctx), True, [], 0
            continue
        else:
            raise TemplateRenderError(
                f"template '{tpl.name}' renders turn {i} differently once later turns follow, so the loss "
                "mask cannot be taken from prefixes; add {% generation %} markers to the template",
                template=tpl.name)
        if end > start:
            spans.append((start, end))
        i += 1
    return spans


def _opening_in(tpl: Template, prompt_msgs: list[dict], before: str, text: str, ctx: dict, eos: str) -> int | None:
    """Where the turn after ``prompt_msgs`` starts in ``text`` when the whole render writes the
    conversation so far as the prefix does but opens the turn differently (Qwen3.5 opens the
    generation prompt with ``<think>``, not an earlier turn): the end of the common part of
    ``before`` (the prefix with the generation prompt) and ``text``, provided the prefix without
    the generation prompt is part of it and an end token follows. None otherwise."""
    prompt = render_chat_text(tpl.text, prompt_msgs, add_generation_prompt=False, name=tpl.name, **ctx)[0] \
        if prompt_msgs else ""
    opened = len(_common_prefix(before, text))
    if text.startswith(prompt) and opened >= len(prompt) and text.find(eos, opened) >= 0:
        return opened
    return None


def _minus(spans: list[tuple[int, int]], holes) -> list[tuple[int, int]]:
    """``spans`` with the character ranges ``holes`` cut out (sorted, empty pieces dropped)."""
    out = []
    for a, b in spans:
        pieces = [(a, b)]
        for h0, h1 in sorted(holes):
            nxt = []
            for x, y in pieces:
                if h1 <= x or h0 >= y:
                    nxt.append((x, y))
                    continue
                if x < h0:
                    nxt.append((x, h0))
                if h1 < y:
                    nxt.append((h1, y))
            pieces = nxt
        out.extend(pieces)
    return out


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _render_spans(tpl: Template, messages: list[dict], ctx: dict, add_generation_prompt: bool):
    """``(text, spans)``: the rendered conversation and its assistant character spans."""
    if tpl.kind == "instruction":
        fields = _fields_from_messages(messages, tpl.name)
        fields.update({k: v for k, v in ctx.items() if k not in fields and k.endswith("_token")})
        return render_strict(tpl.text, fields, name=tpl.name, track=True)
    if tpl.has_generation_markers:
        return render_chat_text(tpl.text, messages, add_generation_prompt=add_generation_prompt,
                                name=tpl.name, track=True, **ctx)
    text = render_chat_text(tpl.text, messages, add_generation_prompt=add_generation_prompt, name=tpl.name, **ctx)[0]
    return text, _prefix_spans(tpl, messages, text, ctx)


def _fields_from_messages(messages: list[dict], name: str) -> dict:
    """An instruction template's fields from messages: an optional leading system message
    (``system``), earlier user/assistant pairs (``history``), the last user turn
    (``instruction``, with its ``input`` key when the message carries one, as
    :func:`pipelines.render.inputs.instruction_messages` writes it) and an optional final
    assistant turn (``output``).

    Raises:
        TemplateRenderError: messages that do not fit that layout (other roles, order, non-text
            content, keys the template cannot write), naming the message index; nothing is cut.
    """
    def refuse(why: str):
        raise TemplateRenderError(f"template '{name}' renders a system prompt, earlier instruction/response "
                                  f"pairs and one instruction with its answer; {why}", template=name)
    msgs = list(messages)
    out: dict = {}
    if msgs and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
        out["system"] = msgs[0].get("content")
        msgs = msgs[1:]
    base = len(messages) - len(msgs)
    roles = [m.get("role") if isinstance(m, dict) else None for m in msgs]
    for i, (m, r) in enumerate(zip(msgs, roles)):
        want = "user" if i % 2 == 0 else "assistant"
        if r != want:
            refuse(f"message {base + i} is a '{r}' turn where a '{want}' turn is needed (roles "
                   f"{[m.get('role') for m in messages if isinstance(m, dict)]})")
        allowed = {"role", "content"} | ({"input"} if i >= len(msgs) - 2 and r == "user" else set())
        if set(m) - allowed:
            refuse(f"message {base + i} carries {sorted(set(m) - allowed)}, which it cannot write")
        if not isinstance(m.get("content"), str):
            refuse(f"message {base + i} has no text content")
    if not msgs:
        refuse("there is no user turn")
    last_user = len(msgs) - 1 if roles[-1] == "user" else len(msgs) - 2
    pairs = [[msgs[i]["content"], msgs[i + 1]["content"]] for i in range(0, last_user, 2)]
    if pairs:
        out["history"] = pairs
    out["instruction"] = msgs[last_user]["content"]
    if "input" in msgs[last_user]:
        out["input"] = msgs[last_user]["input"]
    if last_user + 1 < len(msgs):
        out["output"] = msgs[last_user + 1]["content"]
    return out


def instruction_slots(fields: dict) -> tuple[list, list[str]]:
    """The text values of an instruction template's fields, flattened: ``(names, values)``
    where a name is a field (``system``, ``instruction``, ``input``, ``output``) or
    ``("history", pair index, 0 or 1)``. :func:`instruction_fields_with` puts values back."""
    names: list = [k for k in ("system", "instruction", "input", "output") if isinstance(fields.get(k), str)]
    values = [fields[k] for k in names]
    for i, pair in enumerate(fields.get("history") or []):
        for j in (0, 1):
            names.append(("history", i, j))
            values.append(pair[j])
    return names, values


def instruction_fields_with(fields: dict, names: list, values: list) -> dict:
    """``fields`` with the slots ``names`` (from :func:`instruction_slots`) set to ``values``."""
    out = dict(fields)
    history = [list(p) for p in fields.get("history") or []]
    for n, v in zip(names, values):
        if isinstance(n, tuple):
            history[n[1]][n[2]] = v
        else:
            out[n] = v
    if history:
        out["history"] = history
    return out


def _labels(ids: list[int], enc, spans: list[tuple[int, int]], offsets=None) -> list[int]:
    labels = [-100] * len(ids)
    for a, b in spans:
        if b <= a:
            continue
        t0 = t1 = None
        if enc is not None:
            t0, t1 = enc.char_to_token(a), enc.char_to_token(b - 1)
        if t0 is not None and t1 is not None:
            labels[t0:t1 + 1] = ids[t0:t1 + 1]
            continue
        offs = offsets if offsets is not None else enc.offsets
        for k, (s, e) in enumerate(offs):  # a span edge inside no token: the overlap rule, token by token
            if s < b and e > a:
                labels[k] = ids[k]
    return labels


def _check_mask(labels: list[int], messages: list[dict], tpl: Template, add_generation_prompt: bool,
                require_loss: bool | None) -> None:
    if require_loss is False or add_generation_prompt or labels.count(-100) != len(labels):
        return
    has_assistant = any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages)
    if require_loss or has_assistant:
        why = ("the template renders no assistant text for it" if has_assistant
               else "it has no assistant turn")
        raise EmptyLossMask(f"sample has no token to learn with template '{tpl.name}': {why}", template=tpl.name)


def _encode_safe(tokenizer, tpl: Template, messages: list[dict], text: str, spans, ctx: dict,
                 add_generation_prompt: bool, rx: re.Pattern) -> tuple[list[int], list[int]]:
    """Tokenize ``text`` keeping control-token strings inside message content as plain text."""
    if tpl.kind == "instruction":
        fields = _fields_from_messages(messages, tpl.name)
        fields.update({k: v for k, v in ctx.items() if k not in fields and k.endswith("_token")})
        names, values = instruction_slots(fields)
        msgs = [{"role": "slot", "content": v} for v in values]

        def render(masked):
            return render_strict(tpl.text, instruction_fields_with(fields, names, [m["content"] for m in masked]),
                                 name=tpl.name)[0]
    else:
        msgs = messages

        def render(masked):
            return render_chat_text(tpl.text, masked, add_generation_prompt=add_generation_prompt,
                                    name=tpl.name, **ctx)[0]
    segments: list[tuple[int, int, bool]] = []  # (start, end, as_plain_text)
    for start, end, is_content in _content_pieces(render, msgs, text, tpl.name):
        if not is_content:
            segments.append((start, end, False))
            continue
        pos = start
        for mo in rx.finditer(text, start, end):
            if mo.start() > pos:
                segments.append((pos, mo.start(), False))
            segments.append((mo.start(), mo.end(), True))
            pos = mo.end()
        if pos < end:
            segments.append((pos, end, False))
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    for start, end, plain in segments:
        enc = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                        split_special_tokens=plain)
        ids.extend(enc["input_ids"])
        offsets.extend((s + start, e + start) for s, e in enc["offset_mapping"])
    return ids, _labels(ids, None, spans, offsets)


def _reasoning_masked(tpl: Template, messages: list[dict], text: str, spans, ctx: dict,
                      add_generation_prompt: bool) -> list[tuple[int, int]]:
    """``spans`` less the reasoning the template writes (:func:`reasoning_spans`)."""
    if tpl.kind != "chat" or not any(_reasoning_of(m) is not None for m in messages):
        return spans
    return _minus(spans, reasoning_spans(tpl, messages, text, ctx, add_generation_prompt).values())


def render_with_mask(tokenizer, messages: TemplateInput | list[dict], template: str | Template = "chatml", *,
                     add_generation_prompt: bool | None = None, require_loss: bool | None = None,
                     train_on_reasoning: bool = True, **extra: Any) -> tuple[list[int], list[int]]:
    """Render and tokenize a conversation for training: ``(input_ids, labels)``.

    ``labels[i]`` is ``input_ids[i]`` for the tokens to learn (the assistant turns with their
    end-of-turn token) and -100 elsewhere. The spans come from the template's
    ``{% generation %}`` blocks where it has them, otherwise from prefix differences (the text
    an assistant turn adds to the prompt rendered before it). Instruction templates (Alpaca)
    take one user turn as ``instruction`` and the assistant turn as ``output``, followed by the
    tokenizer's ``eos_token``. No BOS/EOS is added beyond what the template writes (no doubled BOS).
    An assistant turn's tool calls are part of its turn (learned); tool results, tool schemas and
    system text are not. ``train_on_reasoning=False`` leaves the reasoning text the template writes
    (``reasoning_content``/``thinking``, located by :func:`reasoning_spans`) out of the labels; the
    answer, the tool calls and the tags around the reasoning stay learned.

    ``messages`` is a :class:`TemplateInput` (its generation flag is used unless
    ``add_generation_prompt`` is given) or its ``messages``. Template variables are what
    :func:`template_input` gives (the tokenizer's special tokens, then the template's declared
    ones, tools, documents), then ``extra``. When no message contains an added token's text, the ids are exactly
    ``tokenizer(text, add_special_tokens=False)`` (= ``apply_chat_template(tokenize=True)``);
    otherwise such text inside message content is tokenized as plain text
    (``split_special_tokens=True``), never as control ids. Not truncated.

    Raises:
        EmptyLossMask: no token to learn while the conversation has an assistant turn (or always
            with ``require_loss=True``; never with ``require_loss=False`` or ``add_generation_prompt``).
        TemplateRenderError / TemplateSecurityError.
    """
    tpl = _resolve(template)
    inp, ctx = _input(messages, tpl, tokenizer, add_generation_prompt, extra)
    messages, add_generation_prompt = inp.messages, inp.add_generation_prompt
    with _explained(inp, tpl.name):
        text, spans = _render_spans(tpl, messages, ctx, add_generation_prompt)
        if not train_on_reasoning:
            spans = _reasoning_masked(tpl, messages, text, spans, ctx, add_generation_prompt)
    rx = _added_regex(tokenizer)
    if _has_control(messages, rx):
        ids, labels = _encode_safe(tokenizer, tpl, messages, text, spans, ctx, add_generation_prompt, rx)
    else:
        enc = tokenizer(text, add_special_tokens=False)
        ids = list(enc["input_ids"])
        labels = _labels(ids, enc.encodings[0] if enc.encodings else None, spans,
                         None if enc.encodings else tokenizer(text, add_special_tokens=False,
                                                              return_offsets_mapping=True)["offset_mapping"])
    _check_mask(labels, messages, tpl, add_generation_prompt, require_loss)
    return ids, labels


# Conversations per batch from which encode_conversations builds the tiktoken encoder (about a
# second, once per tokenizer); smaller batches use it only when it is already built.
FAST_MIN_CONVERSATIONS = 2000
_CHUNK = 256  # rendered texts per tokenization task


def _fast_labels(ids: list[int], counts: list[int] | None, text: str, spans, byte_len) -> list[int]:
    """Labels for fast-path ids: the tokens holding the first and the last character of each
    span and all between (as :func:`_labels` with ``char_to_token``).

    ``counts`` (from :meth:`FastEncoder.encode` with the span edges as cuts) give the token
    index at each edge directly. Without them the token ends are the running sums of the
    tokens' UTF-8 byte lengths (byte-level BPE tokens concatenate to the text's bytes) and a
    character is found by its first byte (HF reports the first token holding it)."""
    labels = [-100] * len(ids)
    if counts is not None:
        for k in range(0, len(counts), 2):
            t0, t1 = counts[k], counts[k + 1]
            labels[t0:t1] = ids[t0:t1]
        return labels
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        return labels
    if text.isascii():
        pos = [p for a, b in spans for p in (a, b - 1)]
    else:
        pos = [len(text[:p].encode("utf-8")) for a, b in spans for p in (a, b - 1)]
    ends = np.cumsum(byte_len[np.asarray(ids, dtype=np.int64)])
    tok = np.searchsorted(ends, pos, side="right").tolist()
    for k in range(0, len(tok), 2):
        t0, t1 = tok[k], tok[k + 1] + 1
        labels[t0:t1] = ids[t0:t1]
    return labels


_CROSS_CHECK = 8  # conversations per call whose marked render is compared with the tracked one


def _control_tokens_of(tokenizer) -> list[str]:
    """The added-token strings of ``tokenizer`` that :func:`_added_regex` matches."""
    return [t for t in tokenizer.get_added_vocab() if isinstance(t, str) and t.strip()]


def _has_marker(messages: list) -> bool:
    """Whether any string in the messages holds a generation marker character."""
    for m in messages:
        for v in (m.values() if isinstance(m, dict) else ()):
            for s in ((v,) if type(v) is str else _strings_of(v)):
                if GEN_OPEN in s or GEN_CLOSE in s:
                    return True
    return False


def _scan(messages: list[dict], rx: re.Pattern) -> str | None:
    """One pass over the message strings (not ``role``) with ``rx`` = control-token strings or
    generation markers: None when nothing matches, "marker" when a marker character does (the
    tracked render is used), else "control"."""
    hit = None
    for m in messages:
        for k, v in m.items():
            if k == "role":
                continue
            for s in ((v,) if type(v) is str else _strings_of(v)):
                for mo in rx.finditer(s):
                    if mo.group(0) in (GEN_OPEN, GEN_CLOSE):
                        return "marker"
                    hit = "control"
    return hit


def _idle_workers(cpus: int) -> int:
    """Tokenizer threads beside the rendering thread: the CPUs the 1-minute load average leaves
    idle, less the one that renders (0: tokenize inline). On a busy machine extra threads only
    trade the GIL back and forth (measured slower: docs/render_speed.md)."""
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:
        return 0
    return max(0, min(cpus - 1, int(idle)))


def encode_conversations(tokenizer, conversations: list[TemplateInput | list[dict]],
                         template: str | Template = "chatml", *,
                         require_loss: bool | None = True, batch_size: int = 1024,
                         train_on_reasoning: bool = True, **extra: Any) -> list[tuple[list[int], list[int]]]:
    """:func:`render_with_mask` over many conversations, fast: the template is compiled once,
    and only conversations holding control-token text take the per-sample safe path. Same
    ``(ids, labels)`` as :func:`render_with_mask` for each conversation.

    Fast path (docs/render_speed.md): chat templates with ``{% generation %}`` blocks render
    with marker characters around the blocks (:func:`templates.marked_renderer`, one plain
    Jinja render per conversation); the texts are tokenized by a ``tiktoken`` encoding built
    from the tokenizer's own vocab and merges and proven equal to it
    (:mod:`pipelines.render.fast_bpe`), on worker threads while the next texts render when a CPU
    is idle; labels come from token counts at the span edges (or the tokens' byte lengths).
    Nothing is cached across conversations. Anything the fast path does not cover (other
    tokenizers, templates without markers, a text it refuses) goes through the HF tokenizer in
    batches of ``batch_size``, with the same results.

    Each conversation is a :class:`TemplateInput` or its ``messages``; those whose tools or
    documents differ from the first conversation's render one by one (:func:`render_with_mask`).

    Raises:
        EmptyLossMask (with the conversation's index in the message) unless ``require_loss=False``.
        TemplateInputError: a conversation's shape fails the template.
    """
    tpl = _resolve(template)
    inputs = [_input(c, tpl, tokenizer, False, {})[0] for c in conversations]
    ctx = {**(inputs[0].variables() if inputs else template_input([], tpl, tokenizer=tokenizer).variables()),
           **extra}
    own = {i for i, inp in enumerate(inputs) if {**inp.variables(), **extra} != ctx}
    conversations = [inp.messages for inp in inputs]
    rx = _added_regex(tokenizer)
    out: list = [None] * len(conversations)
    fe = None
    if hasattr(tokenizer, "backend_tokenizer"):
        fe = fast_encoder(tokenizer, build=len(conversations) >= FAST_MIN_CONVERSATIONS)
    marked = None
    if tpl.kind == "chat" and not ({"now", "documents", "name", "track", "messages", "add_generation_prompt"} & set(ctx)) \
            and not _has_marker([ctx]):
        marked = marked_renderer(tpl.text, tpl.name)
        if marked is not None:
            mctx = {"tools": _plain(ctx["tools"]) if ctx.get("tools") is not None else None, "documents": None,
                    "add_generation_prompt": False}
            mctx.update({k: _plain(v) for k, v in ctx.items() if k != "tools"})
    hf_pending: list[tuple[int, str, list]] = []
    scan_rx = literal_alternation(set(_control_tokens_of(tokenizer)) | {GEN_OPEN, GEN_CLOSE})

    def hf_flush():
        enc = tokenizer([t for _, t, _ in hf_pending], add_special_tokens=False)
        for k, (i, _, spans) in enumerate(hf_pending):
            ids = enc["input_ids"][k]
            out[i] = (ids, _labels(ids, enc.encodings[k], spans))
        hf_pending.clear()

    def hf_add(i, text, spans):
        hf_pending.append((i, text, spans))
        if len(hf_pending) >= batch_size:
            hf_flush()

    byte_len = fe.byte_len if fe is not None else None

    def take(task):
        metas, fut = task
        for (i, text, spans, exact, _), res in zip(metas, fut.result()):
            if res is None:
                hf_add(i, text, spans)
            else:
                ids, counts = res
                out[i] = (ids, _fast_labels(ids, counts if exact and counts is not None else None, text, spans,
                                            byte_len))

    def submit(items):
        if executor is not None:
            return executor.submit(fe.encode_chunk, items)
        done = Future()
        done.set_result(fe.encode_chunk(items))
        return done

    def cuts_of(text, spans):
        """Span edges as cuts when every edge is a token boundary (labels from token counts)."""
        edges = [p for a, b in spans if b > a for p in (a, b)]
        if all(fe.is_boundary(text, p) for p in edges) and edges == sorted(edges):
            return edges, True
        return [], False

    workers = _idle_workers(fe.threads) if fe is not None else 0
    executor = ThreadPoolExecutor(workers) if workers else None
    tasks: deque = deque()
    chunk: list[tuple[int, str, list]] = []
    i = 0  # the conversation being rendered, named when its render fails
    try:
        for i, messages in enumerate(conversations):
            if own and i in own:
                out[i] = render_with_mask(tokenizer, inputs[i], tpl, require_loss=False,
                                          train_on_reasoning=train_on_reasoning, **extra)
                continue
            found = _scan(messages, scan_rx)  # None, or "control" / "marker" (GEN_OPEN/GEN_CLOSE)
            r = marked(messages, mctx) if marked is not None and found != "marker" else None
            if r is None:
                text, spans = _render_spans(tpl, messages, ctx, False)
            else:
                text, spans = r
                if i < _CROSS_CHECK and (text, spans) != _render_spans(tpl, messages, ctx, False):
                    marked, (text, spans) = None, _render_spans(tpl, messages, ctx, False)  # pragma: no cover
            if not train_on_reasoning:
                spans = _reasoning_masked(tpl, messages, text, spans, ctx, False)
            if found is not None and (found == "control" or _has_control(messages, rx)):
                out[i] = _encode_safe(tokenizer, tpl, messages, text, spans, ctx, False, rx)
            elif fe is None:
                hf_add(i, text, spans)
            else:
                cuts, exact = cuts_of(text, spans)
                chunk.append((i, text, spans, exact, cuts))
                if len(chunk) >= _CHUNK:
                    tasks.append((chunk, submit([(m[1], m[4]) for m in chunk])))
                    chunk = []
                    while tasks and tasks[0][1].done():  # labels of finished chunks while others encode
                        take(tasks.popleft())
        if chunk:
            tasks.append((chunk, submit([(m[1], m[4]) for m in chunk])))
        while tasks:
            take(tasks.popleft())
    except TemplateRenderError as e:
        better = explain_render_error(e, inputs[i], tpl.name)
        if better is e:
            raise
        raise better from e
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    if hf_pending:
        hf_flush()
    for i, (ids, labels) in enumerate(out):
        try:
            _check_mask(labels, conversations[i], tpl, False, require_loss)
        except EmptyLossMask as e:
            raise EmptyLossMask(f"conversation {i}: {e}", template=tpl.name) from None
    return out
