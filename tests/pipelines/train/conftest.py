"""Fixtures of the training tests: the embedded model and a demo workspace (session-scoped, built once)."""
from __future__ import annotations

from pathlib import Path

import pytest

from datastore.errors import WorkbenchError


@pytest.fixture(scope="session")
def base_model() -> Path:
    """Folder of the embedded SmolLM2-135M-Instruct (safetensors), or skip with the reason."""
    from pipelines.models import ensure_base_model
    try:
        return ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")


@pytest.fixture(scope="session")
def demo_ws(tmp_path_factory, base_model) -> Path:
    """A workspace with users boss (admin), cur (curator), ann (annotator) and the project's demo
    data (pipelines/demo_data): seed-tasks (30 tasks),
    demo-sft (16 Alpaca samples, 2 versions) and demo-chat (5 multi-turn conversations)."""
    from pipelines.demo import seed_demo_workspace

    from datastore import Store
    from datastore import users as U

    ws = tmp_path_factory.mktemp("train-ws") / "ws"
    seed_demo_workspace(ws)
    with Store(ws) as st:  # users: boss (admin), cur (curator), ann (annotator)
        for name, role in (("boss", "admin"), ("cur", "curator"), ("ann", "annotator")):
            U.insert(st, name, role, None, actor="test-setup")
    return ws



def finished_run(ws, cfg, timeout_s: float = 1500) -> tuple[Path, dict]:
    """Launch ``cfg`` as its own process (as the UI does), wait for it, and return
    ``(run folder, run card)``; fails the test unless the run succeeded."""
    from pipelines.train import runs as R

    d = R.launch(ws, cfg, user="cur")
    st = R.wait_run(ws, d.name, timeout_s=timeout_s)
    assert st["state"] == "succeeded", st
    return d, st["card"]
