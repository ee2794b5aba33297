"""The Train and Runs pages through Streamlit's AppTest: only curators and admins see the launch
form; a bad launch is a message (no traceback); a launch starts a real run process that the page
finds again after a restart (a fresh AppTest session), Stop ends it with a checkpoint; the Runs page
compares finished runs side by side."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipelines.train import runs as R
from tests.app.pages import button, open_page

TRAIN_PAGE = "pages/8_Train.py"
RUNS_PAGE = "pages/9_Runs.py"
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    from datastore import Store
    from datastore import users as U
    from pipelines.demo import seed_demo_workspace
    from pipelines.models import ensure_base_model
    try:
        ensure_base_model()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"embedded model unavailable: {e}")
    w = tmp_path_factory.mktemp("trainpage") / "ws"
    seed_demo_workspace(w)
    with Store(w) as st:
        U.insert(st, "boss", "admin", None, actor="test")
        U.insert(st, "ann", "annotator", None, actor="test")
    return w


def _page(ws: Path, page: str, user: str) -> AppTest:
    return open_page(ws, page, user, timeout_s=TIMEOUT_S)




def test_annotator_sees_runs_read_only(ws):
    at = _page(ws, TRAIN_PAGE, "ann")
    assert any("Only curators and admins launch training" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Launch"]


def test_demo_sft_is_preselected_and_launch_says_so_once(ws, monkeypatch):
    """demo-sft alone is preselected (not the alphabetically first dataset, which would make a
    mixture once the user adds demo-sft); one Launch shows one "Started run" message."""
    launched = []

    def fake_launch(workspace, cfg, *, user):
        launched.append((cfg, user))
        return Path(workspace) / "runs" / "r-fake"

    monkeypatch.setattr(R, "launch", fake_launch)
    at = _page(ws, TRAIN_PAGE, "boss")
    picker = at.multiselect(key="train_datasets")
    assert picker.options[0] == "demo-chat" and picker.value == ["demo-sft"]
    button(at, "Launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (cfg, user), = launched
    assert user == "boss" and [(d["dataset"], d["version_number"]) for d in cfg["datasets"]] == [("demo-sft", 2)]
    assert [s.value for s in at.success if "Started run" in s.value] == ["Started run r-fake"]
    at.run()
    assert not [s for s in at.success if "Started run" in s.value]  # shown for that launch only


def test_no_preselection_without_demo_sft_and_empty_launch_refused(tmp_workspace):
    from datastore import Sample, Store
    from datastore import users as U
    from datastore import versions as V
    with Store(tmp_workspace) as st:
        U.insert(st, "boss", "admin", None, actor="test")
        for name in ("conc-1", "conc-2"):
            V.commit(st, name, author="boss", message=name, create=True,
                     add=[Sample(kind="instruction", instruction="Say hi.", output="Hi.").to_row()])
    at = _page(tmp_workspace, TRAIN_PAGE, "boss")
    assert at.multiselect(key="train_datasets").value == []
    button(at, "Launch").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Pick at least one dataset to train on (Datasets, above)."]
    assert R.list_runs(tmp_workspace) == []


def test_non_commercial_data_needs_the_checkbox(tmp_workspace, monkeypatch):
    """Data under cc-by-nc-4.0: the form names the licence with its count; Launch without the
    checkbox is refused with the same count and writes nothing; with it the run folder is prepared
    (not started) and its config records the acknowledgement."""
    from datastore import Sample, Store
    from datastore import users as U
    from datastore import versions as V
    with Store(tmp_workspace) as st:
        U.insert(st, "boss", "admin", None, actor="test")
        V.commit(st, "nc-data", author="boss", message="nc", create=True,
                 add=[Sample(kind="instruction", instruction=f"Add {i} and {i}.", output=str(2 * i),
                             license="cc-by-nc-4.0", source="nc.json").to_row() for i in range(3)])
    real = R.launch
    monkeypatch.setattr(R, "launch", lambda workspace, cfg, *, user: real(workspace, cfg, user=user, start=False))
    at = _page(tmp_workspace, TRAIN_PAGE, "boss")
    at.multiselect(key="train_datasets").set_value(["nc-data"]).run()
    assert any("Not for commercial use: cc-by-nc-4.0: 3 samples" in w.value for w in at.warning)
    button(at, "Launch").click().run()
    assert not at.exception
    assert any("cc-by-nc-4.0: 3 samples (nc.json)" in e.value for e in at.error), [e.value for e in at.error]
    assert R.list_runs(tmp_workspace) == []
    at.checkbox(key="train_ack_licences").check()
    button(at, "Launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (run,) = R.list_runs(tmp_workspace)
    import json
    cfg = json.loads((Path(run["run_dir"]) / "train_config.json").read_text())
    assert cfg["acknowledge_licences"] == ["cc-by-nc-4.0"]


@pytest.mark.slow
def test_launch_watch_stop_and_find_again(ws):
    at = _page(ws, TRAIN_PAGE, "boss")
    # demo-chat has an unanswered chat: the preflight stops the launch, as a message
    at.multiselect(key="train_datasets").set_value(["demo-chat"]).run()
    button(at, "Launch").click().run()
    assert not at.exception
    assert any("preflight failed: empty_mask" in e.value for e in at.error), [e.value for e in at.error]
    assert R.list_runs(ws) == []

    at.multiselect(key="train_datasets").set_value(["demo-sft"]).run()
    at.number_input(key="train_steps").set_value(200)
    at.number_input(key="train_maxlen").set_value(64)
    at.number_input(key="train_batch").set_value(2)
    at.number_input(key="train_eval").set_value(0.2)
    button(at, "Launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    runs = R.list_runs(ws)
    assert len(runs) == 1
    run_id = runs[0]["run_id"]
    assert [s.value for s in at.success if "Started run" in s.value] == [f"Started run {run_id}"]

    # a restart: a new session finds the run from its folder, with a progress bar and Stop
    at2 = _page(ws, TRAIN_PAGE, "boss")
    assert any(run_id in m.value for m in at2.markdown)
    assert at2.get("progress")
    stop = next(b for b in at2.button if b.key == f"stop-{run_id}")
    stop.click().run()
    assert R.run_status(R.run_path(ws, run_id))["stop_requested"]
    st = R.wait_run(ws, run_id, timeout_s=900)
    assert st["state"] == "stopped" and st["has_checkpoint"], st

    at3 = _page(ws, TRAIN_PAGE, "boss")
    assert any(b.key == f"resume-{run_id}" for b in at3.button)

    runs_page = _page(ws, RUNS_PAGE, "boss")
    table = runs_page.dataframe[0].value
    assert list(table["run"]) == [run_id] and list(table["method"]) == ["lora"]
    assert table["trainable_params"][0] == st["card"]["trainable_params"]
    assert "demo-sft v2" in table["data"][0]
