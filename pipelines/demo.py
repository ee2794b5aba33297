"""The demo: the workspace that ``make run`` opens, and ``wb demo``, the main job end to end.

``seed_demo_workspace`` needs no model: it imports the project's own seed tasks and
samples (``pipelines/demo_data/``, written for this project) so the workbench opens on
something real. ``run_demo`` is the walking skeleton's main job.
"""
from __future__ import annotations

from pathlib import Path

from datastore import Store
from datastore import versions as V

DEMO_DATA = Path(__file__).parent / "demo_data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEMO_CURATOR = "demo-curator"


def seed_demo_workspace(workspace: str | Path) -> str:
    """Create the demo datasets if the workspace has none. Returns a one-line summary."""
    from .formats import import_file
    from .workspace import init_workspace

    init_workspace(workspace)
    with Store(workspace) as st:
        existing = {d.name for d in V.list_datasets(st)}
    if existing:
        return f"workspace {workspace} already has {len(existing)} dataset(s); left as it is"
    user = DEMO_CURATOR
    import_file(workspace, DEMO_DATA / "seed_tasks.jsonl", "seed-tasks", user=user, license="Apache-2.0",
                message="Instruction Workbench demo seed tasks")
    import_file(workspace, DEMO_DATA / "alpaca_samples.json", "demo-sft", user=user, license="Apache-2.0",
                message="demo instruction samples")
    import_file(workspace, DEMO_DATA / "chat_samples.json", "demo-chat", user=user, license="Apache-2.0",
                message="demo conversations")
    _demo_edit(workspace, user)
    logins = _demo_users(workspace)
    _demo_review_task(workspace)
    lines = [f"demo workspace ready at {workspace}: datasets seed-tasks, demo-sft (2 versions), demo-chat; "
             f"review task '{DEMO_TASK}' on demo-sft",
             "web logins (shown only this once; change them with `wb user password NAME`):"]
    lines += [f"  {name:<18} {role:<12} {pw}" for name, role, pw in logins]
    return "\n".join(lines)


#: One user per role, plus a second annotator so each sample gets k = 2.
DEMO_USERS = (("demo-admin", "admin"), ("demo-curator", "curator"), ("demo-adjudicator", "adjudicator"),
              ("demo-annotator", "annotator"), ("demo-annotator-2", "annotator"))
DEMO_TASK = "demo-review"


def _demo_users(workspace) -> list[tuple[str, str, str]]:
    """Create the demo users with generated passwords (returned, never stored in clear)."""
    from .auth import add_user, generate_password
    out = []
    for i, (name, role) in enumerate(DEMO_USERS):
        pw = generate_password()
        add_user(workspace, None if i == 0 else DEMO_USERS[0][0], name, role, pw)
        out.append((name, role, pw))
    return out


def _demo_review_task(workspace) -> None:
    """A review task on demo-sft (k = 2, the two demo annotators) with guidelines and model
    suggestions, so the tour can annotate, adjudicate and read agreement."""
    from .review import tasks
    guidelines = ("### Guidelines\n"
                  "- **Accept** (key A) a correct, helpful, safe answer.\n"
                  "- **Reject** (key X) a wrong or unsafe one; **edit** to fix the response.\n"
                  "- Rate quality 1-5 (keys 1-5). Suggestions are model drafts: check them before taking one (T).\n")
    t = tasks.open_task(workspace, "demo-curator", name=DEMO_TASK, dataset="demo-sft",
                        pool=["demo-annotator", "demo-annotator-2"], guidelines=guidelines)
    with Store(workspace) as st:
        head = V.resolve(st, "demo-sft")
        ids = [s.sample_id for s in V.read_page(st, head, limit=3)]
    sugg = [{"sample_id": ids[0], "source": "scoring_head", "decision": "accept", "score": 0.87,
             "model": "demo scoring head"},
            {"sample_id": ids[1], "source": "reference", "text": "A reference answer written by the curator.",
             "score": 0.42}]
    tasks.add_suggestions(workspace, "demo-curator", t.dataset, sugg[: len(ids)])


def _demo_edit(workspace, user: str) -> None:
    """A second version of demo-sft, so the version log and Compare have something to show:
    one answer improved, one sample removed, one added."""
    import dataclasses

    from datastore import Sample
    with Store(workspace) as st:
        head = V.resolve(st, "demo-sft")
        by_instr = {s.instruction: s for s in V.iter_samples(st, head)}
        fix = by_instr["Give a synonym for 'quick'."]
        drop = by_instr["What does HTTP stand for?"]
        improved = dataclasses.replace(fix, output="Fast. Other options: rapid, swift, speedy.")
        new = Sample(instruction="What does HTTPS add to HTTP?", input="",
                     output="Encryption and server authentication through TLS, so traffic cannot be read or "
                            "altered in transit.", source="demo-curator", license="Apache-2.0",
                     layout={"schema": "alpaca", "keys": ["instruction", "input", "output"]})
        V.commit(st, "demo-sft", author=user, message="review pass: improve one answer, replace the HTTP question",
                 update={fix.sample_id: improved.to_row()}, remove=[drop.sample_id], add=[new.to_row()],
                 operation={"op": "edit", "by": user})


def _data_file(shared_rel: str, fallback: str) -> Path:
    p = SHARED_DATA / shared_rel
    return p if p.exists() else DEMO_DATA / fallback


def run_demo(workspace: str | Path, *, small: bool = False, seed: int = 0, say=print) -> dict:
    """The main job end to end on real data.

    1. import the Self-Instruct seed tasks (``../shared/data``, else the project's own) and an
       Alpaca-format file into the training dataset;
    2. generate instructions with the embedded model and the Self-Instruct prompt
       (8 in-context examples; length, blacklist, punctuation, non-ASCII, "Write a program"
       and ROUGE-L 0.7 filters), answer them, and commit the candidates into a staging
       dataset as a version;
    3. accept the kept candidates as the demo curator and merge them into the training
       dataset as a new version;
    4. render that version with the ChatML template and run the preflight (training and
       serving template both ChatML; over-length samples dropped, and said so);
    5. run a short LoRA fine-tune pinned to that version (its Parquet export in the run folder);
    6. reload the adapter and generate one answer.

    Checks (raise WorkbenchError when one fails): at least 5 instructions kept; final
    training loss below the first; the reloaded adapter's logits equal the trained model's
    within 1e-4 and differ from the base model's. ``small`` is the CI size (fewer training
    steps, shorter answers) with the same checks.

    Returns a summary dict (also written as ``demo_summary.json`` in the run folder).
    """
    import json
    import time

    from datastore import WorkbenchError
    from .curation import accept_candidates, merge_accepted, stage_candidates
    from .formats import export_version, import_file
    from .generate.backends import SamplingConfig, get_backend
    from .generate.self_instruct import demo_config, generate_responses, run_self_instruct
    from .models import MODEL_NAME, ensure_base_model, offline_env
    from .render import render_sample, template_info
    from .train.config import DatasetRef, TrainConfig
    from .train.sft import run_sft
    from .preflight import run_preflight
    from .train.evaluate import loss_before_after
    from .train.verify import verify_adapter
    from .workspace import init_workspace
    from datastore import Sample

    offline_env()
    t0 = time.monotonic()
    ws = Path(workspace)
    user = DEMO_CURATOR
    step = 0

    def say_step(msg: str) -> None:
        nonlocal step
        step += 1
        say(f"[{step}] {msg}  (at {time.monotonic() - t0:.0f} s)")

    init_workspace(ws)
    with Store(ws) as st:
        if V.list_datasets(st):
            raise WorkbenchError(f"wb demo needs a fresh workspace; {ws} already has datasets")
    base_dir = ensure_base_model(verbose=True)

    seeds_file = _data_file("self-instruct-seed-tasks/seed_tasks.jsonl", "seed_tasks.jsonl")
    rep = import_file(ws, seeds_file, "seed-tasks", user=user, license="Apache-2.0")
    say_step(f"imported {rep.imported} Self-Instruct seed tasks from {seeds_file.name} -> seed-tasks v{rep.version}")
    alpaca_file = _data_file("alpaca-format-samples/code_alpaca_2k.json", "alpaca_samples.json")
    rep = import_file(ws, alpaca_file, "sft-train", user=user, license="Apache-2.0")
    say_step(f"imported {rep.imported} Alpaca samples from {alpaca_file.name} -> sft-train v{rep.version} "
             f"(hash {rep.content_hash[:12]})")
    empty = [w for w in rep.warnings if w["message"].startswith("empty answer")]
    if empty:  # code_alpaca_2k holds answers that are "": preflight would stop training on them
        from .curate.filter import filter_version
        fv = filter_version(ws, "sft-train", user=user, where="response_words > 0")
        say(f"    {len(empty)} sample(s) with an empty answer (import warnings, rows "
            f"{', '.join(str(w['row']) for w in empty[:5])}) filtered out -> sft-train v{fv.number}")

    with Store(ws) as st:
        seeds = [s.instruction for s in V.iter_samples(st, V.resolve(st, "seed-tasks"))]
    backend = get_backend("transformers", model_path=str(base_dir), num_threads=1)
    cfg = demo_config(seed)
    res = run_self_instruct(backend, seeds, config=cfg, target_kept=5, max_rounds=4,
                            progress=lambda p: say(f"    round {p.get('round')}: kept {p.get('kept')} "
                                                   f"of {p.get('generated')} generated"))
    dropped = {k: v for k, v in res.dropped.items() if v}
    say_step(f"generated {res.generated} instructions with Self-Instruct (8 in-context examples): "
             f"kept {len(res.kept)}, dropped {dropped}")
    if len(res.kept) < 5:
        raise WorkbenchError(f"the generator kept only {len(res.kept)} instructions (at least 5 needed)")
    answers = generate_responses(backend, [k.instruction for k in res.kept],
                                 SamplingConfig(max_tokens=64 if small else 128, seed=seed, temperature=0.7, top_p=0.5))
    candidates = []
    for k, a in zip(res.kept, answers):
        lineage = {**k.lineage, "response": {"model": a.model, "backend": a.backend, "sampling": a.sampling,
                                             "seed": a.seed, "finish_reason": a.finish_reason}}
        candidates.append(Sample(kind="instruction", instruction=k.instruction, input="", output=a.text.strip(),
                                 source="self-instruct", task_type="generated", lineage=lineage,
                                 layout={"schema": "alpaca", "keys": ["instruction", "input", "output"]}))
    sv = stage_candidates(ws, "self-instruct-candidates", candidates, user=user,
                          message=f"Self-Instruct round(s): {len(candidates)} kept candidates",
                          operation={"op": "generate", "generator": "self-instruct", "model": MODEL_NAME,
                                     "kept": len(candidates), "generated": res.generated, "dropped": dropped})
    say_step(f"committed {sv.n_added} candidates with answers -> self-instruct-candidates v{sv.number} (staging)")
    for c in candidates[:3]:
        say(f"    - {c.instruction[:100]}")

    with Store(ws) as st:
        ids = [s.sample_id for s in V.iter_samples(st, V.resolve(st, "self-instruct-candidates"))]
    av = accept_candidates(ws, "self-instruct-candidates", ids, user=user,
                           note=f"demo: {user} accepts the {len(ids)} kept candidates")
    tv = merge_accepted(ws, "self-instruct-candidates", "sft-train", user=user)
    say_step(f"{user} accepted {len(ids)} candidates (staging v{av.number}); merged into sft-train v{tv.number} "
             f"({tv.n_samples} samples, hash {tv.content_hash[:12]})")

    run_dir = ws / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    export_version(ws, "sft-train", tv.number, "parquet", run_dir / "data" / "sft-train.parquet")
    with Store(ws) as st:
        samples = [s for s in V.iter_samples(st, tv) if s.output is not None or s.kind == "conversation"]
    chatml = template_info("chatml")
    with open(run_dir / "rendered_chatml.jsonl", "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"sample_id": s.sample_id, "text": render_sample(s, "chatml")}, ensure_ascii=False) + "\n")
    say_step(f"rendered {len(samples)} samples with ChatML (template hash {chatml['sha256'][:12]}); first one:")
    say("    " + render_sample(samples[-1], "chatml").replace("\n", "\n    ")[:400])

    tcfg = TrainConfig(base_model=str(base_dir), base_model_name=MODEL_NAME, max_steps=12 if small else 20,
                       per_device_batch_size=4, max_length_tokens=128 if small else 256, learning_rate=1e-3,
                       seed=seed, template="chatml",
                       datasets=[DatasetRef(dataset="sft-train", version_number=tv.number, version_id=tv.version_id,
                                            content_hash=tv.content_hash)])
    pre = run_preflight(ws, "sft-train", tv.number, train_template="chatml", serve_template="chatml",
                        tokenizer_path=str(base_dir), max_length_tokens=tcfg.max_length_tokens,
                        over_length_policy="drop")
    for line in pre.summary_lines():
        if line.startswith(("preflight", "over length", "[warn]", "[ERROR]", "result")):
            say("    " + line)
    conversations = pre.apply({s.sample_id: s.turns() for s in samples})   # stops on errors
    say_step(f"training LoRA r={tcfg.lora_r} alpha={tcfg.lora_alpha} on {', '.join(tcfg.target_modules)} "
             f"for {tcfg.max_steps} steps, pinned to sft-train v{tv.number} ({tv.content_hash[:12]})")
    result = run_sft(tcfg, conversations, run_dir, preflight=pre,
                     progress=lambda p: say(f"    step {p['step']}/{p['total']} loss {p['loss']:.3f} "
                                            f"({p.get('remaining_s') or 0:.0f} s left)")
                     if p.get("loss") is not None else None)
    fixed = loss_before_after(run_dir, conversations, n=16)
    say(f"    logged step losses: first {result.first_loss:.3f}, last {result.final_loss:.3f} (different batches)")
    say(f"    training loss on a fixed set of {fixed['n_conversations']} training conversations: "
        f"first (before training) {fixed['before']:.3f} -> final {fixed['after']:.3f}; adapter {result.adapter_dir}")
    if not (fixed["after"] < fixed["before"]):
        raise WorkbenchError(f"training did not reduce the loss ({fixed['before']:.3f} -> {fixed['after']:.3f})")

    ver = verify_adapter(run_dir)
    say_step(f"reloaded the adapter: max |logit diff| vs trained {ver['max_abs_diff_trained']:.2e} "
             f"(<= 1e-4), vs base {ver['max_abs_diff_base']:.3f} (> 0)")
    say(f"    Q: {ver['probe_prompt']}\n    A: {ver['answer'].strip()[:300]}")
    if not ver["ok"]:
        raise WorkbenchError(f"adapter check failed: {ver}")
    summary = {"workspace": str(ws), "run_dir": str(run_dir), "run_card": str(run_dir / "run_card.json"),
               "kept": len(res.kept), "generated": res.generated, "dropped": dropped,
               "train_version": tv.number, "train_version_id": tv.version_id, "content_hash": tv.content_hash,
               "template_sha256": chatml["sha256"], "first_loss": fixed["before"], "final_loss": fixed["after"],
               "logged_first_step_loss": result.first_loss, "logged_last_step_loss": result.final_loss,
               "max_abs_diff_trained": ver["max_abs_diff_trained"], "max_abs_diff_base": ver["max_abs_diff_base"],
               "answer": ver["answer"], "elapsed_s": time.monotonic() - t0}
    (run_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
