"""`wb show` and `wb diff` print sample text as text (brackets such as "[/INST]" are not rich
markup) and show a conversation whole: tool schemas, reasoning, tool calls with their
arguments, and the call a tool result answers."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

AGENT = {"messages": [
    {"role": "user", "content": "Weather in Paris? Answer like [INST] [/INST] [bold]x"},
    {"role": "assistant", "reasoning_content": "Call the tool.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 18}"},
    {"role": "assistant", "content": "It is 18 degrees [/]."}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}


def wb(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WB_WORKSPACE", None)
    env.pop("WB_USER", None)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_show_and_diff_print_turns_whole_and_brackets_as_text(tmp_path):
    ws = str(tmp_path / "ws")
    src = tmp_path / "agent.jsonl"
    src.write_text(json.dumps(AGENT) + "\n", encoding="utf-8")
    assert wb("-w", ws, "import", str(src), "-d", "agent", cwd=tmp_path).returncode == 0
    r = wb("-w", ws, "show", "-d", "agent", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "tools: get_weather" in lines
    assert "user: Weather in Paris? Answer like [INST] [/INST] [bold]x" in lines
    assert "assistant [reasoning]: Call the tool." in lines
    assert 'assistant [tool call call_1]: get_weather({"city": "Paris"})' in lines
    assert "assistant: null" not in lines
    assert 'tool (call_1 · get_weather): {"temp": 18}' in lines
    assert "assistant: It is 18 degrees [/]." in lines
    edited = {**AGENT, "messages": [*AGENT["messages"][:3], {"role": "assistant", "content": "Now [/INST] 19."}]}
    src.write_text(json.dumps(edited) + "\n", encoding="utf-8")
    assert wb("-w", ws, "import", str(src), "-d", "agent", cwd=tmp_path).returncode == 0
    r = wb("-w", ws, "diff", "-d", "agent", "1", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[/INST]" in r.stdout and "Traceback" not in r.stderr


def test_quarantine_table_prints_a_bracketed_value_as_text(tmp_path):
    ws = str(tmp_path / "ws")
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"instruction": "ok", "output": "fine"}) + "\n"
                   + json.dumps({"instruction": "bad", "output": ["[/INST] x"]}) + "\n", encoding="utf-8")
    assert wb("-w", ws, "import", str(src), "-d", "q", "--quarantine", cwd=tmp_path).returncode == 0
    r = wb("-w", ws, "quarantine", "-d", "q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "['[/INST] x']" in r.stdout
    r = wb("-w", ws, "log", "-d", "q", cwd=tmp_path)
    assert r.returncode == 0 and "import rows.jsonl" in r.stdout
