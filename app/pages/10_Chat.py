# page-icon: :material/chat:
"""Chat: talk to the base model or any finished run of the workspace (LoRA, QLoRA, DoRA, prefix,
P-tuning, prompt tuning, full fine-tune) with the template its run used, a system prompt from the
library, one run or two side by side; the page says which run, method and base model answered; a
good or bad answer goes to review with one click (a candidate in the ``chat-feedback`` staging
dataset).

Services: ``pipelines.serve.adapters`` (one base model per server; adapters attached on demand and
switched per request, one PEFT type at a time; a full fine-tune loaded from its own folder) and
``pipelines.serve.chat``. Widget keys start with ``chat_``.
"""
from __future__ import annotations

import dataclasses

import streamlit as st

from app import common
from pipelines import policy
from pipelines.serve import chat as C
from pipelines.serve.adapters import list_servable

BASE = "(base model)"
NONE = "(none)"
CUSTOM = "(custom text)"


@st.cache_resource(show_spinner="Loading the base model (once per server)...")
def _pool():
    from pipelines.serve.adapters import AdapterPool
    return AdapterPool()


def _targets(ws) -> dict[str, dict | None]:
    """``{name: servable row (pipelines.serve.adapters.describe) | None for the base model}``."""
    return {BASE: None, **{r["name"]: r for r in list_servable(ws)}}


def _path(target: dict | None) -> str | None:
    return target["path"] if target else None


def served_line(served: dict | None) -> str:
    """``run `run-a` · LoRA · base `SmolLM2-135M-Instruct``` (or the base model alone)."""
    if not served:
        return ""
    if served.get("kind") == "base":
        return f"base model `{served.get('base_model')}`, no adapter"
    return f"run `{served.get('name')}` · {served.get('method')} · base `{served.get('base_model') or '?'}`"


def _system_prompt_ui() -> tuple[str | None, str | None]:
    from pipelines.system_prompts import list_system_prompts

    lib = {p.name: p for p in list_system_prompts()}
    choice = st.selectbox("System prompt", [NONE, *lib, CUSTOM], key="chat_sys")
    if choice == NONE:
        return None, None
    if choice == CUSTOM:
        return st.text_area("System prompt text", key="chat_sys_text") or None, None
    info = lib[choice]
    fields = {}
    with st.expander(f"Fields of '{choice}'", expanded=bool(info.required)):
        st.caption(info.description)
        for f in info.fields:
            if f == "tools":
                continue
            v = st.text_input(f + (" (required)" if f in info.required else ""), key=f"chat_sys_{choice}_{f}")
            if v.strip():
                fields[f] = v.strip()
    return C.system_prompt(choice, **fields), choice


def _send_buttons(ws, user: str, key: str, answer: dict, can_flag: bool) -> None:
    if not can_flag:
        return
    c1, c2, _ = st.columns([1, 1, 4])
    for col, verdict, icon in ((c1, "good", ":material/thumb_up:"), (c2, "bad", ":material/thumb_down:")):
        if col.button(f"{verdict.capitalize()} → review", key=f"chat_send_{verdict}_{key}", icon=icon):
            with common.user_errors():
                num, sid = C.send_to_review(ws, C.Reply(**answer), verdict, user=user,
                                            system_prompt_name=st.session_state.get("chat_sys_name"))
                st.session_state.setdefault("chat_sent", []).append({"verdict": verdict, "sample_id": sid,
                                                                     "version": num})
                st.success(f"Sent to review as {verdict}: sample {sid} of {C.CHAT_STAGING} v{num}",
                           icon=":material/check:")


def page() -> None:
    st.title("Chat")
    ws = common.workspace()
    common.require_workspace(ws)
    user = common.current_user()
    with common.user_errors(stop=True):
        role = C.role_of(ws, user)
        targets = _targets(ws)
    can_flag = policy.can(role, "annotate")
    with st.sidebar:
        two = st.toggle("Side by side", key="chat_two")
        names = list(targets)
        a = st.selectbox("Model" if not two else "Left", names, key="chat_a")
        b = st.selectbox("Right", names, index=min(1, len(names) - 1), key="chat_b") if two else None
        max_new = st.slider("Max new tokens", 4, 256, 64, key="chat_max_new")
        system, sys_name = _system_prompt_ui()
        st.session_state["chat_sys_name"] = sys_name
        if st.button("New conversation", key="chat_reset", icon=":material/restart_alt:"):
            st.session_state["chat_turns"] = []
        last = st.session_state.get("chat_last_served")
        if last:
            st.caption(f"Loaded now: {served_line(last)}")
    chosen = [a] + ([b] if two else [])
    turns = st.session_state.setdefault("chat_turns", [])  # [{"user": str, "answers": {target: Reply dict}}]
    cols = st.columns(len(chosen))
    for col, name in zip(cols, chosen):
        with col:
            tpl_note = ""
            with common.user_errors():
                tpl = C.serving_template(_path(targets[name]), None if targets[name] else _pool())
                tpl_note = f" · template `{tpl.name}`"
            st.subheader(name)
            target = targets[name]
            st.caption((served_line(target) if target else f"base model `{_pool().base_path.name}`, no adapter")
                       + tpl_note)
            for i, t in enumerate(turns):
                with st.chat_message("user"):
                    st.text(t["user"])
                ans = t["answers"].get(name)
                if ans:
                    with st.chat_message("assistant"):
                        st.text(ans["text"])
                        st.caption(f"{ans['new_tokens']} tokens in {ans['seconds']:.1f} s"
                                   + (f" · answered by {served_line(ans.get('served'))}" if ans.get("served") else ""))
                        _send_buttons(ws, user, f"{i}_{name}", ans, can_flag)
    prompt = st.chat_input("Message", key="chat_input")
    if prompt:
        pool = _pool()
        answers = {}
        with common.user_errors():
            for name in chosen:
                history = []
                for t in turns:
                    history.append({"role": "user", "content": t["user"]})
                    if t["answers"].get(name):
                        history.append({"role": "assistant", "content": t["answers"][name]["text"]})
                history.append({"role": "user", "content": prompt})
                path = _path(targets[name])
                r = C.reply(pool, name if path else None, history, adapter_path=path, system=system,
                            max_new_tokens=max_new)
                answers[name] = dataclasses.asdict(r)
                st.session_state["chat_last_served"] = r.served
            turns.append({"user": prompt, "answers": answers})
            st.rerun()


page()
