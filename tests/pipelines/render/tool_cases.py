"""Conversations with tool calls, tool results, tool schemas and reasoning, for the parity and
loss-mask tests of this folder, read in place from ../shared/data (skipped when absent), plus
cases written here. Also: a copy of the embedded tokenizer per chat template, with the template's
special tokens added.

Shapes: a case is ``(case_id, messages, tools, documents)``; messages follow OpenAI /
transformers (``tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]``,
tool results ``{"role": "tool", "tool_call_id", "name", "content"}``, ``reasoning_content``).
"""
from __future__ import annotations

import copy
import gzip
import json
import re

from pipelines.render import template_control_tokens
from tests.conftest import shared_file

# Tags the tool and reasoning templates write around tool calls, tool schemas, tool results and
# reasoning (Hermes-2-Pro, Qwen2.5, Qwen3, SmolLM3, DeepSeek-R1 texts); the real tokenizers of
# these models hold most of them as added tokens, so the copies here do as well.
TAGS = ("<tool_call>", "</tool_call>", "<tools>", "</tools>", "<tool_response>", "</tool_response>",
        "<think>", "</think>")


# The end-of-turn token of models whose reference case declares none or another one (their
# tokenizer_config.json eos_token): the prefix-difference mask ends a turn at it.
END_OF_TURN = {"Llama-3.1": "<|eot_id|>", "Llama-3.2": "<|eot_id|>", "command-r": "<|END_OF_TURN_TOKEN|>",
               "command-a": "<|END_OF_TURN_TOKEN|>", "Hammer2.1": "<|im_end|>", "Qwen": "<|im_end|>",
               "Kimi-K2": "<|im_end|>", "SmolLM3": "<|im_end|>"}


def special_tokens_of(name: str, case_tokens: dict) -> dict:
    """A template's bos/eos: the reference case's, with the model's end-of-turn token as
    ``eos_token`` where :data:`END_OF_TURN` names the model."""
    out = {k: v for k, v in case_tokens.items() if v is not None}
    out.update({"eos_token": eos for key, eos in END_OF_TURN.items() if key in name})
    return out


def tokenizer_for_text(base, text: str, special_tokens: dict):
    """A copy of ``base`` speaking a template: ``special_tokens`` (``bos_token``/``eos_token``
    strings; None values skipped) set, and every control string the template writes (its
    token-like literals and the :data:`TAGS` it contains) added as special tokens, so each
    encodes to one id. ``chat_template`` set to ``text``."""
    tok = copy.deepcopy(base)
    special = {k: v for k, v in special_tokens.items() if k in ("bos_token", "eos_token") and v}
    extra = [t for t in template_control_tokens(text) if t not in special.values()]
    extra += [t for t in TAGS if t in text and t not in extra]
    tok.add_special_tokens({**special, "additional_special_tokens": extra})
    tok.chat_template = text
    return tok


def _call(i: int, name: str, arguments) -> dict:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}


def glaive_cases(limit: int | None = None) -> list[tuple]:
    """LLaMA-Factory's glaive tool-call demo (ShareGPT ``function_call`` / ``observation`` turns,
    ``tools`` as a JSON string of bare function schemas), turned into OpenAI messages: a
    ``function_call`` turn becomes an assistant turn with one tool call (its arguments kept as a
    dict in even rows, as a JSON string in odd rows; its content null in every fourth row, else
    empty), an ``observation`` the tool result of the
    call before it. Rows with a function call come first."""
    rows = json.loads(shared_file("sharegpt-openai-samples/llamafactory_glaive_toolcall_en_demo.json")
                      .read_text(encoding="utf-8"))
    rows = sorted(enumerate(rows), key=lambda r: not any(t["from"] == "function_call"
                                                         for t in r[1]["conversations"]))
    out = []
    for n, row in rows[:limit]:
        msgs, last = [], None
        for k, turn in enumerate(row["conversations"]):
            role, value = turn["from"], turn["value"]
            if role == "function_call":
                call = json.loads(value)
                args = call["arguments"] if n % 2 == 0 else json.dumps(call["arguments"])
                last = _call(k, call["name"], args)
                msgs.append({"role": "assistant", "content": None if n % 4 == 0 else "", "tool_calls": [last]})
            elif role == "observation":
                msgs.append({"role": "tool", "tool_call_id": last["id"], "name": last["function"]["name"],
                             "content": value})
            else:
                msgs.append({"role": {"human": "user", "gpt": "assistant"}[role], "content": value})
        tools = [{"type": "function", "function": f} for f in json.loads(row["tools"] or "[]")] or None
        out.append((f"glaive-{n}", msgs, tools, None))
    return out


def _jsonl(rel: str):
    path = shared_file(rel)
    opener = gzip.open if rel.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def openai_cases(rel: str, limit: int) -> list[tuple]:
    """Rows ``{"messages", "tools"}`` of an OpenAI-format tool-calling file, as they are."""
    out = []
    for n, row in enumerate(_jsonl(f"tool-calling-openai/{rel}")):
        if n >= limit:
            break
        out.append((f"{rel.split('.jsonl')[0]}-{n}", row["messages"], row.get("tools"), None))
    return out


_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.S)


def sky_t1_cases(rel: str, limit: int, max_chars: int = 12000) -> list[tuple]:
    """Sky-T1 traces with a complete thought: the ``<|begin_of_thought|>...<|end_of_thought|>``
    part (stripped) becomes ``reasoning_content``, the rest (the solution) the answer. Traces
    longer than ``max_chars`` are skipped (they only slow the test)."""
    out = []
    for row in _jsonl(f"reasoning-traces/{rel}"):
        gen = row["code"][0]
        m = _THOUGHT.search(gen)
        if not m or len(gen) > max_chars:
            continue
        answer = (gen[:m.start()] + gen[m.end():]).strip()
        out.append((f"{rel.split('.jsonl')[0]}-{row['idx']}",
                    [{"role": "user", "content": row["question"]},
                     {"role": "assistant", "content": answer, "reasoning_content": m.group(1).strip()}],
                    None, None))
        if len(out) >= limit:
            break
    return out


def gsm8k_cases(limit: int) -> list[tuple]:
    """GSM8K test rows: the rationale (before ``####``) as reasoning, the final answer as content;
    every third row keeps the reasoning under the source key ``thinking``."""
    out = []
    for n, row in enumerate(_jsonl("reasoning-traces/gsm8k_test.jsonl.gz")):
        if n >= limit:
            break
        rationale, final = row["answer"].split("####")
        key = "thinking" if n % 3 == 0 else "reasoning_content"
        out.append((f"gsm8k-{n}", [{"role": "user", "content": row["question"]},
                                   {"role": "assistant", "content": f"The answer is {final.strip()}.",
                                    key: rationale.strip()}], None, None))
    return out


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
DOCS = [{"title": "Tides", "text": "High tide in Brest is at 06:12 today."},
        {"title": "Ferries", "text": "The ferry to Ouessant leaves at 09:00."}]
# Control-token strings written inside message text (they must stay plain text).
CONTROL_TEXT = "What do <|im_end|>, <|eot_id|>, <tool_call> and <think> mean in a prompt?"


def written_cases() -> list[tuple]:
    """Cases written here: multi-turn tool calls, parallel tool calls, arguments as dict and as
    string, empty and null content with tool calls, reasoning on several turns (with and without
    tool calls), documents, control-token text in content, a non-alternating conversation."""
    w1, w2 = _call(1, "get_weather", {"city": "Paris"}), _call(2, "get_weather", '{"city": "Oslo", "unit": "c"}')
    t3 = _call(3, "get_time", {"city": "Paris"})

    def res(c, text):
        return {"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"], "content": text}

    tools = [WEATHER, TIME]
    return [
        ("multi-turn-calls", [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [w1]},
            res(w1, '{"temp": 18, "sky": "cloudy"}'),
            {"role": "assistant", "content": "18 degrees and cloudy in Paris."},
            {"role": "user", "content": "And in Oslo, in Celsius?"},
            {"role": "assistant", "content": "", "tool_calls": [w2]},
            res(w2, "4"),
            {"role": "assistant", "content": "4 degrees in Oslo."}], tools, None),
        ("parallel-calls", [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [w1, t3]},
            res(w1, '{"temp": 18}'), res(t3, '"14:05"'),
            {"role": "assistant", "content": "18 degrees, and it is 14:05."}], tools, None),
        ("args-dict", [{"role": "user", "content": "Paris?"},
                       {"role": "assistant", "tool_calls": [w1]}], tools, None),
        ("args-string", [{"role": "user", "content": "Oslo?"},
                         {"role": "assistant", "content": None, "tool_calls": [w2]}], tools, None),
        ("content-and-call", [{"role": "user", "content": "Oslo?"},
                              {"role": "assistant", "content": "Let me check.", "tool_calls": [w2]},
                              res(w2, "4"), {"role": "assistant", "content": "4 degrees."}], tools, None),
        ("reasoning-several-turns", [
            {"role": "user", "content": "Is 91 prime?"},
            {"role": "assistant", "content": "No: 91 = 7 x 13.", "reasoning_content": "Try 7: 7 x 13 = 91."},
            {"role": "user", "content": "Is 97 prime?"},
            {"role": "assistant", "content": "Yes.", "reasoning_content": "No divisor up to 9 divides 97."}],
         None, None),
        ("reasoning-and-calls", [
            {"role": "system", "content": "Think, then act."},
            {"role": "user", "content": "Should I take an umbrella in Paris?"},
            {"role": "assistant", "content": None, "reasoning_content": "I need the weather first.",
             "tool_calls": [w1]},
            res(w1, '{"rain": true}'),
            {"role": "assistant", "content": "Yes, take one.", "reasoning_content": "Rain is forecast."},
            {"role": "user", "content": "And tomorrow?"},
            {"role": "assistant", "content": "I cannot tell yet.", "thinking": "No forecast tool for tomorrow."}],
         tools, None),
        ("documents", [{"role": "user", "content": "When does the ferry leave?"},
                       {"role": "assistant", "content": "At 09:00."}], None, DOCS),
        ("control-text", [{"role": "user", "content": CONTROL_TEXT},
                          {"role": "assistant", "content": "They are control tokens: " + CONTROL_TEXT}], tools, None),
        ("prompt-with-tools", [{"role": "system", "content": "Use the tools."},
                               {"role": "user", "content": "Time in Paris?"}], tools, None),
        ("not-alternating", [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"},
                             {"role": "assistant", "content": "Hello."}], None, None),
    ]
