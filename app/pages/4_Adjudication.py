# page-icon: :material/gavel:
"""Adjudication: the queue of samples whose annotators disagree (or that any annotator
rejected or edited), lowest agreement first; every answer side by side (names can be
hidden); pick one, merge, or write the final text. The new sample revision and the
adjudication record commit together, as a new dataset version whose log says what and why.
Curators also open tasks, mark gold items and merge a finished staging task here.
"""
from __future__ import annotations

import json

import streamlit as st

from app import common
from pipelines import catalog, policy
from pipelines.review import adjudicate, gold, tasks

ws = common.workspace()
common.require_workspace(ws)
user = common.current_user()
with common.user_errors(stop=True):
    role = common.current_role()
st.title("Adjudication")

if policy.can(role, "manage_tasks"):
    with st.expander("Open a review task", icon=":material/add_task:"):
        with common.user_errors():
            names = [d["name"] for d in catalog.list_datasets(ws)]
            with st.form("open_task"):
                c1, c2, c3 = st.columns(3)
                name = c1.text_input("Task name")
                ds = c2.selectbox("Dataset", names)
                k = c3.number_input("Annotators per sample (k)", 1, 10, 2)
                pool = st.text_input("Annotator pool (comma-separated; empty: every annotator)")
                target = st.selectbox("Target dataset for accepted staging samples", ["(none)", *names])
                guide = st.text_area("Guidelines (Markdown)")
                if st.form_submit_button("Open task", type="primary"):
                    t = tasks.open_task(ws, user, name=name.strip(), dataset=ds, overlap_k=int(k),
                                        pool=[p.strip() for p in pool.split(",") if p.strip()] or None,
                                        guidelines=guide, target_dataset=None if target == "(none)" else target)
                    st.success(f"Opened task {t.name} on {t.dataset} v{t.version_number} for {', '.join(t.pool)}.")

if not policy.can(role, "adjudicate"):
    st.info("Adjudication is for adjudicators and admins.", icon=":material/lock:")
    st.stop()
with common.user_errors(stop=True):
    all_tasks = tasks.list_tasks(ws, user)
if not all_tasks:
    st.info("No review task yet.", icon=":material/inbox:")
    st.stop()
by_label = {f"{t.name} · {t.dataset} v{t.version_number} · {t.status}": t for t in all_tasks}
t = by_label[st.selectbox("Task", list(by_label), key="adj_task")]
with common.user_errors(stop=True):
    summary = tasks.task_summary(ws, user, t.name)
    queue = adjudicate.adjudication_queue(ws, user, t.name, limit=200)
c = st.columns(4)
c[0].metric("Items", sum(summary["items"].values()))
c[1].metric("Annotations", summary["annotations"])
c[2].metric("Awaiting adjudication", summary["queue"])
c[3].metric("Adjudicated", summary["items"].get("adjudicated", 0))
if not queue:
    st.success("Nothing to adjudicate: no open disagreement.", icon=":material/task_alt:")
else:
    st.dataframe(queue, hide_index=True, width="stretch",
                 column_config={"agreement": st.column_config.ProgressColumn("agreement", min_value=0, max_value=1)})
    sid = st.selectbox("Sample", [q["sample_id"] for q in queue], format_func=lambda s: f"#{s}", key="adj_sample")
    hide = st.toggle("Hide annotator names", key="adj_hide")
    with common.user_errors(stop=True):
        d = adjudicate.item_answers(ws, user, t.name, sid, hide_names=hide)
    sample = d["sample"]
    if sample is None:   # removed from the dataset since the task opened (another task, a curator)
        gone = f"in v{d['removed_in']}" if d["removed_in"] else "(no version holds it any more)"
        st.warning(f"Sample #{sid} was removed from dataset {common.md_escape(d['dataset'])} {gone}"
                   + (", its last revision is shown" if d["last_revision"] else "") + ".",
                   icon=":material/delete:")
        if d["last_revision"] is not None:
            common.render_sample(d["last_revision"])
    else:
        common.render_sample(sample)
    for r in d["adjudications"]:   # earlier rounds, or a decision taken since the queue was read
        st.caption(f":material/gavel: adjudicated by {common.md_escape(r['adjudicator'])}: {r['decision']} "
                   + (f"(v{r['version_number']})" if r["version_number"] else "(no sample change)")
                   + (f": {common.md_escape(r['note'])}" if r["note"] else ""))
    # outside the form, so that "Pick this answer" sends it too (a form sends its widgets
    # only on its own submit button); one per item, so a reason never carries over
    note_key = f"adj_note-{t.task_id}-{sid}-{d['round']}"
    st.text_input("Why (goes into the version log)", key=note_key,
                  placeholder="e.g. the reference answer is wrong")

    def _done(r) -> None:
        st.session_state["adj_flash"] = f"#{sid}: {r['decision']}" + (
            f", committed v{r['version']}" if r["version"] else ", no text change")
        st.rerun()

    cols = st.columns(max(len(d["annotations"]), 1))
    for col, a in zip(cols, d["annotations"]):
        with col.container(border=True):
            st.markdown(f"**{common.md_escape(a['annotator'])}** · :blue-badge[{a['decision']}]"
                        + (f" :gray-badge[rating {a['rating']}]" if a.get("rating") else ""))
            ans = a["answers"]
            if ans.get("edit"):
                common.render_edit(ans["edit"], sample if sample is not None else d["last_revision"])
            extra = {k_: v for k_, v in ans.items() if k_ not in ("decision", "rating", "edit")}
            if extra:
                st.caption(json.dumps(extra, ensure_ascii=False))
            if a.get("time_spent_ms"):
                st.caption(f"{a['time_spent_ms'] / 1000:.1f} s on the sample")
            if st.button("Pick this answer", key=f"pick-{a['annotation_id']}", icon=":material/done:",
                         disabled=sample is None):
                with common.user_errors():
                    _done(adjudicate.adjudicate(ws, user, t.name, sid, pick=a["annotation_id"],
                                                note=st.session_state.get(note_key) or None))
    with st.form("final"):
        st.markdown("**Or give the final answer**")
        dec = st.segmented_control("Decision", ["accept", "reject", "edit"], default="accept", key="adj_decision")
        text = st.text_area("Final response (for edit)", value=(sample.output or "") if sample is not None else "")
        if st.form_submit_button("Resolve", type="primary", disabled=sample is None):
            with common.user_errors():
                final = {"decision": dec, **({"edit": {"response": text}} if dec == "edit" else {})}
                _done(adjudicate.adjudicate(ws, user, t.name, sid, final=final,
                                            note=st.session_state.get(note_key) or None))
if st.session_state.get("adj_flash"):
    st.toast(st.session_state.pop("adj_flash"), icon=":material/gavel:")

if policy.can(role, "manage_tasks"):
    with st.expander("Gold items and merge", icon=":material/workspace_premium:"):
        with common.user_errors():
            g = gold.list_gold(ws, user, t.name)
            st.caption(f"Gold items: {', '.join(f'#{s}' for s in g) or 'none'}")
            c1, c2, c3 = st.columns(3)
            gs = c1.number_input("Sample id", min_value=1, step=1, key="gold_sid")
            gd = c2.selectbox("Expected decision", ["accept", "reject", "edit"], key="gold_dec")
            if c3.button("Mark gold"):
                gold.mark_gold(ws, user, t.name, int(gs), {"decision": gd})
                st.rerun()
            if t.target_dataset and st.button(f"Merge accepted into {t.target_dataset}", disabled=bool(t.merged_version)):
                v = adjudicate.merge_task(ws, user, t.name)
                st.success(f"Merged into {v.dataset} v{v.number} ({v.n_added} samples).")
