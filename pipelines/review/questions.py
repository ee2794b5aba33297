"""The questions a task asks, their defaults, and validation of submitted answers.

Default form: a decision (accept, reject, edit: a corrected response or instruction), quality
rating 1 to 5, difficulty, policy domain, flags and a note. Policy domains and difficulties
come from the shared vocabulary (``datastore.vocabulary``): the Llama Guard 3 codes S1-S14
(Meta, "Llama Guard 3" model card, 2024), plus ``none``; an answer in an older spelling
(``S9_indiscriminate_weapons``) is accepted as its code, and a task created with the older
options still takes the codes.
"""
from __future__ import annotations

import copy

from datastore import WorkbenchError, vocabulary
from datastore.review_tasks import valid_ident

KINDS = ("decision", "rating", "label", "multilabel", "text")
DECISIONS = ("accept", "reject", "edit")
POLICY_DOMAINS = (vocabulary.NO_DOMAIN, *vocabulary.POLICY_DOMAINS)
#: Display names of the policy domain options (``{"S9": "S9 Indiscriminate Weapons"}``).
POLICY_DOMAIN_NAMES = {c: f"{c} {n}" for c, n in vocabulary.POLICY_DOMAINS.items()}
FLAGS = ("unsafe", "factually_wrong", "should_refuse", "should_not_refuse", "personal_data")

DEFAULT_QUESTIONS: list[dict] = [
    {"name": "decision", "kind": "decision", "label": "Decision", "options": list(DECISIONS), "required": True},
    {"name": "rating", "kind": "rating", "label": "Quality", "min": 1, "max": 5, "required": False},
    {"name": "difficulty", "kind": "label", "label": "Difficulty", "options": list(vocabulary.DIFFICULTIES)},
    {"name": "policy_domain", "kind": "label", "label": "Policy domain", "options": list(POLICY_DOMAINS),
     "option_labels": POLICY_DOMAIN_NAMES},
    {"name": "flags", "kind": "multilabel", "label": "Flags", "options": list(FLAGS)},
    {"name": "note", "kind": "text", "label": "Note"},
]
#: Keys of an ``edit`` answer: the corrected response and/or instruction (for a conversation:
#: the last assistant turn and the last user turn); for a conversation also the edited
#: ``messages`` and ``tools`` (checked and merged by ``pipelines.review.edits``).
EDIT_KEYS = ("instruction", "response", "messages", "tools")
TEXT_EDIT_KEYS = ("instruction", "response")


def default_questions() -> list[dict]:
    return copy.deepcopy(DEFAULT_QUESTIONS)


def normalize_questions(questions: list[dict] | None) -> list[dict]:
    """Check a task's questions; returns them with defaults filled in.

    Raises WorkbenchError naming the question: unknown kind, missing options, a ``decision``
    question not named ``decision``, duplicate names.
    """
    if not questions:
        return default_questions()
    out, seen = [], set()
    for i, q in enumerate(questions):
        q = dict(q)
        name = valid_ident(q.get("name", ""))
        kind = q.get("kind")
        if kind not in KINDS:
            raise WorkbenchError(f"question {i + 1} ('{name}'): kind must be one of {', '.join(KINDS)}, not '{kind}'")
        if name in seen:
            raise WorkbenchError(f"question '{name}' is defined twice")
        seen.add(name)
        if kind == "decision":
            if name != "decision":
                raise WorkbenchError("the decision question must be named 'decision'")
            q.setdefault("options", list(DECISIONS))
            bad = set(q["options"]) - set(DECISIONS)
            if bad:
                raise WorkbenchError(f"decision options must be among {', '.join(DECISIONS)}; got {sorted(bad)}")
        if kind == "rating":
            q.setdefault("min", 1)
            q.setdefault("max", 5)
            if not (isinstance(q["min"], int) and isinstance(q["max"], int) and q["min"] < q["max"]):
                raise WorkbenchError(f"rating question '{name}' needs integer min < max")
        if kind in ("label", "multilabel") and not q.get("options"):
            raise WorkbenchError(f"question '{name}' ({kind}) needs a list of options")
        q.setdefault("label", name.replace("_", " ").capitalize())
        q.setdefault("required", kind == "decision")
        out.append(q)
    return out


def _option_spelling(name: str, value, options: list):
    """``value`` as the question's option of the same meaning, for a question named after a
    shared field (``policy_domain``): ``S9_indiscriminate_weapons`` answers ``S9`` and the
    reverse, whichever spelling the task's options use."""
    f = vocabulary.FIELDS.get(name)
    if f is None or value in options or not isinstance(value, str):
        return value
    want = f.canonical(value)
    return next((o for o in options if isinstance(o, str) and f.canonical(o) == want), value)


def validate_answers(questions: list[dict], answers: dict) -> dict:
    """Check ``answers`` against the task's questions; returns a clean copy (unknown keys
    dropped, empty values removed). Raises WorkbenchError naming the question."""
    clean: dict = {}
    for q in questions:
        name, kind = q["name"], q["kind"]
        v = answers.get(name)
        if v in (None, "", []):
            if q.get("required"):
                raise WorkbenchError(f"'{q['label']}' is required")
            continue
        if kind == "decision":
            if v not in q["options"]:
                raise WorkbenchError(f"decision must be one of {', '.join(q['options'])}, not '{v}'")
        elif kind == "rating":
            if isinstance(v, bool) or not isinstance(v, int) or not q["min"] <= v <= q["max"]:
                raise WorkbenchError(f"'{q['label']}' must be an integer from {q['min']} to {q['max']}, not {v!r}")
        elif kind == "label":
            v = _option_spelling(name, v, q["options"])
            if v not in q["options"]:
                raise WorkbenchError(f"'{q['label']}' must be one of {', '.join(map(str, q['options']))}, not '{v}'")
        elif kind == "multilabel":
            v = [_option_spelling(name, x, q["options"]) for x in v] if isinstance(v, list) else v
            if not isinstance(v, list) or any(x not in q["options"] for x in v):
                raise WorkbenchError(f"'{q['label']}' must be a list of {', '.join(q['options'])}")
            v = sorted(set(v), key=q["options"].index)
        elif kind == "text" and not isinstance(v, str):
            raise WorkbenchError(f"'{q['label']}' must be text")
        clean[name] = v
    if clean.get("decision") == "edit":
        edit = answers.get("edit") or {}
        edit = {k: v for k, v in edit.items()
                if (k in TEXT_EDIT_KEYS and isinstance(v, str) and v.strip())
                or (k == "messages" and isinstance(v, list)) or (k == "tools" and isinstance(v, (str, list)))}
        if not edit:
            raise WorkbenchError("an edit needs the corrected response or instruction")
        clean["edit"] = edit
    return clean
