"""Merge datasets into one: the samples of one or more source versions are added to a
target dataset (created if missing) as one commit, dropping exact duplicates on
normalized text (against the target's head and among themselves) and, when asked,
semantic near-duplicates. Each copy keeps lineage to the sample it came from.

Dedup: ``pipelines.filters.dedup.exact_dedup(texts)`` on each sample's turns
(:func:`pipelines.curate.base.sample_text`), first occurrence kept. By default the texts are
compared in their :func:`pipelines.filters.textnorm.normalize_text` form (NFKC, zero-width and
bidi control characters removed, case folded, whitespace collapsed; ``normalize=False``: raw
text); the stored samples are copied unchanged. The commit message and ``operation`` name the
normalisation. Semantic dedup: ``semantic_dedup(texts, threshold)``.
"""
from __future__ import annotations

from pathlib import Path

from datastore import Store, WorkbenchError
from datastore import versions as V
from pipelines.policy import require

from .base import NORMALIZATION, Plan, copy_rows, sample_text


def _dedup_module():
    try:
        from pipelines.filters import dedup
    except ImportError:
        return None
    return dedup


def _exact_keep(texts: list[str], normalize: bool = True) -> list[int]:
    from pipelines.filters.dedup import exact_dedup
    return sorted(int(i) for i in exact_dedup(texts, normalize=normalize))


def _semantic_keep(texts: list[str], threshold: float) -> list[int]:
    mod = _dedup_module()
    if mod is None or not hasattr(mod, "semantic_dedup"):
        raise WorkbenchError("semantic dedup needs pipelines.filters.dedup.semantic_dedup, which this "
                             "installation does not have; use exact dedup")
    return sorted(int(i) for i in mod.semantic_dedup(texts, threshold=threshold))


def _parse_ref(ref: str) -> tuple[str, str | None]:
    """``name`` or ``name@v3`` / ``name@tag``."""
    if "@" in ref:
        n, v = ref.rsplit("@", 1)
        return n, v or None
    return ref, None


def _compute(st, sources: list[str], into: str, dedup: str, threshold: float, normalize: bool = True):
    if not sources:
        raise WorkbenchError("merge needs at least one source dataset")
    if dedup not in ("exact", "semantic", "none"):
        raise WorkbenchError(f"dedup must be exact, semantic or none, not '{dedup}'")
    existing_texts: list[str] = []
    try:
        head = V.resolve(st, into)
        existing_texts = [sample_text(s) for s in V.iter_samples(st, head)]
    except Exception:  # target missing or empty: nothing to dedup against
        head = None
    incoming, origin, parts = [], [], []
    for ref in sources:
        name, vref = _parse_ref(ref)
        if name == into:
            raise WorkbenchError(f"cannot merge '{into}' into itself")
        v = V.resolve(st, name, vref)
        samples = list(V.iter_samples(st, v))
        parts.append({"dataset": name, "version": v.number, "version_id": v.version_id, "samples": len(samples)})
        incoming += samples
        origin += [v] * len(samples)
    texts = existing_texts + [sample_text(s) for s in incoming]
    n0 = len(existing_texts)
    keep_idx = list(range(len(texts)))
    dropped_exact = dropped_sem = 0
    if dedup in ("exact", "semantic"):
        k = set(_exact_keep(texts, normalize))
        dropped_exact = sum(1 for i in range(n0, len(texts)) if i not in k)
        keep_idx = [i for i in keep_idx if i in k or i < n0]
    if dedup == "semantic":
        sub = [texts[i] for i in keep_idx]
        ks = {keep_idx[j] for j in _semantic_keep(sub, threshold)}
        dropped_sem = sum(1 for i in keep_idx if i >= n0 and i not in ks)
        keep_idx = [i for i in keep_idx if i in ks or i < n0]
    chosen = [i - n0 for i in keep_idx if i >= n0]
    return head, incoming, origin, parts, chosen, dropped_exact, dropped_sem


def _describe(parts, into, dedup, threshold, added, dropped_exact, dropped_sem,
              normalize: bool = True) -> tuple[str, dict]:
    src = ", ".join(f"{p['dataset']} v{p['version']} ({p['samples']})" for p in parts)
    on = f"text normalized ({NORMALIZATION})" if normalize else "raw text"
    how = {"exact": f"exact dedup on {on}", "none": "no dedup",
           "semantic": f"exact dedup on {on} + semantic dedup (threshold {threshold})"}[dedup]
    msg = (f"merge {src} into {into} with {how}: added {added}, dropped {dropped_exact} exact"
           + (f" and {dropped_sem} semantic" if dedup == "semantic" else "") + " duplicate(s)")
    op = {"op": "merge", "sources": parts, "into": into, "dedup": dedup, "added": added,
          "dropped_exact": dropped_exact, "dropped_semantic": dropped_sem}
    if dedup != "none":
        op["normalization"] = NORMALIZATION if normalize else "none"
    if dedup == "semantic":
        op["threshold"] = threshold
    return msg, op


def plan_merge(workspace: str | Path, sources: list[str], into: str, *, user: str, dedup: str = "exact",
               threshold: float = 0.9, normalize: bool = True) -> Plan:
    """Counts of a merge without committing: ``{"incoming", "added", "dropped_exact",
    "dropped_semantic", "target_before"}``. ``sources`` are ``name`` or ``name@version``;
    ``normalize``: compare normalized text (default) or raw text."""
    with Store(workspace, create=False) as st:
        require(st, user, "edit_samples", into)
        head, incoming, _, parts, chosen, de, ds = _compute(st, sources, into, dedup, threshold, normalize)
        msg, op = _describe(parts, into, dedup, threshold, len(chosen), de, ds, normalize)
        return Plan("merge", into, msg, op, {"incoming": len(incoming), "added": len(chosen), "dropped_exact": de,
                                             "dropped_semantic": ds, "target_before": head.n_samples if head else 0})


def merge_datasets(workspace: str | Path, sources: list[str], into: str, *, user: str, dedup: str = "exact",
                   threshold: float = 0.9, normalize: bool = True) -> V.Version:
    """Merge ``sources`` into ``into`` as one commit (see the module docstring).

    Raises:
        PermissionDenied; NotFound (a source); Conflict (every incoming sample is a duplicate).
    """
    with Store(workspace, create=False) as st:
        name, _ = require(st, user, "edit_samples", into)
        head, incoming, origin, parts, chosen, de, ds = _compute(st, sources, into, dedup, threshold, normalize)
        msg, op = _describe(parts, into, dedup, threshold, len(chosen), de, ds, normalize)
        rows = []
        for i in chosen:
            rows += copy_rows([incoming[i]], parent=origin[i])
        return V.commit(st, into, author=name, message=msg, add=rows, operation=op, create=True)
