"""The system prompt library: listing, optional fields, metadata, tools, strict sandbox."""
from __future__ import annotations

import pytest

from datastore.errors import NotFound, WorkbenchError
from pipelines.render import get_template
from pipelines.render.templates import TemplateSecurityError, render_strict
from pipelines.system_prompts import (
    compose_system_prompt,
    get_system_prompt,
    list_system_prompts,
    render_system_prompt,
)

WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_library_has_personas_tools_and_safety_with_headers():
    infos = {i.name: i for i in list_system_prompts()}
    assert set(infos) >= {"teacher", "lawyer", "doctor", "support_agent", "coding_assistant", "tool_use",
                          "safety_policy"}
    for info in infos.values():
        assert info.version == 1 and len(info.sha256) == 64 and info.description
        assert {"language", "tone", "length"} <= set(info.fields)
    assert infos["tool_use"].required == ["tools"]
    assert get_template("system/teacher").kind == "system"  # registered with the other templates
    with pytest.raises(NotFound, match="nope"):
        get_system_prompt("nope")


@pytest.mark.parametrize("name", ["teacher", "lawyer", "doctor", "support_agent", "coding_assistant", "safety_policy"])
def test_every_persona_renders_without_optional_fields(name):
    text = render_system_prompt(name)
    assert text and text == text.strip() and "\n\n\n" not in text
    assert "{{" not in text and "{%" not in text and "answer in" not in text


def test_optional_fields_and_metadata():
    t = render_system_prompt("teacher", subject="algebra", level="high school", language="French",
                             tone="friendly", length="short")
    assert t.startswith("You are a patient, encouraging teacher of algebra for high school students.")
    assert "Always answer in French" in t and "Keep a friendly tone." in t and "three sentences at most" in t
    assert render_system_prompt("teacher", subject=None) == render_system_prompt("teacher")
    s = render_system_prompt("support_agent", company="Acme", escalation_contact="support@acme.test")
    assert "for Acme" in s and "escalate it to support@acme.test" in s and "human agent" not in s


def test_bad_fields_are_errors_naming_them():
    with pytest.raises(WorkbenchError, match="no field 'subjct'"):
        render_system_prompt("teacher", subjct="math")
    with pytest.raises(WorkbenchError, match="tone must be one of"):
        render_system_prompt("teacher", tone="sarcastic")
    with pytest.raises(WorkbenchError, match="length must be one of"):
        render_system_prompt("doctor", length="huge")


def test_tool_use_lists_schemas_and_error_handling():
    t = render_system_prompt("tool_use", tools=[WEATHER], max_tool_calls=2)
    assert '{"name": "get_weather", "description": "Current weather for a city", "parameters": ' in t
    assert "Error handling:" in t and "at most 2 function calls" in t
    with pytest.raises(WorkbenchError, match="needs field 'tools'"):
        render_system_prompt("tool_use")
    with pytest.raises(WorkbenchError, match="name"):
        render_system_prompt("tool_use", tools=[{"name": "bad name!", "parameters": {"type": "object"}}])
    with pytest.raises(WorkbenchError, match="type 'object'"):
        render_system_prompt("tool_use", tools=[{"name": "f", "parameters": {"type": "string"}}])
    with pytest.raises(WorkbenchError, match="duplicate"):
        render_system_prompt("tool_use", tools=[WEATHER, WEATHER])


def test_compose_persona_tools_and_safety():
    t = compose_system_prompt(["coding_assistant", "tool_use", "safety_policy"], programming_language="Python",
                              tools=[WEATHER], language="German")
    assert t.index("coding assistant for Python") < t.index("get_weather") < t.index("Safety policy")
    assert t.count("Always answer in German") == 1 and t.rstrip().endswith("asked in.")
    with pytest.raises(WorkbenchError, match="field 'jurisdiction'"):
        compose_system_prompt(["teacher", "safety_policy"], jurisdiction="France")


def test_rendering_uses_the_strict_sandbox():
    with pytest.raises(TemplateSecurityError):
        render_strict("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
