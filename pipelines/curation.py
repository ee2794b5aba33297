"""Curation steps that move samples between datasets, each one commit.

- :func:`accept_candidates`: a curator accepts generated candidates in a staging dataset;
  the candidates get the tag ``accepted`` and the curator in ``annotator_ids``, committed
  as a new staging version by that curator (so the acceptance is versioned and audited).
- :func:`merge_accepted`: copies the accepted candidates of a staging version into a
  target dataset as a new version, each with lineage back to the staging sample; samples
  already copied by an earlier merge are skipped (found by that lineage).
Nothing generated reaches a target dataset without being accepted first. Each service
checks ``edit_samples`` for the acting user (``pipelines.policy``).

Filter, merge, split, revert, purge, licences, cards and backup live in
:mod:`pipelines.curate`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from datastore import NotFound, Store, WorkbenchError
from datastore import audit
from datastore import versions as V
from pipelines.policy import require

ACCEPTED = "accepted"


def accept_candidates(workspace: str | Path, staging: str, sample_ids: list[int], *, user: str,
                      note: str | None = None) -> V.Version:
    """Mark ``sample_ids`` of the staging head as accepted by ``user``; returns the new version.

    Raises NotFound for an unknown dataset or sample id; WorkbenchError if ``staging`` is
    not a staging dataset.
    """
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", staging)[0]
        ds = V.get_dataset(st, staging)
        if ds.kind != "staging":
            raise WorkbenchError(f"'{staging}' is not a staging dataset; candidates are accepted in staging")
        head = V.resolve(st, staging)
        found = V.get_samples(st, head, sample_ids)
        if len(found) != len(set(sample_ids)):
            missing = sorted(set(sample_ids) - {s.sample_id for s in found})
            raise WorkbenchError(f"no candidate(s) {missing[:10]} in {staging} v{head.number}")
        update = {}
        for s in found:
            tags = sorted(set(s.tags or []) | {ACCEPTED})
            who = list(dict.fromkeys([*(s.annotator_ids or []), user]))
            update[s.sample_id] = dataclasses.replace(s, tags=tags, annotator_ids=who).to_row()
        return V.commit(st, staging, author=user, message=note or f"accept {len(update)} candidate(s)",
                        update=update, operation={"op": "accept", "sample_ids": sorted(update), "by": user})


def merge_accepted(workspace: str | Path, staging: str, target: str, *, user: str,
                   staging_version: str | int | None = None, sample_ids: list[int] | None = None) -> V.Version:
    """Copy the accepted candidates of ``staging`` (at ``staging_version``, default head)
    into ``target`` as one new version. Lineage of each copy: the staging dataset, version
    id and sample id it came from, plus the generator lineage it carried.

    ``sample_ids`` limits the merge to those staging samples (a review task passes its own
    items). A staging sample that already has a copy in ``target`` (found by that lineage,
    in any revision of the target, also one removed since) is skipped, so two merges from
    one staging dataset (two review tasks, or a retry) never copy a sample twice.

    Raises WorkbenchError when there is nothing accepted left to merge (the message says how
    many were skipped as already merged).
    """
    from datastore import review_tasks as RT
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", target)[0]
        sv = V.resolve(st, staging, staging_version)
        try:
            done = RT.merged_from(st.conn, V.get_dataset(st, target).dataset_id, staging)
        except NotFound:
            done = set()
        wanted = set(sample_ids) if sample_ids is not None else None
        rows = []
        skipped = 0
        samples = V.get_samples(st, sv, sorted(wanted)) if wanted is not None else V.iter_samples(st, sv)
        for s in samples:
            if ACCEPTED not in (s.tags or []):
                continue
            if s.sample_id in done:
                skipped += 1
                continue
            lineage = {**(s.lineage or {}), "parent": {"dataset": staging, "version_id": sv.version_id,
                                                       "sample_id": s.sample_id}}
            tags = [t for t in (s.tags or []) if t != ACCEPTED] or None
            rows.append(dataclasses.replace(s, lineage=lineage, tags=tags, sample_id=None).to_row())
        if not rows:
            more = f" ({skipped} already merged into {target})" if skipped else ""
            raise WorkbenchError(f"no accepted candidates left to merge in {staging} v{sv.number}{more}; accept some first")
        v = V.commit(st, target, author=user, message=f"merge {len(rows)} accepted candidate(s) from {staging} v{sv.number}",
                     add=rows, operation={"op": "merge", "from": staging, "from_version_id": sv.version_id,
                                          "count": len(rows), "skipped_already_merged": skipped})
        with st.transaction():
            audit.record(st.conn, user, "curation.merge", f"{staging}@v{sv.number} -> {target}@v{v.number}",
                         {"count": len(rows), "skipped_already_merged": skipped})
        return v


def stage_candidates(workspace: str | Path, staging: str, samples: list, *, user: str, message: str,
                     operation: dict | None = None) -> V.Version:
    """Commit generated candidates (``Sample`` objects) into a staging dataset (created as
    kind ``staging`` if missing) as one new version; returns it."""
    rows = [s.to_row() for s in samples]
    if not rows:
        raise WorkbenchError("no candidates to stage")
    with Store(workspace) as st:
        user = require(st, user, "edit_samples", staging)[0]
        return V.commit(st, staging, author=user, message=message, add=rows, operation=operation,
                        create=True, kind="staging")


def licences_of(workspace: str | Path, dataset: str, version: str | int | None = None) -> list[dict]:
    """The licences of a dataset version, for run cards and exports:
    ``[{"license", "samples", "sources", "commercial", "share_alike", "no_derivatives",
    "conditions"}]``, largest first (``commercial``: allowed / forbidden / unknown).
    Warnings on the mixture: :func:`pipelines.curate.licences.warnings_for`.

    Raises:
        NotFound: unknown dataset or version.
    """
    from pipelines.curate.licences import licences_of as _lo
    return _lo(workspace, dataset, version)
