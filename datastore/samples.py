"""The stored form of a sample, its canonical JSON and its content hash.

A sample is either an instruction-style task (``instruction``, optional ``input``,
``output``, optional ``system`` and ``history``) or a conversation (``messages``: a list
of ``{"role", "content", ...}`` with role in system/user/assistant/tool and any extra
keys of the source kept on the message). Each text has exactly one home: a column here.
``extra`` holds the source record's unmapped fields with their JSON types; ``layout``
holds what is needed to write the record back in its source format (key order, original
role names, which optional keys were absent) and never any text.

The canonical JSON of a sample is its content plus the training-relevant metadata, with
no ids, timestamps, authors, file paths or layout; ``row_hash`` is its SHA-256. These
feed the version's content hash (see ``versions.py``). Fields shared across areas are
read through ``vocabulary.py``: an old spelling (``extra["expected_behaviour"]``, the policy
domain ``S9_indiscriminate_weapons``) reads as the canonical one and hashes as stored.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from . import vocabulary
from .lazy import lazy

pa = lazy("pyarrow")  # only commits and exports need it; `wb --help` must not load it

TEXT_COLUMNS = ["system", "instruction", "input", "output"]
#: Kinds whose text lives in ``messages``: conversations, and preference pairs (the prompt
#: turns then the chosen reply; the rejected reply in ``extra``: pipelines/preference/store.py).
MESSAGE_KINDS = ("conversation", "preference", "unpaired_preference")
JSON_COLUMNS = ["history", "messages", "lineage", "extra", "layout"]
META_COLUMNS = ["source", "source_row", "license", "task_type", "language", "difficulty",
                "quality_score", "policy_domain", "tags", "annotator_ids"]
# Columns a caller supplies for a new sample (sample_id, versions and hash are assigned).
CONTENT_COLUMNS = ["kind", *TEXT_COLUMNS, "history", "messages", *META_COLUMNS,
                   "lineage", "extra", "layout"]
HASHED_META = ["license", "task_type", "language", "difficulty", "quality_score",
               "policy_domain", "tags"]

@cache
def arrow_schema() -> "pa.Schema":
    """The bulk-insert table's schema: one column per stored field of :data:`CONTENT_COLUMNS`
    plus ``row_hash`` (tags and annotator ids as lists of strings, JSON columns as text).
    Built on first use so that importing this module does not import pyarrow."""
    return pa.schema([
        ("kind", pa.string()),
        ("system", pa.string()), ("instruction", pa.string()), ("input", pa.string()),
        ("output", pa.string()),
        ("history", pa.string()), ("messages", pa.string()),
        ("source", pa.string()), ("source_row", pa.int64()), ("license", pa.string()),
        ("task_type", pa.string()), ("language", pa.string()), ("difficulty", pa.string()),
        ("quality_score", pa.float64()), ("policy_domain", pa.string()),
        ("tags", pa.list_(pa.string())), ("annotator_ids", pa.list_(pa.string())),
        ("lineage", pa.string()), ("extra", pa.string()), ("layout", pa.string()),
        ("row_hash", pa.string()),
    ])


def __getattr__(name: str):
    # ``ARROW_SCHEMA`` stays readable as a module constant (PEP 562), built on first use.
    if name == "ARROW_SCHEMA":
        return arrow_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ESC = re.compile(r"(\\+)u00([0-9a-f]{2})")


def _upper_escape(m: re.Match) -> str:
    # an odd run of backslashes means the last one starts a \u00XX escape
    return m.group(1) + "u00" + m.group(2).upper() if len(m.group(1)) % 2 else m.group(0)


def dumps(obj: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8 kept (not \\u-escaped), control
    characters escaped as ``\\u00XX`` with upper-case hex. The last rule makes it equal,
    byte for byte, to DuckDB's ``to_json`` (yyjson), so a bulk import can hash in SQL
    and get the same row hashes (tested in tests/datastore/test_ingest.py)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return _ESC.sub(_upper_escape, text) if "u00" in text else text


@dataclass
class Sample:
    """One sample as the layers above exchange it (JSON columns already decoded).

    ``sample_id`` is None for a sample not yet stored.
    """

    kind: str = "instruction"
    system: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    history: list | None = None
    messages: list | None = None
    source: str | None = None
    source_row: int | None = None
    license: str | None = None
    task_type: str | None = None
    language: str | None = None
    difficulty: str | None = None
    quality_score: float | None = None
    policy_domain: str | None = None
    tags: list[str] | None = None
    annotator_ids: list[str] | None = None
    lineage: dict | None = None
    extra: dict | None = None
    layout: dict | None = None
    sample_id: int | None = None
    row_hash: str | None = None

    def to_row(self) -> dict:
        """Stored row: JSON columns encoded, ``row_hash`` computed. Fields read under an old
        spelling and left unchanged are written back in it (``vocabulary.restore``), so the
        row hashes as it did."""
        row = {c: getattr(self, c) for c in CONTENT_COLUMNS}
        vocabulary.restore(row)
        for c in JSON_COLUMNS:
            if row[c] is not None:
                row[c] = json.dumps(row[c], ensure_ascii=False)
        row["row_hash"] = row_hash(row)
        return row

    @classmethod
    def from_row(cls, row: dict) -> "Sample":
        d = {k: row.get(k) for k in (*CONTENT_COLUMNS, "sample_id", "row_hash")}
        for c in JSON_COLUMNS:
            if isinstance(d[c], str):
                d[c] = json.loads(d[c])
        if d.get("quality_score") is not None:
            d["quality_score"] = float(d["quality_score"])
        vocabulary.read(d)
        return cls(**d)

    def turns(self) -> list[dict]:
        """The sample as a list of message dicts (system first if any), each a copy.

        Conversations give their stored messages whole (``role``, ``content``, ``tool_calls``,
        ``tool_call_id``, ``name``, ``reasoning_content`` and every other key, as imported),
        preceded by ``{"role": "system", "content": system}`` when the ``system`` column holds
        text (not None, not ``""``) and the messages do not already open with a system message (a ShareGPT file's
        ``system`` column is its conversation's system prompt, as LLaMA-Factory reads it).

        Instruction samples give system, history pairs, then the user turn
        (instruction, plus the input after a blank line when the input is not blank) and
        the assistant turn when ``output`` is not None. Blank means missing, null, ``""``
        or only whitespace: all four mean "no input".
        """
        if self.kind in MESSAGE_KINDS:
            msgs = [dict(m) if isinstance(m, dict) else m for m in (self.messages or [])]
            opens_with_system = bool(msgs) and isinstance(msgs[0], dict) and msgs[0].get("role") == "system"
            if self.system and not opens_with_system:
                msgs.insert(0, {"role": "system", "content": self.system})
            return msgs
        out = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for pair in self.history or []:
            out.append({"role": "user", "content": pair[0]})
            out.append({"role": "assistant", "content": pair[1]})
        user = self.instruction or ""
        if self.input is not None and self.input.strip():
            user = f"{user}\n\n{self.input}"
        out.append({"role": "user", "content": user})
        if self.output is not None:
            out.append({"role": "assistant", "content": self.output})
        return out


def canonical(row: dict) -> dict:
    """The hashed form of a stored row (JSON columns as text or decoded). A decoded row still
    holding ``vocabulary.read``'s record of old spellings hashes in the stored spelling."""
    if isinstance(row.get("layout"), dict) and vocabulary.LAYOUT_KEY in row["layout"]:
        row = dict(row)
        vocabulary.restore(row)

    def dec(v):
        return json.loads(v) if isinstance(v, str) else v
    obj: dict[str, Any] = {"kind": row["kind"]}
    for c in TEXT_COLUMNS:
        if row.get(c) is not None:
            obj[c] = row[c]
    for c in ("history", "messages", "extra"):
        if row.get(c) is not None:
            obj[c] = dec(row[c])
    meta = {c: row.get(c) for c in HASHED_META if row.get(c) not in (None, [])}
    if meta:
        obj["meta"] = meta
    return obj


def row_hash(row: dict) -> str:
    """Hex SHA-256 of :func:`canonical` serialized by :func:`dumps`."""
    return hashlib.sha256(dumps(canonical(row)).encode("utf-8")).hexdigest()


def rows_to_arrow(rows: list[dict]) -> pa.Table:
    """Build the bulk-insert table from stored rows (as given by ``Sample.to_row``)."""
    schema = arrow_schema()
    cols = {name: [r.get(name) for r in rows] for name in schema.names}
    return pa.table(cols, schema=schema)
