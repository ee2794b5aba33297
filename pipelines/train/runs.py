"""Training runs as background processes, one folder each: launch, list, stop, resume.

A run folder ``<workspace>/runs/<run_id>/`` is the source of truth (docs/architecture.md section 6):
``train_config.json``, ``data/`` (the pinned versions as Parquet plus ``manifest.json``),
``preflight.json``, ``status.json`` (state, pid, error), ``progress.jsonl``, ``train.log`` (the
child's stdout and stderr go to this file, never to a pipe nobody drains), ``checkpoints/``,
``adapter/`` or ``model/``, ``run_card.json``. The app and ``wb`` find runs again after a restart
by reading these folders; a run whose status says ``running`` but whose process is gone is
reported (and recorded) as failed with the end of its log.

Every service function that acts for a user calls ``pipelines.policy.require(store, user, "train")``
(curators and admins); listing needs ``read_datasets``.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from datastore.errors import NotFound, WorkbenchError
from pipelines.train.config import TrainConfig
from pipelines.train.runner import PREFLIGHT, STATUS, write_status
from pipelines.train.sft import STOP_FILE, _progress_lines, last_checkpoint

RUNS = "runs"
REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "stopped")
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started (reaped on status reads)


class GateFailed(WorkbenchError):
    """The dataset version failed its validation gate and no curator overrode it."""


def runs_root(workspace: str | Path) -> Path:
    return Path(workspace) / RUNS


def run_path(workspace: str | Path, run_id: str) -> Path:
    """The folder of ``run_id``. Raises NotFound."""
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise NotFound(f"no training run '{run_id}'")
    p = runs_root(workspace) / run_id
    if not (p / "train_config.json").exists():
        raise NotFound(f"no training run '{run_id}' in {runs_root(workspace)}")
    return p


def _require(workspace, user: str, action: str = "train") -> str:
    from datastore import Store
    from pipelines.policy import require

    with Store(workspace) as st:
        return require(st, user, action)[0]


def check_gate(workspace, dataset: str, version: int, *, user: str) -> str:
    """Run the quality area's launch check when it is installed. Returns ``"passed"`` or
    ``"no gate installed"``. Raises what ``pipelines.quality.gates.check_launchable`` raises
    (a version that failed its gate without a curator override)."""
    try:
        from pipelines.quality.gates import check_launchable
    except ModuleNotFoundError as e:
        if e.name in ("pipelines.quality", "pipelines.quality.gates"):
            return "no gate installed"
        raise
    check_launchable(workspace, dataset, version, user=user)
    return "passed"


def preflight_all(workspace, config: TrainConfig, refs, base_path: Path) -> dict:
    """Run the template preflight on each pinned version. Returns ``{dataset: report dict}``.

    Raises:
        PreflightFailed: a version has preflight errors (the message lists them)."""
    from pipelines.preflight import check_before_training, run_preflight

    out = {}
    for r in refs:
        rep = run_preflight(workspace, r.dataset, r.version_number, train_template=config.template,
                            serve_template=config.serve_template or config.template,
                            tokenizer_path=str(base_path), max_length_tokens=config.max_length_tokens,
                            over_length_policy=config.over_length_policy)
        check_before_training(rep)
        out[r.dataset] = rep.model_dump(mode="json")
    return out


def new_run_id(config: TrainConfig) -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + config.method + "-" + secrets.token_hex(2)


def _spawn(run_dir: Path, *, resume: bool = False) -> int:
    from pipelines.processes import spawn_module
    p = spawn_module("pipelines.train.runner", [str(run_dir)] + (["--resume"] if resume else []),
                     log_path=run_dir / "train.log", cwd=REPO_ROOT)
    _CHILDREN[p.pid] = p
    try:
        cur = json.loads((run_dir / STATUS).read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):
        cur = None
    if cur in (None, "queued", "prepared"):  # the child may already have written "running"
        write_status(run_dir, state="starting", pid=p.pid, launched_at=time.time())
    return p.pid


def launch(workspace: str | Path, config: TrainConfig | dict, *, user: str, run_id: str | None = None,
           preflight: bool = True, start: bool = True) -> Path:
    """Validate, pin, gate, preflight, export and start a run; returns its folder.

    Order (nothing is written and no process starts until every check passed): the user may
    train; the config is possible (:func:`pipelines.train.validate.validate_config`); each dataset
    version is pinned by content hash; licences that forbid commercial use are acknowledged in
    ``acknowledge_licences`` (:func:`pipelines.train.licences.check_acknowledged`); the quality gate (when installed) and the preflight pass.
    Then the folder is written and ``python -m pipelines.train.runner RUN_DIR`` starts detached.

    Raises:
        PermissionDenied, ConfigRefused (also ``LicencesNotAcknowledged``), NotFound, Conflict (pinned
        hash differs), the gate's error, PreflightFailed.
    """
    from pipelines.models import ensure_base_model
    from pipelines.train.data import export_versions, pin_versions
    from pipelines.train.licences import check_acknowledged, training_licences
    from pipelines.train.validate import parse_config, validate_config

    ws = Path(workspace)
    user = _require(ws, user)
    cfg = parse_config(config) if isinstance(config, dict) else config
    base_path = Path(cfg.base_model) if cfg.base_model else ensure_base_model()
    validate_config(cfg, base_path)
    refs = pin_versions(ws, cfg.datasets)
    check_acknowledged(training_licences(ws, refs), cfg.acknowledge_licences)
    gates = {r.dataset: check_gate(ws, r.dataset, r.version_number, user=user) for r in refs}
    reports = preflight_all(ws, cfg, refs, base_path) if preflight else {}
    cfg = cfg.model_copy(update={"datasets": refs})
    run_id = run_id or new_run_id(cfg)
    run_dir = runs_root(ws) / run_id
    if run_dir.exists():
        raise WorkbenchError(f"run folder {run_dir} already exists")
    run_dir.mkdir(parents=True)
    export_versions(ws, refs, run_dir)
    cfg.save(run_dir / "train_config.json")
    (run_dir / PREFLIGHT).write_text(json.dumps(reports, indent=2, default=str) + "\n", encoding="utf-8")
    write_status(run_dir, state="queued" if start else "prepared", user=user, created_at=time.time(), gates=gates,
                 pid=None)
    if start:
        _spawn(run_dir)
    return run_dir


def _alive(pid: int | None, run_dir: Path) -> bool:
    """True when ``pid`` is a live (not zombie) training process of this run."""
    if not pid:
        return False
    p = _CHILDREN.get(pid)
    if p is not None:  # our own child: poll() is exact (and reaps it), even before its exec
        if p.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if any(b"pipelines.train.runner" in c for c in cmd):
            return any(run_dir.name.encode() in c for c in cmd)
        # another launcher's child between fork and exec still shows its parent's command line
        st = json.loads((run_dir / STATUS).read_text(encoding="utf-8"))
        return st.get("state") == "starting" and time.time() - float(st.get("launched_at") or 0) < 30
    except (OSError, ValueError):
        return True  # no /proc: trust kill(0)


def log_tail(run_dir: str | Path, n: int = 30) -> str:
    """The last ``n`` lines of ``train.log``."""
    p = Path(run_dir) / "train.log"
    if not p.exists():
        return ""
    with p.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64_000))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-n:])


def progress_records(run_dir: str | Path) -> list[dict]:
    """Every record of ``progress.jsonl`` (a torn last line is skipped)."""
    return _progress_lines(run_dir)


def run_status(run_dir: str | Path) -> dict:
    """The state of one run folder, reconciled with its process.

    Returns ``{"run_id", "state", "pid", "step", "total", "loss", "eval_loss", "elapsed_s",
    "remaining_s", "tokens_per_s", "error", "log_tail" (failed runs), "method", "datasets",
    "card" (finished runs), "has_checkpoint"}``. ``state`` is one of queued, starting, running,
    succeeded, stopped, failed; a ``running``/``starting`` run whose process is gone becomes
    ``failed`` (and is recorded so).
    """
    run_dir = Path(run_dir)
    st = {}
    if (run_dir / STATUS).exists():
        try:
            st = json.loads((run_dir / STATUS).read_text(encoding="utf-8"))
        except ValueError:
            st = {}
    card = None
    if (run_dir / "run_card.json").exists():
        card = json.loads((run_dir / "run_card.json").read_text(encoding="utf-8"))
    state = st.get("state") or ("succeeded" if card else "unknown")
    if state in ("starting", "running") and not _alive(st.get("pid"), run_dir):
        time.sleep(0.2)  # the child may be writing its final status right now
        try:
            st = json.loads((run_dir / STATUS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        state = st.get("state", state)
        if state in ("starting", "running"):
            st = write_status(run_dir, state="failed", ended_at=time.time(),
                              error=f"the training process (pid {st.get('pid')}) ended without a result "
                                    "(killed or crashed); see the log")
            state = "failed"
    recs = progress_records(run_dir)
    steps = [r for r in recs if "loss" in r and "event" not in r]
    evals = [r for r in recs if r.get("event") == "eval"]
    last = steps[-1] if steps else {}
    total = next((r.get("total") for r in reversed(recs) if r.get("total")), None)
    try:
        cfg = json.loads((run_dir / "train_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    out = {"run_id": run_dir.name, "run_dir": str(run_dir), "state": state, "pid": st.get("pid"),
           "user": st.get("user"), "created_at": st.get("created_at"),
           "step": last.get("step", 0), "total": total or cfg.get("max_steps"), "loss": last.get("loss"),
           "eval_loss": evals[-1]["eval_loss"] if evals else None, "elapsed_s": last.get("elapsed_s"),
           "remaining_s": 0.0 if state in TERMINAL else last.get("remaining_s"),
           "tokens_per_s": last.get("tokens_per_s"), "error": st.get("error"),
           "method": cfg.get("method"), "datasets": cfg.get("datasets", []), "card": card,
           "has_checkpoint": last_checkpoint(run_dir) is not None,
           "stop_requested": (run_dir / STOP_FILE).exists()}
    if state == "failed":
        out["log_tail"] = log_tail(run_dir)
    return out


def list_runs(workspace: str | Path, *, user: str | None = None) -> list[dict]:
    """:func:`run_status` of every run folder, newest first (needs ``read_datasets`` when ``user``
    is given)."""
    if user is not None:
        _require(workspace, user, "read_datasets")
    root = runs_root(workspace)
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and (d / "train_config.json").exists()]
    dirs.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    return [run_status(d) for d in dirs]


def stop_run(workspace: str | Path, run_id: str, *, user: str) -> dict:
    """Ask a run to stop: it finishes its current step, saves a checkpoint and its adapter, and ends
    as ``stopped``. Returns the run's status. Raises NotFound; WorkbenchError when it is not running."""
    _require(workspace, user)
    d = run_path(workspace, run_id)
    st = run_status(d)
    if st["state"] not in ("queued", "starting", "running"):
        raise WorkbenchError(f"run {run_id} is {st['state']}, not running")
    (d / STOP_FILE).touch()
    return run_status(d)


def resume_run(workspace: str | Path, run_id: str, *, user: str) -> dict:
    """Start a stopped or failed run again from its last checkpoint. Raises WorkbenchError when it
    is still running or has no checkpoint."""
    _require(workspace, user)
    d = run_path(workspace, run_id)
    st = run_status(d)
    if st["state"] in ("queued", "starting", "running"):
        raise WorkbenchError(f"run {run_id} is still {st['state']}")
    if last_checkpoint(d) is None:
        raise WorkbenchError(f"run {run_id} has no checkpoint to resume from (checkpoints are written on "
                             "Stop and every save_steps)")
    (d / STOP_FILE).unlink(missing_ok=True)
    write_status(d, state="queued", error=None, resumed_by=user)
    _spawn(d, resume=True)
    return run_status(d)


def wait_run(workspace: str | Path, run_id: str, timeout_s: float = 600, poll_s: float = 0.5) -> dict:
    """Poll until the run reaches a final state; returns its status. Raises WorkbenchError on timeout."""
    d = run_path(workspace, run_id)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        st = run_status(d)
        if st["state"] in TERMINAL:
            return st
        time.sleep(poll_s)
    raise WorkbenchError(f"run {run_id} still {run_status(d)['state']} after {timeout_s} s")


def merge_run(workspace: str | Path, run_id: str, *, user: str, out_dir: str | Path | None = None) -> Path:
    """Merge a finished LoRA run into its base model (``run_dir/merged``)."""
    from pipelines.train.card import merge_and_save

    _require(workspace, user)
    return merge_and_save(run_path(workspace, run_id), out_dir)


def compare(workspace: str | Path, run_ids: list[str] | None = None) -> list[dict]:
    """One row per finished run for side-by-side comparison: method, trainable parameters, metrics,
    time, memory, data versions (``dataset vN #hash``)."""
    rows = []
    for st in list_runs(workspace):
        if run_ids and st["run_id"] not in run_ids:
            continue
        card = st.get("card")
        if not card:
            continue
        m = card.get("metrics", {})
        rows.append({
            "run": st["run_id"], "state": st["state"], "method": card.get("method"),
            "trainable_params": card.get("trainable_params"), "total_params": card.get("total_params"),
            "trainable_pct": round(100 * card["trainable_params"] / card["total_params"], 4)
            if card.get("total_params") else None,
            "steps": card.get("steps"), "final_loss": card.get("final_loss"),
            "eval_loss_before": m.get("eval_loss_before"), "eval_loss_after": m.get("eval_loss_after"),
            "perplexity": m.get("perplexity"), "rougeL": m.get("rougeL"), "bleu": m.get("bleu"),
            "refusal_accuracy": m.get("refusal_accuracy"),
            "train_time_s": card.get("train_time_s"), "tokens_per_s": card.get("tokens_per_s"),
            "peak_rss_mb": (card.get("memory") or {}).get("peak_rss_mb"),
            "peak_gpu_mb": (card.get("memory") or {}).get("peak_gpu_mb"),
            "data": ", ".join(f"{d['dataset']} v{d.get('version_number')} #{(d.get('content_hash') or '')[:8]}"
                              for d in card.get("datasets", [])),
        })
    return rows


def role_of(workspace: str | Path, user: str) -> str:
    """The role of ``user`` (the UI uses it only to decide what to show)."""
    from datastore import Store
    from datastore import users as U

    with Store(workspace) as st:
        return U.get_role(st, user)[1]


def can_train(role: str) -> bool:
    from pipelines.policy import can

    return can(role, "train")
