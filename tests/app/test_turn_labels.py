"""Call ids on the conversation view: shown as written inside code (no Markdown backslash), and
a tool result that does not name its function is labelled with the function of its call."""
from streamlit.testing.v1 import AppTest

from app.common import md_code


def test_md_code_keeps_the_text_and_fences_backticks():
    assert md_code("call_1") == "`call_1`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x") == "`` `x ``"


def _script():
    from app.common import render_turns
    render_turns([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "call_9", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "18"},
        {"role": "assistant", "content": "18 degrees."}])


def test_tool_result_without_a_name_gets_the_function_of_its_call():
    at = AppTest.from_function(_script, default_timeout=60).run()
    assert not at.exception
    assert "**tool result** · call `call_9` · **get\\_weather**" in [c.value for c in at.caption]
    assert "🔧 **get\\_weather** · `call_9`" in [m.value for m in at.markdown]
