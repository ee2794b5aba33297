"""``wb`` commands of the curation area: filter, merge, split, revert, purge, backup,
restore, card, licences, tombstones. A thin face over ``pipelines.curate``: every
command that commits shows the preview counts first; ``--dry-run`` stops there."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from datastore.errors import WorkbenchError


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        if "=" not in v:
            raise WorkbenchError(f"{what} expects FIELD=VALUE, got '{v}'")
        k, x = v.split("=", 1)
        out[k.strip()] = x
    return out


def _fractions(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise WorkbenchError(f"--fractions expects numbers like 0.8,0.1,0.1, got '{text}'") from None


def register(app: typer.Typer) -> None:
    from app.cli import _json, _progress, _user, out, state

    def _show_plan(plan: dict, as_json: bool, dry_run: bool) -> None:
        if as_json and dry_run:
            _json(plan)
        elif not as_json:
            counts = ", ".join(f"{k} {v}" for k, v in plan["counts"].items())
            out.print(f"[bold]preview[/]: {plan['message']}", highlight=False)
            out.print(f"counts: {counts}", highlight=False)

    def _done(v, as_json: bool) -> None:
        if as_json:
            return _json(v.as_dict())
        out.print(f"committed {v.dataset} v{v.number} ({v.version_id}): {v.n_samples} samples, "
                  f"content hash {v.content_hash[:12]}", highlight=False)

    @app.command("filter")
    def filter_(dataset: str = typer.Option(..., "--dataset", "-d"),
                version: Optional[str] = typer.Option(None, "--version", "-v", help="Version to filter (default head)."),
                where: Optional[str] = typer.Option(None, "--where", help="SQL-like condition over the sample "
                                                    "columns and prompt/response/turns/response_words/duplicate/refusal/outcome."),
                field: Optional[List[str]] = typer.Option(None, "--field", help="Metadata FIELD=VALUE (repeatable)."),
                tag: Optional[List[str]] = typer.Option(None, "--tag", help="Keep samples with this tag (repeatable)."),
                min_quality: Optional[float] = typer.Option(None, "--min-quality", help="quality_score >= X."),
                outcome: Optional[List[str]] = typer.Option(None, "--outcome", help="Review outcome: accept, reject, edit, disputed."),
                into: Optional[str] = typer.Option(None, "--into", help="Commit into this dataset instead (copies)."),
                dry_run: bool = typer.Option(False, "--dry-run", help="Show the counts only."),
                as_json: bool = typer.Option(False, "--json")):
        """Keep the samples of a version that match, as one new version."""
        from pipelines.curate import filter as F
        kw = dict(where=where, fields=_pairs(field, "--field"), tags=tag, min_quality=min_quality,
                  outcome=outcome, into=into)
        user = _user()
        _show_plan(F.plan_filter(state.workspace, dataset, version, user=user, **kw).as_dict(), as_json, dry_run)
        if not dry_run:
            _done(F.filter_version(state.workspace, dataset, version, user=user, **kw), as_json)

    @app.command("merge")
    def merge(sources: List[str] = typer.Argument(..., help="Source datasets: NAME or NAME@VERSION."),
              into: str = typer.Option(..., "--into", help="Target dataset (created if missing)."),
              dedup: str = typer.Option("exact", "--dedup", help="exact | semantic | none"),
              threshold: float = typer.Option(0.9, "--threshold", help="Semantic dedup similarity threshold."),
              normalize: bool = typer.Option(True, "--normalize/--no-normalize",
                                             help="Exact dedup compares text after NFKC, removing zero-width and "
                                                  "bidi characters, case folding and collapsing whitespace "
                                                  "(default); --no-normalize compares raw text."),
              dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = typer.Option(False, "--json")):
        """Merge datasets into one as one commit, dropping duplicates (stored text is never changed)."""
        from pipelines.curate import merge as M
        user = _user()
        with _progress(as_json) as prog:   # semantic dedup of large datasets takes minutes
            prog.add_task(f"planning the merge into {into} (dedup: {dedup})", total=None)
            plan = M.plan_merge(state.workspace, sources, into, user=user, dedup=dedup, threshold=threshold,
                                normalize=normalize)
        _show_plan(plan.as_dict(), as_json, dry_run)
        if not dry_run:
            with _progress(as_json) as prog:
                prog.add_task(f"merging into {into} (dedup: {dedup})", total=None)
                v = M.merge_datasets(state.workspace, sources, into, user=user, dedup=dedup, threshold=threshold,
                                     normalize=normalize)
            _done(v, as_json)

    @app.command("split")
    def split(dataset: str = typer.Option(..., "--dataset", "-d"),
              version: Optional[str] = typer.Option(None, "--version", "-v"),
              fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="One per part, summing to 1."),
              parts: str = typer.Option("train,eval,test", "--parts", help="Part names: datasets NAME-PART."),
              seed: int = typer.Option(0, "--seed"),
              stratify: Optional[str] = typer.Option(None, "--stratify", help="Field: task_type, language, ..., extra.KEY"),
              dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = typer.Option(False, "--json")):
        """Split a version into train/eval/test datasets (random or stratified, seeded)."""
        from pipelines.curate import split as S
        user = _user()
        kw = dict(fractions=_fractions(fractions), seed=seed, stratify=stratify, parts=parts.split(","))
        _show_plan(S.plan_split(state.workspace, dataset, version, user=user, **kw).as_dict(), as_json, dry_run)
        if not dry_run:
            vs = S.split_version(state.workspace, dataset, version, user=user, **kw)
            if as_json:
                return _json([v.as_dict() for v in vs])
            for v in vs:
                _done(v, False)

    @app.command("revert")
    def revert(dataset: str = typer.Option(..., "--dataset", "-d"),
               to: str = typer.Option(..., "--to", help="Version to go back to (number, tag or id)."),
               dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = typer.Option(False, "--json")):
        """Commit an earlier version's content as the new head."""
        from pipelines.curate import revert as R
        user = _user()
        _show_plan(R.plan_revert(state.workspace, dataset, to, user=user).as_dict(), as_json, dry_run)
        if not dry_run:
            _done(R.revert(state.workspace, dataset, to, user=user), as_json)

    @app.command("purge")
    def purge(dataset: str = typer.Option(..., "--dataset", "-d"),
              sample: List[int] = typer.Option(..., "--sample", "-s", help="Sample id (repeatable)."),
              reason: Optional[str] = typer.Option(None, "--reason", help="Why (kept in the tombstone)."),
              no_copies: bool = typer.Option(False, "--no-copies", help="Leave copies in other datasets."),
              dry_run: bool = typer.Option(False, "--dry-run"), as_json: bool = typer.Option(False, "--json")):
        """Remove samples' text from every version, table and workspace file (admins)."""
        from pipelines.curate import purge as P
        user = _user()
        plan = P.plan_purge(state.workspace, dataset, sample, user=user, copies=not no_copies)
        if dry_run:
            return _json(plan) if as_json else out.print(
                f"would purge {', '.join(plan['samples'])} from {', '.join(plan['versions'])}; runs flagged: "
                f"{', '.join(plan['runs']) or 'none'}; files holding the text: {len(plan['files'])}", highlight=False)
        if not reason:
            raise WorkbenchError("--reason is required for a purge")
        rep = P.purge_samples(state.workspace, dataset, sample, user=user, reason=reason, copies=not no_copies)
        if as_json:
            return _json(rep.as_dict())
        out.print(f"purge {rep.purge_id}: removed {', '.join(rep.samples)} ({rep.revisions} revisions); "
                  f"{len(rep.versions)} version hash(es) recomputed; {len(rep.files_scrubbed)} file(s) scrubbed; "
                  f"runs flagged: {', '.join(rep.runs_flagged) or 'none'}", highlight=False)
        for v in rep.versions:
            out.print(f"  {v['dataset']} v{v['number']}: {v['old_content_hash'][:12]} -> {v['new_content_hash'][:12]}",
                      highlight=False)
        if rep.residual or rep.unscrubbable:
            out.print(f"[red]text still found in[/]: {', '.join(rep.residual + rep.unscrubbable)}", highlight=False)

    @app.command("tombstones")
    def tombstones(dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),
                   as_json: bool = typer.Option(False, "--json")):
        """Purged samples: id, who, when, why."""
        from pipelines.curate import purge as P
        rows = P.tombstones(state.workspace, dataset, user=_user())
        if as_json:
            return _json(rows)
        for r in rows:
            out.print(f"{r['dataset']}#{r['sample_id']}  purge {r['purge_id']}  by {r['purged_by']}  "
                      f"{str(r['purged_at'])[:19]}  why: {r['reason']}", highlight=False)
        out.print(f"{len(rows)} tombstone(s)")

    @app.command("backup")
    def backup(out_dir: Path = typer.Option(..., "--out", "-o", help="New folder for the backup."),
               as_json: bool = typer.Option(False, "--json")):
        """Write a consistent backup of the workspace (safe while the app runs)."""
        from pipelines.curate import backup as B
        m = B.backup(state.workspace, out_dir, user=_user())
        if as_json:
            return _json(m)
        out.print(f"backup {m['backup_id']} in {out_dir}: {len(m['tables'])} tables, "
                  f"{sum(m['tables'].values())} rows, {len(m['files'])} files; store held {m['store_locked_s']} s",
                  highlight=False)

    @app.command("restore")
    def restore(backup_dir: Path = typer.Argument(..., help="A folder written by wb backup."),
                force: bool = typer.Option(False, "--force", help="Replace an existing workspace (kept beside)."),
                as_json: bool = typer.Option(False, "--json")):
        """Restore a backup into --workspace (migrating an older one forward)."""
        from pipelines.curate import backup as B
        r = B.restore(backup_dir, state.workspace, user=state.user, force=force)
        if as_json:
            return _json(r)
        mig = f"; migrated from schema {r['migrated_from'][0]}" if r["migrated_from"] else ""
        out.print(f"restored backup {r['backup_id']} into {r['workspace']}: {sum(r['tables'].values())} rows, "
                  f"{r['files']} files{mig}", highlight=False)

    @app.command("card")
    def card(dataset: str = typer.Option(..., "--dataset", "-d"),
             version: Optional[str] = typer.Option(None, "--version", "-v"),
             out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here (default: print)."),
             ):
        """The dataset card of a version (Markdown with a YAML header, Hugging Face style)."""
        import sys

        from pipelines.curate import cards
        if out_path:
            p = cards.write_card(state.workspace, dataset, version, out_path)
            out.print(f"wrote {p}")
        else:
            sys.stdout.write(cards.render_card(state.workspace, dataset, version))

    @app.command("licences")
    def licences(dataset: str = typer.Option(..., "--dataset", "-d"),
                 version: Optional[str] = typer.Option(None, "--version", "-v"),
                 as_json: bool = typer.Option(False, "--json")):
        """Licences of a version with warnings on mixtures that forbid commercial use."""
        from pipelines.curate.licences import licences_of, warnings_for
        ls = licences_of(state.workspace, dataset, version)
        if as_json:
            return _json({"licences": ls, "warnings": warnings_for(ls)})
        for e in ls:
            out.print(f"{e['license']}: {e['samples']} samples, commercial use {e['commercial']} "
                      f"({', '.join(e['sources'])})", highlight=False)
        for w in warnings_for(ls):
            out.print(f"[yellow]warning:[/] {w}", highlight=False)
