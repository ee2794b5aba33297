"""Generation jobs on the openai backend against a scripted OpenAI-compatible server on
127.0.0.1: resume with new backend options (the API key goes by variable name only), and
Self-Instruct on a server that offers only chat completions."""
from __future__ import annotations

import json
from pathlib import Path

from .helpers import make_workspace, staged, wb


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_takes_new_backend_options_and_never_stores_the_key(tmp_workspace, openai_server):
    ws = make_workspace(tmp_workspace)
    srv = openai_server()
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    r = wb(ws, "generate", "self-instruct", "-d", "seeds", "--target-kept", "2", "--max-rounds", "2",
           "--prompts-per-round", "2", "--no-instances", "--backend", "openai", "--model", "scripted",
           "--base-url", dead, "--json")
    assert r.returncode == 1 and f"cannot reach {dead}" in r.stderr and "wb generate resume" in r.stderr
    job_dir = next((ws / "jobs").iterdir())
    secret = "sk-test-4f1d2c9e8b7a"
    r = wb(ws, "generate", "resume", str(job_dir), "--base-url", srv.base_url, "--concurrency", "2",
           "--timeout", "30", "--api-key-env", "WB_TEST_KEY", "--json", env={"WB_TEST_KEY": secret})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "succeeded" and out["result"]["kept"] >= 2
    spec = json.loads((job_dir / "job.json").read_text())
    opts = spec["params"]["backend_options"]
    assert opts == {"model": "scripted", "base_url": srv.base_url, "max_concurrency": 2, "timeout_s": 30.0,
                    "api_key_env": "WB_TEST_KEY"}
    assert spec["attempts"][0]["from_state"] == "failed" and spec["attempts"][0]["changed"]["backend_options"] == opts
    # the resumed job used them: the new server got every request, with the key from the variable
    assert srv.requests and {q["authorization"] for q in srv.requests} == {f"Bearer {secret}"}
    lin = staged(ws, "self-instruct-candidates")[0].lineage
    assert lin["backend_info"]["base_url"] == srv.base_url
    # the key itself is in no file of the workspace (job folder, store, logs)
    for f in ws.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_an_api_key_by_value_is_refused(tmp_workspace):
    ws = make_workspace(tmp_workspace)
    r = wb(ws, "generate", "self-instruct", "-d", "seeds", "--backend", "openai", "--model", "m",
           "--backend-option", "api_key=sk-abc")
    assert r.returncode == 1 and "--api-key-env NAME" in r.stderr
    assert not (ws / "jobs").exists() or not list((ws / "jobs").iterdir())


def test_self_instruct_on_a_chat_only_server_keeps_instructions(tmp_workspace, openai_server):
    ws = make_workspace(tmp_workspace)
    srv = openai_server(chat_only=True)
    r = wb(ws, "generate", "self-instruct", "-d", "seeds", "--target-kept", "2", "--max-rounds", "2",
           "--prompts-per-round", "2", "--backend", "openai", "--model", "scripted", "--base-url", srv.base_url,
           "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["result"]
    assert res["instructions_kept"] >= 2 and res["kept"] > 0
    paths = [q["path"] for q in srv.requests]
    assert paths.count("/v1/completions") == 1  # tried once, then chat completions only
    assert paths[1:] and set(paths[1:]) == {"/v1/chat/completions"}
    cands = staged(ws, "self-instruct-candidates")
    assert cands and all(c.lineage["prompt_delivery"] == "self-instruct prompt sent as one chat user message"
                         for c in cands)
    job_log = (Path(json.loads(r.stdout)["job_dir"]) / "job.log").read_text()
    assert "has no /v1/completions (404)" in job_log
