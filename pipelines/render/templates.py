"""Template registry and the sandboxed Jinja environments that render templates.

Templates are Jinja files under ``templates/<kind>/<name>.jinja`` (kind: ``chat``,
``instruction``, ``generator``, ...). Each file may open with a header comment
``{#- wb-template: <name> | kind: <kind> | version: <n> ... -#}``; the version comes from
there (1 when absent) and the identity of a template is its SHA-256 over the file text,
which a training run records (docs/architecture.md section 5).

Two environments, both :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`:

* chat templates render exactly as ``tokenizer.apply_chat_template`` does, in
  :func:`chat_environment`: a copy of transformers' settings (same sandbox class,
  ``trim_blocks``/``lstrip_blocks``, ``{% generation %}`` tracker, ``loopcontrols``,
  ``raise_exception``, ``tojson``, ``strftime_now``, ``dict``, ``namespace``) and the same
  preparation of messages. Undefined variables render empty, as on the Hub. ``strftime_now``
  can be pinned (:func:`pinned_clock`) so dated templates render reproducibly.
* instruction and generator templates render with :class:`jinja2.StrictUndefined`, so a
  missing field is an error naming the field instead of silently empty text.

Rendering errors become :class:`TemplateRenderError` (a ``WorkbenchError``); a template that
reaches for Python internals raises :class:`TemplateSecurityError`, which is also a
``jinja2.exceptions.SecurityError``. Every template file is validated before use
(:func:`check_template_source`: it parses and names no ``__dunder__``); :func:`add_template`
adds a user's file to the registry after a test render.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from datastore.errors import NotFound, WorkbenchError
from pipelines.render.inputs import TemplateInput, explain_render_error

_HEADER = re.compile(r"\{#-?\s*wb-template:(?P<body>.*?)-?#\}", re.S)
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
_TOKENS_LINE = re.compile(r"^\s*tokens:(.*)$", re.M)
# Token-like literals in chat templates: <|im_start|>, <s>, </s>, <bos>, [INST], [/INST], [TOOL_CALLS] ...
_CONTROL_LITERAL = re.compile(r"<\|[^<>|\s]{1,60}\|>|</?s>|<(?:bos|eos|pad|unk|start_of_turn|end_of_turn)>"
                              r"|\[/?[A-Z][A-Z_]{1,40}\]|<[A-Z][A-Z_]{2,40}>")


class TemplateRenderError(WorkbenchError):
    """A template failed to render (missing field, ``raise_exception`` in the template, syntax).

    Attributes:
        template: the template name (or ``<string>`` for inline text).
        field: the missing variable, when the failure is an undefined one.
    """

    def __init__(self, message: str, *, template: str = "<string>", field: str | None = None):
        self.template, self.field = template, field
        super().__init__(message)


class TemplateSecurityError(TemplateRenderError, SecurityError):
    """A template tried to reach Python internals (blocked by the sandbox)."""


def templates_root() -> Path:
    """``$WB_TEMPLATES_DIR`` or the repository's ``templates/`` folder."""
    env = os.environ.get("WB_TEMPLATES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class Template:
    """One template file.

    Attributes:
        name: file stem (``chatml``); kind: its folder (``chat``); version: from the header;
        path: the file; text: its content; sha256: hex SHA-256 of ``text`` (UTF-8).
    """

    name: str
    kind: str
    version: int
    path: Path | None
    text: str
    sha256: str
    special_tokens: tuple = ()  # ((name, value), ...) from the header's ``tokens:`` line

    def info(self) -> dict:
        return {"name": self.name, "kind": self.kind, "version": self.version,
                "sha256": self.sha256, "path": str(self.path) if self.path else None}

    @property
    def special_tokens_map(self) -> dict:
        """``{"bos_token": "<s>", ...}`` declared in the header (``tokens: bos_token=<s> ...``)."""
        return dict(self.special_tokens)

    @property
    def has_generation_markers(self) -> bool:
        """Whether the template marks what to learn with ``{% generation %}`` blocks."""
        return bool(_GENERATION_TAG.search(self.text))

    @property
    def control_tokens(self) -> tuple[str, ...]:
        """Control-token strings of this template: token-like literals it writes (``<|im_start|>``,
        ``[INST]``, ``</s>``) and the special tokens its header declares; longest first."""
        return template_control_tokens(self.text, self.special_tokens_map)


def _parse_header(text: str) -> dict:
    m = _HEADER.search(text)
    if not m:
        return {}
    first = m.group("body").strip().splitlines()[0] if m.group("body").strip() else ""
    out = {}
    for i, part in enumerate(first.split("|")):
        part = part.strip()
        if i == 0:
            out["name"] = part
        elif ":" in part:
            k, v = part.split(":", 1)
            out[k.strip()] = v.strip()
    tl = _TOKENS_LINE.search(m.group("body"))
    if tl:
        out["tokens"] = tuple((k, v) for k, v in re.findall(r"(\w+_token)=(\S+)", tl.group(1)))
    return out


def template_control_tokens(text: str, special_tokens: dict | None = None) -> tuple[str, ...]:
    """Control-token strings a template writes: token-like string literals in its text
    (``<|im_start|>``, ``[INST]``, ``</s>``, ``<BOS_TOKEN>``) plus the string values of
    ``special_tokens`` (``bos_token`` ...). Longest first, so a token wins over those it contains."""
    try:
        ast = chat_environment().parse(text)
        literals = [n.data for n in ast.find_all(jinja2.nodes.TemplateData)]
        literals += [n.value for n in ast.find_all(jinja2.nodes.Const) if isinstance(n.value, str)]
    except jinja2.TemplateSyntaxError:
        literals = [text]
    found = {t for lit in literals for t in _CONTROL_LITERAL.findall(lit)}
    found |= {v for v in (special_tokens or {}).values() if isinstance(v, str) and v.strip()}
    return tuple(sorted(found, key=lambda t: (-len(t), t)))


def check_template_source(text: str, name: str = "<string>") -> None:
    """Validate a template before use: it must parse, and it must not name Python internals
    (attributes or keys starting with ``__``, such as ``__class__``, ``__globals__``,
    ``__subclasses__``), which the sandbox would refuse at render time anyway.

    Raises:
        TemplateSecurityError: an attribute walk to a dunder name (the message names it and the line).
        TemplateRenderError: a syntax error (with the line).
    """
    try:
        ast = chat_environment().parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateRenderError(f"template '{name}' has a syntax error at line {e.lineno}: {e.message}",
                                  template=name) from e
    found: list[tuple[int, str]] = []
    for node in ast.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem, jinja2.nodes.Name)):
        attr = (node.attr if isinstance(node, jinja2.nodes.Getattr)
                else node.name if isinstance(node, jinja2.nodes.Name)
                else node.arg.value if isinstance(node.arg, jinja2.nodes.Const) else None)
        if isinstance(attr, str) and attr.startswith("__") and (node.lineno, attr) not in found:
            found.append((node.lineno, attr))
    if found:
        found.sort()
        names = ", ".join(f"'{a}'" for _, a in found)
        raise TemplateSecurityError(
            f"template '{name}' is not allowed: it reaches for Python internals {names} "
            f"(line {found[0][0]}); templates render in a sandbox and cannot access Python internals",
            template=name)


def template_from_file(path: str | Path, kind: str | None = None) -> Template:
    """Read one template file (any location), validated by :func:`check_template_source`.

    Raises:
        TemplateSecurityError: the template names Python internals. TemplateRenderError: syntax.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    return _template_from_text(text, name=p.stem, kind=kind or _parse_header(text).get("kind") or p.parent.name,
                               path=p)


@lru_cache(maxsize=256)
def _checked(text: str, name: str) -> None:
    check_template_source(text, name)


def _template_from_text(text: str, *, name: str, kind: str, path: Path | None) -> Template:
    head = _parse_header(text)
    try:
        version = int(head.get("version", 1))
    except ValueError:
        version = 1
    _checked(text, name)
    return Template(name=name, kind=kind, version=version, path=path, text=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    special_tokens=head.get("tokens", ()))


def template_from_text(text: str, name: str = "custom", kind: str = "chat") -> Template:
    """A :class:`Template` from Jinja text (validated by :func:`check_template_source`)."""
    return _template_from_text(text, name=name, kind=kind, path=None)


def template_from_tokenizer(tokenizer, name: str | None = None) -> Template:
    """The tokenizer's own ``chat_template`` as a chat :class:`Template` (version 1, SHA-256 of
    the text). It renders exactly as ``tokenizer.apply_chat_template`` does.

    Raises:
        NotFound: the tokenizer has no chat template. TemplateSecurityError / TemplateRenderError.
    """
    text = getattr(tokenizer, "chat_template", None)
    if isinstance(text, dict):
        text = text.get("default")
    if not text:
        raise NotFound("the tokenizer has no chat_template")
    name = name or (Path(getattr(tokenizer, "name_or_path", "") or "tokenizer").name or "tokenizer")
    return _template_from_text(text, name=name, kind="chat", path=None)


def add_template(path: str | Path, kind: str = "chat", name: str | None = None) -> Template:
    """Validate a user's template file and copy it into ``templates/<kind>/<name>.jinja``.

    Validation: it parses, names no Python internals, and renders a sample (a conversation for
    ``chat``, Alpaca fields for ``instruction``) in the sandbox.

    Raises:
        TemplateSecurityError, TemplateRenderError; WorkbenchError when the name is taken by
        a different template.
    """
    src = Path(path)
    text = src.read_text(encoding="utf-8")
    name = name or src.stem
    tpl = template_from_text(text, name=name, kind=kind)
    if kind == "chat":
        render_chat_text(text, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                {"role": "assistant", "content": "a"}], name=name)
    elif kind == "instruction":
        render_strict(text, {"instruction": "i", "input": "x", "output": "o"}, name=name)
    dest = templates_root() / kind / f"{name}.jinja"
    if dest.exists() and dest.read_text(encoding="utf-8") != text:
        raise WorkbenchError(f"template '{kind}/{name}' already exists with other content; pick another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return template_from_file(dest, kind)


def list_templates(kind: str | None = None) -> list[Template]:
    """All templates under :func:`templates_root`, optionally of one kind, sorted by kind/name."""
    root = templates_root()
    out = []
    if root.is_dir():
        for p in sorted(root.glob("*/*.jinja")):
            if kind is None or p.parent.name == kind:
                out.append(template_from_file(p, p.parent.name))
    return out


def get_template(name: str, kind: str | None = None) -> Template:
    """The template ``name`` (``chatml``) or ``kind/name`` (``chat/chatml``).

    Raises:
        NotFound: no such template, or the bare name exists in several kinds.
    """
    if "/" in name and kind is None:
        kind, name = name.split("/", 1)
    hits = [t for t in list_templates(kind) if t.name == name]
    if not hits:
        known = ", ".join(f"{t.kind}/{t.name}" for t in list_templates(kind)) or "none"
        raise NotFound(f"template '{name}' not found under {templates_root()} (known: {known})")
    if len(hits) > 1:
        raise NotFound(f"template name '{name}' is ambiguous: "
                       + ", ".join(f"{t.kind}/{t.name}" for t in hits) + "; use kind/name")
    return hits[0]


# --------------------------------------------------------------------------- environments

class GenerationTracker(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body and, while a tracker is
    active, records the body's character span in the output (as transformers' extension)."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        environment.extend(activate_tracker=self.activate_tracker)
        self._tracking = contextvars.ContextVar("wb_generation_tracker", default=None)

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        rv = caller()
        tracking = self._tracking.get()
        if tracking is not None:
            blocks, spans = tracking
            start = len("".join(blocks))
            spans.append((start, start + len(rv)))
        return rv

    @contextmanager
    def activate_tracker(self, blocks: list, spans: list):
        if self._tracking.get() is not None:
            raise ValueError("generation tracker already active")
        token = self._tracking.set((blocks, spans))
        try:
            yield
        finally:
            self._tracking.reset(token)


# Private-use characters wrapped around generation bodies by the marking renderer.
GEN_OPEN, GEN_CLOSE = "\U000f0000", "\U000f0001"


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


_PINNED_NOW: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("wb_pinned_now", default=None)


def _strftime_now(fmt):
    pinned = _PINNED_NOW.get()
    return (pinned or datetime.now()).strftime(fmt)


@contextmanager
def pinned_clock(now: datetime | None):
    """Within the block, ``strftime_now`` in templates reads ``now`` instead of the clock
    (templates such as SmolLM3's print today's date). ``None`` leaves the clock alone."""
    token = _PINNED_NOW.set(now)
    try:
        yield
    finally:
        _PINNED_NOW.reset(token)


class _TemplateDict:
    """``dict`` inside templates (as transformers): a callable, not the type itself."""

    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """``namespace`` that refuses underscore-prefixed attributes (as transformers)."""

    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}. "
                "Please rename the attribute.")


def _make_env(undefined) -> ImmutableSandboxedEnvironment:
    # The settings of transformers.utils.chat_template_utils._cached_compile_jinja_template
    # (transformers 5.24): same sandbox class, trim/lstrip blocks, extensions, filter and globals.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=undefined,
                                        extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


@lru_cache(maxsize=1)
def chat_environment() -> ImmutableSandboxedEnvironment:
    """Sandbox with transformers' chat-template settings (lenient undefined)."""
    return _make_env(jinja2.Undefined)


@lru_cache(maxsize=1)
def strict_environment() -> ImmutableSandboxedEnvironment:
    """Same sandbox with :class:`jinja2.StrictUndefined` (instruction/generator templates)."""
    return _make_env(jinja2.StrictUndefined)


@lru_cache(maxsize=64)
def _compile(text: str, strict: bool) -> jinja2.Template:
    env = strict_environment() if strict else chat_environment()
    return env.from_string(text)


def _wrap(err: Exception, template: str) -> TemplateRenderError:
    if isinstance(err, TemplateRenderError):
        return err
    if isinstance(err, SecurityError):
        return TemplateSecurityError(f"template '{template}' is not allowed: {err}", template=template)
    if isinstance(err, UndefinedError):
        m = re.search(r"'([^']+)' is undefined", str(err))
        field = m.group(1) if m else None
        what = f"field '{field}'" if field else "a field"
        return TemplateRenderError(f"template '{template}' needs {what}, which the sample lacks ({err})",
                                   template=template, field=field)
    if isinstance(err, jinja2.TemplateSyntaxError):
        return TemplateRenderError(f"template '{template}' has a syntax error at line {err.lineno}: "
                                   f"{err.message}", template=template)
    return TemplateRenderError(f"template '{template}' failed: {err}", template=template)


def _generate(tpl: jinja2.Template, context: dict, track: bool) -> tuple[str, list[tuple[int, int]]]:
    if not track:
        return tpl.render(**context), []
    blocks: list[str] = []
    spans: list[tuple[int, int]] = []
    with tpl.environment.activate_tracker(blocks, spans):
        for block in tpl.generate(**context):
            blocks.append(block)
    return "".join(blocks), spans


def render_strict(text: str, context: dict, *, name: str = "<string>",
                  track: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """Render ``text`` with StrictUndefined; return ``(rendered, generation_spans)``.

    Raises:
        TemplateRenderError: missing field (``.field`` names it), syntax error, ``raise_exception``.
        TemplateSecurityError: sandbox violation.
    """
    try:
        _checked(text, name)
        return _generate(_compile(text, True), context, track)
    except (TemplateError, TypeError, ValueError) as e:  # TypeError: e.g. 'None' + str inside the template
        raise _wrap(e, name) from (None if isinstance(e, TemplateRenderError) else e)


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_SCALARS = (str, int, float, bool)


def _plain(value):
    """Template data rebuilt from plain JSON types (as transformers' ``_plain_template_data``):
    exact scalars as they are, str/int/float subclasses stripped, mappings/lists/tuples copied,
    anything else an inert ``<TypeName>`` placeholder."""
    t = type(value)
    if value is None or t in _SCALARS:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item") and callable(value.item) and type(value).__module__ == "numpy":
        return _plain(value.item())
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def prepare_messages(messages: list) -> list[dict]:
    """The messages a chat template sees, as ``apply_chat_template`` builds them: keys whose
    value is None dropped (``content=None`` in OpenAI-style tool calls), plain JSON data, and
    the reasoning fields aliased (``reasoning_content``/``thinking``/``reasoning``)."""
    out = []
    for m in messages:
        if not isinstance(m, dict):
            if callable(getattr(m, "model_dump", None)):
                m = m.model_dump()
            else:
                raise TypeError(f"Chat messages should be dicts, dataclasses or pydantic models, but got {m!r}.")
        if all(type(v) is str for v in m.values()):  # the common case: plain already (and the
            pass                                       # sandbox is immutable, so no copy is needed)
        else:
            m = _plain({k: v for k, v in m.items() if v is not None})
        if "reasoning_content" in m or "thinking" in m or "reasoning" in m:
            reasoning = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
            if reasoning is not None:
                m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out


def compile_chat(text: str) -> jinja2.Template:
    """The compiled chat template (cached by text), for callers rendering many conversations."""
    return _compile(text, False)


def render_chat_text(text: str, messages, *, add_generation_prompt: bool | None = None,
                     tools: list | None = None, documents: list | None = None, name: str = "<string>",
                     track: bool = False, now: datetime | None = None,
                     **extra: Any) -> tuple[str, list[tuple[int, int]]]:
    """Render a chat template given as text, as ``apply_chat_template(tokenize=False)`` would.

    Renders in :func:`chat_environment` (transformers' sandbox settings), with the messages
    prepared as :func:`prepare_messages` (as transformers does) and the extra variables made
    plain JSON data.

    Args:
        text: the Jinja chat template.
        messages: a :class:`pipelines.render.inputs.TemplateInput` (its messages, tools,
            documents, special tokens and generation flag; explicit arguments win), or
            ``[{"role", "content", ...}]``.
        add_generation_prompt: None: the input's flag (False for a list).
        extra: further template variables (``bos_token``, ``eos_token``, ...).
        track: also return the character spans of ``{% generation %}`` blocks.
        now: pin ``strftime_now`` to this moment (None: the clock).
    Returns:
        ``(rendered, spans)``; ``spans`` is empty unless ``track``.
    Raises:
        TemplateRenderError (``raise_exception`` keeps the template's own message) /
        TemplateSecurityError.
    """
    inp = None
    if isinstance(messages, TemplateInput):
        inp = messages
        vars_ = inp.variables()
        tools = tools if tools is not None else vars_.pop("tools", None)
        documents = documents if documents is not None else vars_.pop("documents", None)
        vars_.pop("tools", None), vars_.pop("documents", None)
        extra = {**vars_, **extra}
        messages = inp.messages
        if add_generation_prompt is None:
            add_generation_prompt = inp.add_generation_prompt
    add_generation_prompt = bool(add_generation_prompt)
    try:
        msgs = prepare_messages(messages)
        ctx = {"messages": msgs, "tools": _plain(tools) if tools is not None else None,
               "documents": _plain(documents) if documents is not None else None,
               "add_generation_prompt": add_generation_prompt,
               **{k: _plain(v) for k, v in extra.items()}}
        if documents is not None and any(not isinstance(d, dict) for d in documents):
            raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
        _checked(text, name)
        tpl = _compile(text, False)
        if now is None:
            return _generate(tpl, ctx, track)
        with pinned_clock(now):
            return _generate(tpl, ctx, track)
    except (TemplateError, TypeError, ValueError) as e:
        err = _wrap(e, name)
        cause = None if isinstance(e, TemplateRenderError) else e
        if inp is not None and cause is not None:  # the input's shape failed the template: name it
            err.__cause__ = cause
            better = explain_render_error(err, inp, name)
            if better is not err:
                raise better from err
        raise err from cause


_GEN_OPEN_TAG = re.compile(r"\{%([-+]?)\s*generation\s*([-+]?)%\}")
_GEN_CLOSE_TAG = re.compile(r"\{%([-+]?)\s*endgeneration\s*([-+]?)%\}")


def _is_generation(node) -> bool:
    return (isinstance(node, jinja2.nodes.CallBlock) and isinstance(node.call, jinja2.nodes.Call)
            and isinstance(node.call.node, jinja2.nodes.ExtensionAttribute)
            and node.call.node.name == "_generation_support")


def _markable(ast) -> bool:
    """Whether the template's ``{% generation %}`` blocks can become plain ``if`` blocks that
    write markers: each block writes straight to the output (not inside a macro, call block,
    filter block, ``{% set %}`` block or another generation block, where its text could be
    captured or changed), and no body assigns variables or names ``caller``/``varargs``/``kwargs``
    (a call block's body is a macro with its own scope; an ``if`` body is not)."""
    capture = (jinja2.nodes.Macro, jinja2.nodes.CallBlock, jinja2.nodes.FilterBlock, jinja2.nodes.AssignBlock)
    scoped = (jinja2.nodes.Assign, jinja2.nodes.AssignBlock, jinja2.nodes.Macro, jinja2.nodes.CallBlock,
              jinja2.nodes.Import, jinja2.nodes.FromImport)

    def body_ok(gen) -> bool:
        for stmt in gen.body:
            if isinstance(stmt, scoped) or any(True for _ in stmt.find_all(scoped)):
                return False
            if any(n.name in ("caller", "varargs", "kwargs") for n in stmt.find_all(jinja2.nodes.Name)):
                return False
        return True

    def walk(node, inside: bool) -> bool:
        for child in node.iter_child_nodes():
            if _is_generation(child) and (inside or not body_ok(child)):
                return False
            if not walk(child, inside or isinstance(child, capture)):
                return False
        return True

    return walk(ast, False)


@lru_cache(maxsize=64)
def marked_renderer(text: str, name: str = "<string>"):
    """A fast renderer of a chat template with ``{% generation %}`` spans, for many conversations
    (:func:`pipelines.render.encode_conversations`), or None when the template does not allow it.

    The template is rewritten once: each ``{% generation %}`` tag becomes
    ``{% if true %}{{ GEN_OPEN }}{% if true %}`` and each ``{% endgeneration %}`` becomes
    ``{% endif %}{{ GEN_CLOSE }}{% endif %}``, with the tag's whitespace controls kept on the outer
    tags (block tags on both ends, so ``trim_blocks``/``lstrip_blocks`` act as on the original
    tag). One plain render then gives the text with markers around the generation bodies, which
    become the spans; transformers' call-block extension costs a macro call per block and the
    tracked render joins the output so far at each block (about 3x slower together).

    Returns ``render(messages, context) -> (text, spans) | None``, the same as
    ``render_chat_text(text, messages, track=True, **context)`` where ``context`` is already
    plain data (tools, documents, add_generation_prompt and the special tokens). The caller must
    not pass messages holding :data:`GEN_OPEN`/:data:`GEN_CLOSE`; None when the markers come
    out unbalanced. Rendering errors raise as in :func:`render_chat_text`. None (no renderer)
    when the template has no generation block or fails :func:`_markable`.
    """
    _checked(text, name)
    if not _GENERATION_TAG.search(text):
        return None
    ast = chat_environment().parse(text)
    if not _markable(ast):
        return None
    n_blocks = sum(1 for n in ast.find_all(jinja2.nodes.CallBlock) if _is_generation(n))
    src, n_open = _GEN_OPEN_TAG.subn(lambda m: "{%" + m.group(1) + " if true %}{{ '" + GEN_OPEN
                                     + "' }}{% if true " + m.group(2) + "%}", text)
    src, n_close = _GEN_CLOSE_TAG.subn(lambda m: "{%" + m.group(1) + " endif %}{{ '" + GEN_CLOSE
                                       + "' }}{% endif " + m.group(2) + "%}", src)
    if not n_open == n_close == n_blocks:  # a tag inside a string or a raw block: keep the slow path
        return None
    try:
        tpl = _compile(src, False)
    except TemplateError:
        return None
    # Template.render without its per-call copy of the globals: the context is the globals plus
    # the caller's variables, built here per call, and used as the shared parent (jinja2 API:
    # Template.new_context(vars, shared=True) / root_render_func).
    root, new_context, base = tpl.root_render_func, tpl.new_context, dict(tpl.globals)

    def run(messages: list, context: dict):
        try:
            vars_ = {**base, **context, "messages": prepare_messages(messages)}
            out = "".join(root(new_context(vars_, shared=True)))
        except (TemplateError, TypeError, ValueError) as e:
            raise _wrap(e, name) from (None if isinstance(e, TemplateRenderError) else e)
        if GEN_OPEN not in out:
            return (out, []) if GEN_CLOSE not in out else None
        head, *rest = out.split(GEN_OPEN)  # n generation bodies, each closed once, none nested
        if GEN_CLOSE in head:
            return None
        parts, spans, pos = [head], [], len(head)
        for seg in rest:
            body, sep, tail = seg.partition(GEN_CLOSE)
            if not sep or GEN_CLOSE in tail:
                return None
            spans.append((pos, pos + len(body)))
            pos += len(body) + len(tail)
            parts += (body, tail)
        return "".join(parts), spans

    return run
