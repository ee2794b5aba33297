"""Workspaces for the review tests: users of every role and a small dataset."""
from __future__ import annotations

from pathlib import Path

from datastore import Sample, Store
from datastore import versions as V
from pipelines import auth

PASSWORD = "correct-horse-9"
USERS = {"admin": "admin", "cora": "curator", "dora": "adjudicator",
         "ann": "annotator", "bob": "annotator", "cat": "annotator"}


def add_users(ws: Path, users: dict[str, str] = USERS, *, passwords: bool = False) -> None:
    """The users (no passwords unless asked: an Argon2 hash costs about a second on a busy
    2-core machine, and the services act for a user name; passwords guard the web UI)."""
    pw = PASSWORD if passwords else None
    auth.add_user(ws, None, "admin", "admin", pw)  # first user: acts as the local admin
    for name, role in users.items():
        if name != "admin":
            auth.add_user(ws, "admin", name, role, pw)


def add_dataset(ws: Path, name: str = "qa", n: int = 6, kind: str = "sft") -> V.Version:
    rows = [Sample(kind="instruction", instruction=f"Question {i}?", input="", output=f"Answer {i}.",
                   task_type="qa", language="en", source="unit").to_row() for i in range(1, n + 1)]
    with Store(ws) as st:
        return V.commit(st, name, author="admin", message=f"import {n}", add=rows, create=True, kind=kind)


def build(ws: Path, n: int = 6, kind: str = "sft") -> Path:
    add_users(ws)
    add_dataset(ws, n=n, kind=kind)
    return ws


def disagreement(ws: Path, task: str, *, n: int, sample: int, answers: tuple[dict, dict]) -> Path:
    """A fresh workspace (the users, dataset "qa" of ``n`` samples) with review task ``task``
    (k = 2, pool ann and bob) where ann and bob gave ``answers`` on ``sample``."""
    from pipelines.review import annotate, tasks
    ws.mkdir()
    add_users(ws)
    add_dataset(ws, "qa", n=n)
    tasks.open_task(ws, "cora", name=task, dataset="qa", pool=["ann", "bob"])
    for who, a in zip(("ann", "bob"), answers):
        annotate.submit(ws, who, task, sample, a, submit_id=f"{who}-{task}-{sample}")
    return ws


def with_candidates(ws: Path, n: int) -> Path:
    """A fresh workspace (the users, dataset "train" of 2 samples) with ``n`` generated
    candidates staged as dataset "cands" (source "gen", sample ids 1..n)."""
    from pipelines import curation
    ws.mkdir()
    add_users(ws)
    add_dataset(ws, "train", n=2)
    cands = [Sample(instruction=f"Generated question {i}?", output=f"Generated answer {i}.", source="gen")
             for i in range(1, n + 1)]
    curation.stage_candidates(ws, "cands", cands, user="cora", message="generated")
    return ws
