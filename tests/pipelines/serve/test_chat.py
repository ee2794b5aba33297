"""Chat services: template from the run card, system prompt from the library, side by side, review."""
from __future__ import annotations

import pytest

from datastore import Store
from datastore import versions as V
from datastore.errors import NotFound, WorkbenchError
from pipelines.serve import chat as C
from pipelines.serve.adapters import AdapterPool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool():
    return AdapterPool()


def test_serving_template_comes_from_the_run(two_adapters, pool, tmp_path):
    import json
    import shutil
    _, a, _ = two_adapters
    assert C.serving_template(a).name == "chatml"
    run = tmp_path / "run-z"
    shutil.copytree(a.parent, run)
    card = json.loads((run / "run_card.json").read_text())
    card["preflight"] = {"serve_template": {"name": "llama3.1"}}
    (run / "run_card.json").write_text(json.dumps(card))
    assert C.serving_template(run / "adapter").name == "llama3.1"   # the preflight's serving template wins
    assert C.serving_template(None, pool).text == pool.tokenizer.chat_template


def test_side_by_side_with_a_library_system_prompt(two_adapters, pool):
    _, a, b = two_adapters
    sp = C.system_prompt("teacher", subject="algebra", length="short")
    assert sp and "algebra" in sp
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    ra, rb = C.side_by_side(pool, [("a", a), ("b", b)], msgs, system=sp, max_new_tokens=8)
    assert (ra.adapter, rb.adapter) == ("a", "b") and ra.template == "chatml"
    assert ra.messages[0] == {"role": "system", "content": sp} and ra.messages[1:] == msgs
    assert 0 < ra.new_tokens <= 8 and ra.text
    assert C.reply(pool, "a", msgs, system=sp, max_new_tokens=8).text == ra.text   # greedy: repeatable
    base = C.reply(pool, None, msgs, max_new_tokens=8)
    assert base.adapter is None and base.messages == msgs
    with pytest.raises(WorkbenchError, match="end with a user turn"):
        C.reply(pool, None, msgs + [{"role": "assistant", "content": "4"}])


def test_send_to_review_stages_a_candidate(tmp_workspace):
    from pipelines import auth
    auth.add_user(tmp_workspace, None, "boss", "admin")
    auth.add_user(tmp_workspace, "boss", "ann", "annotator")
    ans = C.Reply("It is 5.", "a", "chatml", "f" * 64, 4, 0.1, [{"role": "user", "content": "2+2?"}])
    num, sid = C.send_to_review(tmp_workspace, ans, "bad", user="ann", note="wrong sum")
    with Store(tmp_workspace) as st:
        ds = V.get_dataset(st, C.CHAT_STAGING)
        s = V.get_samples(st, V.resolve(st, C.CHAT_STAGING, num), [sid])[0]
    assert ds.kind == "staging" and s.tags == ["chat", "chat:bad"]
    assert s.messages[-1] == {"role": "assistant", "content": "It is 5."}
    assert s.lineage["adapter"] == "a" and s.lineage["note"] == "wrong sum" and s.lineage["by"] == "ann"
    num2, sid2 = C.send_to_review(tmp_workspace, ans, "good", user="boss")
    assert (num2, sid2) == (num + 1, sid + 1)
    with pytest.raises(WorkbenchError, match="verdict"):
        C.send_to_review(tmp_workspace, ans, "meh", user="ann")
    with pytest.raises(NotFound):
        C.send_to_review(tmp_workspace, ans, "good", user="nobody")
