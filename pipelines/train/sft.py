"""Supervised fine-tuning of the base model with trl's ``SFTTrainer`` on CPU.

:func:`run_sft` renders each conversation with the run's chat template, tokenizes it
with the loss on assistant turns only (the template's ``{% generation %}`` blocks, see
:func:`pipelines.render.render_with_mask`; message content can never become a control
token), trains the configured method (LoRA) and leaves in ``run_dir``:

* ``train_config.json``: the :class:`TrainConfig` of the run;
* ``progress.jsonl``: one JSON object per logged step (``step``, ``total``, ``loss``,
  ``learning_rate``, ``grad_norm``, ``tokens_seen``, ``elapsed_s``, ``remaining_s``), then
  one with ``"event": "done"``;
* ``train.log``: the log of transformers/trl/peft and this module;
* ``adapter/``: the adapter and the tokenizer carrying the run's chat template;
* ``probe_logits.pt``: logits of the trained model on a fixed probe prompt (for
  :func:`pipelines.train.verify.verify_adapter`);
* ``run_card.json``: dataset versions, template and tokenizer hashes, base model, config,
  losses, timings.

Stopping: a file ``run_dir/STOP`` ends training after the current step; the adapter is
still saved. Tokens are pre-tokenized here rather than through trl's
``assistant_only_loss`` because transformers' control-token sanitizing cannot be combined
with assistant masks; for ordinary content both give the same ids and labels.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from datastore.errors import WorkbenchError
from pipelines.render import get_template, render_with_mask, template_info
from pipelines.train.config import TrainConfig
from pipelines.train.methods import get_method

log = logging.getLogger(__name__)

PROBE_FILE = "probe_logits.pt"
PROBE_POSITIONS = 8  # last positions of the probe whose logits are kept (about 1.5 MB)
STOP_FILE = "STOP"


@dataclass
class RunResult:
    """Outcome of :func:`run_sft`. ``losses``: ``[{"step", "loss"}]`` in step order."""

    run_dir: Path
    adapter_dir: Path
    steps: int
    first_loss: float | None
    final_loss: float | None
    losses: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    n_examples: int = 0
    stopped_early: bool = False
    run_card: dict = field(default_factory=dict)


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Appends one JSON line per logged step to ``progress.jsonl`` and honours the stop file."""

        def __init__(self, path: Path, stop_file: Path, progress: Callable[[dict], None] | None = None):
            self.path, self.stop_file, self.progress = path, stop_file, progress
            self.t0 = time.monotonic()
            self.records: list[dict] = []
            self.stopped = False

        def _write(self, rec: dict) -> None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            if self.progress is not None:
                try:
                    self.progress(rec)
                except Exception:  # a broken observer must not kill the run
                    log.exception("progress callback failed")

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()
            self._write({"event": "start", "step": 0, "total": state.max_steps, "elapsed_s": 0.0})

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:
                return
            step, total = state.global_step, state.max_steps
            elapsed = time.monotonic() - self.t0
            rec = {"step": step, "total": total, "loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0)),
                   "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                   "tokens_seen": int(logs["num_tokens"]) if logs.get("num_tokens") is not None else None,
                   "elapsed_s": round(elapsed, 3),
                   "remaining_s": round(elapsed / max(step, 1) * max(total - step, 0), 3)}
            self.records.append(rec)
            self._write(rec)
            log.info("step %d/%d loss %.4f lr %.3g", step, total, rec["loss"], rec["learning_rate"])

        def on_step_end(self, args, state, control, **kw):
            if self.stop_file.exists():
                self.stopped = True
                control.should_training_stop = True
            return control

    return ProgressCallback


def _sha256_file(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _attach_log(run_dir: Path) -> tuple[logging.Handler, list]:
    """Send INFO and above of transformers/trl/peft/accelerate and ``pipelines`` to ``train.log``
    for the duration of the run, without letting the libraries' own console handlers get louder."""
    import peft  # noqa: F401  (import first: libraries configure their loggers on import)
    import transformers
    import trl  # noqa: F401

    transformers.utils.logging.get_logger("transformers")  # installs transformers' console handler now
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in ("transformers", "trl", "peft", "accelerate", "pipelines"):
        lg = logging.getLogger(name)
        console = [(h, h.level) for h in lg.handlers]
        saved.append((lg, lg.level, console, lg.propagate))
        lg.propagate = False  # the run's log goes to train.log, not to whatever the root logger prints
        for h, level in console:  # keep their console output at its former loudness (WARNING by default)
            h.setLevel(max(level, lg.getEffectiveLevel(), logging.WARNING))
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    return handler, saved


def _detach_log(handler: logging.Handler, saved) -> None:
    for lg, level, console, propagate in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate
        for h, hlevel in console:
            h.setLevel(hlevel)
    handler.close()


def build_examples(tokenizer, conversations: list[list[dict]], template,
                   max_length_tokens: int) -> tuple[list[dict], dict]:
    """Tokenize conversations into ``{"input_ids", "labels"}`` rows (labels -100 outside assistant
    turns), truncated to ``max_length_tokens`` (keep the start). Conversations without any
    assistant token left are dropped. Returns ``(rows, stats)``."""
    rows, stats = [], {"conversations": len(conversations), "no_assistant": 0, "truncated": 0,
                       "tokens": 0, "loss_tokens": 0}
    for conv in conversations:
        ids, labels = render_with_mask(tokenizer, conv, template)
        if len(ids) > max_length_tokens:
            stats["truncated"] += 1
            ids, labels = ids[:max_length_tokens], labels[:max_length_tokens]
        n_loss = sum(1 for x in labels if x != -100)
        if n_loss == 0:
            stats["no_assistant"] += 1
            continue
        stats["tokens"] += len(ids)
        stats["loss_tokens"] += n_loss
        rows.append({"input_ids": ids, "labels": labels})
    stats["examples"] = len(rows)
    return rows, stats


def probe_input_ids(tokenizer, template, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as one user turn plus the assistant generation prompt."""
    return render_with_mask(tokenizer, [{"role": "user", "content": prompt}], template,
                            add_generation_prompt=True)[0]


def run_sft(config: TrainConfig, conversations: list[list[dict]], run_dir: Path,
            progress: Callable[[dict], None] | None = None, preflight=None) -> RunResult:
    """Fine-tune the base model on ``conversations`` and write the run folder (see module doc).

    Args:
        config: the run's settings; ``config.template`` must name a chat template.
        conversations: ``[[{"role", "content"}, ...], ...]`` (e.g. ``Sample.turns()``); the loss
            covers assistant turns only.
        run_dir: the run folder (created; existing progress/log files are appended to).
        progress: optional observer called with each progress record (same dicts as the JSON lines).
        preflight: optional :class:`pipelines.preflight.PreflightReport`; when it has errors the run
            stops before anything is written (``PreflightFailed``). None: no check (as before).
    Returns:
        :class:`RunResult`.
    Raises:
        WorkbenchError: unknown template or method, not a chat template, no trainable example.
    """
    if preflight is not None:
        from pipelines.preflight import check_before_training
        check_before_training(preflight)
    t_start = time.monotonic()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tpl = get_template(config.template)
    if tpl.kind != "chat":
        raise WorkbenchError(f"template '{config.template}' is a {tpl.kind} template; training renders "
                             "conversations and needs a chat template (e.g. 'chatml')")
    method = get_method(config.method)
    config.save(run_dir / "train_config.json")

    from pipelines.models import MODEL_NAME, ensure_base_model, load_model, load_tokenizer

    handler, saved = _attach_log(run_dir)
    try:
        import torch
        import transformers
        import datasets
        from datasets import Dataset
        from transformers import PrinterCallback, set_seed
        from trl import SFTConfig, SFTTrainer

        base_path = Path(config.base_model) if config.base_model else ensure_base_model()
        base_name = config.base_model_name or (MODEL_NAME if not config.base_model else base_path.name)
        log.info("run %s: base %s (%s), template %s sha256 %s", run_dir.name, base_name, base_path,
                 tpl.name, tpl.sha256)
        set_seed(config.seed)
        tok = load_tokenizer(base_path)
        tok.chat_template = tpl.text
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token

        rows, data_stats = build_examples(tok, conversations, tpl, config.max_length_tokens)
        log.info("data: %s", data_stats)
        if not rows:
            raise WorkbenchError("no trainable example: every conversation lacks an assistant turn "
                                 f"(after truncation to {config.max_length_tokens} tokens)")
        dataset = Dataset.from_list(rows)

        model = load_model(base_path)
        model.config.use_cache = False
        model = method.prepare(model, config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total_params = sum(p.numel() for p in model.parameters())
        log.info("trainable parameters: %d of %d", trainable, total_params)

        args = SFTConfig(
            output_dir=str(run_dir / "checkpoints"),
            max_steps=config.max_steps,
            per_device_train_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of max_steps (transformers 5)
            max_grad_norm=config.max_grad_norm,
            seed=config.seed,
            data_seed=config.seed,
            logging_steps=config.logging_steps,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            fp16=False,
            max_length=config.max_length_tokens,
            packing=False,
            assistant_only_loss=False,  # labels are built by render_with_mask
            completion_only_loss=None,
            disable_tqdm=True,
            activation_checkpointing=False,  # trl defaults to True; a 135M model needs no memory saving
            dataloader_num_workers=0,
        )
        cb = _progress_callback_class()(run_dir / "progress.jsonl", run_dir / STOP_FILE, progress)
        bars_were_off = datasets.is_progress_bar_enabled() is False
        datasets.disable_progress_bars()
        try:
            trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                                 callbacks=[cb])
        finally:
            if not bars_were_off:
                datasets.enable_progress_bars()
        trainer.remove_callback(PrinterCallback)  # progress goes to progress.jsonl and train.log, not stdout
        t_train = time.monotonic()
        trainer.train()
        train_time = time.monotonic() - t_train

        model = trainer.model
        model.eval()
        probe_ids = probe_input_ids(tok, tpl, config.probe_prompt)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([probe_ids])).logits[0, -PROBE_POSITIONS:].float().clone()
        torch.save({"input_ids": probe_ids, "positions": PROBE_POSITIONS, "logits": logits,
                    "prompt": config.probe_prompt}, run_dir / PROBE_FILE)

        adapter_dir = run_dir / "adapter"
        model.save_pretrained(str(adapter_dir))
        tok.save_pretrained(str(adapter_dir))
        ckpt = run_dir / "checkpoints"
        if ckpt.is_dir() and not any(ckpt.iterdir()):
            ckpt.rmdir()

        losses = [{"step": r["step"], "loss": r["loss"]} for r in cb.records]
        wall = time.monotonic() - t_start
        import peft
        import trl

        card = {
            "run_id": run_dir.name,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "method": config.method,
            "base_model": {"name": base_name, "path": str(base_path),
                           "config_sha256": _sha256_file(base_path / "config.json")},
            "tokenizer": {"sha256": _sha256_file(base_path / "tokenizer.json"),
                          "chat_template_sha256": tpl.sha256},
            "template": template_info(tpl),
            "datasets": [d.model_dump(mode="json") for d in config.datasets],
            "config": config.model_dump(mode="json"),
            "data": data_stats,
            "trainable_params": trainable,
            "total_params": total_params,
            "steps": trainer.state.global_step,
            "stopped_early": cb.stopped,
            "losses": losses,
            "first_loss": losses[0]["loss"] if losses else None,
            "final_loss": losses[-1]["loss"] if losses else None,
            "train_time_s": round(train_time, 3),
            "wall_time_s": round(wall, 3),
            "artifacts": {"adapter": "adapter", "probe_logits": PROBE_FILE, "progress": "progress.jsonl",
                          "log": "train.log", "config": "train_config.json"},
            "software": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__, "peft": peft.__version__,
                         "trl": trl.__version__},
        }
        (run_dir / "run_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        cb._write({"event": "done", "step": card["steps"], "total": config.max_steps,
                   "final_loss": card["final_loss"], "elapsed_s": round(wall, 3), "remaining_s": 0.0})
        log.info("done: %d steps, loss %s -> %s, %.1f s", card["steps"], card["first_loss"],
                 card["final_loss"], wall)
        return RunResult(run_dir=run_dir, adapter_dir=adapter_dir, steps=card["steps"],
                         first_loss=card["first_loss"], final_loss=card["final_loss"], losses=losses,
                         wall_time_s=wall, train_time_s=train_time, n_examples=len(rows),
                         stopped_early=cb.stopped, run_card=card)
    except WorkbenchError:
        raise
    except Exception as e:
        log.exception("training failed")
        raise WorkbenchError(f"training failed: {type(e).__name__}: {e} (see {run_dir / 'train.log'})") from e
    finally:
        _detach_log(handler, saved)


__all__ = ["RunResult", "TrainConfig", "build_examples", "probe_input_ids", "run_sft"]
