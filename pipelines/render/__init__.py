"""Rendering samples through templates: text, loss spans and token-level loss masks.

Chat templates (``templates/chat``) turn ``[{"role", "content"}]`` turns into one string,
exactly as ``tokenizer.apply_chat_template(tokenize=False)`` would with the same template
text; instruction templates (``templates/instruction``) turn a sample's fields
(``instruction``, ``input``, ``output``, ``system``) into a prompt and fail loudly on a
missing field. ``{% generation %}`` blocks mark what the model must learn to produce;
:func:`render_with_mask` turns them into training labels and tokenizes message content so
that it can never become a control token (ARCHITECTURE.md section 5).

Errors: :class:`TemplateRenderError` (a ``WorkbenchError``) and
:class:`TemplateSecurityError` (also ``jinja2.exceptions.SecurityError``); ``NotFound`` for
an unknown template name.
"""
from __future__ import annotations

import re
from typing import Any

from datastore.errors import WorkbenchError
from pipelines.render.templates import (
    Template,
    TemplateRenderError,
    TemplateSecurityError,
    get_template,
    list_templates,
    render_chat_text,
    render_strict,
    template_from_file,
    templates_root,
)

__all__ = [
    "Template", "TemplateRenderError", "TemplateSecurityError", "assistant_char_spans",
    "get_template", "list_templates", "render_chat", "render_chat_text", "render_instruction",
    "render_sample", "render_with_mask", "template_from_file", "template_info", "templates_root",
]

INSTRUCTION_FIELDS = ("system", "instruction", "input", "output")


def _resolve(template: str | Template, kind: str | None = None) -> Template:
    return template if isinstance(template, Template) else get_template(template, kind)


def template_info(name: str | Template) -> dict:
    """``{"name", "kind", "version", "sha256", "path"}`` of a registered template.

    ``sha256`` is the hex SHA-256 of the file text; a run records it. Raises ``NotFound``.
    """
    return _resolve(name).info()


def render_chat(messages: list[dict], template: str | Template = "chatml", add_generation_prompt: bool = False,
                **extra: Any) -> str:
    """Render a conversation with a chat template.

    Args:
        messages: ``[{"role": "system"|"user"|"assistant"|"tool", "content": str, ...}]``.
        template: a registered chat template name, or a :class:`Template`.
        add_generation_prompt: append the opening of an assistant turn (for generation).
        extra: more template variables (``bos_token``, ``tools``, ...).
    Returns:
        The rendered text (equal to ``apply_chat_template(tokenize=False)`` with this template).
    """
    tpl = _resolve(template)
    return render_chat_text(tpl.text, messages, add_generation_prompt=add_generation_prompt,
                            name=tpl.name, **extra)[0]


def assistant_char_spans(messages: list[dict], template: str | Template = "chatml",
                         add_generation_prompt: bool = False, **extra: Any) -> tuple[str, list[tuple[int, int]]]:
    """Render and return ``(text, spans)``: ``spans`` are the ``[start, end)`` character ranges
    of the template's ``{% generation %}`` blocks (assistant content plus its end marker for
    ChatML). Empty when the template has no such block or there is no assistant turn."""
    tpl = _resolve(template)
    return render_chat_text(tpl.text, messages, add_generation_prompt=add_generation_prompt,
                            name=tpl.name, track=True, **extra)


def render_instruction(fields: dict, template: str | Template = "alpaca", *,
                       with_spans: bool = False) -> str | tuple[str, list[tuple[int, int]]]:
    """Render an instruction template over a sample's fields.

    ``fields`` holds ``instruction`` and optionally ``input``, ``output``, ``system``; keys with
    value None are passed as None (the Alpaca template treats None like a missing input).
    Returns the text, or ``(text, spans)`` of the ``output`` generation block with ``with_spans``.

    Raises:
        TemplateRenderError: a field the template needs is missing (``err.field`` names it).
    """
    tpl = _resolve(template)
    text, spans = render_strict(tpl.text, dict(fields), name=tpl.name, track=True)
    return (text, spans) if with_spans else text


def render_sample(sample, template: str | Template = "chatml", add_generation_prompt: bool = False) -> str:
    """Render a :class:`datastore.samples.Sample` with a chat template (its ``turns()``) or an
    instruction template (its fields; conversations are refused by instruction templates)."""
    tpl = _resolve(template)
    if tpl.kind == "instruction":
        if sample.kind == "conversation":
            raise TemplateRenderError(f"template '{tpl.name}' renders instruction samples, not conversations",
                                      template=tpl.name)
        fields = {k: getattr(sample, k) for k in INSTRUCTION_FIELDS if getattr(sample, k) is not None}
        return render_instruction(fields, tpl)
    return render_chat(sample.turns(), tpl, add_generation_prompt=add_generation_prompt)


# --------------------------------------------------------------------------- tokenized masks

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _content_pieces(tpl: Template, messages: list[dict], text: str, add_generation_prompt: bool,
                    extra: dict) -> list[tuple[int, int, bool]]:
    """Split ``text`` into ``(start, end, is_content)`` pieces, where content pieces are
    message contents inserted verbatim by the template. Found by rendering the messages with
    sentinels in place of their content; raises when the template alters content."""
    masked = []
    contents = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str) and c:
            masked.append({**m, "content": f"\ue000{len(contents)}\ue001"})
            contents.append(c)
        else:
            masked.append(m)
    stext, _ = render_chat_text(tpl.text, masked, add_generation_prompt=add_generation_prompt,
                                name=tpl.name, **extra)
    pieces, pos, last = [], 0, 0
    rebuilt = []
    for mo in _SENTINEL.finditer(stext):
        lit = stext[last:mo.start()]
        if lit:
            pieces.append((pos, pos + len(lit), False))
            rebuilt.append(lit)
            pos += len(lit)
        c = contents[int(mo.group(1))]
        pieces.append((pos, pos + len(c), True))
        rebuilt.append(c)
        pos += len(c)
        last = mo.end()
    tail = stext[last:]
    if tail:
        pieces.append((pos, pos + len(tail), False))
        rebuilt.append(tail)
    if "".join(rebuilt) != text:
        raise WorkbenchError(
            f"template '{tpl.name}' changes message content while rendering, and a message contains "
            "control-token text; cannot tokenize it safely. Remove the control-token text or use a "
            "template that inserts content verbatim.")
    return pieces


def render_with_mask(tokenizer, messages: list[dict], template: str | Template = "chatml", *,
                     add_generation_prompt: bool = False, **extra: Any) -> tuple[list[int], list[int]]:
    """Render and tokenize a conversation for training: ``(input_ids, labels)``.

    ``labels[i]`` is ``input_ids[i]`` for tokens inside a ``{% generation %}`` block (the
    assistant turns) and -100 elsewhere; no BOS/EOS is added beyond what the template writes.
    When no message contains text of an added token (``<|im_start|>`` ...) the ids are exactly
    ``tokenizer(text, add_special_tokens=False)``; otherwise message content is tokenized with
    ``split_special_tokens=True`` so ``<|im_start|>system`` inside a message stays plain text.
    The returned lists are not truncated.
    """
    tpl = _resolve(template)
    text, spans = render_chat_text(tpl.text, messages, add_generation_prompt=add_generation_prompt,
                                   name=tpl.name, track=True, **extra)
    added = [t for t in tokenizer.get_added_vocab() if t]
    risky = any(isinstance(m.get("content"), str) and any(t in m["content"] for t in added) for m in messages)
    if not risky:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    else:
        ids, offsets = [], []
        for start, end, is_content in _content_pieces(tpl, messages, text, add_generation_prompt, extra):
            enc = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                            split_special_tokens=is_content)
            ids.extend(enc["input_ids"])
            offsets.extend((s + start, e + start) for s, e in enc["offset_mapping"])
    labels = []
    for tid, (s, e) in zip(ids, offsets):
        inside = any(s < b and e > a for a, b in spans)
        labels.append(tid if inside else -100)
    return ids, labels
