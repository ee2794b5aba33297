"""The Chat page through AppTest: base model and an adapter side by side with the run's template and
a library system prompt; one click sends an answer to review."""
from __future__ import annotations


import pytest
from streamlit.testing.v1 import AppTest

from datastore import Store
from datastore import versions as V
from pipelines.serve.chat import CHAT_STAGING
from tests.app.pages import open_page

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PAGE = "pages/10_Chat.py"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from pipelines.workspace import init_workspace
    from tests.pipelines.serve.conftest import _make_adapter, _make_prompt_adapter
    try:
        from pipelines.models import ensure_base_model
        ensure_base_model()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"embedded model unavailable: {e}")
    w = tmp_path_factory.mktemp("chat") / "ws"
    init_workspace(w)
    _make_adapter(w / "runs" / "run-a", 1, 4, "chatml")
    _make_prompt_adapter(w / "runs" / "run-p", 3)
    return w


def _page(ws) -> AppTest:
    return open_page(ws, PAGE, timeout_s=300)


def test_side_by_side_and_send_to_review(ws):
    at = _page(ws)
    assert [o for o in at.selectbox(key="chat_a").options] == ["(base model)", "run-a", "run-p"]
    at.toggle(key="chat_two").set_value(True).run()
    at.selectbox(key="chat_b").set_value("run-a")
    at.slider(key="chat_max_new").set_value(4)
    at.selectbox(key="chat_sys").set_value("teacher").run()
    at.text_input(key="chat_sys_teacher_subject").set_value("arithmetic").run()
    at.chat_input(key="chat_input").set_value("What is 2 + 2?").run()
    assert not at.exception, [e.value for e in at.exception]
    turns = at.session_state["chat_turns"]
    assert len(turns) == 1 and set(turns[0]["answers"]) == {"(base model)", "run-a"}
    a = turns[0]["answers"]["run-a"]
    assert a["template"] == "chatml" and a["messages"][0]["role"] == "system"
    assert "arithmetic" in a["messages"][0]["content"] and 0 < a["new_tokens"] <= 4
    assert any("template `chatml`" in c.value for c in at.caption)
    at.button(key="chat_send_bad_0_run-a").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Store(ws) as st:
        v = V.resolve(st, CHAT_STAGING)
        s = V.read_page(st, v)[0]
    assert s.tags == ["chat", "chat:bad"] and s.messages[-1] == {"role": "assistant", "content": a["text"]}
    assert s.lineage["adapter"] == "run-a" and s.lineage["system_prompt"] == "teacher"


def test_lora_then_prompt_tuning_and_the_loaded_run_is_named(ws):
    at = _page(ws)
    at.slider(key="chat_max_new").set_value(4)
    at.selectbox(key="chat_a").set_value("run-a").run()
    assert any(c.value.startswith("run `run-a` · LoRA · base `SmolLM2-135M-Instruct`") for c in at.caption)
    at.chat_input(key="chat_input").set_value("What is 2 + 2?").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key="chat_a").set_value("run-p").run()
    at.chat_input(key="chat_input").set_value("And 3 + 3?").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    turns = at.session_state["chat_turns"]
    a, p = turns[-2]["answers"]["run-a"], turns[-1]["answers"]["run-p"]
    assert a["text"] and p["text"] and 0 < p["new_tokens"] <= 4
    assert (a["served"]["method"], p["served"]["method"]) == ("LoRA", "prompt tuning")
    captions = [c.value for c in at.caption]
    assert "Loaded now: run `run-p` · prompt tuning · base `SmolLM2-135M-Instruct`" in captions
    assert any("answered by run `run-p` · prompt tuning" in c for c in captions)
