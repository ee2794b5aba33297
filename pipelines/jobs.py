"""Background jobs: each runs in its own process with its own folder.

A job folder (``<workspace>/jobs/<job_id>/``) holds ``job.json`` (kind and parameters,
written by the launcher), ``status.json`` (rewritten atomically by the job: state,
progress, counts, error), and ``job.log`` (the child's stdout and stderr: a file, never
a pipe that nobody drains). The child opens the workspace store only briefly, to read
inputs and to commit its results in one transaction, so the app, ``wb`` commands and
other jobs keep working (see ``datastore/store.py`` for the one-writer rule).
A job that fails leaves no half-written version: its commit is one transaction.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from datastore.errors import NotFound, WorkbenchError

JOB_KINDS: dict[str, Callable[[Path, dict, Callable[[dict], None]], dict]] = {}


def register(kind: str):
    """Decorator: ``@register("import")`` on ``f(workspace, params, report) -> result``."""
    def deco(fn):
        JOB_KINDS[kind] = fn
        return fn
    return deco


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=str))
    os.replace(tmp, path)


def start_job(workspace: str | Path, kind: str, params: dict, *, user: str) -> Path:
    """Launch a job in a detached child process; return its folder.

    Raises WorkbenchError for an unknown kind.
    """
    _load_kinds()
    if kind not in JOB_KINDS:
        raise WorkbenchError(f"unknown job kind '{kind}'; known: {sorted(JOB_KINDS)}")
    ws = Path(workspace).resolve()
    job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    d = ws / "jobs" / job_id
    d.mkdir(parents=True)
    _write_json(d / "job.json", {"job_id": job_id, "kind": kind, "params": params, "user": user,
                                 "workspace": str(ws), "created_at": time.time()})
    _write_json(d / "status.json", {"state": "queued", "updated_at": time.time()})
    log = open(d / "job.log", "ab")
    subprocess.Popen([sys.executable, "-m", "pipelines.jobs", str(d)], stdout=log, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())
    log.close()
    return d


def job_status(job_dir: str | Path) -> dict:
    p = Path(job_dir) / "status.json"
    if not p.exists():
        raise NotFound(f"no job at {job_dir}")
    return json.loads(p.read_text())


def wait_job(job_dir: str | Path, timeout_s: float = 600) -> dict:
    """Poll until the job ends; returns its final status."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        st = job_status(job_dir)
        if st["state"] in ("succeeded", "failed", "cancelled"):
            return st
        time.sleep(0.2)
    raise WorkbenchError(f"job {job_dir} still running after {timeout_s} s")


def run_job(job_dir: str | Path) -> dict:
    """Run a job in this process (the child side of :func:`start_job`)."""
    _load_kinds()
    d = Path(job_dir)
    spec = json.loads((d / "job.json").read_text())
    status = {"state": "running", "pid": os.getpid(), "started_at": time.time()}
    _write_json(d / "status.json", {**status, "updated_at": time.time()})

    def report(progress: dict) -> None:
        status.update(progress)
        _write_json(d / "status.json", {**status, "updated_at": time.time()})

    try:
        result = JOB_KINDS[spec["kind"]](Path(spec["workspace"]), {**spec["params"], "_user": spec["user"]}, report)
        status.update({"state": "succeeded", "result": result})
    except WorkbenchError as e:
        status.update({"state": "failed", "error": str(e)})
    except Exception as e:  # a crash: keep the traceback in the log, one line in status
        traceback.print_exc()
        status.update({"state": "failed", "error": f"{type(e).__name__}: {e}"})
    status["ended_at"] = time.time()
    _write_json(d / "status.json", {**status, "updated_at": time.time()})
    return status


def _load_kinds() -> None:
    if "import" not in JOB_KINDS:
        from . import job_kinds  # noqa: F401  (registers the kinds)


if __name__ == "__main__":
    # run through the package module, not __main__, so kinds register in one registry
    from pipelines import jobs as _jobs
    st = _jobs.run_job(sys.argv[1])
    sys.exit(0 if st["state"] == "succeeded" else 1)
