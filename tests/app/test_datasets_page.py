"""The Datasets page through Streamlit's AppTest: listing, version log, samples as turns,
keyset paging, version switching, diff, statistics, and errors shown as messages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from datastore import NotFound, Sample, Store
from datastore import versions as V

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "app" / "Workbench.py")
DATASETS_PAGE = "pages/1_Datasets.py"
TIMEOUT_S = 60  # AppTest per-run limit; a run takes well under a second here

os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


def build_workspace(ws: Path, n_instruction: int = 120) -> Path:
    """Two datasets with two versions each.

    ``alpaca-mini`` (instruction samples): v1 imports ``n_instruction`` samples (ids 1..n;
    sample 1 has a system prompt, every third an input); v2 edits sample 1, removes
    sample 2 and adds one, so it also holds ``n_instruction`` samples. v1 is tagged ``raw``.
    ``chat-mini`` (conversations): v1 three pirate chats with a system prompt; v2 adds one
    chat with a tool turn and lineage.
    """
    with Store(ws) as st:
        rows = [Sample(kind="instruction", instruction=f"Instruction number {i}",
                       input="some input" if i % 3 == 0 else None, output=f"Answer number {i}",
                       system="You are terse." if i == 1 else None, task_type="qa", language="en",
                       tags=["seed"] if i % 2 else None, quality_score=0.5, source="unit-test").to_row()
                for i in range(1, n_instruction + 1)]
        V.commit(st, "alpaca-mini", author="alice", message="import alpaca", add=rows, create=True)
        V.commit(st, "alpaca-mini", author="bob", message="fix sample 1, drop 2, add one",
                 update={1: Sample(kind="instruction", instruction="Instruction number 1 (edited)",
                                   output="A better answer", system="You are terse.").to_row()},
                 remove=[2],
                 add=[Sample(kind="instruction", instruction="A brand new instruction",
                             output="A brand new answer").to_row()])
        V.tag(st, "alpaca-mini", "raw", 1, user="alice")
        chats = [Sample(kind="conversation", language="en", messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": f"Ahoy question {i}"},
            {"role": "assistant", "content": f"Arr answer {i}"}]).to_row() for i in range(3)]
        V.commit(st, "chat-mini", author="carol", message="first chats", add=chats, create=True)
        V.commit(st, "chat-mini", author="carol", message="a chat with a tool", add=[
            Sample(kind="conversation", lineage={"generator": "self-instruct", "seed": 7}, messages=[
                {"role": "user", "content": "What is 2+2?"},
                {"role": "tool", "content": "calculator: 4"},
                {"role": "assistant", "content": "It is 4."}]).to_row()])
    return ws


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("wb") / "ws")


def _app(ws: Path) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT_S)
    at.session_state["workspace"] = str(ws)
    return at


def _datasets(ws: Path) -> AppTest:
    at = _app(ws)
    at.run()
    at.switch_page(DATASETS_PAGE).run()
    _no_exceptions(at)
    return at


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def _page_caption(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Page **"))


def _sample_ids(at: AppTest) -> list[int]:
    return [int(m.value.split("**")[1][1:]) for m in at.markdown if m.value.startswith("**#")]


# ---------------------------------------------------------------- home
def test_home_shows_workspace_and_dataset_count(workspace):
    at = _app(workspace)
    at.run()
    _no_exceptions(at)
    assert str(workspace.resolve()) in [c.value for c in at.code]
    assert at.metric[0].label == "Datasets" and at.metric[0].value == "2"
    assert any("Tour" == h.value for h in at.subheader)


def test_workspace_from_args_then_env_then_default(monkeypatch, tmp_path):
    from app.common import workspace_from_args
    monkeypatch.setenv("WB_WORKSPACE", str(tmp_path / "env"))
    assert workspace_from_args(["--workspace", str(tmp_path / "arg"), "--other", "x"]) == tmp_path / "arg"
    assert workspace_from_args(["-q", "tests"]) == tmp_path / "env"
    monkeypatch.delenv("WB_WORKSPACE")
    assert workspace_from_args([]) == Path("workspace")


def test_missing_workspace_is_a_message_and_creates_nothing(tmp_path):
    ws = tmp_path / "nowhere"
    at = _app(ws)
    at.run()
    at.switch_page(DATASETS_PAGE).run()
    assert not at.exception
    assert any("No workspace" in i.value for i in at.info)
    assert not ws.exists()


# ---------------------------------------------------------------- datasets and versions
def test_lists_datasets_and_version_log(workspace):
    at = _datasets(workspace)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["alpaca-mini", "chat-mini"]
    assert list(table["versions"]) == [2, 2]
    assert list(table["samples"]) == [120, 4]
    assert all(len(h) == 12 for h in table["content hash"])
    assert list(table.columns[:5]) == ["name", "kind", "versions", "samples", "content hash"]

    log = at.dataframe[1].value
    assert list(log["version"]) == ["v2", "v1"]
    assert list(log["author"]) == ["bob", "alice"]
    assert list(log["tags"]) == ["", "raw"]
    assert list(log["added"]) == [1, 120] and list(log["removed"]) == [1, 0]
    assert list(log["modified"]) == [1, 0]
    assert log["message"][0] == "fix sample 1, drop 2, add one"
    assert all(len(t) == 16 for t in log["time (UTC)"])  # YYYY-MM-DD HH:MM
    assert "id" not in log.columns  # shown in the selected version's caption instead


def test_head_samples_shown_as_turns_with_system_prompt(workspace):
    at = _datasets(workspace)
    texts = _texts(at)
    assert texts[:3] == ["You are terse.", "Instruction number 1 (edited)", "A better answer"]
    assert "Instruction number 3\n\nsome input" in texts  # the input follows the instruction
    assert "Instruction number 2" not in texts  # removed in v2
    assert any("System prompt" in c.value for c in at.caption)
    roles = [c.name for c in at.chat_message]
    assert roles[:4] == ["user", "assistant", "user", "assistant"]
    assert len(roles) == 100  # 50 samples, one user and one assistant turn each
    assert any(":blue-badge[instruction]" in m.value and "task type: qa" in m.value for m in at.markdown)
    assert any(c.value.startswith("source unit\\-test · hash `") for c in at.caption)
    assert not at.expander  # no nested metadata on these samples


def test_paging_by_key_120_samples(workspace):
    at = _datasets(workspace)
    assert _page_caption(at) == "Page **1** · samples 1–50 of 120"
    assert at.button(key="prev_top").disabled and not at.button(key="next_top").disabled
    first = _sample_ids(at)
    assert len(first) == 50 and first[:3] == [1, 3, 4]  # id 2 was removed in v2

    at.button(key="next_top").click().run()
    _no_exceptions(at)
    second = _sample_ids(at)
    assert len(second) == 50 and second[0] > first[-1]
    assert _page_caption(at) == "Page **2** · samples 51–100 of 120"

    at.button(key="next_bottom").click().run()
    third = _sample_ids(at)
    assert len(third) == 20 and third[-1] == 121
    assert _page_caption(at) == "Page **3** · samples 101–120 of 120"
    assert at.button(key="next_top").disabled

    at.button(key="prev_top").click().run()
    assert _sample_ids(at) == second
    at.button(key="first_bottom").click().run()
    assert _sample_ids(at) == first


def test_pick_older_version_and_paging_is_per_version(workspace):
    at = _datasets(workspace)
    at.button(key="next_top").click().run()
    at.selectbox(key="version").select(1).run()
    _no_exceptions(at)
    texts = _texts(at)
    assert texts[:3] == ["You are terse.", "Instruction number 1", "Answer number 1"]
    assert "Instruction number 2" in texts
    assert _page_caption(at) == "Page **1** · samples 1–50 of 120"
    at.selectbox(key="version").select(2).run()
    assert _page_caption(at).startswith("Page **2**")  # v2 kept its own place


def test_conversation_dataset(workspace):
    at = _datasets(workspace)
    at.selectbox(key="dataset").select("chat-mini").run()
    _no_exceptions(at)
    assert list(at.dataframe[1].value["version"]) == ["v2", "v1"]
    assert at.selectbox(key="version").value == 2  # a newly picked dataset opens at its head
    texts = _texts(at)
    assert texts[:3] == ["You are a pirate.", "Ahoy question 0", "Arr answer 0"]
    assert texts[-3:] == ["What is 2+2?", "calculator: 4", "It is 4."]
    assert [c.name for c in at.chat_message][-3:] == ["user", "tool", "assistant"]
    assert [e.label for e in at.expander] == ["lineage"]  # nested metadata of the last chat
    assert _page_caption(at) == "Page **1** · samples 1–4 of 4"
    assert at.button(key="next_top").disabled


def test_diff_between_versions(workspace):
    at = _datasets(workspace)
    at.session_state["view"] = "Compare versions"
    at.run()
    _no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Samples": "120", "Added": "1", "Removed": "1", "Modified": "1"}
    heads = [h.value for h in at.subheader]
    assert {"Added in v2", "Removed in v2", "Modified in v2"} <= set(heads)
    texts = _texts(at)
    assert "A brand new instruction" in texts and "Instruction number 2" in texts
    assert "Instruction number 1" in texts and "Instruction number 1 (edited)" in texts
    changed = next(m.value for m in at.markdown if m.value.startswith("**#1** changed:"))
    assert "`instruction`" in changed and "`output`" in changed and "`system`" not in changed
    assert not any(b.key and b.key.startswith("next_") for b in at.button)  # samples tab not run


def test_statistics_tab(workspace):
    at = _datasets(workspace)
    at.session_state["view"] = "Statistics"
    at.run()
    _no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples"] == "120"


def test_workbench_error_is_a_message_not_a_traceback(workspace, monkeypatch):
    from pipelines import catalog

    def broken(*a, **k):
        raise NotFound("no dataset named 'ghost'")
    monkeypatch.setattr(catalog, "sample_page", broken)
    at = _app(workspace)
    at.run()
    at.switch_page(DATASETS_PAGE).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["no dataset named 'ghost'"]


def test_the_app_does_not_hold_the_database_open(workspace):
    at = _datasets(workspace)
    at.button(key="next_top").click().run()
    # Another process can take the file right after a render (DuckDB locks it per
    # process), so the app closed it.
    code = ("import sys; from datastore import Store, versions as V; "
            "st = Store(sys.argv[1], timeout_s=0.5); print(V.resolve(st, 'alpaca-mini').number); st.close()")
    out = subprocess.run([sys.executable, "-c", code, str(workspace)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2"


def test_render_markdown_toggle_persists_across_tabs(workspace):
    at = _datasets(workspace)
    at.toggle(key="render_markdown").set_value(True).run()
    assert "Instruction number 1 (edited)" in [m.value for m in at.markdown]  # rendered, not st.text
    at.session_state["view"] = "Statistics"
    at.run()
    at.session_state["view"] = "Samples"
    at.run()
    _no_exceptions(at)
    assert at.toggle(key="render_markdown").value is True


def test_long_text_is_cut_with_a_show_all_expander():
    def script():
        from app.common import render_sample
        from datastore import Sample
        render_sample(Sample(kind="instruction", instruction="Summarize", output="x" * 5000, sample_id=7,
                             lineage={"generator": "self-instruct"}))

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert [e.label for e in at.expander] == ["Show all 5,000 characters", "lineage"]
    assert len(at.text[1].value) == 4000 and len(at.text[2].value) == 5000


# ---------------------------------------------------------------- regressions
def test_switching_dataset_shows_its_head_and_next_pages_that_version(tmp_path):
    """QA: after picking another dataset the Version selectbox showed the previous dataset's
    version (v1) while the page showed the head (v2), and the first Next silently switched
    to v1 page 1. The browser keeps showing (and sends back) its own selection unless the
    server sets the value, so the delta must carry ``set_value`` with the head."""
    with Store(tmp_path / "ws") as s:
        V.commit(s, "alpha", author="a", message="one version",
                 add=[Sample(kind="instruction", instruction=f"a{i}", output="x").to_row() for i in range(3)],
                 create=True)
        V.commit(s, "code", author="b", message="import",
                 add=[Sample(kind="instruction", instruction=f"c{i}", output="y").to_row() for i in range(60)],
                 create=True)
        V.commit(s, "code", author="b", message="one more",
                 add=[Sample(kind="instruction", instruction="c-new", output="z").to_row()])
    at = _datasets(tmp_path / "ws")
    assert at.selectbox(key="version").value == 1  # alpha's head; the browser shows "v1"
    shown_in_browser = "v1"

    at.selectbox(key="dataset").select("code").run()
    _no_exceptions(at)
    sb = at.selectbox(key="version")
    assert sb.value == 2
    if sb.proto.set_value:  # what the browser shows (and sends back) from now on
        shown_in_browser = sb.proto.raw_value
    assert shown_in_browser == "v2"
    assert _page_caption(at) == "Page **1** · samples 1–50 of 61"

    at.selectbox(key="version").select(int(shown_in_browser[1:]))
    at.button(key="next_top").click().run()
    _no_exceptions(at)
    assert at.selectbox(key="version").value == 2
    assert _page_caption(at) == "Page **2** · samples 51–61 of 61"


def test_conversation_role_problems_are_badges_on_the_card():
    """QA: conversation problems were invisible after import. Each conversation card shows
    one warning badge per problem found by ``check_roles``; a system turn after the first
    is not labelled "System prompt"."""
    def script():
        from app.common import render_sample
        from datastore import Sample

        def chat(sid, *roles):
            render_sample(Sample(kind="conversation", sample_id=sid,
                                 messages=[{"role": r, "content": f"{r} {i}"} for i, r in enumerate(roles)]))
        chat(1, "system", "user", "tool", "assistant")  # fine
        chat(2, "assistant", "user", "assistant")  # starts with the assistant
        chat(3, "user", "user", "assistant")  # two consecutive user turns
        chat(4, "user", "assistant", "system", "user", "assistant")  # system in the middle
        chat(5, "user", "assistant", "user")  # prompt only

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    cards = {int(m.value.split("**")[1][1:]): m.value for m in at.markdown if m.value.startswith("**#")}
    assert "orange-badge" not in cards[1]
    assert "starts with the assistant" in cards[2]
    assert "two consecutive 'user' turns" in cards[3]
    assert "system turn in the middle" in cards[4] and cards[4].count("orange-badge") == 1
    assert "ends on a user turn" in cards[5] and "prompt only" in cards[5]
    assert all(":material/warning:" in cards[i] for i in (2, 3, 4, 5))
    labels = [c.value for c in at.caption if "System" in c.value]
    assert labels == [":material/settings: **System prompt**",
                      ":material/settings: **System (mid-conversation)**"]


def test_nested_metadata_expander_shows_the_dict_itself():
    def script():
        from app.common import render_sample
        from datastore import Sample
        render_sample(Sample(kind="instruction", instruction="Q", output="A", sample_id=3,
                             extra={"origin": "web", "n": 2}))

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert [e.label for e in at.expander] == ["extra"]
    import json
    assert json.loads(at.json[0].value) == {"origin": "web", "n": 2}  # not {"extra": {...}}
