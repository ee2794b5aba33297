"""Augmentation and balancing of existing samples.

- :func:`paraphrase_samples`: the same task in different words (``templates/generate/
  paraphrase.jinja``); the answer is kept (the meaning is unchanged), so is every metadata
  field; lineage links to the source sample.
- :func:`counterfactual_samples`: one attribute of the task changed so the answer changes
  (``counterfactual.jinja``; Kaushik et al. 2020); the answer is generated again.
- :func:`rebalance_plan` / :func:`rebalance`: counts per task type or policy domain against
  target proportions; the deficit of each group is filled with paraphrases of its own
  samples, and the surplus is reported (never deleted: removals are a curator's decision).

Filters on every augmented instruction: empty, ``unchanged`` (equal to its source after
whitespace normalisation), ``too_similar`` (ROUGE-L F-measure with its source above
``max_rouge_to_source``: a paraphrase must change the surface) and exact/near duplicates of
earlier augmented ones.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, SamplingConfig
from .batching import StageResult, first_paragraph, keep_novel, run_batched, run_variants
from .checkpoint import Checkpoint
from .prompts import render_prompt, template_hash

DROP_REASONS: tuple[str, ...] = ("empty", "unchanged", "too_similar", "duplicate", "near_duplicate")
COUNTERFACTUAL_ATTRIBUTES: tuple[str, ...] = ("a number", "a name", "a place", "a condition")


def _sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=96, temperature=0.7, top_p=0.9, seed=0, stop=("\n\n",))


def _answer_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=160, temperature=0.7, top_p=0.9, seed=0)


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_sample: int = Field(1, ge=1, description="Augmented variants per source sample (each with its own seed).")
    max_rouge_to_source: float = Field(0.9, ge=0.0, le=1.0, description=(
        "A variant whose ROUGE-L F-measure with its source is above this is dropped as too_similar "
        "(workbench default; a paraphrase with >0.9 overlap changes almost nothing)."))
    near_dup_threshold: float = Field(0.7, ge=0.0, lt=1.0, description=(
        "ROUGE-L F above which a variant duplicates an earlier kept one (Self-Instruct's 0.7)."))
    sampling: SamplingConfig = Field(default_factory=_sampling, description="Sampling for rewritten instructions.")
    answer_sampling: SamplingConfig = Field(default_factory=_answer_sampling, description=(
        "Sampling for the new answers of counterfactual variants."))
    batch_size: int = Field(8, ge=1, description="Prompts per backend call and per checkpoint record.")


class AugmentResult(StageResult):
    """Kept variants; ``dropped``: ``[{source_id, text, reason}]``."""

    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS


def _instruction_of(s) -> str:
    if s.kind == "conversation":
        users = [m.get("content") or "" for m in (s.messages or []) if m.get("role") == "user"]
        return users[0] if users else ""
    return s.instruction or ""


def _with_instruction(s, text: str, output: str | None, lineage: dict):
    if s.kind == "conversation":
        msgs = [dict(m) for m in (s.messages or [])]
        first = next(i for i, m in enumerate(msgs) if m.get("role") == "user")
        msgs[first]["content"] = text
        if output is not None:  # a counterfactual answers only the changed first turn
            msgs = msgs[:first + 1] + [{"role": "assistant", "content": output}]
        return dataclasses.replace(s, messages=msgs, lineage=lineage, sample_id=None, row_hash=None)
    return dataclasses.replace(s, instruction=text, output=output if output is not None else s.output,
                               lineage=lineage, sample_id=None, row_hash=None)


def _augment(backend: Backend, samples: list, op: str, config: AugmentConfig, *, source_ref: dict | None,
             checkpoint: Checkpoint | None, should_stop, progress) -> AugmentResult:
    from rouge_score import rouge_scorer
    t0 = time.monotonic()
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    for i, s in enumerate(samples):
        if not _instruction_of(s).strip():
            raise WorkbenchError(f"sample {s.sample_id if s.sample_id is not None else i} has no instruction to {op}")
    tpl = op
    jobs = [(s, k) for k in range(config.per_sample) for s in samples]
    prompts, attrs = [], []
    for s, k in jobs:
        ctx: dict[str, Any] = {"instruction": _instruction_of(s).strip()}
        if op == "counterfactual":
            ctx["attribute"] = COUNTERFACTUAL_ATTRIBUTES[(k + (s.sample_id or 0)) % len(COUNTERFACTUAL_ATTRIBUTES)]
        attrs.append(ctx.get("attribute"))
        prompts.append(render_prompt(tpl, **ctx)[0])
    n = len(samples)  # one seed per variant index, so variants differ
    outs = [o for part in run_variants(
        backend, op, [prompts[k * n:(k + 1) * n] for k in range(config.per_sample)], config.sampling, step=op,
        prompt_template_hash=template_hash(tpl), batch_size=config.batch_size, checkpoint=ckpt,
        should_stop=should_stop, progress=progress) for o in part]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    dropped: list[dict] = []
    alive: list[tuple[Any, int, str, Any]] = []
    for (s, k), o, attr in zip(jobs, outs, attrs):
        text = first_paragraph(o.text)
        src = _instruction_of(s)
        reason = None
        if not text:
            reason = "empty"
        elif " ".join(text.split()).casefold() == " ".join(src.split()).casefold():
            reason = "unchanged"
        elif scorer.score(src, text)["rougeL"].fmeasure > config.max_rouge_to_source:
            reason = "too_similar"
        if reason:
            dropped.append({"source_id": s.sample_id, "text": text, "reason": reason})
        else:
            alive.append((s, k, text, (o, attr)))
    kept = keep_novel(alive, lambda a: a[2], config.near_dup_threshold, lambda a, r: dropped.append(
        {"source_id": a[0].sample_id, "text": a[2], "reason": r}))
    answers: list[str | None] = [None] * len(kept)
    if op == "counterfactual" and kept:
        convs = [[*([{"role": "system", "content": s.system}] if s.kind != "conversation" and s.system else []),
                  {"role": "user", "content": text + (f"\n\n{s.input}" if s.kind != "conversation" and s.input else "")}]
                 for s, _, text, _ in kept]
        res = run_batched(backend, f"{op}:answers", convs, config.answer_sampling, mode="chat",
                          batch_size=config.batch_size, checkpoint=ckpt, should_stop=should_stop)
        answers = [(o.text.strip(), o) for o in res]
    out = []
    for n, (s, k, text, (o, attr)) in enumerate(kept):
        lin = {**(s.lineage or {}), "augment": {
            "op": op, "variant": k, "template": f"generate/{tpl}", "prompt_template_hash": o.prompt_template_hash,
            "model": o.model, "backend": o.backend, "sampling": o.sampling, "seed": o.seed,
            **({"attribute": attr} if attr else {})},
            "parent": {**(source_ref or {}), "sample_id": s.sample_id, "row_hash": s.row_hash}}
        ans = None
        if op == "counterfactual":
            ans, ao = answers[n]
            lin["augment"]["answer"] = {"model": ao.model, "backend": ao.backend, "sampling": ao.sampling,
                                        "seed": ao.seed}
        new = _with_instruction(s, text, ans, lin)
        tags = sorted(set(new.tags or []) | {op})
        out.append(dataclasses.replace(new, tags=tags))
    return AugmentResult(samples=out, dropped=dropped, generated=len(jobs), elapsed_s=round(time.monotonic() - t0, 3))


def paraphrase_samples(backend: Backend, samples: list, config: AugmentConfig | None = None, *,
                       source_ref: dict | None = None, checkpoint: Checkpoint | None = None,
                       should_stop: Callable[[], None] | None = None,
                       progress: Callable[[dict], None] | None = None) -> AugmentResult:
    """Paraphrase each sample's instruction (first user turn of a conversation) ``per_sample``
    times; answer and metadata kept; ``lineage.parent`` = ``source_ref`` + the source sample
    id and row hash; tag ``paraphrase`` added.

    Raises:
        WorkbenchError: a sample without an instruction.
    """
    return _augment(backend, samples, "paraphrase", config or AugmentConfig(), source_ref=source_ref,
                    checkpoint=checkpoint, should_stop=should_stop, progress=progress)


def counterfactual_samples(backend: Backend, samples: list, config: AugmentConfig | None = None, *,
                           source_ref: dict | None = None, checkpoint: Checkpoint | None = None,
                           should_stop: Callable[[], None] | None = None,
                           progress: Callable[[dict], None] | None = None) -> AugmentResult:
    """Counterfactual edit of each sample's instruction (one of :data:`COUNTERFACTUAL_ATTRIBUTES`
    changed) and a new answer for it; metadata kept; tag ``counterfactual``; lineage as
    :func:`paraphrase_samples`, plus the attribute changed and the answer's provenance."""
    return _augment(backend, samples, "counterfactual", config or AugmentConfig(), source_ref=source_ref,
                    checkpoint=checkpoint, should_stop=should_stop, progress=progress)


# --------------------------------------------------------------------------- balancing

BALANCE_FIELDS = ("task_type", "policy_domain", "language", "difficulty", "source")


def rebalance_plan(samples: list, by: str, target: dict[str, float], *, total: int | None = None) -> dict:
    """How far each group is from its target proportion.

    Args:
        by: a sample field (:data:`BALANCE_FIELDS`); samples with no value form group ``""``.
        target: group -> proportion (normalised to sum 1; groups not named get 0).
        total: the size to balance toward; None: the smallest total that reaches every target
            proportion without removing anything (so only additions are needed).

    Returns:
        ``{"by", "current": {g: n}, "target": {g: n}, "add": {g: n}, "surplus": {g: n}, "total"}``.

    Raises:
        WorkbenchError: an unknown field, negative or all-zero proportions, or a group with a
            target but no sample to augment from.
    """
    if by not in BALANCE_FIELDS:
        raise WorkbenchError(f"cannot balance by '{by}' (one of {', '.join(BALANCE_FIELDS)})")
    if not target or any(v < 0 for v in target.values()) or sum(target.values()) <= 0:
        raise WorkbenchError("target proportions must be non-negative and not all zero")
    s = sum(target.values())
    prop = {g: v / s for g, v in target.items()}
    current = Counter((getattr(x, by) or "") for x in samples)
    for g, p in prop.items():
        if p > 0 and current.get(g, 0) == 0:
            raise WorkbenchError(f"group '{g}' has a target but no samples to augment from")
    if total is None:
        total = max([math.ceil(current.get(g, 0) / p) for g, p in prop.items() if p > 0] + [sum(current.values())])
    want = {g: round(total * p) for g, p in prop.items()}
    add = {g: max(0, want[g] - current.get(g, 0)) for g in want}
    surplus = {g: n - want.get(g, 0) for g, n in current.items() if n > want.get(g, 0)}
    return {"by": by, "current": dict(current), "target": want, "add": add, "surplus": surplus, "total": total}


def rebalance(backend: Backend, samples: list, by: str, target: dict[str, float], *, total: int | None = None,
              config: AugmentConfig | None = None, source_ref: dict | None = None,
              checkpoint: Checkpoint | None = None, should_stop: Callable[[], None] | None = None,
              progress: Callable[[dict], None] | None = None) -> tuple[dict, AugmentResult]:
    """Fill each group's deficit (:func:`rebalance_plan`) with paraphrases of that group's own
    samples (round robin over them), keeping their metadata, so the group's field value is
    unchanged. Returns ``(plan, result)``; dropped variants leave part of a deficit unfilled
    (the plan says what was wanted, the result what was kept)."""
    plan = rebalance_plan(samples, by, target, total=total)
    picks = []
    for g, n in plan["add"].items():
        members = [x for x in samples if (getattr(x, by) or "") == g]
        picks += [members[i % len(members)] for i in range(n)]
    c = config or AugmentConfig()
    if not picks:
        return plan, AugmentResult(samples=[], dropped=[], generated=0, elapsed_s=0.0)
    # the same sample picked twice gets two variants: run per_sample rounds on the distinct picks
    reps = Counter(id(p) for p in picks)
    distinct = list({id(p): p for p in picks}.values())
    res = paraphrase_samples(backend, distinct, c.model_copy(update={"per_sample": max(reps.values())}),
                             source_ref=source_ref, checkpoint=checkpoint, should_stop=should_stop, progress=progress)
    # keep at most the wanted number of variants per source
    used: Counter = Counter()
    want_by_src = {id(p): reps[id(p)] for p in distinct}
    src_by_key = {(p.sample_id, p.row_hash): id(p) for p in distinct}
    kept = []
    for v in res.samples:
        key = src_by_key.get((v.lineage["parent"]["sample_id"], v.lineage["parent"]["row_hash"]))
        if key is not None and used[key] < want_by_src[key]:
            used[key] += 1
            kept.append(dataclasses.replace(v, lineage={**v.lineage, "rebalance": {"by": by, "target": plan["target"]}}))
    return plan, AugmentResult(samples=kept, dropped=res.dropped, generated=res.generated, elapsed_s=res.elapsed_s)
