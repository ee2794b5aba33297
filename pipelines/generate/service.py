"""Generation services for the faces (page and ``wb generate``): launch, run, cancel, resume.

Every function that acts for a user takes ``user`` and checks ``generate`` itself
(:func:`pipelines.policy.require`): only curators and admins generate.

A request (:class:`GenerateRequest`) names a method (:data:`METHODS`), a backend and its
options, sampling overrides, the method's parameters and the staging dataset. It runs as a
background job (:func:`launch_generation` -> ``pipelines/jobs.py`` kind ``generate``) or in
this process (:func:`run_generation`). Either way:

- inputs (seed instructions, samples to augment) are read in one short store session;
- each batch's raw outputs go to ``checkpoint.jsonl`` in the job folder, so a killed job
  resumes where it stopped (:mod:`pipelines.generate.checkpoint`);
- live counts (generated, kept, dropped per reason) go to the job's ``status.json``;
- the kept candidates are committed, in one transaction, as a new version of a staging
  dataset (kind ``staging``, :func:`pipelines.curation.stage_candidates`), each with its
  lineage plus the job id; the commit is idempotent per job (a resumed job that had already
  committed does not commit again). The dropped items with their reasons go to
  ``dropped.jsonl``. Nothing reaches a target dataset without review and acceptance
  (:func:`pipelines.curation.accept_candidates` / ``merge_accepted``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from datastore import Store
from datastore import versions as V
from datastore.errors import NotFound, WorkbenchError

from .checkpoint import Checkpoint, stop_file_checker

METHODS: tuple[str, ...] = ("self-instruct", "instances", "adversarial", "augment", "mine", "personas")
DEFAULT_STAGING = {m: f"{m}-candidates" for m in METHODS}


class SamplingOverrides(BaseModel):
    """Overrides of a method's main sampling parameters (None keeps the method's default)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None

    def apply(self, s):
        upd = {k: v for k, v in self.model_dump().items() if v is not None}
        return s.model_copy(update=upd) if upd else s


class GenerateRequest(BaseModel):
    """One generation run.

    ``params`` by method (all optional unless marked):
      - ``self-instruct``: seed_dataset (required, or seed_file), seed_version, target_kept (5),
        max_rounds (4), prompts_per_round, num_prompt_instructions, stop (list), instances
        (True: also classify and generate instances, the published pipeline),
        max_instances_per_task (5), demo_settings (False: the settings sized for the embedded
        135M model).
      - ``instances``: dataset (required), version, limit: instruction samples without
        instances; ``is_classification`` from task_type ``classification`` where set.
      - ``adversarial``: taxonomy, domains, styles, quota, benign_per_domain, obfuscation_converter.
      - ``augment``: dataset (required), version, op (paraphrase | counterfactual | rebalance),
        per_sample, limit, by and target (rebalance: {group: proportion}), total.
      - ``mine``: review_task (rejected / low-rated samples of a review task; max_rating 2),
        sources_file (JSON Lines of {sample: {...}, reason, origin, ref}) or dataset +
        sample_ids + reason; per_source.
      - ``personas``: personas, behaviours, per_combination.
    """

    model_config = ConfigDict(extra="forbid")

    method: str
    backend: str = "transformers"
    backend_options: dict[str, Any] = Field(default_factory=dict)
    sampling: SamplingOverrides = Field(default_factory=SamplingOverrides)
    params: dict[str, Any] = Field(default_factory=dict)
    staging: str | None = None
    batch_size: int | None = Field(None, ge=1)

    def staging_name(self) -> str:
        return self.staging or DEFAULT_STAGING[self.method]

    def check(self) -> "GenerateRequest":
        from .backends import list_backends
        if self.method not in METHODS:
            raise WorkbenchError(f"unknown generation method '{self.method}' (known: {', '.join(METHODS)})")
        if self.backend not in list_backends():
            raise WorkbenchError(f"unknown generator backend '{self.backend}' (known: {', '.join(list_backends())})")
        if "api_key" in self.backend_options:
            # requests are written to job folders and lineage: a key goes by the NAME of the
            # environment variable that holds it, never by value
            raise WorkbenchError("backend option api_key is not stored: put the key in an environment variable "
                                 "and pass its name (--api-key-env NAME, backend option api_key_env)")
        return self


def _require(workspace, user: str) -> tuple[str, str]:
    from pipelines.policy import require
    with Store(workspace) as st:
        return require(st, user, "generate")


# --------------------------------------------------------------------------- faces

def launch_generation(workspace: str | Path, request: GenerateRequest | dict, *, user: str) -> Path:
    """Check the permission and the request, then start a background job; returns its folder.

    Raises:
        PermissionDenied: the user may not generate. WorkbenchError: a bad request.
    """
    from pipelines import jobs
    req = GenerateRequest.model_validate(request).check()
    name, _ = _require(workspace, user)
    return jobs.start_job(workspace, "generate", req.model_dump(), user=name)


def cancel_generation(workspace: str | Path, job_dir: str | Path, *, user: str) -> dict:
    """Ask a generation job to stop after its current batch (see :func:`pipelines.jobs.cancel_job`)."""
    from pipelines import jobs
    _require(workspace, user)
    return jobs.cancel_job(job_dir)


def resume_generation(workspace: str | Path, job_dir: str | Path, *, user: str,
                      backend_options: dict | None = None) -> Path:
    """Restart an interrupted, failed or cancelled generation job from its checkpoint.

    ``backend_options`` (e.g. ``{"max_concurrency": 2, "timeout_s": 600, "base_url": ...,
    "model": ..., "api_key_env": "NAME"}``) are merged over the job's own; ``model`` goes to
    ``model_path`` for the transformers backend. The finished batches in the checkpoint are
    kept as they were generated. Raises WorkbenchError for ``api_key`` (only its variable's
    name is stored) and whatever :func:`pipelines.jobs.resume_job` raises.
    """
    from pipelines import jobs
    _require(workspace, user)
    update = None
    if backend_options:
        spec = json.loads((Path(job_dir) / "job.json").read_text())
        opts = dict(backend_options)
        if spec["params"].get("backend") == "transformers" and "model" in opts:
            opts["model_path"] = opts.pop("model")
        req = GenerateRequest.model_validate({**spec["params"], "backend_options": {
            **spec["params"].get("backend_options", {}), **opts}}).check()
        update = {"backend_options": req.backend_options}
    return jobs.resume_job(job_dir, update)


def list_generation_jobs(workspace: str | Path, *, user: str) -> list[dict]:
    """Generation jobs of the workspace, newest first (``jobs.list_jobs`` rows)."""
    from pipelines import jobs
    _require(workspace, user)
    return jobs.list_jobs(workspace, kind="generate")


def job_dropped(job_dir: str | Path, limit: int | None = None) -> list[dict]:
    """The dropped items of a finished job (``dropped.jsonl``): ``[{"text", "reason", ...}]``."""
    p = Path(job_dir) / "dropped.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
            if limit is not None and len(out) >= limit:
                break
    return out


# --------------------------------------------------------------------------- running

def _backend(req: GenerateRequest):
    from .backends import get_backend
    opts = dict(req.backend_options)
    if req.backend == "transformers":
        opts.setdefault("num_threads", 1)  # shared 2-core hosts: see TransformersBackend
        if req.batch_size:
            opts.setdefault("batch_size", req.batch_size)
    return get_backend(req.backend, **opts)


def _read_inputs(workspace, req: GenerateRequest) -> dict:
    """Everything the method reads from the store, in one short session."""
    p = req.params
    out: dict[str, Any] = {}
    ds = p.get("seed_dataset") if req.method == "self-instruct" else p.get("dataset")
    if ds:
        with Store(workspace) as st:
            v = V.resolve(st, ds, p.get("seed_version") if req.method == "self-instruct" else p.get("version"))
            samples = list(V.iter_samples(st, v))
        ids = p.get("sample_ids")
        if ids:
            want = set(int(i) for i in ids)
            samples = [s for s in samples if s.sample_id in want]
        if p.get("limit"):
            samples = samples[: int(p["limit"])]
        out["samples"] = samples
        out["ref"] = {"dataset": ds, "version": v.number, "version_id": v.version_id}
    return out


def _seed_instructions(req: GenerateRequest, inputs: dict) -> tuple[list[str], list[dict]]:
    """Seed instructions and seed tasks (Self-Instruct layout) from a dataset or a seed file."""
    p = req.params
    if p.get("seed_file"):
        from .instances import load_seed_tasks
        tasks = load_seed_tasks(p["seed_file"])
        return [t["instruction"] for t in tasks], tasks
    samples = inputs.get("samples")
    if not samples:
        raise WorkbenchError("self-instruct needs seed instructions: pass seed_dataset or seed_file")
    tasks = []
    for s in samples:
        if not s.instruction:
            continue
        inst = (s.extra or {}).get("instances") if s.extra else None
        tasks.append({"instruction": s.instruction,
                      "is_classification": (s.extra or {}).get("is_classification") if s.extra else None,
                      "instances": inst or ([{"input": s.input or "", "output": s.output}] if s.output else [])})
    return [t["instruction"] for t in tasks], tasks


def run_generation(workspace: str | Path, request: GenerateRequest | dict, *, user: str,
                   job_dir: str | Path | None = None, job_id: str | None = None,
                   progress: Callable[[dict], None] | None = None) -> dict:
    """Run one generation request in this process and stage its kept candidates.

    Args:
        job_dir: folder for ``checkpoint.jsonl``, ``dropped.jsonl`` and the ``cancel`` file
            (None: no checkpoint, no cancel).
        progress: called with ``{"step", "done", "total", "generated", "kept", "dropped"}``.

    Returns:
        ``{"method", "staging", "version", "kept", "generated", "dropped": {reason: n},
        "debris_stripped": n, ...}`` (``version`` None when nothing was kept; ``debris_stripped``:
        texts whose trailing list debris was removed, ``batching.strip_list_debris``).

    Raises:
        PermissionDenied; WorkbenchError for bad parameters; Cancelled when cancelled.
    """
    req = GenerateRequest.model_validate(request).check()
    name, _ = _require(workspace, user)
    jd = Path(job_dir) if job_dir else None
    job_id = job_id or (jd.name if jd else None)
    staging = req.staging_name()
    # a resumed job whose commit already happened: report it, commit nothing
    if job_id:
        done = _staged_version(workspace, staging, job_id)
        if done is not None:
            return {**(done.operation or {}).get("result", {}), "staging": staging, "version": done.number,
                    "resumed_after_commit": True}
    ckpt = Checkpoint(jd / "checkpoint.jsonl" if jd else None)
    should_stop = stop_file_checker(jd / "cancel" if jd else None)
    report = progress or (lambda d: None)
    inputs = _read_inputs(workspace, req)
    backend = _backend(req)
    report({"step": "start", "backend": backend.info(), "resumed_batches": len(ckpt)})
    samples, dropped_items, counts, extra = _dispatch(req, backend, inputs, ckpt, should_stop, report,
                                                     workspace=workspace, user=name)

    if jd:
        with open(jd / "dropped.jsonl", "w", encoding="utf-8") as f:
            for d in dropped_items:
                f.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
    from .batching import strip_sample_debris
    debris = strip_sample_debris(samples)
    if debris:
        extra["summary"] = "; ".join(filter(None, [extra.get("summary"),
                                                   f"trailing list debris stripped from {debris} text(s)"]))
    info = backend.info()
    for s in samples:
        s.lineage = {**(s.lineage or {}), "job_id": job_id, "method": req.method, "backend_info": info}
    result = {"method": req.method, "staging": staging, "generated": counts["generated"], "kept": len(samples),
              "dropped": counts["dropped"], "debris_stripped": debris, **extra}
    version = None
    if samples:
        from pipelines.curation import stage_candidates
        v = stage_candidates(workspace, staging, samples, user=name,
                             message=f"{req.method}: {len(samples)} candidate(s) from {info.get('model')} "
                                     f"({req.backend})" + (f", job {job_id}" if job_id else ""),
                             operation={"op": "generate", "job_id": job_id, "method": req.method,
                                        "backend": req.backend, "model": info.get("model"),
                                        "request": req.model_dump(), "result": result})
        version = v.number
    result["version"] = version
    report({"step": "done", "done": 1, "total": 1, "generated": counts["generated"], "kept": len(samples),
            "dropped": counts["dropped"]})
    return result


def _staged_version(workspace, staging: str, job_id: str):
    with Store(workspace) as st:
        try:
            log = V.log(st, staging)
        except NotFound:
            return None
    for v in log:
        if (v.operation or {}).get("job_id") == job_id:
            return v
    return None


def _dispatch(req: GenerateRequest, backend, inputs: dict, ckpt: Checkpoint, should_stop, report, *,
              workspace=None, user: str | None = None):
    p = req.params
    ov = req.sampling
    bs = {"batch_size": req.batch_size} if req.batch_size else {}
    extra: dict[str, Any] = {}

    if req.method == "self-instruct":
        from . import self_instruct as SI
        from .instances import InstanceConfig, generate_instances, instances_to_samples
        seeds, seed_tasks = _seed_instructions(req, inputs)
        base = SI.demo_config() if p.get("demo_settings") else SI.SelfInstructConfig()
        upd: dict[str, Any] = {k: p[k] for k in ("prompts_per_round", "num_prompt_instructions",
                                                  "num_machine_instructions", "rouge_threshold") if k in p}
        sampling = ov.apply(base.sampling)
        if p.get("stop") is not None:
            sampling = sampling.model_copy(update={"stop": tuple(p["stop"])})
        cfg = base.model_copy(update={**upd, "sampling": sampling})
        target, rounds = int(p.get("target_kept", 5)), int(p.get("max_rounds", 4))
        res = SI.run_self_instruct(backend, seeds, config=cfg, target_kept=target, max_rounds=rounds,
                                   checkpoint=ckpt, should_stop=should_stop,
                                   progress=lambda d: report({**d, "done": d["round"], "total": rounds}))
        dropped = [{"text": d.instruction, "reason": d.reason, "round": d.round, "match": d.match,
                    "score": d.score} for d in res.dropped_candidates]
        counts = res.counts()
        extra.update(rounds=res.rounds, tokens_generated=res.tokens_generated)
        if not p.get("instances", True):
            extra["summary"] = (f"{counts['generated']} instruction(s) generated in {res.rounds} round(s), "
                                f"{len(res.kept)} kept" + (f" (target {target}: max_rounds={rounds} reached)"
                                                           if len(res.kept) < target else ""))
            from datastore import Sample
            samples = [Sample(kind="instruction", instruction=k.instruction, source="self-instruct",
                              task_type="generated", lineage=k.lineage) for k in res.kept]
            return samples, dropped, counts, extra
        tasks = [{"instruction": k.instruction, "is_classification": None, "lineage": k.lineage} for k in res.kept]
        icfg = InstanceConfig(max_instances_per_task=int(p.get("max_instances_per_task", 5)), **bs)
        if ov.max_tokens:
            icfg = icfg.model_copy(update={"instance_sampling": icfg.instance_sampling.model_copy(
                update={"max_tokens": ov.max_tokens})})
        ir = generate_instances(backend, tasks, config=icfg, seed_tasks=[t for t in seed_tasks if t.get("instances")]
                                or None, checkpoint=ckpt, should_stop=should_stop,
                                progress=lambda d: report({**d, "generated": counts["generated"],
                                                           "kept": len(res.kept), "dropped": counts["dropped"]}))
        ic = ir.counts()
        for t in ir.tasks:
            if t.drop_reason:
                dropped.append({"text": t.instruction, "reason": t.drop_reason})
            dropped += [{"text": f"{t.instruction} | input: {d['input']} | output: {d['output']}",
                         "reason": d["reason"]} for d in t.dropped_instances]
        merged = dict(counts["dropped"])
        merged.update({k: v for k, v in ic["dropped"].items()})
        extra.update(instructions_kept=len(res.kept), tasks_with_instances=ic["kept"], instances=ic["instances"])
        short = (f" (target {target}: max_rounds={rounds} reached; raise --max-rounds or lower --target-kept)"
                 if len(res.kept) < target else "")
        extra["summary"] = (f"{counts['generated']} instruction(s) generated in {res.rounds} round(s), "
                            f"{len(res.kept)} kept{short}, {counts['generated'] - len(res.kept)} dropped; "
                            f"{ic['kept']} of them got instances: {ic['instances']} sample(s) staged, "
                            f"{sum(ic['dropped'].values())} task(s) or instance(s) dropped")
        return instances_to_samples(ir), dropped, {"generated": counts["generated"], "dropped": merged}, extra

    if req.method == "instances":
        from .instances import InstanceConfig, generate_instances, instances_to_samples
        samples = [s for s in inputs.get("samples", []) if s.instruction]
        if not samples:
            raise WorkbenchError("instances: the dataset has no instruction samples (pass dataset)")
        tasks = [{"instruction": s.instruction,
                  "is_classification": True if s.task_type == "classification" else None,
                  "lineage": {"parent": {**inputs["ref"], "sample_id": s.sample_id}}} for s in samples]
        icfg = InstanceConfig(max_instances_per_task=int(p.get("max_instances_per_task", 5)), **bs)
        icfg = icfg.model_copy(update={"instance_sampling": ov.apply(icfg.instance_sampling)})
        ir = generate_instances(backend, tasks, config=icfg, checkpoint=ckpt, should_stop=should_stop,
                                progress=lambda d: report(d))
        ic = ir.counts()
        dropped = [{"text": t.instruction, "reason": t.drop_reason} for t in ir.tasks if t.drop_reason]
        dropped += [{"text": f"{t.instruction} | input: {d['input']}", "reason": d["reason"]}
                    for t in ir.tasks for d in t.dropped_instances]
        extra["instances"] = ic["instances"]
        return instances_to_samples(ir), dropped, {"generated": ic["generated"], "dropped": ic["dropped"]}, extra

    if req.method == "adversarial":
        from .adversarial import AdversarialConfig, adversarial_to_samples, generate_adversarial
        keys = ("taxonomy", "quota", "benign_per_domain", "obfuscation_converter", "generate_targets",
                "min_words", "injected_system_prompt")
        kw: dict[str, Any] = {k: p[k] for k in keys if p.get(k) is not None}
        for k in ("domains", "styles"):
            if p.get(k):
                kw[k] = tuple(p[k])
        cfg = AdversarialConfig(**kw, **bs)
        cfg = cfg.model_copy(update={"prompt_sampling": ov.apply(cfg.prompt_sampling)})
        res = generate_adversarial(backend, cfg, checkpoint=ckpt, should_stop=should_stop, progress=report)
        dropped = [{"text": " / ".join(i.user_turns), "reason": i.drop_reason, "domain": i.domain,
                    "style": i.style, "match": i.lineage.get("near_duplicate_of") or i.lineage.get("copies_example")} for i in res.items if not i.kept]
        extra["coverage"] = res.coverage
        return adversarial_to_samples(res), dropped, res.counts(), extra

    if req.method == "augment":
        from .augment import AugmentConfig, counterfactual_samples, paraphrase_samples, rebalance
        samples = inputs.get("samples")
        if not samples:
            raise WorkbenchError("augment needs a dataset with samples (pass dataset)")
        op = p.get("op", "paraphrase")
        cfg = AugmentConfig(per_sample=int(p.get("per_sample", 1)), **bs)
        cfg = cfg.model_copy(update={"sampling": ov.apply(cfg.sampling)})
        kw = dict(source_ref=inputs["ref"], checkpoint=ckpt, should_stop=should_stop, progress=report)
        if op == "paraphrase":
            res = paraphrase_samples(backend, samples, cfg, **kw)
        elif op == "counterfactual":
            res = counterfactual_samples(backend, samples, cfg, **kw)
        elif op == "rebalance":
            if not p.get("by") or not p.get("target"):
                raise WorkbenchError("rebalance needs by (a field) and target ({group: proportion})")
            plan, res = rebalance(backend, samples, p["by"], {str(k): float(v) for k, v in p["target"].items()},
                                  total=p.get("total"), config=cfg, **kw)
            extra["plan"] = plan
        else:
            raise WorkbenchError(f"unknown augment op '{op}' (paraphrase, counterfactual, rebalance)")
        return res.samples, res.dropped, res.counts(), extra

    if req.method == "mine":
        from .mining import MinedSource, MiningConfig, mine_followups
        sources = _mined_sources(p, inputs, workspace, user)
        cfg = MiningConfig(per_source=int(p.get("per_source", 2)), **bs)
        cfg = cfg.model_copy(update={"sampling": ov.apply(cfg.sampling)})
        res = mine_followups(backend, sources, cfg, checkpoint=ckpt, should_stop=should_stop, progress=report)
        return res.samples, res.dropped, res.counts(), extra

    if req.method == "personas":
        from .personas import PersonaConfig, generate_persona_samples
        kw = {k: tuple(p[k]) for k in ("personas", "behaviours") if p.get(k)}
        cfg = PersonaConfig(per_combination=int(p.get("per_combination", 1)), **kw, **bs)
        cfg = cfg.model_copy(update={"sampling": ov.apply(cfg.sampling)})
        res = generate_persona_samples(backend, cfg, checkpoint=ckpt, should_stop=should_stop, progress=report)
        return res.samples, res.dropped, res.counts(), extra

    raise WorkbenchError(f"unknown generation method '{req.method}'")


def _mined_sources(p: dict, inputs: dict, workspace=None, user: str | None = None) -> list:
    from datastore import Sample
    from datastore.errors import FormatError
    from .mining import MinedSource
    if p.get("sources_file"):
        path = Path(p["sources_file"])
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                s = rec["sample"]
                reason = rec["reason"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise FormatError(f"expected {{\"sample\": {{...}}, \"reason\": ...}} ({e})", file=str(path),
                                  line=i) from e
            fields = {k: v for k, v in s.items() if k in Sample.__dataclass_fields__}
            out.append(MinedSource(sample=Sample(**fields), reason=str(reason),
                                   origin=rec.get("origin", "review_rejected"), ref=rec.get("ref") or {}))
        return out
    if p.get("review_task") is not None:
        from .mining import sources_from_review
        found = sources_from_review(workspace, p["review_task"], user=user, max_rating=p.get("max_rating", 2))
        if not found:
            raise WorkbenchError(f"review task {p['review_task']} has no rejected or low-rated samples")
        return found
    samples = inputs.get("samples")
    if samples:
        return [MinedSource(sample=s, reason=p.get("reason") or "rejected in review",
                            origin=p.get("origin", "review_rejected"), ref=dict(inputs["ref"])) for s in samples]
    raise WorkbenchError("mine needs sources: sources_file, or dataset with sample_ids and reason")


def generation_access(workspace: str | Path, user: str) -> dict:
    """``{"user", "role", "allowed"}`` for the faces to decide what to show (the service
    functions still check ``generate`` themselves). Raises NotFound for an unknown user."""
    from datastore import users as U
    from pipelines.policy import can
    with Store(workspace) as st:
        name, role = U.get_role(st, user)
    return {"user": name, "role": role, "allowed": can(role, "generate")}


def list_dataset_names(workspace: str | Path, *, user: str) -> list[str]:
    """Dataset names for the seed-set and source pickers (``read_datasets``)."""
    from pipelines.policy import require
    with Store(workspace) as st:
        require(st, user, "read_datasets")
        return [d.name for d in V.list_datasets(st)]
