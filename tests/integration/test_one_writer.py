"""One writer: while the app serves a workspace, a `wb import` into it and a running
background job either succeed or exit non-zero within 10 s with a message that names the
process holding the store; nothing is lost or corrupted either way."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datastore import Sample, Store
from datastore import versions as V
from pipelines.jobs import start_job, wait_job

HERE = Path(__file__).parent

# timing bounds (an answer within 10 s) hold on a machine this test has to itself: make test runs
# it after the parallel run (see the Makefile)
pytestmark = pytest.mark.serial


def alpaca_file(path: Path, n: int, tag: str) -> Path:
    path.write_text("\n".join(json.dumps({"instruction": f"{tag} task {i}", "input": "", "output": f"answer {i}"})
                              for i in range(n)) + "\n")
    return path


def base_workspace(ws: Path) -> None:
    with Store(ws) as st:
        V.commit(st, "base", author="t", message="seed", create=True,
                 add=[Sample(instruction=f"q{i}", output=f"a{i}").to_row() for i in range(200)])


def wb(ws, *args):
    return subprocess.Popen([sys.executable, "-m", "app.cli", "--workspace", str(ws), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_app_import_and_job_at_once_all_succeed(tmp_workspace, tmp_path):
    base_workspace(tmp_workspace)
    app = subprocess.Popen([sys.executable, str(HERE / "app_reader.py"), str(tmp_workspace), "12"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the app is rendering
    t0 = time.monotonic()
    imp = wb(tmp_workspace, "import", str(alpaca_file(tmp_path / "a.jsonl", 3000, "cli")), "--dataset", "from-cli")
    job = start_job(tmp_workspace, "import", {"path": str(alpaca_file(tmp_path / "b.jsonl", 3000, "job")),
                                              "dataset": "from-job"}, user="t")
    out, err = imp.communicate(timeout=60)
    status = wait_job(job, timeout_s=60)
    app_out, app_err = app.communicate(timeout=90)
    assert imp.returncode == 0, err
    assert status["state"] == "succeeded", status
    seen = json.loads(app_out.strip().splitlines()[-1])
    assert seen["renders"] >= 3 and seen["exceptions"] == 0 and seen["errors"] == 0, seen
    with Store(tmp_workspace) as st:
        assert V.resolve(st, "base").n_samples == 200
        assert V.resolve(st, "from-cli").n_samples == 3000
        assert V.resolve(st, "from-job").n_samples == 3000
        assert [s.instruction for s in V.read_page(st, V.resolve(st, "from-job"), limit=2)] == ["job task 0", "job task 1"]
    assert time.monotonic() - t0 < 60


def test_a_long_holder_makes_others_fail_fast_naming_it(tmp_workspace, tmp_path):
    base_workspace(tmp_workspace)
    hold = subprocess.Popen([sys.executable, "-c", "from datastore import Store; import sys, time; "
                             f"s = Store({str(tmp_workspace)!r}); print('held', flush=True); time.sleep(25)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        app = subprocess.Popen([sys.executable, str(HERE / "app_reader.py"), str(tmp_workspace), "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        imp = wb(tmp_workspace, "import", str(alpaca_file(tmp_path / "a.jsonl", 100, "cli")), "--dataset", "from-cli")
        job = start_job(tmp_workspace, "import", {"path": str(alpaca_file(tmp_path / "b.jsonl", 100, "job")),
                                                  "dataset": "from-job"}, user="t")
        out, err = imp.communicate(timeout=30)
        t_imp = time.monotonic() - t0
        status = wait_job(job, timeout_s=30)
        app_out, _ = app.communicate(timeout=60)
        assert imp.returncode == 1 and t_imp < 10, (imp.returncode, t_imp)
        assert f"(PID {hold.pid})" in err and "is busy: held by" in err
        assert status["state"] == "failed" and f"(PID {hold.pid})" in status["error"]
        assert status["ended_at"] - status["started_at"] < 10
        seen = json.loads(app_out.strip().splitlines()[-1])
        assert seen["exceptions"] == 0 and seen["errors"] >= 1, seen   # shown as a message, no traceback
        assert f"(PID {hold.pid})" in seen["messages"][0]
    finally:
        hold.kill()
        hold.wait()
    with Store(tmp_workspace) as st:   # nothing half-written, nothing lost
        assert [d.name for d in V.list_datasets(st)] == ["base"]
        assert V.resolve(st, "base").n_samples == 200
    rc = subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(tmp_workspace), "import",
                         str(tmp_path / "a.jsonl"), "--dataset", "from-cli"], capture_output=True, text=True)
    assert rc.returncode == 0   # and it works once the holder is gone


def test_demo_workspace_is_seeded_once_with_history(tmp_workspace):
    from pipelines.demo import seed_demo_workspace
    assert "demo-sft (2 versions)" in seed_demo_workspace(tmp_workspace)
    assert "left as it is" in seed_demo_workspace(tmp_workspace)
    with Store(tmp_workspace) as st:
        assert {d.name: d.head for d in V.list_datasets(st)} == {"seed-tasks": 1, "demo-sft": 2, "demo-chat": 1}
        d = V.diff(st, "demo-sft", 1, 2)
        assert (len(d.added), len(d.removed), len(d.modified)) == (1, 1, 1)
        assert V.resolve(st, "seed-tasks").n_samples == 30
