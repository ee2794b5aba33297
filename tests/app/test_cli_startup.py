"""``wb --help`` loads no heavy library: checked by module name in a fresh interpreter (the
time itself is measured by the ``cli_startup`` benchmark row, not here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Libraries that take from a tenth of a second (duckdb, pyarrow) to seconds (torch) to import;
#: a command loads them only when it needs them.
HEAVY = ("torch", "transformers", "datasets", "great_expectations", "duckdb", "pyarrow", "spacy")

PROBE = """
import contextlib, io, json, sys
from app.cli import main
args = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(args)
    except SystemExit as e:
        code = e.code
    else:
        code = 0
heavy = json.loads(sys.argv[2])
print(json.dumps({"code": code, "help": out.getvalue(),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}))
"""


def run_wb(args: list[str], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_loads_no_heavy_library(tmp_path):
    res = run_wb(["--help"], tmp_path)
    assert res["code"] == 0
    assert "datasets" in res["help"] and "import" in res["help"]   # the real help was printed
    assert res["loaded"] == []


def test_subcommand_help_loads_no_heavy_library(tmp_path):
    res = run_wb(["train", "--help"], tmp_path)
    assert res["code"] == 0 and "--config" in res["help"]
    assert res["loaded"] == []


def test_datasets_loads_duckdb_but_not_the_rest(tmp_path):
    ws = tmp_path / "ws"
    assert run_wb(["-w", str(ws), "init"], tmp_path)["code"] == 0
    res = run_wb(["-w", str(ws), "datasets", "--json"], tmp_path)
    assert res["code"] == 0 and json.loads(res["help"]) == []
    assert {m.split(".")[0] for m in res["loaded"]} == {"duckdb"}
