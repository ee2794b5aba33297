"""Import and export of datasets in the formats users bring.

Registries: ``SCHEMAS`` (record schemas: alpaca, sharegpt, messages, self-instruct) and
``CONTAINERS`` (json, jsonl, csv, parquet, hf). ``wb import`` detects both from the
content; ``wb export --format`` takes ``alpaca``, ``sharegpt``, ``messages``,
``self-instruct`` (a schema, written as JSON, or JSON Lines when the path ends in
``.jsonl``) or ``csv``, ``parquet``, ``hf`` (a container; each record keeps the
schema it was imported in).

An import is atomic by default: any bad record raises :class:`FormatError` naming the
file, row or line, and field, and nothing is written. With ``quarantine=True`` the good
records are committed and each bad one is kept with its reason (``wb quarantine``). A
record that breaks a parser limit (nesting, encoding, CSV syntax) is such a bad record
(:mod:`.containers`); a file in which no record parses is refused with its first
:data:`FIRST_PROBLEMS` problems named.

A ``datasets`` folder or object keeps its ``Features`` in each sample's layout
(``layout["hf_features"]``); the ``hf`` export casts to them (ClassLabel names, float32,
nested sequences come back as they were) or refuses naming the column that no longer fits.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datastore import FormatError, Sample, Store, WorkbenchError
from datastore import quarantine as Q
from datastore import versions as V
from datastore.samples import rows_to_arrow
from pipelines.policy import require

from . import containers as C
from . import meta_map
from . import reasoning as R
from .alpaca import FIELDS as TEXT_FIELDS
from .alpaca import AlpacaSchema, resolve_mapping
from .base import ConversionError, ImportContext, RecordSchema, RowError
from .messages import MessagesSchema
from .self_instruct import SelfInstructSchema
from .sharegpt import ShareGPTSchema

SCHEMAS: dict[str, type[RecordSchema]] = {
    "sharegpt": ShareGPTSchema,
    "messages": MessagesSchema,
    "self-instruct": SelfInstructSchema,
    "alpaca": AlpacaSchema,
}
CONTAINERS = ("json", "jsonl", "csv", "parquet", "hf")
EXPORT_FORMATS = ("alpaca", "sharegpt", "messages", "self-instruct", "csv", "parquet", "hf")
MAX_WARNINGS_KEPT = 1000
FIRST_PROBLEMS = 3


@dataclass
class ImportReport:
    """What an import did. ``warnings`` are ``{"row", "line", "message"}``."""
    dataset: str
    file: str
    container: str
    schema: str
    imported: int
    quarantined: int
    trainable: int
    version: int | None = None
    version_id: str | None = None
    content_hash: str | None = None
    warnings: list[dict] = field(default_factory=list)
    n_warnings: int = 0
    license: str | None = None          # the file's licence, kept on every sample
    license_origin: str | None = None   # "--license", "README.md YAML header", "dataset_info.json", or None
    dialect: dict | None = None         # what was sniffed: encoding, and for CSV delimiter and quotechar

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def detect_schema(keys: set[str]) -> str:
    for name, cls in SCHEMAS.items():
        if cls.matches(keys):
            return name
    raise WorkbenchError(f"cannot tell the record format from the fields {sorted(keys)[:12]}; "
                         "pass --format and --map instruction=COLUMN,output=COLUMN")


def parse_file(path: str | Path, *, fmt: str | None = None, mapping: dict[str, str] | None = None,
               merge_same_role: bool = False, source: str | None = None, license: str | None = None,
               progress: Callable[[int], None] | None = None, reasoning_markers: str | None = None,
               delimiter: str | None = None):
    """Read and parse a file without touching the store.

    ``reasoning_markers`` (``think``, ``thought`` or ``auto``) moves reasoning written inline
    at the start of assistant messages into ``reasoning_content`` (:func:`reasoning.extract`).

    ``delimiter`` is the CSV delimiter (sniffed among comma, semicolon and tab when None).

    Returns ``(report, rows, bad)``: the stored rows of good records, and the bad ones as
    ``{"row", "line", "field", "reason", "raw"}``.

    Raises:
        FormatError: the file cannot be read at all (empty, not valid JSON at line N,
            no records, no record parses).
        WorkbenchError: a ``delimiter`` for a file that is not CSV.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", file=str(path))
    fmt_container = fmt if fmt in CONTAINERS else None
    fmt_schema = fmt if fmt in SCHEMAS else None
    if fmt and not (fmt_container or fmt_schema):
        raise WorkbenchError(f"unknown format '{fmt}'; choose from {', '.join(list(SCHEMAS) + list(CONTAINERS))}")
    container = fmt_container or C.sniff(path)
    if delimiter is not None and container != "csv":
        if fmt_container:
            raise WorkbenchError(f"--delimiter applies to CSV files; --format says {fmt_container}")
        container = "csv"  # the caller says it is delimited text
    info: dict = {}
    records = list(C.read_records(path, container, delimiter=delimiter, info=info))
    rep, rows, bad = parse_records(records, file=str(path), container=container, schema_name=fmt_schema,
                                   mapping=mapping, merge_same_role=merge_same_role, source=source or path.name,
                                   license=license, progress=progress, hf_features=info.get("hf_features"),
                                   reasoning_markers=reasoning_markers)
    rep.dialect = {k: info[k] for k in ("encoding", "delimiter", "quotechar") if k in info} or None
    return rep, rows, bad


def no_record_parses(file: str, bad: list[dict]) -> FormatError:
    """The error for a file in which no record parses: how many, and the first
    :data:`FIRST_PROBLEMS` problems with their line or row and field (a file of one record
    gets that record's own error). ``row``, ``line`` and ``field`` are the first problem's."""
    def where(b):
        parts = [f"line {b['line']}" if b.get("line") is not None else f"row {b['row']}"]
        if b.get("field"):
            parts.append(f"field '{b['field']}'")
        return ", ".join(parts)
    b = bad[0]
    if len(bad) == 1:
        return FormatError(b["reason"], file=file, row=b["row"], line=b["line"], field=b["field"])
    first = "; ".join(f"{where(b)}: {b['reason']}" for b in bad[:FIRST_PROBLEMS])
    e = FormatError(f"no record parses ({len(bad)} bad, nothing imported); first problems: {first}", file=file)
    e.row, e.line, e.field = b["row"], b["line"], b["field"]  # the first one, for callers
    return e


def _surrogate_field(value) -> str | None:
    """The top-level key whose value holds a lone surrogate."""
    for k, v in (value.items() if isinstance(value, dict) else []):
        try:
            json.dumps(v, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return k
    return None


def parse_records(records: list, *, file: str, container: str, schema_name: str | None = None,
                  mapping: dict[str, str] | None = None, merge_same_role: bool = False,
                  source: str | None = None, license: str | None = None,
                  progress: Callable[[int], None] | None = None, reasoning_markers: str | None = None,
                  hf_features: dict | None = None):
    """Parse :class:`containers.RawRecord` items; see :func:`parse_file` for the result.
    ``hf_features`` (``datasets.Features.to_dict()``) is kept in each sample's layout."""
    R.check_choice(reasoning_markers, R.IMPORT_CHOICES, "--reasoning-markers")
    meta = meta_map.split_mapping(mapping, TEXT_FIELDS)[1]
    if not records:
        raise FormatError("contains 0 records; nothing to import", file=file)
    keys: set[str] = set()
    for r in records:
        if isinstance(r.value, dict) and not r.error:
            keys.update(r.value.keys())
    if not keys and all(r.error or not isinstance(r.value, dict) for r in records):
        raise no_record_parses(file, [_bad_raw(r) for r in records])
    schema_name = schema_name or detect_schema(keys)
    if reasoning_markers and schema_name not in ("sharegpt", "messages"):
        raise FormatError(f"--reasoning-markers moves reasoning out of assistant turns of conversations "
                          f"(messages or sharegpt records); this file holds {schema_name} records, whose "
                          "text would be imported unchanged", file=file)
    schema = SCHEMAS[schema_name]()
    ctx = ImportContext(file=file, merge_same_role=merge_same_role, keys_seen=keys,
                        source=source, license=license)
    if schema_name == "alpaca":
        ctx.mapping = resolve_mapping(keys, mapping)
        if "instruction" not in ctx.mapping:
            raise FormatError("no instruction column found; map one with --map instruction=COLUMN", file=file)
    rows, bad, warnings = [], [], []
    trainable = n_warn = 0
    for i, r in enumerate(records):
        if progress and i % 10000 == 0:
            progress(i)
        if r.error or not isinstance(r.value, dict):
            bad.append(_bad_raw(r))
            continue
        try:
            parsed = schema.parse(r.value, ctx)
        except RowError as e:
            bad.append({"row": r.row, "line": r.line, "field": e.field, "reason": e.reason,
                        "raw": r.raw or json.dumps(r.value, ensure_ascii=False)})
            continue
        s = parsed.sample
        s.source, s.source_row, s.license = ctx.source, r.row, license
        try:
            meta_map.apply(s, r.value, meta)
        except RowError as e:
            bad.append({"row": r.row, "line": r.line, "field": e.field, "reason": e.reason,
                        "raw": r.raw or json.dumps(r.value, ensure_ascii=False)})
            continue
        if reasoning_markers and s.kind == "conversation":
            parsed.warnings += R.extract(s, reasoning_markers)
        if hf_features is not None:
            s.layout = {**(s.layout or {}), "hf_features": hf_features}
        try:
            rows.append(s.to_row())
        except UnicodeEncodeError:  # JSON "\\ud83d": a lone surrogate is no Unicode text
            bad.append({"row": r.row, "line": r.line, "field": _surrogate_field(r.value),
                        "reason": "text holds a lone UTF-16 surrogate (an escape like \\ud83d without its pair), "
                                  "which is not valid Unicode",
                        "raw": r.raw or json.dumps(r.value, ensure_ascii=True)})
            continue
        trainable += parsed.trainable
        for w in parsed.warnings:
            n_warn += 1
            if len(warnings) < MAX_WARNINGS_KEPT:
                warnings.append({"row": r.row, "line": r.line, "message": w})
    rep = ImportReport(dataset="", file=file, container=container, schema=schema_name,
                       imported=len(rows), quarantined=len(bad), trainable=trainable,
                       warnings=warnings, n_warnings=n_warn)
    return rep, rows, bad


def _bad_raw(r) -> dict:
    """The quarantine item of a record that did not parse (error set, or not an object)."""
    if r.error:
        return {"row": r.row, "line": r.line, "field": r.field, "reason": r.error, "raw": r.raw}
    return {"row": r.row, "line": r.line, "field": None,
            "reason": f"a record must be a JSON object, got {type(r.value).__name__}",
            "raw": json.dumps(r.value, ensure_ascii=False)[:10000]}


def import_file(workspace: str | Path, path: str | Path, dataset: str, *, user: str,
                fmt: str | None = None, quarantine: bool = False, mapping: dict[str, str] | None = None,
                merge_same_role: bool = False, license: str | None = None, kind: str = "sft",
                message: str | None = None, progress: Callable[[int], None] | None = None,
                reasoning_markers: str | None = None, delimiter: str | None = None) -> ImportReport:
    """Import a file as a new version of ``dataset`` (created if missing).

    ``delimiter`` overrides the sniffed CSV delimiter (:func:`parse_file`).

    The licence is ``license`` when given, else read from the file's dataset card
    (:func:`pipelines.curate.licences.licence_from_card`: a ``README.md`` YAML header beside
    the file or in the folder, or ``dataset_info.json``); it is kept on every sample, and
    the import's provenance (file, SHA-256, licence and where it was read) is recorded.

    Raises:
        PermissionDenied: ``user`` may not edit samples.
        FormatError: a bad record without ``quarantine`` (the first one, with file, row or
            line, and field; the message counts the others), or nothing importable.
    """
    meta_map.split_mapping(mapping, TEXT_FIELDS)  # an unknown target fails before anything is read
    if not Path(path).exists():
        raise FormatError("no such file or folder", file=str(path))
    from pipelines.curate.licences import licence_from_card, normalize_licence
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", dataset)[0]
    card: dict = {}
    if license:
        license, origin = normalize_licence(license), "--license"
    else:
        license, origin, card = licence_from_card(path)
    rep = None
    if (fmt in (None, "alpaca", "jsonl") and not mapping and not merge_same_role and not reasoning_markers
            and delimiter is None):
        from .fast_alpaca import try_fast_import
        rep = try_fast_import(workspace, Path(path), dataset, user=user, license=license, kind=kind,
                              message=message, report_cls=ImportReport)
    if rep is None:
        parsed = parse_file(path, fmt=fmt, mapping=mapping, merge_same_role=merge_same_role,
                            license=license, progress=progress, reasoning_markers=reasoning_markers,
                            delimiter=delimiter)
        rep = commit_parsed(workspace, parsed, dataset, user=user, quarantine=quarantine, kind=kind,
                            message=message or f"import {Path(path).name}")
    rep.license, rep.license_origin = license, origin
    _record_provenance(workspace, rep, Path(path), license, origin, card, user)
    return rep


PROVENANCE_HASH_MAX_BYTES = 64 << 20  # larger files are identified by name and size (hashing 0.5 GB costs ~0.5 s)


def _record_provenance(workspace, rep: ImportReport, path: Path, license, origin, card, user) -> None:
    import hashlib
    from datastore import governance as G
    digest = None
    if path.is_file() and path.stat().st_size <= PROVENANCE_HASH_MAX_BYTES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
    card = {**(card or {}), "bytes": path.stat().st_size if path.is_file() else None}
    with Store(workspace) as st, st.transaction():
        G.record_provenance(st.conn, version_id=rep.version_id, dataset=rep.dataset, file=str(path),
                            file_sha256=digest, source=path.name, license=license, license_origin=origin,
                            card=card, user=user)


def import_dataset_object(workspace: str | Path, ds, dataset: str, *, user: str, **kw) -> ImportReport:
    """Import a Hugging Face ``datasets.Dataset`` object (Python API); same rules as a file,
    and its ``Features`` are kept for the ``hf`` export."""
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", dataset)[0]
    records = [C.checked_record(i, rec) for i, rec in enumerate(ds.to_list(), start=1)]
    opts = {k: kw.pop(k) for k in ("quarantine", "kind", "message") if k in kw}
    parsed = parse_records(records, file="<datasets.Dataset>", container="hf", source="<datasets.Dataset>",
                           hf_features=ds.features.to_dict(), **kw)
    return commit_parsed(workspace, parsed, dataset, user=user, **opts)


def commit_parsed(workspace: str | Path, parsed, dataset: str, *, user: str, quarantine: bool = False,
                  kind: str = "sft", message: str | None = None) -> ImportReport:
    """Commit what :func:`parse_file` or :func:`parse_records` returned (one transaction)."""
    rep, rows, bad = parsed
    path = rep.file
    rep.dataset = dataset
    if bad and not rows:
        raise no_record_parses(str(path), bad)
    if bad and not quarantine:
        b = bad[0]
        more = f" ({len(bad) - 1} more bad record(s); use --quarantine to import the good ones)" if len(bad) > 1 else ""
        raise FormatError(b["reason"] + more, file=str(path), row=b["row"], line=b["line"], field=b["field"])
    if not rows:
        raise FormatError("no valid records; nothing imported", file=str(path))
    import_id = secrets.token_hex(6)
    op = {"op": "import", "file": str(path), "container": rep.container, "schema": rep.schema,
          "records": rep.imported, "quarantined": rep.quarantined, "import_id": import_id}
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", dataset)[0]

        def on_commit(conn, ds):
            if bad:
                Q.add(conn, dataset_id=ds.dataset_id, import_id=import_id, file=str(path), items=bad, user=user)
        v = V.commit(st, dataset, author=user, message=message or f"import {Path(path).name}",
                     add=rows_to_arrow(rows), operation=op, create=True, kind=kind, on_commit=on_commit)
    rep.version, rep.version_id, rep.content_hash = v.number, v.version_id, v.content_hash
    return rep


def to_records(samples, fmt: str, *, reasoning: str = "keep") -> list[dict]:
    """Dump samples as records of schema ``fmt``, or of each sample's own schema when
    ``fmt`` is a container (csv, parquet, hf). ``reasoning="inline"`` writes each message's
    ``reasoning_content`` inline between its markers (:func:`reasoning.inline`)."""
    R.check_choice(reasoning, R.EXPORT_CHOICES, "--reasoning")
    out = []
    for s in samples:
        if reasoning == "inline":
            s = R.inline(s)
        if fmt == "csv" and s.kind == "conversation":
            raise WorkbenchError(f"sample #{s.sample_id} is a conversation: CSV holds instruction samples; "
                                 "export conversations as sharegpt, messages, parquet or hf")
        own = (s.layout or {}).get("schema")
        name = fmt if fmt in SCHEMAS else own or ("alpaca" if s.kind == "instruction" else "messages")
        if name == own:
            s = meta_map.restore(s)  # mapped metadata back under its source column names
        try:
            out.append(SCHEMAS[name]().dump(s))
        except ConversionError as e:
            others = ", ".join(f for f in ("sharegpt", "messages", "parquet", "hf") if f != name)
            raise WorkbenchError(f"sample #{s.sample_id} cannot be written as {name} without losing data: {e}; "
                                 f"export it as {others}") from None
    return out


def hf_features_of(samples, fmt: str = "hf") -> dict | None:
    """The ``datasets`` Features the samples came with (``layout["hf_features"]``), or None;
    None too when ``fmt`` is a record schema other than the one they came in (other columns).

    Raises:
        WorkbenchError: two samples came with different Features (naming both).
    """
    found, first = None, None
    for s in samples:
        f = (s.layout or {}).get("hf_features")
        if f is None:
            continue
        if fmt in SCHEMAS and (s.layout or {}).get("schema") != fmt:
            return None
        if found is None:
            found, first = f, s.sample_id
        elif f != found:
            raise WorkbenchError(f"samples #{first} and #{s.sample_id} came with different datasets Features; "
                                 "export them separately, or as parquet or JSON")
    return found


def export_dataset_object(workspace: str | Path, dataset: str, version: str | int | None = None,
                          fmt: str = "alpaca", *, reasoning: str = "keep"):
    """One version as a ``datasets.Dataset`` of records in schema ``fmt`` (Python API), cast to
    the Features the samples came with when they came from ``datasets``
    (:func:`containers.hf_dataset`, which raises naming a column that no longer fits)."""
    from datasets import Dataset
    with Store(workspace) as st:
        samples = list(V.iter_samples(st, V.resolve(st, dataset, version)))
    records = to_records(samples, fmt, reasoning=reasoning)
    features = hf_features_of(samples, fmt)
    return Dataset.from_list(records) if features is None else C.hf_dataset(records, features)


def export_version(workspace: str | Path, dataset: str, version: str | int | None, fmt: str,
                   out: str | Path, *, card: bool = True, reasoning: str = "keep") -> dict:
    """Write one version to ``out``. Returns ``{"path", "records", "version", "content_hash",
    "licences", "licence_warnings", "card"}``: the version's licence list (as in its card)
    and, with ``card``, the dataset card written beside the data
    (:func:`pipelines.curate.cards.card_path_beside`).

    ``reasoning``: ``keep`` (the ``reasoning_content`` key) or ``inline`` (see :func:`to_records`).

    Raises:
        WorkbenchError: unknown format; a sample the format cannot hold without loss (its id,
            message index and field). NotFound: unknown dataset or version.
    """
    if fmt not in EXPORT_FORMATS:
        raise WorkbenchError(f"unknown export format '{fmt}'; choose from {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    from datastore import governance as G
    from pipelines.curate.licences import licence_list, warnings_for
    with Store(workspace) as st:
        v = V.resolve(st, dataset, version)
        samples = list(V.iter_samples(st, v))
        licences = licence_list(G.licence_counts(st, v))
    records = to_records(samples, fmt, reasoning=reasoning)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    if fmt in SCHEMAS:
        lines = out.suffix == ".jsonl" or (fmt == "messages" and out.suffix != ".json")
        C.write_json(records, tmp, lines=lines)
    elif fmt == "csv":
        C.write_csv(records, tmp)
    elif fmt == "parquet":
        C.write_parquet(records, tmp)
    elif fmt == "hf":
        import shutil
        if tmp.exists():
            shutil.rmtree(tmp)
        C.write_hf(records, tmp, hf_features_of(samples))
        if out.exists():
            shutil.rmtree(out)
    tmp.rename(out)
    res = {"path": str(out), "records": len(records), "dataset": dataset, "version": v.number,
           "version_id": v.version_id, "content_hash": v.content_hash, "licences": licences,
           "licence_warnings": warnings_for(licences), "card": None}
    if card:
        from pipelines.curate.cards import write_card_beside
        res["card"] = str(write_card_beside(workspace, dataset, v.number, out, fmt=fmt))
    return res
