"""The README's five-minute tour, command by command, as a new user types it.

Every ``wb --workspace tour ...`` line of the tour's first code block runs in-process (typer's
CliRunner, from the repository root, so the relative paths resolve as in the README) against a
temporary workspace; each must exit 0. ``wb demo`` is left out: tests/integration/test_demo.py
runs it. The tour imports files from ../shared/data; without it the test skips.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def _tour_lines() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Five-minute tour\s+```bash\n(.*?)```", text, re.S).group(1)
    lines = [ln.split("  #")[0].strip() for ln in block.splitlines()]
    return [ln for ln in lines if ln.startswith("wb --workspace tour ")]


def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch):
    if not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip("../shared/data is absent: the tour imports files from it")
    from app.cli import app

    lines = _tour_lines()
    assert len(lines) >= 12, lines
    monkeypatch.chdir(REPO)
    ws = tmp_path / "tour"
    runner = CliRunner()
    outputs = {}
    for line in lines:
        args = [str(ws) if a == "tour" else a.replace("tour/", f"{ws}/", 1) if a.startswith("tour/") else a
                for a in shlex.split(line)[1:]]
        r = runner.invoke(app, args, env={**os.environ, "COLUMNS": "200"})
        assert r.exit_code == 0, f"{line}\n{r.output}\n{r.exception!r}"
        outputs[" ".join(shlex.split(line)[3:5])] = r.output
    # what the README promises along the way
    assert "1 quarantined" in outputs["import examples/more_code.jsonl"]
    assert "code v1 -> v2: +5 added" in outputs["diff --dataset"]
    assert (ws / "code.sharegpt.json").is_file()
    assert "<|im_start|>" in outputs["render --dataset"]
