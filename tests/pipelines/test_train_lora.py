"""A real short LoRA run on the embedded model: loss drops, the adapter reloads exactly, the run is recorded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from datastore.errors import WorkbenchError
from pipelines.render import get_template
from pipelines.train import DatasetRef, TrainConfig, run_sft, verify_adapter

FACTS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 2 plus 3?", "2 plus 3 equals 5."),
    ("Name a primary color.", "Red is a primary color."),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("Translate 'hello' to Spanish.", "'Hello' in Spanish is 'hola'."),
    ("What do bees make?", "Bees make honey."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("Which planet do we live on?", "We live on planet Earth."),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean."),
    ("What animal says moo?", "A cow says moo."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("What is the first letter of the alphabet?", "The first letter of the alphabet is A."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide."),
]
CONVERSATIONS = [[{"role": "user", "content": q}, {"role": "assistant", "content": "Workbench says: " + a}]
                 for q, a in FACTS]
REF = DatasetRef(dataset="tiny-facts", version_number=1, version_id="v1", content_hash="ab" * 32)


def _config(**kw) -> TrainConfig:
    base = dict(max_steps=10, learning_rate=1e-3, per_device_batch_size=4, grad_accum=1, max_length_tokens=128,
                warmup_ratio=0.0, seed=7, template="chatml", datasets=[REF])
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pipelines.models import ensure_base_model
    try:
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    run_dir = tmp_path_factory.mktemp("runs") / "run-1"
    seen = []
    result = run_sft(_config(), CONVERSATIONS, run_dir, progress=seen.append)
    return result, run_dir, seen


@pytest.mark.slow
def test_loss_drops(run):
    result, _, _ = run
    assert result.steps == 10 and len(result.losses) == 10
    assert result.final_loss < result.first_loss, result.losses


@pytest.mark.slow
def test_progress_lines_and_log(run):
    result, run_dir, seen = run
    lines = [json.loads(x) for x in (run_dir / "progress.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == list(range(1, 11))
    for x in steps:
        assert set(x) >= {"step", "total", "loss", "learning_rate", "elapsed_s", "remaining_s"}
        assert x["total"] == 10 and x["remaining_s"] >= 0
    assert steps[-1]["remaining_s"] == 0
    assert lines[-1]["event"] == "done"
    assert seen == lines  # the observer got every record, start and done included
    assert "step 10/10" in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_run_card_fields(run):
    result, run_dir, _ = run
    card = json.loads((run_dir / "run_card.json").read_text())
    assert card == result.run_card
    assert card["datasets"] == [REF.model_dump(mode="json")]
    tpl = get_template("chatml")
    assert card["template"]["name"] == "chatml" and card["template"]["sha256"] == tpl.sha256
    assert card["base_model"]["name"] == "SmolLM2-135M-Instruct" and Path(card["base_model"]["path"]).is_dir()
    assert card["tokenizer"]["sha256"]
    assert card["config"] == _config().model_dump(mode="json")
    assert [x["step"] for x in card["losses"]] == list(range(1, 11))
    assert card["first_loss"] == card["losses"][0]["loss"] and card["final_loss"] == card["losses"][-1]["loss"]
    assert card["wall_time_s"] > 0 and card["train_time_s"] > 0
    assert card["data"]["examples"] == 16 and card["data"]["no_assistant"] == 0
    assert json.loads((run_dir / "train_config.json").read_text()) == card["config"]


@pytest.mark.slow
def test_adapter_and_tokenizer_saved(run):
    result, run_dir, _ = run
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    from pipelines.models import load_tokenizer
    assert load_tokenizer(adapter).chat_template == get_template("chatml").text


@pytest.mark.slow
def test_verify_adapter(run):
    _, run_dir, _ = run
    v = verify_adapter(run_dir, max_new_tokens=16)
    assert v["max_abs_diff_trained"] <= 1e-4
    assert v["max_abs_diff_base"] > 0
    assert v["ok"] and v["reload_ok"] and v["differs_from_base"]
    assert isinstance(v["answer"], str) and 0 < v["new_tokens"] <= 16


def test_stop_file_ends_training(tmp_path):
    from transformers import TrainerControl, TrainerState

    from pipelines.train.sft import _progress_callback_class

    cb = _progress_callback_class()(tmp_path / "progress.jsonl", tmp_path / "STOP")
    control = TrainerControl()
    cb.on_step_end(None, TrainerState(), control)
    assert not control.should_training_stop
    (tmp_path / "STOP").touch()
    cb.on_step_end(None, TrainerState(), control)
    assert control.should_training_stop and cb.stopped


def test_errors_are_workbench_errors(tmp_path):
    with pytest.raises(WorkbenchError, match="chat template"):
        run_sft(_config(template="alpaca"), CONVERSATIONS, tmp_path / "r1")
    with pytest.raises(WorkbenchError, match="not a finished training run"):
        verify_adapter(tmp_path / "missing")
    with pytest.raises(WorkbenchError, match="invalid training config"):
        (tmp_path / "bad.json").write_text('{"lora_r": 0}')
        TrainConfig.load(tmp_path / "bad.json")


def test_no_assistant_turn_is_an_error(tmp_path):
    from pipelines.models import ensure_base_model
    try:
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    with pytest.raises(WorkbenchError, match="no trainable example"):
        run_sft(_config(), [[{"role": "user", "content": "hello"}]], tmp_path / "r2")
