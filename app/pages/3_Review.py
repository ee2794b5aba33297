# page-icon: :material/rate_review:
"""Review: annotate your queue one sample at a time.

The sample is shown beside the task's guidelines; model drafts (generator output, a scoring
head's verdict, a reference answer) are shown as suggestions, marked as such. Keyboard:
A accept, X reject, 1-5 rating, T take the suggestion, S submit, N next, B back (Streamlit
reserves C and R); the buttons sit in rows that wrap, at their natural width, so a label
is never cut. Answers autosave as a draft on every change; the time on the sample is
recorded; a submit carries the item's submit id, so a double click or a retry never makes a
second annotation, and "Saved" appears only after the store committed it. Editing a
conversation edits each message: its text, reasoning, tool calls (function name, arguments as
JSON) and tool results, and the conversation's tools; the service checks the edit and keeps
every other key of each message (``pipelines.review.edits``).
"""
from __future__ import annotations

import json
import time

import streamlit as st

from app import common
from pipelines.review import annotate
from pipelines.review.questions import TEXT_EDIT_KEYS

ITEM_KEY = "review_item"          # {task: ReviewItem}
SHOWN_KEY = "review_shown_at"     # {task: monotonic time the item was shown}
FLASH_KEY = "review_flash"


def _load(ws, user, task, *, after=None, before=None, back=False) -> None:
    if back:
        it = annotate.previous_item(ws, user, task, before_position=before)
        if it is None:
            st.session_state[FLASH_KEY] = "This is the first sample of your queue."
            return
    else:
        it = annotate.next_item(ws, user, task, after_position=after)
    st.session_state.setdefault(ITEM_KEY, {})[task] = it
    st.session_state.setdefault(SHOWN_KEY, {})[task] = time.monotonic()


def _k(it, name: str) -> str:
    return f"rv-{it.task_id}-{it.sample.sample_id}-{it.round}-{name}"


def _answers(it) -> dict:
    """The form's current answers (from widget state)."""
    out = {}
    for q in it.questions:
        v = st.session_state.get(_k(it, q["name"]))
        if v not in (None, "", []):
            out[q["name"]] = v
    if out.get("decision") == "edit":
        if _is_conversation(it):
            out["edit"] = _conversation_edit(it)
        else:
            out["edit"] = {k: st.session_state.get(_k(it, f"edit_{k}")) for k in TEXT_EDIT_KEYS
                           if st.session_state.get(_k(it, f"edit_{k}"))}
    return out


# ---------------------------------------------------------------- conversation edit form
def _is_conversation(it) -> bool:
    return it.sample.kind == "conversation"


def _mk(it, i: int, field: str) -> str:
    """Widget key of one edited field of message ``i``."""
    return _k(it, f"edit_m{i}_{field}")


def _conversation_edit(it) -> dict:
    """The form's edit of a conversation as ``pipelines.review.edits`` takes it: per stored
    message the edited text fields and tool calls (arguments as the JSON text typed), and the
    tools JSON. Checked (JSON, names) by the service on submit, never here."""
    msgs = []
    for i, m in enumerate(it.sample.messages or []):
        e = {}
        for field in ("content", "reasoning_content"):
            v = st.session_state.get(_mk(it, i, field))
            if v is not None:
                e[field] = v
        calls = m.get("tool_calls")
        if isinstance(calls, list) and any(_mk(it, i, f"call{j}_{f}") in st.session_state
                                           for j in range(len(calls)) for f in ("name", "args")):
            e["tool_calls"] = []
            for j, call in enumerate(calls):   # a field without a widget yet keeps its stored value
                fn = (call.get("function") if isinstance(call, dict) else None) or {}
                e["tool_calls"].append({"function": {
                    "name": st.session_state.get(_mk(it, i, f"call{j}_name"), fn.get("name")),
                    "arguments": st.session_state.get(_mk(it, i, f"call{j}_args"), fn.get("arguments"))}})
        msgs.append(e)
    out = {"messages": msgs}
    if st.session_state.get(_k(it, "edit_tools")) is not None:
        out["tools"] = st.session_state[_k(it, "edit_tools")]
    return out


def _seed_conversation(it, edit: dict) -> None:
    """Fill the conversation edit widgets from a saved edit (a draft holds the typed text, a
    submitted answer the whole edited messages)."""
    for i, m in enumerate(edit.get("messages") or []):
        if not isinstance(m, dict):
            continue
        for field in ("content", "reasoning_content"):
            if isinstance(m.get(field), str):
                st.session_state[_mk(it, i, field)] = m[field]
        for j, call in enumerate(m.get("tool_calls") or []):
            fn = (call or {}).get("function") or {}
            if "name" in fn:
                st.session_state[_mk(it, i, f"call{j}_name")] = fn["name"]
            if "arguments" in fn:
                args = fn["arguments"]
                st.session_state[_mk(it, i, f"call{j}_args")] = common.arguments_json(args)[0]  # text not JSON: as written
    if "tools" in edit:
        tools = edit["tools"]
        st.session_state[_k(it, "edit_tools")] = tools if isinstance(tools, str) else (
            json.dumps(tools, indent=2, ensure_ascii=False) if tools else "")


def conversation_form(ws, user, task, it) -> None:
    """One bordered box per message: its text, reasoning (assistant turns), each tool call's
    name and arguments (JSON), a tool result's content; then the conversation's tools JSON.
    Every other key of a message is kept as stored when the edit is saved."""
    save = dict(on_change=_autosave, args=(ws, user, task, it))
    st.markdown("**Edit the conversation**")
    for i, m in enumerate(it.sample.messages or []):
        role = str(m.get("role") or "unknown").lower()
        with st.container(border=True):
            content = m.get("content")
            label = {"tool": "Tool result", "system": "System prompt"}.get(role, role.capitalize())
            about = " · ".join(x for x in (m.get("tool_call_id"), m.get("name")) if isinstance(x, str))
            st.caption(f"message {i} · **{common.md_escape(role)}**" + (f" · {common.md_escape(about)}" if about else ""))
            if isinstance(content, list):
                st.caption("Content parts (text, images, audio) are kept as stored; edit them in the source file.")
            else:
                st.session_state.setdefault(_mk(it, i, "content"), content or "")
                st.text_area(label, key=_mk(it, i, "content"), height=100 if role != "system" else 68, **save)
            if role == "assistant" or common.reasoning_of(m) is not None:
                st.session_state.setdefault(_mk(it, i, "reasoning_content"), m.get("reasoning_content") or "")
                st.text_area("Reasoning", key=_mk(it, i, "reasoning_content"), height=80, **save,
                             help="The model's reasoning before this answer (reasoning_content).")
            for j, call in enumerate(m.get("tool_calls") or []):
                fn = (call.get("function") if isinstance(call, dict) else None) or {}
                st.session_state.setdefault(_mk(it, i, f"call{j}_name"), fn.get("name") or "")
                st.session_state.setdefault(_mk(it, i, f"call{j}_args"), common.arguments_json(fn.get("arguments"))[0])
                st.text_input(f"🔧 Tool call {j + 1}: function name", key=_mk(it, i, f"call{j}_name"), **save)
                st.text_area(f"Tool call {j + 1}: arguments (JSON)", key=_mk(it, i, f"call{j}_args"), height=100,
                             **save)
    tools = (it.sample.extra or {}).get("tools")
    st.session_state.setdefault(_k(it, "edit_tools"), tools if isinstance(tools, str) else (
        json.dumps(tools, indent=2, ensure_ascii=False) if tools else ""))
    st.text_area("Tools (JSON schemas of the functions offered)", key=_k(it, "edit_tools"), height=120, **save,
                 help="A JSON list; empty: no tools.")


def _elapsed_ms(task, it) -> int:
    shown = st.session_state.get(SHOWN_KEY, {}).get(task, time.monotonic())
    return int((time.monotonic() - shown) * 1000) + int(it.draft_elapsed_ms or 0)


def _autosave(ws, user, task, it) -> None:
    with common.user_errors():
        annotate.save_draft(ws, user, task, it.sample.sample_id, _answers(it), _elapsed_ms(task, it))


def _submit(ws, user, task, it, answers: dict, slot) -> bool:
    """Submit; True once the store acknowledged it (then the next item is loaded). A refusal
    (e.g. no decision yet) goes into ``slot``, just under the buttons: one message, in view."""
    ok = False
    with slot.container(), common.user_errors():
        ack = annotate.submit(ws, user, task, it.sample.sample_id, answers, submit_id=it.submit_id,
                              time_spent_ms=_elapsed_ms(task, it), row_hash=it.sample.row_hash)
        _load(ws, user, task, after=it.position)
        nxt = st.session_state[ITEM_KEY].get(task)
        p = nxt.progress if nxt is not None else annotate.my_progress(ws, user, task)
        # the user's own counts, never the global annotation id (it would tell how many
        # answers the others gave)
        st.session_state[FLASH_KEY] = (f"Saved sample #{it.sample.sample_id} ({answers.get('decision')}"
                                       + ("" if ack.written else ", already saved")
                                       + f"). {p['done']} of {p['total']} done, {p['pending']} to go.")
        ok = True
    return ok


def _seed_widgets(it) -> None:
    """Pre-fill the form from the user's own answer, else their draft (once per item)."""
    flag = _k(it, "_seeded")
    if st.session_state.get(flag):
        return
    src = it.own_answers or it.draft or {}
    for q in it.questions:
        if q["name"] in src:
            st.session_state[_k(it, q["name"])] = src[q["name"]]
    edit = src.get("edit") or {}
    for k in TEXT_EDIT_KEYS:
        if edit.get(k):
            st.session_state[_k(it, f"edit_{k}")] = edit[k]
    if _is_conversation(it):
        _seed_conversation(it, edit)
    st.session_state[flag] = True


def _question(ws, user, task, it, q) -> None:
    key = _k(it, q["name"])
    save = dict(on_change=_autosave, args=(ws, user, task, it))
    if q["kind"] == "decision":
        st.segmented_control(q["label"], q["options"], key=key, **save)
    elif q["kind"] == "rating":
        st.segmented_control(q["label"], list(range(q["min"], q["max"] + 1)), key=key, **save)
    elif q["kind"] == "label":
        names = q.get("option_labels") or {}
        st.selectbox(q["label"], q["options"], index=None, key=key, placeholder="choose",
                     format_func=lambda o: names.get(o, o), **save)
    elif q["kind"] == "multilabel":
        st.multiselect(q["label"], q["options"], key=key, format_func=lambda o: o.replace("_", " "), **save)
    else:
        st.text_area(q["label"], key=key, height=68, **save)


def _set(key: str, value, ws, user, task, it) -> None:
    st.session_state[key] = value
    _autosave(ws, user, task, it)


def _take_suggestion(ws, user, task, it) -> None:
    text = next((s["text"] for s in it.suggestions if s.get("text")), None)
    verdict = next((s["decision"] for s in it.suggestions if s.get("decision")), None)
    if text:
        st.session_state[_k(it, "decision")] = "edit"
        last = [i for i, m in enumerate(it.sample.messages or []) if m.get("role") == "assistant"]
        if _is_conversation(it) and last:    # the last answer's text in the conversation form
            st.session_state[_mk(it, last[-1], "content")] = text
        else:
            st.session_state[_k(it, "edit_response")] = text
    elif verdict in ("accept", "reject"):
        st.session_state[_k(it, "decision")] = verdict
    _autosave(ws, user, task, it)


ws = common.workspace()
common.require_workspace(ws)
user = common.current_user()
st.title("Review")
with common.user_errors(stop=True):
    mine = annotate.my_tasks(ws, user)
if not mine:
    st.info("You have no review task. A curator opens one on the Adjudication page or with `wb task open`.",
            icon=":material/inbox:")
    st.stop()
# The options are the task names (the progress is only their label): a label that changes with
# each submit would not match the selection any more, and the page would jump to the first task.
labels = {t["name"]: f"{t['name']} · {t['dataset']} v{t['version']} · {t['done']}/{t['total']} done" for t in mine}
task = st.selectbox("Task", list(labels), key="review_task", format_func=labels.__getitem__)
items = st.session_state.setdefault(ITEM_KEY, {})
if task not in items:
    with common.user_errors(stop=True):
        _load(ws, user, task)
it = items.get(task)
if st.session_state.get(FLASH_KEY):
    st.success(st.session_state.pop(FLASH_KEY), icon=":material/check_circle:")
if it is None:
    st.success("Your queue is empty: every sample assigned to you is answered.", icon=":material/task_alt:")
    if st.button("Back", shortcut="B", icon=":material/undo:"):
        _load(ws, user, task, back=True)
        st.rerun()
    st.stop()

_seed_widgets(it)
left, right = st.columns([3, 2], gap="large")
with right:
    with st.container(border=True):
        st.markdown("**Guidelines**")
        st.markdown(it.guidelines or "_No guidelines for this task._")
    for s in it.suggestions:
        with st.container(border=True):
            st.caption(f":material/lightbulb: **Suggestion** · {s['source'].replace('_', ' ')}"
                       + (f" · {s['model']}" if s.get("model") else "") + " (a model draft, not a reviewer)")
            if s.get("text"):
                st.text(s["text"])
            if s.get("decision") or s.get("score") is not None:
                st.markdown(" ".join(x for x in [f":violet-badge[verdict {s['decision']}]" if s.get("decision") else "",
                                                 f":gray-badge[score {s['score']:.2f}]" if s.get("score") is not None else ""] if x))
with left:
    p = it.progress
    st.progress(p["done"] / max(p["total"], 1), text=f"{p['done']} of {p['total']} done · sample #{it.sample.sample_id}"
                + (" · your answer is saved; changing it replaces it" if it.own_answers else ""))
    common.render_sample(it.sample)
    # buttons at their natural width in a row that wraps: fixed columns cut the labels
    # ("A… A") once the label, icon and shortcut key outgrow a sixth of the column
    with st.container(horizontal=True, key=_k(it, "actions")):
        acc = st.button("Accept", shortcut="A", icon=":material/check:", type="primary", key=_k(it, "btn_accept"))
        rej = st.button("Reject", shortcut="X", icon=":material/close:", key=_k(it, "btn_reject"))
        sub = st.button("Submit", shortcut="S", icon=":material/send:", key=_k(it, "btn_submit"))
        st.button("Take suggestion", shortcut="T", icon=":material/lightbulb:", key=_k(it, "btn_take"),
                  disabled=not it.suggestions, on_click=_take_suggestion, args=(ws, user, task, it))
        back = st.button("Back", shortcut="B", icon=":material/undo:", key=_k(it, "btn_back"))
        nxt = st.button("Next", shortcut="N", icon=":material/redo:", key=_k(it, "btn_next"))
    submit_slot = st.empty()   # a refused submit says why here, under Submit
    rating_q = next((q for q in it.questions if q["kind"] == "rating" and q["name"] == "rating"), None)
    if rating_q:
        with st.container(horizontal=True, vertical_alignment="center", key=_k(it, "ratings")):
            st.caption("Rating", width="content")
            for v in range(rating_q["min"], rating_q["max"] + 1):
                st.button(str(v), shortcut=str(v) if v <= 9 else None, key=_k(it, f"btn_rate{v}"),
                          help=f"Rating {v}", on_click=_set, args=(_k(it, "rating"), v, ws, user, task, it))
    for q in it.questions:
        _question(ws, user, task, it, q)
    if st.session_state.get(_k(it, "decision")) == "edit" and _is_conversation(it):
        conversation_form(ws, user, task, it)
    elif st.session_state.get(_k(it, "decision")) == "edit":
        src = it.sample
        resp = src.output if src.kind != "conversation" else next(
            (m.get("content") for m in reversed(src.messages or []) if m.get("role") == "assistant"), "")
        st.session_state.setdefault(_k(it, "edit_response"), resp or "")
        st.text_area("Corrected response", key=_k(it, "edit_response"), height=150,
                     on_change=_autosave, args=(ws, user, task, it))
        st.text_area("Corrected instruction (optional)", key=_k(it, "edit_instruction"), height=80,
                     on_change=_autosave, args=(ws, user, task, it))

if (acc or rej) and _submit(ws, user, task, it, {**_answers(it), "decision": "accept" if acc else "reject"},
                           submit_slot):
    st.rerun()
if sub and _submit(ws, user, task, it, _answers(it), submit_slot):
    st.rerun()
if nxt:
    _autosave(ws, user, task, it)
    _load(ws, user, task, after=it.position)
    st.rerun()
if back:
    _autosave(ws, user, task, it)
    _load(ws, user, task, before=it.position, back=True)
    st.rerun()
