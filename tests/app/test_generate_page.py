"""The Generate page through AppTest: curators and admins only, launch a run, live progress
panel, dropped items with reasons, cancel and resume controls."""
from __future__ import annotations

import json
import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pipelines import jobs
from pipelines.generate.service import list_generation_jobs

from ..pipelines.generate.helpers import SI_SCRIPT, make_workspace, staged
from .pages import open_page

PAGE = "pages/6_Generate.py"
TIMEOUT_S = 60

os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


def _page(ws: Path, user: str) -> AppTest:
    return open_page(ws, PAGE, user, timeout_s=TIMEOUT_S)


def test_annotator_sees_no_form(tmp_workspace):
    ws = make_workspace(tmp_workspace)
    at = _page(ws, "ann")
    assert any("Only curators and admins can generate" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "gen_launch"]


def test_curator_launches_and_follows_a_run(tmp_workspace):
    ws = make_workspace(tmp_workspace)
    at = _page(ws, "cur")
    assert at.selectbox(key="gen_method").options[:2] == ["self-instruct", "instances"]
    assert "scripted" in at.selectbox(key="gen_backend").options
    at.selectbox(key="gen_backend").set_value("scripted").run()
    at.selectbox(key="gen_seed_dataset").set_value("seeds")
    at.number_input(key="gen_rounds").set_value(2)
    at.number_input(key="gen_ppr").set_value(2)
    at.number_input(key="gen_max_tokens").set_value(64)
    at.text_area(key="gen_backend_options").set_value(json.dumps(SI_SCRIPT))
    at.button(key="gen_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Started job" in s.value for s in at.success)
    job = list_generation_jobs(ws, user="cur")[0]
    assert job["params"]["backend"] == "scripted" and job["params"]["params"]["max_rounds"] == 2
    assert job["params"]["sampling"]["max_tokens"] == 64
    st = jobs.wait_job(job["job_dir"], 60)
    assert st["state"] == "succeeded"
    at.run()
    assert not at.exception
    assert any("review them before merging" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Kept"]) == st["result"]["kept"] == len(staged(ws, "self-instruct-candidates"))
    # the dropped items with their reasons, when any were dropped
    if sum(st["result"]["dropped"].values()):
        assert any("reason" in df.value.columns for df in at.dataframe)


def test_seed_set_defaults_to_seed_tasks(tmp_workspace):
    from datastore import Sample, Store
    from datastore import versions as V
    ws = make_workspace(tmp_workspace)
    at = _page(ws, "cur")
    assert at.selectbox(key="gen_seed_dataset").value == "pool"  # no seed-tasks: the first dataset
    with Store(ws) as st:
        for name in ("conc-1", "seed-tasks"):
            V.commit(st, name, author="cur", message=name, create=True,
                     add=[Sample(kind="instruction", instruction=f"A task of {name}.", output="Done.").to_row()])
    at = _page(ws, "cur")
    assert at.selectbox(key="gen_seed_dataset").options[0] == "conc-1"
    assert at.selectbox(key="gen_seed_dataset").value == "seed-tasks"


def test_staging_name_and_the_started_job_is_shown(tmp_workspace):
    from pipelines.generate.service import launch_generation
    ws = make_workspace(tmp_workspace)
    request = {"method": "self-instruct", "backend": "scripted", "backend_options": SI_SCRIPT, "batch_size": 2,
               "params": {"seed_dataset": "seeds", "target_kept": 2, "max_rounds": 1, "prompts_per_round": 2,
                          "instances": False}}
    first = launch_generation(ws, request, user="cur")
    assert jobs.wait_job(first, 60)["state"] == "succeeded"
    at = _page(ws, "cur")
    assert at.selectbox(key="gen_run_pick").value == str(first)
    # the staging dataset is a visible field of the form (not inside "Sampling parameters")
    staging = at.text_input(key="gen_staging_self-instruct")
    assert staging.label == "Staging dataset" and staging.value == "self-instruct-candidates"
    assert all(w.key != staging.key for e in at.expander for w in e.text_input)
    staging.set_value("my-candidates")
    at.selectbox(key="gen_backend").set_value("scripted").run()
    at.selectbox(key="gen_seed_dataset").set_value("seeds")
    at.number_input(key="gen_rounds").set_value(1)
    at.number_input(key="gen_ppr").set_value(2)
    at.checkbox(key="gen_instances").uncheck()
    at.text_area(key="gen_backend_options").set_value(json.dumps(SI_SCRIPT))
    at.button(key="gen_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    newest = next(j for j in list_generation_jobs(ws, user="cur") if j["job_dir"] != str(first))
    assert newest["job_dir"] != str(first) and newest["params"]["staging"] == "my-candidates"
    assert [s.value for s in at.success if "Started job" in s.value] == [f"Started job {newest['job_id']}."]
    # the runs panel follows the job just started, not the one picked before
    assert at.selectbox(key="gen_run_pick").value == newest["job_dir"]
    st = jobs.wait_job(newest["job_dir"], 60)
    assert st["state"] == "succeeded" and st["result"]["staging"] == "my-candidates"
    assert len(staged(ws, "my-candidates")) == st["result"]["kept"] > 0
    at.run()
    assert at.selectbox(key="gen_run_pick").value == newest["job_dir"]


def test_bad_backend_options_are_a_message(tmp_workspace):
    ws = make_workspace(tmp_workspace)
    at = _page(ws, "ada")
    at.text_area(key="gen_backend_options").set_value("{not json").run()
    at.button(key="gen_launch").click().run()
    assert any("backend options are not JSON" in e.value for e in at.error)
    assert list_generation_jobs(ws, user="ada") == []


def test_cancel_and_resume_buttons(tmp_workspace):
    from pipelines.generate.service import launch_generation
    ws = make_workspace(tmp_workspace)
    d = launch_generation(ws, {"method": "self-instruct", "backend": "scripted",
                               "backend_options": {**SI_SCRIPT, "delay_s": 0.5},
                               "params": {"seed_dataset": "seeds", "target_kept": 100, "max_rounds": 6,
                                          "prompts_per_round": 2}, "batch_size": 2}, user="cur")
    at = _page(ws, "cur")
    assert at.selectbox(key="gen_run_pick").value == str(d)
    at.button(key="gen_cancel").click().run()
    assert any("Cancel requested" in i.value for i in at.info)
    assert jobs.wait_job(d, 30)["state"] == "cancelled"
    at.run()
    at.button(key="gen_resume").click().run()
    assert any("Resumed from the checkpoint" in i.value for i in at.info)
    assert jobs.wait_job(d, 60)["state"] == "succeeded"
