# page-icon: :material/handshake:
"""Agreement: Cohen's kappa per annotator pair, Fleiss' kappa and Krippendorff's alpha per
question (nominal for decisions, labels and flags; ordinal for ratings), each with the number
of items behind it; per annotator: throughput, time per sample, agreement with the others,
with the adjudicated result and accuracy on gold items; and the figures per dataset version.
Annotators see figures over adjudicated items only, and only their own row.
"""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import common
from pipelines.review import agreement, tasks

ws = common.workspace()
common.require_workspace(ws)
user = common.current_user()
st.title("Agreement")
with common.user_errors(stop=True):
    ts = tasks.list_tasks(ws, user)
if not ts:
    st.info("No review task yet.", icon=":material/inbox:")
    st.stop()
by_label = {f"{t.name} · {t.dataset} v{t.version_number}": t for t in ts}
t = by_label[st.selectbox("Task", list(by_label), key="agr_task")]
with common.user_errors(stop=True):
    page = agreement.agreement_page(ws, user, t.name)  # the report and the per-version rows, one scan
rep = page["report"]
if rep["scope"] != "all":
    st.caption("Figures over adjudicated items only (you see others' answers only after adjudication).")


def fmt(x):
    return None if x is None else round(x, 3)


qs = rep["questions"]
dec = next((q for q in qs if q["question"] == "decision"), None)
if dec:
    c = st.columns(3)
    c[0].metric("Krippendorff's α (decision)", "–" if dec["krippendorff_alpha"] is None else f"{dec['krippendorff_alpha']:.3f}",
                help=f"{dec['alpha_items']} items")
    c[1].metric("Fleiss' κ (decision)", "–" if dec["fleiss_kappa"] is None else f"{dec['fleiss_kappa']:.3f}",
                help=f"{dec['fleiss_items']} items")
    c[2].metric("Items with two or more answers", dec["alpha_items"])
st.subheader("Per question")
st.dataframe([{"question": q["question"], "level": q["level"], "Krippendorff α": fmt(q["krippendorff_alpha"]),
               "α items": q["alpha_items"], "Fleiss κ": fmt(q["fleiss_kappa"]), "κ items": q["fleiss_items"]}
              for q in qs], hide_index=True, width="stretch")
if dec and dec["pairs"]:
    st.subheader("Cohen's kappa per annotator pair (decision)")
    pairs = dec["pairs"]
    fig = go.Figure(go.Bar(x=[f"{p['a']} – {p['b']}" for p in pairs], y=[p["cohen_kappa"] or 0 for p in pairs],
                           text=[f"κ {fmt(p['cohen_kappa'])} · {p['items']} items" for p in pairs],
                           textposition="outside"))
    fig.update_layout(yaxis_title="Cohen's κ", yaxis_range=[-1, 1.15], height=320, margin=dict(t=10, b=10))
    st.plotly_chart(fig, width="stretch")
st.subheader("Per annotator")
rows = rep["annotators"]
st.dataframe([{"annotator": r["annotator"], "annotations": r["annotations"], "per hour": r["throughput_per_hour"],
               "median s / sample": r["median_time_s"], "agreement with others": fmt(r["agreement_with_others"]),
               "κ with others": fmt(r["kappa_with_others"]),
               "agreement with adjudicated": fmt(r["agreement_with_adjudicated"]),
               "adjudicated items": r["adjudicated_items"], "gold accuracy": fmt(r["gold_accuracy"]),
               "gold items": r["gold_items"]} for r in rows], hide_index=True, width="stretch")
if rows:
    fig = go.Figure(go.Bar(x=[r["annotator"] for r in rows], y=[r["annotations"] for r in rows], name="annotations"))
    fig.update_layout(yaxis_title="annotations", height=260, margin=dict(t=10, b=10))
    st.plotly_chart(fig, width="stretch")
st.subheader("Per dataset version")
st.dataframe(page["by_version"], hide_index=True, width="stretch")
