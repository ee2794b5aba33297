"""Shared fixtures: temporary workspaces and the real public data in ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WB_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")


def shared_file(rel: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (../shared/data is not beside this checkout)")
    return p


@pytest.fixture
def tmp_workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded model's tokenizer (one per test module), or skip with the reason."""
    from datastore.errors import WorkbenchError
    from pipelines.models import load_tokenizer
    try:
        return load_tokenizer()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on 2 cores shared with other processes two threads run
    5-20x slower (docs/decisions.md, 'Generation on 2 cores')."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: The longest test files, longest first (minutes each on 2 cores, from CI runs): they start
#: first so that no worker begins one of them near the end of the run.
LONGEST_FIRST = ("integration/test_review_concurrency.py", "integration/test_demo.py",
                 "pipelines/train/test_default_run.py", "app/test_train_pages.py",
                 "pipelines/preference/test_dpo.py", "pipelines/train/test_runs.py")


def pytest_collection_modifyitems(session, config, items):
    """The longest files first, then files holding slow or browser tests, then the rest (stable
    within each): under ``make test``'s two pytest-xdist workers (``--dist loadfile``) the
    minutes-long files start at once and the quick ones fill in around them."""
    heavy = {it.path for it in items if it.get_closest_marker("slow") or it.get_closest_marker("browser")}

    def rank(it) -> int:
        rel = it.path.relative_to(REPO / "tests").as_posix()
        if rel in LONGEST_FIRST:
            return LONGEST_FIRST.index(rel)
        return len(LONGEST_FIRST) + (it.path not in heavy)
    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _no_lock_deadline_leaks():
    """``wb``'s ``main()`` caps every later lock wait of its process (it answers within 10 s of
    the process start); a test that runs ``main()`` in the pytest process must not leave that cap
    on the tests after it, whose worker started long ago (the cap would be 0.5 s)."""
    from datastore import deadline
    saved = deadline._answer_by
    yield
    deadline._answer_by = saved
