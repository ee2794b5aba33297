"""The ``wb`` command line: a thin face over ``pipelines`` (no SQL, no business rules).

Global options: ``--workspace DIR`` (default ``./workspace`` or ``$WB_WORKSPACE``) and
``--user NAME`` (or ``$WB_USER``; before any user exists, commands act as the local admin),
before or after the subcommand; ``--json`` (on every command that prints a table or data)
before or after it too (:func:`hoist_global_options`).

Errors (:func:`main`): a usage error (unknown option, missing argument, bad value) prints the
usage line and ``Error: ...`` and exits 2, as every click program does; a
:class:`~datastore.errors.WorkbenchError` prints one line ``error: ...`` and exits 1; any other
exception prints one line naming it and exits 1, with the traceback only when ``WB_DEBUG=1``.

Start-up: ``wb --help`` must answer in under 0.5 s, so this module and the area modules import
only typer, rich's console and :mod:`datastore.errors` at module level; each command imports
what it needs (pipelines, and through them duckdb, pyarrow, torch...) inside its function, and
heavy libraries bound at module level go through :func:`datastore.lazy.lazy`.
tests/app/test_cli_startup.py checks by module name what ``wb --help`` loads.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from datastore.errors import WorkbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Instruction Workbench: curate instruction and chat datasets for SFT.")
# Piped output is not wrapped at 80 columns (scripts read it); a terminal keeps its width.
out = Console(soft_wrap=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


class State:
    workspace: Path = Path("workspace")
    user: Optional[str] = None


state = State()


@app.callback()
def _main(workspace: Path = typer.Option(None, "--workspace", "-w", envvar="WB_WORKSPACE",
                                         help="Workspace folder (default ./workspace)."),
          user: str = typer.Option(None, "--user", "-u", envvar="WB_USER",
                                   help="Act as this user (default: the local admin while no user exists).")):
    state.workspace = workspace or Path("workspace")
    state.user = user


def _user() -> str:
    from pipelines import workspace as W
    return W.current_user(state.workspace, state.user)


def _json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def _progress(as_json: bool = False):
    """A ``rich.progress.Progress`` on stderr for a long command (``with _progress(as_json) as p``):
    spinner, description, bar, done/total and elapsed time. Disabled (draws nothing) when stderr
    is not a terminal or the command prints ``--json``, so scripts and logs get no bar."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err,
                    transient=True, disable=as_json or not err.is_terminal)


@app.command()
def init():
    """Create the workspace (folder and DuckDB file) if it does not exist."""
    from pipelines import workspace as W
    p = W.init_workspace(state.workspace)
    out.print(f"workspace ready: {p}")


@app.command("import")
def import_(path: Path = typer.Argument(..., help="File or Hugging Face datasets folder."),
            dataset: str = typer.Option(..., "--dataset", "-d"),
            format: Optional[str] = typer.Option(None, "--format", "-f",
                                                 help="alpaca|sharegpt|messages|self-instruct|json|jsonl|csv|parquet|hf (default: detected from the content)"),
            quarantine: bool = typer.Option(False, "--quarantine", help="Import the good rows; keep bad ones with their reasons."),
            map_: Optional[str] = typer.Option(None, "--map", help="Column mapping, e.g. instruction=question,output=response,system=system_prompt"),
            merge_same_role: bool = typer.Option(False, "--merge-same-role", help="Join consecutive turns of the same role."),
            license: Optional[str] = typer.Option(None, "--license", help="Licence of the file (SPDX id), kept per sample."),
            staging: bool = typer.Option(False, "--staging", help="Create the dataset as a staging dataset."),
            message: Optional[str] = typer.Option(None, "--message", "-m"),
            reasoning_markers: Optional[str] = typer.Option(
                None, "--reasoning-markers",
                help="think|thought|auto: move reasoning written inline at the start of assistant turns "
                     "(<think>...</think>, <|begin_of_thought|>...<|end_of_thought|>) into reasoning_content."),
            delimiter: Optional[str] = typer.Option(None, "--delimiter", help="CSV delimiter, e.g. ';' or tab (default: sniffed among comma, semicolon, tab)."),
            as_json: bool = typer.Option(False, "--json")):
    """Import a file as a new version of DATASET (atomic unless --quarantine)."""
    from pipelines.formats import import_file
    mapping = None
    if map_:
        mapping = {}
        for part in map_.split(","):
            if "=" not in part:
                raise WorkbenchError(f"--map expects FIELD=COLUMN pairs, got '{part}'")
            k, v = part.split("=", 1)
            mapping[k.strip()] = v.strip()
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1:
            raise WorkbenchError(f"--delimiter takes one character (or 'tab'), got {delimiter!r}")
    with _progress(as_json) as prog:
        task = prog.add_task(f"importing {path.name}", total=None)
        rep = import_file(state.workspace, path, dataset, user=_user(), fmt=format, quarantine=quarantine,
                          mapping=mapping, merge_same_role=merge_same_role, license=license,
                          kind="staging" if staging else "sft", message=message, delimiter=delimiter,
                          progress=lambda i: prog.update(task, completed=i), reasoning_markers=reasoning_markers)
    if as_json:
        return _json(rep.as_dict())
    out.print(f"imported {rep.imported} samples into [bold]{dataset}[/] v{rep.version} "
              f"({rep.schema} in {rep.container}); {rep.trainable} trainable as they stand; "
              f"{rep.quarantined} quarantined; content hash {rep.content_hash[:12]}")
    if rep.dialect and "delimiter" in rep.dialect:
        out.print(f"read as CSV: delimiter {rep.dialect['delimiter']!r}, quote {rep.dialect['quotechar']!r}, "
                  f"encoding {rep.dialect['encoding']}", highlight=False)
    for w in rep.warnings[:20]:
        err.print(f"warning: row {w['row']}: {w['message']}", markup=False, highlight=False)
    if rep.n_warnings > 20:
        err.print(f"... {rep.n_warnings - 20} more warnings")


@app.command()
def export(dataset: str = typer.Option(..., "--dataset", "-d"),
           version: Optional[str] = typer.Option(None, "--version", "-v", help="Number, tag or id (default: head)."),
           format: str = typer.Option(..., "--format", "-f", help="alpaca|sharegpt|messages|self-instruct|csv|parquet|hf"),
           out_path: Path = typer.Option(..., "--out", "-o"),
           reasoning: str = typer.Option("keep", "--reasoning",
                                         help="keep|inline: keep reasoning_content as a field, or write it "
                                              "inline between its markers (as imported, else <think>...</think>)."),
           as_json: bool = typer.Option(False, "--json")):
    """Export one version of a dataset."""
    from pipelines.formats import export_version
    with _progress(as_json) as prog:
        prog.add_task(f"exporting {dataset}", total=None)
        res = export_version(state.workspace, dataset, version, format, out_path, reasoning=reasoning)
    if as_json:
        return _json(res)
    out.print(f"wrote {res['records']} records of {dataset} v{res['version']} to {res['path']}")


@app.command()
def datasets(as_json: bool = typer.Option(False, "--json")):
    """List the datasets of the workspace."""
    from pipelines import catalog
    rows = catalog.list_datasets(state.workspace)
    if as_json:
        return _json(rows)
    t = Table("name", "kind", "versions", "samples", "content hash", "updated")
    for r in rows:
        t.add_row(*map(Text, (r["name"], r["kind"], str(r["versions"]), str(r["samples"]),
                              r["content_hash"] or "", str(r["updated_at"])[:19])))
    out.print(t)


@app.command()
def log(dataset: str = typer.Option(..., "--dataset", "-d"), as_json: bool = typer.Option(False, "--json")):
    """Versions of a dataset, newest first."""
    from pipelines import catalog
    vs = catalog.dataset_log(state.workspace, dataset)
    if as_json:
        return _json([v.as_dict() for v in vs])
    t = Table("v", "id", "tags", "author", "when", "samples", "+", "-", "~", "message")
    for v in vs:
        t.add_row(*map(Text, (str(v.number), v.version_id, ",".join(v.tags), v.author, str(v.created_at)[:19],
                              str(v.n_samples), str(v.n_added), str(v.n_removed), str(v.n_modified),
                              v.message or "")))
    out.print(t)


@app.command()
def diff(a: str = typer.Argument(..., help="Version A"), b: str = typer.Argument(..., help="Version B"),
         dataset: str = typer.Option(..., "--dataset", "-d"), limit: int = typer.Option(5, "--limit"),
         as_json: bool = typer.Option(False, "--json")):
    """Row-level diff of version B against version A."""
    from pipelines import catalog
    d = catalog.version_diff(state.workspace, dataset, a, b, with_samples=limit)
    if as_json:
        return _json({"dataset": dataset, "a": d["a"].number, "b": d["b"].number,
                      "added": d["added"], "removed": d["removed"], "modified": d["modified"]})
    out.print(f"{dataset} v{d['a'].number} -> v{d['b'].number}: [green]+{len(d['added'])} added[/], "
              f"[red]-{len(d['removed'])} removed[/], [yellow]~{len(d['modified'])} modified[/]")
    for s in d["samples"]["added"]:
        out.print(f"[green]+ #{s.sample_id}[/] {_preview(s)}")
    for s in d["samples"]["removed"]:
        out.print(f"[red]- #{s.sample_id}[/] {_preview(s)}")
    for old, new in d["samples"]["modified"]:
        out.print(f"[yellow]~ #{new.sample_id}[/] {_preview(old)}  ->  {_preview(new)}")


def _preview(s, n: int = 80) -> str:
    """One line of a sample's turns, escaped for rich markup (sample text such as "[/INST]"
    is text, never a style tag)."""
    turns = s.turns()
    txt = " | ".join(f"{t['role']}: {t['content']}" for t in turns if isinstance(t.get("content"), str))
    txt = txt.replace("\n", " ")
    return escape(txt[:n] + ("..." if len(txt) > n else ""))


def _turn_lines(t: dict) -> list[str]:
    """A message as `wb show` prints it (plain text, no markup): its text, reasoning, each tool
    call (function name and arguments) and, for a tool result, the call it answers."""
    role = str(t.get("role"))
    about = [x for x in (t.get("tool_call_id"), t.get("name")) if isinstance(x, str)] if role == "tool" else []
    head = role + (f" ({' · '.join(about)})" if about else "")
    lines = []
    reasoning = next((t[k] for k in ("reasoning_content", "thinking") if isinstance(t.get(k), str) and t[k]), None)
    if reasoning is not None:
        lines.append(f"{head} [reasoning]: {reasoning}")
    c = t.get("content")
    calls = t.get("tool_calls") if isinstance(t.get("tool_calls"), list) else []
    if not (calls and c in (None, "", [])):
        lines.append(f"{head}: {c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)}")
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) and isinstance(call.get("function"), dict) else call
        if not isinstance(fn, dict):
            lines.append(f"{head} [tool call]: {json.dumps(call, ensure_ascii=False)}")
            continue
        args = fn.get("arguments")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        ident = f" {call['id']}" if isinstance(call, dict) and call.get("id") else ""
        lines.append(f"{head} [tool call{ident}]: {fn.get('name')}({args})")
    return lines


@app.command()
def show(dataset: str = typer.Option(..., "--dataset", "-d"),
         version: Optional[str] = typer.Option(None, "--version", "-v"),
         limit: int = typer.Option(10, "--limit", "-n", min=1),
         after: int = typer.Option(0, "--after", min=0, help="Show samples with id > AFTER."),
         as_json: bool = typer.Option(False, "--json")):
    """Show samples of a version (paged by sample id)."""
    from pipelines import catalog
    v, page = catalog.sample_page(state.workspace, dataset, version, after_id=after, limit=limit)
    if as_json:
        from dataclasses import asdict
        return _json({"dataset": dataset, "version": v.number, "samples": [asdict(s) for s in page]})
    out.print(f"[bold]{dataset}[/] v{v.number} ({v.n_samples} samples, hash {v.content_hash[:12]})")
    for s in page:
        out.rule(escape(f"#{s.sample_id} {s.kind}" + (f" · {s.task_type}" if s.task_type else "")))
        tools = (s.extra or {}).get("tools") if s.kind != "instruction" else None
        if isinstance(tools, str):
            try:
                tools = json.loads(tools)
            except json.JSONDecodeError:
                pass
        if tools:
            names = [((t.get("function") or t).get("name") if isinstance(t, dict) else None)
                     for t in (tools if isinstance(tools, list) else [tools])]
            out.print(f"[bold cyan]tools[/]: {escape(', '.join(str(n) for n in names))}", highlight=False)
        for t in s.turns():
            for line in _turn_lines(t):
                role, _, rest = line.partition(":")
                out.print(f"[bold cyan]{escape(role)}[/]:{escape(rest)}", highlight=False)


@app.command()
def render(dataset: str = typer.Option(..., "--dataset", "-d"),
           version: Optional[str] = typer.Option(None, "--version", "-v"),
           template: str = typer.Option("chatml", "--template", "-t", help="chatml (chat) or alpaca (instruction)"),
           limit: int = typer.Option(3, "--limit", "-n", min=1), after: int = typer.Option(0, "--after", min=0),
           as_json: bool = typer.Option(False, "--json")):
    """Render samples of a version with a template, exactly as training will see them."""
    from pipelines import catalog
    from pipelines.render import TemplateRenderError, render_sample, template_info
    v, page = catalog.sample_page(state.workspace, dataset, version, after_id=after, limit=limit)
    info = template_info(template)
    rendered = []
    with _progress(as_json) as prog:
        task = prog.add_task(f"rendering {dataset} v{v.number}", total=len(page))
        for s in page:
            try:
                text = render_sample(s, template)
            except TemplateRenderError as e:   # name the sample, as every other refusal does
                msg = str(e)
                raise TemplateRenderError(msg if msg.startswith("sample ") else f"sample {s.sample_id}: {msg}",
                                          template=getattr(e, "template", "<string>"),
                                          field=getattr(e, "field", None)) from None
            rendered.append({"sample_id": s.sample_id, "text": text})
            prog.advance(task)
    if as_json:
        return _json({"dataset": dataset, "version": v.number, "template": info, "samples": rendered})
    out.print(f"[bold]{dataset}[/] v{v.number} rendered with {info['name']} (sha256 {info['sha256'][:12]})")
    for r in rendered:
        out.rule(f"#{r['sample_id']}")
        sys.stdout.write(r["text"] + ("" if r["text"].endswith("\n") else "\n"))
        sys.stdout.flush()


@app.command()
def preflight(dataset: str = typer.Option(..., "--dataset", "-d"),
              version: Optional[str] = typer.Option(None, "--version", "-v"),
              template: str = typer.Option("chatml", "--template", "-t", help="Training chat template."),
              serve_template: str = typer.Option("tokenizer", "--serve-template",
                                                 help="Serving chat template, or 'tokenizer' for the tokenizer's own."),
              max_length: int = typer.Option(..., "--max-length", help="Training limit in tokens."),
              policy: str = typer.Option(..., "--policy", help="Over-length samples: drop|truncate|fail|compress"),
              tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer folder (default: the embedded model's)."),
              limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Check only the first N samples."),
              as_json: bool = typer.Option(False, "--json")):
    """Check a version before training: train/serve differences, BOS/EOS, masks, control tokens, length.

    Exits with code 1 when the report has errors (after printing it)."""
    from pipelines.preflight import run_preflight
    if policy not in ("drop", "truncate", "fail", "compress"):
        raise WorkbenchError(f"--policy must be drop, truncate, fail or compress, got '{policy}'")
    with _progress(as_json) as prog:
        prog.add_task(f"preflight {dataset}", total=None)
        rep = run_preflight(state.workspace, dataset, version, train_template=template, serve_template=serve_template,
                            tokenizer_path=tokenizer, max_length_tokens=max_length, over_length_policy=policy,
                            limit=limit)
    if as_json:
        _json(rep.model_dump(mode="json", exclude={"compressed"}))
    else:
        for line in rep.summary_lines():
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    if rep.has_errors:
        sys.exit(1)


@app.command()
def stats(dataset: str = typer.Option(..., "--dataset", "-d"),
          version: Optional[str] = typer.Option(None, "--version", "-v"),
          as_json: bool = typer.Option(False, "--json")):
    """Counts for one version."""
    from pipelines import catalog
    s = catalog.version_stats(state.workspace, dataset, version)
    if as_json:
        return _json(s)
    for k, v in s.items():
        out.print(f"[bold]{k}[/]: {v}")


@app.command()
def tag(tag_name: str = typer.Argument(..., metavar="TAG"), dataset: str = typer.Option(..., "--dataset", "-d"),
        version: Optional[str] = typer.Option(None, "--version", "-v"),
        force: bool = typer.Option(False, "--force", help="Move the tag if it names another version.")):
    """Tag a version (default: head); a tag can name the version everywhere afterwards."""
    from pipelines import catalog
    v = catalog.tag_version(state.workspace, dataset, tag_name, version, user=_user(), force=force)
    out.print(f"tagged {dataset} v{v.number} ({v.version_id}) as '{tag_name}'")


@app.command()
def quarantine(dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),
               as_json: bool = typer.Option(False, "--json")):
    """Rows that imports kept aside, with their reasons."""
    from pipelines import workspace as W
    rows = W.quarantined(state.workspace, dataset)
    if as_json:
        return _json(rows)
    t = Table("dataset", "file", "row", "line", "field", "reason")
    for r in rows:
        # cells as Text: a reason quotes the bad value, which may hold "[/INST]" (not markup)
        t.add_row(*map(Text, (r["dataset"] or "", Path(r["file"]).name, str(r["row"] or ""),
                              str(r["line"] or ""), r["field"] or "", r["reason"])))
    out.print(t)
    out.print(f"{len(rows)} quarantined row(s)")


@app.command()
def demo(small: bool = typer.Option(False, "--small", help="CI size: fewer prompts and training steps."),
         seed: int = typer.Option(0, "--seed")):
    """The main job end to end: import, generate, accept, merge, render, train, reload."""
    from pipelines.demo import run_demo
    res = run_demo(state.workspace, small=small, seed=seed, say=lambda m: out.print(m))
    out.print(f"[bold green]demo finished in {res['elapsed_s']:.0f} s[/]; run card: {res['run_card']}")


@app.command("demo-workspace")
def demo_workspace():
    """Create the demo workspace that `make run` opens (idempotent; no model needed)."""
    from pipelines.demo import seed_demo_workspace
    msg = seed_demo_workspace(state.workspace)
    out.print(msg)


@app.command()
def job(action: str = typer.Argument(..., help="run"), job_dir: Path = typer.Argument(...)):
    """Run a background job from its folder (used by the job launcher)."""
    from pipelines import jobs
    if action != "run":
        raise WorkbenchError("usage: wb job run JOB_DIR")
    jobs.run_job(job_dir)


# Command groups by area, one module each (app/cli_<area>.py with ``register(app)``), so a
# new area is one new file listed here.
CLI_AREAS = ("review", "generate", "quality", "train", "curate", "prefs")


def _register_areas() -> None:
    import importlib
    if __name__ == "__main__":  # `python -m app.cli`: area modules must see this module's `state`
        sys.modules.setdefault("app.cli", sys.modules[__name__])
    for area in CLI_AREAS:
        name = f"app.cli_{area}"
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(app)


_register_areas()


#: Options of the root callback that take a value; :func:`hoist_global_options` moves them.
GLOBAL_VALUE_OPTIONS = ("--workspace", "-w", "--user", "-u")
#: Per-command flags also accepted before the subcommand (moved after it when it has them).
GLOBAL_FLAGS = ("--json",)


def _option_names(cmd) -> tuple[set[str], set[str]]:
    """``(all option names, names of options that take a value)`` of a click command."""
    names, valued = set(), set()
    for p in getattr(cmd, "params", []):
        opts = [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
        if not all(o.startswith("-") for o in opts):
            continue  # an argument
        names.update(opts)
        if not getattr(p, "is_flag", False) and not getattr(p, "count", False):
            valued.update(getattr(p, "opts", []))
    return names, valued


def _leading_options(argv: list[str]) -> tuple[list[str], int]:
    """The options before the subcommand (global options with their values) and the index of
    the first token after them (the subcommand's name, or ``len(argv)``, or ``--``)."""
    head: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        head.append(argv[i])
        if argv[i] in GLOBAL_VALUE_OPTIONS and i + 1 < len(argv):
            head.append(argv[i + 1])
            i += 1
        i += 1
    return head, i


def hoist_global_options(argv: list[str], root=None) -> list[str]:
    """``argv`` with the global options put where the root command reads them, so
    ``wb log -d x -u cur`` means ``wb -u cur log -d x``: ``--workspace``/``-w`` and
    ``--user``/``-u`` (with their value, as ``-u cur`` or ``--user=cur``) found after the
    subcommand move before it, unless that subcommand has an option of the same name (then
    it is the subcommand's); ``--json`` given before the subcommand moves after it when the
    subcommand has a ``--json`` flag. Everything after ``--`` stays where it is. Unknown
    options are left for click to report. ``root`` is the click command built from
    :data:`app` (built here when not given)."""
    head, i = _leading_options(argv)
    root = root or root_command(argv[i] if i < len(argv) else None)
    cmd, path = root, []
    while i < len(argv) and isinstance(getattr(cmd, "commands", None), dict) and argv[i] in cmd.commands:
        cmd = cmd.commands[argv[i]]
        path.append(argv[i])
        i += 1
    if not path:
        return list(argv)
    names, valued = _option_names(cmd)
    tail, moved = [], []
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if tok == "--":
            tail += argv[i:]
            break
        if name in GLOBAL_VALUE_OPTIONS and name not in names:
            takes_next = "=" not in tok and i + 1 < len(argv)
            moved += argv[i:i + 2] if takes_next else [tok]
            i += 2 if takes_next else 1
            continue
        tail.append(tok)
        if tok in valued and i + 1 < len(argv):
            tail.append(argv[i + 1])
            i += 1
        i += 1
    flags = [t for t in head if t in GLOBAL_FLAGS and t in names]
    head = [t for t in head if t not in flags]
    return [*head, *moved, *path, *tail, *flags]


def root_command(only: str | None = None):
    """The click command of :data:`app`; with ``only``, a root that holds just the top-level
    command or group of that name (the root callback and its options unchanged), or the whole
    tree when no command has that name (so click can report it with its suggestions).

    Typer builds every command's click object when it builds a group (about 60 ms for the
    whole tree, a tenth of ``wb``'s start-up), so a run builds only the command it runs."""
    if only:
        part = copy.copy(app)
        part.registered_commands = [c for c in app.registered_commands
                                    if (c.name or typer.main.get_command_name(c.callback.__name__)) == only]
        part.registered_groups = [g for g in app.registered_groups if g.name == only]
        if part.registered_commands or part.registered_groups:
            return typer.main.get_command(part)
    return typer.main.get_command(app)


def debug_enabled() -> bool:
    """``WB_DEBUG`` set to anything but empty or ``0``: unexpected errors show their traceback."""
    return os.environ.get("WB_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """The ``wb`` entry point: ``argv`` (default ``sys.argv[1:]``) through
    :func:`hoist_global_options`, then the command. Never returns normally with an error and
    never shows a traceback unless ``WB_DEBUG=1``; exit codes:

    * 0: done; 2: usage error (click's message: usage line, hint, ``Error: ...``);
    * 1: :class:`WorkbenchError` (one line ``error: ...``), a command's own failure exit (a
      failed gate, a preflight with errors), or an unexpected exception (one line naming its
      type; ``WB_DEBUG=1`` prints the traceback too);
    * 130: interrupted (Ctrl-C) or aborted at a prompt.
    """
    from datastore.deadline import answer_within
    answer_within(8.5)
    debug = debug_enabled()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        head, i = _leading_options(argv)
        root = root_command(argv[i] if i < len(argv) and "--help" not in head else None)
        args = hoist_global_options(argv, root)
        rc = root.main(args=args, prog_name="wb", standalone_mode=False)
    except WorkbenchError as e:
        if debug:
            import traceback
            traceback.print_exc()
        # escape: a message may hold brackets that are text, e.g. a --map value '[bold]q'
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as e:
        if isinstance(e, typer.TyperException) and hasattr(e, "show"):  # typer's click errors
            e.show()   # a usage error: usage line, hint, "Error: ..."; exit code 2
            sys.exit(e.exit_code)
        if debug:
            raise
        err.print(f"[red]error:[/] unexpected {type(e).__name__}: {escape(str(e))} "
                  "(run again with WB_DEBUG=1 to see the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)
    # With standalone_mode=False click returns the code of a `typer.Exit(code)` instead of
    # exiting; commands themselves return None (or printed data), never an int.
    if isinstance(rc, int) and not isinstance(rc, bool) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    main()
