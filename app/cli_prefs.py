"""``wb prefs import|export|extract``, ``wb train-dpo``, ``wb score train|candidates``,
``wb adapters list|combine``: preference data, DPO, scoring heads and adapters.
A thin face over ``pipelines.preference`` and ``pipelines.serve``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _cli_state():
    """The CLI's global options. Under ``python -m app.cli`` the running module is ``__main__``, and
    ``import app.cli`` would load a second copy whose ``state`` the ``--workspace``/``--user`` callback
    never set; so the options are read from ``__main__`` when that is the CLI."""
    import sys

    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) == "app.cli":
        return main.state
    from app.cli import state
    return state


def register(app: typer.Typer) -> None:
    from app.cli import _json, err, out
    from datastore.errors import WorkbenchError

    class _State:  # resolved per command (the callback runs before each command)
        @property
        def workspace(self):
            return _cli_state().workspace

    state = _State()

    def _user() -> str:
        from pipelines import workspace as W
        st = _cli_state()
        return W.current_user(st.workspace, st.user)

    prefs = typer.Typer(no_args_is_help=True, help="Preference pairs: import, export, extract from review.")
    app.add_typer(prefs, name="prefs")

    @prefs.command("import")
    def prefs_import(path: Path = typer.Argument(..., help="trl, LLaMA-Factory DPO/KTO or hh-rlhf file (JSON, JSONL, gz)."),
                     dataset: str = typer.Option(..., "--dataset", "-d"),
                     format: Optional[str] = typer.Option(None, "--format", "-f",
                                                          help="trl|trl_unpaired|llamafactory_dpo|llamafactory_kto|hh_rlhf (default: detected)"),
                     message: Optional[str] = typer.Option(None, "--message", "-m"),
                     as_json: bool = typer.Option(False, "--json")):
        """Import preference data as a new version of DATASET (pairs are samples of kind 'preference')."""
        from pipelines.preference.store import import_file

        v, fmt, n = import_file(state.workspace, path, dataset, user=_user(), fmt=format, message=message)
        if as_json:
            return _json({"dataset": dataset, "version": v.number, "format": fmt, "records": n,
                          "content_hash": v.content_hash})
        out.print(f"imported {n} {fmt} record(s) into {dataset} v{v.number} (hash {v.content_hash[:12]})")

    @prefs.command("export")
    def prefs_export(dataset: str = typer.Argument(...), path: Path = typer.Argument(...),
                     version: Optional[str] = typer.Option(None, "--version", "-v"),
                     format: str = typer.Option("trl", "--format", "-f",
                                                help="trl|llamafactory_dpo|llamafactory_kto|hh_rlhf"),
                     plain: bool = typer.Option(False, "--plain", help="trl's plain (string) format instead of conversational."),
                     template: Optional[str] = typer.Option(None, "--template",
                                                            help="Chat template for plain prompts of several turns (default chatml).")):
        """Export a version's pairs (JSON Lines for .jsonl, else a JSON array)."""
        from pipelines.preference.store import export_version

        n = export_version(state.workspace, dataset, path, user=_user(), version=version, fmt=format,
                           conversational=not plain, template=template)
        out.print(f"wrote {n} record(s) to {path} ({format}{', plain' if plain else ''})")

    @prefs.command("extract")
    def prefs_extract(task: str = typer.Option(..., "--task", "-t", help="Review task name."),
                      dataset: str = typer.Option(..., "--dataset", "-d", help="Preference dataset to commit to."),
                      mode: str = typer.Option("all", "--mode", help="Rankings: 'all' ordered pairs or 'best' vs each other."),
                      as_json: bool = typer.Option(False, "--json")):
        """Pairs from a review task's edits (edit chosen, original rejected) and comparisons."""
        from pipelines.preference.store import extract_from_review

        v, rep = extract_from_review(state.workspace, task, dataset, user=_user(), mode=mode)
        if as_json:
            return _json({"dataset": dataset, "version": v.number, **rep.as_dict()})
        out.print(f"{rep.pairs} pair(s) into {dataset} v{v.number}: {rep.edits_seen} edit(s) "
                  f"({rep.unchanged_edits} unchanged), {rep.rankings_seen} ranking(s), {rep.conflicts} conflict(s)")

    @app.command("train-dpo")
    def train_dpo(config: Path = typer.Option(..., "--config", "-c", help="DPO config (JSON or YAML): datasets, beta, ..."),
                  wait: bool = typer.Option(False, "--wait", help="Run in this process until it ends."),
                  run_id: Optional[str] = typer.Option(None, "--run-id"),
                  as_json: bool = typer.Option(False, "--json")):
        """Launch a DPO run with a LoRA adapter (optionally on an SFT adapter) on preference versions."""
        from pipelines.preference import dpo

        cfg = dpo.DPORunConfig.load(config)
        if not wait:
            run_dir = dpo.launch(state.workspace, cfg, user=_user(), run_id=run_id)
            if as_json:
                return _json({"run_id": run_dir.name, "run_dir": str(run_dir)})
            out.print(f"started DPO run [bold]{run_dir.name}[/] in {run_dir}; follow it with 'wb runs', "
                      f"stop it with 'wb stop {run_dir.name}'")
            return
        rid = run_id or f"dpo-{__import__('secrets').token_hex(3)}"
        run_dir = Path(state.workspace) / "runs" / rid
        dpo.prepare_run(state.workspace, cfg, run_dir, user=_user())
        res = dpo.run_from_folder(run_dir, progress=lambda r: err.print(
            f"step {r.get('step')}/{r.get('total')} loss {r['loss']:.4f} margin {r.get('reward_margin', 0):.4f}")
            if "loss" in r and "event" not in r else None)
        summary = {"run_id": rid, "steps": res.steps, "reward_margins": res.margins, "adapter": str(res.adapter_dir)}
        if as_json:
            return _json(summary)
        m = [f"{x['eval_reward_margin']:.4f}@{x['step']}" for x in res.margins if x["eval_reward_margin"] is not None]
        out.print(f"DPO run {rid}: {res.steps} steps; probe reward margin {' -> '.join(m)}; adapter {res.adapter_dir}")

    score = typer.Typer(no_args_is_help=True, help="Scoring heads: train on review labels or pairs, score candidates.")
    app.add_typer(score, name="score")

    @score.command("train")
    def score_train(name: str = typer.Option(..., "--name", "-n", help="Head name (saved under WORKSPACE/heads/NAME)."),
                    task: str = typer.Option("pairs", "--task", help="accept|should_refuse|rating|pairs"),
                    dataset: Optional[str] = typer.Option(None, "--pairs", help="Preference dataset (task 'pairs')."),
                    review_task: Optional[str] = typer.Option(None, "--review-task", help="Review task with labels."),
                    epochs: int = typer.Option(3, "--epochs"), max_length: int = typer.Option(96, "--max-length"),
                    as_json: bool = typer.Option(False, "--json")):
        """Train a scoring head; prints its held-out accuracy or correlation."""
        from datastore import Store
        from pipelines import policy
        from pipelines.preference import scoring as S

        user = _user()
        with Store(state.workspace) as st:
            policy.require(st, user, "train", name)
        cfg = S.HeadConfig(task=task, name=name, epochs=epochs, max_length_tokens=max_length)
        if task == "pairs":
            if not dataset:
                raise WorkbenchError("task 'pairs' needs --pairs DATASET")
            from pipelines.preference.pairs import Pair
            from pipelines.preference.store import read_items
            data = [i for i in read_items(state.workspace, dataset, user=user)[1] if isinstance(i, Pair)]
        else:
            if not review_task:
                raise WorkbenchError(f"task '{task}' learns from review labels: pass --review-task TASK")
            from pipelines.preference.store import review_annotations
            d = review_annotations(state.workspace, review_task, user)
            data = S.examples_from_annotations(d["samples"], d["annotations"], task)
        res = S.train_head(cfg, data, Path(state.workspace) / "heads" / name)
        if as_json:
            return _json({"head": str(res.head_dir), "metrics": res.metrics})
        out.print(f"head {name} ({task}) saved to {res.head_dir}; held-out: "
                  + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.metrics.items()))

    @score.command("candidates")
    def score_candidates_cmd(head: str = typer.Option(..., "--head", help="Head name or folder."),
                             dataset: str = typer.Option(..., "--dataset", "-d"),
                             version: Optional[str] = typer.Option(None, "--version", "-v"),
                             suggest: bool = typer.Option(False, "--suggest", help="Hand the verdicts to review as suggestions."),
                             as_json: bool = typer.Option(False, "--json")):
        """Score the samples of a (staging) version with a head."""
        from datastore import Store
        from datastore import versions as V
        from pipelines.preference import scoring as S

        user = _user()
        hdir = Path(head) if Path(head).exists() else Path(state.workspace) / "heads" / head
        if suggest:
            n = S.suggest_in_review(state.workspace, dataset, hdir, user=user, version=version)
            return out.print(f"{n} suggestion(s) from head {hdir.name} handed to review")
        from pipelines import policy
        with Store(state.workspace, create=False) as st:
            policy.require(st, user, "read_datasets", dataset)
            samples = list(V.iter_samples(st, V.resolve(st, dataset, version)))
        rows = S.suggestions_for_review(hdir, samples)
        if as_json:
            return _json(rows)
        for r in rows:
            out.print(f"#{r['sample_id']}: {r['decision'] or ''} {r['score']:.4f} ({r['model']})")

    adapters = typer.Typer(no_args_is_help=True, help="Adapters: list, combine by weight.")
    app.add_typer(adapters, name="adapters")

    @adapters.command("list")
    def adapters_list(as_json: bool = typer.Option(False, "--json")):
        """Adapters of the workspace (run adapters and combined ones)."""
        from pipelines.serve.adapters import list_adapters

        rows = list_adapters(state.workspace)
        if as_json:
            return _json(rows)
        for r in rows:
            out.print(f"{r['name']}\t{r['stage']}\t{r['template'] or ''}\t{r['path']}")

    @adapters.command("combine")
    def adapters_combine(sources: list[str] = typer.Argument(..., help="Run ids or adapter folders."),
                         weights: str = typer.Option(..., "--weights", "-w", help="Comma-separated, e.g. 0.7,0.3"),
                         name: str = typer.Option(..., "--name", "-n"),
                         combination: str = typer.Option("cat", "--type", help="cat (exact) | linear | svd"),
                         as_json: bool = typer.Option(False, "--json")):
        """Combine LoRA adapters by weight into WORKSPACE/adapters/NAME (with its own card)."""
        from pipelines.serve.adapters import combine_in_workspace

        try:
            w = [float(x) for x in weights.split(",")]
        except ValueError:
            raise WorkbenchError(f"--weights must be numbers separated by commas, got '{weights}'") from None
        paths = [s if Path(s).exists() else str(Path(state.workspace) / "runs" / s) for s in sources]
        p = combine_in_workspace(state.workspace, paths, w, name, user=_user(), combination_type=combination)
        if as_json:
            return _json({"adapter": str(p), "card": json.loads((p / "adapter_card.json").read_text())})
        out.print(f"combined {len(paths)} adapter(s) into {p}")
