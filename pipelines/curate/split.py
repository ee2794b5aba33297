"""Split a version into train, evaluation and test datasets, at random or stratified by
a field, with a seed.

Why our own code: ``sklearn.model_selection.train_test_split`` splits in two and refuses
a stratum with fewer than two members; a three-way split would chain two calls whose
rounding differs from the fractions. Here each stratum's ids (ascending) are shuffled with
``random.Random(f"{seed}:{stratum}")`` and cut by the largest-remainder method (Hamilton's
apportionment), so the part sizes match the fractions as closely as integers allow in
every stratum, and the same seed and version always give the same split.

Each part is one commit to its own dataset (``<name>-train``, ``<name>-eval``,
``<name>-test`` by default; an existing part dataset is replaced in that commit), all
with the same ``split_id`` and parameters in their message and ``operation``.
"""
from __future__ import annotations

import random
import secrets
from pathlib import Path

from datastore import Store, WorkbenchError
from datastore import versions as V
from pipelines.policy import require

from .base import Plan, copy_rows

DEFAULT_PARTS = ("train", "eval", "test")
STRATIFY_COLUMNS = ("task_type", "language", "difficulty", "policy_domain", "source", "license", "kind")


def apportion(n: int, fractions: list[float]) -> list[int]:
    """Split ``n`` items by ``fractions`` (summing to 1) with the largest-remainder method;
    ties go to the earlier part."""
    quotas = [n * f for f in fractions]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(fractions)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign(ids_by_stratum: dict[str, list[int]], fractions: list[float], seed: int) -> list[list[int]]:
    """Ids per part (each ascending)."""
    parts: list[list[int]] = [[] for _ in fractions]
    for key in sorted(ids_by_stratum):
        ids = sorted(ids_by_stratum[key])
        random.Random(f"{seed}:{key}").shuffle(ids)
        start = 0
        for p, c in enumerate(apportion(len(ids), fractions)):
            parts[p] += ids[start:start + c]
            start += c
    return [sorted(p) for p in parts]


def _strata(st, v: V.Version, stratify: str | None) -> dict[str, list[int]]:
    if stratify is None:
        return {"": [r[0] for r in st.conn.execute(
            "SELECT sample_id FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
            [v.dataset_id, v.number, v.number]).fetchall()]}
    from datastore import governance as G
    if stratify.startswith("extra."):
        t = G.read_columns(st, v, ["extra"])
        import json
        key = stratify[6:]
        vals = [str((json.loads(e) or {}).get(key)) if e else "None" for e in t.column("extra").to_pylist()]
    elif stratify in STRATIFY_COLUMNS:
        t = G.read_columns(st, v, [stratify])
        vals = [str(x) for x in t.column(stratify).to_pylist()]
    else:
        raise WorkbenchError(f"cannot stratify by '{stratify}': use one of {', '.join(STRATIFY_COLUMNS)} or extra.FIELD")
    out: dict[str, list[int]] = {}
    for sid, val in zip(t.column("sample_id").to_pylist(), vals):
        out.setdefault(val, []).append(sid)
    return out


def _check(fractions: list[float], names: list[str]) -> None:
    if len(fractions) != len(names) or len(fractions) < 2:
        raise WorkbenchError(f"give one fraction per part ({len(names)} parts: {', '.join(names)}), at least two")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise WorkbenchError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    if len(set(names)) != len(names):
        raise WorkbenchError(f"part names must differ: {names}")


def _compute(st, dataset, version, fractions, seed, stratify, names):
    _check(fractions, names)
    v = V.resolve(st, dataset, version)
    parts = assign(_strata(st, v, stratify), fractions, seed)
    return v, parts


def _describe(v, fractions, seed, stratify, names, parts, split_id):
    how = f"stratified by {stratify}" if stratify else "random"
    frac = "/".join(f"{f:g}" for f in fractions)
    msgs, ops = [], []
    for i, name in enumerate(names):
        msgs.append(f"split {v.dataset} v{v.number} ({how}, seed {seed}, {frac}): part {name} "
                    f"with {len(parts[i])} of {v.n_samples}")
        ops.append({"op": "split", "split_id": split_id, "from": v.dataset, "from_version": v.number,
                    "from_version_id": v.version_id, "fractions": fractions, "seed": seed, "stratify": stratify,
                    "part": name, "parts": {n: len(p) for n, p in zip(names, parts)}})
    return msgs, ops


def part_names(dataset: str, names: list[str] | None) -> list[str]:
    return [f"{dataset}-{p}" for p in (names or DEFAULT_PARTS)]


def plan_split(workspace: str | Path, dataset: str, version: str | int | None = None, *, user: str,
               fractions: list[float] = (0.8, 0.1, 0.1), seed: int = 0, stratify: str | None = None,
               parts: list[str] | None = None) -> Plan:
    """Part sizes without committing: ``counts = {"<dataset>-train": n, ...}``."""
    names = part_names(dataset, parts)
    with Store(workspace, create=False) as st:
        require(st, user, "edit_samples", dataset)
        v, ids = _compute(st, dataset, version, list(fractions), seed, stratify, names)
        msgs, ops = _describe(v, list(fractions), seed, stratify, names, ids, "preview")
        return Plan("split", dataset, "; ".join(msgs), ops[0], {n: len(p) for n, p in zip(names, ids)})


def split_version(workspace: str | Path, dataset: str, version: str | int | None = None, *, user: str,
                  fractions: list[float] = (0.8, 0.1, 0.1), seed: int = 0, stratify: str | None = None,
                  parts: list[str] | None = None) -> list[V.Version]:
    """Commit each part as one version of its dataset; returns the part versions in order.

    Raises:
        PermissionDenied; WorkbenchError (fractions, stratify field); NotFound.
    """
    names = part_names(dataset, parts)
    split_id = secrets.token_hex(4)
    out = []
    with Store(workspace, create=False) as st:
        user_name, _ = require(st, user, "edit_samples", dataset)
        v, ids = _compute(st, dataset, version, list(fractions), seed, stratify, names)
        msgs, ops = _describe(v, list(fractions), seed, stratify, names, ids, split_id)
        for name, part, msg, op in zip(names, ids, msgs, ops):
            rows = copy_rows(V.get_samples(st, v, part), parent=v)
            try:
                old = V.resolve(st, name)
                remove = [r[0] for r in st.conn.execute(
                    "SELECT sample_id FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
                    [old.dataset_id, old.number, old.number]).fetchall()]
            except Exception:
                remove = []
            out.append(V.commit(st, name, author=user_name, message=msg, add=rows, remove=remove, operation=op,
                                create=True, allow_empty=True))
    return out
