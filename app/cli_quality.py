"""``wb quality``, ``wb report``, ``wb gate ...`` and ``wb evalset ...``: the quality area's
commands, a thin face over ``pipelines.quality`` (registered by ``app/cli.py``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from datastore.errors import WorkbenchError


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def register(app: typer.Typer) -> None:
    from app.cli import _json, _progress, _user, out, state

    qual = typer.Typer(invoke_without_command=True,
                       help="Quality metrics of a dataset version (wb quality -d D); wb quality score fills quality_score.")
    app.add_typer(qual, name="quality")

    @qual.command("score")
    def quality_score(dataset: str = typer.Option(..., "--dataset", "-d"),
                      source: str = typer.Option("ratings", "--from", help="ratings (accepted review ratings, 1..5 -> 0..1) or head (a scoring head)."),
                      head: Optional[Path] = typer.Option(None, "--head", help="Scoring head folder (with --from head)."),
                      overwrite: bool = typer.Option(False, "--overwrite", help="Replace scores already present."),
                      message: Optional[str] = typer.Option(None, "--message", "-m"),
                      as_json: bool = typer.Option(False, "--json")):
        """Fill quality_score on the head version from review ratings or a scoring head (source kept in lineage), as a new version."""
        from pipelines.quality import scores
        with _progress(as_json) as prog:
            prog.add_task(f"scoring {dataset} from {source}", total=None)
            res = scores.fill(state.workspace, dataset, user=_user(), source=source, head_dir=head,
                              overwrite=overwrite, message=message)
        if as_json:
            return _json(res)
        if res["version"] is None:
            out.print(f"{dataset}: no sample to score from {source} ({res['skipped']} without a score source)")
        else:
            out.print(f"{dataset} v{res['version']}: quality_score from {source} on {res['scored']} sample(s), "
                      f"{res['skipped']} left without one")

    @qual.callback()
    def quality(ctx: typer.Context,
                dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),
                version: Optional[str] = typer.Option(None, "--version", "-v", help="Number, tag or id (default: head)."),
                refresh: bool = typer.Option(False, "--refresh", help="Recompute instead of reading cached metrics."),
                no_sample: bool = typer.Option(False, "--no-sample", help="Skip the sampled metrics (tokens, parse, near/semantic duplicates)."),
                as_json: bool = typer.Option(False, "--json")):
        """Quality metrics of a dataset version, overall and per slice."""
        if ctx.invoked_subcommand is not None:
            return
        if dataset is None:
            raise WorkbenchError("wb quality needs --dataset (or a subcommand: wb quality score)")
        from pipelines.quality import metrics
        with _progress(as_json) as prog:
            prog.add_task(f"measuring {dataset}", total=None)
            m = metrics.compute(state.workspace, dataset, version, user=_user(), refresh=refresh,
                                sampled=not no_sample)
        if as_json:
            return _json(m)
        if not m.get("samples"):
            out.print(f"{dataset} v{m['version']}: no samples")
            return
        s = m.get("sampled") or {}
        ref = m["refusal"]
        t = Table("metric", "value", title=f"{dataset} v{m['version']} ({m['samples']} samples)")
        lw = m["length_words"]
        t.add_row("response words mean / median / p90", " / ".join(f"{lw[k]:g}" if isinstance(lw[k], float) else str(lw[k]) for k in ("mean", "median", "p90")))
        tk = s.get("length_tokens") or {}
        if tk.get("n"):
            t.add_row(f"response tokens mean / median (sample of {tk['n']})", f"{tk['mean']} / {tk['median']}")
        t.add_row("turns per sample mean", str(m["turns"]["mean"]))
        t.add_row("citation rate", _pct(m["citation"]["rate"]))
        t.add_row(f"refusal rate ({ref['method']})", _pct(ref["rate"]))
        t.add_row("refuses what should be refused",
                  f"{_pct(ref['should_refuse']['rate'])} of {ref['should_refuse']['n']}")
        t.add_row("answers what should be answered",
                  f"{_pct(ref['should_answer']['rate'])} of {ref['should_answer']['n']}")
        t.add_row("exact duplicate rate", _pct(m["duplicates"]["exact"]))
        d = s.get("duplicates_sampled") or {}
        if d:
            t.add_row("near / semantic duplicate rate (sample)",
                      f"{_pct(d.get('near'))} / {_pct(d.get('semantic'))}" + (f" ({d['note']})" if d.get("note") else ""))
        dv = s.get("diversity") or {}
        vn = dv.get("verb_noun") or {}
        if vn.get("parsed"):
            t.add_row("distinct root verbs / verb-noun pairs (sample)",
                      f"{vn['distinct_verbs']} / {vn['distinct_pairs']} in {vn['parsed']} prompts")
        elif vn.get("error"):
            t.add_row("verb-noun diversity", vn["error"])
        if dv:
            t.add_row("distinct-1 / distinct-2 of prompts (sample)", f"{dv['distinct_1_prompts']} / {dv['distinct_2_prompts']}")
        t.add_row("language mix", ", ".join(f"{k}: {v}" for k, v in list(m["language_mix"].items())[:8]))
        cov = m["domain_coverage"]
        if cov["labelled_samples"]:
            t.add_row("policy domains empty", ", ".join(cov["empty"]) or "none")
        g = m.get("gate") or {}
        t.add_row("gate", g.get("status", "") + (" (overridden)" if g.get("override") else ""))
        c = m.get("contamination") or {}
        t.add_row("contamination", _pct(c["rate"]) + f" ({c['contaminated']} samples, n={c['n']})"
                  if c.get("status") == "checked" else c.get("status", ""))
        a = m.get("agreement") or {}
        t.add_row("annotator agreement", a.get("status", "") if a.get("status") != "reviewed" else
                  "; ".join(f"{q['question']}: alpha {q['krippendorff_alpha']}" for q in a["questions"][:3]))
        out.print(t)
        for col in ("task_type", "policy_domain", "source", "language"):
            rows = m["slices"][col]
            if len(rows) <= 1 and (not rows or rows[0]["value"] is None):
                continue
            st = Table(col, "samples", "words mean", "citation", "refusal", "refuses (should)", "answers (should)",
                       "exact dups", title=f"by {col}")
            for r in rows[:15]:
                st.add_row(str(r["value"]), str(r["samples"]), str(r["words_mean"]), _pct(r["citation_rate"]),
                           _pct(r["refusal_rate"]), f"{_pct(r.get('should_refuse_rate'))} of {r.get('should_refuse_n')}",
                           f"{_pct(r.get('should_answer_rate'))} of {r.get('should_answer_n')}", _pct(r["exact_duplicate_rate"]))
            out.print(st)

    @app.command()
    def report(dataset: str = typer.Option(..., "--dataset", "-d"),
               version: Optional[str] = typer.Option(None, "--version", "-v"),
               out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file (default: quality-DATASET-vN.html)."),
               no_sample: bool = typer.Option(False, "--no-sample", help="Skip the sampled metrics when none are cached."),
               as_json: bool = typer.Option(False, "--json")):
        """Write a self-contained HTML quality report of a version (charts included, opens offline)."""
        from pipelines.catalog import get_version
        from pipelines.quality.report import write_report
        v = get_version(state.workspace, dataset, version)
        target = out_path or Path(f"quality-{dataset}-v{v.number}.html")
        with _progress(as_json) as prog:
            prog.add_task(f"writing report for {dataset} v{v.number}", total=None)
            p = write_report(state.workspace, dataset, v.number, target, user=_user(), sampled=not no_sample)
        if as_json:
            return _json({"path": str(p), "bytes": p.stat().st_size, "version": v.number})
        out.print(f"wrote {p} ({p.stat().st_size // 1024} KiB)")

    gate = typer.Typer(no_args_is_help=True, help="Validation gates (great-expectations suite per dataset).")
    app.add_typer(gate, name="gate")

    @gate.command("show")
    def gate_show(dataset: str = typer.Option(..., "--dataset", "-d"),
                  version: Optional[str] = typer.Option(None, "--version", "-v"),
                  suite: bool = typer.Option(False, "--suite", help="Print the suite (JSON) instead of the gate status."),
                  as_json: bool = typer.Option(False, "--json")):
        """Gate status of a version (or the dataset's suite with --suite)."""
        from pipelines.quality import gates
        if suite:
            s = gates.get_suite(state.workspace, dataset)
            if s is None:
                raise WorkbenchError(f"dataset '{dataset}' has no suite (create one with 'wb gate init --dataset {dataset}')")
            return _json(s["suite"])
        g = gates.gate_status(state.workspace, dataset, version)
        if as_json:
            return _json(g)
        out.print(f"{dataset} v{g['version']}: gate [bold]{g['status']}[/]" + (" (stale: suite changed)" if g.get("stale") else ""))
        if g.get("override"):
            o = g["override"]
            out.print(f"overridden by {o['user']} at {str(o['at'])[:19]}: {o['reason']}")
        for e in ((g.get("summary") or {}).get("expectations") or []):
            mark = "ok  " if e["success"] else "FAIL"
            out.print(f"  {mark} {e['type']}({e['kwargs'].get('column', '')}) unexpected={e.get('unexpected_count')}"
                      + (f" e.g. samples {e['example_ids'][:5]}" if e.get("example_ids") and not e["success"] else "")
                      + (f" error: {e['error']}" if e.get("error") else ""))
        if (g.get("summary") or {}).get("error"):
            out.print(f"  error: {g['summary']['error']}")

    @gate.command("init")
    def gate_init(dataset: str = typer.Option(..., "--dataset", "-d"),
                  force: bool = typer.Option(False, "--force", help="Replace an existing suite.")):
        """Create the dataset's suite from the default (schema, required fields, turns, roles, lengths, labels, domains)."""
        from pipelines.quality import gates
        if gates.get_suite(state.workspace, dataset) is not None and not force:
            raise WorkbenchError(f"dataset '{dataset}' already has a suite; pass --force to replace it")
        h = gates.save_suite(state.workspace, dataset, gates.default_suite(), user=_user())
        out.print(f"suite {h} stored for {dataset}; the head version's gate is scheduled")

    @gate.command("edit")
    def gate_edit(dataset: str = typer.Option(..., "--dataset", "-d"),
                  file: Path = typer.Option(..., "--file", "-f", help="Suite JSON (as printed by 'wb gate show --suite').")):
        """Replace the dataset's suite with a JSON file (validated against great-expectations)."""
        from pipelines.quality import gates
        try:
            suite = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise WorkbenchError(f"{file}: cannot read suite JSON: {e}") from None
        h = gates.save_suite(state.workspace, dataset, suite, user=_user())
        out.print(f"suite {h} stored for {dataset}; the head version's gate is scheduled")

    @gate.command("run")
    def gate_run(dataset: str = typer.Option(..., "--dataset", "-d"),
                 version: Optional[str] = typer.Option(None, "--version", "-v"),
                 as_json: bool = typer.Option(False, "--json")):
        """Run the gate on a version now (in this process) and store the result; exit 1 if it fails."""
        from pipelines.quality import gates
        with _progress(as_json) as prog:
            prog.add_task("validating", total=None)
            g = gates.run_gate(state.workspace, dataset, version, user=_user())
        if as_json:
            _json(g)
        else:
            out.print(f"{dataset} v{g['version']}: gate [bold]{g['status']}[/]")
            for e in ((g.get("summary") or {}).get("expectations") or []):
                if not e["success"]:
                    out.print(f"  FAIL {e['type']}({e['kwargs'].get('column', '')}) unexpected={e.get('unexpected_count')} "
                              f"e.g. samples {e.get('example_ids', [])[:5]}")
        if g["status"] != "passed":
            raise typer.Exit(1)

    @gate.command("override")
    def gate_override(dataset: str = typer.Option(..., "--dataset", "-d"),
                      version: Optional[str] = typer.Option(None, "--version", "-v"),
                      reason: str = typer.Option(..., "--reason", "-r", help="Why this failing version may be trained on (audit log).")):
        """Allow a version that failed its gate to be launched for training (curators and admins)."""
        from pipelines.quality import gates
        g = gates.override_gate(state.workspace, dataset, version, reason, user=_user())
        out.print(f"{dataset} v{g['version']}: gate {g['status']}, overridden by {g['override']['user']}")

    @gate.command("check")
    def gate_check(dataset: str = typer.Option(..., "--dataset", "-d"),
                   version: Optional[str] = typer.Option(None, "--version", "-v")):
        """Exit 0 if the version may be launched for training, else print why and exit 1."""
        from pipelines.quality import gates
        gates.check_launchable(state.workspace, dataset, version, user=_user())
        out.print("launchable")

    ev = typer.Typer(no_args_is_help=True, help="Evaluation sets and contamination checks.")
    app.add_typer(ev, name="evalset")

    @ev.command("register")
    def ev_register(name: str = typer.Argument(...), path: Path = typer.Argument(..., help="JSONL/JSON/text file of items."),
                    dataset: str = typer.Option(..., "--dataset", "-d"),
                    version: Optional[str] = typer.Option(None, "--version", "-v")):
        """Register an evaluation set on a version (applies to it and later versions)."""
        from pipelines.quality import contamination
        r = contamination.register_eval_set(state.workspace, dataset, version, name, path, user=_user())
        out.print(f"registered '{r['name']}' ({r['items']} items) on {dataset} v{r['version']}")

    @ev.command("list")
    def ev_list(dataset: str = typer.Option(..., "--dataset", "-d"),
                version: Optional[str] = typer.Option(None, "--version", "-v"),
                as_json: bool = typer.Option(False, "--json")):
        """Evaluation sets that apply to a version."""
        from pipelines.quality import contamination
        sets = contamination.list_eval_sets(state.workspace, dataset, version)
        if as_json:
            return _json(sets)
        t = Table("name", "items", "from version", "source", "by")
        for s in sets:
            t.add_row(s["name"], str(s["items"]), f"v{s['from_version']}", s["source"] or "", s["created_by"] or "")
        out.print(t)

    @ev.command("contamination")
    def ev_contamination(dataset: str = typer.Option(..., "--dataset", "-d"),
                         version: Optional[str] = typer.Option(None, "--version", "-v"),
                         n: int = typer.Option(13, "--n", help="Word n-gram length (13 as in GPT-3's study)."),
                         limit: int = typer.Option(20, "--limit", help="Overlapping samples to list."),
                         as_json: bool = typer.Option(False, "--json")):
        """N-gram overlap of a version with its evaluation sets, and the overlapping samples."""
        from pipelines.quality import contamination
        r = contamination.check(state.workspace, dataset, version, n=n, user=_user())
        if as_json:
            return _json(r)
        out.print(f"{dataset} v{r['version']}: {r['contaminated']} of {r['samples']} samples overlap "
                  f"({_pct(r['rate'])}) at n={r['n']}")
        for s in r["sets"]:
            out.print(f"  {s['name']}: {s['contaminated']} samples ({_pct(s['rate'])}); "
                      f"{s['short_items']} of {s['items']} items shorter than n")
        for o in r["overlapping"][:limit]:
            out.print(f"  sample {o['sample_id']} ~ {o['eval_set']} item {o['item_no']} ({o['ngrams']} shared n-grams)")
