"""``wb train``, ``wb runs``, ``wb stop``, ``wb resume``, ``wb merge-adapter``, ``wb evaluate``, ``wb launch-cmd``:
training runs from the shell (a thin face over ``pipelines.train.runs``)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer


def _fmt_s(s) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def register(app: typer.Typer) -> None:
    from rich.table import Table

    from app.cli import _json, _user, err, out, state
    from datastore.errors import WorkbenchError

    @app.command()
    def train(config: Path = typer.Option(..., "--config", "-c", help="Training config (JSON or YAML)."),
              wait: bool = typer.Option(False, "--wait", help="Follow the run until it ends."),
              no_preflight: bool = typer.Option(False, "--no-preflight", help="Skip the template preflight."),
              acknowledge: list[str] = typer.Option(
                  [], "--acknowledge-licence",
                  help="Accept training data under this licence that forbids commercial use (e.g. cc-by-nc-4.0); "
                       "repeat for several. Added to the config's acknowledge_licences and recorded in the run card."),
              as_json: bool = typer.Option(False, "--json")):
        """Launch a training run in its own process (pinned dataset versions, licences, preflight, gate)."""
        from pipelines.train import runs
        from pipelines.train.validate import parse_config

        p = Path(config)
        if not p.exists():
            raise WorkbenchError(f"training config not found: {p}")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml
                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except ValueError as e:
            raise WorkbenchError(f"{p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}: {e}") from e
        if data.get("stage") == "dpo":  # preference runs: same folder, progress and stop
            from pipelines.preference import dpo
            run_dir = dpo.launch(state.workspace, dpo.DPORunConfig.model_validate(data), user=_user())
            out.print(f"started DPO run [bold]{run_dir.name}[/] in {run_dir}; follow it with 'wb runs'")
            return
        if acknowledge:
            data["acknowledge_licences"] = list(data.get("acknowledge_licences") or []) + list(acknowledge)
        cfg = parse_config(data)
        run_dir = runs.launch(state.workspace, cfg, user=_user(), preflight=not no_preflight)
        if not wait:
            st = runs.run_status(run_dir)
            if as_json:
                return _json(st | {"card": None})
            out.print(f"started run [bold]{run_dir.name}[/] ({cfg.method}, {cfg.max_steps} steps) in {run_dir}; "
                      f"follow it with 'wb runs' or stop it with 'wb stop {run_dir.name}'")
            return
        last = -1
        while True:
            st = runs.run_status(run_dir)
            if st["step"] != last and st["loss"] is not None:
                last = st["step"]
                err.print(f"step {st['step']}/{st['total']} loss {st['loss']:.4f} "
                          f"({_fmt_s(st['remaining_s'])} left)")
            if st["state"] in runs.TERMINAL:
                break
            time.sleep(1.0)
        if as_json:
            return _json(st)
        if st["state"] == "failed":
            raise WorkbenchError(f"run {run_dir.name} failed: {st['error']}\n{st.get('log_tail', '')}")
        card = st["card"] or {}
        m = card.get("metrics", {})
        out.print(f"run {run_dir.name} {st['state']}: {card.get('steps')} steps, loss {card.get('first_loss')} -> "
                  f"{card.get('final_loss')}, eval loss {m.get('eval_loss_before')} -> {m.get('eval_loss_after')}")

    @app.command()
    def runs(as_json: bool = typer.Option(False, "--json")):
        """Training runs of the workspace, newest first (found from their folders)."""
        from pipelines.train import runs as R

        rows = R.list_runs(state.workspace, user=_user())
        if as_json:
            return _json([{k: v for k, v in r.items() if k != "card"} for r in rows])
        t = Table("run", "state", "method", "step", "loss", "eval loss", "left", "data")
        for r in rows:
            data = ", ".join(f"{d['dataset']} v{d.get('version_number')}" for d in r["datasets"])
            t.add_row(r["run_id"], r["state"], r["method"] or "", f"{r['step']}/{r['total']}",
                      f"{r['loss']:.4f}" if r["loss"] is not None else "",
                      f"{r['eval_loss']:.4f}" if r["eval_loss"] is not None else "",
                      _fmt_s(r["remaining_s"]), data)
        out.print(t)
        for r in rows:
            if r["state"] == "failed":
                err.print(f"{r['run_id']} failed: {r['error']}")

    @app.command()
    def stop(run: str = typer.Argument(..., help="Run id (see 'wb runs').")):
        """Stop a run after its current step; it saves a checkpoint and its adapter."""
        from pipelines.train import runs as R

        R.stop_run(state.workspace, run, user=_user())
        out.print(f"stop requested for {run}; it saves a checkpoint and ends after the current step")

    @app.command()
    def resume(run: str = typer.Argument(...)):
        """Resume a stopped or failed run from its last checkpoint."""
        from pipelines.train import runs as R

        st = R.resume_run(state.workspace, run, user=_user())
        out.print(f"resumed {run} (pid {st['pid']})")

    @app.command("merge-adapter")
    def merge_adapter(run: str = typer.Argument(...), out_dir: Optional[Path] = typer.Option(None, "--out", "-o")):
        """Merge a LoRA run's adapter into its base model and save it (default RUN/merged).

        (Named merge-adapter: ``wb merge`` is the curate area's dataset merge.)"""
        from pipelines.train import runs as R

        p = R.merge_run(state.workspace, run, user=_user(), out_dir=out_dir)
        out.print(f"merged model saved to {p}")

    @app.command("evaluate")
    def evaluate_cmd(run: str = typer.Argument(...),
                     xstest: Optional[Path] = typer.Option(None, "--xstest", help="xstest_prompts.csv for refusal accuracy."),
                     n_refusal: int = typer.Option(20, "--n-refusal"),
                     max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
                     stage_worst: int = typer.Option(0, "--stage-worst", help="Send the N worst samples to review."),
                     as_json: bool = typer.Option(False, "--json")):
        """Perplexity, ROUGE-L, BLEU (and refusal accuracy) of a finished run on its held-out split."""
        from pipelines.train import runs as R
        from pipelines.train.evaluate import evaluate_run, stage_challenging, xstest_prompts

        user = _user()
        R._require(state.workspace, user)
        d = R.run_path(state.workspace, run)
        refusal = xstest_prompts(xstest, n_refusal) if xstest else None
        m = evaluate_run(d, max_new_tokens=max_new_tokens, refusal_prompts=refusal)
        staged = None
        if stage_worst:
            v = stage_challenging(state.workspace, d, user=user, n=stage_worst)
            staged = {"dataset": v.dataset, "version": v.number, "samples": v.n_added}
        if as_json:
            return _json({"metrics": m, "staged": staged})
        out.print(f"perplexity {m['perplexity']:.3f}, ROUGE-L {m['rougeL']:.3f}, BLEU {m['bleu']:.2f} on {m['n_eval']} "
                  f"held-out samples" + (f"; refusal accuracy {m['refusal_accuracy']:.2f} on {m['n_refusal']} prompts"
                                          if m["refusal_accuracy"] is not None else ""))
        if staged:
            out.print(f"staged {staged['samples']} challenging samples -> {staged['dataset']} v{staged['version']}")

    @app.command("launch-cmd")
    def launch_cmd(run: str = typer.Argument(...),
                   launcher: str = typer.Option("accelerate", "--launcher", help="accelerate|torchrun"),
                   gpus: int = typer.Option(2, "--gpus", help="GPUs per node."),
                   nodes: int = typer.Option(1, "--nodes"),
                   node_rank: int = typer.Option(0, "--node-rank"),
                   master_addr: str = typer.Option("127.0.0.1", "--master-addr"),
                   master_port: int = typer.Option(29500, "--master-port")):
        """Print the multi-GPU command for a prepared run (writes accelerate_config.yaml into it)."""
        from pipelines.train import runs as R
        from pipelines.train.launch import LaunchSpec, write_launch_files

        d = R.run_path(state.workspace, run)
        spec = LaunchSpec(launcher=launcher, gpus_per_node=gpus, nodes=nodes, node_rank=node_rank,
                          master_addr=master_addr, master_port=master_port)
        cmd = write_launch_files(d, spec)
        out.print(" ".join(cmd), highlight=False)
