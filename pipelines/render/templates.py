"""Template registry and the sandboxed Jinja environments that render templates.

Templates are Jinja files under ``templates/<kind>/<name>.jinja`` (kind: ``chat``,
``instruction``, ``generator``, ...). Each file may open with a header comment
``{#- wb-template: <name> | kind: <kind> | version: <n> ... -#}``; the version comes from
there (1 when absent) and the identity of a template is its SHA-256 over the file text,
which a training run records (ARCHITECTURE.md section 5).

Two environments, both :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`:

* chat templates render exactly as ``tokenizer.apply_chat_template`` does: through
  transformers' own ``render_jinja_template`` where importable (same sandbox, same
  ``trim_blocks``/``lstrip_blocks``, ``{% generation %}`` tracker, ``raise_exception``,
  ``tojson``, ``strftime_now``, ``namespace``), else through :func:`chat_environment`, a copy
  of those settings. Undefined variables render empty, as on the Hub.
* instruction and generator templates render with :class:`jinja2.StrictUndefined`, so a
  missing field is an error naming the field instead of silently empty text.

Rendering errors become :class:`TemplateRenderError` (a ``WorkbenchError``); a template that
reaches for Python internals raises :class:`TemplateSecurityError`, which is also a
``jinja2.exceptions.SecurityError``.
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

_HEADER = re.compile(r"\{#-?\s*wb-template:(?P<body>.*?)-?#\}", re.S)


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
    path: Path
    text: str
    sha256: str

    def info(self) -> dict:
        return {"name": self.name, "kind": self.kind, "version": self.version,
                "sha256": self.sha256, "path": str(self.path)}


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
    return out


def template_from_file(path: str | Path, kind: str | None = None) -> Template:
    """Read one template file (any location)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    head = _parse_header(text)
    try:
        version = int(head.get("version", 1))
    except ValueError:
        version = 1
    return Template(name=p.stem, kind=kind or head.get("kind") or p.parent.name, version=version,
                    path=p, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


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


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


def _make_env(undefined) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=undefined,
                                        extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
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
        return _generate(_compile(text, True), context, track)
    except (TemplateError, TypeError, ValueError) as e:  # TypeError: e.g. 'None' + str inside the template
        raise _wrap(e, name) from e


def _hf_renderer():
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except Exception:  # transformers missing or reorganized: use our copy of its settings
        return None
    return render_jinja_template


def render_chat_text(text: str, messages: list[dict], *, add_generation_prompt: bool = False,
                     tools: list | None = None, documents: list | None = None, name: str = "<string>",
                     track: bool = False, **extra: Any) -> tuple[str, list[tuple[int, int]]]:
    """Render a chat template given as text, as ``apply_chat_template(tokenize=False)`` would.

    Args:
        text: the Jinja chat template. messages: ``[{"role", "content", ...}]``.
        extra: further template variables (``bos_token``, ``eos_token``, ...).
        track: also return the character spans of ``{% generation %}`` blocks.
    Returns:
        ``(rendered, spans)``; ``spans`` is empty unless ``track``.
    Raises:
        TemplateRenderError / TemplateSecurityError.
    """
    # As apply_chat_template: keys whose value is None are dropped (``content=None`` from
    # OpenAI-style tool calls), since many Hub templates test for a key, not for None.
    messages = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
                for m in messages]
    hf = _hf_renderer()
    try:
        if hf is not None:
            try:
                rendered, spans = hf([messages], tools=tools, documents=documents, chat_template=text,
                                     return_assistant_tokens_mask=track,
                                     add_generation_prompt=add_generation_prompt, **extra)
                return rendered[0], ([tuple(s) for s in spans[0]] if track else [])
            except ImportError:  # transformers refuses an old jinja2; our sandbox still works
                pass
        ctx = {"messages": messages, "tools": tools, "documents": documents,
               "add_generation_prompt": add_generation_prompt, **extra}
        return _generate(_compile(text, False), ctx, track)
    except (TemplateError, TypeError, ValueError) as e:
        raise _wrap(e, name) from e
