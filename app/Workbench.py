"""Instruction Workbench: the Streamlit entrypoint.

Run:  streamlit run app/Workbench.py -- --workspace DIR
(else ``$WB_WORKSPACE``, else ``./workspace``).

Navigation uses ``st.navigation``: a home view defined here plus every ``app/pages/N_Name.py``
file, found by name and ordered by its number, so a new page is one new file
(docs/architecture.md section 9). Each page reads through ``pipelines.catalog``; nothing here
holds the workspace's DuckDB file open between renders.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

_APP_DIR = Path(__file__).resolve().parent
if str(_APP_DIR.parent) not in sys.path:  # a checkout run without `pip install -e .`
    sys.path.insert(0, str(_APP_DIR.parent))

import streamlit as st  # noqa: E402

from app import common  # noqa: E402
from pipelines import catalog  # noqa: E402

_PAGE_RE = re.compile(r"^(\d+)_(.+)\.py$")
_ICON_RE = re.compile(r"^#\s*page-icon:\s*(\S+)")


def discover_pages(pages_dir: Path = _APP_DIR / "pages") -> list[st.Page]:
    """One ``st.Page`` per ``pages/N_Name.py``: ``N`` orders them, underscores in ``Name``
    become spaces in the title, and a line ``# page-icon: :material/name:`` among the
    file's first five lines sets its icon."""
    found = []
    for f in pages_dir.glob("*.py"):
        m = _PAGE_RE.match(f.name)
        if m:
            title = m.group(2).replace("_", " ")
            with f.open(encoding="utf-8") as fh:
                head = [next(fh, "") for _ in range(5)]
            icon = next((_ICON_RE.match(h).group(1) for h in head if _ICON_RE.match(h)), None)
            found.append((int(m.group(1)), title, str(f), icon))
    found.sort()
    return [st.Page(f, title=title, icon=icon, url_path=title.lower().replace(" ", "-"))
            for _, title, f, icon in found]


def home() -> None:
    ws = common.workspace()
    st.title("Instruction Workbench")
    st.caption("Curate instruction and chat datasets for supervised fine-tuning.")
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    with c1:
        st.markdown("**Workspace**")
        st.code(str(ws.resolve()), language=None)
    if common.workspace_exists(ws):
        with common.user_errors():
            datasets = catalog.list_datasets(ws)
            c2.metric("Datasets", len(datasets))
            c3.metric("Samples (heads)", f"{sum(d['samples'] for d in datasets):,}")
    else:
        c2.metric("Datasets", 0)
        st.info(f"No workspace database at `{ws}` yet: create one with `wb --workspace {ws} init`, "
                "or start the app with `-- --workspace DIR`.", icon=":material/folder_off:")

    st.subheader("Tour")
    st.markdown(
        "- **Datasets**: every dataset with its kind, number of versions, samples and content hash. "
        "Pick one to read its version log (who committed what, when, and how many samples were "
        "added, removed or modified), browse any version 50 samples at a time, shown as chat turns "
        "with their metadata, and compare two versions sample by sample.\n"
        "- **Versions are immutable.** Every import, edit, filter or review commits a new version; "
        "any older version can still be read, diffed, exported, tagged and used for training.\n"
        "- **One file, briefly held.** The app opens the workspace database only while it reads, "
        "so the `wb` command line and background jobs can write at the same time.")
    for page in PAGES:
        st.page_link(page, label=f"Open {page.title}", icon=":material/arrow_forward:")


PAGES = discover_pages()

st.set_page_config(page_title="Instruction Workbench", page_icon=":material/dataset:", layout="wide")
_ws = common.workspace()  # resolve once per session, before any page runs
if common.needs_login(_ws):  # the gate: a workspace with users shows nothing before sign-in
    st.navigation([st.Page(lambda: common.login_form(_ws), title="Sign in", icon=":material/login:",
                           url_path="login")], position="hidden").run()
    st.stop()
common.user_badge()
nav = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True), *PAGES])
nav.run()
