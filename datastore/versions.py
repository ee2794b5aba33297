"""Datasets and their immutable versions: commit, log, resolve, read, diff, tag.

Storage is described in ``schema.py``. Content hash (our own, because it is the core
of versioning): each sample's ``row_hash`` is a SHA-256 of its canonical JSON; a
version's ``hash_sum`` is the sum of those 256-bit integers modulo 2**256 (a multiset
hash: insertion order does not matter, a duplicate counts twice), and
``content_hash = sha256("wb-multiset-v1:<hash_sum hex>:<count>")``. A commit updates
the sum from the added, removed and modified samples alone.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from . import audit
from .errors import Conflict, NotFound, WorkbenchError
from .lazy import lazy
from .samples import Sample, arrow_schema, rows_to_arrow
from .store import register
from .schema import OPEN_END

pa = lazy("pyarrow")  # only commits and reads need it; `wb --help` must not load it

MOD = 1 << 256
SAMPLE_SELECT = ("sample_id, row_hash, kind, system, instruction, input, output, history, messages, "
                 "source, source_row, license, task_type, language, difficulty, quality_score, "
                 "policy_domain, tags, annotator_ids, lineage, extra, layout")
_SAMPLE_COLS = [c.strip() for c in SAMPLE_SELECT.split(",")]


@dataclass
class Dataset:
    dataset_id: int
    name: str
    kind: str
    description: str | None
    created_by: str | None
    created_at: datetime | None
    head: int


@dataclass
class Version:
    """One immutable dataset version. ``number`` counts from 1 per dataset."""
    version_id: str
    dataset_id: int
    dataset: str
    number: int
    parent_id: str | None
    author: str
    message: str | None
    created_at: datetime
    content_hash: str
    hash_sum: str
    n_samples: int
    n_added: int
    n_removed: int
    n_modified: int
    operation: dict | None = None
    tags: list[str] = field(default_factory=list)
    #: changes made after the commit, oldest first (e.g. ``{"op": "purge", "purge_id",
    #: "at", "by", "samples_removed", "old_content_hash", "new_content_hash"}``)
    amendments: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["created_at"] = self.created_at.isoformat(timespec="seconds")
        return d


@dataclass
class Staged:
    """New rows as a SELECT over views registered on the same connection (``ingest.py``):
    it yields the samples columns with ``source_row`` (1..count, the insertion order) and
    ``source_row_`` (the value stored)."""
    sql: str
    params: list
    count: int
    registered: list[str] = field(default_factory=list)


@dataclass
class Diff:
    """Row-level difference of version ``b`` against ``a`` (sample ids, ascending)."""
    a: Version
    b: Version
    added: list[int]
    removed: list[int]
    modified: list[int]


def content_hash(hash_sum: int, count: int) -> str:
    return hashlib.sha256(f"wb-multiset-v1:{hash_sum:064x}:{count}".encode()).hexdigest()


# ---------------------------------------------------------------- datasets
_DS_COLS = "dataset_id, name, kind, description, created_by, created_at, head"


def get_dataset(store, name: str) -> Dataset:
    """Raises NotFound naming the dataset."""
    row = store.conn.execute(f"SELECT {_DS_COLS} FROM datasets WHERE name = ?", [name]).fetchone()
    if not row:
        raise NotFound(f"no dataset named '{name}'")
    return Dataset(*row)


def list_datasets(store) -> list[Dataset]:
    return [Dataset(*r) for r in store.conn.execute(f"SELECT {_DS_COLS} FROM datasets ORDER BY name").fetchall()]


def create_dataset(store, name: str, *, user: str, kind: str = "sft", description: str | None = None) -> Dataset:
    """Create an empty dataset (no versions yet). Raises Conflict if the name exists."""
    if not name or not name.strip():
        raise WorkbenchError("a dataset needs a non-empty name")
    if kind not in ("sft", "staging"):
        raise WorkbenchError(f"dataset kind must be 'sft' or 'staging', not '{kind}'")
    if store.conn.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone():
        raise Conflict(f"a dataset named '{name}' already exists")
    store.conn.execute(
        "INSERT INTO datasets (dataset_id, name, kind, description, created_by, created_at) "
        "VALUES (nextval('dataset_ids'), ?, ?, ?, ?, ?)", [name, kind, description, user, audit.now()])
    audit.record(store.conn, user, "dataset.create", name, {"kind": kind})
    return get_dataset(store, name)


# ---------------------------------------------------------------- versions
_V_COLS = ("v.version_id, v.dataset_id, d.name, v.number, v.parent_id, v.author, v.message, v.created_at, "
           "v.content_hash, v.hash_sum, v.n_samples, v.n_added, v.n_removed, v.n_modified, v.operation, "
           "v.amendments")


def _version_from_row(store, r) -> Version:
    v = Version(*r[:14], operation=json.loads(r[14]) if r[14] else None,
                amendments=json.loads(r[15]) if r[15] else [])
    v.tags = [t for (t,) in store.conn.execute(
        "SELECT tag FROM tags WHERE version_id = ? ORDER BY tag", [v.version_id]).fetchall()]
    return v


def log(store, name: str) -> list[Version]:
    """All versions of a dataset, newest first."""
    ds = get_dataset(store, name)
    rows = store.conn.execute(
        f"SELECT {_V_COLS} FROM versions v JOIN datasets d USING (dataset_id) "
        "WHERE v.dataset_id = ? ORDER BY v.number DESC", [ds.dataset_id]).fetchall()
    return [_version_from_row(store, r) for r in rows]


def resolve(store, name: str, ref: str | int | None = None) -> Version:
    """Find a version by number (``3`` or ``v3``), tag, version id (or a unique prefix of
    at least 4 hex chars), or the head when ``ref`` is None, ``head`` or ``latest``.

    Raises:
        NotFound: no such dataset or version, or the dataset has no version yet.
    """
    ds = get_dataset(store, name)
    base = f"SELECT {_V_COLS} FROM versions v JOIN datasets d USING (dataset_id) WHERE v.dataset_id = ? "
    conn = store.conn
    if ref is None or str(ref) in ("head", "latest", "HEAD"):
        if ds.head == 0:
            raise NotFound(f"dataset '{name}' has no versions yet")
        r = conn.execute(base + "AND v.number = ?", [ds.dataset_id, ds.head]).fetchone()
        return _version_from_row(store, r)
    s = str(ref)
    num = s[1:] if s[:1] in ("v", "V") and s[1:].isdigit() else s
    if num.isdigit():
        r = conn.execute(base + "AND v.number = ?", [ds.dataset_id, int(num)]).fetchone()
        if r:
            return _version_from_row(store, r)
    r = conn.execute(base + "AND v.version_id = (SELECT version_id FROM tags WHERE dataset_id = ? AND tag = ?)",
                     [ds.dataset_id, ds.dataset_id, s]).fetchone()
    if r:
        return _version_from_row(store, r)
    if len(s) >= 4:
        rs = conn.execute(base + "AND starts_with(v.version_id, ?)", [ds.dataset_id, s.lower()]).fetchall()
        if len(rs) == 1:
            return _version_from_row(store, rs[0])
        if len(rs) > 1:
            raise NotFound(f"version id prefix '{s}' is ambiguous in dataset '{name}'")
    raise NotFound(f"dataset '{name}' has no version '{s}' (give a number, a tag or a version id)")


def _sum_hex(hashes) -> int:
    return sum(int(h, 16) for h in hashes)


#: Called inside every commit's transaction, after the version row is written:
#: ``hook(conn, ds: Dataset, version_number: int, changed: dict)`` with ``changed`` =
#: ``{"updated": [sample ids], "removed": [sample ids], "added": int, "operation": dict|None}``.
#: For writes that must land with the version (e.g. marking annotations of changed samples
#: stale). A hook that raises rolls the commit back.
IN_COMMIT_HOOKS: list = []
#: Called after a commit's transaction succeeded: ``hook(store, version: Version)``; for
#: follow-up work that must not slow or endanger the commit (e.g. scheduling the validation
#: gate). Exceptions are logged, never raised.
AFTER_COMMIT_HOOKS: list = []


def commit(store, name: str, *, author: str, message: str,
           add: list[dict] | pa.Table | None = None,
           update: dict[int, dict] | None = None,
           remove: list[int] | None = None,
           operation: dict | None = None,
           reinstate: dict[int, dict] | None = None,
           create: bool = False, kind: str = "sft",
           allow_empty: bool = False, on_commit=None) -> Version:
    """Commit a new version of dataset ``name`` from its head.

    Args:
        add: new samples as stored rows (``Sample.to_row()``), an Arrow table with
            :data:`samples.ARROW_SCHEMA` (``row_hash`` filled in), or :class:`Staged`
            rows (a temp table from ``ingest.py``, ordered by ``source_row``).
        update: ``{sample_id: stored row}`` replacing those samples; a row whose hash is
            unchanged is ignored.
        remove: sample ids to drop.
        operation: machine-readable description (e.g. ``{"op": "import", "file": ...}``).
        reinstate: ``{sample_id: stored row}`` bringing back samples of this dataset that
            are not in the head (a revert, or a filter of an older version): they keep
            their ids, so diffs and annotations still line up. Counted as added.
        create: create the dataset (of ``kind``) if it does not exist.
        allow_empty: commit even if nothing changed.
        on_commit: ``f(conn, dataset)`` called inside the same transaction, for writes
            that must land together with the version (quarantine rows, adjudications).

    Cost is proportional to ``len(add) + len(update) + len(remove)``: closing changed
    revisions touches only their rows; the content hash is updated incrementally.
    Runs in one transaction: on any error nothing is written.

    Raises:
        NotFound: dataset missing (and ``create`` false) or an id to update/remove is not
            in the head version.
        Conflict: an id to reinstate is in the head version or was never in the dataset.
        Conflict: nothing changed and ``allow_empty`` is false.
    """
    conn = store.conn
    with store.transaction():
        try:
            ds = get_dataset(store, name)
        except NotFound:
            if not create:
                raise
            ds = create_dataset(store, name, user=author, kind=kind)
        head = resolve(store, name) if ds.head else None
        n = ds.head + 1
        hsum = int(head.hash_sum, 16) if head else 0
        count = head.n_samples if head else 0

        # ----- removals and updates: close the current revisions
        update = dict(update or {})
        remove = sorted(set(remove or []))
        touched = sorted(set(remove) | set(update))
        old_hash: dict[int, str] = {}
        if touched:
            old_hash = dict(conn.execute(
                "SELECT sample_id, row_hash FROM samples WHERE dataset_id = ? AND valid_to = ? "
                "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [ds.dataset_id, OPEN_END, touched]).fetchall())
            missing = [i for i in touched if i not in old_hash]
            if missing:
                raise NotFound(f"dataset '{name}' has no sample(s) {missing[:10]} in its head version")
            # drop no-op updates
            for sid, row in list(update.items()):
                if row["row_hash"] == old_hash[sid] and sid not in remove:
                    del update[sid]
            closing = sorted(set(remove) | set(update))
            if closing:
                conn.execute(
                    "UPDATE samples SET valid_to = ? WHERE dataset_id = ? AND valid_to = ? "
                    "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [n, ds.dataset_id, OPEN_END, closing])
        for sid in remove:
            hsum -= int(old_hash[sid], 16)
            count -= 1
        new_tables = []
        if update:
            rows = []
            for sid, row in update.items():
                hsum += int(row["row_hash"], 16) - int(old_hash[sid], 16)
                rows.append(row)
            t = rows_to_arrow(rows)
            new_tables.append(t.append_column("sample_id", pa.array(list(update), pa.int64())))

        # ----- reinstated samples: same ids, new revisions
        reinstate = dict(reinstate or {})
        if reinstate:
            rids = sorted(reinstate)
            clash = [r[0] for r in conn.execute(
                "SELECT sample_id FROM samples WHERE dataset_id = ? AND valid_to = ? "
                "AND sample_id IN (SELECT unnest(?::BIGINT[]))", [ds.dataset_id, OPEN_END, rids]).fetchall()]
            nxt = conn.execute("SELECT next_sample_id FROM datasets WHERE dataset_id = ?",
                               [ds.dataset_id]).fetchall()[0][0]
            if clash or rids[0] < 1 or rids[-1] >= nxt:
                raise Conflict(f"cannot reinstate sample(s) {(clash or [i for i in rids if i < 1 or i >= nxt])[:10]} "
                               f"in '{name}': in the head already or never in this dataset")
            rows = list(reinstate.values())
            for row in rows:
                hsum += int(row["row_hash"], 16)
            count += len(rows)
            t = rows_to_arrow(rows)
            new_tables.append(t.append_column("sample_id", pa.array(list(reinstate), pa.int64())))

        # ----- additions
        n_added = 0
        if isinstance(add, Staged):
            # rows not yet hashed in Python: insert straight from the staged SELECT, then
            # sum the new revisions' hashes in SQL (ingest.py)
            from .ingest import inserted_hash_sum
            n_added = add.count
            if n_added:
                first = conn.execute("SELECT next_sample_id FROM datasets WHERE dataset_id = ?",
                                     [ds.dataset_id]).fetchall()[0][0]
                cols = ", ".join(c if c != "source_row" else "source_row_" for c in arrow_schema().names)
                conn.execute(
                    f"INSERT INTO samples (dataset_id, sample_id, valid_from, valid_to, {', '.join(arrow_schema().names)}) "
                    f"SELECT ?, ? + source_row - 1, ?, ?, {cols} FROM ({add.sql})",
                    [ds.dataset_id, first, n, OPEN_END, *add.params])
                conn.execute("UPDATE datasets SET next_sample_id = ? WHERE dataset_id = ?",
                             [first + n_added, ds.dataset_id])
                hsum += inserted_hash_sum(conn, ds.dataset_id, n)
                count += n_added
            for view in add.registered:
                conn.unregister(view)
        elif add is not None:
            t = add if isinstance(add, pa.Table) else rows_to_arrow(add)
            t = t.select(arrow_schema().names).cast(arrow_schema())
            n_added = t.num_rows
            if n_added:
                first = conn.execute("SELECT next_sample_id FROM datasets WHERE dataset_id = ?",
                                     [ds.dataset_id]).fetchone()[0]
                ids = pa.array(range(first, first + n_added), pa.int64())
                new_tables.append(t.append_column("sample_id", ids))
                conn.execute("UPDATE datasets SET next_sample_id = ? WHERE dataset_id = ?",
                             [first + n_added, ds.dataset_id])
                hsum += _sum_hex(t.column("row_hash").to_pylist())
                count += n_added
        n_added += len(reinstate)
        if not (n_added or update or remove) and not allow_empty:
            raise Conflict(f"nothing to commit: dataset '{name}' would be unchanged")
        cols = ", ".join(arrow_schema().names)
        for t in new_tables:
            register(conn, "_new", t)
            conn.execute(f"INSERT INTO samples (dataset_id, sample_id, valid_from, valid_to, {cols}) "
                         f"SELECT ?, sample_id, ?, ?, {cols} FROM _new", [ds.dataset_id, n, OPEN_END])
            conn.unregister("_new")
        hsum %= MOD
        vid = secrets.token_hex(6)
        conn.execute(
            "INSERT INTO versions (version_id, dataset_id, number, parent_id, author, message, created_at, "
            "content_hash, hash_sum, n_samples, n_added, n_removed, n_modified, operation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [vid, ds.dataset_id, n, head.version_id if head else None, author, message, audit.now(),
             content_hash(hsum, count), f"{hsum:064x}", count, n_added, len(remove), len(update),
             json.dumps(operation, ensure_ascii=False, default=str) if operation else None])
        conn.execute("UPDATE datasets SET head = ? WHERE dataset_id = ?", [n, ds.dataset_id])
        if on_commit is not None:
            on_commit(conn, ds)
        changed = {"updated": sorted(update), "removed": remove, "added": n_added, "operation": operation,
                   "reinstated": sorted(reinstate)}
        for hook in IN_COMMIT_HOOKS:
            hook(conn, ds, n, changed)
        audit.record(conn, author, "version.commit", f"{name}@v{n}",
                     {"version_id": vid, "message": message, "added": n_added, "removed": len(remove),
                      "modified": len(update), "operation": operation})
    version = resolve(store, name, n)
    for hook in AFTER_COMMIT_HOOKS:
        try:
            hook(store, version)
        except Exception:  # follow-up work must never turn a durable commit into an error
            import logging
            logging.getLogger("workbench.datastore").exception("after-commit hook %r failed", hook)
    return version


# ---------------------------------------------------------------- reading
def _visible(alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return f"{p}dataset_id = ? AND {p}valid_from <= ? AND {p}valid_to > ?"


def read_page(store, version: Version, *, after_id: int = 0, limit: int = 50) -> list[Sample]:
    """Up to ``limit`` samples of ``version`` with ``sample_id > after_id``, by id.

    Keyset paging (``WHERE sample_id > last``), never OFFSET: a deep OFFSET costs a scan
    of everything before it (docs/architecture.md section 2).
    """
    rows = store.conn.execute(
        f"SELECT {SAMPLE_SELECT} FROM samples WHERE {_visible()} AND sample_id > ? "
        "ORDER BY sample_id LIMIT ?",
        [version.dataset_id, version.number, version.number, after_id, limit]).fetchall()
    return [Sample.from_row(dict(zip(_SAMPLE_COLS, r))) for r in rows]


def get_samples(store, version: Version, sample_ids: list[int]) -> list[Sample]:
    """The given samples as they are in ``version`` (ids not in it are skipped)."""
    if not sample_ids:
        return []
    register(store.conn, "_ids", pa.table({"sample_id": pa.array(sorted(set(sample_ids)), pa.int64())}))
    try:
        rows = store.conn.execute(
            f"SELECT {', '.join('s.' + c for c in _SAMPLE_COLS)} FROM samples s JOIN _ids USING (sample_id) "
            f"WHERE {_visible('s')} ORDER BY s.sample_id",
            [version.dataset_id, version.number, version.number]).fetchall()
    finally:
        store.conn.unregister("_ids")
    return [Sample.from_row(dict(zip(_SAMPLE_COLS, r))) for r in rows]


def iter_samples(store, version: Version, *, batch: int = 5000) -> Iterator[Sample]:
    """Every sample of ``version`` in id order, read in keyset pages of ``batch``."""
    last = 0
    while True:
        page = read_page(store, version, after_id=last, limit=batch)
        if not page:
            return
        yield from page
        last = page[-1].sample_id


def read_arrow(store, version: Version) -> pa.Table:
    """The whole version as an Arrow table (for export and bulk stages), ordered by id."""
    return store.conn.execute(
        f"SELECT {SAMPLE_SELECT} FROM samples WHERE {_visible()} ORDER BY sample_id",
        [version.dataset_id, version.number, version.number]).to_arrow_table()


def stats(store, version: Version) -> dict:
    """Counts for a version: samples, by kind, by task type, with/without input, trainable."""
    conn = store.conn
    p = [version.dataset_id, version.number, version.number]
    by_kind = dict(conn.execute(f"SELECT kind, count(*) FROM samples WHERE {_visible()} GROUP BY kind", p).fetchall())
    by_task = dict(conn.execute(
        f"SELECT coalesce(task_type, '(none)'), count(*) FROM samples WHERE {_visible()} GROUP BY 1 ORDER BY 2 DESC", p).fetchall())
    conv = conn.execute(
        f"SELECT count(*) FILTER (WHERE json_extract_string(messages, '$[#-1].role') = 'user'), "
        f"count(*) FILTER (WHERE json_extract_string(messages, '$[0].role') = 'assistant'), "
        f"avg(json_array_length(messages)) "
        f"FROM samples WHERE {_visible()} AND kind = 'conversation'", p).fetchall()[0]
    by_source = dict(conn.execute(
        f"SELECT coalesce(source, '(none)'), count(*) FROM samples WHERE {_visible()} GROUP BY 1 ORDER BY 2 DESC LIMIT 20", p).fetchall())
    lengths = conn.execute(
        f"SELECT avg(length(output)) FILTER (WHERE kind = 'instruction'), "
        f"median(length(output)) FILTER (WHERE kind = 'instruction'), "
        f"count(*) FILTER (WHERE kind = 'instruction' AND (input IS NULL OR trim(input) = '')), "
        f"count(*) FILTER (WHERE kind = 'instruction' AND output IS NULL) "
        f"FROM samples WHERE {_visible()}", p).fetchone()
    return {"dataset": version.dataset, "version": version.number, "version_id": version.version_id,
            "content_hash": version.content_hash, "samples": version.n_samples, "by_kind": by_kind,
            "by_task_type": by_task, "by_source": by_source,
            "instruction_output_chars_mean": round(lengths[0] or 0, 1),
            "instruction_output_chars_median": lengths[1] or 0,
            "instructions_without_input": lengths[2], "prompt_only_instructions": lengths[3],
            "prompt_only_conversations": conv[0], "conversations_starting_with_assistant": conv[1],
            "turns_per_conversation_mean": round(conv[2] or 0, 2)}


def diff(store, name: str, a: str | int | None, b: str | int | None) -> Diff:
    """Row-level diff of version ``b`` against ``a``: added, removed, modified sample ids.

    Modified means the same sample id with a different content hash.
    """
    va, vb = resolve(store, name, a), resolve(store, name, b)
    p = [va.dataset_id, va.number, va.number, vb.dataset_id, vb.number, vb.number]
    rows = store.conn.execute(
        f"""WITH a AS (SELECT sample_id, row_hash FROM samples WHERE {_visible()}),
                 b AS (SELECT sample_id, row_hash FROM samples WHERE {_visible()})
            SELECT coalesce(a.sample_id, b.sample_id) AS sid,
                   CASE WHEN a.sample_id IS NULL THEN 'added' WHEN b.sample_id IS NULL THEN 'removed'
                        ELSE 'modified' END AS change
            FROM a FULL OUTER JOIN b ON a.sample_id = b.sample_id
            WHERE a.row_hash IS DISTINCT FROM b.row_hash ORDER BY sid""", p).fetchall()
    out: dict[str, list[int]] = {"added": [], "removed": [], "modified": []}
    for sid, change in rows:
        out[change].append(sid)
    return Diff(va, vb, **out)


def tag(store, name: str, tag_name: str, ref: str | int | None, *, user: str, force: bool = False) -> Version:
    """Point ``tag_name`` at a version. Tags that look like a version number are refused,
    so a number always means a number.

    Raises:
        Conflict: the tag already names another version and ``force`` is false (a tag is
            how runs and exports name data; moving it silently would change what it means).
    """
    if not tag_name or tag_name.isdigit() or (tag_name[:1] in "vV" and tag_name[1:].isdigit()):
        raise WorkbenchError(f"tag '{tag_name}' is not allowed: it would read as a version number")
    v = resolve(store, name, ref)
    ds = get_dataset(store, name)
    cur = store.conn.execute(
        "SELECT v.number, v.version_id FROM tags t JOIN versions v USING (version_id) "
        "WHERE t.dataset_id = ? AND t.tag = ?", [ds.dataset_id, tag_name]).fetchall()
    if cur and cur[0][1] != v.version_id and not force:
        raise Conflict(f"tag '{tag_name}' already names {name} v{cur[0][0]}; pass --force to move it to v{v.number}")
    with store.transaction():
        store.conn.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?, ?)",
                           [v.dataset_id, tag_name, v.version_id, user, audit.now()])
        audit.record(store.conn, user, "version.tag", f"{name}@v{v.number}", {"tag": tag_name})
    return resolve(store, name, v.number)
