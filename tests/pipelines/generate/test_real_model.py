"""The whole Self-Instruct pipeline (instructions, classification, instances, staging) with
the real embedded SmolLM2-135M-Instruct through the transformers backend, tiny settings."""
from __future__ import annotations

import pytest

from datastore.errors import WorkbenchError
from pipelines.generate.service import run_generation

from .helpers import make_workspace, staged, versions


@pytest.mark.slow
def test_self_instruct_pipeline_with_the_embedded_model(tmp_workspace):
    from pipelines.models import ensure_base_model
    try:
        ensure_base_model()
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    ws = make_workspace(tmp_workspace)
    req = {"method": "self-instruct", "backend": "transformers", "backend_options": {"num_threads": 1},
           "params": {"seed_dataset": "seeds", "target_kept": 1, "max_rounds": 1, "prompts_per_round": 2,
                      "demo_settings": True, "instances": True},
           "sampling": {"max_tokens": 24, "seed": 0}, "batch_size": 4}
    progress = []
    res = run_generation(ws, req, user="cur", progress=progress.append)
    assert res["generated"] >= 1 and res["rounds"] == 1
    assert res["generated"] == res["instructions_kept"] + sum(
        v for k, v in res["dropped"].items() if k in ("truncated", "length", "blacklist", "write_a_program",
                                                      "punctuation_start", "non_ascii_start", "duplicate", "rouge"))
    assert progress[0]["step"] == "start" and progress[-1]["step"] == "done"
    if res["kept"]:
        cands = staged(ws, "self-instruct-candidates")
        assert len(cands) == res["kept"]
        lin = cands[0].lineage
        assert lin["backend"] == "transformers" and lin["model"] == "SmolLM2-135M-Instruct"
        assert lin["instances"]["backend"] == "transformers" and lin["instances"]["sampling"]["max_tokens"] == 24
        assert versions(ws, "self-instruct-candidates")[0].operation["method"] == "self-instruct"
