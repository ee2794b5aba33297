"""Preference pairs: the record, and the rules that turn review work into pairs.

A :class:`Pair` is one prompt (a list of turns ending with a user turn) with a *chosen* and a
*rejected* completion (each a list of turns, normally one assistant turn): the shape of trl's
conversational preference format (``prompt``/``chosen``/``rejected``; trl docs, "Dataset
formats"). :class:`Unpaired` is trl's unpaired preference (KTO) shape: one completion with a
``label`` (True desirable, False undesirable).

Extraction rules:

* **Edits** (:func:`pairs_from_edits`): an annotator's corrected response is *chosen*, the
  response they were shown is *rejected*. An edit equal to the original after stripping
  outer whitespace is no preference and gives no pair. Several annotators who wrote the same
  text (after stripping) give one pair whose lineage lists all their annotations; different
  texts give one pair each.
* **Comparisons and rankings** (:func:`pairs_from_rankings`): two or more responses to one
  prompt with ranks (1 best; equal ranks are ties and give no pair), or only a preferred one
  (the preferred ranks 1, the rest 2). ``mode="all"`` gives every ordered pair (a response
  above another: ``n (n - 1) / 2`` pairs for a strict ranking of ``n``), ``mode="best"`` the
  best response(s) against each other one (``n - 1``). This is how the InstructGPT reward model
  data was built from K-way rankings (Ouyang et al. 2022, section 3.5: all ``K choose 2``
  comparisons per prompt), and "best vs each other" is the binarization of UltraFeedback used
  for Zephyr (Tunstall et al. 2023) with every other response instead of one random one.
* **Several annotators** on the same prompt and responses: each ordered pair is counted once
  per annotation; when annotators disagree on a pair, the majority direction wins and a tie
  drops the pair (counted in :attr:`ExtractionReport.conflicts`). The winning pair's lineage
  lists the annotations that support it.

Everything here is pure Python (no store, no model), so the rules are tested on fixtures with
the exact expected pairs (tests/pipelines/preference/test_pairs.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Literal

from datastore.errors import WorkbenchError

RankMode = Literal["all", "best"]


@dataclass
class Pair:
    """One preference pair.

    Attributes:
        prompt: turns ``[{"role", "content"}]`` before the completions (may start with a system
            turn; normally ends with a user turn).
        chosen / rejected: the completions, each a list of turns (normally one assistant turn).
        lineage: where the pair came from (``{"rule": "edit"|"ranking"|"import", "annotations":
            [ids], "annotators": [...], "dataset", "version_id", "sample_id", "task", ...}``).
        source: a short source label (file name, ``review:<task>``).
        extra: fields of a source record kept for a lossless export (never texts we use).
        layout: how to write the record back in its source format (no text).
        sample_id: the stored sample's id once read from a dataset version (None before).
    """

    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    lineage: dict = field(default_factory=dict)
    source: str | None = None
    extra: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)
    sample_id: int | None = None

    @property
    def chosen_text(self) -> str:
        """Content of the last chosen turn."""
        return self.chosen[-1]["content"] if self.chosen else ""

    @property
    def rejected_text(self) -> str:
        return self.rejected[-1]["content"] if self.rejected else ""

    def key(self) -> tuple:
        """Identity of the pair's content (prompt, chosen, rejected), for de-duplication."""
        return (_turns_key(self.prompt), _turns_key(self.chosen), _turns_key(self.rejected))


@dataclass
class Unpaired:
    """One unpaired preference example (KTO): a prompt, one completion and its ``label``."""

    prompt: list[dict]
    completion: list[dict]
    label: bool
    lineage: dict = field(default_factory=dict)
    source: str | None = None
    extra: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)
    sample_id: int | None = None


@dataclass
class EditRecord:
    """An annotation that edited a response.

    Attributes:
        prompt: the turns the response answers.
        original: the response the annotator saw.
        edited: the annotator's corrected response.
        annotation_id / annotator: who made the edit (lineage).
        source: where the sample lives, e.g. ``{"dataset", "version_id", "sample_id", "task"}``.
    """

    prompt: list[dict]
    original: str
    edited: str
    annotation_id: int | str | None = None
    annotator: str | None = None
    source: dict = field(default_factory=dict)


@dataclass
class RankingRecord:
    """An annotation that compared responses to one prompt.

    Attributes:
        prompt: the turns the responses answer.
        responses: the candidate responses (two or more), in the order shown.
        ranks: rank of each response, parallel to ``responses`` (1 best; equal ranks tie), or None.
        preferred: index of the preferred response when only a choice was made (``ranks`` None).
    """

    prompt: list[dict]
    responses: list[str]
    ranks: list[int] | None = None
    preferred: int | None = None
    annotation_id: int | str | None = None
    annotator: str | None = None
    source: dict = field(default_factory=dict)

    def resolved_ranks(self) -> list[int]:
        """The ranks, from ``ranks`` or ``preferred``.

        Raises:
            WorkbenchError: fewer than two responses, ranks of the wrong length or below 1,
            a preferred index out of range, or neither ranks nor a preferred response.
        """
        n = len(self.responses)
        who = f"annotation {self.annotation_id}" if self.annotation_id is not None else "ranking"
        if n < 2:
            raise WorkbenchError(f"{who}: a comparison needs at least two responses, got {n}")
        if self.ranks is not None:
            if len(self.ranks) != n:
                raise WorkbenchError(f"{who}: {len(self.ranks)} ranks for {n} responses")
            if any((not isinstance(r, int)) or r < 1 for r in self.ranks):
                raise WorkbenchError(f"{who}: ranks must be integers from 1 (best), got {self.ranks}")
            return list(self.ranks)
        if self.preferred is not None:
            if not 0 <= self.preferred < n:
                raise WorkbenchError(f"{who}: preferred response {self.preferred} is not among 0..{n - 1}")
            return [1 if i == self.preferred else 2 for i in range(n)]
        raise WorkbenchError(f"{who}: neither ranks nor a preferred response")


@dataclass
class ExtractionReport:
    """Counts of one extraction (what was used, what was dropped and why)."""

    edits_seen: int = 0
    unchanged_edits: int = 0
    duplicate_edits: int = 0
    rankings_seen: int = 0
    tied_pairs: int = 0
    votes: int = 0
    conflicts: int = 0
    pairs: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _turns_key(turns: list[dict]) -> str:
    return json.dumps([[t.get("role"), t.get("content")] for t in turns], ensure_ascii=False)


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _lineage(rule: str, source: dict, records: list) -> dict:
    ids = [r.annotation_id for r in records if r.annotation_id is not None]
    who = sorted({r.annotator for r in records if r.annotator})
    return {**source, "rule": rule, "annotations": sorted(ids, key=str), "annotators": who}


def pairs_from_edits(edits: Iterable[EditRecord], report: ExtractionReport | None = None) -> list[Pair]:
    """Pairs from edited responses (edit chosen, original rejected); see the module doc.

    Returns pairs in the order of each distinct edit's first appearance.
    """
    rep = report if report is not None else ExtractionReport()
    groups: dict[tuple, list[EditRecord]] = {}
    for e in edits:
        rep.edits_seen += 1
        if e.edited.strip() == e.original.strip():
            rep.unchanged_edits += 1
            continue
        k = (_turns_key(e.prompt), e.original, e.edited.strip(), json.dumps(e.source, sort_keys=True, default=str))
        if k in groups:
            rep.duplicate_edits += 1
        groups.setdefault(k, []).append(e)
    out = []
    for recs in groups.values():
        first = recs[0]
        out.append(Pair(prompt=[dict(t) for t in first.prompt], chosen=_assistant(first.edited),
                        rejected=_assistant(first.original), lineage=_lineage("edit", first.source, recs),
                        source=first.source.get("task") and f"review:{first.source['task']}"))
    rep.pairs += len(out)
    return out


def _ordered_pairs(ranks: list[int], mode: RankMode) -> tuple[list[tuple[int, int]], int]:
    """(better, worse) index pairs of one ranking, and the number of tied pairs skipped."""
    n = len(ranks)
    ties = sum(1 for i in range(n) for j in range(i + 1, n) if ranks[i] == ranks[j])
    if mode == "all":
        order = sorted(range(n), key=lambda i: (ranks[i], i))
        return [(a, b) for x, a in enumerate(order) for b in order[x + 1:] if ranks[a] < ranks[b]], ties
    if mode == "best":
        top = min(ranks)
        best = [i for i in range(n) if ranks[i] == top]
        return [(a, b) for a in best for b in range(n) if ranks[b] > top], ties
    raise WorkbenchError(f"unknown ranking mode '{mode}' (use 'all' or 'best')")


def pairs_from_rankings(rankings: Iterable[RankingRecord], mode: RankMode = "all",
                        report: ExtractionReport | None = None) -> list[Pair]:
    """Pairs from comparison/ranking annotations; see the module doc for the rules.

    Annotations are grouped by (prompt, set of responses, source sample); within a group each
    ordered pair of response texts gets one vote per annotation. Pairs come out in the order of
    their first vote.

    Raises:
        WorkbenchError: a malformed ranking (see :meth:`RankingRecord.resolved_ranks`), an unknown mode.
    """
    rep = report if report is not None else ExtractionReport()
    groups: dict[tuple, dict] = {}
    for r in rankings:
        rep.rankings_seen += 1
        ranks = r.resolved_ranks()
        pairs, ties = _ordered_pairs(ranks, mode)
        rep.tied_pairs += ties
        gk = (_turns_key(r.prompt), tuple(sorted(r.responses)), json.dumps(r.source, sort_keys=True, default=str))
        g = groups.setdefault(gk, {"record": r, "votes": {}})
        for a, b in pairs:
            rep.votes += 1
            g["votes"].setdefault((r.responses[a], r.responses[b]), []).append(r)
    out = []
    for g in groups.values():
        votes = g["votes"]
        seen = set()
        for (a, b), recs in votes.items():
            if (b, a) in seen or (a, b) in seen:
                continue
            seen.add((a, b))
            against = votes.get((b, a), [])
            if len(recs) == len(against):
                rep.conflicts += 1
                continue
            win, (ca, cb) = (recs, (a, b)) if len(recs) > len(against) else (against, (b, a))
            first = g["record"]
            lin = _lineage("ranking", first.source, win)
            lin["mode"] = mode
            lin["votes"] = {"for": len(win), "against": len(recs) + len(against) - len(win)}
            out.append(Pair(prompt=[dict(t) for t in first.prompt], chosen=_assistant(ca), rejected=_assistant(cb),
                            lineage=lin, source=first.source.get("task") and f"review:{first.source['task']}"))
    rep.pairs += len(out)
    return out


# ---------------------------------------------------------------- from review annotations
#: Keys of an annotation's ``answers`` that may hold an edited response, in order of preference.
#: Source: the review form's edit question ("edit (corrected response or instruction)").
EDIT_KEYS = ("edited_output", "output", "edited_response", "response", "edit")
#: Keys of a comparison sample's ``extra`` that hold its candidate responses.
CANDIDATE_KEYS = ("candidates", "responses", "completions")


def prompt_and_response(sample) -> tuple[list[dict], str | None]:
    """Split a sample's turns (``Sample.turns()``) into the prompt and its final assistant reply
    (None when the sample ends with a user turn)."""
    turns = sample.turns() if hasattr(sample, "turns") else list(sample)
    if turns and turns[-1].get("role") == "assistant":
        return [dict(t) for t in turns[:-1]], turns[-1].get("content") or ""
    return [dict(t) for t in turns], None


def _edited_text(answers: dict) -> str | None:
    for k in EDIT_KEYS:
        v = answers.get(k)
        if isinstance(v, str):
            return v
        if isinstance(v, dict):  # review's edit answer: {"response", "instruction"} (pipelines.review.questions)
            for kk in ("response", "output"):
                if isinstance(v.get(kk), str):
                    return v[kk]
    return None


def _as_shown(sample, shown):
    """The sample as the annotator saw it: ``shown`` (``{"instruction", "response"}`` stored
    with an edit, ``pipelines.review.annotate._shown_texts``) put back with the review's own
    rule (``pipelines.review.adjudicate.apply_edit``); without it the sample stands."""
    if not isinstance(shown, dict) or not hasattr(sample, "kind"):
        return sample
    from pipelines.review.adjudicate import apply_edit
    try:
        return apply_edit(sample, {k: v for k, v in shown.items() if isinstance(v, str)})
    except WorkbenchError:  # no such turn: the sample as it is
        return sample


def records_from_annotations(samples: dict, annotations: Iterable[dict], *,
                             source: dict | None = None) -> tuple[list[EditRecord], list[RankingRecord]]:
    """Turn review annotations into extraction records.

    Args:
        samples: ``{sample_id: Sample}``; an edit's ``answers["shown"]`` (the instruction and
            response the annotator saw, stored when they submitted) replaces the sample's texts,
            so the pairs are the same whether extracted before or after an adjudicator adopted
            the edit into the sample.
        annotations: dicts with ``annotation_id``, ``sample_id``, ``annotator``, ``decision``
            (accept/reject/edit) and ``answers`` (dict). An annotation is an *edit* when its
            decision is ``edit`` and an answer under one of :data:`EDIT_KEYS` holds text; a
            *ranking* when ``answers`` has ``ranking``/``ranks`` (ranks parallel to the sample's
            candidates) or ``preferred`` (an index) and the sample's ``extra`` lists its candidates
            under one of :data:`CANDIDATE_KEYS`. Stale annotations (``stale`` true) are skipped.
        source: merged into every record's ``source`` (e.g. ``{"task": name, "dataset": ...,
            "version_id": ...}``).
    """
    edits, ranks = [], []
    base = dict(source or {})
    for a in annotations:
        if a.get("stale"):
            continue
        s = samples.get(a["sample_id"])
        if s is None:
            continue
        answers = a.get("answers") or {}
        if isinstance(answers, str):
            answers = json.loads(answers)
        src = {**base, "sample_id": a["sample_id"]}
        prompt, response = prompt_and_response(_as_shown(s, answers.get("shown")))
        cands = next((s.extra[k] for k in CANDIDATE_KEYS if s.extra and isinstance(s.extra.get(k), list)), None)
        r = answers.get("ranking", answers.get("ranks"))
        if cands and (r is not None or answers.get("preferred") is not None):
            ranks.append(RankingRecord(prompt=prompt, responses=[str(c) for c in cands],
                                       ranks=list(r) if r is not None else None,
                                       preferred=answers.get("preferred") if r is None else None,
                                       annotation_id=a.get("annotation_id"), annotator=a.get("annotator"),
                                       source=src))
            continue
        decision = a.get("decision") or answers.get("decision")
        edited = _edited_text(answers)
        if decision == "edit" and edited is not None and response is not None:
            edits.append(EditRecord(prompt=prompt, original=response, edited=edited,
                                    annotation_id=a.get("annotation_id"), annotator=a.get("annotator"), source=src))
    return edits, ranks


def extract_pairs(edits: Iterable[EditRecord], rankings: Iterable[RankingRecord], *, mode: RankMode = "all",
                  dedupe: bool = True) -> tuple[list[Pair], ExtractionReport]:
    """Both rules at once; with ``dedupe`` an identical (prompt, chosen, rejected) from both
    rules is kept once (lineages merged). Returns ``(pairs, report)``."""
    rep = ExtractionReport()
    pairs = pairs_from_edits(edits, rep) + pairs_from_rankings(rankings, mode, rep)
    if not dedupe:
        return pairs, rep
    out: dict[tuple, Pair] = {}
    for p in pairs:
        k = p.key()
        if k in out:
            prev = out[k].lineage
            prev["annotations"] = sorted({*prev.get("annotations", []), *p.lineage.get("annotations", [])}, key=str)
            prev.setdefault("also", []).append(p.lineage.get("rule"))
        else:
            out[k] = p
    rep.pairs = len(out)
    return list(out.values()), rep


__all__ = ["CANDIDATE_KEYS", "EDIT_KEYS", "EditRecord", "ExtractionReport", "Pair", "RankingRecord", "Unpaired",
           "extract_pairs", "pairs_from_edits", "pairs_from_rankings", "prompt_and_response",
           "records_from_annotations"]
