"""Helpers shared by the Streamlit pages: which workspace, errors as messages, samples as turns.

No SQL here and no ``duckdb`` import: pages read through ``pipelines.catalog``, whose
functions open the workspace's DuckDB file for one call and close it again, so the app
never holds the file between renders (docs/architecture.md section 2, "One writer").
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import streamlit as st

from datastore import Sample, WorkbenchError, default_workspace
from datastore.samples import MESSAGE_KINDS
from datastore.store import DB_NAME
from pipelines.formats.base import RowError
from pipelines.formats.conversation import check_roles

log = logging.getLogger("workbench.app")

WORKSPACE_KEY = "workspace"
# Longest text shown in full inside a turn; longer texts show this much and a
# "show all" expander, so one 200K-character output does not swamp the page.
PREVIEW_CHARS = 4000

ROLE_AVATARS = {
    "user": ":material/person:",
    "assistant": ":material/smart_toy:",
    "tool": ":material/build:",
    "system": ":material/settings:",
}

BADGE_FIELDS = ["task_type", "language", "difficulty", "policy_domain"]
NESTED_FIELDS = ["lineage", "extra"]
META_FIELDS = ["source", "source_row", "license", "task_type", "language", "difficulty",
               "quality_score", "policy_domain", "tags", "annotator_ids", "lineage", "extra"]


# ---------------------------------------------------------------- workspace
def workspace_from_args(argv: Sequence[str] | None = None) -> Path:
    """The workspace folder: ``--workspace DIR`` among the script arguments (what follows
    ``--`` in ``streamlit run app/Workbench.py -- --workspace DIR``), else ``$WB_WORKSPACE``,
    else ``./workspace``. Unknown arguments are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--workspace", default=None)
    args, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return Path(args.workspace) if args.workspace else default_workspace()


def workspace() -> Path:
    """This session's workspace, resolved once and kept in ``st.session_state``."""
    if not st.session_state.get(WORKSPACE_KEY):
        st.session_state[WORKSPACE_KEY] = str(workspace_from_args())
    return Path(st.session_state[WORKSPACE_KEY])


def workspace_exists(ws: Path) -> bool:
    """True when the folder holds a workspace database (checked without opening it, so
    browsing never creates an empty workspace by accident)."""
    return (ws / DB_NAME).is_file()


def require_workspace(ws: Path) -> None:
    """Stop the page with a message when ``ws`` holds no workspace yet."""
    if not workspace_exists(ws):
        st.info(f"No workspace at `{ws}` yet. Create one with `wb --workspace {ws} init` or import "
                "a dataset, or start the app with `-- --workspace DIR`.", icon=":material/folder_off:")
        st.stop()


# ---------------------------------------------------------------- errors
@contextlib.contextmanager
def user_errors(stop: bool = False) -> Iterator[None]:
    """Show a :class:`WorkbenchError` as ``st.error`` (its one-line message) instead of a
    traceback; any other exception becomes a short message too and is logged in full on
    the server. With ``stop`` the page ends there."""
    try:
        yield
    except WorkbenchError as e:
        st.error(str(e), icon=":material/error:")
        if stop:
            st.stop()
    except Exception as e:  # noqa: BLE001 - the user gets a message, the log gets the traceback
        if type(e).__module__.startswith("streamlit"):
            raise  # st.stop / st.rerun / page switches are control flow, not errors
        log.exception("unexpected error while rendering a page")
        st.error(f"Unexpected error ({type(e).__name__}): {e}. The full traceback is in the server log.",
                 icon=":material/error:")
        if stop:
            st.stop()


# ---------------------------------------------------------------- formatting
def fmt_time(t: datetime | None, *, utc: bool = True) -> str:
    """Stored times are naive UTC; ``utc`` appends the zone."""
    return (f"{t:%Y-%m-%d %H:%M}" + (" UTC" if utc else "")) if t else ""


def content_text(content) -> str:
    """A message content as plain text: text as is, typed parts as their text parts joined by
    a space (media parts left out), anything else as ``""``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def preview(text, n: int = 80) -> str:
    """``text`` on one line, cut to ``n`` characters with "…"; message content given as typed
    parts previews its text parts (:func:`content_text`)."""
    text = " ".join(content_text(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:")


def md_escape(value) -> str:
    """``value`` as literal text inside Streamlit Markdown (no emphasis, links, code,
    ``:color[...]`` directives or shortcodes), on one line."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in " ".join(str(value).split()))


def md_code(value) -> str:
    """``value`` as an inline code span (backslash escapes are literal inside code, so
    :func:`md_escape` would show "call\\_1"): fenced with one backtick more than the longest run
    inside it."""
    text = " ".join(str(value).split())
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def badge_text(value) -> str:
    """A value made safe inside a ``:color-badge[...]`` directive."""
    return md_escape(str(value).replace("[", "(").replace("]", ")"))


def changed_fields(old: Sample, new: Sample) -> list[str]:
    """Names of the content and metadata fields that differ between two revisions."""
    fields = ["kind", "system", "instruction", "input", "output", "history", "messages", *META_FIELDS]
    return [f for f in fields if getattr(old, f) != getattr(new, f)]


def sample_metadata(s: Sample) -> dict:
    """The sample's non-empty metadata fields, in a fixed order."""
    return {f: getattr(s, f) for f in META_FIELDS if getattr(s, f) not in (None, [], {}, "")}


def metadata_line(s: Sample, meta: dict | None = None) -> str:
    """The flat metadata not shown as badges, plus the row hash, as one caption line."""
    meta = sample_metadata(s) if meta is None else meta
    parts = []
    if "source" in meta:
        row = f" row {meta['source_row']}" if "source_row" in meta else ""
        parts.append(f"source {md_escape(meta['source'])}{row}")
    if "license" in meta:
        parts.append(f"license {md_escape(meta['license'])}")
    if "annotator_ids" in meta:
        parts.append("annotators " + md_escape(", ".join(map(str, meta["annotator_ids"]))))
    if s.row_hash:
        parts.append(f"hash `{s.row_hash[:12]}`")
    return " · ".join(parts)


# ---------------------------------------------------------------- rendering
def _text(content, markdown: bool) -> None:
    if content is None or content == "":
        st.caption("(empty)")
        return
    if isinstance(content, list):
        _parts(content, markdown)
        return
    if not isinstance(content, str):  # not a shape a message holds: show it as data
        st.json(content, expanded=False)
        return
    shown = content if len(content) <= PREVIEW_CHARS else content[:PREVIEW_CHARS]
    (st.markdown if markdown else st.text)(shown)
    if len(content) > PREVIEW_CHARS:
        with st.expander(f"Show all {len(content):,} characters"):
            (st.markdown if markdown else st.text)(content)


# Typed content parts that are not text: the key holding their payload and an icon. Shapes
# from the OpenAI chat API (``image_url``, ``input_audio``, ``file``) and transformers'
# multimodal chat templates (``image``, ``audio``, ``video`` with ``url``/``path``).
_MEDIA_ICONS = {"image": ":material/image:", "image_url": ":material/image:", "audio": ":material/mic:",
                "input_audio": ":material/mic:", "video": ":material/movie:", "file": ":material/attach_file:"}


def media_label(part: dict) -> str:
    """A one-line placeholder for an image, audio, video or file part: its type and where the
    data is (URL or path), or the size of inline data (a data: URL or base64 ``data``)."""
    kind = str(part.get("type") or "part")
    payload = part.get(kind) if isinstance(part.get(kind), (dict, str)) else None
    fields = payload if isinstance(payload, dict) else {"url": payload} if isinstance(payload, str) else {}
    where = next((fields.get(k) or part.get(k) for k in ("url", "path", "file_id", "filename")
                  if fields.get(k) or part.get(k)), None)
    data = fields.get("data") or part.get("data") or part.get("base64")
    if isinstance(where, str) and (where.startswith("data:") or (len(where) > 200 and "/" not in where[:200])):
        data, where = where, None   # inline data (a data: URL or bare base64), not a location
    bits = [kind.replace("_", " ")]
    if isinstance(where, str):
        bits.append(where if len(where) <= 200 else where[:199] + "…")
    if isinstance(data, str):
        bits.append(f"{len(data):,} characters of inline data")
    fmt = fields.get("format") or fields.get("mime_type")
    if isinstance(fmt, str):
        bits.append(fmt)
    return " · ".join(bits)


def _parts(parts: list, markdown: bool) -> None:
    """Content given as typed parts: text parts as text, media as a labelled placeholder."""
    if not parts:
        st.caption("(empty)")
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" or (kind is None and isinstance(part, dict) and isinstance(part.get("text"), str)):
            _text(part.get("text"), markdown)
        elif kind in _MEDIA_ICONS or (isinstance(kind, str) and kind.startswith(("image", "audio", "video"))):
            st.caption(f"{_MEDIA_ICONS.get(kind, ':material/attachment:')} {md_escape(media_label(part))}")
        else:
            st.json(part, expanded=False)


def arguments_json(arguments) -> tuple[str, bool]:
    """A tool call's arguments as pretty JSON text for display: ``(text, valid)``. Arguments
    stored as a JSON string are parsed for display only; a string that is not JSON comes back
    as written with ``valid`` False."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments, False
    return json.dumps(arguments, indent=2, ensure_ascii=False), True


def _tool_calls(calls) -> None:
    for call in calls if isinstance(calls, list) else [calls]:
        if not isinstance(call, dict):
            st.json(call, expanded=False)
            continue
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        ident = f" · {md_code(call['id'])}" if call.get("id") else ""
        st.markdown(f"🔧 **{md_escape(fn.get('name') or '(no name)')}**{ident}")
        text, valid = arguments_json(fn.get("arguments"))
        if not valid:
            st.warning("The arguments are not valid JSON; shown as written.", icon=":material/warning:")
        st.code(text, language="json" if valid else None)


def _tools(tools) -> None:
    if isinstance(tools, str):   # not JSON: as written
        with st.expander("Tools (not valid JSON)", icon=":material/build:", expanded=False):
            st.code(tools, language=None)
        return
    tools = tools if isinstance(tools, list) else [tools]
    names = [((t.get("function") or t).get("name") if isinstance(t, dict) else None) for t in tools]
    shown = [md_escape(n) for n in names if isinstance(n, str)]
    label = f"Tools ({len(tools)})" + (": " + ", ".join(shown) if shown else "")
    with st.expander(label, icon=":material/build:", expanded=False):
        st.code(json.dumps(tools, indent=2, ensure_ascii=False), language="json")


def reasoning_of(message: dict):
    """A message's reasoning: ``reasoning_content``, else a ``thinking`` key (as some sources
    name it), else None."""
    r = message.get("reasoning_content")
    return r if r is not None else message.get("thinking")


def render_turns(turns: list[dict], *, markdown: bool = False, tools: list | str | None = None) -> None:
    """One ``st.chat_message`` per turn, each message shown whole as its turn.

    Args:
        turns: message dicts (role, content as text, None or typed parts, ``tool_calls``,
            ``tool_call_id``, ``name``, ``reasoning_content`` or ``thinking``).
        markdown: render text as Markdown (else verbatim, ``st.text``).
        tools: the conversation's tool schemas, shown first in a collapsed expander (text
            that is not JSON is shown as written).

    A system prompt is set apart: a bordered box labelled "System prompt" above the
    conversation. Reasoning sits in a collapsed "Reasoning" expander above the answer; each
    tool call shows its function name and its arguments as indented JSON; a tool result is
    labelled with the call id and the function name it answers; image and audio parts are a
    labelled placeholder with their URL or size.
    """
    if tools:
        _tools(tools)
    called = {}   # call id -> function name, for a tool result that does not name its function
    for t in turns:
        for call in t.get("tool_calls") or [] if isinstance(t.get("tool_calls"), list) else []:
            fn = call.get("function") if isinstance(call, dict) and isinstance(call.get("function"), dict) else call
            if isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(fn, dict):
                called.setdefault(call["id"], fn.get("name"))
    for i, t in enumerate(turns):
        role = str(t.get("role") or "unknown").lower()
        content = t.get("content")
        if role == "system":
            with st.container(border=True):
                label = "System prompt" if i == 0 else "System (mid-conversation)"
                st.caption(f":material/settings: **{label}**")
                _text(content, markdown)
            continue
        with st.chat_message(role, avatar=ROLE_AVATARS.get(role)):
            if role == "tool":
                name = t.get("name") or called.get(t.get("tool_call_id"))
                about = [f"call {md_code(t['tool_call_id'])}" if t.get("tool_call_id") else "",
                         f"**{md_escape(name)}**" if isinstance(name, str) and name else ""]
                st.caption(" · ".join(["**tool result**", *(a for a in about if a)]))
            elif role not in ("user", "assistant"):
                st.caption(f"**{md_escape(role)}**")
            reasoning = reasoning_of(t)
            if reasoning not in (None, ""):
                with st.expander("Reasoning", expanded=False, icon=":material/psychology:"):
                    _text(reasoning, markdown)
            calls = t.get("tool_calls")
            if not (calls and content in (None, "", [])):   # a pure tool call has no "(empty)" text
                _text(content, markdown)
            if calls:
                _tool_calls(calls)


def sample_conversation(s: Sample) -> tuple[list[dict], list | str | None, str | None]:
    """What a sample shows as turns: ``(messages, tools, problem)``: its messages whole
    (:meth:`datastore.samples.Sample.turns`, the system column first) and its tool schemas
    (``extra["tools"]``; text as a LLaMA-Factory ShareGPT file holds it is parsed). Tools text
    that is not JSON comes back as written, with ``problem`` saying so."""
    tools = (s.extra or {}).get("tools") if s.kind in MESSAGE_KINDS else None
    problem = None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else None
        except json.JSONDecodeError as e:
            problem = f"sample {s.sample_id}: field tools is not valid JSON ({e.msg} at character {e.pos}); shown as written"
    return s.turns(), tools, problem


def render_edit(edit: dict, sample: Sample | None) -> None:
    """A reviewer's edit answer: corrected instruction / response as text, and of an edited
    conversation only the messages that differ from ``sample`` (each as its turn, with its
    index) and the tools when they changed."""
    st.caption("Corrected text")
    for k, v in edit.items():
        if k not in ("messages", "tools"):
            st.text(f"{k}: {v}")
    stored = (sample.messages or []) if sample is not None else []
    msgs = edit.get("messages")
    if isinstance(msgs, list):
        for i, m in enumerate(msgs):
            if isinstance(m, dict) and (i >= len(stored) or m != stored[i]):
                st.caption(f"message {i} (edited)")
                render_turns([m])
    if "tools" in edit:
        st.caption("tools (edited)")
        tools = edit["tools"]
        if tools:
            render_turns([], tools=tools)
        else:
            st.caption("(removed)")


def conversation_warnings(s: Sample) -> list[str]:
    """Role-order problems of a conversation sample, as found by
    ``pipelines.formats.conversation.check_roles`` (starts with the assistant, two
    consecutive turns of one role, a system turn after the first, ends on a user turn...);
    empty for other kinds of sample."""
    if s.kind != "conversation":
        return []
    roles = [str(m.get("role") or "unknown").lower() for m in (s.messages or [])]
    try:
        return check_roles(roles)
    except RowError as e:  # an empty conversation
        return [str(e)]


def render_sample(s: Sample, *, markdown: bool = False) -> None:
    """A sample in a bordered card: id, kind and the main metadata as badges, the turns,
    then a caption with the remaining flat metadata and, only when the sample has them,
    an expander with its nested metadata (lineage, extra). Few elements per sample keep a
    50-sample page quick to paint."""
    meta = sample_metadata(s)
    with st.container(border=True):
        badges = [f"**#{s.sample_id}**", f":blue-badge[{s.kind}]"]
        for f in BADGE_FIELDS:
            if f in meta:
                badges.append(f":gray-badge[{f.replace('_', ' ')}: {badge_text(meta[f])}]")
        if meta.get("quality_score") is not None:
            badges.append(f":green-badge[quality {meta['quality_score']:.2f}]")
        for tag in meta.get("tags") or []:
            badges.append(f":violet-badge[{badge_text(tag)}]")
        for w in conversation_warnings(s):
            badges.append(f":orange-badge[:material/warning: {badge_text(w)}]")
        st.markdown(" ".join(badges))
        messages, tools, problem = sample_conversation(s)
        if problem:
            st.warning(problem, icon=":material/warning:")
        render_turns(messages, markdown=markdown, tools=tools)
        st.caption(metadata_line(s, meta))
        nested = {k: meta[k] for k in NESTED_FIELDS if k in meta}
        if nested:
            with st.expander(" and ".join(nested), icon=":material/account_tree:"):
                for k, value in nested.items():  # the dicts themselves, not {"extra": {...}}
                    if len(nested) > 1:
                        st.caption(f"**{k}**")
                    st.json(value, expanded=2)


# ---------------------------------------------------------------- acting user
USER_KEY = "user"


def current_user() -> str:
    """The signed-in user's name for this browser session.

    Pages pass it to every service function, which checks the permission itself
    (``pipelines.policy.require``). Until a user signs in: ``$WB_USER``, else the local admin
    while the workspace has no users (service functions raise ``NotFound`` otherwise).
    """
    import os

    from pipelines.workspace import current_user as _cu
    if st.session_state.get(USER_KEY):
        return st.session_state[USER_KEY]
    return _cu(workspace(), os.environ.get("WB_USER"))


# ---------------------------------------------------------------- sign-in
ROLE_KEY = "user_role"


def needs_login(ws: Path) -> bool:
    """True when the workspace has users and nobody is signed in in this browser session
    (a workspace without users is used as the local admin, as before)."""
    from pipelines import auth
    if st.session_state.get(USER_KEY):
        return False
    if not workspace_exists(ws):
        return False
    return auth.has_users(ws)


def login_form(ws: Path) -> None:
    """The sign-in form: checks the password with ``pipelines.auth.authenticate`` (Argon2)
    and keeps the user's name in ``st.session_state[USER_KEY]``."""
    from pipelines import auth
    st.title("Instruction Workbench")
    st.subheader("Sign in")
    with st.form("login", border=True, width=420):
        name = st.text_input("User name", key="login_name", autocomplete="username")
        # a sign-in field: the browser offers the saved password (Streamlit's default for a
        # password input is "new-password", which makes it suggest a fresh one instead)
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        ok = st.form_submit_button("Sign in", type="primary")
    if ok:
        with user_errors():
            who, role = auth.authenticate(ws, name.strip(), password)
            st.session_state[USER_KEY] = who
            st.session_state[ROLE_KEY] = role
            st.rerun()
    st.caption(f"Workspace `{ws}`. Users are managed with `wb user add NAME --role R` or on the Users page.")


def current_role() -> str:
    """The role of :func:`current_user` (``admin`` for the local admin)."""
    from datastore import Store
    from datastore import users as U
    ws = workspace()
    if not workspace_exists(ws):
        return "admin"
    with Store(ws, create=False) as s:
        return U.get_role(s, current_user())[1]


def sign_out() -> None:
    for k in (USER_KEY, ROLE_KEY):
        st.session_state.pop(k, None)


def user_badge() -> None:
    """"Signed in as NAME (role)" and a sign-out button, in the sidebar."""
    name = st.session_state.get(USER_KEY)
    if not name:
        return
    with st.sidebar:
        st.caption(f":material/person: Signed in as **{md_escape(name)}** ({st.session_state.get(ROLE_KEY, '')})")
        st.button("Sign out", key="sign_out", on_click=sign_out, icon=":material/logout:")
