"""Opening a page of the app under ``streamlit.testing.v1.AppTest`` the way a user reaches it:
the entry script runs first (workspace and signed-in user in the session), then the page."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
ENTRY = str(REPO / "app" / "Workbench.py")


def open_page(ws: Path, page: str, user: str | None = None, *, timeout_s: float = 120) -> AppTest:
    """The app over workspace ``ws`` as ``user`` (None: nobody signed in; a workspace without
    users acts as the local admin), switched to ``page`` (e.g. ``"pages/8_Train.py"``); fails
    the test on an exception in either run. ``timeout_s``: AppTest's limit per run."""
    at = AppTest.from_file(ENTRY, default_timeout=timeout_s)
    at.session_state["workspace"] = str(ws)
    if user:
        at.session_state["user"] = user
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    """The first button labelled ``label`` (StopIteration when there is none)."""
    return next(b for b in at.button if b.label == label)
