"""Preference pairs as samples of their own kind, versioned like every other dataset.

Representation with the existing sample columns (``datastore/samples.py``; no new column):

* a pair is a sample of ``kind = "preference"``: ``messages`` holds the prompt turns followed by
  the **chosen** completion (so the final assistant turn is the chosen answer and the sample
  reads as the conversation we want); ``extra["prompt_turns"]`` is the number of prompt turns
  and ``extra["rejected"]`` the rejected completion's turns. Both are inside the canonical JSON
  (``extra`` is hashed), so the version content hash covers chosen and rejected alike.
* an unpaired (KTO) example is ``kind = "unpaired_preference"``: ``messages`` = prompt +
  completion, ``extra["label"]`` (bool) and ``extra["prompt_turns"]``.
* fields of a source record we do not map go to ``extra["fields"]``; ``layout`` keeps the source
  format (no text); ``lineage`` names where the pair came from: the import file and row, or the
  review task, dataset version, sample and the annotations behind it (:mod:`pairs`).

Every write is one ``datastore.versions.commit`` (one transaction, audited). Permissions:
importing and extracting need ``edit_samples`` (they create dataset versions, as ``wb import``),
reading needs ``read_datasets`` (``pipelines.policy``).
"""
from __future__ import annotations

from pathlib import Path

from datastore import Sample, Store, WorkbenchError
from datastore import versions as V
from pipelines import policy
from pipelines.preference.pairs import ExtractionReport, Pair, RankMode, Unpaired

KIND_PAIR = "preference"
KIND_UNPAIRED = "unpaired_preference"
KINDS = (KIND_PAIR, KIND_UNPAIRED)


def to_sample(item: Pair | Unpaired) -> Sample:
    """The stored form of a pair or unpaired example (see the module doc)."""
    extra: dict = {"prompt_turns": len(item.prompt)}
    if isinstance(item, Pair):
        kind, completion = KIND_PAIR, item.chosen
        extra["rejected"] = [dict(t) for t in item.rejected]
    else:
        kind, completion = KIND_UNPAIRED, item.completion
        extra["label"] = bool(item.label)
    if item.extra:
        extra["fields"] = dict(item.extra)
    return Sample(kind=kind, messages=[dict(t) for t in item.prompt + completion], source=item.source,
                  lineage=dict(item.lineage) or None, extra=extra, layout=dict(item.layout) or None,
                  task_type="preference")


def from_sample(s: Sample) -> Pair | Unpaired:
    """Inverse of :func:`to_sample`. Raises WorkbenchError for a sample of another kind."""
    if s.kind not in KINDS:
        raise WorkbenchError(f"sample {s.sample_id} is a {s.kind} sample, not a preference pair")
    extra = dict(s.extra or {})
    k = int(extra.get("prompt_turns", 0))
    msgs = [dict(t) for t in (s.messages or [])]
    common = dict(lineage=dict(s.lineage or {}), source=s.source, extra=dict(extra.get("fields") or {}),
                  layout=dict(s.layout or {}), sample_id=s.sample_id)
    if s.kind == KIND_PAIR:
        return Pair(msgs[:k], msgs[k:], [dict(t) for t in extra.get("rejected") or []], **common)
    return Unpaired(msgs[:k], msgs[k:], bool(extra.get("label")), **common)


def commit_items(workspace: str | Path, dataset: str, items: list, *, user: str, message: str,
                 operation: dict | None = None) -> V.Version:
    """Commit pairs/unpaired examples as a new version of ``dataset`` (created when missing).

    Raises:
        PermissionDenied: ``user`` may not ``edit_samples``. WorkbenchError: nothing to commit.
    """
    if not items:
        raise WorkbenchError("no preference pairs to commit")
    rows = [to_sample(i).to_row() for i in items]
    with Store(workspace) as st:
        name, _ = policy.require(st, user, "edit_samples", dataset)
        return V.commit(st, dataset, author=name, message=message, add=rows, operation=operation, create=True)


def read_items(workspace: str | Path, dataset: str, version: str | int | None = None, *,
               user: str) -> tuple[V.Version, list]:
    """The preference items of a version (other sample kinds are skipped), by sample id."""
    with Store(workspace, create=False) as st:
        policy.require(st, user, "read_datasets", dataset)
        v = V.resolve(st, dataset, version)
        return v, [from_sample(s) for s in V.iter_samples(st, v) if s.kind in KINDS]


def items_of_samples(samples: list) -> list:
    """Preference items of ``Sample`` objects (e.g. a run folder's exported version)."""
    return [from_sample(s) for s in samples if s.kind in KINDS]


def import_file(workspace: str | Path, path: str | Path, dataset: str, *, user: str, fmt: str | None = None,
                message: str | None = None) -> tuple[V.Version, str, int]:
    """Import a preference file (any format of :mod:`formats`) as one new version.

    Returns ``(version, format, count)``. Raises FormatError (file, row, line, field) on bad input;
    nothing is written then.
    """
    from pipelines.preference.formats import read_file

    items, fmt = read_file(path, fmt)
    v = commit_items(workspace, dataset, items, user=user,
                     message=message or f"import {len(items)} preference record(s) from {Path(path).name}",
                     operation={"op": "import_preferences", "file": str(path), "format": fmt, "count": len(items)})
    return v, fmt, len(items)


def export_version(workspace: str | Path, dataset: str, path: str | Path, *, user: str,
                   version: str | int | None = None, fmt: str = "trl", conversational: bool = True,
                   template: str | None = None) -> int:
    """Write a version's preference items to ``path`` in ``fmt``; returns the count.

    ``fmt="trl"`` writes pairs in trl's preference format and unpaired examples in trl's unpaired
    format (a KTO set); the LLaMA-Factory and hh-rlhf formats take only the items they can hold
    and refuse the others (WorkbenchError naming the reason).
    """
    from pipelines.preference.formats import write_file

    _, items = read_items(workspace, dataset, version, user=user)
    if not items:
        raise WorkbenchError(f"{dataset} has no preference pairs to export")
    return write_file(items, path, fmt, conversational=conversational, template=template)


# ---------------------------------------------------------------- from review
def review_annotations(workspace, task: str, user: str) -> dict:
    """Samples and annotations of a review task, read through the review area's public export
    (:func:`pipelines.review.export.export_annotations`, JSON Lines into a temporary file; it
    checks ``read_all_annotations``). Returns ``{"task": {...}, "samples": {id: Sample},
    "annotations": [dict]}``; each annotation dict has ``annotation_id``, ``sample_id``,
    ``annotator``, ``decision``, ``rating``, ``answers`` (dict) and ``stale``.

    Raises:
        WorkbenchError: review is not available in this build.
    """
    import json
    import tempfile

    try:
        from pipelines.review.export import export_annotations
    except ImportError:
        raise WorkbenchError("review annotations are not available in this build (pipelines.review.export "
                             "is missing); extract pairs from records instead") from None
    samples, anns = {}, []
    with tempfile.TemporaryDirectory(prefix="wb-prefs-") as tmp:
        out = Path(tmp) / "task.jsonl"
        export_annotations(workspace, user, task, out, fmt="jsonl")
        for line in out.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("kind") is None:
                continue
            msgs = json.loads(r["messages"]) if isinstance(r.get("messages"), str) else r.get("messages")
            sid = r["sample_id"]
            samples[sid] = Sample(kind=r["kind"], system=r.get("system"), instruction=r.get("instruction"),
                                  input=r.get("input"), output=r.get("output"), messages=msgs, sample_id=sid)
            for a in r.get("annotations") or []:
                ans = a.get("answers")
                anns.append({**a, "sample_id": sid, "answers": json.loads(ans) if isinstance(ans, str) else (ans or {})})
    info = {"name": task}
    try:
        from pipelines.review.tasks import get_task
        t = get_task(workspace, user, task)
        info.update(dataset=t.dataset, version_id=t.version_id, version_number=t.version_number)
    except ImportError:
        pass
    return {"task": info, "samples": samples, "annotations": anns}


def extract_from_review(workspace: str | Path, task: str, dataset: str, *, user: str, mode: RankMode = "all",
                        message: str | None = None) -> tuple[V.Version, ExtractionReport]:
    """Pairs from a review task's edits and comparisons, committed as a new version of ``dataset``
    with lineage to the annotations behind each pair (rules: :mod:`pipelines.preference.pairs`).

    Raises:
        WorkbenchError: review not available, or no pair in the task.
    """
    from pipelines.preference.pairs import extract_pairs, records_from_annotations

    data = review_annotations(workspace, task, user)
    t = data.get("task") or {}
    src = {"task": task, **{k: t[k] for k in ("dataset", "version_id", "version_number") if k in t}}
    edits, ranks = records_from_annotations(data["samples"], data["annotations"], source=src)
    pairs, rep = extract_pairs(edits, ranks, mode=mode)
    if not pairs:
        raise WorkbenchError(f"review task '{task}' has no edited or ranked responses to make pairs from "
                             f"({rep.edits_seen} edits, {rep.unchanged_edits} unchanged, {rep.rankings_seen} rankings)")
    v = commit_items(workspace, dataset, pairs, user=user,
                     message=message or f"{len(pairs)} preference pair(s) from review task {task}",
                     operation={"op": "extract_preferences", "task": task, "mode": mode, **rep.as_dict()})
    return v, rep


def commit_pairs_from_records(workspace: str | Path, dataset: str, edits: list, rankings: list, *, user: str,
                              mode: RankMode = "all", message: str | None = None) -> tuple[V.Version, ExtractionReport]:
    """Same as :func:`extract_from_review` for records already in hand (tests, other callers)."""
    from pipelines.preference.pairs import extract_pairs

    pairs, rep = extract_pairs(edits, rankings, mode=mode)
    if not pairs:
        raise WorkbenchError("no pair: every edit was unchanged and no ranking ordered two responses")
    v = commit_items(workspace, dataset, pairs, user=user, message=message or f"{len(pairs)} preference pair(s)",
                     operation={"op": "extract_preferences", "mode": mode, **rep.as_dict()})
    return v, rep


__all__ = ["KINDS", "KIND_PAIR", "KIND_UNPAIRED", "commit_items", "commit_pairs_from_records", "export_version",
           "extract_from_review", "from_sample", "import_file", "items_of_samples", "read_items", "review_annotations",
           "to_sample"]
