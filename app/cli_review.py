"""``wb`` commands of the review area: users, tasks, annotation, agreement, adjudication.

The CLI acts as ``--user``/``$WB_USER`` without a password: whoever can run ``wb`` on the
workspace folder can already read and write its DuckDB file, so file-system access is the
guard here; passwords guard the web UI (docs/review.md, "Decisions"). When a workspace has
users and none is given, commands fail with a one-line message.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table


user_app = typer.Typer(help="Users and roles (admins).", no_args_is_help=True)
task_app = typer.Typer(help="Review tasks: open, list, show, merge, export.", no_args_is_help=True)
annotate_app = typer.Typer(help="Annotate: your next item, submit an answer.", no_args_is_help=True)
adjudicate_app = typer.Typer(help="Adjudicate: the queue of disagreements, resolve one.", no_args_is_help=True)
gold_app = typer.Typer(help="Gold items with expected answers (curators).", no_args_is_help=True)


def _cli():
    from app import cli
    return cli


def _actor() -> str | None:
    """The acting user as given (``--user``/``WB_USER``); services check it."""
    return _cli().state.user


def _ws() -> Path:
    return _cli().state.workspace


# ---------------------------------------------------------------- users
@user_app.command("add")
def user_add(name: str = typer.Argument(...), role: str = typer.Option(..., "--role", "-r",
                                                                      help="annotator|adjudicator|curator|admin"),
             password: Optional[str] = typer.Option(None, "--password", help="Web UI password (prompted when absent)."),
             no_password: bool = typer.Option(False, "--no-password", help="CLI-only user without a web login.")):
    """Add a user (the first user can be added by anyone: the local admin)."""
    from pipelines import auth
    if password is None and not no_password:
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    u = auth.add_user(_ws(), _actor(), name, role, None if no_password else password)
    _cli().out.print(f"added user [bold]{u.name}[/] as {u.role}" + ("" if u.has_password else " (no web login)"))


@user_app.command("role")
def user_role(name: str = typer.Argument(...), role: str = typer.Argument(..., help="annotator|adjudicator|curator|admin")):
    """Change a user's role."""
    from pipelines import auth
    auth.set_role(_ws(), _actor(), name, role)
    _cli().out.print(f"{name} is now {role}")


@user_app.command("password")
def user_password(name: str = typer.Argument(...),
                  password: Optional[str] = typer.Option(None, "--password", help="Prompted when absent.")):
    """Set a user's web password (admins for anyone; a user for themself)."""
    from pipelines import auth
    if password is None:
        password = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True)
    auth.set_password(_ws(), _actor(), name, password)
    _cli().out.print(f"password of {name} changed")


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json")):
    """Users with their roles."""
    from pipelines import auth
    users = auth.list_users(_ws(), _actor())
    if as_json:
        return _cli()._json([{"name": u.name, "role": u.role, "web_login": u.has_password,
                              "created_at": u.created_at} for u in users])
    t = Table("name", "role", "web login", "created")
    for u in users:
        t.add_row(u.name, u.role, "yes" if u.has_password else "no", str(u.created_at)[:19])
    _cli().out.print(t)


# ---------------------------------------------------------------- tasks
@task_app.command("open")
def task_open(name: str = typer.Option(..., "--name", "-n"), dataset: str = typer.Option(..., "--dataset", "-d"),
              version: Optional[str] = typer.Option(None, "--version", "-v"),
              k: int = typer.Option(2, "--k", help="Distinct annotators per sample (overlap)."),
              pool: Optional[str] = typer.Option(None, "--pool", help="Comma-separated annotators (default: all annotators)."),
              guidelines: Optional[Path] = typer.Option(None, "--guidelines", help="Markdown file."),
              questions: Optional[Path] = typer.Option(None, "--questions", help="JSON list of questions (default form otherwise)."),
              target: Optional[str] = typer.Option(None, "--target", help="Dataset that accepted staging samples merge into."),
              as_json: bool = typer.Option(False, "--json")):
    """Open a review task on a dataset version."""
    from pipelines.review import tasks
    qs = None
    if questions:
        try:
            qs = json.loads(questions.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            from datastore import FormatError
            raise FormatError(str(e.msg), file=str(questions), line=e.lineno) from None
    t = tasks.open_task(_ws(), _actor(), name=name, dataset=dataset, version=version, overlap_k=k,
                        pool=[p.strip() for p in pool.split(",") if p.strip()] if pool else None,
                        guidelines=guidelines.read_text(encoding="utf-8") if guidelines else "",
                        questions=qs, target_dataset=target)
    if as_json:
        return _cli()._json(t.__dict__)
    _cli().out.print(f"opened task [bold]{t.name}[/] (#{t.task_id}) on {t.dataset} v{t.version_number}: "
                     f"k={t.overlap_k}, pool {', '.join(t.pool)}")


@task_app.command("list")
def task_list(dataset: Optional[str] = typer.Option(None, "--dataset", "-d"), as_json: bool = typer.Option(False, "--json")):
    """Tasks you can see."""
    from pipelines.review import tasks
    ts = tasks.list_tasks(_ws(), _actor(), dataset)
    if as_json:
        return _cli()._json([t.__dict__ for t in ts])
    t = Table("id", "name", "dataset", "version", "k", "pool", "status")
    for x in ts:
        t.add_row(str(x.task_id), x.name, x.dataset, str(x.version_number), str(x.overlap_k), ", ".join(x.pool), x.status)
    _cli().out.print(t)


@task_app.command("show")
def task_show(task: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")):
    """Counts of a task: items, assignments, annotations, adjudication queue."""
    from pipelines.review import tasks
    s = tasks.task_summary(_ws(), _actor(), task)
    if as_json:
        return _cli()._json(s)
    for k_, v in s.items():
        _cli().out.print(f"[bold]{k_}[/]: {v}")


@task_app.command("merge")
def task_merge(task: str = typer.Argument(...),
               allow_incomplete: bool = typer.Option(False, "--allow-incomplete")):
    """Accept consensus items and merge a staging task's accepted samples into its target."""
    from pipelines.review import adjudicate
    v = adjudicate.merge_task(_ws(), _actor(), task, allow_incomplete=allow_incomplete)
    _cli().out.print(f"merged into {v.dataset} v{v.number} ({v.n_added} added)")


@task_app.command("export")
def task_export(task: str = typer.Argument(...), out_path: Path = typer.Option(..., "--out", "-o"),
                fmt: str = typer.Option("parquet", "--format", "-f", help="parquet|jsonl")):
    """Export a task's samples with every annotation and adjudication."""
    from pipelines.review import export
    r = export.export_annotations(_ws(), _actor(), task, out_path, fmt=fmt)
    _cli().out.print(f"wrote {r['items']} items with {r['annotations']} annotations to {r['path']}")


# ---------------------------------------------------------------- annotate
@annotate_app.command("next")
def annotate_next(task: str = typer.Option(..., "--task", "-t"), as_json: bool = typer.Option(False, "--json")):
    """Your next item (sample, suggestions, your draft)."""
    from dataclasses import asdict

    from pipelines.review import annotate
    it = annotate.next_item(_ws(), _actor(), task)
    if it is None:
        return _cli().out.print("your queue is empty")
    if as_json:
        return _cli()._json(asdict(it))
    out = _cli().out
    out.rule(f"task {it.task} · sample #{it.sample.sample_id} · {it.progress['done']}/{it.progress['total']} done")
    for turn in it.sample.turns():
        out.print(f"[bold cyan]{turn['role']}[/]: {turn.get('content')}", highlight=False)
    for s in it.suggestions:
        score = "" if s.get("score") is None else f"score {s['score']:.2f}"
        out.print(f"[magenta]suggestion ({s['source']})[/]: {s.get('text') or s.get('decision') or ''} {score}",
                  highlight=False)
    out.print(f"submit with: wb annotate submit --task {it.task} --sample {it.sample.sample_id} --decision accept")


@annotate_app.command("submit")
def annotate_submit(task: str = typer.Option(..., "--task", "-t"), sample: int = typer.Option(..., "--sample", "-s"),
                    decision: str = typer.Option(..., "--decision", help="accept|reject|edit"),
                    rating: Optional[int] = typer.Option(None, "--rating"),
                    response: Optional[str] = typer.Option(None, "--response", help="Corrected response (edit)."),
                    instruction: Optional[str] = typer.Option(None, "--instruction", help="Corrected instruction (edit)."),
                    difficulty: Optional[str] = typer.Option(None, "--difficulty"),
                    policy_domain: Optional[str] = typer.Option(None, "--policy-domain"),
                    flag: Optional[List[str]] = typer.Option(None, "--flag", help="Repeatable."),
                    note: Optional[str] = typer.Option(None, "--note"),
                    answers_json: Optional[str] = typer.Option(None, "--answers", help="Extra answers as JSON (custom questions)."),
                    submit_id: Optional[str] = typer.Option(None, "--submit-id", help="Reuse to retry safely.")):
    """Submit your answer for one sample (idempotent with --submit-id)."""
    from pipelines.review import annotate
    answers = json.loads(answers_json) if answers_json else {}
    answers.update({k_: v for k_, v in {"decision": decision, "rating": rating, "difficulty": difficulty,
                                         "policy_domain": policy_domain, "flags": list(flag or []) or None,
                                         "note": note}.items() if v is not None})
    if response or instruction:
        answers["edit"] = {k_: v for k_, v in {"response": response, "instruction": instruction}.items() if v}
    sid = submit_id or annotate.new_submit_id()
    ack = annotate.submit(_ws(), _actor(), task, sample, answers, submit_id=sid)
    # no global annotation id: it would tell an annotator how many answers others gave
    p = annotate.my_progress(_ws(), _actor(), task)
    _cli().out.print(f"sample #{sample} {'saved' if ack.written else 'was already saved'}: "
                     f"{p['done']} of {p['total']} done, {p['pending']} to go (submit id {ack.submit_id})")


# ---------------------------------------------------------------- agreement
def agreement_cmd(task: str = typer.Option(..., "--task", "-t"), as_json: bool = typer.Option(False, "--json")):
    """Inter-annotator agreement: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha."""
    from pipelines.review import agreement
    rep = agreement.agreement_report(_ws(), _actor(), task)
    if as_json:
        return _cli()._json(rep)

    def f(x):
        return "–" if x is None else f"{x:.3f}"
    out = _cli().out
    out.print(f"[bold]{rep['task']}[/] on {rep['dataset']} v{rep['version']} (items: {rep['scope']})")
    t = Table("question", "level", "Krippendorff α", "items", "Fleiss κ", "items", "pairs (Cohen κ, items)")
    for q in rep["questions"]:
        t.add_row(q["question"], q["level"], f(q["krippendorff_alpha"]), str(q["alpha_items"]), f(q["fleiss_kappa"]),
                  str(q["fleiss_items"]), "; ".join(f"{p['a']}-{p['b']} {f(p['cohen_kappa'])} ({p['items']})"
                                                   for p in q["pairs"][:6]))
    out.print(t)
    t = Table("annotator", "annotations", "per hour", "median s", "agree w/ others", "κ w/ others",
              "agree w/ adjudicated", "gold accuracy")
    for r in rep["annotators"]:
        t.add_row(r["annotator"], str(r["annotations"]), str(r["throughput_per_hour"] or "–"), str(r["median_time_s"] or "–"),
                  f(r["agreement_with_others"]), f(r["kappa_with_others"]),
                  f"{f(r['agreement_with_adjudicated'])} ({r['adjudicated_items']})",
                  f"{f(r['gold_accuracy'])} ({r['gold_items']})")
    out.print(t)


# ---------------------------------------------------------------- adjudicate
@adjudicate_app.command("queue")
def adjudicate_queue(task: str = typer.Option(..., "--task", "-t"), limit: int = typer.Option(20, "--limit", "-n"),
                     as_json: bool = typer.Option(False, "--json")):
    """Samples whose annotators disagree (or rejected/edited), lowest agreement first."""
    from pipelines.review import adjudicate
    q = adjudicate.adjudication_queue(_ws(), _actor(), task, limit=limit)
    if as_json:
        return _cli()._json(q)
    t = Table("sample", "annotations", "decisions", "reject/edit", "rating spread", "agreement")
    for r in q:
        t.add_row(str(r["sample_id"]), str(r["n_annotations"]), str(r["n_decisions"]), str(r["n_reject_or_edit"]),
                  str(r["rating_spread"]), f"{r['agreement']:.2f}")
    _cli().out.print(t)


@adjudicate_app.command("show")
def adjudicate_show(task: str = typer.Option(..., "--task", "-t"), sample: int = typer.Option(..., "--sample", "-s"),
                    hide_names: bool = typer.Option(False, "--hide-names"), as_json: bool = typer.Option(False, "--json")):
    """All answers on one sample, side by side."""
    from dataclasses import asdict

    from pipelines.review import adjudicate
    d = adjudicate.item_answers(_ws(), _actor(), task, sample, hide_names=hide_names)
    if as_json:
        return _cli()._json({**d, "sample": asdict(d["sample"]) if d["sample"] else None,
                             "last_revision": asdict(d["last_revision"]) if d["last_revision"] else None})
    out = _cli().out
    shown = d["sample"]
    if shown is None:   # removed from the dataset (e.g. by its own adjudication, a reject)
        gone = f"in v{d['removed_in']}" if d["removed_in"] else "(no version holds it any more)"
        out.print(f"[yellow]sample #{sample} was removed from dataset '{escape(d['dataset'])}' {gone}[/]"
                  + ("; its last revision:" if d["last_revision"] else ""), highlight=False)
        shown = d["last_revision"]
    for turn in shown.turns() if shown else []:
        out.print(f"[bold cyan]{escape(turn['role'])}[/]: {escape(str(turn.get('content')))}", highlight=False)
    for a in d["annotations"]:
        out.print(f"[bold]#{a['annotation_id']} {escape(a['annotator'])}[/]: "
                  f"{escape(json.dumps(a['answers'], ensure_ascii=False))}", highlight=False)
    for r in d["adjudications"]:
        where = f"v{r['version_number']}" if r["version_number"] else "no sample change"
        picked = f", picked #{r['chosen_annotation_id']}" if r["chosen_annotation_id"] else ""
        out.print(f"[bold]adjudicated[/] by {escape(r['adjudicator'])}: {r['decision']}{picked} ({where})"
                  + (f": {escape(r['note'])}" if r["note"] else ""), highlight=False)
    if not d["adjudications"] and d["state"] != "open":
        out.print(f"item state: {d['state']}", highlight=False)


@adjudicate_app.command("resolve")
def adjudicate_resolve(task: str = typer.Option(..., "--task", "-t"), sample: int = typer.Option(..., "--sample", "-s"),
                       pick: Optional[int] = typer.Option(None, "--pick", help="Annotation id to take."),
                       decision: Optional[str] = typer.Option(None, "--decision"),
                       response: Optional[str] = typer.Option(None, "--response", help="Final response text."),
                       instruction: Optional[str] = typer.Option(None, "--instruction"),
                       note: Optional[str] = typer.Option(None, "--note", help="Why (goes into the version log).")):
    """Resolve one sample: pick an answer, or give the final decision/text."""
    from pipelines.review import adjudicate
    final = {}
    if response or instruction:
        final = {"decision": "edit", "edit": {k_: v for k_, v in {"response": response, "instruction": instruction}.items() if v}}
    r = adjudicate.adjudicate(_ws(), _actor(), task, sample, decision=decision, pick=pick, final=final or None, note=note)
    where = f"new version v{r['version']}" if r["version"] else "no sample change"
    _cli().out.print(f"adjudication {r['adjudication_id']}: {r['decision']} ({where})")


# ---------------------------------------------------------------- gold
@gold_app.command("mark")
def gold_mark(task: str = typer.Option(..., "--task", "-t"), sample: int = typer.Option(..., "--sample", "-s"),
              decision: str = typer.Option(..., "--decision"), rating: Optional[int] = typer.Option(None, "--rating")):
    """Mark a sample gold with its expected answer (mixed unannounced into every queue)."""
    from pipelines.review import gold
    expected = {"decision": decision, **({"rating": rating} if rating is not None else {})}
    gold.mark_gold(_ws(), _actor(), task, sample, expected)
    _cli().out.print(f"sample {sample} is gold in task {task}")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(task_app, name="task")
    app.add_typer(annotate_app, name="annotate")
    app.add_typer(adjudicate_app, name="adjudicate")
    app.add_typer(gold_app, name="gold")
    app.command("agreement")(agreement_cmd)


