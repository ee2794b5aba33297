"""Shared pieces of the format modules: the record-schema interface and row errors.

A *record schema* (alpaca, sharegpt, messages, self-instruct) maps one source record
(a JSON object, a CSV row, a Parquet row) to a stored sample row and back. A *container*
(JSON array, JSON Lines, CSV, Parquet, a Hugging Face ``save_to_disk`` folder) holds
records. Any schema can live in any container.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from datastore.samples import Sample


class ConversionError(Exception):
    """A sample cannot be written in the requested format without losing information."""


class RowError(Exception):
    """One record is unusable; the importer adds file, row and line."""

    def __init__(self, field: str | None, reason: str):
        self.field, self.reason = field, reason
        super().__init__(reason)


@dataclass
class ImportContext:
    """Per-file settings shared by every record of one import."""
    file: str
    mapping: dict[str, str] = field(default_factory=dict)   # canonical field -> source key
    merge_same_role: bool = False
    keys_seen: set[str] = field(default_factory=set)         # union of keys over the file
    source: str | None = None
    license: str | None = None


@dataclass
class Parsed:
    sample: Sample
    warnings: list[str] = field(default_factory=list)
    trainable: bool = True


class RecordSchema:
    """Interface: ``parse`` a source record, ``dump`` a sample back to a record."""
    name: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def matches(cls, keys: set[str]) -> bool:  # content-based detection
        raise NotImplementedError

    def parse(self, rec: dict, ctx: ImportContext) -> Parsed:
        raise NotImplementedError

    def dump(self, s: Sample) -> dict:
        raise NotImplementedError


def want_text(rec: dict, key: str, *, field: str | None = None, required: bool = False,
              allow_null: bool = True) -> str | None:
    """Read a text field exactly: a string stays a string, nothing is coerced.

    Raises RowError for a missing required field or a non-string value (e.g. 42).
    """
    name = field or key
    if key not in rec:
        if required:
            raise RowError(name, f"missing required field '{name}'")
        return None
    v = rec[key]
    if v is None:
        if required or not allow_null:
            raise RowError(name, f"field '{name}' is null; text is required")
        return None
    if not isinstance(v, str):
        raise RowError(name, f"field '{name}' must be text, got {type(v).__name__} {v!r:.40}")
    return v


def ordered_record(keys: list[str], values: dict[str, Any], extra: dict | None) -> dict:
    """Rebuild a record in its source key order: mapped values first by key, then extras;
    keys present in ``values`` or ``extra`` but not in ``keys`` are appended."""
    extra = extra or {}
    out: dict[str, Any] = {}
    for k in keys:
        if k in values:
            out[k] = values[k]
        elif k in extra:
            out[k] = extra[k]
    for k, v in values.items():
        if k not in out:
            out[k] = v
    for k, v in extra.items():
        if k not in out:
            out[k] = v
    return out
