"""Batched, checkpointed backend calls and the shared candidate filters.

:func:`run_batched` sends prompts (``complete``) or conversations (``chat``) to a backend in
batches of ``batch_size`` and records each batch's outputs in a
:class:`~pipelines.generate.checkpoint.Checkpoint` under ``(stage, batch index)``; recorded
batches are replayed, so a resumed job regenerates nothing it finished.
:func:`novelty_filter` drops exact and ROUGE-L near duplicates in order, with
``pipelines.filters.near_dup.filter_in_order`` when that module is installed and the exact
rouge-score reference otherwise (both: ROUGE-L F-measure above the threshold drops;
Self-Instruct's rule, docs/architecture.md section 4).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from .backends import Backend, GenerationOutput, SamplingConfig
from .checkpoint import Checkpoint


def run_batched(backend: Backend, stage: str, items: list, sampling: SamplingConfig, *, mode: str = "complete",
                prompt_template_hash: str | None = None, batch_size: int = 8, checkpoint: Checkpoint | None = None,
                should_stop: Callable[[], None] | None = None,
                on_batch: Callable[[int, int], None] | None = None) -> list[GenerationOutput]:
    """Outputs for ``items`` (prompt strings for ``mode="complete"``, conversations for
    ``"chat"``), in order. ``should_stop`` runs before every batch that must be generated;
    ``on_batch(done, total)`` after every batch."""
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    outs: list[GenerationOutput] = []
    for bi, a in enumerate(range(0, len(items), batch_size)):
        rec = ckpt.get(stage, bi)
        if rec is None:
            if should_stop is not None:
                should_stop()
            chunk = items[a:a + batch_size]
            fn = backend.chat if mode == "chat" else backend.complete
            res = fn(chunk, sampling, prompt_template_hash=prompt_template_hash)
            rec = ckpt.put(stage, bi, {"outputs": [o.model_dump() for o in res]})
        outs.extend(GenerationOutput.model_validate(o) for o in rec["outputs"])
        if on_batch is not None:
            on_batch(len(outs), len(items))
    return outs


def run_variants(backend: Backend, stage: str, prompt_sets: list[list], sampling: SamplingConfig, *,
                 step: str, prompt_template_hash: str | None = None, batch_size: int = 8,
                 checkpoint: Checkpoint | None = None, should_stop: Callable[[], None] | None = None,
                 progress: Callable[[dict], None] | None = None) -> list[list[GenerationOutput]]:
    """One :func:`run_batched` pass per variant index ``k`` (``prompt_sets[k]``), checkpoint
    stage ``"{stage}:{k}"``, seed ``sampling.seed + k`` (so the variants of one prompt differ);
    ``progress({"step": step, "done", "total"})`` after every batch. Returns the outputs per
    variant, in order (shared by augmentation and mining)."""
    return [run_batched(backend, f"{stage}:{k}", prompts, sampling.model_copy(update={"seed": sampling.seed + k}),
                        prompt_template_hash=prompt_template_hash, batch_size=batch_size, checkpoint=checkpoint,
                        should_stop=should_stop,
                        on_batch=lambda d, n: progress and progress({"step": step, "done": d, "total": n}))
            for k, prompts in enumerate(prompt_sets)]


def keep_novel(candidates: list, text_of: Callable[[Any], str], threshold: float,
               on_drop: Callable[[Any, str], None]) -> list:
    """The candidates whose text (``text_of(c)``) passes :func:`novelty_filter` among
    themselves (no pool), in order; ``on_drop(candidate, reason)`` for each other one."""
    verdicts = novelty_filter([text_of(c) for c in candidates], [], threshold)
    kept = []
    for c, v in zip(candidates, verdicts):
        if v["kept"]:
            kept.append(c)
        else:
            on_drop(c, v["reason"])
    return kept


class StageResult(BaseModel):
    """What a generate-and-filter stage produced: ``samples`` (datastore Sample objects kept),
    ``dropped`` (one dict per dropped candidate, with its ``reason``), ``generated`` (candidates
    generated) and ``elapsed_s`` (wall seconds). Subclasses name their ``drop_reasons``."""

    drop_reasons: ClassVar[tuple[str, ...]] = ()

    samples: list[Any] = Field(description="kept samples (datastore Sample objects)")
    dropped: list[dict] = Field(description="dropped candidates, each with its reason")
    generated: int
    elapsed_s: float

    def counts(self) -> dict:
        """``{"generated", "kept", "dropped": {reason: n}}`` with every name in ``drop_reasons``."""
        c = Counter(d["reason"] for d in self.dropped)
        return {"generated": self.generated, "kept": len(self.samples),
                "dropped": {r: c.get(r, 0) for r in self.drop_reasons}}


def first_paragraph(text: str) -> str:
    """The first non-empty paragraph, whitespace collapsed, wrapping quotes removed."""
    for para in re.split(r"\n\s*\n", text.strip()):
        t = " ".join(para.split()).strip()
        if t:
            if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
                t = t[1:-1].strip()
            return t
    return ""


#: Trailing list debris: two or more bare list markers ("1.", "2)", "-", "*") with nothing between
#: them at the end of a text, optionally after a short label ("Answer: 1. 1. 2. 3."). Small models
#: emit it when a prompt's numbered examples leak into the continuation (seen with the embedded
#: SmolLM2-135M: "Output: 120 Answer: 1. 1. 2. 3."). Ours, not a published filter.
_LIST_DEBRIS = re.compile(r"(?:(?<=\s)|^)(?:[A-Za-z][A-Za-z ]{0,24}:\s*)?"
                          r"(?:(?:\d{1,3}[.)]|[-*\u2022])(?:\s+|$)){2,}\s*\Z")


def strip_list_debris(text: str | None) -> tuple[str | None, bool]:
    """``(text without trailing list debris, whether any was removed)``; the text is right-stripped
    when debris is removed. A text that is debris only comes back as ``""``. None stays None."""
    if not text:
        return text, False
    m = _LIST_DEBRIS.search(text)
    if not m:
        return text, False
    return text[:m.start()].rstrip(), True


def strip_sample_debris(samples: list) -> int:
    """Strip trailing list debris (:func:`strip_list_debris`) in place from every generated text of
    ``samples`` (``datastore.Sample``: instruction, input, output, and the string content of each
    message). Returns how many texts changed; a text that would become empty is left as it is."""
    n = 0

    def clean(v):
        nonlocal n
        new, hit = strip_list_debris(v) if isinstance(v, str) else (v, False)
        if hit and new.strip():
            n += 1
            return new
        return v
    for s in samples:
        for f in ("instruction", "input", "output"):
            setattr(s, f, clean(getattr(s, f)))
        for m in s.messages or []:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                m["content"] = clean(m["content"])
    return n


def novelty_filter(candidates: list[str], pool: list[str] = (), threshold: float = 0.7) -> list[dict]:
    """For each candidate, in order: ``{"kept", "reason", "score", "match"}``; ``reason`` is
    ``duplicate`` (exact repeat of the pool or an earlier kept candidate, after the dedup
    normalisation :func:`pipelines.filters.textnorm.normalize_text`), ``near_duplicate`` (ROUGE-L
    F > threshold against the pool or an earlier kept candidate) or None; ``match`` is the
    matched text."""
    from pipelines.filters.textnorm import normalize_text as norm

    pool = list(pool)
    seen = {norm(p) for p in pool}
    out: list[dict] = []
    exact_ok = []
    for c in candidates:
        if norm(c) in seen:
            out.append({"kept": False, "reason": "duplicate", "score": 1.0, "match": c})
        else:
            out.append(None)
            exact_ok.append(c)
            seen.add(norm(c))
    try:
        from pipelines.filters.near_dup import filter_in_order
        res = filter_in_order(pool, exact_ok, threshold=threshold)
        texts = pool + exact_ok

        def match_text(m):
            # ``match`` indexes pool + candidates in order (pool first)
            return texts[m] if isinstance(m, int) and 0 <= m < len(texts) else None
        verdicts = [(r["kept"], r.get("score"), match_text(r.get("match"))) for r in res]
    except ImportError:
        from .self_instruct import RougeFilter
        f = RougeFilter(pool, threshold)
        verdicts = []
        for c in exact_ok:
            score, who = f.best(c)
            if score > threshold:
                verdicts.append((False, score, who))
            else:
                f.add(c)
                verdicts.append((True, score, who))
    it = iter(verdicts)
    for i, o in enumerate(out):
        if o is None:
            kept, score, who = next(it)
            out[i] = {"kept": kept, "reason": None if kept else "near_duplicate",
                      "score": round(float(score), 4) if score is not None else None, "match": None if kept else who}
    return out
