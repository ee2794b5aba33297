# page-icon: :material/compare_arrows:
"""Runs: finished training runs side by side (method, trainable parameters, metrics, time, memory,
data version), their loss curves on one chart, and each run's card.

Everything comes from the run folders (``pipelines.train.runs.compare``), so runs trained from the
shell, from the Train page or before a restart all show. Sending a run's worst held-out samples to
review is for curators and admins (``stage_challenging`` checks ``edit_samples`` itself).
"""
from __future__ import annotations

import streamlit as st

from app import common
from pipelines.train import runs as R

COLUMNS = ["run", "method", "trainable_params", "trainable_pct", "steps", "final_loss", "eval_loss_before",
           "eval_loss_after", "perplexity", "rougeL", "bleu", "refusal_accuracy", "train_time_s", "tokens_per_s",
           "peak_rss_mb", "peak_gpu_mb", "data", "state"]


def _curves(selected: list[str], ws) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for run in selected:
        recs = R.progress_records(R.run_path(ws, run))
        steps = [r for r in recs if "loss" in r and "event" not in r]
        fig.add_scatter(x=[r["step"] for r in steps], y=[r["loss"] for r in steps], mode="lines", name=run)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step", yaxis_title="train loss")
    st.plotly_chart(fig, key="runs-curves")


def main() -> None:
    st.title("Runs")
    ws = common.workspace()
    common.require_workspace(ws)
    user = common.current_user()
    with common.user_errors(stop=True):
        rows = R.compare(ws)
    if not rows:
        st.info("No finished run yet. Launch one on the Train page or with `wb train --config FILE`.")
        return
    ids = [r["run"] for r in rows]
    selected = st.multiselect("Compare", ids, default=ids[: min(4, len(ids))], key="runs_selected")
    shown = [r for r in rows if r["run"] in selected] or rows
    st.dataframe([{k: r.get(k) for k in COLUMNS} for r in shown], hide_index=True, key="runs_table")
    st.subheader("Side by side")
    side = {r["run"]: {k: r.get(k) for k in COLUMNS if k != "run"} for r in shown}
    st.table({run: {k: ("" if v is None else str(v)) for k, v in vals.items()} for run, vals in side.items()})
    _curves([r["run"] for r in shown], ws)
    st.subheader("Run card")
    run = st.selectbox("Run", [r["run"] for r in shown], key="runs_card")
    if run:
        st_ = R.run_status(R.run_path(ws, run))
        st.json(st_["card"] or {}, expanded=False)
        if R.can_train(R.role_of(ws, user)):
            n = st.number_input("Worst held-out samples to send to review", 1, 200, 5, key="runs_worst_n")
            if st.button("Send to review", key="runs_stage", icon=":material/rate_review:"):
                from pipelines.train.evaluate import stage_challenging
                with common.user_errors():
                    v = stage_challenging(ws, R.run_path(ws, run), user=user, n=int(n))
                    st.success(f"Staged {v.n_added} challenging samples as {v.dataset} v{v.number}")


main()
