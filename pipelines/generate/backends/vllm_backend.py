"""The ``vllm`` backend: in-process ``vllm.LLM`` on a GPU host.

vLLM is an optional extra (``pip install '.[vllm]'`` on a GPU host; it pins its own torch and
a transformers below 5.21, so it cannot share the CPU development environment:
docs/architecture.md section 4). This adapter uses only the stable offline API surface:
``vllm.LLM(model=..., seed=..., dtype=..., tensor_parallel_size=..., gpu_memory_utilization=...,
max_model_len=...)``, ``LLM.generate(prompts, sampling_params)``,
``LLM.chat(messages, sampling_params)`` (a list of conversations) and
``vllm.SamplingParams(temperature, top_p, max_tokens, seed, stop)``. ``max_tokens`` is always
passed (vLLM's default is 16). Each ``RequestOutput.outputs[0]`` gives ``text``,
``token_ids`` and ``finish_reason`` (``stop``/``length``/``abort``); vLLM already removes
the stop string from the text.

The whole batch goes to vLLM in one call: its scheduler batches continuously, so there is no
``batch_size`` to tune here. A contract test runs this adapter against a stand-in module
with the same API surface (tests/pipelines/generate/test_backends.py); a real test runs
where ``vllm`` is importable.
"""
from __future__ import annotations

import importlib
from typing import Any

from datastore.errors import WorkbenchError

from . import Backend, GenerationOutput, SamplingConfig, check_conversations, register_backend


@register_backend
class VLLMBackend(Backend):
    """Generate with an in-process ``vllm.LLM``.

    Args:
        model: model folder or hub name (offline hosts: a local folder); default: the
            embedded base model's folder.
        dtype, tensor_parallel_size, gpu_memory_utilization, max_model_len, seed: passed to
            ``vllm.LLM``; ``llm_kwargs``: any other ``vllm.LLM`` keyword arguments.
        module: the module providing ``LLM`` and ``SamplingParams`` (default ``vllm``; tests
            pass a stand-in with the same surface).

    Raises (on first use): WorkbenchError when vllm is not installed, with the install line.
    """

    name = "vllm"

    def __init__(self, model: str | None = None, *, model_path: str | None = None, model_name: str | None = None,
                 dtype: str = "auto", tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, seed: int = 0, llm_kwargs: dict | None = None,
                 module: Any = None, **_ignored: Any):
        self.model = model or model_path
        self.model_name = model_name or (str(self.model) if self.model else "")
        self.llm_kwargs = {"dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
                           "gpu_memory_utilization": gpu_memory_utilization, "seed": seed,
                           **({"max_model_len": max_model_len} if max_model_len else {}), **(llm_kwargs or {})}
        self._module = module
        self._llm = None

    @property
    def module(self):
        if self._module is None:
            try:
                self._module = importlib.import_module("vllm")
            except ImportError as e:
                raise WorkbenchError("the vllm backend needs vllm on a GPU host: pip install '.[vllm]' "
                                     f"(not importable here: {e})") from e
        return self._module

    def _load(self):
        if self._llm is None:
            if not self.model:
                from pipelines.models import MODEL_NAME, ensure_base_model
                self.model = str(ensure_base_model())
                self.model_name = self.model_name or MODEL_NAME
            self._llm = self.module.LLM(model=self.model, **self.llm_kwargs)
        return self._llm

    def _params(self, s: SamplingConfig):
        return self.module.SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                          seed=s.seed, stop=list(s.stop) or None)

    def _outputs(self, results, prompts: list[str], messages: list, s: SamplingConfig,
                 template_hash: str | None) -> list[GenerationOutput]:
        if len(results) != len(prompts):
            raise WorkbenchError(f"vllm returned {len(results)} outputs for {len(prompts)} prompts")
        out = []
        for r, prompt, msgs in zip(results, prompts, messages):
            c = r.outputs[0]
            text = c.text
            cut = min((i for i in (text.find(x) for x in s.stop) if i >= 0), default=-1)
            finish = "length" if c.finish_reason == "length" else "stop"
            if cut >= 0:
                text, finish = text[:cut], "stop"
            out.append(GenerationOutput(
                text=text, prompt=getattr(r, "prompt", None) or prompt, messages=msgs, model=self.model_name,
                backend=self.name, sampling=s.as_dict(), seed=s.seed, prompt_template_hash=template_hash,
                finish_reason=finish, tokens_generated=len(c.token_ids or ())))
        return out

    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """All prompts in one ``LLM.generate`` call."""
        if not all(isinstance(p, str) for p in prompts):
            raise WorkbenchError("complete() takes a list of prompt strings")
        if not prompts:
            return []
        res = self._load().generate(list(prompts), self._params(sampling), use_tqdm=False)
        return self._outputs(res, list(prompts), [None] * len(prompts), sampling, prompt_template_hash)

    def chat(self, conversations: list[list[dict]], sampling: SamplingConfig, *,
             prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """All conversations in one ``LLM.chat`` call (the model's chat template, generation
        prompt added), sent as :func:`pipelines.render.template_input` builds their messages."""
        from pipelines.render.inputs import template_input
        check_conversations(conversations)
        if not conversations:
            return []
        convs = [list(c) for c in conversations]
        res = self._load().chat([template_input(c).messages for c in convs], self._params(sampling), use_tqdm=False,
                                add_generation_prompt=True)
        return self._outputs(res, [c[-1]["content"] for c in convs], convs, sampling, prompt_template_hash)
