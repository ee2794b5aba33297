# page-icon: :material/monitoring:
"""Quality: every metric of a dataset version as charts, the trend across versions, the
samples behind a selected bar, the validation gate (status, suite editor, override) and
contamination against registered evaluation sets.

The page renders from the version's metric snapshot (``pipelines.quality.metrics``; kept in
the workspace once computed, since a version never changes), so a 1M-sample version opens in
well under 2 s once its snapshot exists; the first view of a version computes it (seconds).
Selecting a bar (``st.plotly_chart(on_select="rerun")``) lists the first samples behind it.
"""
from __future__ import annotations

import json

import streamlit as st

from app import common
from pipelines import catalog
from pipelines.quality import charts, contamination, gates, metrics
from pipelines.policy import can

SELECT_WIDTH_PX = 480
SHOWN = 20  # samples listed behind a selected bar


@st.cache_data(show_spinner=False, max_entries=32)
def _metrics(ws: str, name: str, number: int, user: str, nonce: int) -> dict:
    return metrics.compute(ws, name, number, user=user, live=False, sampled="cached")


def _selected(event) -> list | None:
    try:
        pts = event.selection.points  # type: ignore[union-attr]
    except AttributeError:
        try:
            pts = event["selection"]["points"]
        except (KeyError, TypeError):
            return None
    for p in pts or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if cd:
            return list(cd)
    return None


def _chart(key: str, fig, ws, name, number, user) -> None:
    event = st.plotly_chart(fig, key=f"q_{key}_{name}_{number}", on_select="rerun", selection_mode=("points", "box"),
                            width="stretch")
    sel = _selected(event)
    if sel:
        facet, value = sel[0], sel[1]
        rc = sel[2] if len(sel) > 2 else None
        with common.user_errors():
            rows = metrics.samples_behind(ws, name, number, facet, value, refusal_class=rc, user=user, limit=SHOWN)
            label = f"{facet} = {value}" + (f", {rc}" if rc else "")
            st.markdown(f"**Samples behind {common.md_escape(label)}** (first {len(rows)})")
            for s in rows:
                with st.expander(f"#{s.sample_id} · {common.preview(s.instruction or (s.turns()[-1].get('content') or '' if s.turns() else ''), 90)}"):
                    common.render_sample(s)


ws = common.workspace()
st.title("Quality")
st.caption(f"Workspace `{ws}`")
common.require_workspace(ws)
user = common.current_user()

with common.user_errors(stop=True):
    datasets = catalog.list_datasets(ws)
if not datasets:
    st.info("This workspace has no datasets yet. Import one with `wb import`.", icon=":material/inbox:")
    st.stop()
name = st.selectbox("Dataset", [d["name"] for d in datasets], key="q_dataset", width=SELECT_WIDTH_PX)
with common.user_errors(stop=True):
    log = catalog.dataset_log(ws, name)
if not log:
    st.info(f"Dataset '{name}' has no versions yet.")
    st.stop()
number = st.selectbox("Version", [v.number for v in log], key="q_version", format_func=lambda n: f"v{n}",
                      width=SELECT_WIDTH_PX)
nonce = st.session_state.setdefault("q_nonce", 0)
b1, b2 = st.columns(2)
if b1.button("Recompute metrics", icon=":material/refresh:"):
    with st.spinner("Scanning the version..."), common.user_errors():
        metrics.compute(ws, name, number, user=user, refresh=True, sampled=False, live=False)
    st.session_state["q_nonce"] = nonce + 1
    nonce += 1
if b2.button("Compute sampled metrics", icon=":material/science:",
             help="Tokens, verb-noun diversity, distinct-n, near and semantic duplicates on a fixed sample "
                  "of 2,000 (loads the tokenizer, the parser and the embedder: tens of seconds)"):
    with st.spinner("Loading the models and measuring the sample..."), common.user_errors():
        metrics.compute(ws, name, number, user=user, refresh=True, live=False)
    st.session_state["q_nonce"] = nonce + 1
    nonce += 1

with st.spinner("Computing metrics (once per version)..."), common.user_errors(stop=True):
    m = _metrics(str(ws), name, number, user, nonce)
    g = gates.gate_status(ws, name, number)
    tr = metrics.trend(ws, name, user=user)
role = gates.user_role(ws, user)

if not m.get("samples"):
    st.info("This version has no samples.")
    st.stop()

# ---------------------------------------------------------------- headline
status = g["status"] + (" (overridden)" if g.get("override") else "")
cols = st.columns(6)
cols[0].metric("Samples", f"{m['samples']:,}")
cols[1].metric("Words / response (median)", m["length_words"]["median"])
cols[2].metric("Citation rate", charts._pct(m["citation"]["rate"]))
cols[3].metric("Refusal rate", charts._pct(m["refusal"]["rate"]))
cols[4].metric("Exact duplicates", charts._pct(m["duplicates"]["exact"]))
cols[5].metric("Gate", status)
r = m["refusal"]
st.caption(f"Refuses what should be refused: {charts._pct(r['should_refuse']['rate'])} of {r['should_refuse']['n']} · "
           f"answers what should be answered: {charts._pct(r['should_answer']['rate'])} of {r['should_answer']['n']} · "
           f"refusal classifier `{r['method']}`")
cov = m["domain_coverage"]
if cov["labelled_samples"] and cov["empty"]:
    st.warning(f"Empty policy domains (target quota, no sample): {', '.join(cov['empty'])}", icon=":material/flag:")

tab_charts, tab_slices, tab_gate, tab_heldout, tab_reviews = st.tabs(
    ["Charts", "Slices", "Gate", "Held-out checks", "Reviews"])
figs = charts.figures(m, tr)
with tab_charts:
    st.caption("Select a bar (click, or drag a box) to list the samples behind it.")
    if "trend" in figs:
        st.plotly_chart(figs["trend"], key=f"q_trend_{name}", width="stretch")
    order = ["length_words", "length_tokens", "turns", "citation", "refusal", "domain_coverage", "verb_noun"]
    for key in order:
        if key in figs:
            _chart(key, figs[key], ws, name, number, user)
    s = m.get("sampled") or {}
    dv = s.get("diversity") or {}
    d = s.get("duplicates_sampled") or {}
    st.markdown(
        f"Sampled metrics over {s.get('prompts_sampled', 0)} prompts: distinct-1/2 of prompts "
        f"{dv.get('distinct_1_prompts')} / {dv.get('distinct_2_prompts')}, of responses "
        f"{dv.get('distinct_1_responses')} / {dv.get('distinct_2_responses')}; near / semantic duplicates "
        f"{charts._pct(d.get('near'))} / {charts._pct(d.get('semantic'))}" + (f" ({d['note']})" if d.get("note") else ""))
with tab_slices:
    for col in metrics.SLICES:
        _chart(f"slice_{col}", figs[f"slice_{col}"], ws, name, number, user)
        st.plotly_chart(figs[f"rates_{col}"], key=f"q_rates_{col}_{name}_{number}", width="stretch")
        st.dataframe(m["slices"][col], hide_index=True)
with tab_gate:
    st.markdown(f"**Gate: {status}**" + (" · stale: the suite changed since this run" if g.get("stale") else ""))
    if g.get("override"):
        o = g["override"]
        st.info(f"Overridden by {o['user']} at {common.fmt_time(o['at'])}: {o['reason']}")
    exp = (g.get("summary") or {}).get("expectations") or []
    if exp:
        st.dataframe([{"expectation": e["type"], "column": e["kwargs"].get("column"), "success": e["success"],
                       "unexpected": e.get("unexpected_count"), "example samples": ", ".join(map(str, e.get("example_ids", [])[:8]))}
                      for e in exp], hide_index=True)
    editable = role is not None and can(role, "edit_samples")
    c1, c2 = st.columns(2)
    if editable and c1.button("Run gate now", icon=":material/play_arrow:"):
        with st.spinner("Validating with great-expectations..."), common.user_errors():
            gates.run_gate(ws, name, number, user=user)
            st.rerun()
    if g["status"] in ("failed", "error") and not g.get("override") and role and can(role, "override_gate"):
        with c2.form("override"):
            reason = st.text_input("Override reason (goes into the audit log)")
            if st.form_submit_button("Override the gate"):
                with common.user_errors():
                    gates.override_gate(ws, name, number, reason, user=user)
                    st.rerun()
    st.subheader("Suite")
    with common.user_errors():
        cur = gates.get_suite(ws, name)
    text = json.dumps(cur["suite"] if cur else gates.default_suite(), indent=2)
    if cur is None:
        st.caption("No suite yet: the default below is not stored until you save it.")
    new = st.text_area("Expectations (great-expectations configurations, JSON)", text, height=360,
                       key=f"q_suite_{name}", disabled=not editable)
    if editable and st.button("Save suite", icon=":material/save:"):
        with st.spinner("Checking the suite..."), common.user_errors():
            try:
                parsed = json.loads(new)
            except json.JSONDecodeError as e:
                from datastore.errors import WorkbenchError
                raise WorkbenchError(f"suite JSON: {e}") from None
            h = gates.save_suite(ws, name, parsed, user=user)
            st.success(f"Suite {h} saved; the head version's gate is scheduled.")
with tab_heldout:
    with common.user_errors():
        c = contamination.summary(ws, name, number, user=user)
    if c.get("status") != "checked":
        st.info("No evaluation set is registered for this version (`wb evalset register NAME FILE --dataset ...`).")
    else:
        st.metric("Contaminated samples", f"{c['contaminated']:,}", help=f"word {c['n']}-gram overlap")
        st.dataframe(c["sets"], hide_index=True)
        st.dataframe(c["overlapping"][:200], hide_index=True)
    if role and can(role, "edit_samples"):
        with st.form("evalset"):
            es_name = st.text_input("Register an evaluation set: name")
            es_text = st.text_area("Items, one per line")
            if st.form_submit_button("Register on this version"):
                with common.user_errors():
                    contamination.register_eval_set(ws, name, number, es_name, user=user,
                                                    texts=[t for t in es_text.splitlines() if t.strip()])
                    st.rerun()
with tab_reviews:
    a = metrics.agreement(ws, name, number, user=user)
    if a.get("status") != "reviewed":
        st.info("No reviews for this version.")
    else:
        st.dataframe(a["questions"], hide_index=True)
        st.dataframe(a["annotators"], hide_index=True)
