"""The global options of ``wb`` (--workspace/-w, --user/-u, --json) work before and after the
subcommand; an unknown option is a usage error (exit 2), never a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

from app.cli import hoist_global_options

ROOT = Path(__file__).resolve().parents[2]


def wb(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WB_WORKSPACE", None)
    env.pop("WB_USER", None)
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_hoist_moves_global_options_around_the_subcommand():
    assert hoist_global_options(["log", "-d", "x", "-u", "cur"]) == ["-u", "cur", "log", "-d", "x"]
    assert hoist_global_options(["log", "-d", "x", "--workspace=ws", "--user", "bo"]) == \
        ["--workspace=ws", "--user", "bo", "log", "-d", "x"]
    # nested subcommands; --json before the subcommand goes after it
    assert hoist_global_options(["--json", "-w", "ws", "gate", "show", "-d", "x", "-u", "a"]) == \
        ["-w", "ws", "-u", "a", "gate", "show", "-d", "x", "--json"]
    # a value that looks like a global option stays the value of its own option
    assert hoist_global_options(["log", "-d", "-u"]) == ["log", "-d", "-u"]
    # a subcommand's own -w (adapters combine --weights/-w) is left to it
    assert hoist_global_options(["adapters", "combine", "a", "b", "-w", "0.5,0.5", "-n", "m"]) == \
        ["adapters", "combine", "a", "b", "-w", "0.5,0.5", "-n", "m"]
    # nothing after "--" moves; no subcommand: unchanged
    assert hoist_global_options(["log", "--", "-u", "x"]) == ["log", "--", "-u", "x"]
    assert hoist_global_options(["--help"]) == ["--help"]


def test_global_options_before_and_after_the_subcommand(tmp_path):
    ws = tmp_path / "ws"
    r = wb("init", "-w", str(ws), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (ws / "workbench.duckdb").exists() and not (tmp_path / "workspace").exists()
    (tmp_path / "a.jsonl").write_text(json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n")
    r = wb("import", str(tmp_path / "a.jsonl"), "--dataset", "a", "-w", str(ws), "-u", "cur", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    before = wb("-w", str(ws), "-u", "cur", "log", "-d", "a", "--json", cwd=tmp_path)
    after = wb("log", "-d", "a", "-u", "cur", "-w", str(ws), "--json", cwd=tmp_path)
    json_first = wb("--json", "-w", str(ws), "log", "-d", "a", cwd=tmp_path)
    assert before.returncode == after.returncode == json_first.returncode == 0, (before.stderr, after.stderr)
    log = json.loads(before.stdout)
    assert [v["number"] for v in log] == [1] and log[0]["author"] == "cur"
    assert json.loads(after.stdout) == log == json.loads(json_first.stdout)
    # the failing example of a user report: one line, no traceback
    r = wb("log", "-d", "x", "-u", "cur", "-w", str(ws), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: no dataset named 'x'"


def test_unknown_option_is_a_usage_error_without_traceback(tmp_path):
    r = wb("log", "-d", "x", "--bogus", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "NoSuchOption" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert [ln for ln in lines if ln.startswith("Usage:")] == ["Usage: wb log [OPTIONS]"]
    assert lines[-1] == "Error: No such option: --bogus"
