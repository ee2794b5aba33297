# page-icon: :material/auto_awesome:
"""Generate: launch a generation job (backend and model, seed set, method, counts, sampling
parameters), follow its progress and live counts, cancel or resume it, and see the dropped
items with their reasons. Results land in a staging dataset for review.

Curators and admins only: the page asks ``generation_access`` what to show, and every
service call (``launch_generation``, ``cancel_generation``, ...) checks the permission itself.
The progress panel is an ``st.fragment(run_every=2)``: it alone re-reads the job's status
file every 2 seconds; the page never holds the workspace store open.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import common
from pipelines import jobs
from pipelines.generate import list_backends
from pipelines.generate.service import (DEFAULT_STAGING, METHODS, cancel_generation, generation_access,
                                        job_dropped, launch_generation, list_dataset_names,
                                        list_generation_jobs, resume_generation)

JOB_KEY = "generate_job_dir"
RUN_PICK_KEY = "gen_run_pick"
#: The seed set picked first when the workspace has it (the demo's Self-Instruct seed tasks).
DEFAULT_SEED_SET = "seed-tasks"
REFRESH_S = 2
ACTIVE = ("queued", "running")

st.title("Generate")
ws = common.workspace()
common.require_workspace(ws)
user = common.current_user()
with common.user_errors(stop=True):
    access = generation_access(ws, user)
if not access["allowed"]:
    st.warning(f"Only curators and admins can generate; you are signed in as {access['user']} "
               f"({access['role']}).", icon=":material/lock:")
    st.stop()

with common.user_errors(stop=True):
    datasets = list_dataset_names(ws, user=user)

# ---------------------------------------------------------------- the launch form
st.subheader("New run")
c1, c2, c3 = st.columns(3)
method = c1.selectbox("Method", METHODS, key="gen_method")
backends = list_backends()
backend = c2.selectbox("Backend", backends, index=backends.index("transformers"), key="gen_backend")
model = c3.text_input("Model", key="gen_model",
                      help="transformers/vllm: a model folder (empty: the embedded SmolLM2-135M-Instruct); "
                           "openai: the served model name.")
base_url = st.text_input("Server URL (openai)", key="gen_base_url",
                         placeholder="http://127.0.0.1:8000/v1") if backend == "openai" else ""

params: dict = {}
if method == "self-instruct":
    a, b, c, d = st.columns(4)
    params["seed_dataset"] = a.selectbox("Seed set (dataset)", datasets, key="gen_seed_dataset",
                                         index=datasets.index(DEFAULT_SEED_SET) if DEFAULT_SEED_SET in datasets else 0)
    params["target_kept"] = b.number_input("Target instructions", 1, 100000, 5, key="gen_target")
    params["max_rounds"] = c.number_input("Max rounds", 1, 10000, 4, key="gen_rounds")
    params["prompts_per_round"] = d.number_input("Prompts per round", 1, 1000, 5, key="gen_ppr")
    params["instances"] = st.checkbox("Classify tasks and generate instances (published pipeline)", True,
                                      key="gen_instances")
    params["demo_settings"] = st.checkbox("Settings sized for the embedded 135M model", False, key="gen_demo")
elif method in ("instances", "augment", "mine"):
    a, b = st.columns(2)
    params["dataset"] = a.selectbox("Source dataset", datasets, key="gen_dataset")
    params["limit"] = b.number_input("At most this many source samples", 1, 1000000, 20, key="gen_limit")
    if method == "augment":
        a, b = st.columns(2)
        params["op"] = a.selectbox("Operation", ("paraphrase", "counterfactual", "rebalance"), key="gen_op")
        params["per_sample"] = b.number_input("Variants per sample", 1, 20, 1, key="gen_per_sample")
        if params["op"] == "rebalance":
            a, b = st.columns(2)
            params["by"] = a.selectbox("Balance by", ("task_type", "policy_domain", "language", "difficulty", "source"),
                                       key="gen_by")
            params["target"] = json.loads(b.text_input("Target proportions (JSON)", '{"qa": 0.5, "math": 0.5}',
                                                       key="gen_target_props") or "{}")
    if method == "mine":
        a, b = st.columns(2)
        ids = a.text_input("Sample ids (comma-separated; empty: all)", key="gen_ids")
        params["sample_ids"] = [int(x) for x in ids.split(",") if x.strip().isdigit()] or None
        params["reason"] = b.text_input("Why they failed", "rejected in review", key="gen_reason")
        params["per_source"] = st.number_input("Follow-ups per sample", 1, 20, 2, key="gen_per_source")
    if method == "instances":
        params["max_instances_per_task"] = st.number_input("Max instances per task", 1, 20, 5, key="gen_max_inst")
elif method == "adversarial":
    from pipelines.generate.adversarial import ATTACK_STYLES
    from pipelines.generate.taxonomy import load_taxonomy
    tax = load_taxonomy()
    codes = [d.code for d in tax.domains]
    params["domains"] = st.multiselect("Policy domains (Llama Guard 3)", codes, codes[:3], key="gen_domains",
                                       format_func=lambda c: f"{c} {tax.domain(c).name}")
    params["styles"] = st.multiselect("Attack styles", ATTACK_STYLES, list(ATTACK_STYLES), key="gen_styles")
    a, b, c = st.columns(3)
    params["quota"] = a.number_input("Quota per domain and style", 0, 1000, 1, key="gen_quota")
    params["benign_per_domain"] = b.number_input("Benign look-alikes per domain", 0, 1000, 1, key="gen_benign")
    params["obfuscation_converter"] = c.selectbox("Obfuscation converter", ("none", "leetspeak", "base64"),
                                                  key="gen_conv")
elif method == "personas":
    from pipelines.generate.personas import BEHAVIOURS, PERSONAS
    params["personas"] = st.multiselect("Personas", list(PERSONAS), ["teacher", "lawyer", "doctor"], key="gen_personas")
    params["behaviours"] = st.multiselect("Behaviours", list(BEHAVIOURS), list(BEHAVIOURS), key="gen_behaviours")
    params["per_combination"] = st.number_input("Per persona and behaviour", 1, 100, 1, key="gen_per_combo")

staging = st.text_input("Staging dataset", DEFAULT_STAGING[method], key=f"gen_staging_{method}",
                        help="The kept candidates are committed as a new version of this dataset (created "
                             "when missing), to review before merging.")

with st.expander("Sampling parameters"):
    a, b, c, d, e = st.columns(5)
    sampling = {"max_tokens": a.number_input("Max new tokens", 1, 8192, 48, key="gen_max_tokens"),
                "temperature": b.number_input("Temperature", 0.0, 2.0, 0.7, step=0.1, key="gen_temperature"),
                "top_p": c.number_input("Top-p", 0.01, 1.0, 0.5, step=0.05, key="gen_top_p"),
                "seed": d.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed")}
    batch_size = e.number_input("Batch size", 1, 512, 8, key="gen_batch")
    options_text = st.text_area("Backend options (JSON)", "{}", key="gen_backend_options",
                                help='e.g. {"num_threads": 1} or, for the scripted backend, {"responses": ["..."]}')

if st.button("Launch", type="primary", icon=":material/rocket_launch:", key="gen_launch"):
    with common.user_errors():
        try:
            options = json.loads(options_text or "{}")
        except json.JSONDecodeError as exc:
            from datastore import WorkbenchError
            raise WorkbenchError(f"backend options are not JSON: {exc.msg}") from exc
        if model:
            options["model_path" if backend == "transformers" else "model"] = model
        if base_url:
            options["base_url"] = base_url
        d = launch_generation(ws, {"method": method, "backend": backend, "backend_options": options,
                                   "sampling": sampling, "batch_size": int(batch_size),
                                   "staging": staging.strip() or None,
                                   "params": {k: v for k, v in params.items() if v not in (None, [], "")}},
                              user=user)
        st.session_state[JOB_KEY] = str(d)
        st.session_state[RUN_PICK_KEY] = str(d)  # the runs panel below shows the job just started
        st.success(f"Started job {d.name}.", icon=":material/check:")

# ---------------------------------------------------------------- jobs
st.subheader("Runs")
with common.user_errors(stop=True):
    runs = list_generation_jobs(ws, user=user)
if not runs:
    st.caption("No generation runs yet.")
    st.stop()
labels = {r["job_dir"]: f"{r['job_id']} · {r['params'].get('method')} · {r['status']['state']}" for r in runs}
if st.session_state.get(RUN_PICK_KEY) not in labels:  # first visit, or the picked run is gone
    current = st.session_state.get(JOB_KEY)
    st.session_state[RUN_PICK_KEY] = current if current in labels else runs[0]["job_dir"]
job_dir = st.selectbox("Run", list(labels), format_func=labels.get, key=RUN_PICK_KEY)
st.session_state[JOB_KEY] = job_dir


def _counts_table(dropped: dict) -> pd.DataFrame:
    return pd.DataFrame([{"reason": k, "dropped": v} for k, v in (dropped or {}).items() if v])


@st.fragment(run_every=REFRESH_S)
def progress_panel(job_dir: str) -> None:
    """Live status of one job: progress bar, counts, dropped reasons, cancel/resume."""
    status = jobs.job_status(job_dir)
    state = status["state"]
    done, total = status.get("done") or 0, status.get("total") or 0
    st.progress(min(1.0, done / total) if total else (1.0 if state == "succeeded" else 0.0),
                text=f"{state} · {status.get('step', '')} {done}/{total}")
    a, b, c = st.columns(3)
    dropped = status.get("dropped") if isinstance(status.get("dropped"), dict) else {}
    a.metric("Generated", status.get("generated", 0))
    b.metric("Kept", status.get("kept", 0))
    c.metric("Dropped", sum(v for v in dropped.values() if isinstance(v, int)))
    if dropped and any(dropped.values()):
        st.dataframe(_counts_table(dropped), hide_index=True)
    if state in ACTIVE:
        if st.button("Cancel", icon=":material/cancel:", key="gen_cancel"):
            with common.user_errors():
                cancel_generation(ws, job_dir, user=user)
                st.info("Cancel requested: the job stops after its current batch.")
    elif state in ("interrupted", "cancelled", "failed"):
        if status.get("error"):
            st.error(status["error"], icon=":material/error:")
        if st.button("Resume", icon=":material/play_arrow:", key="gen_resume"):
            with common.user_errors():
                resume_generation(ws, job_dir, user=user)
                st.info("Resumed from the checkpoint.")
    elif state == "succeeded":
        res = status.get("result") or {}
        if res.get("version"):
            st.success(f"{res.get('kept')} candidate(s) in staging dataset {res.get('staging')} "
                       f"v{res.get('version')}: review them before merging.", icon=":material/check_circle:")
        else:
            st.info("Nothing was kept.")
        if res.get("coverage"):
            st.caption("Coverage per policy domain (kept prompts against the quota)")
            st.dataframe(pd.DataFrame(res["coverage"]), hide_index=True)
        items = job_dropped(job_dir, limit=500)
        if items:
            st.caption(f"Dropped items with their reasons ({len(items)} shown)")
            st.dataframe(pd.DataFrame(items), hide_index=True)


with common.user_errors():
    progress_panel(job_dir)
