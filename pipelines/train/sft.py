"""Supervised fine-tuning with trl's ``SFTTrainer`` (CPU or GPU), for every method in
:mod:`pipelines.train.methods`.

:func:`run_sft` trains in this process and leaves in ``run_dir``:

* ``train_config.json``: the :class:`TrainConfig` of the run;
* ``progress.jsonl``: one JSON object per logged step (``step``, ``total``, ``loss``,
  ``learning_rate``, ``grad_norm``, ``tokens_seen``, ``tokens_per_s``, ``elapsed_s``,
  ``remaining_s``), evaluation records (``"event": "eval"``, ``eval_loss``), then one with
  ``"event": "done"`` (or ``"stopped"``);
* ``train.log``: the log of transformers/trl/peft and this package;
* ``adapter/`` (peft methods) or ``model/`` (full fine-tuning), each with the tokenizer carrying
  the run's chat template and a ``README.md`` model card naming the training data's licences;
* ``checkpoints/checkpoint-N``: written every ``save_steps`` and when the run is stopped
  (``run_dir/STOP``), so :func:`run_sft` with ``resume=True`` continues from the last one;
* ``probe_logits.pt`` (for :func:`pipelines.train.verify.verify_adapter`) and ``run_card.json``
  (:mod:`pipelines.train.card`).

The loss is computed here (``WorkbenchTrainer.compute_loss``) rather than by trl so that label
smoothing, R-Drop and prompt-learning methods share one path: token-level cross-entropy over the
target tokens, summed and divided by the batch's target count (``num_items_in_batch``, as trl does,
so gradient accumulation weighs tokens equally). Tokens are pre-tokenized by
:func:`pipelines.train.data.tokenize` (assistant-only labels from the render stage) because
transformers' control-token sanitizing cannot be combined with trl's assistant masks.

CPU-safe settings are automatic: no bf16/fp16 unless a CUDA device with bf16 is used
(docs/architecture.md section 6: bf16 is about 20x slower on this CPU), ``use_cpu`` on CPU, no
activation checkpointing.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datastore.errors import WorkbenchError
from pipelines.render import get_template, render_with_mask, template_input
from pipelines.train.config import PEFT_PROMPT_METHODS, TrainConfig
from pipelines.train.methods import get_method, load_base

log = logging.getLogger(__name__)

PROBE_FILE = "probe_logits.pt"
PROBE_POSITIONS = 8  # last positions of the probe whose logits are kept (about 1.5 MB)
STOP_FILE = "STOP"
CHECKPOINTS = "checkpoints"


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
    eval_losses: list[dict] = field(default_factory=list)


def resolve_device(device: str) -> str:
    """``"cuda"`` when asked for (or ``auto`` and one is present), else ``"cpu"``.

    Raises:
        WorkbenchError: ``cuda`` asked for but no CUDA device is present."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("device 'cuda' asked for, but torch sees no CUDA device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def use_bf16(device: str) -> bool:
    """bf16 mixed precision only on a CUDA device that supports it (never on CPU)."""
    import torch

    return device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Appends one JSON line per logged step to ``progress.jsonl`` and honours the stop file
        (stop after the current step, with a checkpoint so the run can resume)."""

        def __init__(self, path: Path, stop_file: Path, progress: Callable[[dict], None] | None = None):
            self.path, self.stop_file, self.progress = path, stop_file, progress
            self.t0 = time.monotonic()
            self.step0 = 0
            self.records: list[dict] = []
            self.evals: list[dict] = []
            self.stopped = False
            self.tokens = 0  # target+context tokens seen, incremented by the trainer

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
            self.step0 = state.global_step
            self._write({"event": "start", "step": state.global_step, "total": state.max_steps, "elapsed_s": 0.0})

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            step, total = state.global_step, state.max_steps
            elapsed = time.monotonic() - self.t0
            if "eval_loss" in logs:
                rec = {"event": "eval", "step": step, "total": total, "eval_loss": float(logs["eval_loss"]),
                       "elapsed_s": round(elapsed, 3)}
                self.evals.append(rec)
                self._write(rec)
                log.info("step %d/%d eval loss %.4f", step, total, rec["eval_loss"])
                return
            if "loss" not in logs:
                return
            done = max(step - self.step0, 1)
            rec = {"step": step, "total": total, "loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0)),
                   "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                   "tokens_seen": self.tokens, "tokens_per_s": round(self.tokens / max(elapsed, 1e-9), 2),
                   "elapsed_s": round(elapsed, 3),
                   "remaining_s": round(elapsed / done * max(total - step, 0), 3)}
            if "rdrop_kl" in logs:
                rec["rdrop_kl"] = float(logs["rdrop_kl"])
            self.records.append(rec)
            self._write(rec)
            log.info("step %d/%d loss %.4f lr %.3g", step, total, rec["loss"], rec["learning_rate"])

        def on_step_end(self, args, state, control, **kw):
            if self.stop_file.exists():
                self.stopped = True
                control.should_training_stop = True
                control.should_save = True
            return control

    return ProgressCallback


def _trainer_class():
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    from pipelines.train.layers import layerwise_param_groups

    class WorkbenchTrainer(SFTTrainer):
        """``SFTTrainer`` with the workbench loss (label smoothing, R-Drop) and layer-wise LR."""

        wb_config: TrainConfig
        wb_progress = None

        def _ce(self, logits, labels, smoothing: float):
            if logits.shape[1] > labels.shape[1]:  # prompt tuning / P-tuning prepend virtual tokens
                logits = logits[:, -labels.shape[1]:]
            shift_logits = logits[:, :-1].float()
            shift_labels = labels[:, 1:]
            mask = shift_labels != -100
            ce = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                 ignore_index=-100, reduction="sum", label_smoothing=smoothing)
            return ce, shift_logits, mask

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            cfg = self.wb_config
            labels = inputs["labels"]
            fwd = {k: v for k, v in inputs.items() if k != "labels"}
            fwd["use_cache"] = False
            training = model.training
            out = model(**fwd)
            ce, logits, mask = self._ce(out.logits, labels, cfg.label_smoothing if training else 0.0)
            n = mask.sum()
            if training and self.wb_progress is not None:
                self.wb_progress.tokens += int(fwd["input_ids"].numel())
            if training and cfg.rdrop_alpha > 0:
                # R-Drop (Liang et al. 2021, eq. 3): a second pass with other dropout masks; CE of both
                # plus alpha times the symmetric KL between the two predictive distributions.
                out2 = model(**fwd)
                ce2, logits2, _ = self._ce(out2.logits, labels, cfg.label_smoothing)
                lp1 = F.log_softmax(logits[mask], -1)
                lp2 = F.log_softmax(logits2[mask], -1)
                kl = 0.5 * (F.kl_div(lp1, lp2, log_target=True, reduction="sum")
                            + F.kl_div(lp2, lp1, log_target=True, reduction="sum"))
                denom = max(int(n), 1)
                self._metrics["train"]["rdrop_kl"].append(float(kl.detach()) / denom)
                ce = 0.5 * (ce + ce2) + cfg.rdrop_alpha * kl
            if num_items_in_batch is not None and training:
                loss = ce / torch.as_tensor(num_items_in_batch, device=ce.device).clamp(min=1)
            else:
                loss = ce / n.clamp(min=1)
            return (loss, out) if return_outputs else loss

        def create_optimizer(self, model=None):
            cfg = self.wb_config
            if self.optimizer is None and cfg.layerwise_lr_decay not in (None, 1):
                groups = layerwise_param_groups(self.model, self.args.learning_rate, cfg.layerwise_lr_decay,
                                                self.args.weight_decay)
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                kwargs.pop("lr", None)
                self.optimizer = cls(groups, lr=self.args.learning_rate, **kwargs)
                return self.optimizer
            return super().create_optimizer(model) if model is not None else super().create_optimizer()

    return WorkbenchTrainer


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


def build_examples(tokenizer, conversations: list, template,
                   max_length_tokens: int, assistant_only: bool = True,
                   train_on_reasoning: bool = True) -> tuple[list[dict], dict]:
    """Tokenize conversations into ``{"input_ids", "labels"}`` rows (see
    :func:`pipelines.train.data.tokenize`). Returns ``(rows, stats)``."""
    from pipelines.train.data import tokenize

    return tokenize(tokenizer, conversations, template, max_length_tokens, assistant_only=assistant_only,
                    train_on_reasoning=train_on_reasoning)


def probe_input_ids(tokenizer, template, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as one user turn plus the assistant generation prompt."""
    inp = template_input([{"role": "user", "content": prompt}], template, tokenizer=tokenizer,
                         add_generation_prompt=True)
    return render_with_mask(tokenizer, inp, template)[0]


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint folder with the highest step in ``run_dir/checkpoints``, or None."""
    d = Path(run_dir) / CHECKPOINTS
    if not d.is_dir():
        return None
    cks = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
           and (p / "trainer_state.json").exists()]
    return max(cks, key=lambda p: int(p.name.split("-")[-1])) if cks else None


def set_dropout(model, attention_dropout: float) -> int:
    """Set the attention dropout of every attention module (read at forward time). Returns the count."""
    n = 0
    if attention_dropout <= 0:
        return 0
    for m in model.modules():
        if hasattr(m, "attention_dropout") and isinstance(getattr(m, "attention_dropout"), float):
            m.attention_dropout = attention_dropout
            n += 1
    return n


def build_model(config: TrainConfig, base_path: Path, device: str):
    """Load the base as the method needs it and make it trainable: method wrapping, attention
    dropout, layer drop, frozen lower blocks. Returns ``(model, method)``."""
    from pipelines.train.layers import apply_layer_drop, freeze_lower_blocks

    method = get_method(config.method)
    model = load_base(method, base_path, config, device)
    model.config.use_cache = False
    set_dropout(model, config.attention_dropout)
    model = method.prepare(model, config)
    if config.freeze_lower_blocks and config.method not in ("lora", "qlora", "full"):
        raise WorkbenchError("freeze_lower_blocks applies to lora, qlora and full fine-tuning")
    if config.freeze_lower_blocks and config.method == "full":
        freeze_lower_blocks(model, config.freeze_lower_blocks)
    apply_layer_drop(model, config.layer_drop)
    return model, method


def run_sft(config: TrainConfig, conversations: list, run_dir: Path,
            progress: Callable[[dict], None] | None = None, preflight=None, *,
            eval_conversations: list | None = None, resume: bool = False,
            data_info: dict | None = None) -> RunResult:
    """Fine-tune the base model on ``conversations`` and write the run folder (see module doc).

    Args:
        config: the run's settings; ``config.template`` must name a chat template.
        conversations: samples, :class:`pipelines.render.TemplateInput` values or message lists
            (``[[{"role", "content", ...}, ...], ...]``), each rendered through
            :func:`pipelines.render.template_input`; by default the loss covers assistant turns only.
        run_dir: the run folder (created; existing progress/log files are appended to).
        progress: optional observer called with each progress record (same dicts as the JSON lines).
        preflight: optional :class:`pipelines.preflight.PreflightReport`; when it has errors the run
            stops before anything is written (``PreflightFailed``).
        eval_conversations: held-out conversations; the evaluation loss is computed before training,
            every ``eval_steps`` and at the end.
        resume: continue from :func:`last_checkpoint` (optimizer, scheduler, RNG and data order).
        data_info: extra facts for the run card (split and mixture sizes, packing ratio).
    Returns:
        :class:`RunResult`.
    Raises:
        WorkbenchError: unknown template or method, not a chat template, no trainable example,
        nothing to resume from; any failure during training (with the log path).
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
    get_method(config.method)
    config.save(run_dir / "train_config.json")
    resume_from = None
    if resume:
        resume_from = last_checkpoint(run_dir)
        if resume_from is None:
            raise WorkbenchError(f"{run_dir}: no checkpoint to resume from")

    from pipelines.models import MODEL_NAME, ensure_base_model, load_tokenizer

    handler, saved = _attach_log(run_dir)
    try:
        import datasets
        import torch
        from datasets import Dataset
        from transformers import PrinterCallback, set_seed
        from trl import SFTConfig

        from pipelines.train import card as C
        from pipelines.train.licences import write_model_card
        from pipelines.train.data import Collator, pack, packing_ratio

        device = resolve_device(config.device)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        base_path = Path(config.base_model) if config.base_model else ensure_base_model()
        base_name = config.base_model_name or (MODEL_NAME if not config.base_model else base_path.name)
        log.info("run %s: method %s, base %s (%s), template %s sha256 %s, device %s%s", run_dir.name,
                 config.method, base_name, base_path, tpl.name, tpl.sha256, device,
                 f", resuming from {resume_from.name}" if resume_from else "")
        set_seed(config.seed)
        tok = load_tokenizer(base_path)
        tok.chat_template = tpl.text
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token

        rows, data_stats = build_examples(tok, conversations, tpl, config.max_length_tokens,
                                          config.assistant_only_loss, config.train_on_reasoning)
        log.info("data: %s", data_stats)
        if not rows:
            raise WorkbenchError("no trainable example: every conversation lacks an assistant turn "
                                 f"(after truncation to {config.max_length_tokens} tokens)")
        train_rows = rows
        if config.packing:
            train_rows = pack(rows, config.max_length_tokens)
            data_stats["packed_rows"] = len(train_rows)
            data_stats["packing_ratio"] = round(packing_ratio(rows, train_rows), 3)
            log.info("packing: %d samples into %d rows (%.2f per row)", len(rows), len(train_rows),
                     data_stats["packing_ratio"])
        eval_rows, eval_stats = [], None
        if eval_conversations:
            eval_rows, eval_stats = build_examples(tok, eval_conversations, tpl, config.max_length_tokens,
                                                   config.assistant_only_loss, config.train_on_reasoning)
        dataset = Dataset.from_list(train_rows)
        eval_dataset = Dataset.from_list(eval_rows) if eval_rows else None

        model, method = build_model(config, base_path, device)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total_params = sum(p.numel() for p in model.parameters())
        log.info("trainable parameters: %d of %d", trainable, total_params)
        optim = config.optim or (method.default_optim(device) if hasattr(method, "default_optim") else "adamw_torch")

        args = SFTConfig(
            output_dir=str(run_dir / CHECKPOINTS),
            max_steps=config.max_steps,
            per_device_train_batch_size=config.per_device_batch_size,
            per_device_eval_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of max_steps (transformers 5)
            max_grad_norm=config.max_grad_norm,
            optim=optim,
            seed=config.seed,
            data_seed=config.seed,
            logging_steps=config.logging_steps,
            eval_strategy="steps" if (config.eval_steps and eval_dataset is not None) else "no",
            eval_steps=config.eval_steps,
            prediction_loss_only=True,
            save_strategy="steps" if config.save_steps else "no",
            save_steps=config.save_steps or 500,
            save_only_model=False,
            report_to="none",
            use_cpu=device == "cpu",
            bf16=use_bf16(device) and config.method != "qlora",
            fp16=False,
            max_length=None,  # rows are already truncated (packed rows may reach max_length_tokens)
            packing=False,  # packing is ours (pipelines.train.data.pack): per-sample position ids
            assistant_only_loss=False,  # labels are built by the render stage's masks
            completion_only_loss=None,
            remove_unused_columns=False,
            disable_tqdm=True,
            activation_checkpointing=False,  # trl defaults to True; not needed at this size, slower on CPU
            dataloader_num_workers=0,
        )
        cb = _progress_callback_class()(run_dir / "progress.jsonl", run_dir / STOP_FILE, progress)
        bars_were_off = datasets.is_progress_bar_enabled() is False
        datasets.disable_progress_bars()
        try:
            trainer = _trainer_class()(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                                       processing_class=tok, callbacks=[cb],
                                       data_collator=Collator(tok.pad_token_id))
        finally:
            if not bars_were_off:
                datasets.enable_progress_bars()
        trainer.wb_config = config
        trainer.wb_progress = cb
        trainer.remove_callback(PrinterCallback)  # progress goes to progress.jsonl and train.log, not stdout
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        eval_before = None
        if eval_dataset is not None and resume_from is None:
            eval_before = float(trainer.evaluate()["eval_loss"])
        elif eval_dataset is not None:  # resumed: the first run measured it before step 1
            eval_before = next((r["eval_loss"] for r in _progress_lines(run_dir)
                                if r.get("event") == "eval" and r.get("step") == 0), None)
        t_train = time.monotonic()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        train_time = time.monotonic() - t_train
        eval_after = None
        if eval_dataset is not None:
            eval_after = float(trainer.evaluate()["eval_loss"])

        model = trainer.model
        model.eval()
        probe_ids = probe_input_ids(tok, tpl, config.probe_prompt)
        dev = next(model.parameters()).device
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([probe_ids], device=dev)).logits[0, -PROBE_POSITIONS:]
            logits = logits.float().cpu().clone()
        torch.save({"input_ids": probe_ids, "positions": PROBE_POSITIONS, "logits": logits,
                    "prompt": config.probe_prompt}, run_dir / PROBE_FILE)

        out_dir = run_dir / ("model" if method.SAVES == "model" else "adapter")
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
        ck = run_dir / CHECKPOINTS
        if ck.is_dir() and not any(ck.iterdir()):
            ck.rmdir()

        losses = [{"step": r["step"], "loss": r["loss"]} for r in _read_losses(run_dir, cb.records)]
        evals = [{"step": r["step"], "eval_loss": r["eval_loss"]} for r in cb.evals]
        wall = time.monotonic() - t_start
        metrics = {"eval_loss_before": eval_before, "eval_loss_after": eval_after}
        if eval_before and eval_after is not None:
            metrics["eval_loss_reduction"] = round(1 - eval_after / eval_before, 6)
        kl = [r["rdrop_kl"] for r in cb.records if "rdrop_kl" in r]
        if kl:
            metrics["rdrop_kl_mean"] = sum(kl) / len(kl)
        tokens_per_s = cb.tokens / train_time if train_time > 0 else None
        card = C.build_card(
            run_dir=run_dir, config=config, template=tpl, base_path=base_path, base_name=base_name,
            data_stats={**data_stats, **(data_info or {}), "eval": eval_stats}, trainable=trainable,
            total_params=total_params, steps=trainer.state.global_step, stopped=cb.stopped, losses=losses,
            eval_losses=evals, metrics=metrics, train_time_s=train_time, wall_time_s=wall, device=device,
            tokens_seen=cb.tokens, tokens_per_s=tokens_per_s, saved=out_dir.name, optim=optim)
        C.write_card(run_dir, card)
        write_model_card(out_dir, card)
        cb._write({"event": "stopped" if cb.stopped else "done", "step": card["steps"], "total": config.max_steps,
                   "final_loss": card["final_loss"], "eval_loss": eval_after, "elapsed_s": round(wall, 3),
                   "remaining_s": 0.0})
        log.info("%s: %d steps, loss %s -> %s, eval loss %s -> %s, %.1f s", "stopped" if cb.stopped else "done",
                 card["steps"], card["first_loss"], card["final_loss"], eval_before, eval_after, wall)
        return RunResult(run_dir=run_dir, adapter_dir=out_dir, steps=card["steps"],
                         first_loss=card["first_loss"], final_loss=card["final_loss"], losses=losses,
                         wall_time_s=wall, train_time_s=train_time, n_examples=len(rows),
                         stopped_early=cb.stopped, run_card=card, eval_losses=evals)
    except WorkbenchError:
        raise
    except Exception as e:
        log.exception("training failed")
        raise WorkbenchError(f"training failed: {type(e).__name__}: {e} (see {run_dir / 'train.log'})") from e
    finally:
        _detach_log(handler, saved)


def _progress_lines(run_dir: str | Path) -> list[dict]:
    """Every record of ``run_dir/progress.jsonl`` (a torn last line is skipped); also
    ``pipelines.train.runs.progress_records``."""
    p = Path(run_dir) / "progress.jsonl"
    out = []
    if p.exists():
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _read_losses(run_dir: Path, records: list[dict]) -> list[dict]:
    """Step losses of the whole run: after a resume, the earlier lines of ``progress.jsonl`` too
    (the last record per step wins)."""
    by_step: dict[int, dict] = {}
    for r in _progress_lines(run_dir):
        if "loss" in r and "event" not in r:
            by_step[r["step"]] = r
    for r in records:
        by_step[r["step"]] = r
    return [by_step[k] for k in sorted(by_step)]


__all__ = ["RunResult", "TrainConfig", "build_examples", "last_checkpoint", "probe_input_ids", "run_sft",
           "PEFT_PROMPT_METHODS"]
