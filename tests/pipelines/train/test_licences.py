"""Licences of the training data: a launch on non-commercial data is refused until acknowledged,
and the run card, the adapter's model card, a merged model and a dataset export name each licence
with its sample count. A real 1-step run on the demo data, one version imported as cc-by-nc-4.0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.train import runs as R
from pipelines.train.config import DatasetRef, TrainConfig
from pipelines.train.licences import LicencesNotAcknowledged, write_model_card
from tests.pipelines.train.conftest import finished_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
DATA = [DatasetRef(dataset="alpaca-nc"), DatasetRef(dataset="seed-tasks")]
TINY = dict(datasets=DATA, max_steps=1, per_device_batch_size=2, max_length_tokens=64, torch_threads=1,
            eval_ratio=0.0)


@pytest.fixture(scope="module")
def nc_ws(tmp_path_factory, base_model):
    """The demo workspace plus ``alpaca-nc``: the demo's 16 Alpaca samples imported under
    ``CC-BY-NC-4.0`` (the Stanford Alpaca data's licence); seed-tasks holds 30 Apache-2.0 samples."""
    from datastore import Store
    from datastore import users as U
    from pipelines.demo import DEMO_DATA, seed_demo_workspace
    from pipelines.formats import import_file

    ws = tmp_path_factory.mktemp("licences") / "ws"
    seed_demo_workspace(ws)
    with Store(ws) as st:
        U.insert(st, "boss", "admin", None, actor="test-setup")
        U.insert(st, "cur", "curator", None, actor="test-setup")
    import_file(ws, DEMO_DATA / "alpaca_samples.json", "alpaca-nc", user="cur", license="CC-BY-NC-4.0")
    return ws


def _wb(ws, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", "-w", str(ws), "-u", "cur", *args], cwd=REPO,
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)


def _runs(ws) -> list[str]:
    root = R.runs_root(ws)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_launch_refused_without_acknowledgement(nc_ws, tmp_path):
    before = _runs(nc_ws)
    with pytest.raises(LicencesNotAcknowledged) as e:
        R.launch(nc_ws, TrainConfig(**TINY), user="cur", start=False)
    msg = str(e.value)
    assert "cc-by-nc-4.0: 16 samples (alpaca_samples.json)" in msg and "apache-2.0" not in msg
    assert "acknowledge_licences: [cc-by-nc-4.0]" in msg
    assert [x["license"] for x in e.value.licences] == ["cc-by-nc-4.0"]
    # acknowledging another licence is not enough
    with pytest.raises(LicencesNotAcknowledged):
        R.launch(nc_ws, TrainConfig(**TINY, acknowledge_licences=["cc-by-nc-sa-4.0"]), user="cur", start=False)
    assert _runs(nc_ws) == before  # nothing written
    cfg = tmp_path / "nc.yaml"
    cfg.write_text("max_steps: 1\ndatasets:\n  - {dataset: alpaca-nc}\n")
    r = _wb(nc_ws, "train", "--config", str(cfg))
    assert r.returncode == 1 and "cc-by-nc-4.0: 16 samples" in r.stderr and "Traceback" not in r.stderr
    assert _runs(nc_ws) == before


def test_cli_acknowledgement_reaches_the_config(nc_ws, tmp_path):
    cfg = tmp_path / "nc.yaml"
    cfg.write_text("max_steps: 1\ntorch_threads: 1\ndatasets:\n  - {dataset: alpaca-nc}\n")
    r = _wb(nc_ws, "train", "--config", str(cfg), "--no-preflight", "--acknowledge-licence", "CC-BY-NC-4.0",
            "--json")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    R.stop_run(nc_ws, run_dir.name, user="cur")  # only the launch matters here
    assert json.loads((run_dir / "train_config.json").read_text())["acknowledge_licences"] == ["cc-by-nc-4.0"]
    R.wait_run(nc_ws, run_dir.name, timeout_s=600)


@pytest.fixture(scope="module")
def nc_run(nc_ws):
    return finished_run(nc_ws, TrainConfig(**TINY, acknowledge_licences=["CC-BY-NC-4.0"]), timeout_s=900)


def test_run_card_and_model_card_name_the_licences(nc_run):
    d, card = nc_run
    lic = card["licences"]
    assert lic["summary"] == ["apache-2.0: 30 samples", "cc-by-nc-4.0: 16 samples"]
    assert lic["restricted"] == ["cc-by-nc-4.0"] and lic["acknowledged"] == ["cc-by-nc-4.0"]
    assert card["config"]["acknowledge_licences"] == ["cc-by-nc-4.0"]
    assert [(e["license"], e["samples"], e["commercial"]) for e in lic["training_data"]] == \
        [("apache-2.0", 30, "allowed"), ("cc-by-nc-4.0", 16, "forbidden")]
    assert any("not for commercial use: 16 sample(s)" in w for w in lic["warnings"])
    from huggingface_hub import ModelCard
    readme = (d / "adapter" / "README.md").read_text()
    mc = ModelCard.load(d / "adapter" / "README.md")
    assert mc.data.license == "other" and mc.data.license_name == "training-data-mixture"
    assert mc.data.training_data_licences == lic["summary"]
    assert mc.data.base_model  # peft's metadata is kept
    assert "- **License:** training data under apache-2.0: 30 samples; cc-by-nc-4.0: 16 samples" in readme
    assert "**License:** [More Information Needed]" not in readme
    assert "- cc-by-nc-4.0: 16 samples (commercial use forbidden; sources: alpaca_samples.json)" in readme
    assert "Licences acknowledged at launch: cc-by-nc-4.0." in readme
    assert "- **Finetuned from model [optional]:** SmolLM2-135M-Instruct" in readme


def test_single_licence_card_and_merged_model(nc_run, tmp_path):
    """A card of one licence carries that id; a merged model's folder gets the card too."""
    d, card = nc_run
    one = json.loads(json.dumps(card))
    one["licences"]["training_data"] = [e for e in one["licences"]["training_data"] if e["license"] == "cc-by-nc-4.0"]
    one["licences"]["summary"] = ["cc-by-nc-4.0: 16 samples"]
    from huggingface_hub import ModelCard
    (tmp_path / "m").mkdir()
    p = write_model_card(tmp_path / "m", one)  # a folder without a card (a full fine-tune's model/)
    assert ModelCard.load(p).data.license == "cc-by-nc-4.0"
    assert "# " + d.name in p.read_text()
    merged = R.merge_run(d.parent.parent, d.name, user="cur", out_dir=tmp_path / "merged")
    text = (merged / "README.md").read_text()
    assert "cc-by-nc-4.0: 16 samples" in text and "apache-2.0: 30 samples" in text


def test_export_card_lists_licence_counts(nc_ws, tmp_path):
    from pipelines.formats import export_version

    res = export_version(nc_ws, "alpaca-nc", None, "alpaca", tmp_path / "out" / "nc.json")
    text = Path(res["card"]).read_text()
    assert "- cc-by-nc-4.0: 16 samples" in text and "licences:\n  - 'cc-by-nc-4.0: 16 samples'" in text
