"""Purge samples from every version (personal data, a takedown request).

Order, so that a failure never leaves text behind unnoticed:

1. Find the targets (the given samples and their copies in other datasets: same content
   hash, or lineage naming one of them as parent), their texts, the versions holding
   them, and the runs whose run card pins one of those versions.
2. Scrub the workspace's files (run folders, exports, jobs; everything but the DuckDB
   file): records holding a purged text are dropped from JSON, JSON Lines, CSV, Parquet
   and Hugging Face ``datasets`` folders; in other text files the text is replaced by
   ``[purged]``. Affected runs get a ``PURGED.json`` marker. Files that cannot be rewritten
   (binary) but hold the text are reported.
3. In one transaction: delete the revisions, recompute each affected version's content
   hash and counts (amending its log), write tombstones (id, who, when, why), flag the
   runs, scrub other tables, audit. Then rewrite the DuckDB file so no freed block keeps
   the text (``Store.rewrite_file``).
4. Check: every file in the workspace is searched again for the texts; what remains is
   in the report (``residual``).

The texts themselves are never stored; a purge can be re-run if it stopped half way.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from datastore import Store, WorkbenchError
from datastore import governance as G
from datastore import versions as V
from datastore.store import DB_NAME
from pipelines.policy import require

MARKER_FILE = "PURGED.json"
TEXT_SUFFIXES = {".md", ".txt", ".log", ".yaml", ".yml", ".jinja", ".j2", ".html", ".py", ".cfg", ".ini", ".toml"}


@dataclass
class PurgeReport:
    purge_id: str
    samples: list[str]
    revisions: int
    versions: list[dict]
    runs_flagged: list[str]
    files_scrubbed: list[str]
    unscrubbable: list[str]
    tables_scrubbed: dict
    residual: list[str] = field(default_factory=list)
    texts: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------- files
def _contains_any(data: str, forms: list[str]) -> bool:
    return any(f in data for f in forms)


def _scrub_json_value(value, forms):
    """Records (dicts) holding a form are dropped from lists; strings get the mark."""
    if isinstance(value, str):
        for f in forms:
            if f in value:
                value = value.replace(f, G.PURGED_MARK)
        return value
    if isinstance(value, list):
        out = []
        for x in value:
            if isinstance(x, dict) and _contains_any(json.dumps(x, ensure_ascii=False), forms):
                continue
            out.append(_scrub_json_value(x, forms))
        return out
    if isinstance(value, dict):
        return {k: _scrub_json_value(v, forms) for k, v in value.items()}
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".purge-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _scrub_nested_parquet(path: Path, t, forms: list[str]) -> bool:
    """Rows whose nested values (lists, structs: e.g. ShareGPT conversations) hold a form."""
    rows = t.to_pylist()
    keep = [i for i, r in enumerate(rows) if not _contains_any(json.dumps(r, ensure_ascii=False, default=str), forms)]
    if len(keep) == len(rows):
        return False
    import pyarrow.parquet as pq
    t = t.take(keep)
    buf = io.BytesIO()
    pq.write_table(t, buf)
    _write_atomic(path, buf.getvalue())
    return True


def _scrub_hf_folder(folder: Path, forms: list[str]) -> bool:
    from datasets import load_from_disk
    ds = load_from_disk(str(folder))
    def bad(rec):
        return _contains_any(json.dumps(rec, ensure_ascii=False, default=str), forms)
    keep = [i for i, r in enumerate(ds) if not bad(r)]
    if len(keep) == len(ds):
        return False
    kept = ds.select(keep).flatten_indices()
    tmp = folder.with_name(folder.name + ".purge-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    kept.save_to_disk(str(tmp))
    del ds, kept
    shutil.rmtree(folder)
    os.replace(tmp, folder)
    return True


def _scrub_file(path: Path, forms: list[str]) -> bool | None:
    """True if rewritten, False if it held nothing, None if it holds a form but cannot be
    rewritten (binary)."""
    raw = path.read_bytes()
    if raw[:4] == b"PAR1":   # compressed pages: look at the rows, not the bytes
        import pyarrow.parquet as pq
        return _scrub_nested_parquet(path, pq.read_table(path), forms)
    if not _bytes_hold(raw, forms):
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    suf = path.suffix.lower()
    if suf == ".jsonl" or (suf != ".json" and text.lstrip().startswith("{") and "\n{" in text):
        lines = [ln for ln in text.splitlines(keepends=True) if not _contains_any(ln, forms)]
        _write_atomic(path, "".join(lines).encode("utf-8"))
        return True
    if suf == ".json":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if value is not None:
            _write_atomic(path, (json.dumps(_scrub_json_value(value, forms), ensure_ascii=False, indent=2)
                                 + "\n").encode("utf-8"))
            return True
    if suf == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        out = io.StringIO(newline="")
        w = csv.writer(out)
        for i, r in enumerate(rows):
            if i and _contains_any(",".join(r), forms):
                continue
            w.writerow(r)
        _write_atomic(path, out.getvalue().encode("utf-8"))
        return True
    for f in forms:
        text = text.replace(f, G.PURGED_MARK)
    _write_atomic(path, text.encode("utf-8"))
    return True


def _bytes_hold(data: bytes, forms: list[str]) -> bool:
    return any(f.encode("utf-8") in data for f in forms)


def _hf_folders(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("state.json") if (p.parent / "dataset_info.json").exists()})


def workspace_files(ws: Path) -> list[Path]:
    """Every file of the workspace folder except the DuckDB file itself (and its WAL)."""
    skip = {ws / DB_NAME, ws / (DB_NAME + ".wal")}
    return sorted(p for p in ws.rglob("*") if p.is_file() and p not in skip)


def scrub_files(ws: Path, forms: list[str]) -> tuple[list[str], list[str]]:
    """Scrub ``forms`` from every workspace file; returns ``(rewritten, unscrubbable)``
    as paths relative to the workspace."""
    rewritten, stuck = [], []
    hf = _hf_folders(ws)
    for folder in hf:
        holds = any(_bytes_hold(p.read_bytes(), forms) for p in folder.rglob("*.arrow"))
        if holds and _scrub_hf_folder(folder, forms):
            rewritten.append(str(folder.relative_to(ws)))
    for p in workspace_files(ws):
        if any(f in p.parents for f in hf) and p.suffix == ".arrow":
            continue
        try:
            r = _scrub_file(p, forms)
        except Exception as e:  # noqa: BLE001 - reported, the purge goes on
            r = None
            stuck.append(f"{p.relative_to(ws)} ({type(e).__name__}: {e})")
            continue
        if r:
            rewritten.append(str(p.relative_to(ws)))
        elif r is None:
            stuck.append(str(p.relative_to(ws)))
    return rewritten, stuck


def residual_files(ws: Path, forms: list[str]) -> list[str]:
    """Workspace files (the DuckDB file included) whose bytes still hold a form."""
    out = []
    for p in sorted(x for x in ws.rglob("*") if x.is_file()):
        data = p.read_bytes()
        if _bytes_hold(data, forms) or (data[:4] == b"PAR1" and _parquet_holds(p, forms)):
            out.append(str(p.relative_to(ws)))
    return out


def _parquet_holds(path: Path, forms: list[str]) -> bool:
    import pyarrow.parquet as pq
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception:  # noqa: BLE001 - not readable as Parquet: the byte check stands
        return False
    return any(_contains_any(json.dumps(r, ensure_ascii=False, default=str), forms) for r in rows)


# ---------------------------------------------------------------- runs
def runs_pinning(ws: Path, versions: list[dict]) -> list[tuple[Path, dict]]:
    """Run folders (``runs/*``) whose ``run_card.json`` or ``train_config.json`` names one of
    ``versions`` (by version id or content hash); with the matching version."""
    ids = {v["version_id"]: v for v in versions}
    hashes = {v["content_hash"]: v for v in versions if v.get("content_hash")}
    out = []
    runs = ws / "runs"
    if not runs.is_dir():
        return out
    for d in sorted(p for p in runs.iterdir() if p.is_dir()):
        refs = []
        for name in ("run_card.json", "train_config.json"):
            f = d / name
            if f.is_file():
                try:
                    data = json.loads(f.read_text(encoding="utf-8"))
                except ValueError:
                    continue
                refs += list(data.get("datasets") or []) + list((data.get("config") or {}).get("datasets") or [])
        for r in refs:
            if not isinstance(r, dict):
                continue
            hit = ids.get(str(r.get("version_id"))) or hashes.get(str(r.get("content_hash")))
            if hit:
                out.append((d, hit))
                break
    return out


# ---------------------------------------------------------------- service
def _targets(st, dataset: str, sample_ids: list[int], copies: bool):
    ds = V.get_dataset(st, dataset)
    targets = G.find_targets(st.conn, ds.dataset_id, sample_ids, copies=copies)
    missing = sorted(set(sample_ids) - {t["sample_id"] for t in targets if t["dataset"] == dataset})
    if missing:
        raise WorkbenchError(f"dataset '{dataset}' has no sample(s) {missing[:10]} in any version")
    return targets


def plan_purge(workspace: str | Path, dataset: str, sample_ids: list[int], *, user: str,
               copies: bool = True) -> dict:
    """What a purge would remove, without doing it: ``{"samples": ["ds#id", ...],
    "versions": [...], "runs": [run folder names], "files": [files holding the text]}``."""
    ws = Path(workspace)
    with Store(ws, create=False) as st:
        require(st, user, "purge_samples", dataset)
        targets = _targets(st, dataset, sample_ids, copies)
        forms = G.needles(G.target_texts(st.conn, targets))
        versions = G.versions_holding(st.conn, targets)
    files = [f for f in residual_files(ws, forms) if f not in (DB_NAME, DB_NAME + ".wal")] if forms else []
    return {"samples": [f"{t['dataset']}#{t['sample_id']}" for t in targets],
            "versions": [f"{v['dataset']}@v{v['number']}" for v in versions],
            "runs": [d.name for d, _ in runs_pinning(ws, versions)], "files": files}


def purge_samples(workspace: str | Path, dataset: str, sample_ids: list[int], *, user: str, reason: str,
                  copies: bool = True) -> PurgeReport:
    """Purge ``sample_ids`` of ``dataset`` (and, with ``copies``, their copies) from every
    version, every table and every workspace file (see the module docstring).

    Raises:
        PermissionDenied: ``user`` may not purge samples (admins only).
        WorkbenchError: no reason given, or an id not in the dataset.
    """
    if not reason or not reason.strip():
        raise WorkbenchError("a purge needs a reason (it is kept in the tombstone)")
    if not sample_ids:
        raise WorkbenchError("no sample ids to purge")
    ws = Path(workspace)
    purge_id = secrets.token_hex(6)
    with Store(ws, create=False) as st:
        name, _ = require(st, user, "purge_samples", dataset)
        targets = _targets(st, dataset, sample_ids, copies)
        texts = G.target_texts(st.conn, targets)
        versions = G.versions_holding(st.conn, targets)
    forms = G.needles(texts)
    # 2. files first: if anything below fails, the purge can simply be run again
    rewritten, stuck = scrub_files(ws, forms) if forms else ([], [])
    runs = runs_pinning(ws, versions)
    for d, v in runs:
        marker = {"purge_id": purge_id, "flagged_at": __import__("datetime").datetime.now(
                      __import__("datetime").timezone.utc).isoformat(timespec="seconds"),
                  "dataset": v["dataset"], "version": v["number"], "version_id": v["version_id"],
                  "note": f"this run trained on {v['dataset']} v{v['number']}, from which samples were purged; "
                          "its pinned content hash no longer matches and the data it saw included purged text"}
        prev = []
        if (d / MARKER_FILE).is_file():
            try:
                prev = json.loads((d / MARKER_FILE).read_text(encoding="utf-8"))
            except ValueError:
                prev = []
        (d / MARKER_FILE).write_text(json.dumps([*(prev if isinstance(prev, list) else [prev]), marker], indent=2)
                                     + "\n", encoding="utf-8")
    # 3. the store, in one transaction; then a fresh file
    with Store(ws, create=False) as st:
        with st.transaction():
            res = G.purge(st.conn, targets, texts, user=name, reason=reason.strip(), purge_id=purge_id)
            for d, v in runs:
                G.flag_run(st.conn, run_id=d.name, run_dir=str(d), purge_id=purge_id, dataset=v["dataset"],
                           version_id=v["version_id"], note=f"trained on {v['dataset']} v{v['number']}")
            G.set_purge_files(st.conn, purge_id, {"scrubbed": rewritten, "unscrubbable": stuck,
                                                  "runs_flagged": [d.name for d, _ in runs]})
        st.rewrite_file()
    residual = residual_files(ws, forms) if forms else []
    return PurgeReport(purge_id=purge_id, samples=[f"{t['dataset']}#{t['sample_id']}" for t in targets],
                       revisions=res["revisions"], versions=res["versions"], runs_flagged=[d.name for d, _ in runs],
                       files_scrubbed=rewritten, unscrubbable=stuck, tables_scrubbed=res["scrubbed"],
                       residual=residual, texts=len(texts))


def tombstones(workspace: str | Path, dataset: str | None = None, *, user: str) -> list[dict]:
    with Store(workspace, create=False) as st:
        require(st, user, "read_datasets")
        return G.tombstones(st, dataset)


def flagged_runs(workspace: str | Path, *, user: str) -> list[dict]:
    with Store(workspace, create=False) as st:
        require(st, user, "read_datasets")
        return G.flagged_runs(st)
