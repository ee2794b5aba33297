"""Preflight's conversation checks: text a template never writes, empty turns, invisible characters,
mixed normal forms, tool calls and tool results; each finding names sample, message index, field
and severity; preflight and `wb preflight` report them; the import no longer counts empty answers
as trainable."""
from __future__ import annotations

import json

import pytest

from datastore import Store
from datastore import versions as V
from datastore.samples import Sample
from pipelines.render import get_template, template_from_file, template_from_text
from pipelines.render.conversation_checks import CHECKS, run_checks
from tests.conftest import shared_file

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}
TIME_BARE = {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                                "required": ["tz"], "additionalProperties": False}}


def call(cid, name, arguments):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def found(findings, check=None):
    return [(f.check, f.severity, f.message_index, f.field) for f in findings if check in (None, f.check)]


def test_registry_lists_each_check_once():
    assert [n for n, _ in CHECKS] == ["not_rendered", "empty_turn", "invisible_chars", "mixed_normal_forms",
                                      "tool_calls"]


def test_not_rendered_system_message_mistral_drops_and_name_it_ignores():
    msgs = [{"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hi", "name": "bob"},
            {"role": "assistant", "content": "Bonjour"}]
    f = run_checks(msgs, get_template("mistral-v0.3"), checks=["not_rendered"])
    assert found(f) == [("not_rendered", "error", 0, "content"), ("not_rendered", "warning", 1, "name")]
    assert "mistral-v0.3" in f[0].message and "system message" in f[0].message
    # ChatML writes every content (but not the name either)
    assert found(run_checks(msgs, get_template("chatml"), checks=["not_rendered"])) == [
        ("not_rendered", "warning", 1, "name")]


def test_not_rendered_reasoning_qwen3_strips_from_earlier_turns():
    qwen3 = template_from_file(shared_file("chat-templates/templates/Qwen__Qwen3-0.6B.jinja"))
    msgs = [{"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "Add two and two."},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "Add three and three."}]
    f = run_checks(msgs, qwen3, checks=["not_rendered"])
    assert found(f) == [("not_rendered", "warning", 1, "reasoning_content")]   # the last turn's is written
    assert "reasoning" in f[0].message
    # `thinking` is read as reasoning too, and named as the source named it
    msgs[1] = {"role": "assistant", "content": "4", "thinking": "Add two and two."}
    assert found(run_checks(msgs, qwen3, checks=["not_rendered"])) == [("not_rendered", "warning", 1, "thinking")]
    msgs[1] = {"role": "assistant", "content": "4", "thinking": "Add\u200b two.", "reasoning_content": "Add\u200b two."}
    assert found(run_checks(msgs, checks=["invisible_chars"])) == [("invisible_chars", "warning", 1, "thinking")]


def test_not_rendered_tool_call_arguments_are_errors():
    drops_calls = template_from_text(
        "{% for m in messages %}<{{ m.role }}>{{ m.content or '' }}\n{% endfor %}", name="no-tools")
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "get_weather", '{"city": "Paris"}')]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."}]
    assert found(run_checks(msgs, drops_calls, checks=["not_rendered"])) == [
        ("not_rendered", "error", 1, "tool_calls[0].function.arguments")]
    # Mistral v0.3 writes the calls (dict arguments too) and the result
    msgs[1]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    assert run_checks(msgs, get_template("mistral-v0.3"), checks=["not_rendered"]) == []


def test_empty_answers_and_user_turns():
    msgs = [{"role": "user", "content": "  \n"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": " "}]},
            {"role": "assistant", "content": None},
            {"role": "user", "content": [{"type": "image", "url": "x.png"}]},         # an image is content
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{}")]},  # a tool call is not empty
            {"role": "tool", "tool_call_id": "c1", "content": ""},                     # not an answer
            {"role": "assistant", "content": "\t"}]
    f = run_checks(msgs, checks=["empty_turn"])
    assert found(f) == [("empty_turn", "warning", 0, "content"), ("empty_turn", "error", 1, "content"),
                        ("empty_turn", "warning", 2, "content"), ("empty_turn", "error", 3, "content"),
                        ("empty_turn", "error", 7, "content")]
    assert [x.message.split(": ")[1] for x in f] == [
        "the content is whitespace only", "the assistant content is empty and there is no tool call",
        "the content is no text in its parts", "the assistant content is null and there is no tool call",
        "the assistant content is whitespace only and there is no tool call"]
    assert run_checks([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                      checks=["empty_turn"]) == []


@pytest.mark.parametrize("ch", ["\u200b", "\u200f", "\u202a", "\u202e", "\u2060", "\u2064", "\ufeff"])
def test_invisible_and_bidi_characters(ch):
    msgs = [{"role": "user", "content": f"Hel{ch}lo"},
            {"role": "assistant", "content": "Fine.", "reasoning_content": f"{ch}think",
             "tool_calls": [call("c1", "f", f'{{"q": "a{ch}"}}')]}]
    f = run_checks(msgs, checks=["invisible_chars"])
    assert found(f) == [("invisible_chars", "warning", 0, "content"),
                        ("invisible_chars", "warning", 1, "reasoning_content"),
                        ("invisible_chars", "warning", 1, "tool_calls[0].function.arguments")]
    assert f"U+{ord(ch):04X}" in f[0].message and "first at character 3" in f[0].message
    # neighbours of the ranges are visible characters
    clean = [{"role": "user", "content": "a\u2010b\u202fc\u2065d\u200ae"}]
    assert run_checks(clean, checks=["invisible_chars"]) == []


def test_mixed_normal_forms():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    msgs = [{"role": "user", "content": f"Spell {composed}"}, {"role": "assistant", "content": f"{decomposed}!"}]
    f = run_checks(msgs, checks=["mixed_normal_forms"])
    assert found(f) == [("mixed_normal_forms", "warning", 1, "content")]
    assert "message 0 content" in f[0].message
    one_field = [{"role": "user", "content": f"{composed} {decomposed}"}]
    assert found(run_checks(one_field, checks=["mixed_normal_forms"])) == [("mixed_normal_forms", "warning", 0, "content")]
    # consistently composed, or consistently decomposed: not mixed
    assert run_checks([{"role": "user", "content": composed}, {"role": "assistant", "content": composed}],
                      checks=["mixed_normal_forms"]) == []
    assert run_checks([{"role": "user", "content": decomposed}, {"role": "assistant", "content": "plain"}],
                      checks=["mixed_normal_forms"]) == []


def test_tool_call_arguments_json_schema_and_declared_tools():
    msgs = [{"role": "user", "content": "Weather and time?"},
            {"role": "assistant", "content": None, "tool_calls": [
                call("c1", "get_weather", '{"city": "Paris", "days": 2}'),      # valid
                call("c2", "get_weather", '{"days": "two"}'),                   # schema: city missing
                call("c3", "get_weather", '{"city": "Paris",}'),                # not JSON
                call("c4", "get_stock", '{"symbol": "X"}'),                     # undeclared
                call("c5", "get_time", {"tz": "UTC", "extra": 1}),              # bare schema, dict arguments
                call("c6", "get_time", {"tz": "UTC"})]},                        # valid
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c9", "content": "??"},            # no such call
            {"role": "tool", "content": "by position"},                         # no id after calls with ids
            {"role": "assistant", "content": "Sunny, 12:00."}]
    f = run_checks(msgs, tools=[WEATHER, TIME_BARE], checks=["tool_calls"])
    assert found(f) == [("tool_calls", "error", 1, "tool_calls[1].function.arguments"),
                        ("tool_calls", "error", 1, "tool_calls[2].function.arguments"),
                        ("tool_calls", "error", 1, "tool_calls[3].function.name"),
                        ("tool_calls", "error", 1, "tool_calls[4].function.arguments"),
                        ("tool_calls", "error", 3, "tool_call_id"),
                        ("tool_calls", "warning", 4, "tool_call_id")]
    msg = [x.message for x in f]
    assert "'city' is a required property" in msg[0]
    assert "not valid JSON" in msg[1] and "at character 17" in msg[1]
    assert "'get_stock'" in msg[2] and "declared: get_time, get_weather" in msg[2]
    assert "'extra' was unexpected" in msg[3]
    assert "'c9'" in msg[4]
    # no tools declared: any name is accepted, JSON is still checked; a result before any call
    bare = [{"role": "user", "content": "x"}, {"role": "tool", "content": "early"},
            {"role": "assistant", "content": None, "tool_calls": [call("a", "anything", "{oops")]}]
    assert found(run_checks(bare, checks=["tool_calls"])) == [
        ("tool_calls", "error", 1, "role"), ("tool_calls", "error", 2, "tool_calls[0].function.arguments")]


def test_invalid_declared_schema_is_named():
    bad = {"name": "f", "parameters": {"type": "objekt"}}
    f = run_checks([{"role": "user", "content": "x"}], tools=[bad], checks=["tool_calls"])
    assert [(x.severity, x.message_index, x.field) for x in f] == [("error", None, "tools[0].parameters")]
    assert "invalid JSON Schema" in f[0].message


_KEEPS_KEYS = Sample(kind="conversation", messages=[{"role": "user", "content": "x", "name": "n"}]).turns()[0].get("name")


@pytest.mark.skipif(_KEEPS_KEYS is None, reason="Sample.turns() here reduces messages to role and content")
def test_stored_sample_indexes_stored_messages_and_reads_tools_from_extra():
    s = Sample(kind="conversation", sample_id=5, system="Be brief.",
               messages=[{"role": "user", "content": "Hi", "name": "ann"},
                         {"role": "assistant", "content": None, "tool_calls": [call("c1", "get_time", '{"tz": 1}')]},
                         {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
                         {"role": "assistant", "content": "Noon."}],
               extra={"tools": json.dumps([TIME_BARE])})           # tools kept as a JSON string
    f = run_checks(s, get_template("mistral-v0.3"))
    assert [(x.check, x.severity, x.sample_id, x.message_index, x.field) for x in f] == [
        ("not_rendered", "error", 5, None, "system"),               # the system column, before message 0
        ("not_rendered", "warning", 5, 0, "name"),
        ("tool_calls", "error", 5, 1, "tool_calls[0].function.arguments"),
        ("tool_calls", "error", 5, 2, "tool_call_id")]
    assert "1 is not of type 'string'" in f[2].message
    bad = Sample(kind="conversation", sample_id=6, messages=[{"role": "user", "content": "Hi"}],
                 extra={"tools": "[not json"})
    assert [(x.check, x.severity, x.field) for x in run_checks(bad)] == [("template_input", "error", "extra")]


# --------------------------------------------------------------------------- preflight and import

def _conv(messages, **kw):
    return Sample(kind="conversation", messages=messages, **kw).to_row()


ROWS = [
    _conv([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]),               # 1 clean
    _conv([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
           {"role": "assistant", "content": "Hello."}]),                                                  # 2 system
    _conv([{"role": "user", "content": "Hi\u200b"}, {"role": "assistant", "content": "   "}]),           # 3 empty, ZWSP
]


@pytest.fixture
def ws(tmp_workspace):
    with Store(tmp_workspace) as st:
        V.commit(st, "convs", author="t", message="fixture", add=ROWS, create=True)
    return tmp_workspace


def test_preflight_reports_findings_with_sample_message_field_severity(ws, tokenizer):
    from pipelines.preflight import run_preflight
    rep = run_preflight(ws, "convs", train_template="mistral-v0.3", serve_template="mistral-v0.3",
                        max_length_tokens=256, over_length_policy="fail", tokenizer=tokenizer)
    got = [(f.check, f.severity, f.sample_id, f.message_index, f.field) for f in rep.findings]
    assert got == [("not_rendered", "error", 2, 0, "content"),
                   ("empty_turn", "error", 3, 1, "content"),
                   ("invisible_chars", "warning", 3, 0, "content")]
    assert rep.findings_total == 3 and rep.has_errors
    nr, et, inv = rep.issues["not_rendered"], rep.issues["empty_turn"], rep.issues["invisible_chars"]
    assert (nr.count, nr.severity, nr.sample_ids) == (1, "error", [2])
    assert (et.count, et.severity, et.sample_ids) == (1, "error", [3])
    assert (inv.count, inv.severity, inv.sample_ids) == (1, "warning", [3])
    assert rep.issues["tool_calls"].count == 0 and "template_input" not in rep.issues
    lines = rep.summary_lines()
    assert "[ERROR] not_rendered: 1" in "\n".join(lines)
    assert any(x.startswith("    sample 2, message 0, content [error]: template 'mistral-v0.3' does not write")
               for x in lines)
    assert any(x.startswith("not_rendered: 1 sample(s)") for x in rep.error_lines())
    # the same data under ChatML: only the empty answer and the invisible character remain
    rep = run_preflight(ws, "convs", train_template="chatml", serve_template="chatml",
                        max_length_tokens=256, over_length_policy="fail", tokenizer=tokenizer)
    assert [(f.check, f.sample_id) for f in rep.findings] == [("empty_turn", 3), ("invisible_chars", 3)]


def test_cli_preflight_prints_findings(ws):
    from typer.testing import CliRunner
    from app.cli import app
    r = CliRunner().invoke(app, ["--workspace", str(ws), "preflight", "--dataset", "convs", "--template",
                                 "mistral-v0.3", "--serve-template", "mistral-v0.3", "--max-length", "256",
                                 "--policy", "fail"])
    assert r.exit_code == 1, r.output
    assert "sample 3, message 1, content [error]: empty answer: the assistant content is whitespace only" in r.output
    assert "sample 3, message 0, content [warning]: 1 invisible character(s) (U+200B ZERO WIDTH SPACE)" in r.output
    r = CliRunner().invoke(app, ["--workspace", str(ws), "preflight", "--dataset", "convs", "--template",
                                 "chatml", "--serve-template", "chatml", "--max-length", "256", "--policy", "fail",
                                 "--json"])
    out = json.loads(r.output)
    assert out["findings"][0] == {"check": "empty_turn", "severity": "error", "sample_id": 3, "message_index": 1,
                                  "field": "content",
                                  "message": "empty answer: the assistant content is whitespace only and there is "
                                             "no tool call"}


def test_import_does_not_count_empty_answers_as_trainable(tmp_workspace, tmp_path):
    from pipelines.formats import import_file
    msgs = tmp_path / "m.jsonl"
    msgs.write_text("\n".join(json.dumps({"messages": m}) for m in [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " \n"}],
        [{"role": "user", "content": ""}, {"role": "assistant", "content": "Hello"}],
        [{"role": "user", "content": "Weather?"},
         {"role": "assistant", "content": None, "tool_calls": [call("c1", "get_weather", "{}")]},
         {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}],
    ]) + "\n")
    rep = import_file(tmp_workspace, msgs, "m", user="t")
    assert (rep.imported, rep.trainable) == (4, 2)
    assert [(w["row"], w["message"]) for w in rep.warnings] == [
        (2, "empty answer at message 1: content is whitespace only"),
        (3, "empty user turn at message 0: content is empty")]
    alp = tmp_path / "a.json"
    alp.write_text(json.dumps([{"instruction": "Say hi", "input": "", "output": "hi"},
                               {"instruction": "Say hi", "input": "", "output": "   "},
                               {"instruction": " ", "input": "", "output": "hi"},
                               {"instruction": "", "input": "some text", "output": "hi"}]))
    rep = import_file(tmp_workspace, alp, "a", user="t")
    assert (rep.imported, rep.trainable) == (4, 2)
    assert [w["message"] for w in rep.warnings] == ["empty answer in field 'output': whitespace only",
                                                    "empty user turn in field 'instruction': whitespace only"]
    sg = tmp_path / "s.json"
    sg.write_text(json.dumps([{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]}]))
    rep = import_file(tmp_workspace, sg, "s", user="t")
    assert rep.trainable == 0 and rep.warnings[0]["message"] == "empty answer at message 1: content is empty"
