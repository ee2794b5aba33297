"""Every ``wb`` command answers a usage error as click programs do: the usage line, a hint and
one ``Error: ...`` line, exit code 2, never a traceback. The command tree is walked by
introspection, so a new command is covered without touching this file. Other failures: a
``WorkbenchError`` is one line and exit 1; an unexpected exception is one line and exit 1,
with the traceback only under ``WB_DEBUG=1``. Progress bars go to a terminal only."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import cli
from app.cli import main, root_command

ROOT = Path(__file__).resolve().parents[2]


def walk(cmd, path=()):
    """``(path, click command)`` for every command and group below ``cmd``."""
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if getattr(sub, "hidden", False):
            continue
        yield (*path, name), sub
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(root_command()))


def run_main(args: list[str], env: dict | None = None) -> tuple[int, str]:
    """Run ``main(args)`` in this process with captured streams: ``(exit code, stdout+stderr)``."""
    with CliRunner().isolation(env=env) as (_, _, output):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        return code, output.getvalue().decode()


def assert_usage_error(code: int, text: str, path: tuple, message: str) -> None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2, (path, text)
    assert "Traceback" not in text, (path, text)
    assert [ln for ln in lines if ln.startswith("Error:")] == [lines[-1]], (path, text)
    assert lines[-1].startswith(message), (path, text)
    assert lines[0].startswith(f"Usage: wb {' '.join(path)}"), (path, text)


def test_the_walk_finds_every_area():
    names = {" ".join(p) for p, _ in COMMANDS}
    # one command or group of each area module, and nested subcommands
    assert {"import", "datasets", "task", "task open", "generate self-instruct", "gate run", "train",
            "filter", "prefs import", "adapters combine"} <= names
    assert len(COMMANDS) > 60


def test_every_command_rejects_an_unknown_option(tmp_path):
    bad = []
    for path, _ in COMMANDS:
        code, text = run_main(["-w", str(tmp_path / "ws"), *path, "--bogus-option"])
        try:
            assert_usage_error(code, text, path, "Error: No such option: --bogus-option")
        except AssertionError as e:
            bad.append(e)
    assert not bad, bad[:3]
    assert not (tmp_path / "ws").exists()   # nothing ran


def required(cmd) -> list:
    return [p for p in cmd.params if p.required]


def test_every_command_with_a_required_parameter_reports_it_missing(tmp_path):
    checked, bad = 0, []
    for path, cmd in COMMANDS:
        if getattr(cmd, "commands", None) is not None or not required(cmd):
            continue
        checked += 1
        code, text = run_main(["-w", str(tmp_path / "ws"), *path])
        first = required(cmd)[0]
        kind = "argument" if first.param_type_name == "argument" else "option"
        try:
            assert_usage_error(code, text, path, f"Error: Missing {kind}")
        except AssertionError as e:
            bad.append(e)
    assert checked > 40 and not bad, (checked, bad[:3])
    assert not (tmp_path / "ws").exists()


def test_a_workbench_error_is_one_line_and_exit_1(tmp_path):
    ws = tmp_path / "ws"
    assert run_main(["-w", str(ws), "init"])[0] == 0
    code, text = run_main(["-w", str(ws), "log", "-d", "nope"])
    assert (code, text.strip()) == (1, "error: no dataset named 'nope'")
    # brackets in a message are text, not rich markup
    code, text = run_main(["-w", str(ws), "import", str(tmp_path / "a.jsonl"), "-d", "a", "--map", "[bold]q"])
    assert (code, text.strip()) == (1, "error: --map expects FIELD=COLUMN pairs, got '[bold]q'")


def test_an_unexpected_error_shows_its_traceback_only_under_wb_debug(tmp_path, monkeypatch):
    from pipelines import catalog

    def broken(workspace):
        raise KeyError("boom")
    monkeypatch.setattr(catalog, "list_datasets", broken)
    code, text = run_main(["-w", str(tmp_path), "datasets"], env={"WB_DEBUG": None})
    assert code == 1 and "Traceback" not in text
    assert text.strip() == ("error: unexpected KeyError: 'boom' "
                            "(run again with WB_DEBUG=1 to see the traceback)")
    with pytest.raises(KeyError):   # WB_DEBUG=1: the exception propagates, Python prints its traceback
        with CliRunner().isolation(env={"WB_DEBUG": "1"}):
            main(["-w", str(tmp_path), "datasets"])


def test_typer_exit_codes_reach_the_shell(monkeypatch):
    import typer

    @cli.app.command("exit-probe", hidden=True)
    def exit_probe():
        raise typer.Exit(3)
    try:
        assert run_main(["exit-probe"]) == (3, "")
    finally:
        cli.app.registered_commands = [c for c in cli.app.registered_commands if c.callback is not exit_probe]


def wb(*args, env=None, cwd):
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full.pop("WB_WORKSPACE", None)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def test_real_processes(tmp_path):
    r = wb("datasets", "--bogus-option", cwd=tmp_path)
    assert_usage_error(r.returncode, r.stdout + r.stderr, ("datasets",), "Error: No such option: --bogus-option")
    r = wb("import", cwd=tmp_path)
    assert_usage_error(r.returncode, r.stdout + r.stderr, ("import",), "Error: Missing argument 'path'.")
    r = wb("task", "show", "--bogus-option", env={"WB_DEBUG": "1"}, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr   # usage errors never need WB_DEBUG
    assert not (tmp_path / "workspace").exists()


def test_every_command_that_prints_a_table_takes_json():
    import inspect
    tables = [(path, cmd) for path, cmd in COMMANDS
              if getattr(cmd, "callback", None) and "Table(" in inspect.getsource(inspect.unwrap(cmd.callback))]
    assert len(tables) >= 8   # datasets, log, quarantine, runs, user list, task list, agreement, ...
    missing = [" ".join(path) for path, cmd in tables
               if "--json" not in {o for p in cmd.params for o in getattr(p, "opts", [])}]
    assert missing == []


def test_progress_bars_draw_only_on_a_terminal_and_never_with_json(monkeypatch):
    import io

    from rich.console import Console
    tty = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=tty, force_terminal=True, width=80))
    with cli._progress() as prog:
        prog.add_task("rendering", total=2)
    assert not prog.disable and "rendering" in tty.getvalue()
    with cli._progress(as_json=True) as prog:
        prog.add_task("quiet", total=2)
    assert prog.disable and "quiet" not in tty.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=piped, force_terminal=False))
    with cli._progress() as prog:
        prog.add_task("piped", total=2)
    assert prog.disable and piped.getvalue() == ""
