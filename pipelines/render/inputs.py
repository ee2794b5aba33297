"""The one builder of a chat template's input.

Every path that renders a sample through a template (``wb render``, the Templates page,
preflight, training, evaluation, the Chat page, generation and the preference stage) calls
:func:`template_input` and hands the result to the renderer; no other module builds the
messages, tools, documents or special tokens a template sees. A server that renders for us
(the openai backend) is sent the messages this function builds.

The input is the shape ``tokenizer.apply_chat_template(conversation, tools=..., documents=...,
add_generation_prompt=..., **special_tokens)`` takes (transformers' ``apply_chat_template``
docstring): messages with ``role``, ``content`` (text, null, or a list of typed parts),
``tool_calls`` (``id``, ``type``, ``function: {name, arguments}``), ``tool_call_id``, ``name``,
``reasoning_content`` and any other key of the source kept verbatim; conversation-level
``tools`` (JSON schemas) and ``documents``.

Where a sample keeps its conversation-level fields: the system prompt in the ``system``
column (written as a first ``system`` message unless the messages already open with one),
``tools`` and ``documents`` in ``extra`` (a JSON string, as LLaMA-Factory's ShareGPT ``tools``
column holds it, is parsed here).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from datastore.errors import WorkbenchError


class TemplateInputError(WorkbenchError):
    """A sample cannot be turned into a template's input; the message names the sample id,
    the message index and the field."""


@dataclass(frozen=True)
class TemplateInput:
    """What a chat template renders.

    Attributes:
        messages: ``[{"role", "content", ...}]`` kept whole (every key of the stored message).
        tools: JSON schemas of the tools offered, or None.
        documents: ``[{"title", "text", ...}]`` for retrieval templates, or None.
        special_tokens: ``{"bos_token": ..., "eos_token": ..., ...}``: the tokenizer's special
            tokens, then the template's declared ones (its header), as strings.
        add_generation_prompt: whether the render ends with the opening of an assistant turn.
        sample_id: the sample it was built from (None for ad-hoc messages), for error messages.
    """

    messages: list[dict]
    tools: list | None = None
    documents: list | None = None
    special_tokens: dict = field(default_factory=dict)
    add_generation_prompt: bool = False
    sample_id: int | None = None

    def variables(self) -> dict[str, Any]:
        """Template variables beside ``messages`` and ``add_generation_prompt``: ``tools``,
        ``documents`` and the special tokens (keyword arguments of the renderer)."""
        out: dict[str, Any] = dict(self.special_tokens)
        if self.tools is not None:
            out["tools"] = self.tools
        if self.documents is not None:
            out["documents"] = self.documents
        return out


def _decoded(value, what: str, sample_id) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise TemplateInputError(f"sample {sample_id}: field '{what}' is not valid JSON: {e.msg} "
                                     f"at character {e.pos}") from None
    if not isinstance(value, list):
        raise TemplateInputError(f"sample {sample_id}: field '{what}' must be a list, got {type(value).__name__}")
    return value


def special_tokens_for(template=None, tokenizer=None) -> dict[str, str]:
    """The special tokens a template receives: the tokenizer's ``special_tokens_map`` (string
    values), then those the template's header declares (``tokens: bos_token=...``)."""
    out = {k: v for k, v in (tokenizer.special_tokens_map if tokenizer is not None else {}).items()
           if isinstance(v, str)}
    out.update(getattr(template, "special_tokens_map", None) or {})
    return out


def sample_messages(sample) -> list[dict]:
    """A stored sample's messages, whole: conversations as stored with the ``system`` column
    first; instruction samples as system, history pairs, the user turn and the answer
    (:meth:`datastore.samples.Sample.turns`)."""
    msgs = [dict(m) for m in sample.turns()]
    return msgs


def template_input(source, template=None, *, tokenizer=None, add_generation_prompt: bool = False,
                   tools: list | None = None, documents: list | None = None) -> TemplateInput:
    """Build a template's input from a sample or from messages.

    Args:
        source: a :class:`datastore.samples.Sample`, a list of message dicts, or a
            :class:`TemplateInput` (returned with the generation flag and tokens updated).
        template: the :class:`pipelines.render.Template` (or None: no declared tokens).
        tokenizer: a Hugging Face tokenizer whose special tokens the template sees, or None.
        add_generation_prompt: end with the opening of an assistant turn.
        tools, documents: override the sample's own (for ad-hoc messages).
    Returns:
        A :class:`TemplateInput`.
    Raises:
        TemplateInputError: ``tools`` or ``documents`` stored as text that is not a JSON list.
    """
    tokens = special_tokens_for(template, tokenizer)
    if isinstance(source, TemplateInput):
        return TemplateInput(source.messages, tools if tools is not None else source.tools,
                             documents if documents is not None else source.documents,
                             {**source.special_tokens, **tokens}, add_generation_prompt, source.sample_id)
    if isinstance(source, list):
        return TemplateInput([dict(m) for m in source], tools, documents, tokens, add_generation_prompt)
    sid = getattr(source, "sample_id", None)
    extra = getattr(source, "extra", None) or {}
    t = tools if tools is not None else _decoded(extra.get("tools"), "tools", sid)
    d = documents if documents is not None else _decoded(extra.get("documents"), "documents", sid)
    return TemplateInput(sample_messages(source), t, d, tokens, add_generation_prompt, sid)
