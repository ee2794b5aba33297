"""ShareGPT function_call / observation turns and the tools string on import and export;
exports that keep everything or refuse naming sample, message index and field."""
import json

import pytest

from datastore import FormatError, Store, WorkbenchError
from datastore import quarantine as Q
from datastore import versions as V
from pipelines.formats import export_version, import_file
from tests.conftest import shared_file

GLAIVE = "sharegpt-openai-samples/llamafactory_glaive_toolcall_en_demo.json"
STOCK = "tool-calling-openai/stock_toolcall_training.jsonl"
ZAVA = "tool-calling-openai/zava_retail_sft_test.jsonl.gz"


def samples(ws, name):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, name, None)))


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_glaive_demo_imports_tool_calls_and_tool_results(tmp_workspace, tmp_path):
    src = shared_file(GLAIVE)
    rep = import_file(tmp_workspace, src, "g", user="t")
    assert (rep.schema, rep.imported, rep.quarantined) == ("sharegpt", 300, 0)
    got = samples(tmp_workspace, "g")
    first = got[0]
    assert first.messages[3] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "search_recipes", "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}}}]}
    assert first.messages[4]["role"] == "tool" and first.messages[4]["tool_call_id"] == "call_1"
    assert first.messages[4]["content"].startswith('{"recipes": [{"name": "Chicken and Bell Pepper Stir Fry"')
    assert first.extra["tools"][0]["name"] == "search_recipes"
    assert first.extra["tools"][0]["parameters"]["required"] == ["ingredients"]
    assert first.layout["tools_as_string"] is True and first.layout["generated_ids"] is True
    assert first.layout["from"][3:5] == ["function_call", "observation"]
    # every call of the file is a tool call, every observation answers the call before it
    calls = [c for s in got for m in s.messages for c in m.get("tool_calls") or []]
    results = [(s.sample_id, m) for s in got for m in s.messages if m["role"] == "tool"]
    assert len(calls) == 211 and len(results) == 211
    assert all(isinstance(c["function"]["arguments"], dict) for c in calls)
    for sid, m in results:
        ids = [c["id"] for s in got if s.sample_id == sid for mm in s.messages for c in mm.get("tool_calls") or []]
        assert m["tool_call_id"] in ids
    # written back byte for byte (the function_call values and the tools string included)
    out = tmp_path / "back.json"
    export_version(tmp_workspace, "g", None, "sharegpt", out)
    assert out.read_bytes() == src.read_bytes()


def test_parallel_calls_non_ascii_and_string_arguments_come_back_byte_for_byte(tmp_workspace, tmp_path):
    calls = json.dumps([{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{\"y\":2}"}])
    one = json.dumps({"name": "wetter", "arguments": {"ort": "Zürich"}}, ensure_ascii=False)
    rec = {"conversations": [{"from": "human", "value": "both"}, {"from": "function_call", "value": calls},
                             {"from": "observation", "value": "A"}, {"from": "observation", "value": "B"},
                             {"from": "gpt", "value": "done"}, {"from": "human", "value": "Zürich?"},
                             {"from": "function_call", "value": one}, {"from": "observation", "value": "8°"},
                             {"from": "gpt", "value": "8°", "weight": 0}],
           "tools": json.dumps([{"name": "wetter", "parameters": {"type": "object"}}], separators=(",", ":"))}
    src = tmp_path / "p.json"
    src.write_text(json.dumps([rec], ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    import_file(tmp_workspace, src, "p", user="t")
    m = samples(tmp_workspace, "p")[0].messages
    assert [c["id"] for c in m[1]["tool_calls"]] == ["call_1", "call_2"]
    assert m[1]["tool_calls"][1]["function"]["arguments"] == "{\"y\":2}"       # text stays text
    assert [(x["tool_call_id"], x["content"]) for x in m[2:4]] == [("call_1", "A"), ("call_2", "B")]
    assert m[6]["tool_calls"][0]["id"] == "call_3" and m[7]["tool_call_id"] == "call_3"
    assert m[8] == {"role": "assistant", "content": "8°", "weight": 0}            # extra turn keys kept
    out = tmp_path / "back.json"
    export_version(tmp_workspace, "p", None, "sharegpt", out)
    assert out.read_bytes() == src.read_bytes()


def test_bad_function_call_or_tools_json_is_a_row_error_that_quarantine_keeps(tmp_workspace, tmp_path):
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    bad_call = {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "{\"name\": "}]}
    no_name = {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "{\"a\": 1}"}]}
    bad_tools = {**good, "tools": "[{\"name\": \"f\""}
    src = tmp_path / "b.json"
    src.write_text(json.dumps([good, bad_call, no_name, bad_tools]))
    with pytest.raises(FormatError) as e:
        import_file(tmp_workspace, src, "b", user="t")
    assert (e.value.row, e.value.field) == (2, "conversations[1].value")
    assert "function_call value must be JSON" in str(e.value)
    rep = import_file(tmp_workspace, src, "b", user="t", quarantine=True)
    assert (rep.imported, rep.quarantined) == (1, 3)
    with Store(tmp_workspace) as st:
        items = Q.list_rows(st, "b")
    assert sorted((i["row"], i["field"]) for i in items) == [
        (2, "conversations[1].value"), (3, "conversations[1].value"), (4, "tools")]


def _write_messages(tmp_path, recs):
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"q\": 1}"}}


@pytest.mark.parametrize("message, field, why", [
    ({"role": "assistant", "content": [{"type": "text", "text": "hi"}]}, "content", "list of content parts"),
    ({"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}, "content",
     "list of content parts"),
    ({"role": "assistant", "content": None}, "content", "NoneType"),
    ({"role": "assistant", "content": "let me look", "tool_calls": [CALL]}, "content", "both"),
    ({"role": "assistant", "content": "", "tool_calls": [CALL]}, "content", "would read back as null"),
    ({"role": "assistant", "tool_calls": [{**CALL, "id": "abc"}]}, "tool_calls[0].id", "'abc'"),
    ({"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{'q': 1}"}}]},
     "tool_calls[0].function.arguments", "json.dumps"),
    ({"role": "assistant", "content": "4", "reasoning_content": "2+2"}, "reasoning_content", "--reasoning inline"),
    ({"role": "developer", "content": "x"}, "role", "'developer'"),
])
def test_sharegpt_export_refuses_what_it_cannot_hold(message, field, why, tmp_workspace, tmp_path):
    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    import_file(tmp_workspace, _write_messages(tmp_path, [ok, {"messages": [{"role": "user", "content": "q"}, message]}]),
                "m", user="t")
    with pytest.raises(WorkbenchError) as e:
        export_version(tmp_workspace, "m", None, "sharegpt", tmp_path / "o.json")
    msg = str(e.value)
    assert msg.startswith(f"sample #2 cannot be written as sharegpt without losing data: message 1, field '{field}': ")
    assert why in msg and "export it as messages, parquet, hf" in msg
    assert not (tmp_path / "o.json").exists()
    # the messages export keeps it whole
    export_version(tmp_workspace, "m", None, "messages", tmp_path / "o.jsonl")
    assert jsonl(tmp_path / "o.jsonl")[1]["messages"][1] == message


def test_tool_result_with_an_id_a_reimport_would_not_give_is_refused(tmp_workspace, tmp_path):
    rec = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [CALL]},
                        {"role": "tool", "tool_call_id": "call_9", "content": "1"},
                        {"role": "assistant", "content": "one"}]}
    import_file(tmp_workspace, _write_messages(tmp_path, [rec]), "m", user="t")
    with pytest.raises(WorkbenchError, match=r"sample #1 .* message 2, field 'tool_call_id': .*'call_9' "
                                             r"would read back as 'call_1'"):
        export_version(tmp_workspace, "m", None, "sharegpt", tmp_path / "o.json")


def test_stock_tool_calls_messages_round_trip_and_through_sharegpt(tmp_workspace, tmp_path):
    src = shared_file(STOCK)
    import_file(tmp_workspace, src, "s", user="t")
    out = tmp_path / "s.jsonl"
    export_version(tmp_workspace, "s", None, "messages", out)
    assert jsonl(out) == jsonl(src)                     # tools, tool_calls, absent content: all kept
    # through ShareGPT and back: the same conversation; arguments text became the object
    # LLaMA-Factory reads (its json.dumps gives the same text), content None stands for absent
    export_version(tmp_workspace, "s", None, "sharegpt", tmp_path / "s.json")
    import_file(tmp_workspace, tmp_path / "s.json", "s2", user="t")
    export_version(tmp_workspace, "s2", None, "messages", tmp_path / "s2.jsonl")
    back, orig = jsonl(tmp_path / "s2.jsonl"), jsonl(src)
    assert len(back) == len(orig) == 86
    n_calls = 0
    for b, o in zip(back, orig):
        assert b["tools"] == o["tools"]
        for mb, mo in zip(b["messages"], o["messages"], strict=True):
            if "tool_calls" in mo:
                n_calls += 1
                assert mb["content"] is None and "content" not in mo
                cb, co = mb["tool_calls"][0], mo["tool_calls"][0]
                assert json.dumps(cb["function"]["arguments"], ensure_ascii=False) == co["function"]["arguments"]
                assert (cb["id"], cb["function"]["name"]) == (co["id"], co["function"]["name"])
            else:
                assert mb == mo
    assert n_calls == 36


def test_zava_call_ids_are_refused_by_sharegpt_and_kept_by_messages(tmp_workspace, tmp_path):
    src = shared_file(ZAVA)
    import gzip
    raw = tmp_path / "zava.jsonl"
    raw.write_bytes(gzip.decompress(src.read_bytes()))
    import_file(tmp_workspace, raw, "z", user="t", fmt="jsonl")   # lines over 4 KB: named, not sniffed
    out = tmp_path / "z.jsonl"
    export_version(tmp_workspace, "z", None, "messages", out)
    assert out.read_bytes() == raw.read_bytes()
    first_call = next(c for m in jsonl(raw)[0]["messages"] for c in m.get("tool_calls") or [])
    assert first_call["id"] == "call_4e3412ec4c0840a5a1631bdd"
    with pytest.raises(WorkbenchError, match=r"sample #1 .* field 'tool_calls\[0\]\.id': ShareGPT holds no call ids"):
        export_version(tmp_workspace, "z", None, "sharegpt", tmp_path / "z.json")


def test_null_tool_and_reasoning_keys_hold_nothing_and_are_not_written(tmp_workspace, tmp_path):
    filled = {"tool_calls": None, "tool_call_id": None, "reasoning_content": None}   # as Parquet fills them in
    rec = {"messages": [{"role": "user", "content": "q", **filled}, {"role": "assistant", "content": "a", **filled}]}
    import_file(tmp_workspace, _write_messages(tmp_path, [rec]), "m", user="t")
    export_version(tmp_workspace, "m", None, "sharegpt", tmp_path / "o.json")
    assert json.loads((tmp_path / "o.json").read_text()) == [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]
