"""Citation rate: does a response cite a source?

Definition (the rule the metric implements, in Python here and in DuckDB SQL through the
same regular expression, :data:`CITATION_RE`): a response **cites a source** when it
contains at least one of

1. a **URL**: ``http://`` or ``https://`` followed by a non-space, or ``www.`` followed by a
   dotted host name (``www.who.int``);
2. a **DOI**: ``doi:10.`` or ``10.NNNN/`` (a DOI prefix, four or more digits, then a slash);
3. a **numbered or bracketed reference**: ``[1]``, ``[2, 3]``, ``[4-6]``, ``[12]`` (one to
   three digits per number) not directly after a letter, digit, underscore or closing
   bracket, so ``array[1]`` or ``x[0]`` in code is not a citation; or an author-year
   reference in brackets or parentheses: ``(Smith, 2020)``, ``[Vaswani et al., 2017]``,
   ``(Brown and Lee 2019)``;
4. a **reference section**: a line starting with ``References``, ``Sources``, ``Source``,
   ``Bibliography``, ``Works cited`` or ``Further reading`` followed by a colon or a line end;
5. a **named source**: a reporting cue (``according to``, ``as reported by``, ``as stated
   in``/``by``, ``as noted in``/``by``, ``cited in``, ``published in``, ``a study by``,
   ``a report by``, ``data from``) followed by a capitalized name (``According to the World
   Health Organization``, ``published in Nature``). The cue is matched in any case, the
   name must start with a capital letter (optionally after ``the``), so "according to
   your needs" is not a citation.

Placeholders such as ``[Your Name]``, markdown links without a URL and bare numbers are
not citations. The rate is the share of samples with a response (output, or the last
assistant turn) that cite, over the version or a slice. Sources for the categories: the
usual reference styles (numeric/Vancouver, author-year/Harvard, URLs and DOIs) and the
"attributed to a named source" notion of citation analyses of LLM answers; the tests hold
the rule on a labelled fixture (``tests/pipelines/quality/fixtures/citations.jsonl``).
The expression uses only syntax that Python's ``re`` and DuckDB's RE2 read the same way.
"""
from __future__ import annotations

import re

_URL = r"https?://[^\s]|(?:^|[^\w.])www\.[A-Za-z0-9-]+\.[A-Za-z]"
_DOI = r"(?i:doi:\s*10\.)|(?:^|[^\d.])10\.\d{4,}/"
_NUM = r"(?:^|[^\w\]])\[\d{1,3}(?:\s*[,\x{2013}-]\s*\d{1,3})*\]"
_AUTHOR_YEAR = (r"[\[(][A-Z][A-Za-z'\x{2019}-]+(?: et al\.?| (?:and|&) [A-Z][A-Za-z'\x{2019}-]+)?,? "
                r"(?:1[5-9]|20)\d\d[a-z]?[\])]")
_SECTION = r"(?m:^\s*(?:#+\s*)?(?i:references|sources?|bibliography|works cited|further reading)\s*(?::|$))"
_NAMED = (r"(?i:according to|as reported by|as stated (?:in|by)|as noted (?:in|by)|cited in|published in|"
          r"a (?:study|report|survey) (?:by|from)|data from)\s+(?:(?i:the)\s+)?[A-Z]")

#: One expression, RE2-compatible (DuckDB ``regexp_matches``) and Python-compatible after
#: :func:`_to_python` (Python's ``re`` spells ``\x{2013}`` as ``\u2013``).
CITATION_RE = "|".join(f"(?:{p})" for p in (_URL, _DOI, _NUM, _AUTHOR_YEAR, _SECTION, _NAMED))


def _to_python(pattern: str) -> str:
    return re.sub(r"\\x\{([0-9a-fA-F]+)\}", lambda m: f"\\u{int(m.group(1), 16):04x}", pattern)


_COMPILED = re.compile(_to_python(CITATION_RE))


def cites_source(response: str | None) -> bool:
    """True when ``response`` cites a source by the rule in this module's docstring."""
    return bool(response) and _COMPILED.search(response) is not None
