"""The one text normalisation of the duplicate filters, and the invisible characters it removes.

Exact dedup (:mod:`pipelines.filters.dedup`, the merge and filter stages of
:mod:`pipelines.curate`) and the ROUGE-L near-duplicate filter (:mod:`pipelines.filters.near_dup`)
compare :func:`normalize_text` of each text; the stored text is never changed. Preflight reports
the same invisible characters inside messages (:mod:`pipelines.render.conversation_checks`).
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["INVISIBLE_CHARS", "NORMALIZATION", "invisible_chars", "normalize_text"]

#: Zero-width and bidirectional control characters that change no visible glyph: U+200B-U+200F
#: (zero-width space, non-joiner, joiner, left-to-right and right-to-left marks), U+202A-U+202E
#: (bidi embeddings and overrides, the "Trojan Source" characters of Boucher and Anderson 2021),
#: U+2060-U+2064 (word joiner, invisible operators) and U+FEFF (byte order mark, zero-width
#: no-break space). Code points from the Unicode Standard, chapter 23 "Special Areas and Format
#: Characters".
INVISIBLE_CHARS = frozenset([*map(chr, range(0x200B, 0x2010)), *map(chr, range(0x202A, 0x202F)),
                             *map(chr, range(0x2060, 0x2065)), "\ufeff"])

_INVISIBLE_RE = re.compile("[" + "".join(sorted(INVISIBLE_CHARS)) + "]")
_WS = re.compile(r"\s+")

#: How :func:`normalize_text` changes a text, in words (reports name it).
NORMALIZATION = ("Unicode NFKC, zero-width and bidi control characters removed, case folded, "
                 "whitespace runs collapsed to one space, stripped")


def invisible_chars(text: str) -> list[tuple[int, str]]:
    """``[(character offset, character)]`` of every :data:`INVISIBLE_CHARS` member in ``text``."""
    return [(m.start(), m.group()) for m in _INVISIBLE_RE.finditer(text)]


def normalize_text(text: str) -> str:
    """``text`` as the duplicate filters compare it (:data:`NORMALIZATION`).

    Unicode NFKC (compatibility forms such as full-width letters, ligatures and the no-break space
    become their plain forms; Unicode Standard Annex #15), the :data:`INVISIBLE_CHARS` removed,
    case folding (``str.casefold``, Unicode default case folding), every run of whitespace as one
    space, no leading or trailing whitespace. Punctuation is kept: "Sort the list." and "Sort the
    list?" are different requests. Exact-match dedup in Lee et al. 2022 ("Deduplicating Training
    Data Makes Language Models Better") is likewise whitespace and case insensitive.
    On plain ASCII text this only lowers case and collapses whitespace, so rouge-score's tokens
    (lower-cased runs of ``[a-z0-9]``) are the same before and after.

    ``normalize_text("  Ｈｅｌｌｏ\\u200b\\n\\tWORLD ")`` is ``"hello world"``.
    """
    t = unicodedata.normalize("NFKC", text)
    t = _INVISIBLE_RE.sub("", t)
    return _WS.sub(" ", t.casefold()).strip()
