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

Reasoning is read from ``reasoning_content``, or from ``thinking`` when that is the key the
source used (copied to ``reasoning_content``; both keys are kept), as transformers 5 aliases
them. Content given as a list of typed parts (``[{"type": "text", "text": ...}]``) is passed
to the template unchanged, as ``apply_chat_template`` passes it: a template that concatenates
``message['content']`` as text then fails exactly where transformers fails, and
:func:`explain_render_error` turns that failure into an error naming the sample, the message
index and the field. Image, audio and video parts are refused up front for a template whose
text never mentions that kind (it renders text only), instead of being dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from datastore.errors import WorkbenchError


class TemplateInputError(WorkbenchError):
    """A sample cannot be turned into a template's input; the message names the sample id,
    the message index and the field."""


#: Content-part ``type`` values that carry media rather than text (OpenAI chat format:
#: ``image_url``, ``input_audio``; transformers processors: ``image``, ``audio``, ``video``),
#: and the word a template's text must contain to render that kind.
MEDIA_PARTS = {"image": "image", "image_url": "image", "input_image": "image",
               "audio": "audio", "input_audio": "audio", "video": "video", "video_url": "video"}


_ARTICLE = {"image": "an image", "audio": "audio", "video": "a video"}


def _where(sample_id, index: int | None = None) -> str:
    head = f"sample {sample_id}" if sample_id is not None else "conversation"
    return head if index is None else f"{head} message {index}"


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

    def prefix(self, n: int, add_generation_prompt: bool = True) -> "TemplateInput":
        """The same input cut to its first ``n`` messages (a prompt: by default with the
        generation prompt, as served before the assistant turn at index ``n``)."""
        return replace(self, messages=self.messages[:n], add_generation_prompt=add_generation_prompt)

    def with_contents(self, contents: list) -> "TemplateInput":
        """The same input with message ``i``'s ``content`` replaced by ``contents[i]`` (the
        renderer's way to find which characters of a render came from which message)."""
        if len(contents) != len(self.messages):
            raise ValueError(f"{len(contents)} contents for {len(self.messages)} messages")
        return replace(self, messages=[{**m, "content": c} for m, c in zip(self.messages, contents)])

    def roles(self) -> list:
        """``role`` of each message, in order."""
        return [m.get("role") for m in self.messages]


def _decoded(value, what: str, sample_id) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise TemplateInputError(f"{_where(sample_id)}: field '{what}' is not valid JSON: {e.msg} "
                                     f"at character {e.pos}") from None
    if not isinstance(value, list):
        raise TemplateInputError(f"{_where(sample_id)}: field '{what}' must be a list, got {type(value).__name__}")
    return value


def special_tokens_for(template=None, tokenizer=None) -> dict[str, str]:
    """The special tokens a template receives: the tokenizer's ``special_tokens_map`` (string
    values, as ``apply_chat_template`` passes them), then those the template's header declares
    (``tokens: bos_token=... eos_token=...``), which win: a registered template names the tokens
    of the model it was written for, and with no tokenizer they are all it gets."""
    out = {k: v for k, v in (tokenizer.special_tokens_map if tokenizer is not None else {}).items()
           if isinstance(v, str)}
    out.update(getattr(template, "special_tokens_map", None) or {})
    return out


def _media_kind(part) -> str | None:
    return MEDIA_PARTS.get(part.get("type")) if isinstance(part, dict) else None


def _checked_message(m, i: int, sample_id, template) -> dict:
    """A copy of message ``i`` with reasoning read from ``thinking``; refuses what no template
    can take (not an object, no role) and media parts a text-only template would drop."""
    if not isinstance(m, dict):
        raise TemplateInputError(f"{_where(sample_id, i)}: a message must be an object with 'role' and "
                                 f"'content', got {type(m).__name__}")
    if not isinstance(m.get("role"), str):
        raise TemplateInputError(f"{_where(sample_id, i)}: field 'role' is missing or not text")
    out = dict(m)
    if out.get("reasoning_content") is None and out.get("thinking") is not None:
        out["reasoning_content"] = out["thinking"]
    content = out.get("content")
    if isinstance(content, list) and template is not None:
        text = getattr(template, "text", "") or ""
        for k, part in enumerate(content):
            kind = _media_kind(part)
            if kind is not None and kind not in text:
                raise TemplateInputError(
                    f"{_where(sample_id, i)}: content part {k} is {_ARTICLE[kind]} ('{part.get('type')}'); "
                    f"template '{getattr(template, 'name', 'custom')}' renders text only")
    return out


def sample_messages(sample, template=None) -> list[dict]:
    """A stored sample's messages, whole: conversations as stored with the ``system`` column
    first; instruction samples as system, history pairs, the user turn and the answer
    (:meth:`datastore.samples.Sample.turns`), or for an instruction ``template`` (a
    :class:`pipelines.render.Template` or its name) :func:`instruction_messages`."""
    if isinstance(template, str):
        from pipelines.render.templates import get_template
        template = get_template(template)
    if getattr(template, "kind", None) == "instruction" and getattr(sample, "kind", None) == "instruction":
        return instruction_messages(sample)
    return sample.turns()


def instruction_messages(sample) -> list[dict]:
    """An instruction sample as an instruction template (Alpaca) reads it: the system prompt,
    the history pairs as user/assistant turns, the user turn whose ``content`` is the
    ``instruction`` and whose ``input`` key carries the input as stored (so the template picks
    its with-input or no-input prompt), and the assistant ``output`` when not None."""
    msgs = [{"role": "system", "content": sample.system}] if sample.system else []
    for user, assistant in sample.history or []:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    user = {"role": "user", "content": sample.instruction or ""}
    if sample.input is not None:
        user["input"] = sample.input
    msgs.append(user)
    if sample.output is not None:
        msgs.append({"role": "assistant", "content": sample.output})
    return msgs


def template_input(source, template=None, *, tokenizer=None, add_generation_prompt: bool = False,
                   tools: list | None = None, documents: list | None = None,
                   sample_id: int | None = None) -> TemplateInput:
    """Build a template's input from a sample or from messages.

    Args:
        source: a :class:`datastore.samples.Sample`, a list of message dicts, or a
            :class:`TemplateInput` (returned with the generation flag and tokens updated).
        template: the :class:`pipelines.render.Template` or a registered template's name (or
            None: no declared tokens, no check of media parts, as when a server renders with
            its own template).
        tokenizer: a Hugging Face tokenizer whose special tokens the template sees, or None.
        add_generation_prompt: end with the opening of an assistant turn.
        tools, documents: override the sample's own (for ad-hoc messages).
        sample_id: names ad-hoc messages in errors (a Sample names itself).
    Returns:
        A :class:`TemplateInput` whose messages are copies (the source is never changed);
        its messages are :func:`sample_messages` for the template.
    Raises:
        TemplateInputError: ``tools`` or ``documents`` stored as text that is not a JSON list;
        a message that is not an object or has no role; an image, audio or video content part
        for a template whose text never mentions that kind. Each names the sample id and,
        for a message, its index. ``NotFound``: an unknown template name.
    """
    if isinstance(template, str):
        from pipelines.render.templates import get_template
        template = get_template(template)
    tokens = special_tokens_for(template, tokenizer)
    if isinstance(source, TemplateInput):
        sid = source.sample_id if sample_id is None else sample_id
        msgs = [_checked_message(m, i, sid, template) for i, m in enumerate(source.messages)]
        return TemplateInput(msgs, tools if tools is not None else source.tools,
                             documents if documents is not None else source.documents,
                             {**source.special_tokens, **tokens}, add_generation_prompt, sid)
    if isinstance(source, (list, tuple)):
        msgs = [_checked_message(m, i, sample_id, template) for i, m in enumerate(source)]
        return TemplateInput(msgs, tools, documents, tokens, add_generation_prompt, sample_id)
    sid = getattr(source, "sample_id", None) if sample_id is None else sample_id
    extra = getattr(source, "extra", None) or {}
    t = tools if tools is not None else _decoded(extra.get("tools"), "tools", sid)
    d = documents if documents is not None else _decoded(extra.get("documents"), "documents", sid)
    msgs = [_checked_message(m, i, sid, template) for i, m in enumerate(sample_messages(source, template))]
    return TemplateInput(msgs, t, d, tokens, add_generation_prompt, sid)


def explain_render_error(err: Exception, inp: TemplateInput, template_name: str) -> Exception:
    """The error to raise for a failed render of ``inp``: where the template failed on a type
    (``TypeError`` inside Jinja, e.g. ``'...' + message['content']`` with content given as a
    list of typed parts, which ``apply_chat_template`` fails on too), a
    :class:`TemplateInputError` naming the sample id, the first message whose ``content`` is
    not text and the field; otherwise ``err`` itself."""
    if not isinstance(getattr(err, "__cause__", None), TypeError) or not isinstance(inp, TemplateInput):
        return err
    for i, m in enumerate(inp.messages):
        c = m.get("content")
        if c is not None and not isinstance(c, str):
            what = "a list of typed parts" if isinstance(c, list) else f"a {type(c).__name__}"
            return TemplateInputError(
                f"{_where(inp.sample_id, i)}: field 'content' is {what}, and template '{template_name}' "
                f"writes content as text only ({err.__cause__}); transformers' apply_chat_template fails "
                "on it the same way. Give the content as text, or use a template that reads typed parts")
    return err
