"""The demo: the workspace that ``make run`` opens, and ``wb demo``, the main job end to end.

``seed_demo_workspace`` needs no model: it imports the project's own seed tasks and
samples (``pipelines/demo_data/``, written for this project) so the workbench opens on
something real. ``run_demo`` is the walking skeleton's main job (issue 2, item 9).
"""
from __future__ import annotations

from pathlib import Path

from datastore import Store
from datastore import versions as V

DEMO_DATA = Path(__file__).parent / "demo_data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEMO_CURATOR = "demo-curator"


def seed_demo_workspace(workspace: str | Path) -> str:
    """Create the demo datasets if the workspace has none. Returns a one-line summary."""
    from .formats import import_file
    from .workspace import init_workspace

    init_workspace(workspace)
    with Store(workspace) as st:
        existing = {d.name for d in V.list_datasets(st)}
    if existing:
        return f"workspace {workspace} already has {len(existing)} dataset(s); left as it is"
    user = DEMO_CURATOR
    import_file(workspace, DEMO_DATA / "seed_tasks.jsonl", "seed-tasks", user=user, license="Apache-2.0",
                message="Instruction Workbench demo seed tasks")
    import_file(workspace, DEMO_DATA / "alpaca_samples.json", "demo-sft", user=user, license="Apache-2.0",
                message="demo instruction samples")
    import_file(workspace, DEMO_DATA / "chat_samples.json", "demo-chat", user=user, license="Apache-2.0",
                message="demo conversations")
    return f"demo workspace ready at {workspace}: datasets seed-tasks, demo-sft, demo-chat"
