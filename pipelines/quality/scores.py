"""Filling ``quality_score`` (0..1, ``datastore.vocabulary``) from the sources that exist.

Sources:

* ``ratings``: the mean review rating of the accepted annotations of a sample (current round,
  every review task on the dataset; ``datastore.annotations.accepted_ratings``), on the 1..5
  form mapped linearly to 0..1 (``vocabulary.quality_from_rating``). Samples nobody accepted
  with a rating keep their score.
* ``head``: a scoring head (``pipelines.preference.scoring``): an ``accept`` head's probability
  of accept as is (a ``should_refuse`` head is refused: it predicts refusal, not quality); a ``rating`` head's predicted rating clipped to 1..5 and mapped
  like a review rating; a ``pairs`` (reward) head's raw reward through the logistic function,
  the Bradley-Terry probability that the sample beats a reward-0 reference (Ouyang et al.
  2022, "Training language models to follow instructions with human feedback", eq. 1).

Each scored sample records where its score came from in ``lineage["quality_score"]``
(``{"source", ...details}``); lineage is not hashed, the score is (a new content hash). The
result is committed as one new version of the dataset.
"""
from __future__ import annotations

import math
from pathlib import Path

from datastore import Store, WorkbenchError
from datastore import annotations as A
from datastore import versions as V
from datastore import vocabulary
from pipelines.policy import require

SOURCES = ("ratings", "head")


def head_to_unit(task: str, score: float) -> float:
    """A scoring head's ``score`` (:func:`pipelines.preference.scoring.score_candidates`) on 0..1
    (rules in the module docstring)."""
    if task == "rating":
        lo, hi = vocabulary.RATING_RANGE
        return vocabulary.quality_from_rating(min(hi, max(lo, score)))
    if task == "pairs":
        return 1.0 / (1.0 + math.exp(-score)) if score >= 0 else math.exp(score) / (1.0 + math.exp(score))
    if task == "should_refuse":
        raise WorkbenchError("a should_refuse head predicts refusal, not quality; use an accept, rating "
                             "or pairs head")
    return min(1.0, max(0.0, score))  # the accept head gives the probability of accept


def _from_ratings(st, version) -> dict[int, tuple[float, dict]]:
    out = {}
    for sid, r in A.accepted_ratings(st.conn, version.dataset_id).items():
        out[sid] = (vocabulary.quality_from_rating(r["mean"]),
                    {"source": "review ratings", "mean_rating": round(r["mean"], 4), "n_ratings": r["n"],
                     "tasks": r["tasks"]})
    return out


def _from_head(samples, head_dir) -> dict[int, tuple[float, dict]]:
    from pipelines.preference.scoring import load_head, score_candidates
    head = load_head(head_dir)
    scored = score_candidates(head, samples)
    return {s.sample_id: (head_to_unit(o["task"], o["score"]),
                          {"source": "scoring head", "head": o["head"], "task": o["task"],
                           "head_score": round(o["score"], 6)})
            for s, o in zip(samples, scored)}


def fill(workspace: str | Path, dataset: str, *, user: str | None, source: str = "ratings",
         head_dir: str | Path | None = None, overwrite: bool = False, message: str | None = None) -> dict:
    """Fill ``quality_score`` on the head version of ``dataset`` from ``source`` (``ratings`` or
    ``head``) and commit the result as a new version.

    ``overwrite``: replace scores already present (default: only samples without one).

    Returns ``{"dataset", "source", "scored", "unchanged", "skipped", "version", "content_hash"}``
    (``skipped``: samples the source has no score for); ``version`` is None when nothing changed
    (no commit).

    Raises:
        WorkbenchError: unknown source; ``head`` without ``head_dir``. PermissionDenied: ``user``
            may not edit samples. NotFound: unknown dataset.
    """
    if source not in SOURCES:
        raise WorkbenchError(f"unknown quality score source '{source}'; choose from {', '.join(SOURCES)}")
    if source == "head" and head_dir is None:
        raise WorkbenchError("--from head needs --head DIR (a scoring head folder)")
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", dataset)[0]
        v = V.resolve(st, dataset, None)
        samples = [s for s in V.iter_samples(st, v) if overwrite or s.quality_score is None]
        scores = _from_ratings(st, v) if source == "ratings" else {}
    if source == "head" and samples:
        scores = _from_head(samples, head_dir)
    update, unchanged = {}, 0
    for s in samples:
        if s.sample_id not in scores:
            continue
        score, why = scores[s.sample_id]
        score = vocabulary.FIELDS["quality_score"].check(score)
        if score == s.quality_score:
            unchanged += 1
            continue  # an unchanged score makes no new revision (lineage alone is not hashed)
        s.quality_score = score
        s.lineage = {**(s.lineage or {}), "quality_score": why}
        update[s.sample_id] = s.to_row()
    res = {"dataset": dataset, "source": source, "scored": len(update), "unchanged": unchanged,
           "skipped": len(samples) - len(update) - unchanged, "version": None, "content_hash": None}
    if not update:
        return res
    with Store(workspace) as st:
        nv = V.commit(st, dataset, author=user, message=message or f"quality score from {source}",
                      update=update, operation={"op": "quality_score", "source": source, "scored": len(update),
                                                "head": str(head_dir) if head_dir else None})
    res["version"], res["content_hash"] = nv.number, nv.content_hash
    return res
