"""Direct Preference Optimization (Rafailov et al. 2023) with a LoRA adapter, trl's ``DPOTrainer``.

Same run-folder protocol as SFT runs (:mod:`pipelines.train.sft`, docs/architecture.md section 6),
reusing its pieces by import: the progress callback (one JSON line per logged step, the ``STOP``
file), the run log attachment, the pinned-version export (:mod:`pipelines.train.data`). A run
folder holds:

* ``train_config.json``: the :class:`DPORunConfig` (``"stage": "dpo"``);
* ``data/``: the pinned preference versions as Parquet plus ``manifest.json`` (content hashes
  re-checked before training);
* ``progress.jsonl``: per logged step the SFT fields plus ``reward_margin``, ``reward_accuracy``,
  ``reward_chosen``, ``reward_rejected`` (trl's ``rewards/*``: beta times the policy/reference
  log-ratio of each completion); per evaluation an ``{"event": "eval", "step",
  "eval_reward_margin", "eval_reward_accuracy", "eval_loss"}`` record on the fixed probe pairs;
* ``train.log``, ``checkpoints/checkpoint-N`` (every ``save_steps`` and on STOP, for resume),
  ``adapter/`` (the trained adapter and the tokenizer with the run's chat template),
  ``run_card.json`` (the SFT card's fields plus ``stage``, ``beta``, ``reward_margins``).

Tokenization is ours, not trl's: each pair is rendered with the run's chat template by
:func:`pipelines.render.render_with_mask` (message text never becomes a control token; the
completion ends at its end-of-turn token, where the template's assistant span ends) and handed to
the trainer as ``prompt_ids``/``chosen_ids``/``rejected_ids``, trl's own tokenized columns.

On top of an SFT adapter: ``sft_adapter`` names an adapter folder (or an SFT run folder); DPO then
continues training *that* adapter and the reference model is the SFT model (trl copies the adapter
into a frozen ``ref`` adapter). The result is one adapter on the base model, so it switches and
serves like any other (:mod:`pipelines.serve.adapters`). The LoRA settings of the config are then
those of the SFT adapter (recorded in the card).

CPU: ``bf16=False`` (bf16 on a CPU without bf16 units is about 20x slower, docs/architecture.md
section 6), no gradient checkpointing, one data loader process.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError
from pipelines.train.config import ConfigFile, DatasetRef

log = logging.getLogger(__name__)

STOP_FILE = "STOP"
CONFIG_FILE = "train_config.json"
_REWARD_FIELDS = {"rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy",
                  "rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected"}


class DPORunConfig(ConfigFile, BaseModel):
    """Settings of one DPO run (written to ``run_dir/train_config.json``).

    Units: ``learning_rate`` per optimizer step (AdamW); ``max_length_tokens`` per prompt plus
    completion after the template (longer sequences keep their start, trl's ``keep_start``);
    ``beta`` the DPO temperature (trl default 0.1; Rafailov et al. 2023 use 0.1 to 0.5);
    ``warmup_ratio`` a fraction of ``max_steps``. ``probe_pairs``: how many pairs (evaluation
    pairs first, then training pairs) form the fixed set whose reward margin is measured before
    training, every ``eval_steps`` and at the end.
    """

    model_config = ConfigDict(extra="forbid")
    config_label: ClassVar[str] = "DPO config"

    stage: Literal["dpo"] = "dpo"
    method: Literal["dpo"] = Field("dpo", description="what the Runs page lists as the method (LoRA adapter)")
    base_model: str | None = None
    base_model_name: str | None = None
    sft_adapter: str | None = Field(None, description="adapter folder or SFT run folder to start from")
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    beta: float = Field(0.1, gt=0)
    loss_type: str = "sigmoid"
    max_steps: int = Field(20, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    per_device_batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length_tokens: int = Field(256, ge=16)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: str = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 42
    template: str = "chatml"
    datasets: list[DatasetRef] = Field(default_factory=list, description="pinned preference versions")
    eval_ratio: float = Field(0.1, ge=0, lt=1)
    eval_steps: int | None = Field(None, ge=1)
    probe_pairs: int = Field(8, ge=1)
    logging_steps: int = Field(1, ge=1)
    save_steps: int | None = Field(None, ge=1)
    cpu_threads: int | None = Field(None, ge=1, description="torch threads on CPU; None: torch's default "
                                    "(1 is faster on cores shared with other work, docs/decisions.md)")


@dataclass
class DPOResult:
    run_dir: Path
    adapter_dir: Path
    steps: int
    margins: list[dict] = field(default_factory=list)   # [{"step", "eval_reward_margin", ...}] on the probe set
    losses: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    run_card: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1]["loss"] if self.losses else None


# ---------------------------------------------------------------- tokenization
def tokenize_pair(tokenizer, template, prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> dict:
    """``{"prompt_ids", "chosen_ids", "rejected_ids"}`` of one pair with the run's chat template.

    The prompt is rendered with the generation prompt; each completion is the tokens after the
    common prefix of the prompt and prompt+completion ids, up to the end of its last assistant
    span (the end-of-turn token included, the template's trailing newline not)."""
    from pipelines.render import render_with_mask, template_input

    p_ids = render_with_mask(tokenizer, template_input(prompt, template, tokenizer=tokenizer,
                                                       add_generation_prompt=True), template)[0]

    def comp(turns):
        ids, labels = render_with_mask(tokenizer, template_input(prompt + turns, template, tokenizer=tokenizer),
                                       template, require_loss=False)
        n = 0
        while n < min(len(p_ids), len(ids)) and p_ids[n] == ids[n]:
            n += 1
        last = max((i for i, x in enumerate(labels) if x != -100), default=len(ids) - 1)
        return n, ids[n:last + 1]
    nc, c = comp(chosen)
    nr, r = comp(rejected)
    n = min(nc, nr)
    return {"prompt_ids": p_ids[:n], "chosen_ids": c, "rejected_ids": r}


def build_dataset(tokenizer, template, pairs: list, max_length_tokens: int):
    """Tokenized pairs as a ``datasets.Dataset``; pairs whose prompt alone fills
    ``max_length_tokens`` are dropped (trl's rule for ``keep_start``). Returns ``(dataset, stats)``."""
    from datasets import Dataset

    rows, dropped = [], 0
    for p in pairs:
        r = tokenize_pair(tokenizer, template, p.prompt, p.chosen, p.rejected)
        if len(r["prompt_ids"]) >= max_length_tokens or not r["chosen_ids"] or not r["rejected_ids"]:
            dropped += 1
            continue
        rows.append(r)
    stats = {"pairs": len(pairs), "examples": len(rows), "dropped_long_prompt": dropped}
    return (Dataset.from_list(rows) if rows else None), stats


# ---------------------------------------------------------------- callbacks and trainer
def _dpo_callback_class():
    """SFT's progress callback (:mod:`pipelines.train.sft`: step and evaluation records, the STOP
    file, a checkpoint on stop) with trl's reward metrics added to each record."""
    from pipelines.train.sft import _progress_callback_class

    base = _progress_callback_class()

    class DPOProgressCallback(base):
        _last: dict = {}

        def on_log(self, args, state, control, logs=None, **kw):
            self._last = dict(logs or {})
            return super().on_log(args, state, control, logs=logs, **kw)

        def _write(self, rec: dict) -> None:
            if rec.get("event") == "eval":
                for src, dst in _REWARD_FIELDS.items():
                    if "eval_" + src in self._last:
                        rec["eval_" + dst] = float(self._last["eval_" + src])
            elif "loss" in rec and "event" not in rec:
                for src, dst in _REWARD_FIELDS.items():
                    if src in self._last:
                        rec[dst] = float(self._last[src])
            super()._write(rec)

        def on_step_end(self, args, state, control, **kw):
            control = super().on_step_end(args, state, control, **kw)
            if self.stopped:
                control.should_save = True
            return control

    return DPOProgressCallback


def _trainer_class():
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """trl's trainer on rows we tokenized (``prompt_ids``/``chosen_ids``/``rejected_ids``)."""

        wb_progress = None  # the progress callback, whose ``tokens`` counts tokens seen

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def training_step(self, model, inputs, *args, **kwargs):
            if self.wb_progress is not None and "attention_mask" in inputs:
                self.wb_progress.tokens += int(inputs["attention_mask"].sum())  # chosen and rejected, no padding
            return super().training_step(model, inputs, *args, **kwargs)

    return PretokenizedDPOTrainer


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter folder, or the ``adapter/`` of a run folder. Raises WorkbenchError."""
    p = Path(path)
    if (p / "adapter_config.json").exists():
        return p
    if (p / "adapter" / "adapter_config.json").exists():
        return p / "adapter"
    raise WorkbenchError(f"{p}: no adapter here (no adapter_config.json, nor adapter/adapter_config.json)")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run folder (:func:`pipelines.train.sft.last_checkpoint`)."""
    from pipelines.train.sft import last_checkpoint
    return last_checkpoint(run_dir)


# ---------------------------------------------------------------- the run
def run_dpo(config: DPORunConfig, pairs: list, run_dir: str | Path, *, eval_pairs: list | None = None,
            progress: Callable[[dict], None] | None = None, resume: bool = False) -> DPOResult:
    """Train a LoRA adapter with DPO on ``pairs`` (:class:`pipelines.preference.pairs.Pair`).

    Args:
        config: the run's settings (``template`` must name a chat template).
        pairs: training pairs; unpaired items are skipped.
        run_dir: the run folder (see the module doc); created.
        eval_pairs: held-out pairs (reward margin and accuracy reported on them and on the probe).
        progress: optional observer of each progress record.
        resume: continue from the newest checkpoint in ``run_dir/checkpoints``.
    Returns:
        :class:`DPOResult`; ``margins`` holds the probe set's reward margin before training
        (step 0, exactly 0 for a fresh LoRA adapter: policy equals reference) and at each evaluation.
    Raises:
        WorkbenchError: not a chat template, no trainable pair, resume without a checkpoint,
        training failure (with the log's path).
    """
    from pipelines.preference.pairs import Pair
    from pipelines.render import get_template, template_info
    from pipelines.train import sft as SFT

    t_start = time.monotonic()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tpl = get_template(config.template)
    if tpl.kind != "chat":
        raise WorkbenchError(f"template '{config.template}' is a {tpl.kind} template; DPO needs a chat template")
    pairs = [p for p in pairs if isinstance(p, Pair)]
    eval_pairs = [p for p in (eval_pairs or []) if isinstance(p, Pair)]
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise WorkbenchError(f"{run_dir}: nothing to resume (no checkpoint in {run_dir / 'checkpoints'})")
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    config.save(run_dir / CONFIG_FILE)

    from pipelines.models import MODEL_NAME, ensure_base_model, load_model, load_tokenizer

    handler, saved = SFT._attach_log(run_dir)
    try:
        import datasets
        import peft
        import torch
        import transformers
        import trl
        from peft import LoraConfig, PeftModel, TaskType
        from transformers import PrinterCallback, set_seed
        from trl import DPOConfig

        base_path = Path(config.base_model) if config.base_model else ensure_base_model()
        base_name = config.base_model_name or (MODEL_NAME if not config.base_model else base_path.name)
        set_seed(config.seed)
        if config.cpu_threads and not torch.cuda.is_available():
            torch.set_num_threads(config.cpu_threads)
        tok = load_tokenizer(base_path)
        tok.chat_template = tpl.text
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        datasets.disable_progress_bars()
        train_ds, data_stats = build_dataset(tok, tpl, pairs, config.max_length_tokens)
        if train_ds is None:
            raise WorkbenchError(f"no trainable pair: every prompt fills max_length_tokens={config.max_length_tokens}"
                                 if pairs else "no preference pair to train on")
        probe = (eval_pairs + pairs)[:config.probe_pairs]
        probe_ds, _ = build_dataset(tok, tpl, probe, config.max_length_tokens)
        log.info("DPO data: %s; probe %d pairs", data_stats, len(probe))

        model = load_model(base_path)
        model.config.use_cache = False
        peft_config = None
        sft_dir = None
        if config.sft_adapter:
            sft_dir = resolve_adapter_dir(config.sft_adapter)
            model = PeftModel.from_pretrained(model, str(sft_dir), is_trainable=True)
        else:
            peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                                     lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                                     bias="none")
        args = DPOConfig(
            output_dir=str(run_dir / "checkpoints"), max_steps=config.max_steps,
            per_device_train_batch_size=config.per_device_batch_size,
            per_device_eval_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
            max_grad_norm=config.max_grad_norm, seed=config.seed, data_seed=config.seed,
            logging_steps=config.logging_steps,
            save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
            eval_strategy="steps" if config.eval_steps else "no", eval_steps=config.eval_steps,
            report_to="none", use_cpu=not torch.cuda.is_available(), bf16=False, fp16=False,
            max_length=config.max_length_tokens, beta=config.beta, loss_type=[config.loss_type],
            disable_tqdm=True, gradient_checkpointing=False, dataloader_num_workers=0,
            remove_unused_columns=False,
        )
        cb = _dpo_callback_class()(run_dir / "progress.jsonl", run_dir / STOP_FILE, progress)
        trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds,
                                   eval_dataset=probe_ds,
                                   processing_class=tok, peft_config=peft_config, callbacks=[cb])
        trainer.remove_callback(PrinterCallback)
        trainer.wb_progress = cb
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total_params = sum(p.numel() for p in trainer.model.parameters())

        def probe_eval() -> None:  # its record reaches progress.jsonl and cb.evals through on_log
            if probe_ds is not None:
                trainer.evaluate(probe_ds, metric_key_prefix="eval")

        if not resume:
            probe_eval()  # step 0: a fresh LoRA adapter leaves the policy equal to the reference
        t_train = time.monotonic()
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        train_time = time.monotonic() - t_train
        if not cb.evals or cb.evals[-1]["step"] != trainer.state.global_step:
            probe_eval()
        by_step = {r["step"]: {"step": r["step"], "eval_reward_margin": r.get("eval_reward_margin"),
                               "eval_reward_accuracy": r.get("eval_reward_accuracy"), "eval_loss": r.get("eval_loss")}
                   for r in cb.evals}
        margins = [by_step[k] for k in sorted(by_step)]
        held_out = None
        if eval_pairs:
            ev_ds, _ = build_dataset(tok, tpl, eval_pairs, config.max_length_tokens)
            if ev_ds is not None:  # prefix "heldout": not a probe record in progress.jsonl
                m = trainer.evaluate(ev_ds, metric_key_prefix="heldout")
                held_out = {"pairs": len(ev_ds), "reward_margin": m.get("eval_rewards/margins"),
                            "reward_accuracy": m.get("eval_rewards/accuracies"), "loss": m.get("heldout_loss")}

        adapter_dir = run_dir / "adapter"
        trainer.model.save_pretrained(str(adapter_dir), selected_adapters=["default"])
        tok.save_pretrained(str(adapter_dir))
        losses = [{"step": r["step"], "loss": r["loss"], "reward_margin": r.get("reward_margin")} for r in cb.records]
        metrics = {"eval_loss_before": margins[0]["eval_loss"] if margins else None,
                   "eval_loss_after": margins[-1]["eval_loss"] if margins else None,
                   "reward_margin_before": margins[0]["eval_reward_margin"] if margins else None,
                   "reward_margin_after": margins[-1]["eval_reward_margin"] if margins else None,
                   "reward_accuracy_after": margins[-1]["eval_reward_accuracy"] if margins else None,
                   **({f"heldout_{k}": v for k, v in held_out.items()} if held_out else {})}
        from pipelines.train.card import build_card, write_card  # the SFT run card, same fields
        card = build_card(run_dir=run_dir, config=config, template=tpl, base_path=base_path, base_name=base_name,
                          data_stats=data_stats, trainable=trainable, total_params=total_params,
                          steps=trainer.state.global_step, stopped=cb.stopped,
                          losses=[{"step": r["step"], "loss": r["loss"]} for r in cb.records],
                          eval_losses=[{"step": m["step"], "eval_loss": m["eval_loss"]} for m in margins],
                          metrics=metrics, train_time_s=train_time, wall_time_s=time.monotonic() - t_start,
                          device="cpu" if args.use_cpu else "cuda", tokens_seen=cb.tokens,
                          tokens_per_s=cb.tokens / train_time if train_time > 0 else None, saved="adapter",
                          optim=str(args.optim))
        card.update({"stage": "dpo", "adapter_method": "lora", "sft_adapter": str(sft_dir) if sft_dir else None,
                     "beta": config.beta, "loss_type": config.loss_type, "reward_margins": margins,
                     "reward_losses": losses, "held_out": held_out, "resumed_from": str(ckpt) if ckpt else None})
        card["artifacts"].pop("probe_logits", None)
        card["artifacts"]["data"] = "data"
        write_card(run_dir, card)
        from pipelines.train.licences import write_model_card
        write_model_card(adapter_dir, card)
        wall = card["wall_time_s"]
        cb._write({"event": "done", "step": card["steps"], "total": config.max_steps, "final_loss": card["final_loss"],
                   "final_reward_margin": margins[-1]["eval_reward_margin"] if margins else None, "elapsed_s": round(wall, 3),
                   "remaining_s": 0.0})
        return DPOResult(run_dir, adapter_dir, card["steps"], margins, losses, cb.stopped, card)
    except WorkbenchError:
        raise
    except Exception as e:
        log.exception("DPO training failed")
        raise WorkbenchError(f"DPO training failed: {type(e).__name__}: {e} (see {run_dir / 'train.log'})") from e
    finally:
        SFT._detach_log(handler, saved)


# ---------------------------------------------------------------- from pinned versions
def prepare_run(workspace: str | Path, config: DPORunConfig, run_dir: str | Path, *, user: str) -> DPORunConfig:
    """Check ``user`` may ``train``, pin the config's preference versions by content hash and
    export them into ``run_dir/data`` (:func:`pipelines.train.data.export_versions`); returns the
    config with the pins filled in (also written to the run folder)."""
    from datastore import Store
    from pipelines import policy
    from pipelines.train import data as D

    with Store(workspace) as st:
        policy.require(st, user, "train")
    pinned = D.pin_versions(workspace, config.datasets)
    config = config.model_copy(update={"datasets": pinned})
    run_dir = Path(run_dir)
    D.export_versions(workspace, pinned, run_dir)
    config.save(run_dir / CONFIG_FILE)
    return config


def verify_export(samples: list, entry: dict, run_dir) -> None:
    """Recompute an exported version's content hash from its samples (multiset sum of row hashes
    mod 2**256, ``datastore.versions``) and compare with the pinned one.

    Raises:
        WorkbenchError: the exported file does not hold exactly the pinned version.
    """
    from datastore import versions as V
    from datastore.samples import row_hash

    total = sum(int(row_hash(s.to_row()), 16) for s in samples) % V.MOD
    h = V.content_hash(total, len(samples))
    if h != entry["content_hash"]:
        raise WorkbenchError(f"{run_dir}/data/{entry['file']}: content hash {h[:12]} differs from the pinned "
                             f"{entry['content_hash'][:12]} of {entry['dataset']} v{entry['version_number']}")


def run_from_folder(run_dir: str | Path, *, progress=None, resume: bool = False) -> DPOResult:
    """Train from a prepared run folder (its config and exported data only; no store access):
    the body of the training process, ``python -m pipelines.preference.dpo RUN_DIR [--resume]``."""
    from pipelines.preference.store import items_of_samples
    from pipelines.train import data as D

    run_dir = Path(run_dir)
    config = DPORunConfig.load(run_dir / CONFIG_FILE)
    train, held = [], []
    for vd in D.load_exported(run_dir, verify=False):
        verify_export(vd.samples, vd.entry, run_dir)
        tr, ev = D.split(vd.samples, config.eval_ratio, config.seed)
        train += items_of_samples(tr)
        held += items_of_samples(ev)
    return run_dpo(config, train, run_dir, eval_pairs=held, progress=progress, resume=resume)


def launch(workspace: str | Path, config: DPORunConfig, *, user: str, run_id: str | None = None,
           wait: bool = False) -> Path:
    """Prepare a run folder under ``workspace/runs/<run_id>`` and start the training process
    (its own process group; stdout and stderr go to ``run_dir/process.log``, never a pipe).
    Returns the run folder; with ``wait`` the call blocks until the process ends and raises
    WorkbenchError if it failed (with the end of its log)."""
    import secrets

    rid = run_id or f"dpo-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    run_dir = Path(workspace) / "runs" / rid
    if run_dir.exists() and any(run_dir.iterdir()):
        raise WorkbenchError(f"run folder {run_dir} exists already")
    prepare_run(workspace, config, run_dir, user=user)
    _status(run_dir, state="queued", user=user, created_at=time.time(), pid=None)
    from pipelines.processes import spawn_module
    proc = spawn_module("pipelines.preference.dpo", [str(run_dir)], log_path=run_dir / "process.log",
                        cwd=Path(__file__).resolve().parents[2])
    _status(run_dir, state="starting", pid=proc.pid, launched_at=time.time())
    if wait:
        rc = proc.wait()
        if rc != 0:
            tail = (run_dir / "process.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise WorkbenchError(f"DPO run {rid} failed (exit {rc}): {tail}")
    return run_dir


def _status(run_dir: Path, **fields) -> None:
    """``status.json`` as the training stage keeps it (:func:`pipelines.train.runner.write_status`),
    so ``wb runs`` and the Runs page show DPO runs' state; skipped where that module is absent."""
    try:
        from pipelines.train.runner import write_status
    except ImportError:
        return
    write_status(run_dir, **fields)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.preference.dpo RUN_DIR [--resume]``: SIGTERM/SIGINT become the stop file."""
    import os
    import signal
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m pipelines.preference.dpo RUN_DIR [--resume]", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    from pipelines.models import offline_env
    offline_env()
    signal.signal(signal.SIGTERM, lambda *_: (run_dir / STOP_FILE).touch())
    signal.signal(signal.SIGINT, lambda *_: (run_dir / STOP_FILE).touch())
    _status(run_dir, state="running", pid=os.getpid(), started_at=time.time(), error=None, ended_at=None)
    try:
        res = run_from_folder(run_dir, resume="--resume" in args)
    except BaseException as e:  # noqa: BLE001 - any crash marks the run failed with its reason
        print(f"error: {e}", file=sys.stderr)
        _status(run_dir, state="failed", error=f"{type(e).__name__}: {e}", ended_at=time.time())
        return 1
    _status(run_dir, state="stopped" if res.stopped_early else "succeeded", steps=res.steps,
            final_loss=res.final_loss, ended_at=time.time())
    print(json.dumps({"run_dir": str(res.run_dir), "steps": res.steps, "margins": res.margins}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
