"""Training data: pin dataset versions, export them into the run folder, split, mix, tokenize, pack.

The run folder is what the training process reads; it never opens the workspace store
(docs/architecture.md section 2, one writer). :func:`export_versions` writes
``run_dir/data/<dataset>-v<N>.parquet`` with the stored sample rows (``Sample.to_row()`` columns
plus ``sample_id``) and ``run_dir/data/manifest.json``; :func:`load_exported` reads them back and
recomputes each version's content hash from the rows (``datastore.samples.row_hash`` and the
multiset sum of ``datastore.versions.content_hash``), so a run can prove it trained on exactly the
pinned version.

Split: a sample goes to evaluation when ``sha256(f"{seed}:{row_hash}")`` falls below
``eval_ratio`` of the hash space. Hashing the content rather than shuffling positions keeps a
sample on the same side of the split across versions (an edited sample is a new sample), so the
held-out set of v3 does not leak into v4's training set. At least one sample is held out when
``eval_ratio > 0`` and the version has two or more samples.

Packing without attention between samples: :func:`pack` bins tokenized samples into rows of at
most ``max_length_tokens`` (first-fit decreasing, the usual bin-packing heuristic; Krell et al.
2021 report it within 1% of optimal for sequence packing) and :class:`Collator` flattens a batch
into one row whose ``position_ids`` restart at 0 for each sample and passes no attention mask;
transformers then builds a block-diagonal causal mask from the position ids
(``masking_utils.find_packed_sequence_indices``), so no token attends across samples.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from datastore.errors import Conflict, WorkbenchError

MANIFEST = "manifest.json"
IGNORE = -100


# ---------------------------------------------------------------- pin and export
def pin_versions(workspace, refs) -> list:
    """Resolve each :class:`DatasetRef` to one immutable version (number, id, content hash).

    Raises:
        NotFound: unknown dataset or version. Conflict: a given ``content_hash`` differs from the
        version's (the data changed since the config was written). WorkbenchError: no dataset.
    """
    from datastore import Store
    from datastore import versions as V

    if not refs:
        raise WorkbenchError("a training run needs at least one dataset version (config 'datasets')")
    out = []
    with Store(workspace) as st:
        for r in refs:
            ref = r.version if r.version is not None else r.version_number
            if ref is None and r.version_id is not None:
                ref = str(r.version_id)
            v = V.resolve(st, r.dataset, ref)
            if r.content_hash and r.content_hash != v.content_hash:
                raise Conflict(f"dataset '{r.dataset}' v{v.number} has content hash {v.content_hash[:12]}, "
                               f"not the pinned {r.content_hash[:12]}: the config pins other data")
            out.append(r.model_copy(update={"version_number": v.number, "version_id": v.version_id,
                                            "content_hash": v.content_hash}))
    return out


def export_file(run_dir: Path, ref) -> Path:
    return Path(run_dir) / "data" / f"{ref.dataset}-v{ref.version_number}.parquet"


def export_versions(workspace, refs, run_dir: str | Path) -> dict:
    """Write each pinned version as Parquet into ``run_dir/data`` plus ``manifest.json``.

    Returns the manifest ``{"datasets": [{"dataset", "version_number", "version_id",
    "content_hash", "weight", "file", "samples"}]}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datastore import Store
    from datastore import versions as V

    run_dir = Path(run_dir)
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    entries = []
    with Store(workspace) as st:
        for r in refs:
            v = V.resolve(st, r.dataset, r.version_number)
            rows = []
            for s in V.iter_samples(st, v):
                row = s.to_row()
                row["sample_id"] = s.sample_id
                rows.append(row)
            path = export_file(run_dir, r)
            tmp = path.with_name(path.name + ".partial")
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            tmp.replace(path)
            entries.append({"dataset": r.dataset, "version_number": v.number, "version_id": v.version_id,
                            "content_hash": v.content_hash, "weight": r.weight, "file": path.name,
                            "samples": len(rows)})
    manifest = {"datasets": entries}
    (run_dir / "data" / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def rows_content_hash(rows: list[dict]) -> str:
    """A version's content hash recomputed from its rows (same rule as ``datastore.versions``)."""
    from datastore import versions as V
    from datastore.samples import row_hash

    hashes = [row_hash({k: v for k, v in r.items() if k not in ("sample_id", "row_hash")}) for r in rows]
    return V.content_hash(sum(int(h, 16) for h in hashes) % (1 << 256), len(hashes))  # multiset sum mod 2^256


@dataclass
class VersionData:
    """One exported version: its manifest entry and its samples (``datastore.Sample``)."""

    entry: dict
    samples: list


def load_exported(run_dir: str | Path, *, verify: bool = True) -> list[VersionData]:
    """Read ``run_dir/data`` back. With ``verify`` the content hash is recomputed from the rows.

    Raises:
        WorkbenchError: no export in the run folder, or a file whose content does not hash to the
        pinned version's hash (edited or truncated after export).
    """
    import pyarrow.parquet as pq

    from datastore import Sample

    d = Path(run_dir) / "data"
    if not (d / MANIFEST).exists():
        raise WorkbenchError(f"{run_dir}: no exported data ({d / MANIFEST} is missing)")
    manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    out = []
    for e in manifest["datasets"]:
        rows = pq.read_table(d / e["file"]).to_pylist()
        if verify:
            h = rows_content_hash(rows)
            if h != e["content_hash"]:
                raise WorkbenchError(f"{d / e['file']}: content hash {h[:12]} differs from the pinned "
                                     f"{e['content_hash'][:12]} of {e['dataset']} v{e['version_number']}")
        samples = []
        for r in rows:
            sid = r.pop("sample_id")
            s = Sample.from_row(r)
            s.sample_id = sid
            samples.append(s)
        out.append(VersionData(e, samples))
    return out


# ---------------------------------------------------------------- split and mix
def _split_key(seed: int, row_hash: str) -> float:
    h = hashlib.sha256(f"{seed}:{row_hash}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def split(samples: list, eval_ratio: float, seed: int) -> tuple[list, list]:
    """Deterministic train/eval split by content hash (see the module doc). Order is kept."""
    if eval_ratio <= 0 or len(samples) < 2:
        return list(samples), []
    keys = [_split_key(seed, s.row_hash or s.to_row()["row_hash"]) for s in samples]
    held = {i for i, k in enumerate(keys) if k < eval_ratio}
    if not held:
        held = {min(range(len(keys)), key=keys.__getitem__)}
    if len(held) == len(samples):
        held.discard(max(held, key=keys.__getitem__))
    return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])


def mix(parts: list[tuple[float | None, list]], seed: int) -> list:
    """A training mixture of several versions' training samples.

    ``parts``: ``[(weight, items)]``. When every weight is None the items are concatenated as they
    are. Otherwise dataset ``i`` contributes ``round(w_i / sum(w) * N)`` items, ``N`` the total
    count (missing weights count as 1.0): fewer than it has by a seeded sample without replacement,
    more by whole repeats plus a seeded sample (upsampling), as in T5's and FLAN's mixing by rate.
    """
    if all(w is None for w, _ in parts):
        return [x for _, items in parts for x in items]
    weights = [1.0 if w is None else float(w) for w, _ in parts]
    total_n = sum(len(items) for _, items in parts)
    rng = random.Random(seed)
    out = []
    for w, (_, items) in zip(weights, parts):
        if not items:
            continue
        n = round(w / sum(weights) * total_n)
        reps, rest = divmod(n, len(items))
        out.extend(list(items) * reps)
        out.extend(rng.sample(list(items), rest))
    return out


# ---------------------------------------------------------------- tokenize and pack
def tokenize(tokenizer, conversations: list, template, max_length_tokens: int, *,
             assistant_only: bool = True, train_on_reasoning: bool = True) -> tuple[list[dict], dict]:
    """``{"input_ids", "labels"}`` rows, one per conversation: a sample, a
    :class:`pipelines.render.TemplateInput` or a list of messages, each rendered through
    :func:`pipelines.render.template_input` (its tools, documents and the special tokens of the
    tokenizer and the template). ``assistant_only``: labels -100 outside assistant turns
    (the render stage's masks, multi-turn included: every assistant turn, its tool calls included,
    is a target; tool results, tool schemas and system text are not); otherwise every token is a
    target. ``train_on_reasoning=False``: the reasoning the template writes is not a target either
    (:func:`pipelines.render.render_with_mask`). Truncated to ``max_length_tokens`` keeping the start; samples left
    with no target token are dropped. Returns ``(rows, stats)``."""
    from pipelines.render import render_with_mask, template_input

    rows, stats = [], {"conversations": len(conversations), "no_assistant": 0, "truncated": 0,
                       "tokens": 0, "loss_tokens": 0}
    for conv in conversations:
        ids, labels = render_with_mask(tokenizer, template_input(conv, template, tokenizer=tokenizer), template,
                                       require_loss=False, train_on_reasoning=train_on_reasoning)
        if not assistant_only:
            labels = list(ids)
        if len(ids) > max_length_tokens:
            stats["truncated"] += 1
            ids, labels = ids[:max_length_tokens], labels[:max_length_tokens]
        n_loss = sum(1 for x in labels[1:] if x != IGNORE)
        if n_loss == 0:
            stats["no_assistant"] += 1
            continue
        stats["tokens"] += len(ids)
        stats["loss_tokens"] += n_loss
        rows.append({"input_ids": list(ids), "labels": list(labels)})
    stats["examples"] = len(rows)
    return rows, stats


def pack(rows: list[dict], max_length_tokens: int) -> list[dict]:
    """First-fit-decreasing bins of at most ``max_length_tokens`` tokens. Each packed row is
    ``{"input_ids", "labels", "seq_lengths"}`` (the concatenation and each sample's length).
    Deterministic (ties keep input order)."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    space: list[int] = []
    for i in order:
        n = len(rows[i]["input_ids"])
        for b, free in enumerate(space):
            if n <= free:
                bins[b].append(i)
                space[b] -= n
                break
        else:
            bins.append([i])
            space.append(max_length_tokens - n)
    out = []
    for b in bins:
        out.append({"input_ids": [t for i in b for t in rows[i]["input_ids"]],
                    "labels": [t for i in b for t in rows[i]["labels"]],
                    "seq_lengths": [len(rows[i]["input_ids"]) for i in b]})
    return out


def packing_ratio(rows: list[dict], packed: list[dict]) -> float:
    """Samples per packed row."""
    return len(rows) / max(len(packed), 1)


class Collator:
    """Batches tokenized rows.

    Unpacked rows: right padding with ``pad_id``, ``attention_mask``, labels -100 on padding.
    Packed rows (with ``seq_lengths``): the whole batch becomes one row (padding-free, as trl's
    ``padding_free``), ``position_ids`` restart at 0 for every sample, no ``attention_mask``, and the
    first label of every sample is -100 (no sample predicts the next sample's first token).
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if features and "seq_lengths" in features[0] and features[0]["seq_lengths"] is not None:
            ids, labels, pos = [], [], []
            for f in features:
                start = 0
                for n in f["seq_lengths"]:
                    seg_labels = list(f["labels"][start:start + n])
                    seg_labels[0] = IGNORE
                    ids.extend(f["input_ids"][start:start + n])
                    labels.extend(seg_labels)
                    pos.extend(range(n))
                    start += n
            return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                    "position_ids": torch.tensor([pos])}
        n = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"])
            labels[i, :k] = torch.tensor(f["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

