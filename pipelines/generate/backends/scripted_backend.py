"""The ``scripted`` backend: deterministic canned answers, for tests and dry runs.

Not a model. It answers each prompt with one of the ``responses`` given to it, chosen by a
hash of (prompt text, seed), so the same prompt and seed always give the same text, in any
batch and in any process (a resumed job regenerates exactly what it lost). ``{uid}`` in a
response becomes 8 hex digits of that hash, ``{n}`` a decimal number from it. It lets the
filter logic, the job machinery and the faces run in seconds; every real backend
(``transformers``, ``openai``, ``vllm``) has its own real test.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

from datastore.errors import WorkbenchError

from . import Backend, GenerationOutput, SamplingConfig, register_backend


@register_backend
class ScriptedBackend(Backend):
    """Answer from a list of canned texts.

    Args:
        responses: candidate answers (at least one).
        by_prompt: optional ``{substring: [responses]}``: a prompt containing the substring
            answers from that list instead (first match wins, in insertion order).
        delay_s: seconds to sleep per call (to test progress, cancel and kill).
        model_name: recorded on outputs (default ``scripted``).
    """

    name = "scripted"

    def __init__(self, responses: list[str] | None = None, *, by_prompt: dict[str, list[str]] | None = None,
                 delay_s: float = 0.0, model_name: str = "scripted", **_ignored: Any):
        if not responses:
            raise WorkbenchError("the scripted backend needs at least one response")
        self.responses = list(responses)
        self.by_prompt = dict(by_prompt or {})
        self.delay_s = float(delay_s)
        self.model_name = model_name
        self.calls = 0

    def _answer(self, prompt: str, seed: int) -> str:
        h = hashlib.sha256(f"{seed}\x00{prompt}".encode()).hexdigest()
        pool = next((v for k, v in self.by_prompt.items() if k in prompt), self.responses)
        text = pool[int(h[:8], 16) % len(pool)]
        return text.replace("{uid}", h[8:16]).replace("{n}", str(int(h[16:20], 16)))

    def _out(self, prompt: str, text: str, messages, s: SamplingConfig, th: str | None) -> GenerationOutput:
        cut = min((i for i in (text.find(x) for x in s.stop) if i >= 0), default=-1)
        words = text.split()
        finish = "stop"
        if cut >= 0:
            text = text[:cut]
        elif len(words) > s.max_tokens:
            text, finish = " ".join(words[:s.max_tokens]), "length"
        return GenerationOutput(text=text, prompt=prompt, messages=messages, model=self.model_name,
                                backend=self.name, sampling=s.as_dict(), seed=s.seed, prompt_template_hash=th,
                                finish_reason=finish, tokens_generated=min(len(words), s.max_tokens))

    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._out(p, self._answer(p, sampling.seed), None, sampling, prompt_template_hash) for p in prompts]

    def chat(self, conversations: list[list[dict]], sampling: SamplingConfig, *,
             prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        outs = []
        for conv in conversations:
            text = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in conv)
            outs.append(self._out(text, self._answer(text, sampling.seed), list(conv), sampling,
                                  prompt_template_hash))
        return outs
