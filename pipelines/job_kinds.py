"""The job kinds that run in the background (registered into ``jobs.JOB_KINDS``)."""
from __future__ import annotations

from pathlib import Path

from .jobs import register


@register("import")
def import_job(workspace: Path, params: dict, report) -> dict:
    """Parse a file (no store held), then commit it in one short transaction."""
    from .formats import import_file
    report({"step": "import", "file": params["path"]})
    rep = import_file(workspace, params["path"], params["dataset"], user=params["_user"],
                      fmt=params.get("format"), quarantine=params.get("quarantine", False),
                      progress=lambda i: report({"records_read": i}))
    return {"dataset": rep.dataset, "version": rep.version, "imported": rep.imported,
            "quarantined": rep.quarantined}


@register("generate")
def generate_job(workspace: Path, params: dict, report) -> dict:
    """A generation run (``pipelines.generate.service.run_generation``) with its checkpoint,
    cancel file and dropped items in the job folder; resumable after a kill."""
    from .generate.service import run_generation
    req = {k: v for k, v in params.items() if not k.startswith("_")}
    return run_generation(workspace, req, user=params["_user"], job_dir=params["_job_dir"], progress=report)
