"""Backends behind one interface: registry, the vllm adapter against a stand-in module with
vLLM's API surface (and for real where vllm imports), the openai backend for real against
``transformers serve`` on 127.0.0.1, and the scripted backend's determinism."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest

from datastore.errors import WorkbenchError
from pipelines.generate.backends import SamplingConfig, get_backend, list_backends


def test_registry_has_every_backend():
    assert {"transformers", "openai", "vllm", "scripted"} <= set(list_backends())


# --------------------------------------------------------------------------- vllm contract

class _Completion:
    def __init__(self, text, token_ids, finish_reason):
        self.text, self.token_ids, self.finish_reason = text, token_ids, finish_reason


class _RequestOutput:
    def __init__(self, prompt, outputs):
        self.prompt, self.outputs = prompt, outputs


def fake_vllm():
    """A module with vLLM's offline API surface: ``LLM(model=..., **kw)``, ``LLM.generate(prompts,
    sampling_params, use_tqdm=)``, ``LLM.chat(messages, sampling_params, use_tqdm=,
    add_generation_prompt=)`` and ``SamplingParams(...)``; it records every call."""
    mod = types.ModuleType("fake_vllm")
    calls = mod.calls = []

    class SamplingParams:
        def __init__(self, *, temperature=1.0, top_p=1.0, max_tokens=16, seed=None, stop=None):
            self.temperature, self.top_p, self.max_tokens, self.seed, self.stop = temperature, top_p, max_tokens, seed, stop

    class LLM:
        def __init__(self, model, **kw):
            calls.append(("init", model, kw))

        def _answer(self, text, sp):
            words = [f"w{i}" for i in range(sp.max_tokens + 3)]
            if "stop here" in text:  # vLLM removes the stop string and reports 'stop'
                return _Completion("short", [1, 2], "stop")
            return _Completion(" ".join(words[: sp.max_tokens]), list(range(sp.max_tokens)), "length")

        def generate(self, prompts, sampling_params, use_tqdm=True):
            calls.append(("generate", list(prompts), sampling_params))
            return [_RequestOutput(p, [self._answer(p, sampling_params)]) for p in prompts]

        def chat(self, messages, sampling_params, use_tqdm=True, add_generation_prompt=True):
            calls.append(("chat", messages, sampling_params, add_generation_prompt))
            return [_RequestOutput("<rendered>" + m[-1]["content"], [self._answer(m[-1]["content"], sampling_params)])
                    for m in messages]

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    return mod


def test_vllm_adapter_contract():
    mod = fake_vllm()
    be = get_backend("vllm", model="/models/smol", module=mod, tensor_parallel_size=2, seed=3)
    s = SamplingConfig(max_tokens=4, temperature=0.5, top_p=0.9, seed=11, stop=("\n",))
    outs = be.complete(["Task 1:", "please stop here"], s, prompt_template_hash="abc")
    init = mod.calls[0]
    assert init[0] == "init" and init[1] == "/models/smol" and init[2]["tensor_parallel_size"] == 2 and init[2]["seed"] == 3
    kind, prompts, sp = mod.calls[1]
    assert kind == "generate" and prompts == ["Task 1:", "please stop here"]  # one call for the whole batch
    assert (sp.max_tokens, sp.temperature, sp.top_p, sp.seed, sp.stop) == (4, 0.5, 0.9, 11, ["\n"])
    assert outs[0].text == "w0 w1 w2 w3" and outs[0].finish_reason == "length" and outs[0].tokens_generated == 4
    assert outs[1].text == "short" and outs[1].finish_reason == "stop" and outs[1].tokens_generated == 2
    assert all(o.backend == "vllm" and o.model == "/models/smol" and o.seed == 11 and o.prompt_template_hash == "abc"
               and o.sampling == s.as_dict() for o in outs)
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    c = be.chat([conv], SamplingConfig(max_tokens=2, seed=1))
    assert mod.calls[2][0] == "chat" and mod.calls[2][1] == [conv] and mod.calls[2][3] is True
    assert c[0].messages == conv and c[0].prompt == "<rendered>Hi" and c[0].text == "w0 w1"
    assert len([x for x in mod.calls if x[0] == "init"]) == 1  # the engine is built once
    with pytest.raises(WorkbenchError, match="conversation 0"):
        be.chat([[{"role": "user"}]], s)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_missing_says_how_to_install():
    be = get_backend("vllm", model="/models/smol")
    with pytest.raises(WorkbenchError, match=r"pip install '\.\[vllm\]'"):
        be.complete(["x"], SamplingConfig(max_tokens=2))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                    reason="vllm is not importable here (GPU hosts only: pip install '.[vllm]')")
def test_vllm_real_generation():
    from pipelines.models import ensure_base_model
    be = get_backend("vllm", model=str(ensure_base_model()), gpu_memory_utilization=0.3, max_model_len=512)
    outs = be.complete(["Task 1: Name a fruit.\nTask 2:"] * 3, SamplingConfig(max_tokens=8, temperature=0.0, seed=0))
    assert len(outs) == 3 and all(o.tokens_generated <= 8 and o.backend == "vllm" for o in outs)
    assert outs[0].text == outs[1].text  # greedy: same prompt, same text
    chat = be.chat([[{"role": "user", "content": "Say hi."}]], SamplingConfig(max_tokens=8, seed=0))
    assert chat[0].text.strip()


# --------------------------------------------------------------------------- openai, for real

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    """``transformers serve`` of the embedded model on 127.0.0.1 (docs/architecture.md section 4)."""
    from pipelines.models import ensure_base_model
    try:
        model_dir = str(ensure_base_model())
    except WorkbenchError as e:
        pytest.skip(f"embedded model unavailable: {e}")
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.skip("the transformers CLI is not installed in this environment")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    proc = subprocess.Popen([str(exe), "serve", model_dir, "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--dtype", "float32"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("transformers serve exited: " + Path(log.name).read_text()[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not become healthy in 120 s")
        yield {"base_url": url + "/v1", "model": model_dir}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(served_model):
    be = get_backend("openai", model=served_model["model"], base_url=served_model["base_url"], max_concurrency=2)
    s = SamplingConfig(max_tokens=8, temperature=0.0, seed=0)
    outs = be.complete(["Task 1: Name a fruit.\nTask 2:", "Task 1: Name a color.\nTask 2:"], s, prompt_template_hash="h")
    assert len(outs) == 2
    for o in outs:
        assert o.backend == "openai" and o.model == served_model["model"] and o.sampling == s.as_dict()
        assert o.seed == 0 and o.prompt_template_hash == "h" and 0 < o.tokens_generated <= 8 and o.text
    chat = be.chat([[{"role": "user", "content": "Say hello."}]], s)
    assert chat[0].text.strip() and chat[0].messages == [{"role": "user", "content": "Say hello."}]
    assert chat[0].finish_reason in ("stop", "length") and chat[0].tokens_generated <= 8
    # stop strings are applied on our side too (transformers serve ignores them)
    cut = be.complete(["Task 1: Name a fruit.\nTask 2:"], SamplingConfig(max_tokens=12, temperature=0.0, stop=("\n",)))
    assert "\n" not in cut[0].text and cut[0].finish_reason == "stop"


def test_openai_backend_unreachable_server_is_one_clear_error():
    port = _free_port()
    be = get_backend("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_s=2)
    with pytest.raises(WorkbenchError, match=f"cannot reach http://127.0.0.1:{port}/v1"):
        be.complete(["x"], SamplingConfig(max_tokens=2))
    with pytest.raises(WorkbenchError, match="needs a model name"):
        get_backend("openai")


# --------------------------------------------------------------------------- scripted

def test_scripted_backend_is_deterministic_per_prompt_and_seed():
    be = get_backend("scripted", responses=["a {uid}", "b {uid}", "c {uid}"])
    s = SamplingConfig(max_tokens=8, seed=1)
    one = be.complete(["p1", "p2", "p3"], s)
    again = get_backend("scripted", responses=["a {uid}", "b {uid}", "c {uid}"]).complete(["p3", "p1"], s)
    assert [o.text for o in again] == [one[2].text, one[0].text]
    other_seed = be.complete(["p1"], SamplingConfig(max_tokens=8, seed=2))
    assert other_seed[0].text != one[0].text
