"""Scoring heads: a sequence-classification or regression head with LoRA on review labels, or a
reward-style head trained with a margin ranking loss on preference pairs.

Tasks:

* ``accept`` (accept vs reject), ``should_refuse`` (flag set or not): two classes, cross-entropy.
* ``rating`` (quality 1 to 5): one output, mean squared error on ``(rating - 3) / 2``;
  reported as Pearson and Spearman correlation on the held-out split (scipy).
* ``pairs``: one output ``r(x, y)``; ``torch.nn.MarginRankingLoss`` on ``r(chosen) - r(rejected)``
  (margin ``ranking_margin``, default 0 as in Ouyang et al. 2022's pairwise loss up to the
  log-sigmoid); reported as the share of held-out pairs ranked the right way.

The model is transformers' ``AutoModelForSequenceClassification`` over the base model (for
Llama-family models the score of the last non-padding token) with LoRA adapters
(``TaskType.SEQ_CLS``: peft trains and saves the new ``score`` layer with the adapter). The
input is the conversation rendered with a chat template (prompt and response), as the
generator produced it.

Why a short training loop of our own instead of ``transformers.Trainer``: the three losses
come from torch (``CrossEntropyLoss``, ``MSELoss``, ``MarginRankingLoss``); a pair batch needs two
forward passes whose outputs meet in the loss, and the whole loop is twenty lines, deterministic
under a seed, with no run-folder machinery to fight for a model that trains in seconds.

A head is saved as a folder: the peft adapter (with the score layer), the tokenizer and
``head_card.json`` (task, labels, base model, template, config, metrics, held-out size). Review
shows a head's verdict as a suggestion with the score and the head's name
(:func:`score_candidates`, :func:`suggestions_for_review`).
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

Task = Literal["accept", "should_refuse", "rating", "pairs"]
CARD = "head_card.json"
#: Label names of the two-class tasks (index = class id).
LABELS = {"accept": ["reject", "accept"], "should_refuse": ["comply", "refuse"]}
#: Review flag names meaning "should refuse".
REFUSE_FLAGS = ("should_refuse", "should refuse")


class HeadConfig(BaseModel):
    """Settings of one scoring head. ``max_length_tokens`` per rendered conversation (longer ones keep
    their end, where the response is); ``eval_ratio`` the held-out share (deterministic by seed)."""

    model_config = ConfigDict(extra="forbid")

    task: Task = "accept"
    name: str | None = None
    base_model: str | None = None
    template: str = "chatml"
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    max_length_tokens: int = Field(96, ge=8)
    eval_ratio: float = Field(0.25, ge=0, lt=1)
    ranking_margin: float = Field(0.0, ge=0)
    seed: int = 42


@dataclass
class LabeledExample:
    """One training example: ``turns`` (prompt and response) and its ``label`` (class id for the
    two-class tasks, the rating for ``rating``)."""

    turns: list[dict]
    label: float
    sample_id: int | None = None


@dataclass
class HeadResult:
    head_dir: Path
    metrics: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)


# ---------------------------------------------------------------- labels from review
def examples_from_annotations(samples: dict, annotations: list[dict], task: Task) -> list[LabeledExample]:
    """Review annotations as labelled examples for ``task``.

    ``accept``: decision accept -> 1, reject -> 0 (edits are skipped: the text changed);
    ``should_refuse``: 1 when ``answers["flags"]`` holds a flag of :data:`REFUSE_FLAGS`, else 0;
    ``rating``: ``answers["rating"]`` or the annotation's ``rating`` (1..5). Stale annotations are
    skipped; several annotations of one sample give one example each (the head sees the spread).
    """
    out = []
    for a in annotations:
        if a.get("stale") or a["sample_id"] not in samples:
            continue
        answers = a.get("answers") or {}
        if isinstance(answers, str):
            answers = json.loads(answers)
        turns = samples[a["sample_id"]].turns()
        if task == "accept":
            d = a.get("decision") or answers.get("decision")
            if d not in ("accept", "reject"):
                continue
            y = 1.0 if d == "accept" else 0.0
        elif task == "should_refuse":
            flags = answers.get("flags") or []
            y = 1.0 if any(f in REFUSE_FLAGS for f in flags) else 0.0
        elif task == "rating":
            r = a.get("rating")
            if r is None:
                r = answers.get("rating")
            if r is None:
                continue
            y = float(r)
        else:
            raise WorkbenchError("pair heads train on preference pairs, not on annotations")
        out.append(LabeledExample(turns, y, a["sample_id"]))
    return out


# ---------------------------------------------------------------- model
def _render(tok, template, conversation) -> str:
    """A sample or a message list rendered as training renders it (its template input, with
    the tokenizer's and the template's special tokens)."""
    from pipelines.render import render_chat, template_input
    return render_chat(template_input(conversation, template, tokenizer=tok), template)


def _encode(tok, texts: list[str], max_len: int):
    tok.truncation_side = "left"  # keep the end: the response is what is judged
    return tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt",
               add_special_tokens=False)


def _build_model(cfg: HeadConfig, n_out: int):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from pipelines.models import ensure_base_model, load_tokenizer, offline_env

    offline_env()
    base = Path(cfg.base_model) if cfg.base_model else ensure_base_model()
    tok = load_tokenizer(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=n_out, local_files_only=True)
    model.config.pad_token_id = tok.pad_token_id
    lcfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.target_modules), bias="none")
    return get_peft_model(model, lcfg), tok, base


def split_examples(items: list, eval_ratio: float, seed: int) -> tuple[list, list]:
    """Deterministic shuffle and split (``random.Random(seed)``); at least one held out when
    ``eval_ratio > 0`` and two or more items."""
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_eval = 0 if eval_ratio <= 0 or len(items) < 2 else max(1, round(len(items) * eval_ratio))
    ev = sorted(idx[:n_eval])
    tr = sorted(idx[n_eval:])
    return [items[i] for i in tr], [items[i] for i in ev]


def train_head(cfg: HeadConfig, data: list, out_dir: str | Path, *, eval_data: list | None = None) -> HeadResult:
    """Train a head on ``data``: :class:`LabeledExample` items, or ``Pair`` items for ``task="pairs"``.

    ``eval_data`` given: used as the held-out split; otherwise ``cfg.eval_ratio`` of ``data``.
    Returns the head folder and its metrics: ``accuracy`` (two-class), ``pearson``/``spearman``/
    ``mae`` (rating), ``pair_accuracy`` (pairs), with ``n_eval``.

    Raises:
        WorkbenchError: no data, or a two-class task whose training labels are all the same.
    """
    import torch

    t0 = time.monotonic()
    if not data:
        raise WorkbenchError("no labelled examples to train a head on")
    train, held = (list(data), list(eval_data)) if eval_data is not None else split_examples(data, cfg.eval_ratio, cfg.seed)
    if cfg.task in LABELS and len({e.label for e in train}) < 2:
        raise WorkbenchError(f"every training label is {train[0].label}: a {cfg.task} head needs both classes")
    torch.manual_seed(cfg.seed)
    n_out = 2 if cfg.task in LABELS else 1
    model, tok, base = _build_model(cfg, n_out)
    from pipelines.render import get_template
    tpl = get_template(cfg.template)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    rng = random.Random(cfg.seed)
    losses = []
    model.train()
    ce, mse = torch.nn.CrossEntropyLoss(), torch.nn.MSELoss()
    rank = torch.nn.MarginRankingLoss(margin=cfg.ranking_margin)
    for _ in range(cfg.epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        for b in range(0, len(order), cfg.batch_size):
            batch = [train[i] for i in order[b:b + cfg.batch_size]]
            if cfg.task == "pairs":
                c = _scores(model, tok, tpl, [p.prompt + p.chosen for p in batch], cfg.max_length_tokens)
                r = _scores(model, tok, tpl, [p.prompt + p.rejected for p in batch], cfg.max_length_tokens)
                loss = rank(c, r, torch.ones_like(c))
            else:
                enc = _encode(tok, [_render(tok, tpl, e.turns) for e in batch], cfg.max_length_tokens)
                logits = model(**enc).logits
                if cfg.task in LABELS:
                    loss = ce(logits, torch.tensor([int(e.label) for e in batch]))
                else:
                    loss = mse(logits[:, 0], torch.tensor([(e.label - 3.0) / 2.0 for e in batch]))
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    model.eval()
    metrics = evaluate_head(model, tok, tpl, cfg, held) if held else {}
    metrics["n_train"] = len(train)
    metrics["n_eval"] = len(held)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    card = {"name": cfg.name or out.name, "task": cfg.task, "labels": LABELS.get(cfg.task),
            "output": "class probabilities" if cfg.task in LABELS else "score",
            "base_model": str(base), "template": cfg.template, "template_sha256": tpl.sha256,
            "config": cfg.model_dump(mode="json"), "metrics": metrics, "losses": losses,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "train_time_s": round(time.monotonic() - t0, 3)}
    (out / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return HeadResult(out, metrics, card)


def _scores(model, tok, tpl, convs: list[list[dict]], max_len: int):
    enc = _encode(tok, [_render(tok, tpl, t) for t in convs], max_len)
    return model(**enc).logits[:, 0]


def evaluate_head(model, tok, tpl, cfg: HeadConfig, held: list) -> dict:
    """Held-out metrics (see :func:`train_head`)."""
    import torch

    with torch.no_grad():
        if cfg.task == "pairs":
            c = torch.cat([_scores(model, tok, tpl, [p.prompt + p.chosen for p in held[i:i + 16]], cfg.max_length_tokens)
                           for i in range(0, len(held), 16)])
            r = torch.cat([_scores(model, tok, tpl, [p.prompt + p.rejected for p in held[i:i + 16]], cfg.max_length_tokens)
                           for i in range(0, len(held), 16)])
            return {"pair_accuracy": float((c > r).float().mean())}
        logits = torch.cat([model(**_encode(tok, [_render(tok, tpl, e.turns) for e in held[i:i + 16]],
                                            cfg.max_length_tokens)).logits for i in range(0, len(held), 16)])
    y = [e.label for e in held]
    if cfg.task in LABELS:
        pred = logits.argmax(-1).tolist()
        return {"accuracy": sum(int(p == int(t)) for p, t in zip(pred, y)) / len(y)}
    from scipy.stats import pearsonr, spearmanr

    pred = (logits[:, 0] * 2.0 + 3.0).tolist()
    out = {"mae": sum(abs(p - t) for p, t in zip(pred, y)) / len(y)}
    if len(set(y)) > 1 and len(set(pred)) > 1:
        out["pearson"] = float(pearsonr(pred, y)[0])
        out["spearman"] = float(spearmanr(pred, y)[0])
    return out


# ---------------------------------------------------------------- using a head
@dataclass
class LoadedHead:
    model: object
    tokenizer: object
    template: object
    card: dict
    path: Path


def load_head(head_dir: str | Path) -> LoadedHead:
    """A saved head ready to score. Raises WorkbenchError when the folder is not a head."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from pipelines.models import load_tokenizer, offline_env
    from pipelines.render import get_template

    p = Path(head_dir)
    if not (p / CARD).exists():
        raise WorkbenchError(f"{p}: not a scoring head (no {CARD})")
    offline_env()
    card = json.loads((p / CARD).read_text(encoding="utf-8"))
    n_out = 2 if card["task"] in LABELS else 1
    base = AutoModelForSequenceClassification.from_pretrained(card["base_model"], num_labels=n_out, local_files_only=True)
    tok = load_tokenizer(p)
    base.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(base, str(p))
    model.eval()
    return LoadedHead(model, tok, get_template(card["template"]), card, p)


def score_candidates(head: LoadedHead | str | Path, candidates: list) -> list[dict]:
    """Score generator candidates with a head.

    Args:
        candidates: ``Sample`` objects (their ``turns()``) or turn lists.
    Returns:
        one dict per candidate: ``score`` (probability of the positive class for two-class heads;
        the predicted rating for ``rating``; the raw reward for ``pairs``), ``decision`` (the
        predicted label name for two-class heads, else None), ``head`` (its name), ``task``.
    """
    import torch

    h = head if isinstance(head, LoadedHead) else load_head(head)
    cfg = HeadConfig.model_validate(h.card["config"])
    convs = [c if hasattr(c, "turns") else list(c) for c in candidates]
    out = []
    with torch.no_grad():
        for i in range(0, len(convs), 16):
            enc = _encode(h.tokenizer, [_render(h.tokenizer, h.template, t) for t in convs[i:i + 16]],
                          cfg.max_length_tokens)
            logits = h.model(**enc).logits
            for row in logits:
                if cfg.task in LABELS:
                    prob = torch.softmax(row, -1)
                    out.append({"score": float(prob[1]), "decision": LABELS[cfg.task][int(prob.argmax())]})
                elif cfg.task == "rating":
                    out.append({"score": float(row[0]) * 2.0 + 3.0, "decision": None})
                else:
                    out.append({"score": float(row[0]), "decision": None})
    for o in out:
        o["head"] = h.card.get("name") or h.path.name
        o["task"] = cfg.task
    return out


def suggestions_for_review(head: LoadedHead | str | Path, samples: list) -> list[dict]:
    """Rows for review's suggestion list (``review_suggestions``: source ``scoring_head``, decision,
    score, model): one per sample with a ``sample_id``. The score is rounded to 4 decimals and
    never NaN."""
    scores = score_candidates(head, samples)
    rows = []
    for s, sc in zip(samples, scores):
        if getattr(s, "sample_id", None) is None or math.isnan(sc["score"]):
            continue
        rows.append({"sample_id": s.sample_id, "source": "scoring_head", "decision": sc["decision"],
                     "score": round(sc["score"], 4), "model": sc["head"], "text": None})
    return rows


def suggest_in_review(workspace: str | Path, dataset: str, head_dir: str | Path, *, user: str,
                      version: str | int | None = None) -> int:
    """Score every sample of a (staging) dataset version and hand the suggestions to review.

    Integration point with review: hands the rows to
    ``pipelines.review.tasks.add_suggestions(workspace, user, dataset, rows)`` (which needs
    ``manage_tasks``). Needs ``train`` here (heads are a curator's tool).

    Raises:
        WorkbenchError: review cannot take suggestions in this build.
    """
    from datastore import Store
    from datastore import versions as V
    from pipelines import policy

    with Store(workspace, create=False) as st:
        policy.require(st, user, "train", dataset)
        v = V.resolve(st, dataset, version)
        samples = list(V.iter_samples(st, v))
    rows = suggestions_for_review(head_dir, samples)
    try:
        from pipelines.review.tasks import add_suggestions
    except ImportError:
        raise WorkbenchError("review cannot take suggestions in this build (pipelines.review.tasks "
                             "is missing)") from None
    return add_suggestions(workspace, user, dataset, rows)


__all__ = ["HeadConfig", "HeadResult", "LABELS", "LabeledExample", "LoadedHead", "evaluate_head",
           "examples_from_annotations", "load_head", "score_candidates", "split_examples",
           "suggest_in_review", "suggestions_for_review", "train_head"]
