"""Policy taxonomy for adversarial and refusal data.

Default: the Llama Guard 3 hazard categories S1-S14 (Meta, Llama Guard 3 model card, 2024),
in ``templates/taxonomy/llama_guard_3.json``, with this workbench's default expected
behaviour per domain (``refuse`` or ``safe-complete``), a safe alternative for the house
refusal style, a per-domain quota and the XSTest contrast types for benign look-alikes
(Röttger et al. 2024, "XSTest", 10 types of safe prompts). Editable: copy the file, change
it, and pass its path (``--taxonomy`` / the page's upload).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from datastore.errors import FormatError, WorkbenchError
from datastore.vocabulary import EXPECTED_BEHAVIOURS

Behaviour = Literal["refuse", "safe-complete", "comply"]  # = EXPECTED_BEHAVIOURS (a test checks)
BEHAVIOURS: tuple[str, ...] = EXPECTED_BEHAVIOURS  # datastore.vocabulary: defined once
DEFAULT_TAXONOMY = "llama_guard_3"


class Domain(BaseModel):
    """One policy domain: ``code`` (S1), ``name``, ``description``, ``topic`` (an abstract
    description of the harmful request used inside generation prompts), ``expected``
    behaviour, ``safe_alternative`` (may be empty) and ``quota`` (prompts per attack style)."""

    code: str
    name: str
    description: str
    topic: str
    expected: Behaviour = "refuse"
    safe_alternative: str = ""
    quota: int = Field(1, ge=0)


class ContrastType(BaseModel):
    type: str
    description: str
    examples: list[str] = Field(default_factory=list)


class Taxonomy(BaseModel):
    name: str
    source: str = ""
    domains: list[Domain]
    contrast_types: list[ContrastType] = Field(default_factory=list)

    def domain(self, code: str) -> Domain:
        for d in self.domains:
            if d.code == code:
                return d
        raise WorkbenchError(f"taxonomy {self.name} has no domain {code!r} "
                             f"(known: {', '.join(d.code for d in self.domains)})")


def taxonomy_path(name_or_path: str | Path | None = None) -> Path:
    """The file for a built-in name (``llama_guard_3``) or a path."""
    from pipelines.render.templates import templates_root
    if name_or_path is None:
        name_or_path = DEFAULT_TAXONOMY
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    return templates_root() / "taxonomy" / f"{name_or_path}.json"


def load_taxonomy(name_or_path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy (default: Llama Guard 3 S1-S14).

    Raises:
        WorkbenchError: no such file. FormatError: bad JSON or a field of the wrong shape
        (the message names the file and field).
    """
    p = taxonomy_path(name_or_path)
    if not p.is_file():
        raise WorkbenchError(f"no taxonomy at {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"not valid JSON ({e.msg})", file=str(p), line=e.lineno) from e
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise FormatError(first["msg"], file=str(p), field=field) from e
