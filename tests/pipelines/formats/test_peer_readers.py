"""Exports read back with the peers' readers: LLaMA-Factory's ShareGPT field mapping (as its
dataset_info.json declares it for the glaive tool-call demo) and trl's conversational format
(``messages`` with tool calls and a ``tools`` column, loaded with ``datasets``)."""
import json

import pytest

from pipelines.formats import export_version, import_file
from tests.conftest import shared_file

GLAIVE = "sharegpt-openai-samples/llamafactory_glaive_toolcall_en_demo.json"
STOCK = "tool-calling-openai/stock_toolcall_training.jsonl"
INFO = "sharegpt-openai-samples/llamafactory_dataset_info.json"
QWEN25 = "chat-templates/templates/Qwen__Qwen2.5-7B-Instruct.jinja"
#: LLaMA-Factory's default sharegpt tags (src/llamafactory/data/parser.py, DatasetAttr) where
#: dataset_info.json names none.
DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


def llamafactory_read(records, attr: dict):
    """LLaMA-Factory's reading of sharegpt records, as its SharegptDatasetConverter and its
    FunctionFormatter / ToolFormatter state it (src/llamafactory/data/converter.py, formatter.py):
    an optional first system turn, then user/observation turns at even positions and
    assistant/function_call turns at odd ones, an even count; a function_call value is JSON of
    {"name", "arguments"} or a list of them, its arguments written json.dumps(ensure_ascii=False);
    the tools column is a JSON list. Returns ``(examples, broken)``: per good record
    ``{"system", "turns": [(role, text | [(name, arguments_text)])], "tools"}``."""
    cols, tags = attr["columns"], {**DEFAULT_TAGS, **attr.get("tags", {})}
    odd = (tags["user_tag"], tags["observation_tag"])
    even = (tags["assistant_tag"], tags["function_tag"])
    out, broken = [], []
    for n, rec in enumerate(records):
        msgs = rec[cols["messages"]]
        system = ""
        if msgs and msgs[0][tags["role_tag"]] == tags["system_tag"]:
            system, msgs = msgs[0][tags["content_tag"]], msgs[1:]
        elif "system" in cols:
            system = rec.get(cols["system"]) or ""
        if len(msgs) % 2 or any(m[tags["role_tag"]] not in (odd, even)[i % 2] for i, m in enumerate(msgs)):
            broken.append(n)
            continue
        turns = []
        for m in msgs:
            role, text = m[tags["role_tag"]], m[tags["content_tag"]]
            assert isinstance(text, str), f"record {n}: LLaMA-Factory needs text, got {text!r:.60}"
            if role == tags["function_tag"]:
                calls = json.loads(text)
                calls = calls if isinstance(calls, list) else [calls]
                text = [(c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in calls]
            turns.append((role, text))
        tools = rec.get(cols["tools"], "") if "tools" in cols else ""
        out.append({"system": system, "turns": turns, "tools": json.loads(tools) if tools else []})
    return out, broken


@pytest.fixture(scope="module")
def glaive_attr():
    info = json.loads(shared_file(INFO).read_text())
    attr = info["glaive_toolcall_en_demo"]
    assert attr["formatting"] == "sharegpt" and attr["columns"] == {"messages": "conversations", "tools": "tools"}
    return attr


def test_sharegpt_exports_read_as_llamafactory_reads_them(glaive_attr, tmp_workspace, tmp_path):
    # the glaive demo, imported and exported: LLaMA-Factory reads the same examples from both
    src = shared_file(GLAIVE)
    import_file(tmp_workspace, src, "g", user="t")
    export_version(tmp_workspace, "g", None, "sharegpt", tmp_path / "g.json")
    theirs, broken = llamafactory_read(json.loads(src.read_text()), glaive_attr)
    ours, broken_ours = llamafactory_read(json.loads((tmp_path / "g.json").read_text()), glaive_attr)
    assert ours == theirs and broken_ours == broken
    assert len(ours) + len(broken) == 300 and len(ours) > 250
    assert ours[0]["turns"][3] == ("function_call", [("search_recipes", '{"ingredients": ["chicken", "bell peppers", "rice"]}')])
    # OpenAI tool-call conversations exported as ShareGPT: every call reaches LLaMA-Factory with
    # the argument text of the source, the tools as the source's list, the system prompt first
    stock = shared_file(STOCK)
    import_file(tmp_workspace, stock, "s", user="t")
    export_version(tmp_workspace, "s", None, "sharegpt", tmp_path / "s.json")
    read, broken = llamafactory_read(json.loads((tmp_path / "s.json").read_text()), glaive_attr)
    source = [json.loads(line) for line in stock.read_text().splitlines()]
    assert broken == [] and len(read) == len(source) == 86
    n = 0
    for ex, rec in zip(read, source):
        assert ex["system"] == rec["messages"][0]["content"] and ex["tools"] == rec["tools"]
        for (role, text), m in zip(ex["turns"], rec["messages"][1:], strict=True):
            if "tool_calls" in m:
                n += 1
                assert role == "function_call"
                assert text == [(c["function"]["name"], c["function"]["arguments"]) for c in m["tool_calls"]]
            else:
                assert (role, text) == ({"user": "human", "assistant": "gpt"}[m["role"]], m["content"])
    assert n == 36


def test_messages_exports_read_by_datasets_and_trl(tokenizer, tmp_workspace, tmp_path):
    from datasets import load_dataset
    from trl.data_utils import is_conversational, maybe_apply_chat_template
    template = shared_file(QWEN25).read_text()
    for name, rel in (("s", STOCK), ("g", GLAIVE)):
        import_file(tmp_workspace, shared_file(rel), name, user="t")
        out = tmp_path / f"{name}.jsonl"
        export_version(tmp_workspace, name, None, "messages", out)
        ours = [json.loads(line) for line in out.read_text().splitlines()]
        ds = load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == len(ours)
        for ex, rec in zip(ds, ours):
            assert ex["messages"] == rec["messages"]        # tool calls, ids, null content: as written
            assert is_conversational(ex)
        ex, rec = ds[0], ours[0]
        call = next(m for m in rec["messages"] if m.get("tool_calls"))["tool_calls"][0]["function"]
        text = maybe_apply_chat_template({"messages": ex["messages"]}, tokenizer, tools=ex["tools"],
                                         chat_template=template)["text"]
        assert f'<tool_call>\n{{"name": "{call["name"]}", "arguments": ' in text
        assert "# Tools" in text and f'"name": "{rec["tools"][0].get("function", rec["tools"][0])["name"]}"' in text
