"""``--map`` targets that are metadata columns: validated, stored in their column, written back.

A mapping target is a text field (:data:`pipelines.formats.alpaca.FIELDS`) or one of
:data:`META_TARGETS`, the sample's metadata columns (``datastore.samples.META_COLUMNS`` less
the ones the store assigns, ``source_row`` and ``annotator_ids``). An unknown target is
refused before anything is read or written (:func:`split_mapping`).

A mapped metadata value is validated through ``datastore.vocabulary`` (difficulty
``easy|medium|hard``, quality score a number from 0 to 1, policy domain ``S1``..``S14`` and
aliases, task type, language, source); ``license`` is normalized as every licence is
(:func:`pipelines.curate.licences.normalize_licence`) and ``tags`` is a list of text or one
comma-separated text. A bad value is a per-row error naming the source column.

The sample's layout records ``meta_map`` (field -> source column) and, where the stored value
is not the value as it came (``"0.80"`` in a CSV, ``1`` for ``1.0``, an alias), ``meta_raw``
(source column -> value as it came): the export in the sample's own schema writes the column
back under its source name, as it came while the value is unchanged (byte-equal round trip).
A null value is not mapped and stays in ``extra`` as null, so it too comes back as it was.
"""
from __future__ import annotations

import dataclasses
import math

from datastore import WorkbenchError
from datastore import vocabulary
from datastore.samples import META_COLUMNS, Sample

from .base import RowError

META_TARGETS: tuple[str, ...] = tuple(c for c in META_COLUMNS if c not in ("source_row", "annotator_ids"))


def split_mapping(mapping: dict[str, str] | None, text_fields: tuple[str, ...]) -> tuple[dict, dict]:
    """``(text mapping, metadata mapping)`` of a ``--map`` (target -> source column).

    Raises:
        WorkbenchError: a target that is neither a text field nor a metadata column, naming
            it and the allowed targets; two targets mapped from one column.
    """
    text, meta = {}, {}
    for target, col in (mapping or {}).items():
        if target in text_fields:
            text[target] = col
        elif target in META_TARGETS:
            meta[target] = col
        else:
            raise WorkbenchError(f"--map: unknown target '{target}'; map onto one of "
                                 f"{', '.join((*text_fields, *META_TARGETS))}")
    cols = list(text.values()) + list(meta.values())
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise WorkbenchError(f"--map: column '{dup[0]}' is mapped onto more than one target")
    return text, meta


def check_value(target: str, raw):
    """The stored value of metadata field ``target`` for the source value ``raw`` (not None).

    Raises:
        WorkbenchError: ``field '<target>': ...`` naming the value and what is allowed.
    """
    if target == "tags":
        tags = [t.strip() for t in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise WorkbenchError(f"field 'tags': {raw!r} is not a list of text or comma-separated text")
        return tags
    if target == "license":
        from pipelines.curate.licences import normalize_licence
        if not isinstance(raw, str) or not raw.strip():
            raise WorkbenchError(f"field 'license': {raw!r} is not a licence id")
        return normalize_licence(raw)
    f = vocabulary.FIELDS[target]
    if f.number is not None and isinstance(raw, str):
        try:
            num = float(raw)
        except ValueError:
            raise WorkbenchError(f"field '{target}': {raw!r} is not a number") from None
        if not math.isfinite(num):
            raise WorkbenchError(f"field '{target}': {raw!r} is not a finite number")
        return f.check(num)
    return f.check(raw)


def apply(sample: Sample, rec: dict, meta: dict[str, str]) -> None:
    """Move the mapped metadata columns of source record ``rec`` from ``sample.extra`` to the
    sample's columns, in place, recording the mapping in its layout.

    Raises:
        RowError: a bad value (field: the source column).
    """
    if not meta:
        return
    extra = dict(sample.extra or {})
    raws = {}
    for target, col in meta.items():
        raw = rec.get(col)
        if raw is None:
            continue  # missing or null: nothing to map; a null stays in extra
        try:
            value = check_value(target, raw)
        except WorkbenchError as e:
            raise RowError(col, str(e)) from None
        setattr(sample, target, value)
        extra.pop(col, None)
        if type(value) is not type(raw) or value != raw:
            raws[col] = raw
    sample.extra = extra or None
    layout = {**(sample.layout or {}), "meta_map": dict(meta)}
    if raws:
        layout["meta_raw"] = raws
    sample.layout = layout


def restore(sample: Sample) -> Sample:
    """The sample with its mapped metadata put back into ``extra`` under the source column
    names, as it came where unchanged (for the export in its own schema); itself when none."""
    lay = sample.layout or {}
    meta = lay.get("meta_map")
    if not meta:
        return sample
    raws = lay.get("meta_raw") or {}
    extra = dict(sample.extra or {})
    for target, col in meta.items():
        value = getattr(sample, target)
        if value is None:
            continue
        raw = raws.get(col)
        same = False
        if raw is not None:
            try:
                same = check_value(target, raw) == value
            except WorkbenchError:
                same = False
        extra[col] = raw if same else value
    return dataclasses.replace(sample, extra=extra or None)
