"""The sample fields that several areas read, with their allowed values: defined here, once.

Generators write these fields, review writes them, the quality metrics, the validation gate,
curation and the faces read them. Each is a :class:`Field`: where it lives (a column of
``samples`` or a key of ``extra``), its canonical name, its allowed values or form, and the
older spellings still found in existing workspaces (key aliases, value aliases).

Fields (canonical spelling first):

* ``expected_behavior`` (``extra``): ``refuse``, ``safe-complete`` or ``comply``. Old key
  spelling ``expected_behaviour`` (written by the adversarial generator before this module).
* ``policy_domain`` (column): a Llama Guard 3 hazard code ``S1``..``S14`` (names in
  :data:`POLICY_DOMAINS`, as ``templates/taxonomy/llama_guard_3.json`` has them; Meta,
  "Llama Guard 3" model card, 2024). The Review form's older ``S9_indiscriminate_weapons``
  style, and ``S9 Indiscriminate Weapons``, are aliases of ``S9``. A custom taxonomy's codes
  are accepted where the caller passes them (``allowed=``).
* ``task_type`` (column): a short identifier (``qa``, ``adversarial``, ``benign_lookalike``...).
* ``language`` (column): a language tag such as ``en`` or ``pt-BR`` (BCP 47 form).
* ``difficulty`` (column): ``easy``, ``medium`` or ``hard`` (the Review form's options).
* ``quality_score`` (column): a finite number from 0 to 1; a review rating on the 1..5 form
  maps onto it linearly (:func:`quality_from_rating`).
* ``source`` (column): non-empty text, at most 200 characters.

**Old spellings keep their hashes.** :meth:`read` maps a stored row's aliases to the
canonical spelling (the Python layers only ever see ``expected_behavior`` and ``S9``) and
records the stored spelling in ``layout["stored_spelling"]``; :meth:`restore` puts the stored
spelling back when the row is written or hashed while the value is unchanged. So a row stored
with ``expected_behaviour`` hashes exactly as before, every existing version keeps its content
hash, and a run pinned to it still verifies (tests/datastore/test_vocabulary.py). SQL readers
read through :func:`sql_expected_behavior` and :func:`sql_policy_domain`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import WorkbenchError

#: Llama Guard 3 hazard categories (Meta, "Llama Guard 3" model card, 2024), as
#: templates/taxonomy/llama_guard_3.json names them (a test keeps the two equal).
POLICY_DOMAINS: dict[str, str] = {
    "S1": "Violent Crimes", "S2": "Non-Violent Crimes", "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation", "S5": "Defamation", "S6": "Specialized Advice", "S7": "Privacy",
    "S8": "Intellectual Property", "S9": "Indiscriminate Weapons", "S10": "Hate",
    "S11": "Suicide & Self-Harm", "S12": "Sexual Content", "S13": "Elections", "S14": "Code Interpreter Abuse",
}
#: The Review form's older option spellings (``S9_indiscriminate_weapons``), kept as aliases.
_FORM_SPELLING = {"S1": "violent_crimes", "S2": "non_violent_crimes", "S3": "sex_related_crimes",
                  "S4": "child_sexual_exploitation", "S5": "defamation", "S6": "specialized_advice",
                  "S7": "privacy", "S8": "intellectual_property", "S9": "indiscriminate_weapons", "S10": "hate",
                  "S11": "suicide_self_harm", "S12": "sexual_content", "S13": "elections",
                  "S14": "code_interpreter_abuse"}
#: Expected behaviour of a response (rules: ``pipelines.quality.refusal.correct_for``).
EXPECTED_BEHAVIOURS: tuple[str, ...] = ("refuse", "safe-complete", "comply")
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
#: The review form's quality rating, 1 (worst) to 5 (best): the default rating question of
#: ``pipelines/review/questions.py``. :func:`quality_from_rating` puts it on the 0..1 scale.
RATING_RANGE: tuple[int, int] = (1, 5)
#: The value a review form uses for "no policy domain" (stored as None).
NO_DOMAIN = "none"

_IDENT = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_LANG = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$")
LAYOUT_KEY = "stored_spelling"


@dataclass(frozen=True)
class Field:
    """One shared field. ``home``: ``"column"`` or ``"extra"``; ``values``: the allowed values
    (None: checked by ``pattern``/``number`` instead); ``key_aliases``: older names of an
    ``extra`` key; ``value_aliases``: older value spelling -> canonical value."""

    name: str
    home: str
    values: tuple[str, ...] | None = None
    pattern: re.Pattern | None = None
    what: str = ""
    number: tuple[float, float] | None = None
    max_chars: int | None = None
    key_aliases: tuple[str, ...] = ()
    value_aliases: dict[str, str] = field(default_factory=dict)

    def canonical(self, value: Any) -> Any:
        """``value`` in the canonical spelling (unknown values come back unchanged)."""
        if isinstance(value, str):
            return self.value_aliases.get(value, self.value_aliases.get(value.strip().casefold(), value))
        return value

    def check(self, value: Any, *, allowed: tuple[str, ...] | list[str] | None = None) -> Any:
        """The canonical value, or WorkbenchError naming the field and the allowed values.
        None is allowed (the field is optional). ``allowed`` adds values (a custom taxonomy's
        codes)."""
        if value is None:
            return None
        v = self.canonical(value)
        if self.number is not None:
            lo, hi = self.number
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise WorkbenchError(f"field '{self.name}': {value!r} is not a number from {lo:g} to {hi:g}")
            return float(v)
        if not isinstance(v, str):
            raise WorkbenchError(f"field '{self.name}': {value!r} is not text")
        if self.values is not None:
            ok = (*self.values, *(allowed or ()))
            if v not in ok:
                raise WorkbenchError(f"field '{self.name}': {value!r} is not one of {', '.join(ok)}")
        elif self.pattern is not None and not self.pattern.match(v):
            raise WorkbenchError(f"field '{self.name}': {value!r} is not {self.what}")
        elif not v.strip() or (self.max_chars and len(v) > self.max_chars):
            raise WorkbenchError(f"field '{self.name}': {value!r} is not {self.what}")
        return v


def _domain_aliases() -> dict[str, str]:
    out = {}
    for code, name in POLICY_DOMAINS.items():
        for alias in (f"{code}_{_FORM_SPELLING[code]}", f"{code} {name}", f"{code}: {name}", code.lower()):
            out[alias] = code
            out[alias.casefold()] = code
    return out


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("expected_behavior", "extra", values=EXPECTED_BEHAVIOURS, key_aliases=("expected_behaviour",),
          value_aliases={"safe_complete": "safe-complete"}),
    Field("policy_domain", "column", values=tuple(POLICY_DOMAINS), value_aliases=_domain_aliases()),
    Field("task_type", "column", pattern=_IDENT, what="a short identifier (lower case, digits, _ or -)"),
    Field("language", "column", pattern=_LANG, what="a language tag such as en or pt-BR"),
    Field("difficulty", "column", values=DIFFICULTIES),
    Field("quality_score", "column", number=(0.0, 1.0)),
    Field("source", "column", max_chars=200, what="non-empty text of at most 200 characters"),
)}
EXPECTED = FIELDS["expected_behavior"]
DOMAIN = FIELDS["policy_domain"]


def quality_from_rating(rating: float, lo: float = RATING_RANGE[0], hi: float = RATING_RANGE[1]) -> float:
    """A rating on ``lo..hi`` as a quality score on 0..1, linearly (1 -> 0, 3 -> 0.5, 5 -> 1 on
    the default 1..5 form).

    Raises:
        WorkbenchError: a rating outside ``lo..hi``.
    """
    if not lo <= rating <= hi:
        raise WorkbenchError(f"field 'rating': {rating!r} is not from {lo:g} to {hi:g}")
    return (rating - lo) / (hi - lo)


def canonical_domain(value: str | None) -> str | None:
    """A policy domain in the canonical spelling (``S9_indiscriminate_weapons`` -> ``S9``;
    the review form's ``none`` -> None); other values unchanged."""
    if value is None or value == NO_DOMAIN:
        return None
    return DOMAIN.canonical(value)


def expected_behavior(extra: dict | None) -> str | None:
    """The expected behaviour of a sample's ``extra``, under the canonical key or an alias."""
    if not extra:
        return None
    for k in (EXPECTED.name, *EXPECTED.key_aliases):
        if extra.get(k) is not None:
            return EXPECTED.canonical(extra[k])
    return None


def check_sample(sample, *, allowed_domains: tuple[str, ...] | list[str] | None = None, where: str = "") -> None:
    """Validate a sample's shared fields in place (values put in the canonical spelling).

    Raises:
        WorkbenchError: ``"<where>: field 'x': ..."`` for the first bad field.
    """
    try:
        for name, f in FIELDS.items():
            if f.home == "column":
                extra = allowed_domains if name == "policy_domain" else None
                setattr(sample, name, f.check(getattr(sample, name), allowed=extra))
        if sample.extra:
            v = expected_behavior(sample.extra)
            for k in EXPECTED.key_aliases:
                sample.extra.pop(k, None)
            if v is not None:
                sample.extra[EXPECTED.name] = EXPECTED.check(v)
    except WorkbenchError as e:
        raise WorkbenchError(f"{where}: {e}" if where else str(e)) from None


# ------------------------------------------------------------------ stored rows
def read(d: dict) -> None:
    """Map a decoded stored row (``dict`` with ``extra``, ``layout`` and the columns) to the
    canonical spelling in place, recording each stored spelling in
    ``layout["stored_spelling"]`` (``{"extra": {alias key: canonical key}, "<column>": stored
    value}``) for :func:`restore`."""
    rec: dict[str, Any] = {}
    extra = d.get("extra")
    if isinstance(extra, dict):
        for alias in EXPECTED.key_aliases:
            if alias in extra and EXPECTED.name not in extra:
                rec.setdefault("extra", {})[alias] = EXPECTED.name
        if rec:
            d["extra"] = {(EXPECTED.name if k in rec["extra"] else k): v for k, v in extra.items()}
    pd = d.get("policy_domain")
    if isinstance(pd, str) and DOMAIN.canonical(pd) != pd:
        rec["policy_domain"] = pd
        d["policy_domain"] = DOMAIN.canonical(pd)
    if rec:
        d["layout"] = {**(d.get("layout") or {}), LAYOUT_KEY: rec}


def restore(row: dict) -> None:
    """Undo :func:`read` on a row about to be stored or hashed (decoded ``extra`` and
    ``layout``), in place: a value still equal to what was read goes back under its stored
    spelling; a changed value stays canonical. Drops the record from ``layout``."""
    layout = row.get("layout")
    if not isinstance(layout, dict) or LAYOUT_KEY not in layout:
        return
    rec = layout[LAYOUT_KEY]
    rest = {k: v for k, v in layout.items() if k != LAYOUT_KEY}
    row["layout"] = rest or None
    extra = row.get("extra")
    if isinstance(extra, dict):
        renames = {canon: alias for alias, canon in (rec.get("extra") or {}).items() if canon in extra}
        if renames:
            row["extra"] = {renames.get(k, k): v for k, v in extra.items()}
    stored = rec.get("policy_domain")
    if stored is not None and row.get("policy_domain") == DOMAIN.canonical(stored):
        row["policy_domain"] = stored


# ------------------------------------------------------------------ SQL readers
def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_expected_behavior(extra_col: str = "extra") -> str:
    """SQL for a row's expected behaviour (canonical key, then the aliases; value aliases mapped)."""
    keys = ", ".join(f"json_extract_string({extra_col}, {_lit('$.' + k)})" for k in (EXPECTED.name, *EXPECTED.key_aliases))
    raw = f"coalesce({keys})"
    if not EXPECTED.value_aliases:
        return raw
    whens = " ".join(f"WHEN {_lit(a)} THEN {_lit(c)}" for a, c in EXPECTED.value_aliases.items())
    return f"(CASE {raw} {whens} ELSE {raw} END)"


def sql_policy_domain(col: str = "policy_domain") -> str:
    """SQL for a row's policy domain in the canonical spelling (aliases mapped)."""
    pairs = {a: c for a, c in DOMAIN.value_aliases.items()}
    whens = " ".join(f"WHEN {_lit(a)} THEN {_lit(c)}" for a, c in pairs.items())
    return f"(CASE {col} {whens} ELSE {col} END)"


__all__ = ["DIFFICULTIES", "DOMAIN", "EXPECTED", "EXPECTED_BEHAVIOURS", "FIELDS", "Field", "NO_DOMAIN",
           "POLICY_DOMAINS", "RATING_RANGE", "canonical_domain", "check_sample", "expected_behavior",
           "quality_from_rating", "read", "restore", "sql_expected_behavior", "sql_policy_domain"]
