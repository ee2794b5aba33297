"""The system prompt library: personas, tool use and a safety policy, with optional fields.

Each prompt is a Jinja file ``templates/system/<name>.jinja`` whose header names it and gives
its version and fields::

    {#- wb-template: teacher | kind: system | version: 1 | fields: subject, level, language, tone, length
        description ... -#}

``| required: a, b`` lists fields that must be given (``tool_use`` needs ``tools``). Prompts
render with the project's strict sandbox (:func:`pipelines.render.templates.render_strict`:
``ImmutableSandboxedEnvironment`` + ``StrictUndefined``), so a template cannot reach Python
internals and a field it uses without ``is defined`` must be supplied.

Every prompt accepts the metadata fields ``language`` (any language name, e.g. ``"French"``),
``tone`` (one of :data:`TONES`) and ``length`` (``short``/``medium``/``long``). Unknown fields
are an error naming the field, so a typo never silently drops an instruction.

Usage::

    render_system_prompt("teacher", subject="algebra", language="French", length="short")
    compose_system_prompt(["support_agent", "safety_policy"], company="Acme", tone="friendly")
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from datastore.errors import NotFound, WorkbenchError
from pipelines.render.templates import Template, _parse_header, list_templates, render_strict

KIND = "system"
META_FIELDS = ("language", "tone", "length")
TONES = ("neutral", "friendly", "formal", "concise", "encouraging", "empathetic", "playful")
LENGTHS = ("short", "medium", "long")
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class SystemPromptInfo(BaseModel):
    """One prompt of the library: ``name``, ``version``, ``fields`` it accepts (metadata
    included), ``required`` fields, ``description`` (from the header), ``sha256`` of the file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int
    fields: list[str]
    required: list[str]
    description: str
    sha256: str
    path: str


def _split(v: str | None) -> list[str]:
    return [x.strip() for x in (v or "").split(",") if x.strip()]


def _info(tpl: Template) -> SystemPromptInfo:
    head = _parse_header(tpl.text)
    fields = _split(head.get("fields"))
    for m in META_FIELDS:
        if m not in fields:
            fields.append(m)
    body = re.search(r"\{#-?\s*wb-template:.*?\n(.*?)-?#\}", tpl.text, re.S)
    desc = " ".join(body.group(1).split()) if body else ""
    return SystemPromptInfo(name=tpl.name, version=tpl.version, fields=fields, required=_split(head.get("required")),
                            description=desc, sha256=tpl.sha256, path=str(tpl.path))


def list_system_prompts() -> list[SystemPromptInfo]:
    """The library, sorted by name (``templates/system/*.jinja``)."""
    return [_info(t) for t in list_templates(KIND)]


def _template(name: str) -> Template:
    for t in list_templates(KIND):
        if t.name == name:
            return t
    known = ", ".join(t.name for t in list_templates(KIND)) or "none"
    raise NotFound(f"system prompt '{name}' not found (known: {known})")


def get_system_prompt(name: str) -> SystemPromptInfo:
    """Metadata of one prompt. Raises ``NotFound``."""
    return _info(_template(name))


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list) or not tools:
        raise WorkbenchError("field 'tools' must be a non-empty list of {name, description, parameters}")
    seen = set()
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not _TOOL_NAME.match(t["name"]):
            raise WorkbenchError(f"tools[{i}]: needs a 'name' of letters, digits, '_', '.', '-' (got {t!r:.80})")
        if t["name"] in seen:
            raise WorkbenchError(f"tools[{i}]: duplicate function name '{t['name']}'")
        seen.add(t["name"])
        params = t.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict) or params.get("type") != "object":
            raise WorkbenchError(f"tools[{i}] '{t['name']}': 'parameters' must be a JSON schema with type 'object'")
        try:
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for
        except ImportError:  # jsonschema absent: the shape check above is all we can do
            continue
        try:
            validator_for(params).check_schema(params)
        except SchemaError as e:
            raise WorkbenchError(f"tools[{i}] '{t['name']}': invalid JSON schema: {e.message}") from None


def _validate(info: SystemPromptInfo, fields: dict) -> dict:
    values = {k: v for k, v in fields.items() if v is not None}
    unknown = [k for k in values if k not in info.fields]
    if unknown:
        raise WorkbenchError(f"system prompt '{info.name}' has no field '{unknown[0]}' "
                             f"(fields: {', '.join(info.fields)})")
    missing = [k for k in info.required if k not in values]
    if missing:
        raise WorkbenchError(f"system prompt '{info.name}' needs field '{missing[0]}'")
    if "tone" in values and values["tone"] not in TONES:
        raise WorkbenchError(f"tone must be one of {', '.join(TONES)}, got '{values['tone']}'")
    if "length" in values and values["length"] not in LENGTHS:
        raise WorkbenchError(f"length must be one of {', '.join(LENGTHS)}, got '{values['length']}'")
    if "language" in values and (not isinstance(values["language"], str) or not values["language"].strip()):
        raise WorkbenchError("language must be a non-empty name, e.g. 'French'")
    if "tools" in values:
        _check_tools(values["tools"])
    return values


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    out: list[str] = []
    for ln in lines:  # at most one blank line in a row
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out)


def render_system_prompt(name: str, **fields: Any) -> str:
    """Render one prompt of the library with its fields (None values are treated as absent).

    Returns the prompt text (trailing spaces and repeated blank lines removed).
    Raises:
        NotFound: unknown prompt. WorkbenchError: unknown field, missing required field, tone or
        length not allowed, invalid tools. TemplateRenderError/TemplateSecurityError from rendering.
    """
    tpl = _template(name)
    values = _validate(_info(tpl), fields)
    text, _ = render_strict(tpl.text, values, name=f"system/{name}")
    return _tidy(text)


def compose_system_prompt(names: list[str], **fields: Any) -> str:
    """Render several prompts (e.g. a persona, ``tool_use`` and ``safety_policy``) and join them
    with a blank line. Each receives the fields it declares; a field no prompt declares is an
    error. The metadata fields (language, tone, length) are applied once, by the last prompt."""
    if not names:
        raise WorkbenchError("compose_system_prompt needs at least one prompt name")
    infos = [get_system_prompt(n) for n in names]
    declared = {f for i in infos for f in i.fields}
    unknown = [k for k, v in fields.items() if v is not None and k not in declared]
    if unknown:
        raise WorkbenchError(f"no prompt among {', '.join(names)} has field '{unknown[0]}'")
    parts = []
    for j, info in enumerate(infos):
        own = {k: v for k, v in fields.items() if k in info.fields
               and (k not in META_FIELDS or j == len(infos) - 1)}
        parts.append(render_system_prompt(info.name, **own))
    return "\n\n".join(parts)


__all__ = ["LENGTHS", "META_FIELDS", "SystemPromptInfo", "TONES", "compose_system_prompt", "get_system_prompt",
           "list_system_prompts", "render_system_prompt"]
