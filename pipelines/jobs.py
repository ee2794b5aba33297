"""Background jobs: each runs in its own process with its own folder.

A job folder (``<workspace>/jobs/<job_id>/``) holds ``job.json`` (kind and parameters,
written by the launcher), ``status.json`` (rewritten atomically by the job: state,
progress, counts, error), and ``job.log`` (the child's stdout and stderr: a file, never
a pipe that nobody drains). The child opens the workspace store only briefly, to read
inputs and to commit its results in one transaction, so the app, ``wb`` commands and
other jobs keep working (see ``datastore/store.py`` for the one-writer rule).
A job that fails leaves no half-written version: its commit is one transaction.

Control: :func:`cancel_job` writes a ``cancel`` file that the job checks between units of
work (it then ends as ``cancelled``); a job whose process died (killed, machine restarted)
shows as ``interrupted`` in :func:`job_status`; :func:`resume_job` starts a new child on the
same folder, which continues from the job's checkpoint (``pipelines/generate/checkpoint.py``)
without repeating or losing finished work. ``job.json`` records every attempt.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from datastore.errors import NotFound, WorkbenchError

from .generate.checkpoint import Cancelled

JOB_KINDS: dict[str, Callable[[Path, dict, Callable[[dict], None]], dict]] = {}


def register(kind: str):
    """Decorator: ``@register("import")`` on ``f(workspace, params, report) -> result``."""
    def deco(fn):
        JOB_KINDS[kind] = fn
        return fn
    return deco


FINAL_STATES = ("succeeded", "failed", "cancelled")


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
    _spawn(d)
    return d


def _spawn(d: Path) -> int:
    from .processes import spawn_module
    proc = spawn_module("pipelines.jobs", [str(d)], log_path=d / "job.log", cwd=os.getcwd())
    st = _read_status(d)
    if st.get("state", "queued") == "queued":  # the child has not started writing its own status
        _write_json(d / "status.json", {**st, "state": "queued", "pid": proc.pid, "updated_at": time.time()})
    return proc.pid


def _read_status(d: Path) -> dict:
    p = d / "status.json"
    for _ in range(5):  # written atomically with os.replace; a reader can still race a rename on some FS
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, FileNotFoundError):
            time.sleep(0.05)
    raise NotFound(f"no job at {d}")


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live (not zombie) job process (``python -m pipelines.jobs``)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return b"pipelines.jobs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)


def job_status(job_dir: str | Path) -> dict:
    """The job's ``status.json``; a ``queued``/``running`` job whose process is gone is reported
    as ``interrupted`` (it can be resumed). Raises NotFound for a folder without a job."""
    d = Path(job_dir)
    if not (d / "status.json").exists():
        raise NotFound(f"no job at {job_dir}")
    st = _read_status(d)
    if st.get("state") in ("queued", "running") and st.get("pid") and not pid_alive(st.get("pid")):
        st = _read_status(d)  # the job may have written its final status and exited since the first read
        if st.get("state") in ("queued", "running"):
            st = {**st, "state": "interrupted"}
    return st


def list_jobs(workspace: str | Path, kind: str | None = None) -> list[dict]:
    """Jobs of the workspace, newest first: ``{"job_id", "job_dir", "kind", "user", "params",
    "created_at", "status"}``."""
    root = Path(workspace) / "jobs"
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir(), reverse=True):
            try:
                spec = json.loads((d / "job.json").read_text())
                st = job_status(d)
            except (OSError, json.JSONDecodeError, NotFound):
                continue
            if kind is None or spec.get("kind") == kind:
                out.append({"job_id": spec["job_id"], "job_dir": str(d), "kind": spec["kind"], "user": spec.get("user"),
                            "params": spec.get("params"), "created_at": spec.get("created_at"), "status": st})
    return out


def cancel_job(job_dir: str | Path) -> dict:
    """Ask the job to stop: writes ``cancel`` in its folder; the job ends as ``cancelled`` after
    its current unit of work. A job whose process is already gone is marked cancelled at once.
    Returns the status."""
    d = Path(job_dir)
    st = job_status(d)
    if st["state"] in FINAL_STATES:
        return st
    (d / "cancel").write_text(str(time.time()))
    if st["state"] == "interrupted":
        st = {**st, "state": "cancelled", "ended_at": time.time(), "updated_at": time.time()}
        _write_json(d / "status.json", st)
    return st


def resume_job(job_dir: str | Path, params_update: dict | None = None) -> Path:
    """Start a new child on an ``interrupted``, ``failed`` or ``cancelled`` job; it continues
    from the job's checkpoint. ``params_update`` (top-level keys of the job's parameters) is
    merged into ``job.json`` first and recorded in the attempt as ``changed``. Raises Conflict
    while the job still runs, WorkbenchError for a job that succeeded."""
    from datastore.errors import Conflict
    d = Path(job_dir)
    st = job_status(d)
    if st["state"] in ("queued", "running"):
        raise Conflict(f"job {d.name} is still {st['state']} (pid {st.get('pid')}); cancel it first")
    if st["state"] == "succeeded":
        raise WorkbenchError(f"job {d.name} already succeeded; nothing to resume")
    (d / "cancel").unlink(missing_ok=True)
    spec = json.loads((d / "job.json").read_text())
    attempt = {"resumed_at": time.time(), "from_state": st["state"]}
    if params_update:
        spec["params"] = {**spec["params"], **params_update}
        attempt["changed"] = params_update
    spec.setdefault("attempts", []).append(attempt)
    _write_json(d / "job.json", spec)
    _write_json(d / "status.json", {**{k: v for k, v in st.items() if k not in ("error", "ended_at", "result")},
                                    "state": "queued", "updated_at": time.time()})
    _spawn(d)
    return d


def wait_job(job_dir: str | Path, timeout_s: float = 600) -> dict:
    """Poll until the job ends; returns its final status."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        st = job_status(job_dir)
        if st["state"] in FINAL_STATES or st["state"] == "interrupted":
            return st
        time.sleep(0.2)
    raise WorkbenchError(f"job {job_dir} still running after {timeout_s} s")


def run_job(job_dir: str | Path) -> dict:
    """Run a job in this process (the child side of :func:`start_job`)."""
    _load_kinds()
    d = Path(job_dir)
    spec = json.loads((d / "job.json").read_text())
    prev = _read_status(d) if (d / "status.json").exists() else {}
    status = {k: v for k, v in prev.items() if k not in ("state", "error", "result", "ended_at")}
    status.update({"state": "running", "pid": os.getpid(), "started_at": time.time(),
                   "attempt": len(spec.get("attempts", [])) + 1})
    _write_json(d / "status.json", {**status, "updated_at": time.time()})

    def report(progress: dict) -> None:
        status.update(progress)
        _write_json(d / "status.json", {**status, "updated_at": time.time()})

    try:
        result = JOB_KINDS[spec["kind"]](Path(spec["workspace"]), {**spec["params"], "_user": spec["user"],
                                                                    "_job_dir": str(d)}, report)
        status.update({"state": "succeeded", "result": result})
    except Cancelled as e:
        status.update({"state": "cancelled", "error": str(e)})
    except WorkbenchError as e:
        status.update({"state": "failed", "error": str(e)})
    except Exception as e:  # a crash: keep the traceback in the log, one line in status
        traceback.print_exc()
        status.update({"state": "failed", "error": f"{type(e).__name__}: {e}"})
    status["ended_at"] = time.time()
    _write_json(d / "status.json", {**status, "updated_at": time.time()})
    return status


def _load_kinds() -> None:
    if "generate" not in JOB_KINDS:
        from . import job_kinds  # noqa: F401  (registers the kinds)


if __name__ == "__main__":
    # run through the package module, not __main__, so kinds register in one registry
    from pipelines import jobs as _jobs
    st = _jobs.run_job(sys.argv[1])
    sys.exit(0 if st["state"] == "succeeded" else 1)
