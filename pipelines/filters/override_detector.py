"""Detect user turns that try to override the system prompt.

A small, documented, rule-based detector (no model): each rule is a case-insensitive regular
expression with a weight in (0, 1]; some rules also need a second pattern in the same text
(``requires``) so that everyday phrasing does not trip them. A turn's score is the largest
weight among the rules it matches (0.0 when none), and its label is ``"override"`` when the
score reaches :data:`THRESHOLD` (0.5), else ``"benign"``.

The rules (ids as reported in :attr:`Detection.rules`):

==========================  ======  ==============================================================
rule                        weight  what it matches
==========================  ======  ==============================================================
``ignore_instructions``     0.9     ignore / disregard / forget / override ... the previous, prior,
                                    above, system, original ... instructions, rules, prompt
                                    (not "*my* previous instructions": a user may revise their own);
                                    also "forget everything you were told / above"
``reveal_system_prompt``    0.9     print / show / reveal / repeat ... your (or the) system, hidden,
                                    initial ... prompt or instructions
``repeat_above``            0.8     "repeat the text/words/everything above"
``persona_hijack``          0.9     "you are now DAN", "you are now an unrestricted/unfiltered AI",
                                    "you are no longer bound by ..."
``dan``                     0.8     the jailbreak names DAN / "Do Anything Now" (DAN case-sensitive)
``developer_mode``          0.8     developer / god / jailbreak mode, only together with "you",
                                    "your", "enabled", "restrictions" or "ChatGPT"-like addressing
``unrestricted_roleplay``   0.8     pretend / imagine / act as ... with no rules, restrictions,
                                    filters
``disable_safeguards``      0.8     disable / remove / bypass / without ... *your* restrictions,
                                    filters, guidelines, programming
``fake_authority``          0.8     "SYSTEM OVERRIDE:", "admin message:", "developer notice:"
``new_instructions``        0.7     "new instructions:", "your real rules:" (a replacement set)
``role_marker``             0.7     chat-template role markers in the text: ``<|im_start|>``,
                                    ``<|im_end|>``, ``[INST]``, ``<<SYS>>``, ``<|start_header_id|>``,
                                    a line starting with ``system:`` / ``### System:``
==========================  ======  ==============================================================

Measured on ``tests/fixtures/override_prompts.jsonl`` (hand-written: 30 attacks, 30 benign
look-alikes such as "ignore the typo in my previous message"); the test
``tests/pipelines/test_override_detector.py`` holds the exact values. Known blind spots: attacks in
other languages, leetspeak / spaced-out spelling, and indirect questions ("what were you told
before this chat?"); known false alarms: questions *about* role markers or jailbreaks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

THRESHOLD = 0.5
_F = re.IGNORECASE | re.MULTILINE


@dataclass(frozen=True)
class Rule:
    """One detector rule: ``pattern`` must match; ``requires`` (if set) must match too."""

    id: str
    weight: float
    pattern: re.Pattern
    requires: re.Pattern | None = None
    description: str = ""

    def match(self, text: str) -> str | None:
        m = self.pattern.search(text)
        if m is None or (self.requires is not None and not self.requires.search(text)):
            return None
        return m.group(0)


_PRIOR = r"(?:previous|prior|above|earlier|preceding|initial|original|system|developer|old|existing|current)"
_RULESET = r"(?:instructions?|prompts?|rules|guidelines|directives|programming|guardrails|restrictions|polic(?:y|ies)|constraints|orders)"

RULES: tuple[Rule, ...] = (
    Rule("ignore_instructions", 0.9,
         re.compile(r"\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon)\b"
                    r"(?:\s+(?:about|of|the|all|any|every|your|these|those|its|everything|that|you\s+were\s+told))*"
                    rf"\s+(?:{_PRIOR}\s+)+(?:\w+\s+)?{_RULESET}\b", _F),
         description="ignore/disregard/forget the previous (system, original ...) instructions"),
    Rule("ignore_instructions", 0.9,
         re.compile(rf"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?your\s+(?:\w+\s+)?{_RULESET}\b", _F),
         description="ignore/forget your instructions"),
    Rule("ignore_instructions", 0.9,
         re.compile(r"\b(?:forget|disregard|ignore)\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|"
                    r"(?:written\s+)?above|before\s+this)\b", _F),
         description="forget everything you were told"),
    Rule("reveal_system_prompt", 0.9,
         re.compile(r"\b(?:print|show|reveal|repeat|output|display|tell\s+me|give\s+me|leak|dump|share|"
                    r"paste|write\s+out|what\s+(?:is|are|was|were))\b[^.\n?]{0,40}?\b(?:your|the|its)\s+(?:\w+\s+)?"
                    r"(?:system|initial|hidden|original|secret|confidential|internal)\s+"
                    r"(?:prompt|instructions?|message|rules)\b", _F),
         description="print/reveal your system prompt"),
    Rule("repeat_above", 0.8,
         re.compile(r"\brepeat\s+(?:everything|all|the\s+(?:text|words|lines|content))\s+(?:written\s+)?above\b", _F),
         description="repeat the words above"),
    Rule("persona_hijack", 0.9,
         re.compile(r"\byou(?:\s+are|'re)\s+(?:now\s+)?(?:DAN\b|STAN\b|AIM\b|an?\s+(?:unrestricted|unfiltered|uncensored|"
                    r"jailbroken|evil|rogue|unaligned)\b)|\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited|an?\s+(?:AI|assistant))", _F),
         description="you are now DAN / an unrestricted AI"),
    Rule("dan", 0.8, re.compile(r"\bDAN\b|\bdo\s+anything\s+now\b", re.MULTILINE),
         description="the DAN jailbreak"),
    Rule("developer_mode", 0.8,
         re.compile(r"\b(?:developer|god|jailbreak|unrestricted|debug)\s+mode\b", _F),
         requires=re.compile(r"\b(?:you|your|enabled|restrictions?|filters?|chatgpt|assistant|AI)\b", _F),
         description="developer mode addressed to the assistant"),
    Rule("unrestricted_roleplay", 0.8,
         re.compile(r"\b(?:pretend|imagine|act\s+as(?:\s+if)?|role-?play(?:\s+as)?|behave\s+as)\b[^.\n]{0,60}?"
                    r"\b(?:no|without|free\s+(?:from|of)|not\s+bound\s+by|zero)\b[^.\n]{0,20}?"
                    r"\b(?:rules|restrictions|guidelines|filters|limits|limitations|polic(?:y|ies)|ethics|morals)\b", _F),
         description="pretend you have no rules"),
    Rule("disable_safeguards", 0.8,
         re.compile(r"\b(?:disable|remove|bypass|turn\s+off|lift|break\s+free\s+of|escape|without|ignore)\b[^.\n]{0,15}?"
                    r"\byour\b[^.\n]{0,20}?\b(?:restrictions|filters?|guardrails|safety|rules|guidelines|programming|"
                    r"limitations|constraints|alignment|censorship)\b", _F),
         description="disable your filters"),
    Rule("fake_authority", 0.8,
         re.compile(r"\b(?:system|admin(?:istrator)?|developer|root|openai|anthropic)\s+"
                    r"(?:override|message|notice|update|command)\s*:", _F),
         description="SYSTEM OVERRIDE: / admin message:"),
    Rule("new_instructions", 0.7,
         re.compile(r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?(?:instructions|rules|prompt|directives)\s*:", _F),
         description="new instructions: ..."),
    Rule("role_marker", 0.7,
         re.compile(r"<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|start_header_id\|>|\[/?INST\]|<<SYS>>|"
                    r"^\s*(?:system|assistant)\s*:|^\s*###\s*(?:system|instruction)\b", _F),
         description="chat-template role markers inside the turn"),
)


@dataclass
class Detection:
    """Result for one text: ``score`` in [0, 1], ``label`` (``override``/``benign``), the ids
    of the matched rules (deduplicated, strongest first) and the matched snippets."""

    score: float
    label: str
    rules: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)

    @property
    def is_override(self) -> bool:
        return self.label == "override"

    def as_dict(self) -> dict:
        return {"score": self.score, "label": self.label, "rules": self.rules, "matches": self.matches}


def detect(text: str, *, threshold: float = THRESHOLD) -> Detection:
    """Score one user turn. Non-strings and empty text score 0.0 (``benign``)."""
    if not isinstance(text, str) or not text.strip():
        return Detection(0.0, "benign")
    hits: list[tuple[float, str, str]] = []
    for rule in RULES:
        snippet = rule.match(text)
        if snippet is not None:
            hits.append((rule.weight, rule.id, snippet))
    hits.sort(key=lambda h: -h[0])
    ids, snippets = [], []
    for _, rid, snip in hits:
        if rid not in ids:
            ids.append(rid)
            snippets.append(snip)
    score = hits[0][0] if hits else 0.0
    return Detection(score, "override" if score >= threshold else "benign", ids, snippets)


def flag_user_turns(messages: list[dict], *, threshold: float = THRESHOLD) -> list[tuple[int, Detection]]:
    """``[(message_index, Detection)]`` for the user turns of a conversation labelled ``override``."""
    out = []
    for i, m in enumerate(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            d = detect(m.get("content"), threshold=threshold)
            if d.is_override:
                out.append((i, d))
    return out


def evaluate(examples: Iterable[dict], *, threshold: float = THRESHOLD) -> dict:
    """Precision, recall, F1 and the confusion counts on labelled examples.

    Args:
        examples: ``{"text": str, "label": "override"|"benign"}`` records (e.g. the lines of
            ``tests/fixtures/override_prompts.jsonl``).
    Returns:
        ``{"n", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "false_positives",
        "false_negatives"}``; the last two list the misclassified texts. Precision is 0.0 when
        nothing was flagged.
    """
    tp = fp = fn = tn = 0
    fps, fns = [], []
    for ex in examples:
        pred = detect(ex["text"], threshold=threshold).is_override
        gold = ex["label"] == "override"
        if pred and gold:
            tp += 1
        elif pred:
            fp += 1
            fps.append(ex["text"])
        elif gold:
            fn += 1
            fns.append(ex["text"])
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": tp + fp + fn + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision,
            "recall": recall, "f1": f1, "false_positives": fps, "false_negatives": fns}


__all__ = ["Detection", "RULES", "Rule", "THRESHOLD", "detect", "evaluate", "flag_user_turns"]
