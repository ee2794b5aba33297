"""The training process: ``python -m pipelines.train.runner RUN_DIR [--resume]``.

Reads only the run folder (``train_config.json``, ``data/`` written by the launcher,
``preflight.json``), never the workspace store. Keeps ``status.json`` current (state ``running``,
``succeeded``, ``stopped`` or ``failed`` with the error), writes progress and the log through
:func:`pipelines.train.sft.run_sft`. SIGTERM and SIGINT become the stop file, so the run ends after
its current step with a checkpoint. Under ``torchrun``/``accelerate launch`` only rank 0 writes the
status file.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

STATUS = "status.json"
PREFLIGHT = "preflight.json"
SPLIT = "split.json"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def write_status(run_dir: Path, **fields) -> dict:
    """Merge ``fields`` into ``run_dir/status.json`` (atomic replace). Returns the new status."""
    p = Path(run_dir) / STATUS
    cur = {}
    if p.exists():
        try:
            cur = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            cur = {}
    cur.update(fields)
    cur["updated_at"] = time.time()
    if is_main_process():
        tmp = p.with_name(STATUS + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cur, indent=2, default=str), encoding="utf-8")
        tmp.replace(p)
    return cur


def prepare_data(run_dir: Path, config) -> tuple[list, list, dict]:
    """Train and evaluation conversations from the exported versions: preflight drops applied,
    deterministic split per version, mixture by weight. Writes ``split.json`` (eval sample ids per
    dataset). Returns ``(train_conversations, eval_conversations, info)``."""
    from pipelines.render import template_input
    from pipelines.train.data import load_exported, mix, split

    versions = load_exported(run_dir)
    dropped: dict[str, set] = {}
    pf = run_dir / PREFLIGHT
    if pf.exists():
        for name, rep in json.loads(pf.read_text(encoding="utf-8")).items():
            dropped[name] = set(rep.get("dropped_ids") or [])
    parts, evals, info = [], [], {"versions": []}
    split_ids = {}
    for vd in versions:
        name = vd.entry["dataset"]
        samples = [s for s in vd.samples if s.sample_id not in dropped.get(name, set())]
        tr, ev = split(samples, config.eval_ratio, config.seed)
        parts.append((vd.entry.get("weight"), tr))
        evals.extend(ev)
        split_ids[name] = [s.sample_id for s in ev]
        info["versions"].append({"dataset": name, "version_number": vd.entry["version_number"],
                                 "samples": len(vd.samples), "dropped": len(vd.samples) - len(samples),
                                 "train": len(tr), "eval": len(ev), "weight": vd.entry.get("weight")})
    mixture = mix(parts, config.seed)
    info["train_samples"] = len(mixture)
    info["eval_samples"] = len(evals)
    (run_dir / "data" / SPLIT).write_text(json.dumps(split_ids, indent=2) + "\n", encoding="utf-8")
    return [template_input(s) for s in mixture], [template_input(s) for s in evals], info


def train_from_run_dir(run_dir: str | Path, *, resume: bool = False, progress=None):
    """Train the run configured in ``run_dir`` in this process. Returns the ``RunResult``."""
    from pipelines.train.config import TrainConfig
    from pipelines.train.sft import run_sft

    run_dir = Path(run_dir)
    import json
    if json.loads((run_dir / "train_config.json").read_text(encoding="utf-8")).get("stage") == "dpo":
        from pipelines.preference import dpo  # DPO runs share the folder protocol
        return dpo.run_from_folder(run_dir, resume=resume, progress=progress)
    config = TrainConfig.load(run_dir / "train_config.json")
    train, evals, info = prepare_data(run_dir, config)
    return run_sft(config, train, run_dir, progress=progress, eval_conversations=evals or None,
                   resume=resume, data_info=info)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m pipelines.train.runner RUN_DIR [--resume]", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    resume = "--resume" in argv[1:]
    from pipelines.models import offline_env
    from pipelines.train.sft import STOP_FILE

    offline_env()

    def _stop(signum, frame):  # noqa: ARG001
        (run_dir / STOP_FILE).touch()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    write_status(run_dir, state="running", pid=os.getpid(), started_at=time.time(), resumed=resume,
                 error=None, ended_at=None)
    try:
        result = train_from_run_dir(run_dir, resume=resume)
    except BaseException as e:  # noqa: BLE001 - any crash marks the run failed with its reason
        traceback.print_exc()
        write_status(run_dir, state="failed", error=f"{type(e).__name__}: {e}", ended_at=time.time())
        return 1
    state = "stopped" if result.stopped_early else "succeeded"
    write_status(run_dir, state=state, steps=result.steps, final_loss=result.final_loss, ended_at=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
