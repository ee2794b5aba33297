"""Helpers for the Templates page: a sample rendered through a template, cut into pieces by
role, its tokens and loss mask, and the HTML that shows them.

What is shown is what training sees: the sample's ``pipelines.render.template_input`` (messages
whole, system, tools, documents, the tokenizer's and the template's special tokens) through
``pipelines.render.render_with_mask``, as ``pipelines/train/data.py`` calls it. The ids and labels come from there; this
module only locates each message's (or field's) text inside the rendered string so the page
can colour it, underlines the characters of the learned tokens, and turns the result into
escaped HTML. No SQL, no ``duckdb`` (the app's layer rule).

Role pieces are found by rendering the same messages with a private-use sentinel in place of
each content (``\\ue000N\\ue001``) and reading where the sentinels land; when the template
changes content (``| trim``, ``| upper``), that fails the rebuild check and each content is
searched for in order instead. Text found neither way is shown as template text. The parts
of a conversation that are not message content (tool schemas, reasoning, tool calls) are
found by rendering once more per part with its characters replaced and reading the span that
changed; they are labelled ``tools``, ``reasoning`` and ``tool call``, and a tool message's
content ``tool result``.
"""
from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field

from pipelines.render import (
    EmptyLossMask,
    Template,
    TemplateInput,
    TemplateRenderError,
    assistant_char_spans,
    render_chat,
    render_instruction,
    render_sample,
    render_with_mask,
    split_sentinel_text,
    template_from_text,
    template_input,
)

# An instruction field is drawn in the colour of the role it plays in a chat.
FIELD_ROLE = {"system": "system", "instruction": "user", "input": "user", "output": "assistant"}
ROLE_COLORS = {  # rgba so the tints read on the light and the dark theme alike
    "system": (139, 92, 246),
    "user": (59, 130, 246),
    "assistant": (34, 160, 90),
    "tool": (234, 140, 20),
    "tool result": (234, 140, 20),
    "tool call": (190, 80, 30),
    "tools": (120, 110, 100),
    "reasoning": (20, 150, 170),
    "other": (140, 140, 140),
}
# Labels of the parts of a message other than its content, and of a tool message's content.
TOOL_RESULT, TOOL_CALL, TOOLS, REASONING = "tool result", "tool call", "tools", "reasoning"
_MASK_CHAR = "\ue002"   # private use: never in sample text, kept by the sandbox's tojson
LEARNED_RGB = (34, 160, 90)
MAX_TOKENS_SHOWN = 512
MAX_CHARS_SHOWN = 20_000
CUSTOM_NAME = "custom"



@dataclass
class RenderView:
    """A sample rendered through one template.

    Attributes:
        text: the rendered string. kind: ``chat`` or ``instruction``.
        learned: ``[start, end)`` character spans of the ``{% generation %}`` blocks.
        pieces: ``(start, end, label)`` covering ``text`` in order; ``label`` is a role
            (``user``), ``tool result``, ``tool call``, ``tools``, ``reasoning`` or an
            instruction field (``input``), or None for template text.
        ids / labels: token ids and training labels (-100 = not learned); empty when no
            tokenizer was given.
        messages: the sample's turns. note: why nothing is learned (an empty loss mask).
    """

    text: str
    kind: str
    learned: list[tuple[int, int]]
    pieces: list[tuple[int, int, str | None]]
    ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    note: str | None = None

    @property
    def n_learned(self) -> int:
        return sum(1 for x in self.labels if x != -100)


def custom_template(text: str, kind: str = "chat") -> Template:
    """A :class:`Template` over text typed in the editor (it has no file). Validated by the
    render stage: raises :class:`TemplateRenderError` (syntax) or
    :class:`TemplateSecurityError` (Python internals named)."""
    return template_from_text(text, name=CUSTOM_NAME, kind=kind)


def _label(s: str | None) -> str:
    role = (s or "other").lower()
    return TOOL_RESULT if role == "tool" else role


def _masked(value, keys: bool = False):
    """``value`` with every non-space character of its strings (with ``keys``, of its dict
    keys too: for data a template writes whole, as tool-call arguments) replaced by one
    private-use character: same types, same lengths, so the template takes the same
    branches, and every character it writes from ``value`` differs."""
    if isinstance(value, str):
        return "".join(c if c.isspace() else _MASK_CHAR for c in value)
    if isinstance(value, dict):
        return {(_masked(k) if keys else k): _masked(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, keys) for v in value]
    return value


def _diff_span(a: str, b: str) -> tuple[int, int] | None:
    """The ``[start, end)`` span of ``a`` that differs from ``b`` (common prefix and suffix
    cut), or None when they are equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    q = 0
    while q < n - p and a[-1 - q] == b[-1 - q]:
        q += 1
    return (p, len(a) - q) if len(a) - q > p else None


def _part_spans(inp: TemplateInput, tpl: Template, text: str) -> list[tuple[int, int, str]]:
    """Where the template writes the parts of a conversation that are not message content:
    the tool schemas (``tools``), each message's reasoning (``reasoning``) and each tool call's
    function name and arguments (``tool call``): ``[(start, end, label)]`` in ``text``, the
    render of ``inp``.

    Each part is found by rendering a copy of ``inp`` with that part's characters replaced
    (:func:`_masked`) and taking the span that changed; a part the template does not write
    (the reasoning of earlier turns some templates drop) changes nothing and gets no span.
    """
    out: list[tuple[int, int, str]] = []

    def span(probe: TemplateInput, label: str) -> None:
        try:
            other = render_chat(probe, tpl)
        except Exception:  # noqa: BLE001 - a template that rejects the probe: the part stays unlabelled
            return
        found = _diff_span(text, other)
        if found:
            out.append((*found, label))

    def with_message(i: int, message: dict) -> TemplateInput:
        return dataclasses.replace(inp, messages=[*inp.messages[:i], message, *inp.messages[i + 1:]])

    if inp.tools:
        span(dataclasses.replace(inp, tools=_masked(inp.tools)), TOOLS)
    for i, m in enumerate(inp.messages):
        for key in ("reasoning_content", "thinking"):
            if isinstance(m.get(key), str) and m[key].strip():
                span(with_message(i, {**m, key: _masked(m[key])}), REASONING)
        calls = m.get("tool_calls") if isinstance(m.get("tool_calls"), list) else []
        for j, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            fn = call.get("function") if isinstance(call.get("function"), dict) else call
            fn = {**fn, "name": _masked(fn.get("name")), "arguments": _masked(fn.get("arguments"), keys=True)}
            probe = {**call, "function": fn} if isinstance(call.get("function"), dict) else fn
            span(with_message(i, {**m, "tool_calls": [*calls[:j], probe, *calls[j + 1:]]}), TOOL_CALL)
    return out


def _overlay(pieces: list[tuple[int, int, str | None]], spans: list[tuple[int, int, str]],
             ) -> list[tuple[int, int, str | None]]:
    """``pieces`` with the template text inside each span labelled with the span's label
    (message content keeps its own label)."""
    for s, e, lab in spans:
        out = []
        for a, b, cur in pieces:
            if cur is not None or b <= s or a >= e:
                out.append((a, b, cur))
                continue
            cuts = sorted({a, b, max(a, s), min(b, e)})
            for x, y in zip(cuts, cuts[1:]):
                out.append((x, y, lab if s <= x and y <= e else None))
        pieces = out
    return pieces


def _locate(text: str, sentinel_text: str, contents: list[str], labels: list[str],
            ) -> list[tuple[int, int, str | None]]:
    """Pieces of ``text`` from a render with sentinels; falls back to ordered search."""
    found, rebuilt = split_sentinel_text(sentinel_text, contents)
    if rebuilt == text:
        return [(a, b, None if i is None else labels[i]) for a, b, i in found if b > a]
    # The template changed the content: find each one, in order, where it can be found.
    pieces, pos = [], 0
    for c, lab in zip(contents, labels):
        at = text.find(c, pos) if c else -1
        if at < 0:
            continue
        if at > pos:
            pieces.append((pos, at, None))
        pieces.append((at, at + len(c), lab))
        pos = at + len(c)
    if pos < len(text):
        pieces.append((pos, len(text), None))
    return pieces


def _sentinel_values(values: list) -> tuple[list, list[str], list[int]]:
    """Replace non-blank strings by sentinels; return (new values, contents, indexes)."""
    out, contents, idx = [], [], []
    for i, v in enumerate(values):
        if isinstance(v, str) and v.strip():
            out.append(f"\ue000{len(contents)}\ue001")
            contents.append(v)
            idx.append(i)
        else:
            out.append(v)
    return out, contents, idx


def _field_names(roles: list) -> list[str | None]:
    """The instruction field each message fills, as the renderer maps them (system, each user
    turn as an ``instruction``, each assistant turn as an ``output``: the earlier ones are the
    history pairs); messages that fit no field are refused by the renderer itself."""
    key = {"system": "system", "user": "instruction", "assistant": "output"}
    return [key.get(r) for r in roles]


def _sentinel_inputs(messages: list[dict], contents: list[str], labs: list) -> None:
    """Replace, in place, each message's non-blank ``input`` (where
    :func:`pipelines.render.inputs.instruction_messages` puts an instruction sample's input) by a
    sentinel, appending the text to ``contents`` and the label ``input`` to ``labs``. For the
    copies :meth:`TemplateInput.with_contents` makes, never a sample's own messages."""
    for m in messages:
        v = m.get("input")
        if isinstance(v, str) and v.strip():
            m["input"] = f"\ue000{len(contents)}\ue001"
            contents.append(v)
            labs.append("input")


def _learned_from_tokens(tokenizer, text: str, ids: list[int], labels: list[int]):
    """Character spans of the learned tokens, when ``text`` tokenizes to ``ids``; else None."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != list(ids):
        return None
    spans: list[tuple[int, int]] = []
    for (s, e), lab in zip(enc["offset_mapping"], labels):
        if lab == -100 or e <= s:
            continue
        if spans and s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(e, spans[-1][1]))
        else:
            spans.append((s, e))
    return spans


def build_view(sample, tpl: Template, tokenizer=None) -> RenderView:
    """Render ``sample`` through ``tpl`` as training does (its template input through
    :func:`pipelines.render.render_with_mask`), locate each role's text and, in a chat
    template, the tool schemas, reasoning and tool calls, and with a tokenizer add the ids,
    the labels and a note when the sample has nothing to learn.

    Raises what ``pipelines.render`` raises (:class:`TemplateRenderError`,
    :class:`TemplateSecurityError`, ``WorkbenchError``) except ``EmptyLossMask``, which
    becomes ``view.note``.
    """
    if tpl.kind not in ("chat", "instruction"):
        raise TemplateRenderError(f"template '{tpl.name}' is a {tpl.kind} template; pick a chat or "
                                  "instruction template to render samples", template=tpl.name)
    if tpl.kind == "instruction" and sample.kind == "conversation":
        render_sample(sample, tpl)  # the pipeline's refusal, with its message
    inp = template_input(sample, tpl, tokenizer=tokenizer)
    messages = inp.messages
    ids: list[int] = []
    labels: list[int] = []
    note = None
    if tokenizer is not None:
        try:
            ids, labels = render_with_mask(tokenizer, inp, tpl)
        except EmptyLossMask as e:
            note = str(e)
            ids, labels = render_with_mask(tokenizer, inp, tpl, require_loss=False)

    masked_contents, contents, idx = _sentinel_values([m.get("content") for m in messages])
    if tpl.kind == "instruction":
        names = _field_names(inp.roles())
        text, spans = render_instruction(inp, tpl, with_spans=True)
        labs = [names[i] for i in idx]
        masked = inp.with_contents(masked_contents)
        _sentinel_inputs(masked.messages, contents, labs)
        try:
            stext = render_instruction(masked, tpl)
        except TemplateRenderError:
            stext = ""
    else:
        text, spans = assistant_char_spans(inp, tpl)
        labs = [_label(messages[i].get("role")) for i in idx]
        try:
            stext = render_chat(inp.with_contents(masked_contents), tpl)
        except TemplateRenderError:
            stext = ""
    learned = list(spans)
    if tokenizer is not None:
        learned = _learned_from_tokens(tokenizer, text, ids, labels) or learned
    pieces = _locate(text, stext, contents, labs)
    if tpl.kind == "chat":
        pieces = _overlay(pieces, _part_spans(inp, tpl, text))
    return RenderView(text=text, kind=tpl.kind, learned=learned, pieces=pieces,
                      ids=ids, labels=labels, messages=messages, note=note)


# ---------------------------------------------------------------- HTML
_EXTRA_ESCAPES = {c: f"&#{ord(c)};" for c in "$:[]\\`*_~#|{}"}


def esc(s: str) -> str:
    """``s`` as inert HTML text inside Streamlit Markdown: entities for ``& < > " '`` and for
    the characters Markdown, math and Streamlit directives would act on; newlines as ``<br>``
    (a blank line would end the HTML block and let Markdown parse the rest)."""
    # One pass over the characters: escaping the output of html.escape again would turn the
    # '#' of its '&#x27;' into an entity, and the page would show "&#x27;" for every apostrophe.
    out = "".join(_EXTRA_ESCAPES.get(c) or html.escape(c, quote=True) for c in s)
    return out.replace("\r\n", "\n").replace("\n", "<br>")


def _rgba(rgb: tuple[int, int, int], a: float) -> str:
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{a})"


def role_rgb(label: str | None) -> tuple[int, int, int]:
    if label is None:
        return ROLE_COLORS["other"]
    return ROLE_COLORS.get(FIELD_ROLE.get(label, label), ROLE_COLORS["other"])


_BOX = ("font-family:'Source Code Pro',ui-monospace,monospace;font-size:0.85rem;line-height:1.7;"
        "white-space:pre-wrap;word-break:break-word;padding:0.75rem 1rem;border-radius:0.5rem;"
        "border:1px solid rgba(128,128,128,0.35);max-height:32rem;overflow-y:auto")


def legend_html(labels: list[str]) -> str:
    """Coloured chips naming the roles (or fields) present, plus the learned marker."""
    chips = []
    for lab in labels:
        c = role_rgb(lab)
        chips.append(f'<span class="wb-legend" style="background:{_rgba(c, 0.22)};border:1px solid '
                     f'{_rgba(c, 0.7)};border-radius:0.35rem;padding:0.05rem 0.45rem;margin-right:0.4rem;'
                     f'font-size:0.8rem">{esc(lab)}</span>')
    chips.append('<span class="wb-legend" style="border:1px dashed rgba(140,140,140,0.8);border-radius:0.35rem;'
                 'padding:0.05rem 0.45rem;margin-right:0.4rem;font-size:0.8rem;opacity:0.75">template text</span>')
    chips.append(f'<span class="wb-legend" style="text-decoration:underline 2px {_rgba(LEARNED_RGB, 1)};'
                 'text-underline-offset:3px;font-size:0.8rem">underlined = learned (loss on)</span>')
    return "<div>" + "".join(chips) + "</div>"


def _cuts(view: RenderView, limit: int) -> list[tuple[int, int, str | None, bool]]:
    """Pieces further cut at generation-span edges: ``(start, end, label, learned)``."""
    bounds = {0, min(len(view.text), limit)}
    for s, e, _ in view.pieces:
        bounds.update((s, e))
    for s, e in view.learned:
        bounds.update((s, e))
    edges = sorted(b for b in bounds if 0 <= b <= min(len(view.text), limit))
    out = []
    for a, b in zip(edges, edges[1:]):
        if b <= a:
            continue
        lab = next((p[2] for p in view.pieces if p[0] <= a and b <= p[1]), None)
        learned = any(s <= a and b <= e for s, e in view.learned)
        out.append((a, b, lab, learned))
    return out


def rendered_html(view: RenderView, limit: int = MAX_CHARS_SHOWN) -> str:
    """The rendered text as one line of HTML: role content tinted by role, template text
    dimmed, learned text underlined; at most ``limit`` characters."""
    parts = []
    for a, b, lab, learned in _cuts(view, limit):
        style = []
        if lab is not None:
            style.append(f"background:{_rgba(role_rgb(lab), 0.2)};border-radius:0.2rem")
        else:
            style.append("opacity:0.7;font-weight:600")
        if learned:
            style.append(f"text-decoration:underline 2px {_rgba(LEARNED_RGB, 1)};text-underline-offset:3px")
        cls = f"wb-{lab.replace(' ', '-')}" if lab else "wb-template"
        title = (lab or "template text") + (" · learned" if learned else "")
        parts.append(f'<span class="{cls}" title="{esc(title)}" style="{";".join(style)}">'
                     f"{esc(view.text[a:b])}</span>")
    return f'<div class="wb-rendered" style="{_BOX}">' + "".join(parts) + "</div>"


def token_text(tokenizer, tid: int) -> str:
    """One token as readable text: spaces as ``·``, newlines as ``↵``, tabs as ``→``."""
    s = tokenizer.decode([tid])
    return s.replace(" ", "·").replace("\n", "↵").replace("\t", "→") or "∅"


def tokens_html(tokenizer, ids: list[int], labels: list[int], limit: int = MAX_TOKENS_SHOWN) -> str:
    """Tokens as chips; learned tokens (label != -100) in green, the others grey."""
    chips = []
    base = ("display:inline-block;margin:0.1rem;padding:0 0.3rem;border-radius:0.3rem;"
            "font-family:'Source Code Pro',ui-monospace,monospace;font-size:0.75rem;line-height:1.5;"
            "white-space:pre")
    for i, (tid, lab) in enumerate(zip(ids[:limit], labels[:limit])):
        learned = lab != -100
        look = (f"background:{_rgba(LEARNED_RGB, 0.25)};border:1px solid {_rgba(LEARNED_RGB, 0.9)};font-weight:600"
                if learned else "background:rgba(140,140,140,0.12);border:1px solid rgba(140,140,140,0.35);"
                "opacity:0.8")
        cls = "wb-tok wb-learned" if learned else "wb-tok wb-masked"
        title = f"#{i} id {tid}" + (" · learned" if learned else " · masked (-100)")
        chips.append(f'<span class="{cls}" title="{esc(title)}" style="{base};{look}">'
                     f"{esc(token_text(tokenizer, tid))}</span>")
    return ('<div class="wb-tokens" style="max-height:24rem;overflow-y:auto;padding:0.25rem 0">'
            + "".join(chips) + "</div>")


def part_mask(view: RenderView) -> list[dict]:
    """Per labelled part (role content, ``tool call``, ``tool result``, ``tools``,
    ``reasoning``, instruction field), in order of first appearance: ``[{"part",
    "characters", "learned characters", "loss"}]``, ``loss`` being ``on``, ``off`` or
    ``partly on`` over the part's characters (from the learned spans of the view)."""
    rows: dict[str, list[int]] = {}
    for a, b, lab, learned in _cuts(view, len(view.text)):
        if lab is None:
            continue
        row = rows.setdefault(lab, [0, 0])
        row[0] += b - a
        row[1] += (b - a) if learned else 0
    return [{"part": lab, "characters": n, "learned characters": k,
             "loss": "on" if k == n else "off" if k == 0 else "partly on"} for lab, (n, k) in rows.items()]


def mask_runs(labels: list[int]) -> list[dict]:
    """Consecutive runs of the mask: ``[{"from", "to", "tokens", "learned"}]`` (token indexes,
    inclusive), for a compact table."""
    runs = []
    for i, lab in enumerate(labels):
        learned = lab != -100
        if runs and runs[-1]["learned"] == learned:
            runs[-1]["to"] = i
            runs[-1]["tokens"] += 1
        else:
            runs.append({"from": i, "to": i, "tokens": 1, "learned": learned})
    return runs
