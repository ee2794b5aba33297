"""The ``openai`` backend: any OpenAI-compatible server, through the ``openai`` client.

This is how generation scales past one host: ``vllm serve MODEL --tensor-parallel-size N``
on a GPU cluster (Ray across nodes), or ``transformers serve MODEL_DIR`` on a laptop (the
tests start the latter on 127.0.0.1; ARCHITECTURE.md section 4). ``complete`` uses
``/v1/completions`` and ``chat`` uses ``/v1/chat/completions``. The OpenAI API takes one
conversation per chat request, so a batch is sent as concurrent requests
(``max_concurrency``, a thread pool); the server batches them (vLLM's continuous batching).

Sampling is sent with OpenAI semantics (``max_tokens``, ``temperature``, ``top_p``,
``seed``, ``stop``). Stop strings are also applied on the client, because not every server
honours them (``transformers serve`` 5.24 ignores ``stop``); the text is cut before the first
stop string found and the finish reason becomes ``stop``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from datastore.errors import WorkbenchError

from . import Backend, GenerationOutput, SamplingConfig, check_conversations, register_backend


def _cut_at_stop(text: str, stops: tuple[str, ...], finish: str | None) -> tuple[str, str]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], "stop"
    return text, "length" if finish == "length" else "stop"


@register_backend
class OpenAIBackend(Backend):
    """Generate through an OpenAI-compatible HTTP API.

    Args:
        model: the model name the server knows (``/v1/models`` lists them); required.
        base_url: e.g. ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL`` or OpenAI's.
        api_key: default ``$OPENAI_API_KEY``, else ``"EMPTY"`` (local servers need none).
        max_concurrency: requests in flight at once (a batch of 64 prompts is 64 requests).
        timeout_s: per-request timeout in seconds; max_retries: the client's retries.
        client: an ``openai.OpenAI`` instance to use instead (tests, custom transports).

    Raises (on use): WorkbenchError naming the server when it cannot be reached or refuses.
    """

    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 max_concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 2, client: Any = None,
                 model_name: str | None = None, **_ignored: Any):
        model = model or model_name
        if not model:
            raise WorkbenchError("the openai backend needs a model name (the server's /v1/models lists them)")
        if max_concurrency < 1:
            raise WorkbenchError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model_name = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.max_concurrency = max_concurrency
        if client is None:
            import openai
            client = openai.OpenAI(base_url=self.base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                   timeout=timeout_s, max_retries=max_retries)
        self.client = client

    def info(self) -> dict:
        return {"backend": self.name, "model": self.model_name, "base_url": self.base_url}

    def _params(self, s: SamplingConfig) -> dict:
        p = {"model": self.model_name, "max_tokens": s.max_tokens, "temperature": s.temperature,
             "top_p": s.top_p, "seed": s.seed}
        if s.stop:
            p["stop"] = list(s.stop)[:4]  # the OpenAI API takes at most 4; all are applied client-side
        return p

    def _call(self, fn, items: list) -> list:
        import openai
        try:
            if len(items) <= 1 or self.max_concurrency == 1:
                return [fn(x) for x in items]
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
                return list(pool.map(fn, items))
        except openai.APIConnectionError as e:
            raise WorkbenchError(f"openai backend: cannot reach {self.base_url or 'api.openai.com'} ({e})") from e
        except openai.APIStatusError as e:
            raise WorkbenchError(f"openai backend: {self.base_url or 'api.openai.com'} answered "
                                 f"{e.status_code}: {str(e)[:300]}") from e

    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """One ``/v1/completions`` request per prompt, ``max_concurrency`` at a time."""
        if not all(isinstance(p, str) for p in prompts):
            raise WorkbenchError("complete() takes a list of prompt strings")
        params = self._params(sampling)

        def one(prompt: str) -> GenerationOutput:
            r = self.client.completions.create(prompt=prompt, **params)
            c = r.choices[0]
            text, finish = _cut_at_stop(c.text or "", sampling.stop, c.finish_reason)
            ntok = getattr(r.usage, "completion_tokens", None) if r.usage else None
            return GenerationOutput(text=text, prompt=prompt, model=self.model_name, backend=self.name,
                                    sampling=sampling.as_dict(), seed=sampling.seed,
                                    prompt_template_hash=prompt_template_hash, finish_reason=finish,
                                    tokens_generated=int(ntok or 0))
        return self._call(one, list(prompts))

    def chat(self, conversations: list[list[dict]], sampling: SamplingConfig, *,
             prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """One ``/v1/chat/completions`` request per conversation (the server applies the
        model's chat template to the messages :func:`pipelines.render.template_input` builds);
        ``prompt`` records the conversation's last user turn."""
        from pipelines.render.inputs import template_input
        check_conversations(conversations)
        params = self._params(sampling)

        def one(conv: list[dict]) -> GenerationOutput:
            r = self.client.chat.completions.create(messages=template_input(conv).messages, **params)
            c = r.choices[0]
            text, finish = _cut_at_stop(c.message.content or "", sampling.stop, c.finish_reason)
            ntok = getattr(r.usage, "completion_tokens", None) if r.usage else None
            return GenerationOutput(text=text, prompt=conv[-1]["content"], messages=list(conv),
                                    model=self.model_name, backend=self.name, sampling=sampling.as_dict(),
                                    seed=sampling.seed, prompt_template_hash=prompt_template_hash,
                                    finish_reason=finish, tokens_generated=int(ntok or 0))
        return self._call(one, list(conversations))
