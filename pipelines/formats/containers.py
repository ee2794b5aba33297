"""Containers: how records sit in a file or folder. Detection reads content, not names.

- JSON array ``[...]``, JSON Lines (one object per line), a single JSON object (one
  record); gzip is unpacked.
- CSV (RFC 4180 via Python's ``csv``: quoted newlines, doubled quotes, CRLF). The delimiter
  (comma, semicolon or tab) and the quote character are sniffed with ``csv.Sniffer`` on the
  first :data:`CSV_SNIFF_BYTES`, unless the caller names the delimiter. Every cell stays
  text; an empty cell is ``""``; a cell has no size limit.
- Parquet (starts with ``PAR1``), read with pyarrow.
- A Hugging Face ``datasets`` folder written by ``save_to_disk``; its ``Features`` are
  returned in ``info["hf_features"]`` so an export can give them back.

Text encodings: a byte order mark names the encoding (UTF-8, UTF-16 or UTF-32, either byte
order); without one the text must be UTF-8.

Each record comes with its 1-based ``row`` and, where the container has lines, the
1-based ``line`` where it starts. A record that breaks a parser limit (nesting deeper than
:data:`MAX_NESTING`, where Python's ``json`` would raise ``RecursionError``; an integer longer
than Python reads (4300 digits by default); a JSON Lines line that is not UTF-8 or not JSON; a
CSV row the ``csv`` module rejects) is yielded with
``error`` and ``field`` set, so it becomes a per-row error that quarantine keeps aside; it
never ends the import with a traceback.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from datastore.errors import FormatError, WorkbenchError

#: Deepest nesting of lists and objects accepted in a record (the record itself is level 1).
#: A chat record with tool calls and JSON-schema tools needs about 10; Python's recursion limit
#: (1000 frames) bounds the json module and every recursive walk over a record, so anything
#: deeper than this is refused per record before it reaches them.
MAX_NESTING = 100
CSV_DELIMITERS = ",;\t"
CSV_SNIFF_BYTES = 64 << 10
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_STRING_END = re.compile(r'["\\]')


@dataclass
class RawRecord:
    row: int
    line: int | None
    value: Any = None
    raw: str | None = None       # source text of the record (for quarantine)
    error: str | None = None     # a problem confined to this record (syntax, encoding, nesting)
    field: str | None = None     # the top-level field the error is in, where known


def _bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def encoding_of(data: bytes) -> str:
    """The encoding a byte order mark names, else ``utf-8``."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return "utf-8"


def _decode(path: Path, data: bytes | None = None) -> str:
    data = _bytes(path) if data is None else data
    enc = encoding_of(data)
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        what = "UTF-8" if enc.startswith("utf-8") else enc.upper()
        raise FormatError(f"not valid {what} ({e.reason}); save the file as UTF-8", file=str(path),
                          line=line) from None


def _first_line(path: Path) -> bytes:
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        return f.readline(64 << 20)


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
    enc = encoding_of(head)
    text = head.decode(enc, errors="replace").lstrip()
    if not text:
        raise FormatError("the file is empty", file=str(path))
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        lines = text.split("\n")[:-1]
        if lines and lines[0].strip() != "{" and sum(ln.startswith("{") for ln in lines) >= 2:
            return "jsonl"  # two lines open an object at column 0: JSON Lines, even if line 1 is broken
        if enc != "utf-8" and enc != "utf-8-sig":
            first = text.split("\n", 1)[0].strip()
        else:
            first = _first_line(path).decode("utf-8-sig", errors="replace").strip()
        try:
            json.loads(first)
            return "jsonl"
        except RecursionError:   # one complete line too deep to parse: a JSON Lines record
            return "jsonl"
        except json.JSONDecodeError:
            return "json"
        except ValueError:       # one complete line with an integer over Python's 4300 digits
            return "jsonl"
    if path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson")):
        return "jsonl"   # named JSON Lines, first line broken: each line's problem is reported, not a CSV header
    return "csv"


def nesting_problem(value: Any, limit: int = MAX_NESTING) -> tuple[str | None, str] | None:
    """``(top-level field or None, reason)`` when ``value`` nests lists and objects deeper
    than ``limit`` levels, else None. Iterative, so it never hits the recursion limit."""
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for key, v in items:
        stack = [(v, 2 if isinstance(value, dict) else 1)]
        while stack:
            x, d = stack.pop()
            if isinstance(x, (list, dict)):
                if d > limit:
                    return key, _too_deep()
                stack.extend((c, d + 1) for c in (x.values() if isinstance(x, dict) else x))
    return None


def _too_deep() -> str:
    return f"nested deeper than {MAX_NESTING} levels of lists and objects (the limit of a record)"


def _scan_value(text: str, pos: int) -> tuple[int, str | None]:
    """End of the JSON value starting at ``text[pos]`` (after whitespace) and the top-level
    key whose value goes deeper than :data:`MAX_NESTING`, found without recursion (for
    records too deep for ``json``). Syntax is not checked; ``json`` does that afterwards."""
    n, i, depth = len(text), pos, 0
    top_obj, last_str, key, deep_key = False, None, None, None
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while True:
                m = _STRING_END.search(text, j)
                if m is None:
                    return n, deep_key
                if m.group() == "\\":
                    j = m.end() + 1
                    continue
                j = m.end()
                break
            if depth == 1 and top_obj:
                last_str = text[i:j]
            i = j
            if depth == 0:
                return i, deep_key
            continue
        if c in "[{":
            if depth == 0:
                top_obj = c == "{"
            depth += 1
            if depth > MAX_NESTING and deep_key is None:
                deep_key = key if key is not None else ""
        elif c in "]}":
            if depth == 0:
                return i, None
            depth -= 1
            if depth == 0:
                return i + 1, deep_key or None
        elif c == ":" and depth == 1:
            try:
                key = json.loads(last_str) if last_str else None
            except ValueError:
                key = None
        elif depth == 0 and c in ",\n\r":
            return i, None
        i += 1
    return n, deep_key or None


def _record(row: int, line: int | None, text: str) -> RawRecord:
    """One JSON record from its text; any parser limit becomes the record's error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return RawRecord(row, line, None, text, f"not valid JSON: {e.msg} (column {e.colno})")
    except RecursionError:
        return RawRecord(row, line, None, text, _too_deep(), _scan_value(text, 0)[1])
    except ValueError as e:  # Python's limit on digits of an integer (sys.get_int_max_str_digits)
        return RawRecord(row, line, None, text, f"a number too long to read: {str(e).split(';')[0]}")
    # fewer brackets than the limit cannot nest deeper than it: skip the walk (str.count is C speed)
    problem = nesting_problem(value) if text.count("[") + text.count("{") > MAX_NESTING else None
    if problem:
        return RawRecord(row, line, None, text, problem[1], problem[0])
    return RawRecord(row, line, value, text)


def checked_record(row: int, value: Any, line: int | None = None) -> RawRecord:
    """A parsed record, or the record's nesting error (:func:`nesting_problem`)."""
    problem = nesting_problem(value)
    if problem:
        return RawRecord(row, line, None, None, problem[1], problem[0])
    return RawRecord(row, line, value, None)


def _jsonl(path: Path) -> Iterator[RawRecord]:
    data = _bytes(path)
    enc = encoding_of(data)
    if enc in ("utf-8", "utf-8-sig"):
        lines = data[3 if enc == "utf-8-sig" else 0:].split(b"\n")
    else:
        lines = [ln.encode("utf-8", "surrogatepass") for ln in _decode(path, data).split("\n")]
    row = 0
    for lineno, b in enumerate(lines, start=1):
        if not b.strip():
            continue
        row += 1
        try:
            line = b.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            yield RawRecord(row, lineno, None, b.decode("utf-8", errors="replace"),
                            f"not valid UTF-8 ({e.reason} at byte {e.start + 1} of the line)")
            continue
        yield _record(row, lineno, line)
    if row == 0:
        raise FormatError("the file is empty", file=str(path))


def _json_items(text: str, file: str) -> Iterator[RawRecord]:
    """The elements of a JSON array one by one, for an array ``json.loads`` cannot take
    whole because a record is too deep: each element is parsed alone."""
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        yield _record(1, 1, text)
        return
    pos += 1
    row = 0
    ws = re.compile(r"\s*")
    while True:
        pos = ws.match(text, pos).end()
        if pos >= len(text) or text[pos] == "]":
            return
        end, _ = _scan_value(text, pos)
        row += 1
        yield _record(row, text.count("\n", 0, pos) + 1, text[pos:end])
        pos = ws.match(text, end).end()
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] != "]":
            raise FormatError(f"not valid JSON: expected ',' or ']' after record {row}", file=file,
                              line=text.count("\n", 0, pos) + 1)


def csv_dialect(sample: str, delimiter: str | None = None) -> type[csv.Dialect]:
    """The CSV dialect of a text sample: ``delimiter`` when given; else ``csv.Sniffer``'s
    choice among comma, semicolon and tab, kept when no other of the three splits more rows of
    the sample into as many cells as the header (the sniffer's guess can be thrown by text
    such as "a; b" inside a comma file), and comma when none splits the header. The quote
    character is ``"`` unless the sniffer finds ``'`` and the sample holds no ``"``."""
    class Dialect(csv.excel):
        pass
    if delimiter is not None:
        Dialect.delimiter = delimiter
        return Dialect
    cut = sample.rfind("\n")
    sample = sample[:cut] if cut > 0 else sample
    try:
        found = csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS)
    except csv.Error:
        found = None
    scores = {d: _rows_fitting(sample, d) for d in CSV_DELIMITERS}
    best = max(scores.values())
    if found is not None and scores.get(found.delimiter) == best:
        Dialect.delimiter = found.delimiter
        if found.quotechar == "'" and '"' not in sample:
            Dialect.quotechar = "'"
        Dialect.skipinitialspace = bool(found.skipinitialspace)
    elif best > 0:
        Dialect.delimiter = next(d for d in CSV_DELIMITERS if scores[d] == best)
    return Dialect


def _rows_fitting(sample: str, delimiter: str) -> int:
    """Rows of ``sample`` with as many cells as its header, when the header has two or more."""
    try:
        rows = list(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter))
    except csv.Error:
        return 0
    if not rows or len(rows[0]) < 2:
        return 0
    return sum(len(r) == len(rows[0]) for r in rows)


def _csv(path: Path, delimiter: str | None, info: dict) -> Iterator[RawRecord]:
    file = str(path)
    data = _bytes(path)
    text = _decode(path, data)
    info["encoding"] = encoding_of(data)
    if not text.strip():
        raise FormatError("the file is empty", file=file)
    dialect = csv_dialect(text[:CSV_SNIFF_BYTES], delimiter)
    info["delimiter"] = dialect.delimiter
    info["quotechar"] = dialect.quotechar
    csv.field_size_limit(2**31 - 1)  # no cell size limit (the csv default is 128 KiB)
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except csv.Error as e:
        raise FormatError(f"CSV error in the header: {e}", file=file, line=1) from None
    start = reader.line_num + 1
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            row += 1
            yield RawRecord(row, start, None, None, f"CSV error: {e}")
            if reader.line_num < start:
                break
            start = reader.line_num + 1
            continue
        row += 1
        if len(cells) != len(header):
            yield RawRecord(row, start, None, dialect.delimiter.join(cells),
                            f"has {len(cells)} cells but the header has {len(header)} "
                            f"(delimiter {dialect.delimiter!r}; pass --delimiter if that is wrong)")
        else:
            yield RawRecord(row, start, dict(zip(header, cells)), None)
        start = reader.line_num + 1


def read_records(path: Path, container: str, *, delimiter: str | None = None,
                 info: dict | None = None) -> Iterator[RawRecord]:
    """Yield the records of ``path``. Whole-file syntax errors raise FormatError with the
    line; a record that breaks a parser limit is yielded with ``error`` set.

    Args:
        delimiter: the CSV delimiter (sniffed when None).
        info: filled with what was detected: ``encoding``, ``delimiter`` and ``quotechar``
            (CSV), ``hf_features`` (a ``datasets`` folder: ``Features.to_dict()``).
    Raises:
        FormatError: empty file, whole-file syntax error, unreadable Parquet or datasets folder.
    """
    file = str(path)
    info = {} if info is None else info
    if container == "jsonl":
        yield from _jsonl(path)
        return
    if container == "json":
        text = _decode(path)
        if not text.strip():
            raise FormatError("the file is empty", file=file)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"not valid JSON: {e.msg} (column {e.colno})", file=file, line=e.lineno) from None
        except (RecursionError, ValueError):  # a record past a parser limit: parse record by record
            yield from _json_items(text, file)
            return
        items = doc if isinstance(doc, list) else [doc]
        for i, v in enumerate(items, start=1):
            yield checked_record(i, v)
        return
    if container == "csv":
        yield from _csv(path, delimiter, info)
        return
    if container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise FormatError(f"cannot read the Parquet file: {e}", file=file) from None
        for i, rec in enumerate(rows, start=1):
            yield checked_record(i, rec)
        return
    if container == "hf":
        from datasets import DatasetDict, load_from_disk
        try:
            ds = load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError, ValueError, ArrowInvalid ...
            raise FormatError(f"cannot read the datasets folder: {type(e).__name__}: {e}", file=file) from None
        if isinstance(ds, DatasetDict):
            if "train" not in ds:
                raise FormatError(f"a DatasetDict without a 'train' split (splits: {list(ds)})", file=file)
            ds = ds["train"]
        info["hf_features"] = ds.features.to_dict()
        for i, rec in enumerate(ds.to_list(), start=1):
            yield checked_record(i, rec)
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
    try:
        table = pa.Table.from_pylist(records)
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
    for i, (want, got) in enumerate(zip(records, table.to_pylist()), 1):
        where = _first_difference(want, got, "")
        if where is not None:
            raise WorkbenchError(
                f"cannot write {fmt} without changing the data: record {i} (in export order, from 1), field "
                f"'{where}' would read back differently ({fmt} columns have one struct type per column, so "
                "keys that only some records have come back as null, e.g. in tool schemas or messages); "
                "export as messages or sharegpt JSON Lines to keep it exactly")
    return table


def _first_difference(want, got, path: str) -> str | None:
    """Path of the first place where ``got`` (a record as Arrow reads it back) differs from
    ``want`` (the record written), or None when equal: a key added as null by Arrow's struct
    type, a missing key or a changed value."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in list(want) + [k for k in got if k not in want]:
            if k not in want or k not in got:
                return f"{path}.{k}".lstrip(".")
            d = _first_difference(want[k], got[k], f"{path}.{k}")
            if d is not None:
                return d.lstrip(".")
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return path.lstrip(".") or "."
        for j, (w, g) in enumerate(zip(want, got)):
            d = _first_difference(w, g, f"{path}[{j}]")
            if d is not None:
                return d.lstrip(".")
        return None
    if want != got or type(want) is not type(got) and not (isinstance(want, (int, float)) and isinstance(got, (int, float))):
        return path.lstrip(".") or "."
    return None


def write_parquet(records: list[dict], out: Path) -> None:
    import pyarrow.parquet as pq
    pq.write_table(_arrow_table(records, "parquet"), out)


def hf_dataset(records: list[dict], features: dict | None = None):
    """Records as a ``datasets.Dataset``: with ``features`` (``Features.to_dict()``, as kept at
    import) every column is cast to its feature, so ClassLabel names, float32 and nested
    sequences come back as they were; without, the types Arrow infers.

    Raises:
        WorkbenchError: a column that is not among ``features``, or whose values no longer fit
            its feature (a label out of range, text in a float column), named with the reason.
    """
    from datasets import Dataset, Features, disable_progress_bars
    disable_progress_bars()
    if features is None:
        return Dataset(_arrow_table(records, "hf"))
    import pyarrow as pa
    feats = Features.from_dict(features)
    cols = list(dict.fromkeys(k for r in records for k in r))
    new = [c for c in cols if c not in feats]
    if new:
        raise WorkbenchError(f"cannot write hf with the datasets Features the data came with: column '{new[0]}' "
                             f"is not among them ({', '.join(feats)}); export as parquet or JSON")
    for name, feat in feats.items():
        try:
            Dataset.from_dict({name: [r.get(name) for r in records]}, features=Features({name: feat}))
        except (ValueError, TypeError, KeyError, IndexError, pa.ArrowException) as e:
            raise WorkbenchError(f"cannot write hf: column '{name}' no longer fits the datasets feature it came "
                                 f"with ({feat}): {str(e).splitlines()[0][:200]}; export as parquet or JSON") from None
    return Dataset.from_list(records, features=feats)


def write_hf(records: list[dict], out: Path, features: dict | None = None) -> None:
    """``save_to_disk`` of :func:`hf_dataset`."""
    hf_dataset(records, features).save_to_disk(str(out))
