# page-icon: :material/table_view:
"""Datasets: every dataset, a dataset's version log, any version's samples paged by key,
statistics, and a row-level diff between two versions.

Reads go through ``pipelines.catalog`` (each call opens the workspace store and closes it).
Paging is by key: the page keeps a stack of ``after_id`` values in ``st.session_state``
(one stack per dataset version), so Next pushes the last id shown and Previous pops;
a page is one ``WHERE sample_id > after_id ORDER BY sample_id LIMIT 51`` read, whatever
the dataset's size, and no more than a page is ever held in memory.
"""
from __future__ import annotations

import streamlit as st

from app import common
from datastore import Version
from pipelines import catalog

PAGE_SIZE = 50
SELECT_WIDTH_PX = 480
DIFF_SHOWN = 10  # samples shown per kind of change in the diff view
STACKS_KEY = "sample_page_stacks"  # {"dataset@vN": [after_id, ...]}


# ---------------------------------------------------------------- state
def _stack(key: str) -> list[int]:
    stacks = st.session_state.setdefault(STACKS_KEY, {})
    return stacks.setdefault(key, [0])


def _next_page(key: str, last_id: int) -> None:
    _stack(key).append(last_id)


def _prev_page(key: str) -> None:
    stack = _stack(key)
    if len(stack) > 1:
        stack.pop()


def _first_page(key: str) -> None:
    st.session_state.setdefault(STACKS_KEY, {})[key] = [0]


OPEN_HEAD_KEY = "_open_head"  # set when the dataset changes: the next run selects the head


def _dataset_changed() -> None:
    # A new dataset opens at its head. The head is set (not the key popped) before the
    # Version selectbox is drawn, so Streamlit sends the value to the browser: popping
    # left the browser showing the old dataset's version and sending it back on the
    # next click (bug: Next jumped to that version's page 1).
    st.session_state[OPEN_HEAD_KEY] = True


def _version_label(v: Version, head: int) -> str:
    tags = f" [{', '.join(v.tags)}]" if v.tags else ""
    is_head = " (head)" if v.number == head else ""
    return f"v{v.number}{tags}{is_head} · {common.preview(v.message, 50) or 'no message'}"


# ---------------------------------------------------------------- sections
def datasets_table(datasets: list[dict]) -> None:
    rows = [{"name": d["name"], "kind": d["kind"], "versions": d["versions"], "samples": d["samples"],
             "content hash": d["content_hash"] or "", "updated (UTC)": common.fmt_time(d["updated_at"], utc=False),
             "description": d["description"] or ""} for d in datasets]
    if not any(r["description"] for r in rows):
        for r in rows:
            del r["description"]
    st.dataframe(
        rows, hide_index=True, width="stretch",
        column_config={
            "versions": st.column_config.NumberColumn(width="small"),
            "samples": st.column_config.NumberColumn(format="localized", width="small"),
            "content hash": st.column_config.TextColumn(help="First 12 hex digits of the head "
                                                        "version's content hash"),
        })


def version_log_table(log: list[Version]) -> None:
    st.dataframe(
        # No version id column (the caption under the Version selectbox shows it): with it the
        # last columns were clipped at 1400 px.
        [{"version": f"v{v.number}", "tags": ", ".join(v.tags),
          "author": v.author, "message": v.message or "", "time (UTC)": common.fmt_time(v.created_at, utc=False),
          "samples": v.n_samples, "added": v.n_added, "removed": v.n_removed, "modified": v.n_modified}
         for v in log],
        hide_index=True, width="stretch",
        column_config={
            "version": st.column_config.TextColumn(width="small"),
            "tags": st.column_config.TextColumn(width=80),
            "author": st.column_config.TextColumn(width=100),
            "message": st.column_config.TextColumn(width=200),
            "time (UTC)": st.column_config.TextColumn(width=125),
            "samples": st.column_config.NumberColumn(format="localized", width=80),
            "added": st.column_config.NumberColumn("+ added", format="localized", width=80),
            "removed": st.column_config.NumberColumn("− removed", format="localized", width=90),
            "modified": st.column_config.NumberColumn("~ modified", format="localized", width=95),
        })


def pager(key: str, *, page_no: int, first: int, last: int, total: int, has_next: bool,
          last_id: int | None, where: str) -> None:
    """First / Previous / Next buttons and where we are; ``where`` keeps the keys of the
    top and bottom bars apart."""
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.button("First", key=f"first_{where}", icon=":material/first_page:", disabled=page_no == 1,
                  on_click=_first_page, args=(key,))
        st.button("Previous", key=f"prev_{where}", icon=":material/chevron_left:", disabled=page_no == 1,
                  on_click=_prev_page, args=(key,))
        st.button("Next", key=f"next_{where}", icon=":material/chevron_right:", icon_position="right",
                  disabled=not has_next, on_click=_next_page, args=(key, last_id))
        shown = f"samples {first:,}–{last:,} of {total:,}" if last else f"no samples ({total:,} in version)"
        st.markdown(f"Page **{page_no}** · {shown}", width="content")
        if where == "top":
            st.space("stretch")
            st.toggle("Render Markdown", key="render_markdown", persist_state="session",
                      help="Off: texts are shown verbatim. On: rendered as Markdown.")


def samples_view(ws, name: str, v: Version) -> None:
    key = f"{name}@v{v.number}"
    stack = _stack(key)
    with common.user_errors(stop=True):
        _, rows = catalog.sample_page(ws, name, v.number, after_id=stack[-1], limit=PAGE_SIZE + 1)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if not rows and len(stack) > 1:  # the page emptied under us: go back to the first
        _first_page(key)
        st.rerun()
    page_no = len(stack)
    first = (page_no - 1) * PAGE_SIZE + 1 if rows else 0
    info = dict(key=key, page_no=page_no, first=first, last=first + len(rows) - 1 if rows else 0,
                total=v.n_samples, has_next=has_next, last_id=rows[-1].sample_id if rows else None)
    pager(**info, where="top")
    markdown = st.session_state.get("render_markdown", False)
    if not rows:
        st.info("This version has no samples.")
        return
    for s in rows:
        common.render_sample(s, markdown=markdown)
    pager(**info, where="bottom")


def diff_view(ws, name: str, v: Version, log: list[Version]) -> None:
    others = [x.number for x in log if x.number != v.number]
    if not others:
        st.info(f"'{name}' has only one version: nothing to compare with.")
        return
    default = others.index(v.number - 1) if v.number - 1 in others else 0
    base = st.selectbox(f"Compare v{v.number} against", others, index=default,
                        format_func=lambda n: _version_label(next(x for x in log if x.number == n), log[0].number),
                        key=f"diff_base:{name}:v{v.number}", width=SELECT_WIDTH_PX)
    with common.user_errors(stop=True):
        d = catalog.version_diff(ws, name, base, v.number, with_samples=DIFF_SHOWN)
    a, b = d["a"], d["b"]
    c = st.columns(4)
    c[0].metric("Samples", f"{b.n_samples:,}", delta=b.n_samples - a.n_samples,
                help=f"v{a.number}: {a.n_samples:,} → v{b.number}: {b.n_samples:,}")
    c[1].metric("Added", f"{len(d['added']):,}")
    c[2].metric("Removed", f"{len(d['removed']):,}")
    c[3].metric("Modified", f"{len(d['modified']):,}")
    if not (d["added"] or d["removed"] or d["modified"]):
        st.success(f"v{a.number} and v{b.number} hold the same samples.")
        return
    md = st.session_state.get("render_markdown", False)
    for kind, verb in (("added", "Added in"), ("removed", "Removed in")):
        if d[kind]:
            st.subheader(f"{verb} v{b.number}")
            st.caption(f"First {len(d['samples'][kind])} of {len(d[kind]):,}.")
            for s in d["samples"][kind]:
                common.render_sample(s, markdown=md)
    if d["modified"]:
        st.subheader(f"Modified in v{b.number}")
        st.caption(f"First {len(d['samples']['modified'])} of {len(d['modified']):,}: "
                   f"v{a.number} on the left, v{b.number} on the right.")
        for old, new in d["samples"]["modified"]:
            changed = common.changed_fields(old, new)
            st.markdown(f"**#{new.sample_id}** changed: " + (", ".join(f"`{f}`" for f in changed) or "nothing visible"))
            left, right = st.columns(2)
            with left:
                common.render_sample(old, markdown=md)
            with right:
                common.render_sample(new, markdown=md)


def stats_view(ws, name: str, v: Version) -> None:
    with common.user_errors(stop=True):
        s = catalog.version_stats(ws, name, v.number)
    c = st.columns(4)
    c[0].metric("Samples", f"{s['samples']:,}")
    # datastore renamed "output_chars_mean" to "instruction_output_chars_mean"; accept both.
    mean = s.get("instruction_output_chars_mean", s.get("output_chars_mean", 0))
    c[1].metric("Output chars (mean)", f"{mean:,}")
    c[2].metric("Instructions without input", f"{s['instructions_without_input']:,}")
    c[3].metric("Prompt-only instructions", f"{s['prompt_only_instructions']:,}",
                help="Instruction samples with no output (nothing to train on).")
    st.caption(f"Content hash `{s['content_hash']}` · version id `{s['version_id']}`")
    cols = st.columns(3)
    for col, (label, field) in zip(cols, (("Kind", "by_kind"), ("Task type", "by_task_type"),
                                          ("Source (top 20)", "by_source"))):
        col.dataframe([{label: k, "samples": n} for k, n in s[field].items()], hide_index=True,
                      width="stretch")


# ---------------------------------------------------------------- curation
PLAN_KEY = "curation_plan"  # {"key": str, "plan": dict}: the preview the Commit button commits


def _role(ws) -> str | None:
    from pipelines.curate.base import user_role
    try:
        return user_role(ws, common.current_user())
    except Exception:  # noqa: BLE001 - an unknown user sees no curation actions
        return None


def _preview_and_commit(key: str, preview, commit, *, commit_label: str = "Commit") -> None:
    """A Preview button that shows the operation's counts, then a Commit button that is
    enabled only for the previewed parameters (``key``)."""
    plan = st.session_state.get(PLAN_KEY)
    if st.button("Preview", key=f"preview:{key}", icon=":material/visibility:"):
        with common.user_errors():
            plan = {"key": key, "plan": preview()}
            st.session_state[PLAN_KEY] = plan
    current = plan if plan and plan["key"] == key else None
    if current:
        p = current["plan"]
        counts = p["counts"] if "counts" in p else {k: len(x) for k, x in p.items() if isinstance(x, list)}
        cols = st.columns(max(1, len(counts)))
        for col, (k, n) in zip(cols, counts.items()):
            col.metric(k.replace("_", " "), f"{n:,}" if isinstance(n, int) else n)
        if "message" in p:
            st.caption(f"Commit message: {common.md_escape(p['message'])}")
    if st.button(commit_label, key=f"commit:{key}", type="primary", disabled=current is None,
                 icon=":material/check:", help="Preview first: the commit uses the previewed parameters."):
        with common.user_errors():
            res = commit()
            st.session_state.pop(PLAN_KEY, None)
            st.session_state["curation_done"] = res
            st.rerun()


def curate_view(ws, name: str, v: Version, log: list[Version], names: list[str]) -> None:
    from pipelines.curate import filter as F
    from pipelines.curate import merge as M
    from pipelines.curate import purge as P
    from pipelines.curate import revert as R
    from pipelines.curate import split as S
    from pipelines.policy import can

    done = st.session_state.pop("curation_done", None)
    if done:
        st.success(done, icon=":material/check_circle:")
    role = _role(ws)
    if role is None or not can(role, "edit_samples"):
        st.info("Curation needs the curator or admin role.", icon=":material/lock:")
        return
    user = common.current_user()
    ops = ["Filter", "Merge", "Split", "Revert"] + (["Purge"] if can(role, "purge_samples") else [])
    op = st.segmented_control("Operation", ops, default="Filter", key="curate_op")
    st.caption(f"Each operation is one commit; its message states the operation and its parameters. "
               f"Source: **{common.md_escape(name)} v{v.number}**.")
    if op == "Filter":
        where = st.text_input("Condition", key="f_where", placeholder="task_type = 'qa' AND response_words >= 5",
                              help="DuckDB expression over the sample columns plus prompt, response, turns, "
                                   "response_words, duplicate, refusal and outcome (see docs/curation.md).")
        c1, c2, c3 = st.columns(3)
        min_q = c1.number_input("Minimum quality score", value=None, min_value=0.0, max_value=1.0, key="f_minq")
        outcome = c2.multiselect("Review outcome", ["accept", "reject", "edit", "disputed"], key="f_outcome")
        into = c3.text_input("Into dataset (empty: this one)", key="f_into") or None
        kw = dict(where=where or None, min_quality=min_q, outcome=outcome or None, into=into)
        _preview_and_commit(f"filter:{name}:{v.number}:{kw}",
                            lambda: F.plan_filter(ws, name, v.number, user=user, **kw).as_dict(),
                            lambda: _committed(F.filter_version(ws, name, v.number, user=user, **kw)))
    elif op == "Merge":
        sources = st.multiselect("Merge these datasets (heads)", [n for n in names], default=[name], key="m_src")
        into = st.text_input("Into dataset", key="m_into", value=f"{name}-merged")
        dedup = st.radio("Dedup", ["exact", "semantic", "none"], horizontal=True, key="m_dedup")
        _preview_and_commit(f"merge:{sources}:{into}:{dedup}",
                            lambda: M.plan_merge(ws, sources, into, user=user, dedup=dedup).as_dict(),
                            lambda: _committed(M.merge_datasets(ws, sources, into, user=user, dedup=dedup)))
    elif op == "Split":
        c1, c2, c3 = st.columns(3)
        train = c1.number_input("Train fraction", 0.0, 1.0, 0.8, 0.05, key="s_train")
        ev = c2.number_input("Eval fraction", 0.0, 1.0, 0.1, 0.05, key="s_eval")
        seed = c3.number_input("Seed", value=0, step=1, key="s_seed")
        strat = st.selectbox("Stratify by", ["(random)", *S.STRATIFY_COLUMNS], key="s_strat")
        kw = dict(fractions=[train, ev, round(1 - train - ev, 10)], seed=int(seed),
                  stratify=None if strat == "(random)" else strat)
        _preview_and_commit(f"split:{name}:{v.number}:{kw}",
                            lambda: S.plan_split(ws, name, v.number, user=user, **kw).as_dict(),
                            lambda: "committed " + ", ".join(
                                f"{x.dataset} v{x.number} ({x.n_samples})"
                                for x in S.split_version(ws, name, v.number, user=user, **kw)))
    elif op == "Revert":
        if v.number == log[0].number:
            st.info("Pick an earlier version above to revert the dataset to it.")
            return
        st.markdown(f"Make **v{v.number}**'s content the new head of {common.md_escape(name)}.")
        _preview_and_commit(f"revert:{name}:{v.number}",
                            lambda: R.plan_revert(ws, name, v.number, user=user).as_dict(),
                            lambda: _committed(R.revert(ws, name, v.number, user=user)))
    elif op == "Purge":
        st.warning("A purge removes the samples' text from every version, table and workspace file. "
                   "It cannot be undone; a tombstone (id, who, when, why) stays.", icon=":material/warning:")
        ids_text = st.text_input("Sample ids (comma separated)", key="p_ids")
        reason = st.text_input("Reason (kept in the tombstone)", key="p_reason")
        try:
            ids = [int(x) for x in ids_text.replace(" ", "").split(",") if x]
        except ValueError:
            st.error("Sample ids are whole numbers separated by commas.")
            return
        if not ids:
            return
        _preview_and_commit(f"purge:{name}:{ids}:{reason}",
                            lambda: P.plan_purge(ws, name, ids, user=user),
                            lambda: _purged(P.purge_samples(ws, name, ids, user=user, reason=reason)),
                            commit_label="Purge")


def _committed(ver: Version) -> str:
    return f"committed {ver.dataset} v{ver.number}: {ver.n_samples:,} samples · {ver.message}"


def _purged(rep) -> str:
    return (f"purge {rep.purge_id}: removed {', '.join(rep.samples)}; {len(rep.versions)} version hash(es) "
            f"recomputed; runs flagged: {', '.join(rep.runs_flagged) or 'none'}")


def card_view(ws, name: str, v: Version) -> None:
    with common.user_errors(stop=True):
        card = catalog.version_card(ws, name, v.number)
    for w in card["warnings"]:
        st.warning(w, icon=":material/gavel:")
    st.dataframe([{"licence": e["license"], "samples": e["samples"], "commercial use": e["commercial"],
                   "sources": ", ".join(e["sources"])} for e in card["licences"]], hide_index=True, width="stretch")
    if v.amendments:
        st.caption("Amended after commit: " + "; ".join(common.md_escape(a.get("note", a.get("op", "")))
                                                        for a in v.amendments))
    st.download_button("Download dataset card (README.md)", card["markdown"], file_name="README.md",
                       mime="text/markdown", icon=":material/download:")
    with st.container(border=True):
        st.markdown(card["markdown"].split("-->", 1)[-1])


# ---------------------------------------------------------------- page
ws = common.workspace()
st.title("Datasets")
st.caption(f"Workspace `{ws}`")
common.require_workspace(ws)

with common.user_errors(stop=True):
    datasets = catalog.list_datasets(ws)
if not datasets:
    st.info("This workspace has no datasets yet. Import one with `wb import`.", icon=":material/inbox:")
    st.stop()
datasets_table(datasets)

names = [d["name"] for d in datasets]
name = st.selectbox("Dataset", names, key="dataset", bind="query-params", on_change=_dataset_changed,
                    width=SELECT_WIDTH_PX)
with common.user_errors(stop=True):
    log = catalog.dataset_log(ws, name)
if not log:
    st.info(f"Dataset '{name}' has no versions yet.")
    st.stop()
by_number = {v.number: v for v in log}

st.subheader(f"{common.md_escape(name)} · version log")
version_log_table(log)

if st.session_state.pop(OPEN_HEAD_KEY, False):
    st.session_state["version"] = log[0].number

# Options read "v3": a bound widget puts its label in the URL (?version=v3), so the label
# must not change when a tag moves or a newer version becomes the head.
number = st.selectbox("Version", list(by_number), key="version", bind="query-params",
                      format_func=lambda n: f"v{n}", width=SELECT_WIDTH_PX)
v = by_number[number]
tags = f" · tags {common.md_escape(', '.join(v.tags))}" if v.tags else ""
head = " (head)" if v.number == log[0].number else ""
st.caption(f"**v{v.number}**{head}{tags} · {common.md_escape(v.message or 'no message')} · "
           f"{common.md_escape(v.author)} · {common.fmt_time(v.created_at)} · {v.n_samples:,} samples · "
           f"id `{v.version_id}` · content hash `{v.content_hash[:12]}`")

samples_tab, diff_tab, stats_tab, curate_tab, card_tab = st.tabs(
    ["Samples", "Compare versions", "Statistics", "Curate", "Card"],
    key="view", on_change="rerun", bind="query-params")
if samples_tab.open:
    with samples_tab:
        samples_view(ws, name, v)
if diff_tab.open:
    with diff_tab:
        diff_view(ws, name, v, log)
if stats_tab.open:
    with stats_tab:
        stats_view(ws, name, v)
if curate_tab.open:
    with curate_tab:
        curate_view(ws, name, v, log, names)
if card_tab.open:
    with card_tab:
        card_view(ws, name, v)
