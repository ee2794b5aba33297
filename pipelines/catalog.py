"""Read-side service functions over a workspace: datasets, versions, samples, diffs.

Each call opens the workspace store briefly and closes it (the one-writer rule in
``datastore/store.py``), so the app never holds the DuckDB file between renders.
"""
from __future__ import annotations

from pathlib import Path

from datastore import Sample, Store, Version
from datastore import versions as V


def list_datasets(workspace: str | Path) -> list[dict]:
    """``[{"name", "kind", "versions", "samples", "content_hash", "updated_at", "description"}]``."""
    out = []
    with Store(workspace, create=False) as st:
        for ds in V.list_datasets(st):
            head = V.resolve(st, ds.name) if ds.head else None
            out.append({"name": ds.name, "kind": ds.kind, "versions": ds.head,
                        "samples": head.n_samples if head else 0,
                        "content_hash": head.content_hash[:12] if head else None,
                        "updated_at": head.created_at if head else ds.created_at,
                        "description": ds.description})
    return out


def dataset_log(workspace: str | Path, name: str) -> list[Version]:
    """Versions of ``name``, newest first."""
    with Store(workspace, create=False) as st:
        return V.log(st, name)


def get_version(workspace: str | Path, name: str, ref: str | int | None = None) -> Version:
    with Store(workspace, create=False) as st:
        return V.resolve(st, name, ref)


def sample_page(workspace: str | Path, name: str, ref: str | int | None = None, *,
                after_id: int = 0, limit: int = 50) -> tuple[Version, list[Sample]]:
    """One keyset page of a version: samples with id > ``after_id``, at most ``limit``."""
    with Store(workspace, create=False) as st:
        v = V.resolve(st, name, ref)
        return v, V.read_page(st, v, after_id=after_id, limit=limit)


def version_stats(workspace: str | Path, name: str, ref: str | int | None = None) -> dict:
    with Store(workspace, create=False) as st:
        return V.stats(st, V.resolve(st, name, ref))


def version_diff(workspace: str | Path, name: str, a, b, *, with_samples: int = 0) -> dict:
    """Row-level diff; with ``with_samples > 0`` also the first samples of each change
    as ``{"added": [Sample], "removed": [Sample], "modified": [(old, new)]}``."""
    with Store(workspace, create=False) as st:
        d = V.diff(st, name, a, b)
        out = {"a": d.a, "b": d.b, "added": d.added, "removed": d.removed, "modified": d.modified}
        if with_samples:
            k = with_samples
            out["samples"] = {
                "added": V.get_samples(st, d.b, d.added[:k]),
                "removed": V.get_samples(st, d.a, d.removed[:k]),
                "modified": list(zip(V.get_samples(st, d.a, d.modified[:k]),
                                     V.get_samples(st, d.b, d.modified[:k]))),
            }
        return out


def tag_version(workspace: str | Path, name: str, tag: str, ref, *, user: str, force: bool = False) -> Version:
    """Point ``tag`` at a version. Raises PermissionDenied unless ``user`` may edit samples."""
    from pipelines.policy import require
    with Store(workspace, create=False) as st:
        user = require(st, user, "edit_samples", name)[0]
        return V.tag(st, name, tag, ref, user=user, force=force)


def version_card(workspace: str | Path, name: str, ref=None) -> dict:
    """The version card: ``{"licences", "warnings", "provenance", "quality", "markdown"}``
    (see :mod:`pipelines.curate.cards`)."""
    from pipelines.curate import cards
    d = cards.card_data(workspace, name, ref)
    return {"licences": d["licences"], "warnings": d["warnings"], "provenance": d["provenance"],
            "quality": d["quality"], "markdown": cards.render_card(workspace, name, ref)}
