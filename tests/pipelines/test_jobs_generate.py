"""Generation as a background job: live counts, staging with lineage, permissions, cancel,
and resume after a kill without duplicating or losing items."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from datastore import PermissionDenied, Store
from datastore.errors import Conflict
from datastore import versions as V
from pipelines import jobs
from pipelines.generate.checkpoint import Checkpoint
from pipelines.generate.service import (cancel_generation, job_dropped, launch_generation, list_generation_jobs,
                                        resume_generation, run_generation)

from .generate.helpers import SI_SCRIPT, make_workspace, staged, versions


def _request(delay_s: float = 0.0, rounds: int = 3, staging: str | None = None) -> dict:
    return {"method": "self-instruct", "backend": "scripted",
            "backend_options": {**SI_SCRIPT, "delay_s": delay_s},
            "params": {"seed_dataset": "seeds", "target_kept": 100, "max_rounds": rounds, "prompts_per_round": 2},
            "sampling": {"max_tokens": 64, "seed": 5}, "batch_size": 2, "staging": staging}


def _content(samples):
    return [(s.instruction, s.input, s.output) for s in samples]


@pytest.fixture
def ws(tmp_workspace):
    return make_workspace(tmp_workspace)


def _wait_for(pred, timeout_s=30.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_background_job_stages_candidates_with_lineage(ws):
    d = launch_generation(ws, _request(), user="cur")
    st = jobs.wait_job(d, 60)
    assert st["state"] == "succeeded", (d / "job.log").read_text()
    res = st["result"]
    assert res["staging"] == "self-instruct-candidates" and res["version"] == 1
    assert st["generated"] == res["generated"] and st["kept"] == res["kept"] and isinstance(st["dropped"], dict)
    with Store(ws) as s:
        assert V.get_dataset(s, "self-instruct-candidates").kind == "staging"
        assert [v.number for v in V.log(s, "pool")] == [1]  # nothing reached a target dataset
    cands = staged(ws, "self-instruct-candidates")
    assert len(cands) == res["kept"] > 0
    lin = cands[0].lineage
    assert lin["job_id"] == d.name and lin["backend"] == "scripted" and lin["model"] == "scripted"
    assert lin["seed_instructions"] and lin["prompt_template_hash"] and lin["sampling"]["seed"] >= 5
    assert lin["instances"]["prompt_template_hash"] and lin["instances"]["template"].startswith("generate/instances_")
    assert versions(ws, "self-instruct-candidates")[0].operation["job_id"] == d.name
    rows = list_generation_jobs(ws, user="cur")
    assert rows[0]["job_id"] == d.name and rows[0]["status"]["state"] == "succeeded"
    assert all({"text", "reason"} <= set(x) for x in job_dropped(d))


def test_only_curators_and_admins_generate(ws):
    with pytest.raises(PermissionDenied):
        launch_generation(ws, _request(), user="ann")
    with pytest.raises(PermissionDenied):
        run_generation(ws, _request(), user="ann")
    assert not (ws / "jobs").exists() or not list((ws / "jobs").iterdir())


def test_kill_then_resume_neither_duplicates_nor_loses(ws):
    baseline = run_generation(ws, _request(rounds=4, staging="baseline"), user="ada")
    want = _content(staged(ws, "baseline"))
    # one line that says what happened, in the units of each stage (target 100 is out of reach)
    b = baseline
    assert b["summary"].startswith(
        f"{b['generated']} instruction(s) generated in 4 round(s), {b['instructions_kept']} kept "
        f"(target 100: max_rounds=4 reached; raise --max-rounds or lower --target-kept), "
        f"{b['generated'] - b['instructions_kept']} dropped; {b['tasks_with_instances']} of them got instances: "
        f"{b['instances']} sample(s) staged, "), b["summary"]
    assert b["instances"] == b["kept"] > 0
    d = launch_generation(ws, _request(delay_s=0.4, rounds=4), user="cur")
    ck = d / "checkpoint.jsonl"
    assert _wait_for(lambda: ck.exists() and len(Checkpoint(ck)) >= 2), (d / "job.log").read_text()
    pid = jobs.job_status(d)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: jobs.job_status(d)["state"] == "interrupted", 10)
    n_before = len(Checkpoint(ck))
    resume_generation(ws, d, user="cur")
    st = jobs.wait_job(d, 90)
    assert st["state"] == "succeeded", (d / "job.log").read_text()
    got = _content(staged(ws, "self-instruct-candidates"))
    assert got == want and len(got) == baseline["kept"]
    recs = [json.loads(x) for x in ck.read_text().splitlines()]
    keys = [(r["stage"], r["index"]) for r in recs]
    assert len(keys) == len(set(keys)) and len(keys) >= n_before  # no unit generated twice
    assert len(versions(ws, "self-instruct-candidates")) == 1
    assert json.loads((d / "job.json").read_text())["attempts"][0]["from_state"] == "interrupted"


def test_cancel_then_resume(ws):
    d = launch_generation(ws, _request(delay_s=0.4, rounds=4), user="cur")
    assert _wait_for(lambda: (d / "checkpoint.jsonl").exists())
    with pytest.raises(Conflict, match="still running"):
        resume_generation(ws, d, user="cur")
    cancel_generation(ws, d, user="cur")
    st = jobs.wait_job(d, 30)
    assert st["state"] == "cancelled"
    with Store(ws) as s:
        assert "self-instruct-candidates" not in [x.name for x in V.list_datasets(s)]  # nothing staged
    resume_generation(ws, d, user="cur")
    assert jobs.wait_job(d, 90)["state"] == "succeeded"
    assert not (d / "cancel").exists()
    with pytest.raises(Exception, match="already succeeded"):
        resume_generation(ws, d, user="cur")


def test_resume_after_commit_does_not_commit_twice(ws, tmp_path):
    jd = tmp_path / "job-x"
    jd.mkdir()
    first = run_generation(ws, _request(), user="cur", job_dir=jd)
    again = run_generation(ws, _request(), user="cur", job_dir=jd)
    assert again["resumed_after_commit"] and again["version"] == first["version"] == 1
    assert len(versions(ws, "self-instruct-candidates")) == 1
