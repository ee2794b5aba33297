# page-icon: :material/model_training:
"""Train: launch a fine-tune on pinned dataset versions, watch it, stop it, resume it.

Runs are separate processes (``pipelines.train.runs``); this page only reads their folders, so
closing the browser or restarting the app neither stops nor hangs a run, and the page finds
running runs again from ``<workspace>/runs``. The live panel is a fragment that re-reads the
progress files every 2 seconds. Launching, stopping and resuming are for curators and admins: the
service functions check it (``pipelines.policy.require(..., "train")``); the page uses ``can``
only to decide what to show.
"""
from __future__ import annotations

import streamlit as st

from app import common
from pipelines import catalog
from pipelines.train import runs as R
from pipelines.train.methods import METHODS

ACTIVE = ("queued", "starting", "running")
#: The dataset preselected in the launch form when the workspace has it (the demo's SFT set);
#: otherwise nothing is preselected, so a mixture is never picked by surprise.
DEFAULT_DATASET = "demo-sft"
#: One-time "Started run ..." message, shown after the rerun that follows a launch.
LAUNCHED_KEY = "train_launched"
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _fmt_s(s) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _loss_chart(run_dir: str, key: str) -> None:
    import plotly.graph_objects as go

    recs = R.progress_records(run_dir)
    steps = [r for r in recs if "loss" in r and "event" not in r]
    evals = [r for r in recs if r.get("event") == "eval"]
    if not steps and not evals:
        st.caption("No loss logged yet.")
        return
    fig = go.Figure()
    fig.add_scatter(x=[r["step"] for r in steps], y=[r["loss"] for r in steps], mode="lines+markers", name="train loss")
    if evals:
        fig.add_scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals], mode="lines+markers",
                        name="eval loss")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step", yaxis_title="loss")
    st.plotly_chart(fig, key=key)


def _run_panel(r: dict, ws, user: str, may_train: bool) -> None:
    data = ", ".join(f"{d['dataset']} v{d.get('version_number')}" for d in r["datasets"])
    with st.container(border=True):
        st.markdown(f"**{r['run_id']}** · {r['method']} · {data} · state **{r['state']}**")
        total = r["total"] or 1
        frac = min(max(r["step"] / total, 0.0), 1.0)
        left = "" if r["state"] not in ACTIVE else f" · {_fmt_s(r['remaining_s'])} left"
        st.progress(frac, text=f"step {r['step']}/{total}{left}"
                    + (f" · loss {r['loss']:.4f}" if r["loss"] is not None else "")
                    + (f" · eval loss {r['eval_loss']:.4f}" if r["eval_loss"] is not None else ""))
        _loss_chart(r["run_dir"], key=f"chart-{r['run_id']}")
        if r["state"] == "failed":
            st.error(f"Failed: {r['error']}", icon=":material/error:")
            st.code(r.get("log_tail") or "(empty log)", language=None)
        if may_train:
            c1, c2 = st.columns(2)
            if r["state"] in ACTIVE and not r["stop_requested"]:
                if c1.button("Stop", key=f"stop-{r['run_id']}", icon=":material/stop_circle:",
                             help="Ends after the current step with a checkpoint and the adapter saved."):
                    with common.user_errors():
                        R.stop_run(ws, r["run_id"], user=user)
                        st.toast(f"Stop requested for {r['run_id']}")
            elif r["state"] in ACTIVE:
                c1.caption("Stopping after the current step…")
            if r["state"] in ("stopped", "failed") and r["has_checkpoint"]:
                if c2.button("Resume", key=f"resume-{r['run_id']}", icon=":material/play_circle:",
                             help="Continue from the last checkpoint."):
                    with common.user_errors():
                        R.resume_run(ws, r["run_id"], user=user)
                        st.toast(f"Resumed {r['run_id']}")


@st.fragment(run_every=2)
def live_runs(ws, user: str, may_train: bool, show_finished: int) -> None:
    """Re-reads the run folders every 2 s: active runs first, then the latest finished ones."""
    with common.user_errors():
        rows = R.list_runs(ws)
        active = [r for r in rows if r["state"] in ACTIVE]
        done = [r for r in rows if r["state"] not in ACTIVE][:show_finished]
        st.subheader(f"Running ({len(active)})")
        if not active:
            st.caption("No run in progress.")
        for r in active:
            _run_panel(r, ws, user, may_train)
        st.subheader("Recent runs")
        for r in done:
            _run_panel(r, ws, user, may_train)


def licence_notice(ws, refs: list[dict]) -> list[str]:
    """Show the licences of the chosen versions (``cc-by-nc-4.0: 6 samples``); returns the ids
    that forbid commercial use, which a launch must acknowledge."""
    from pipelines.curate.licences import licence_lines, licences_of_versions, restricted

    if not refs:
        return []
    with common.user_errors():
        entries = licences_of_versions(ws, [(r["dataset"], r["version_number"]) for r in refs])
        bad = restricted(entries)
        text = "Licences of the training data: " + "; ".join(licence_lines(entries))
        if bad:
            st.warning(text + ". Not for commercial use: " + "; ".join(licence_lines(bad)) + ".",
                       icon=":material/gavel:")
        else:
            st.caption(text)
        return [e["license"] for e in bad]
    return []


def launch_form(ws, user: str) -> None:
    datasets = [d["name"] for d in catalog.list_datasets(ws) if d["versions"]]
    if not datasets:
        st.info("No dataset with a version yet: import one on the Datasets page or with `wb import`.")
        return
    launched = st.session_state.pop(LAUNCHED_KEY, None)
    if launched:
        st.success(f"Started run {launched}", icon=":material/rocket_launch:")
    chosen = st.multiselect("Datasets (one or more: a mixture)", datasets,
                            default=[DEFAULT_DATASET] if DEFAULT_DATASET in datasets else [], key="train_datasets",
                            placeholder="Pick the dataset(s) to train on")
    with st.form("train_form"):
        refs = []
        for name in chosen:
            versions = catalog.dataset_log(ws, name)
            c1, c2 = st.columns([3, 1])
            v = c1.selectbox(f"{name}: version", versions, key=f"train_v_{name}",
                             format_func=lambda v: f"v{v.number} · {v.n_samples} samples · #{v.content_hash[:8]}")
            w = c2.number_input("weight", min_value=0.0, value=0.0, step=0.1, key=f"train_w_{name}",
                                help="Mixing weight; 0 for every dataset means each contributes its own size.")
            refs.append({"dataset": name, "version_number": v.number, "content_hash": v.content_hash,
                         "weight": w or None})
        ack_ids = licence_notice(ws, refs)
        ack = bool(ack_ids) and st.checkbox(
            f"I acknowledge that {', '.join(ack_ids)} forbid commercial use: the model inherits that restriction",
            key="train_ack_licences", help="Recorded in the run card (acknowledge_licences).")
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox("Method", list(METHODS), key="train_method")
        max_steps = c2.number_input("Steps", 1, 100_000, 20, key="train_steps")
        lr = c3.number_input("Learning rate", 1e-6, 1.0, 1e-3, format="%.5f", key="train_lr")
        c1, c2, c3 = st.columns(3)
        batch = c1.number_input("Batch size", 1, 512, 4, key="train_batch")
        accum = c2.number_input("Gradient accumulation", 1, 512, 1, key="train_accum")
        max_len = c3.number_input("Max length (tokens)", 16, 32_768, 256, key="train_maxlen")
        with st.expander("LoRA / QLoRA"):
            c1, c2, c3 = st.columns(3)
            r = c1.number_input("Rank", 1, 1024, 8, key="train_r")
            alpha = c2.number_input("Alpha", 1.0, 4096.0, 16.0, key="train_alpha")
            dropout = c3.number_input("Dropout", 0.0, 0.9, 0.05, key="train_dropout")
            targets = st.multiselect("Target modules", LORA_MODULES, default=["q_proj", "v_proj"], key="train_targets")
            c1, c2 = st.columns(2)
            rslora = c1.checkbox("rsLoRA", key="train_rslora")
            dora = c2.checkbox("DoRA", key="train_dora")
        with st.expander("Prefix / P-tuning / prompt tuning"):
            virt = st.number_input("Virtual tokens", 1, 512, 16, key="train_virtual")
        with st.expander("Schedule, regularizers, data"):
            c1, c2, c3 = st.columns(3)
            warmup = c1.number_input("Warmup ratio", 0.0, 0.9, 0.1, key="train_warmup")
            clip = c2.number_input("Gradient clip", 0.01, 100.0, 1.0, key="train_clip")
            llrd = c3.number_input("Layer-wise LR decay (1 = off)", 0.1, 1.0, 1.0, key="train_llrd")
            c1, c2, c3 = st.columns(3)
            freeze = c1.number_input("Freeze lower blocks", 0, 1000, 0, key="train_freeze")
            smooth = c2.number_input("Label smoothing", 0.0, 0.5, 0.0, key="train_smooth")
            rdrop = c3.number_input("R-Drop alpha", 0.0, 10.0, 0.0, key="train_rdrop")
            c1, c2, c3 = st.columns(3)
            ldrop = c1.number_input("Layer drop", 0.0, 1.0, 0.0, key="train_ldrop")
            eval_ratio = c2.number_input("Held-out share", 0.0, 0.5, 0.1, key="train_eval")
            seed = c3.number_input("Seed", 0, 2**31 - 1, 42, key="train_seed")
            c1, c2, c3 = st.columns(3)
            packing = c1.checkbox("Packing", key="train_packing")
            assistant_only = c2.checkbox("Loss on assistant turns only", value=True, key="train_assistant_only")
            save_steps = c3.number_input("Checkpoint every N steps (0 = on stop)", 0, 100_000, 0, key="train_save")
        submitted = st.form_submit_button("Launch", type="primary", icon=":material/rocket_launch:")
    if submitted and not refs:
        st.error("Pick at least one dataset to train on (Datasets, above).", icon=":material/error:")
    elif submitted:
        cfg = {"method": method, "datasets": refs, "max_steps": int(max_steps), "learning_rate": float(lr),
               "per_device_batch_size": int(batch), "grad_accum": int(accum), "max_length_tokens": int(max_len),
               "lora_r": int(r), "lora_alpha": float(alpha), "lora_dropout": float(dropout),
               "target_modules": targets, "use_rslora": rslora, "use_dora": dora, "num_virtual_tokens": int(virt),
               "warmup_ratio": float(warmup), "max_grad_norm": float(clip),
               "layerwise_lr_decay": float(llrd) if llrd < 1 else None, "freeze_lower_blocks": int(freeze),
               "label_smoothing": float(smooth), "rdrop_alpha": float(rdrop), "layer_drop": float(ldrop),
               "eval_ratio": float(eval_ratio), "seed": int(seed), "packing": packing,
               "assistant_only_loss": assistant_only, "save_steps": int(save_steps) or None,
               "acknowledge_licences": ack_ids if ack else []}
        with common.user_errors():
            with st.spinner("Checking the config, pinning versions, running the preflight…"):
                run_dir = R.launch(ws, cfg, user=user)
            # shown once, at the top of the form, by the rerun (not after the long launch call,
            # where the live runs fragment's refreshes could leave copies of it on the page)
            st.session_state[LAUNCHED_KEY] = run_dir.name
            st.rerun()


def main() -> None:
    st.title("Train")
    ws = common.workspace()
    common.require_workspace(ws)
    user = common.current_user()
    with common.user_errors(stop=True):
        role = R.role_of(ws, user)
    may_train = R.can_train(role)
    if not may_train:
        st.info(f"Only curators and admins launch training; you are {user} ({role}). Runs are shown read-only.",
                icon=":material/lock:")
    else:
        with st.expander("New run", expanded=True, icon=":material/add:"):
            launch_form(ws, user)
    live_runs(ws, user, may_train, 5)


main()
