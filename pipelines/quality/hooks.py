"""Run the validation gate after every commit, without slowing the commit.

- Inside the commit's transaction (``IN_COMMIT_HOOKS``): when the dataset has a suite, the
  new version's gate row is written as ``pending``, so the version never exists without a
  gate state. Cost: one indexed lookup (datasets without a suite) or one insert.
- After the commit (``AFTER_COMMIT_HOOKS``): a background job (``pipelines.jobs``, kind
  ``quality_gate``, its own process and job folder) runs the gate and stores the result,
  then computes the version's metric snapshot so the dashboard opens warm. The commit
  returns as soon as the job process is spawned (a few milliseconds).

Which commits: only those of **datasets that have a suite** (``wb gate init`` or the
Quality page creates one). That keeps the hundreds of commits in the test suite, and
datasets nobody gates, free of any job. ``WB_QUALITY_GATE=off`` switches scheduling off
altogether (a version then shows ``not-run`` until ``wb gate run``, and
``check_launchable`` runs the gate itself). Installed by ``pipelines/__init__.py``; this
module imports only ``datastore`` and ``pipelines.jobs`` (both cheap).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from datastore import quality as Q
from datastore import versions as V
from pipelines import jobs

log = logging.getLogger("workbench.quality")
ENV = "WB_QUALITY_GATE"
JOB_KIND = "quality_gate"


def enabled() -> bool:
    """False when ``WB_QUALITY_GATE`` is ``off``, ``0`` or ``false``."""
    return os.environ.get(ENV, "job").strip().lower() not in ("off", "0", "false", "no")


def _in_commit(conn, ds, number: int, changed: dict) -> None:
    if not enabled():
        return
    row = conn.execute("SELECT suite_hash FROM quality_suites WHERE dataset_id = ?", [ds.dataset_id]).fetchall()
    if row:
        Q.mark_pending(conn, ds.dataset_id, number, row[0][0])


def _after_commit(store, version) -> None:
    if not enabled():
        return
    g = store.conn.execute("SELECT status FROM quality_gate_results WHERE version_id = ?",
                           [version.version_id]).fetchall()
    if g and g[0][0] == "pending":
        launch(store.workspace, version, store=store)


def launch(workspace: str | Path, version, *, store=None) -> Path | None:
    """Start the background gate job for ``version`` and record its folder on the gate row."""
    if not enabled():
        return None
    d = jobs.start_job(workspace, JOB_KIND, {"dataset": version.dataset, "version": version.number},
                       user=version.author)
    if store is not None:
        Q.set_gate_job(store, version.version_id, str(d))
    else:
        from datastore import Store
        with Store(workspace, create=False) as st:
            Q.set_gate_job(st, version.version_id, str(d))
    return d


@jobs.register(JOB_KIND)
def gate_job(workspace: Path, params: dict, report) -> dict:
    """Background side: run the gate (waiting up to 10 min for the store), then warm the
    version's metric snapshot (a failure there is logged, never fails the gate)."""
    from . import gates, metrics
    report({"step": "gate", "dataset": params["dataset"], "version": params["version"]})
    res = gates.run_gate(workspace, params["dataset"], params["version"], user=params.get("_user"),
                         store_timeout_s=600)
    if os.environ.get("WB_QUALITY_SNAPSHOT", "on").lower() not in ("off", "0", "false"):
        report({"step": "metrics"})
        try:
            metrics.compute(workspace, params["dataset"], params["version"], live=False, check_permission=False)
        except Exception:  # noqa: BLE001
            log.exception("metric snapshot after the gate failed")
    return {"status": res["status"]}


def install() -> None:
    """Register the hooks (idempotent)."""
    if _in_commit not in V.IN_COMMIT_HOOKS:
        V.IN_COMMIT_HOOKS.append(_in_commit)
    if _after_commit not in V.AFTER_COMMIT_HOOKS:
        V.AFTER_COMMIT_HOOKS.append(_after_commit)
