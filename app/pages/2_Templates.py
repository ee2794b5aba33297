# page-icon: :material/data_object:
"""Templates: a sample rendered through a chat or instruction template, each role's text
marked, the token count and the loss mask over the tokens; a custom template edited with
live validation (syntax, sandbox) and, where the pipeline offers it, the preflight result.

Reads go through ``pipelines.catalog``; rendering, spans and masks through
``pipelines.render``; the tokenizer is the embedded model's (``pipelines.models``), loaded
once per server (``st.cache_resource``). Widget keys start with ``tpl_`` so they never meet
the Datasets page's.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import streamlit as st

from app import common
from app import template_view as tv
from datastore import WorkbenchError
from pipelines import catalog
from pipelines.render import (
    TemplateRenderError,
    TemplateSecurityError,
    add_template,
    get_template,
    list_templates,
    template_info,
)

SAMPLE_CHOICES = 200  # samples offered in the picker; any other is reached by its id
SELECT_WIDTH_PX = 420
CUSTOM = "Custom template"
RENDER_KINDS = ("chat", "instruction")
SAVE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@st.cache_resource(show_spinner="Loading the tokenizer…")
def tokenizer():
    """The embedded model's tokenizer, shared by every session of this server."""
    from pipelines.models import load_tokenizer
    return load_tokenizer()


def _tokenizer_or_none():
    try:
        return tokenizer()
    except Exception as e:  # noqa: BLE001 - the page still renders text without tokens
        st.warning(f"The tokenizer is unavailable, so tokens and the loss mask are not shown: {e}",
                   icon=":material/warning:")
        return None


def _dataset_changed() -> None:
    for k in ("tpl_version", "tpl_sample", "tpl_sample_id"):
        st.session_state.pop(k, None)


def _version_changed() -> None:
    for k in ("tpl_sample", "tpl_sample_id"):
        st.session_state.pop(k, None)


def _save_custom() -> None:
    """Validate the editor's text and register it as ``templates/<kind>/<name>.jinja``
    (``pipelines.render.add_template``), then pick it; the outcome is kept for the next run."""
    name = (st.session_state.get("tpl_save_name") or "").strip()
    kind = st.session_state.get("tpl_custom_kind", "chat")
    if not SAVE_NAME_RE.match(name):
        st.session_state["tpl_save_msg"] = ("error", "Name the template with letters, digits, '.', '-' or '_' "
                                            "(at most 64, starting with a letter or digit).")
        return
    try:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / f"{name}.jinja"
            src.write_text(st.session_state.get("tpl_custom_text", ""), encoding="utf-8")
            t = add_template(src, kind=kind, name=name)
    except WorkbenchError as e:
        st.session_state["tpl_save_msg"] = ("error", f"Not saved: {e}")
        return
    st.session_state["tpl_save_msg"] = ("success", f"Saved as `{t.kind}/{t.name}` ({t.path}).")
    st.session_state["tpl_template"] = f"{t.kind}/{t.name}"


def _load_into_editor() -> None:
    name = st.session_state.get("tpl_custom_start")
    if name:
        t = get_template(name)
        st.session_state["tpl_custom_text"] = t.text
        st.session_state["tpl_custom_kind"] = t.kind


# ---------------------------------------------------------------- pickers
def _first_user(sample) -> str:
    turns = sample.turns()
    text = next((t.get("content") for t in turns if t.get("role") == "user"), None)
    return common.content_text(text if text is not None else (turns[0].get("content") if turns else None))


def pick_sample(ws):
    """Dataset, version and sample pickers; returns ``(name, version, sample)``."""
    with common.user_errors(stop=True):
        datasets = catalog.list_datasets(ws)
    if not datasets:
        st.info("This workspace has no datasets yet. Import one with `wb import`.", icon=":material/inbox:")
        st.stop()
    c1, c2 = st.columns(2)
    name = c1.selectbox("Dataset", [d["name"] for d in datasets], key="tpl_dataset",
                        on_change=_dataset_changed)
    with common.user_errors(stop=True):
        log = catalog.dataset_log(ws, name)
    if not log:
        st.info(f"Dataset '{name}' has no versions yet.")
        st.stop()
    number = c2.selectbox("Version", [v.number for v in log], key="tpl_version", on_change=_version_changed,
                          format_func=lambda n: f"v{n}" + (" (head)" if n == log[0].number else ""))
    v = next(x for x in log if x.number == number)
    with common.user_errors(stop=True):
        _, rows = catalog.sample_page(ws, name, number, after_id=0, limit=SAMPLE_CHOICES)
    if not rows:
        st.info(f"v{number} of '{name}' has no samples.")
        st.stop()
    c3, c4 = st.columns([3, 1])
    by_id = {s.sample_id: s for s in rows}
    picked = c3.selectbox(
        "Sample", list(by_id), key="tpl_sample",
        format_func=lambda i: f"#{i} · {by_id[i].kind} · {common.preview(_first_user(by_id[i]), 70)}",
        help=f"The first {len(rows)} samples of the version; type an id on the right for any other.")
    sample_id = c4.number_input("…or sample id", min_value=1, value=None, step=1, key="tpl_sample_id",
                                placeholder="e.g. 42")
    sample = by_id[picked]
    if sample_id is not None and sample_id != picked:
        with common.user_errors(stop=True):
            _, found = catalog.sample_page(ws, name, number, after_id=int(sample_id) - 1, limit=1)
        if not found:
            st.warning(f"No sample #{sample_id} or later in v{number}; showing #{picked}.")
        else:
            sample = found[0]
            if sample.sample_id != sample_id:
                st.warning(f"v{number} has no sample #{sample_id}; showing the next one, #{sample.sample_id}.")
    return name, v, sample


def pick_template():
    """The template picker; returns ``(Template, False)`` for a registered template,
    ``((text, kind), True)`` for the custom one (built and validated by the caller), or
    ``(None, True)`` with a message when the custom text is empty."""
    registered = [t for t in list_templates() if t.kind in RENDER_KINDS]
    options = [f"{t.kind}/{t.name}" for t in registered] + [CUSTOM]
    choice = st.selectbox("Template", options, key="tpl_template", width=SELECT_WIDTH_PX,
                          help="Registered templates live in templates/chat and templates/instruction.")
    msg = st.session_state.pop("tpl_save_msg", None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])
    if choice != CUSTOM:
        t = next(t for t in registered if f"{t.kind}/{t.name}" == choice)
        info = template_info(t)
        st.caption(f"`{choice}` · version {info['version']} · sha256 `{info['sha256'][:12]}` · "
                   f"{common.md_escape(info['path'])}")
        return t, False
    return custom_editor(registered), True


def custom_editor(registered):
    # plain ChatML to start from, whatever sorts first (chatml-tools does)
    start = next((t for t in registered if t.kind == "chat" and t.name == "chatml"), registered[0] if registered else None)
    st.session_state.setdefault("tpl_custom_text", start.text if start else "")
    st.session_state.setdefault("tpl_custom_kind", "chat")
    with st.container(border=True):
        with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
            st.radio("Kind", RENDER_KINDS, key="tpl_custom_kind", horizontal=True,
                     help="chat: renders `messages`; instruction: renders the sample's fields "
                          "(`instruction`, `input`, `output`, `system`).")
            st.space("stretch")
            st.selectbox("Start from", [f"{t.kind}/{t.name}" for t in registered], key="tpl_custom_start",
                         width=260)
            st.button("Load into editor", key="tpl_load", icon=":material/download:", on_click=_load_into_editor)
        text = st.text_area("Jinja template", key="tpl_custom_text", height=260,
                            help="Rendered in a sandbox: Python internals are out of reach. Wrap what the "
                                 "model must learn in `{% generation %}…{% endgeneration %}`. "
                                 "Press Ctrl+Enter (or leave the box) to validate.")
        with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
            st.text_input("Template name", key="tpl_save_name", placeholder="my-template", width=260)
            st.button("Save as template", key="tpl_save", icon=":material/save:", on_click=_save_custom,
                      help="Validates the template and adds it to templates/<kind>/<name>.jinja, where "
                           "training and preflight can use it.")
    if not text.strip():
        st.info("The custom template is empty: type or load one.", icon=":material/edit_note:")
        return None
    return text, st.session_state["tpl_custom_kind"]


# ---------------------------------------------------------------- views
def show_validation(view: tv.RenderView | None, err: Exception | None, tpl) -> None:
    if isinstance(err, TemplateSecurityError):
        msg = str(err).rstrip(".")
        if "sandbox" not in msg:
            msg += ". Templates run in a sandbox and cannot reach Python internals"
        st.error(f"Security: {msg}.", icon=":material/gpp_bad:")
    elif err is not None:
        st.error(f"Invalid template: {err}", icon=":material/error:")
    elif view is not None:
        st.success(f"Valid: renders this sample to {len(view.text):,} characters.", icon=":material/check_circle:")
        if tpl is not None and not getattr(tpl, "has_generation_markers", True):
            st.info("No `{% generation %}` block: the loss mask is taken from what each assistant turn "
                    "adds to the prompt before it. Mark the learned text explicitly to be sure.",
                    icon=":material/info:")


def show_view(view: tv.RenderView, tok) -> None:
    if view.note:
        st.warning(f"Nothing to learn: {view.note}. Training refuses this sample with this template.",
                   icon=":material/warning:")
    c = st.columns(4)
    c[0].metric("Characters", f"{len(view.text):,}")
    if tok is not None:
        c[1].metric("Tokens", f"{len(view.ids):,}", help="Embedded tokenizer, no special tokens added "
                    "beyond what the template writes.")
        c[2].metric("Learned tokens", f"{view.n_learned:,}", help="Tokens with a label (loss on).")
        c[3].metric("Masked tokens", f"{len(view.ids) - view.n_learned:,}", help="Label -100 (loss off).")

    st.subheader("Rendered text")
    labels = list(dict.fromkeys(p[2] for p in view.pieces if p[2] is not None))
    st.markdown(tv.legend_html(labels), unsafe_allow_html=True)
    st.markdown(tv.rendered_html(view), unsafe_allow_html=True)
    if len(view.text) > tv.MAX_CHARS_SHOWN:
        st.caption(f"Showing the first {tv.MAX_CHARS_SHOWN:,} of {len(view.text):,} characters; "
                   "the raw text below is complete.")
    st.dataframe(tv.part_mask(view), hide_index=True,
                 column_config={"characters": st.column_config.NumberColumn(format="localized"),
                                "learned characters": st.column_config.NumberColumn(format="localized")})
    with st.expander("Raw text", icon=":material/notes:"):
        st.code(view.text, language=None, wrap_lines=True)

    if tok is None:
        return
    st.subheader("Tokens and loss mask")
    n = len(view.ids)
    note = (f"First {tv.MAX_TOKENS_SHOWN:,} of {n:,} tokens shown." if n > tv.MAX_TOKENS_SHOWN
            else f"All {n:,} tokens.")
    st.caption(f"{note} Green chips are learned (label = token id); grey chips are masked (label −100). "
               "Hover a chip for its index and id; `·` is a space, `↵` a newline.")
    st.markdown(tv.tokens_html(tok, view.ids, view.labels), unsafe_allow_html=True)
    with st.expander("Mask as runs", icon=":material/table_rows:"):
        st.dataframe([{**r, "learned": "yes" if r["learned"] else "no"} for r in tv.mask_runs(view.labels)],
                     hide_index=True, width="stretch")


def _preflight_fn():
    try:
        from pipelines.preflight import run_preflight
    except ImportError:
        return None
    return run_preflight


def show_preflight(ws, name: str, v, tpl, tok) -> None:
    """The preflight of the chosen chat template on the chosen version, when the pipeline
    offers ``run_preflight`` (guarded so the page works without it). The report is kept in
    the session for the same template, version and options, so other widgets do not lose it."""
    run_preflight = _preflight_fn()
    if run_preflight is None or tpl is None:
        return
    st.subheader("Preflight")
    if tpl.kind != "chat":
        st.caption("Preflight checks chat templates (training renders conversations).")
        return
    if tpl.path is None:
        st.info("Preflight checks a saved template against the whole version: save this one above "
                "(**Save as template**) to run it.", icon=":material/rule:")
        return
    st.caption(f"Check `{tpl.kind}/{tpl.name}` against the samples of {common.md_escape(name)} v{v.number} "
               f"({v.n_samples:,} samples) with the embedded tokenizer: train/serve parity, BOS/EOS, empty masks, "
               "control-token text, length.")
    serve_opts = ["tokenizer"] + [f"chat/{t.name}" for t in list_templates("chat")]
    with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
        serve = st.selectbox("Serving template", serve_opts, key="tpl_pf_serve", width=220,
                             help="`tokenizer`: the tokenizer's own chat template, as a server would use.")
        max_len = st.number_input("Max length (tokens)", min_value=8, value=2048, step=256, key="tpl_pf_max",
                                  width=170)
        policy = st.selectbox("Over length", ["drop", "truncate", "fail"], key="tpl_pf_policy", width=130)
        limit = st.number_input("Samples to check", min_value=1, value=min(max(v.n_samples, 1), 500), step=100,
                                key="tpl_pf_limit", width=170)
        clicked = st.button("Run preflight", icon=":material/rule:", key="tpl_preflight")
    key = (tpl.sha256, name, v.number, serve, int(max_len), policy, int(limit))
    kept = st.session_state.get("tpl_pf_report")
    if clicked:
        kept = None
        with common.user_errors(), st.spinner("Running preflight…"):
            rep = run_preflight(ws, name, v.number, train_template=f"{tpl.kind}/{tpl.name}",
                                serve_template=serve.split("/", 1)[-1] if serve != "tokenizer" else "tokenizer",
                                max_length_tokens=int(max_len), over_length_policy=policy, limit=int(limit),
                                tokenizer=tok)
            kept = (key, rep)
            st.session_state["tpl_pf_report"] = kept
    if kept and kept[0] == key:
        _show_report(kept[1])


def _show_report(rep) -> None:
    if rep.has_errors:
        st.error("Preflight found errors: training with this template would stop.", icon=":material/error:")
    else:
        st.success("Preflight passed: no errors.", icon=":material/check_circle:")
    c = st.columns(3)
    c[0].metric("Samples checked", f"{rep.samples_checked:,}")
    c[1].metric("Errors", f"{sum(i.count for i in rep.issues.values() if i.severity == 'error'):,}")
    c[2].metric("Warnings", f"{sum(i.count for i in rep.issues.values() if i.severity == 'warning'):,}")
    st.dataframe([{"issue": i.name, "severity": i.severity, "samples": i.count, "what": i.description,
                   "first ids": ", ".join(map(str, i.sample_ids))} for i in rep.issues.values()],
                 hide_index=True, width="stretch",
                 column_config={"samples": st.column_config.NumberColumn(width="small"),
                                "severity": st.column_config.TextColumn(width="small")})
    with st.expander("Full report", icon=":material/description:"):
        st.code("\n".join(rep.summary_lines()), language=None, wrap_lines=True)


# ---------------------------------------------------------------- page
ws = common.workspace()
st.title("Templates")
st.caption("Render a sample through a chat or instruction template: each role's text, the token count "
           "and the loss mask the trainer will use. Edit a custom template and see it validated as you go.")
common.require_workspace(ws)

name, version, sample = pick_sample(ws)
source, is_custom = pick_template()
if source is None:
    st.stop()

tok = _tokenizer_or_none()
tpl, view, err = None, None, None
try:
    tpl = tv.custom_template(*source) if is_custom else source
    view = tv.build_view(sample, tpl, tok)
except (TemplateRenderError, WorkbenchError) as e:
    err = e
except Exception as e:  # noqa: BLE001 - e.g. a template bug jinja reports as another type
    if type(e).__module__.startswith("streamlit"):
        raise
    err = e

if is_custom:
    show_validation(view, err, tpl)
elif err is not None:
    st.error(str(err), icon=":material/error:")
if view is not None:
    show_view(view, tok)
if err is None:
    show_preflight(ws, name, version, tpl, tok)
