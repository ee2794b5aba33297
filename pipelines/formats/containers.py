"""Containers: how records sit in a file or folder. Detection reads content, not names.

- JSON array ``[...]``, JSON Lines (one object per line), a single JSON object (one
  record); a UTF-8 byte order mark is accepted; gzip is unpacked.
- CSV (RFC 4180 via Python's ``csv``: quoted newlines, doubled quotes, CRLF). Every
  cell stays text; an empty cell is ``""``.
- Parquet (starts with ``PAR1``), read with pyarrow.
- A Hugging Face ``datasets`` folder written by ``save_to_disk``.

Each record comes with its 1-based ``row`` and, where the container has lines, the
1-based ``line`` where it starts.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from datastore.errors import FormatError


@dataclass
class RawRecord:
    row: int
    line: int | None
    value: Any = None
    raw: str | None = None       # source text of the record (for quarantine)
    error: str | None = None     # a syntax error confined to this record (JSON Lines)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FormatError(f"not valid UTF-8 ({e.reason})", file=str(path), line=line) from None


def sniff(path: Path) -> str:
    """``json``, ``jsonl``, ``csv``, ``parquet`` or ``hf`` from the content.

    Raises FormatError for an empty file.
    """
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists() \
                or (path / "dataset_dict.json").exists():
            return "hf"
        raise FormatError("a folder that is not a Hugging Face datasets folder (no dataset_info.json)",
                          file=str(path))
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        head = gzip.decompress(path.read_bytes())[:4096]
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text:
        raise FormatError("the file is empty", file=str(path))
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        first = text.split("\n", 1)[0].strip()
        try:
            json.loads(first)
            return "jsonl"
        except json.JSONDecodeError:
            return "json"
    return "csv"


def read_records(path: Path, container: str) -> Iterator[RawRecord]:
    """Yield the records of ``path``. Whole-file syntax errors raise FormatError with
    the line; a bad line of JSON Lines is yielded with ``error`` set."""
    file = str(path)
    if container == "jsonl":
        text = _decode(path)
        row = 0
        for lineno, line in enumerate(text.split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            row += 1
            try:
                yield RawRecord(row, lineno, json.loads(line), line)
            except json.JSONDecodeError as e:
                yield RawRecord(row, lineno, None, line, f"not valid JSON: {e.msg} (column {e.colno})")
        if row == 0:
            raise FormatError("the file is empty", file=file)
        return
    if container == "json":
        text = _decode(path)
        if not text.strip():
            raise FormatError("the file is empty", file=file)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"not valid JSON: {e.msg} (column {e.colno})", file=file, line=e.lineno) from None
        items = doc if isinstance(doc, list) else [doc]
        for i, v in enumerate(items, start=1):
            yield RawRecord(i, None, v, None)
        return
    if container == "csv":
        text = _decode(path)
        if not text.strip():
            raise FormatError("the file is empty", file=file)
        buf = io.StringIO(text, newline="")
        reader = csv.reader(buf)
        try:
            header = next(reader)
        except csv.Error as e:
            raise FormatError(f"CSV error: {e}", file=file, line=1) from None
        start = reader.line_num + 1
        row = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise FormatError(f"CSV error: {e}", file=file, line=reader.line_num) from None
            row += 1
            if len(cells) != len(header):
                yield RawRecord(row, start, None, ",".join(cells),
                                f"has {len(cells)} cells but the header has {len(header)}")
            else:
                yield RawRecord(row, start, dict(zip(header, cells)), None)
            start = reader.line_num + 1
        return
    if container == "parquet":
        import pyarrow.parquet as pq
        for i, rec in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield RawRecord(i, None, rec, None)
        return
    if container == "hf":
        from datasets import DatasetDict, load_from_disk
        ds = load_from_disk(str(path))
        if isinstance(ds, DatasetDict):
            if "train" not in ds:
                raise FormatError(f"a DatasetDict without a 'train' split (splits: {list(ds)})", file=file)
            ds = ds["train"]
        for i, rec in enumerate(ds.to_list(), start=1):
            yield RawRecord(i, None, rec, None)
        return
    raise FormatError(f"unknown container '{container}'", file=file)


def write_json(records: list[dict], out: Path, lines: bool) -> None:
    with open(out, "w", encoding="utf-8") as f:
        if lines:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            json.dump(records, f, ensure_ascii=False, indent=2)
            f.write("\n")


def write_csv(records: list[dict], out: Path) -> None:
    """Nested values (lists, objects) are written as JSON text; None as an empty cell."""
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in records:
            w.writerow(["" if r.get(c) is None else
                        (json.dumps(r[c], ensure_ascii=False) if isinstance(r[c], (list, dict)) else r[c])
                        for c in cols])


def _arrow_table(records: list[dict], fmt: str):
    """Records as one Arrow table, or a WorkbenchError naming the column whose values do
    not share one type (Parquet and Arrow columns are typed; JSON keeps both)."""
    import pyarrow as pa

    from datastore.errors import WorkbenchError
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        first: dict[str, tuple[str, int]] = {}  # column -> (type of its first value, record)
        clash = None
        for i, r in enumerate(records, 1):
            for k, v in r.items():
                if v is None:
                    continue
                t = type(v).__name__
                if k not in first:
                    first[k] = (t, i)
                elif first[k][0] != t and clash is None:
                    clash = (k, first[k], (t, i), v)
        if clash is None:
            what = "a nested field"
        else:
            k, (t0, i0), (t1, i1), v = clash
            what = (f"'{k}' ({t0} in record {i0}, {t1} in record {i1}: {json.dumps(v, ensure_ascii=False)[:60]}; "
                    f"records count from 1 in export order)")
        raise WorkbenchError(f"cannot write {fmt}: column {what} mixes value types, and {fmt} columns "
                             "hold one type; export as alpaca/sharegpt/messages JSON to keep both") from None


def write_parquet(records: list[dict], out: Path) -> None:
    import pyarrow.parquet as pq
    pq.write_table(_arrow_table(records, "parquet"), out)


def write_hf(records: list[dict], out: Path) -> None:
    from datasets import Dataset, disable_progress_bars
    disable_progress_bars()
    Dataset(_arrow_table(records, "hf")).save_to_disk(str(out))
