"""Shared helpers for the generator tests: workspaces with users and a seed set."""
from __future__ import annotations

from pathlib import Path

from datastore import Sample, Store
from datastore import users as U
from datastore import versions as V

REPO = Path(__file__).resolve().parents[3]
DEMO_SEEDS = REPO / "pipelines" / "demo_data" / "seed_tasks.jsonl"


def make_workspace(ws: Path, *, n_seeds: int = 12) -> Path:
    """A workspace with users curator/annotator/admin and a ``seeds`` dataset of instruction
    samples (the demo seed tasks), plus ``pool`` (5 qa + 2 math samples)."""
    import json
    with Store(ws) as st:
        U.insert(st, "ada", "admin", None, actor="setup")
        U.insert(st, "cur", "curator", None, actor="setup")
        U.insert(st, "ann", "annotator", None, actor="setup")
        recs = [json.loads(x) for x in DEMO_SEEDS.read_text().splitlines() if x.strip()][:n_seeds]
        rows = [Sample(kind="instruction", instruction=r["instruction"], input=r["instances"][0]["input"],
                       output=r["instances"][0]["output"], task_type="seed",
                       extra={"is_classification": r["is_classification"], "instances": r["instances"]}).to_row()
                for r in recs]
        V.commit(st, "seeds", author="cur", message="seeds", add=rows, create=True)
        pool = [Sample(kind="instruction", instruction=f"Explain fact number {i} about the {w} in one sentence.",
                       output=f"Fact {i}.", task_type="qa" if i < 5 else "math", language="en")
                for i, w in enumerate(["moon", "sun", "sea", "rain", "wind", "sum", "product"])]
        V.commit(st, "pool", author="cur", message="pool", add=[s.to_row() for s in pool], create=True)
    return ws


def staged(ws: Path, name: str) -> list[Sample]:
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, name)))


def versions(ws: Path, name: str):
    with Store(ws) as st:
        return V.log(st, name)


#: Scripted answers that exercise every Self-Instruct step: new instructions, a yes/no
#: classification answer, output-first and input-first instances.
SI_SCRIPT = {
    "responses": ["Describe the history of invention {uid} in three short sentences.\n"
                  "Task 10: List five surprising facts about animal {n} for children."],
    "by_prompt": {
        "Is it classification?": [" Yes", " No"],
        "Class label:": [" Positive\nInput: I really love product {uid}.\nClass label: Negative\n"
                         "Input: I really hate product {uid}."],
        "Example 1\nInput:": [" (none)\nOutput: Invention {uid} began long ago.\nExample 2\nInput: topic {n}\n"
                              "Output: A short answer about {uid}."],
    },
}


def wb(ws: Path, *args: str, user: str = "cur", env: dict | None = None):
    """Run ``wb --workspace WS --user USER ARGS`` in a child process from the repository root
    (``env`` added to this process's environment); returns the ``CompletedProcess``."""
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "--workspace", str(ws),
                           "--user", user, *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, **(env or {})})
