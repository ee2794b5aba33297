"""Challenging-sample mining: targeted follow-up instructions for samples that failed.

Sources (:class:`MinedSource`): samples rejected or rated low in review, or failed in a
training run's evaluation, each with its reason. They are given as plain lists, so this stage
does not depend on how review or evaluation store them; :func:`sources_from_review` adapts the
review area's API when it is installed (``pipelines/review``).

For each source, ``per_source`` follow-ups are generated with ``templates/generate/
mining_followup.jinja``: the same skill (the source's task type), a different surface.
Filters: empty, too short, ``same_surface`` (ROUGE-L F-measure with the source above
``max_rouge_to_source``: not a different surface), and exact/near duplicates among the
follow-ups. Each follow-up links to its source sample (``lineage.mined_from``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, SamplingConfig
from .batching import StageResult, first_paragraph, keep_novel, run_variants
from .checkpoint import Checkpoint
from .prompts import render_prompt, template_hash

DROP_REASONS: tuple[str, ...] = ("empty", "too_short", "same_surface", "duplicate", "near_duplicate")
Origin = Literal["review_rejected", "review_low_rating", "eval_failed"]


class MinedSource(BaseModel):
    """A sample that failed, and why. ``ref``: where it lives (``{"dataset", "version",
    "sample_id"}`` or a run and prediction id)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    sample: Any
    reason: str
    origin: Origin = "review_rejected"
    ref: dict = Field(default_factory=dict)


def _sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=96, temperature=0.8, top_p=0.95, seed=0, stop=("\n\n",))


class MiningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_source: int = Field(2, ge=1, description="Follow-ups per source sample (one seed each).")
    min_words: int = Field(4, ge=1, description=(
        "Fewer words: too_short (Self-Instruct keeps instructions of more than 3 words)."))
    max_rouge_to_source: float = Field(0.7, ge=0.0, le=1.0, description=(
        "ROUGE-L F with the source above this: same_surface (Self-Instruct's novelty threshold)."))
    near_dup_threshold: float = Field(0.7, ge=0.0, lt=1.0, description="ROUGE-L F between follow-ups (0.7).")
    sampling: SamplingConfig = Field(default_factory=_sampling, description="Sampling for follow-ups.")
    batch_size: int = Field(8, ge=1, description="Prompts per backend call and per checkpoint record.")


class MiningResult(StageResult):
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS


def _instruction(s) -> str:
    if s.kind == "conversation":
        users = [m.get("content") or "" for m in (s.messages or []) if m.get("role") == "user"]
        return users[-1] if users else ""
    return s.instruction or ""


def mine_followups(backend: Backend, sources: list[MinedSource], config: MiningConfig | None = None, *,
                   checkpoint: Checkpoint | None = None, should_stop: Callable[[], None] | None = None,
                   progress: Callable[[dict], None] | None = None) -> MiningResult:
    """Generate follow-up instructions for failed samples.

    Returns:
        :class:`MiningResult`: instruction samples (no answer yet: ``output`` None) with the
        source's task type, language and policy domain, tag ``mined``, and
        ``lineage.mined_from`` = {ref, sample_id, row_hash, reason, origin}.

    Raises:
        WorkbenchError: no sources, or a source without an instruction.
    """
    from datastore import Sample
    from rouge_score import rouge_scorer
    c = config or MiningConfig()
    if not sources:
        raise WorkbenchError("mining needs at least one rejected, low-rated or failed sample")
    for i, m in enumerate(sources):
        if not _instruction(m.sample).strip():
            raise WorkbenchError(f"source {i} (sample {m.sample.sample_id}) has no instruction")
    t0 = time.monotonic()
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    th = template_hash("mining_followup")
    prompts = [render_prompt("mining_followup", instruction=_instruction(m.sample).strip(), reason=m.reason,
                             skill=m.sample.task_type or "")[0] for m in sources]
    outs = [(m, k, o) for k, part in enumerate(run_variants(
        backend, "mine", [prompts] * c.per_source, c.sampling, step="mine", prompt_template_hash=th,
        batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop, progress=progress))
        for m, o in zip(sources, part)]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    dropped, alive = [], []
    for m, k, o in outs:
        text = first_paragraph(o.text)
        reason = None
        if not text:
            reason = "empty"
        elif len(text.split()) < c.min_words:
            reason = "too_short"
        elif scorer.score(_instruction(m.sample), text)["rougeL"].fmeasure > c.max_rouge_to_source:
            reason = "same_surface"
        if reason:
            dropped.append({"source_id": m.sample.sample_id, "text": text, "reason": reason})
        else:
            alive.append((m, k, o, text))
    samples = []
    for m, k, o, text in keep_novel(alive, lambda a: a[3], c.near_dup_threshold, lambda a, r: dropped.append(
            {"source_id": a[0].sample.sample_id, "text": a[3], "reason": r})):
        s = m.sample
        samples.append(Sample(kind="instruction", instruction=text, source="mined", task_type=s.task_type,
                              language=s.language, policy_domain=s.policy_domain, tags=["mined"],
                              lineage={"generator": "mining", "variant": k, "template": "generate/mining_followup",
                                       "prompt_template_hash": th, "model": o.model, "backend": o.backend,
                                       "sampling": o.sampling, "seed": o.seed,
                                       "mined_from": {**m.ref, "sample_id": s.sample_id, "row_hash": s.row_hash,
                                                      "reason": m.reason, "origin": m.origin}}))
    return MiningResult(samples=samples, dropped=dropped, generated=len(outs), elapsed_s=round(time.monotonic() - t0, 3))


def sources_from_review_rows(rows: list[dict], *, max_rating: float | None = 2, ref: dict | None = None) -> list[MinedSource]:
    """Mined sources from review export rows (``pipelines.review.export.export_annotations``
    JSON Lines: sample fields, ``annotations`` [{decision, rating, answers, stale}],
    ``adjudication`` {decision, note}).

    A row is a source when its adjudication decided ``reject``, or (not adjudicated) any
    current annotation says ``reject`` (origin ``review_rejected``); else, when not
    adjudicated, when the mean of its current ratings is at most ``max_rating`` (origin ``review_low_rating``; None: ratings
    ignored). The reason collects the notes and flags the reviewers gave.
    """
    from datastore import Sample
    out = []
    for r in rows:
        anns = [a for a in (r.get("annotations") or []) if not a.get("stale")]
        adj = r.get("adjudication") or None
        notes, flags = [], []
        for a in anns:
            try:
                ans = json.loads(a.get("answers") or "{}")
            except (TypeError, json.JSONDecodeError):
                ans = {}
            if ans.get("note"):
                notes.append(str(ans["note"]))
            flags += [str(f) for f in (ans.get("flags") or [])]
        if adj and adj.get("note"):
            notes.append(str(adj["note"]))
        ratings = [a["rating"] for a in anns if a.get("rating") is not None]
        if adj and adj.get("decision"):  # the adjudication is final: accepted/edited items are not mined
            if adj["decision"] != "reject":
                continue
            origin = "review_rejected"
        else:
            origin = "review_rejected" if any(a.get("decision") == "reject" for a in anns) else None
        if origin is None and max_rating is not None and ratings and sum(ratings) / len(ratings) <= max_rating:
            origin = "review_low_rating"
        if origin is None:
            continue
        msgs = r.get("messages")
        sample = Sample(kind=r.get("kind") or "instruction", system=r.get("system"), instruction=r.get("instruction"),
                        input=r.get("input"), output=r.get("output"),
                        messages=json.loads(msgs) if isinstance(msgs, str) else msgs,
                        sample_id=r.get("sample_id"), row_hash=r.get("row_hash"))
        reason = ("rejected in review" if origin == "review_rejected" else
                  f"rated {sum(ratings) / len(ratings):.1f} of 5 in review")
        extra = "; ".join(dict.fromkeys(notes + [f"flag: {f}" for f in flags]))
        out.append(MinedSource(sample=sample, reason=f"{reason}: {extra}" if extra else reason, origin=origin,
                               ref={**(ref or {}), "sample_id": r.get("sample_id")}))
    return out


def sources_from_review(workspace, task: int | str, *, user: str, max_rating: float | None = 2) -> list[MinedSource]:
    """Rejected and low-rated samples of a review task (``pipelines.review``), through its
    export (needs ``read_all_annotations``: adjudicators, curators, admins).

    Raises:
        WorkbenchError: the review area is not installed; PermissionDenied / NotFound from it.
    """
    import tempfile
    from pathlib import Path
    try:
        from pipelines.review.export import export_annotations
        from pipelines.review.tasks import get_task
    except ImportError:
        raise WorkbenchError("the review area is not installed; pass the samples and reasons directly "
                             "(wb generate mine --from-file)") from None
    info = get_task(workspace, user, task)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "review.jsonl"
        export_annotations(workspace, user, task, p, fmt="jsonl")
        rows = [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.exists() else []
    ref = {"review_task": getattr(info, "name", str(task)), "dataset": getattr(info, "dataset", None),
           "version": getattr(info, "version_number", None)}
    return sources_from_review_rows(rows, max_rating=max_rating, ref=ref)
