"""``wb generate ...``: Self-Instruct, instances, adversarial, augment, mine, personas, and job
control (status, cancel, resume). A thin face over :mod:`pipelines.generate.service`.

Each method runs as a background job; by default the command waits and shows a progress bar
with live counts (``--background`` returns the job folder at once). The options are the
Generate page's.
"""
from __future__ import annotations

import functools
import inspect
import json
import time
from pathlib import Path
from typing import Optional

import typer

gen = typer.Typer(no_args_is_help=True, help="Generate candidates into a staging dataset (curators and admins).")


def _backend_options(backend: Optional[str], model: Optional[str], base_url: Optional[str],
                     concurrency: Optional[int], timeout: Optional[float], api_key_env: Optional[str],
                     backend_option: Optional[list[str]]) -> dict:
    """The backend options the flags name (``--model`` is ``model_path`` for transformers);
    ``--backend-option KEY=VALUE`` pairs last."""
    opts: dict = {}
    if model:
        opts["model_path" if backend == "transformers" else "model"] = model
    for k, v in (("base_url", base_url), ("max_concurrency", concurrency), ("timeout_s", timeout),
                 ("api_key_env", api_key_env)):
        if v is not None:
            opts[k] = v
    for kv in backend_option or []:
        if "=" not in kv:
            from datastore.errors import WorkbenchError
            raise WorkbenchError(f"--backend-option takes KEY=VALUE (JSON values allowed), got '{kv}'")
        k, v = kv.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def _common(backend: str, model: Optional[str], base_url: Optional[str], concurrency: Optional[int],
            timeout: Optional[float], api_key_env: Optional[str], max_tokens: Optional[int],
            temperature: Optional[float], top_p: Optional[float], seed: Optional[int], batch_size: Optional[int],
            staging: Optional[str], backend_option: list[str]) -> dict:
    opts = _backend_options(backend, model, base_url, concurrency, timeout, api_key_env, backend_option)
    return {"backend": backend, "backend_options": opts, "staging": staging, "batch_size": batch_size,
            "sampling": {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}}


#: The options every generation command shares (the Generate page's backend, sampling, staging
#: and job settings), appended after each command's own options: (name, type, typer option).
_COMMON_OPTIONS: tuple = (
    ("backend", str, typer.Option("transformers", "--backend", "-b", help="transformers | openai | vllm | scripted")),
    ("model", Optional[str], typer.Option(None, "--model",
                                          help="Model folder (transformers, vllm) or served model name (openai).")),
    ("base_url", Optional[str], typer.Option(None, "--base-url",
                                             help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")),
    ("concurrency", Optional[int], typer.Option(None, "--concurrency",
                                                help="openai: most requests in flight (default 4; halved on 429s and timeouts).")),
    ("timeout", Optional[float], typer.Option(None, "--timeout", help="openai: seconds per request (default 300).")),
    ("api_key_env", Optional[str], typer.Option(None, "--api-key-env",
                                                help="openai: NAME of the environment variable holding the API key "
                                                     "(only the name is stored).")),
    ("max_tokens", Optional[int], typer.Option(None, "--max-tokens", help="Most new tokens per output.")),
    ("temperature", Optional[float], typer.Option(None, "--temperature")),
    ("top_p", Optional[float], typer.Option(None, "--top-p")),
    ("seed", Optional[int], typer.Option(None, "--seed")),
    ("batch_size", Optional[int], typer.Option(None, "--batch-size", help="Prompts per backend call.")),
    ("staging", Optional[str], typer.Option(None, "--staging", help="Staging dataset (default <method>-candidates).")),
    ("backend_option", Optional[list[str]], typer.Option(None, "--backend-option",
                                                         help="Extra backend option KEY=VALUE (repeatable).")),
)
_BG = typer.Option(False, "--background", help="Return at once with the job folder.")
_J = typer.Option(False, "--json")


def _generation_command(fn):
    """Give a command the shared options (:data:`_COMMON_OPTIONS`, then ``--background`` and
    ``--json``) after its own; the command receives them as ``common`` (the :func:`_common`
    dict), ``background`` and ``as_json``. Typer reads the options from ``__signature__``."""
    P = inspect.Parameter
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
           if p.name not in ("common", "background", "as_json")]
    extra = [P(n, P.POSITIONAL_OR_KEYWORD, default=d, annotation=t) for n, t, d in _COMMON_OPTIONS]
    extra += [P("background", P.POSITIONAL_OR_KEYWORD, default=_BG, annotation=bool),
              P("as_json", P.POSITIONAL_OR_KEYWORD, default=_J, annotation=bool)]

    @functools.wraps(fn)
    def command(**kw):
        common = _common(*(kw.pop(n) for n, _, _ in _COMMON_OPTIONS))
        background, as_json = kw.pop("background"), kw.pop("as_json")
        return fn(**kw, common=common, background=background, as_json=as_json)

    params = own + extra
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def _csv(v: Optional[str]) -> Optional[list[str]]:
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


def _launch(method: str, common: dict, params: dict, background: bool, as_json: bool) -> None:
    from app.cli import _json, _user, err, out, state
    from pipelines import jobs
    from pipelines.generate.service import launch_generation
    req = {**common, "method": method, "params": {k: v for k, v in params.items() if v is not None}}
    d = launch_generation(state.workspace, req, user=_user())
    if background:
        if as_json:
            _json({"job_dir": str(d), "state": "queued"})
        else:
            out.print(f"started job {d.name}: wb generate status {d}")
        return
    st = _follow(d, as_json)
    if as_json:
        _json({"job_dir": str(d), **st})
    else:
        _print_final(d, st)
    if st["state"] != "succeeded":
        from datastore.errors import WorkbenchError
        raise WorkbenchError(f"job {d.name} {st['state']}: {st.get('error') or ''} "
                             f"(resume with: wb generate resume {d})")


def _follow(d: Path, as_json: bool = False) -> dict:
    """Poll the job, drawing a rich progress bar with live counts (none with ``--json`` or
    without a terminal), until it ends."""
    from app.cli import _progress
    from pipelines import jobs
    with _progress(as_json) as prog:
        task = prog.add_task("starting", total=None)
        while True:
            st = jobs.job_status(d)
            dropped = st.get("dropped") or {}
            ndrop = sum(v for v in dropped.values() if isinstance(v, int)) if isinstance(dropped, dict) else 0
            desc = f"{st.get('step', st['state'])}: generated {st.get('generated', 0)}, kept {st.get('kept', 0)}, dropped {ndrop}"
            total = st.get("total")
            prog.update(task, description=desc, completed=st.get("done") or 0, total=total or None)
            if st["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
                return st
            time.sleep(0.5)


def _print_final(d: Path, st: dict) -> None:
    from rich.table import Table

    from app.cli import out
    res = st.get("result") or {}
    out.print(f"job {d.name}: [bold]{st['state']}[/]")
    if res:
        out.print(f"generated {res.get('generated')}, kept {res.get('kept')} -> "
                  f"{res.get('staging')} v{res.get('version')} (staging; review before merging)")
        if res.get("summary"):
            out.print(res["summary"])
        t = Table("drop reason", "count")
        for k, v in (res.get("dropped") or {}).items():
            if v:
                t.add_row(k, str(v))
        if t.row_count:
            out.print(t)
        if res.get("coverage"):
            cov = res["coverage"]
            ct = Table(*cov[0].keys())
            for row in cov:
                ct.add_row(*[str(v) for v in row.values()])
            out.print(ct)


def register(app: typer.Typer) -> None:
    """Add ``wb generate`` to the CLI."""
    BG, J = _BG, _J

    @gen.command("self-instruct")
    @_generation_command
    def self_instruct(seed_dataset: Optional[str] = typer.Option(None, "--seed-dataset", "-d", help="Dataset of seed tasks."),
                      seed_file: Optional[Path] = typer.Option(None, "--seed-file", help="Self-Instruct seed_tasks.jsonl."),
                      target_kept: int = typer.Option(5, "--target-kept"), max_rounds: int = typer.Option(4, "--max-rounds"),
                      prompts_per_round: Optional[int] = typer.Option(None, "--prompts-per-round"),
                      instances: bool = typer.Option(True, "--instances/--no-instances",
                                                     help="Also classify tasks and generate instances (published pipeline)."),
                      demo_settings: bool = typer.Option(False, "--demo-settings",
                                                         help="Settings sized for the embedded 135M model."),
                      *, common: dict, background: bool, as_json: bool):
        """Self-Instruct as published: instructions, classification, instances, filters."""
        _launch("self-instruct", common,
                {"seed_dataset": seed_dataset, "seed_file": str(seed_file) if seed_file else None,
                 "target_kept": target_kept, "max_rounds": max_rounds, "prompts_per_round": prompts_per_round,
                 "instances": instances, "demo_settings": demo_settings or None}, background, as_json)

    @gen.command("instances")
    @_generation_command
    def instances_cmd(dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset of instructions."),
                      version: Optional[str] = typer.Option(None, "--version"), limit: Optional[int] = typer.Option(None, "--limit"),
                      max_instances: int = typer.Option(5, "--max-instances"),
                      *, common: dict, background: bool, as_json: bool):
        """Instances for instructions (output-first for classification, input-first otherwise)."""
        _launch("instances", common,
                {"dataset": dataset, "version": version, "limit": limit, "max_instances_per_task": max_instances},
                background, as_json)

    @gen.command("adversarial")
    @_generation_command
    def adversarial_cmd(taxonomy: Optional[str] = typer.Option(None, "--taxonomy", help="llama_guard_3 or a JSON file."),
                        domains: Optional[str] = typer.Option(None, "--domains", help="Comma-separated codes (S1,S6)."),
                        styles: Optional[str] = typer.Option(None, "--styles", help="role_play,hypothetical,obfuscation,prompt_injection,multi_turn"),
                        quota: Optional[int] = typer.Option(None, "--quota", help="Prompts per domain and style."),
                        benign_per_domain: Optional[int] = typer.Option(None, "--benign-per-domain"),
                        converter: Optional[str] = typer.Option(None, "--obfuscation-converter", help="none | leetspeak | base64"),
                        *, common: dict, background: bool, as_json: bool):
        """Attack prompts per policy domain and style, benign look-alikes, targets, coverage."""
        _launch("adversarial", common,
                {"taxonomy": taxonomy, "domains": _csv(domains), "styles": _csv(styles), "quota": quota,
                 "benign_per_domain": benign_per_domain, "obfuscation_converter": converter}, background, as_json)

    @gen.command("augment")
    @_generation_command
    def augment_cmd(dataset: str = typer.Option(..., "--dataset", "-d"), version: Optional[str] = typer.Option(None, "--version"),
                    op: str = typer.Option("paraphrase", "--op", help="paraphrase | counterfactual | rebalance"),
                    per_sample: int = typer.Option(1, "--per-sample"), limit: Optional[int] = typer.Option(None, "--limit"),
                    by: Optional[str] = typer.Option(None, "--by", help="rebalance: task_type | policy_domain | ..."),
                    target: Optional[str] = typer.Option(None, "--target", help='rebalance: JSON {"qa": 0.5, "math": 0.5}'),
                    *, common: dict, background: bool, as_json: bool):
        """Paraphrase, counterfactual edits, or rebalancing toward target proportions."""
        from datastore.errors import WorkbenchError
        try:
            tgt = json.loads(target) if target else None
        except json.JSONDecodeError as e:
            raise WorkbenchError(f"--target must be JSON, e.g. '{{\"qa\": 0.5}}' ({e.msg})") from e
        _launch("augment", common,
                {"dataset": dataset, "version": version, "op": op, "per_sample": per_sample, "limit": limit,
                 "by": by, "target": tgt}, background, as_json)

    @gen.command("mine")
    @_generation_command
    def mine_cmd(from_file: Optional[Path] = typer.Option(None, "--from-file", help="JSONL of {sample, reason, origin, ref}."),
                 review_task: Optional[str] = typer.Option(None, "--review-task", help="Rejected/low-rated items of a review task."),
                 max_rating: float = typer.Option(2, "--max-rating", help="With --review-task: mean rating at most this."),
                 dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),
                 sample_ids: Optional[str] = typer.Option(None, "--sample-ids", help="Comma-separated ids in --dataset."),
                 reason: Optional[str] = typer.Option(None, "--reason"), per_source: int = typer.Option(2, "--per-source"),
                 *, common: dict, background: bool, as_json: bool):
        """Follow-up instructions for rejected, low-rated or failed samples."""
        _launch("mine", common,
                {"sources_file": str(from_file) if from_file else None, "review_task": review_task,
                 "max_rating": max_rating if review_task else None, "dataset": dataset,
                 "sample_ids": _csv(sample_ids), "reason": reason, "per_source": per_source}, background, as_json)

    @gen.command("personas")
    @_generation_command
    def personas_cmd(personas: Optional[str] = typer.Option(None, "--personas", help="teacher,lawyer,doctor,..."),
                     behaviours: Optional[str] = typer.Option(None, "--behaviours", help="answer,clarify,refuse,step_by_step"),
                     per_combination: int = typer.Option(1, "--per-combination"),
                     *, common: dict, background: bool, as_json: bool):
        """Persona conversations (system prompt + clarification, refusal, step-by-step...)."""
        _launch("personas", common,
                {"personas": _csv(personas), "behaviours": _csv(behaviours), "per_combination": per_combination},
                background, as_json)

    @gen.command("status")
    def status_cmd(job_dir: Optional[Path] = typer.Argument(None), follow: bool = typer.Option(False, "--follow"),
                   as_json: bool = J):
        """A job's status (or the list of generation jobs)."""
        from app.cli import _json, _user, out, state
        from pipelines import jobs
        from pipelines.generate.service import list_generation_jobs
        if job_dir is None:
            rows = list_generation_jobs(state.workspace, user=_user())
            if as_json:
                _json(rows)
                return
            for r in rows:
                st = r["status"]
                out.print(f"{r['job_id']}  {r['params'].get('method'):14} {st['state']:12} "
                          f"generated {st.get('generated', 0)} kept {st.get('kept', 0)}  {r['job_dir']}")
            return
        st = _follow(job_dir, as_json) if follow else jobs.job_status(job_dir)
        _json(st) if as_json else _print_final(job_dir, st) if st.get("result") else out.print(
            f"{job_dir}: {st['state']} ({st.get('step', '')} {st.get('done', '')}/{st.get('total', '')}; "
            f"generated {st.get('generated', 0)}, kept {st.get('kept', 0)})")

    @gen.command("cancel")
    def cancel_cmd(job_dir: Path = typer.Argument(...)):
        """Stop a job after its current batch (resume it later)."""
        from app.cli import _user, out, state
        from pipelines.generate.service import cancel_generation
        st = cancel_generation(state.workspace, job_dir, user=_user())
        out.print(f"{job_dir}: cancel requested (state {st['state']})")

    opt = {n: d for n, _, d in _COMMON_OPTIONS}

    @gen.command("resume")
    def resume_cmd(job_dir: Path = typer.Argument(...), model: Optional[str] = opt["model"],
                   base_url: Optional[str] = opt["base_url"], concurrency: Optional[int] = opt["concurrency"],
                   timeout: Optional[float] = opt["timeout"], api_key_env: Optional[str] = opt["api_key_env"],
                   backend_option: Optional[list[str]] = opt["backend_option"],
                   background: bool = BG, as_json: bool = J):
        """Resume an interrupted, failed or cancelled job from its checkpoint, optionally with new
        backend options (server, model, concurrency, timeout, API key variable)."""
        from app.cli import _json, _user, state
        from pipelines.generate.service import resume_generation
        opts = _backend_options(None, model, base_url, concurrency, timeout, api_key_env, backend_option)
        d = resume_generation(state.workspace, job_dir, user=_user(), backend_options=opts or None)
        if background:
            _json({"job_dir": str(d), "state": "queued"})
            return
        st = _follow(d, as_json)
        _json({"job_dir": str(d), **st}) if as_json else _print_final(d, st)

    app.add_typer(gen, name="generate")
