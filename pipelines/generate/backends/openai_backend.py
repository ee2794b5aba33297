"""The ``openai`` backend: any OpenAI-compatible server, through the ``openai`` client.

This is how generation scales past one host: ``vllm serve MODEL --tensor-parallel-size N``
on a GPU cluster (Ray across nodes), or ``transformers serve MODEL_DIR`` on a laptop (the
tests start the latter on 127.0.0.1; docs/architecture.md section 4). ``complete`` uses
``/v1/completions`` and ``chat`` uses ``/v1/chat/completions``. The OpenAI API takes one
conversation per chat request, so a batch is sent as concurrent requests
(``max_concurrency``, a thread pool); the server batches them (vLLM's continuous batching).

Sampling is sent with OpenAI semantics (``max_tokens``, ``temperature``, ``top_p``,
``seed``, ``stop``). Stop strings are also applied on the client, because not every server
honours them (``transformers serve`` 5.24 ignores ``stop``); the text is cut before the first
stop string found and the finish reason becomes ``stop``.

The backend adapts to the server (:class:`AdaptiveLimit`): a request that times out or is
answered 429 (too many requests) or 503 (overloaded) is retried after a back-off
(exponential with full jitter, or the server's ``Retry-After``), at most ``max_retries``
times, and the number of requests in flight is halved (down to 1); after as many successes
in a row as the current limit it is raised by one, up to ``max_concurrency`` (additive
increase, multiplicative decrease: the TCP congestion rule, Chiu and Jain 1989; full jitter:
"Exponential Backoff And Jitter", AWS Architecture Blog, 2015). Each change is logged on the
``pipelines.generate.openai`` logger (a job's ``job.log``).

Self-Instruct's prompt is a raw text to continue (``/v1/completions``). Servers that offer
only chat completions (many hosted endpoints) answer 404 or 405 there; ``complete`` then
sends each prompt as one chat user message (``chat_only=True`` does so from the start), and
the output's ``messages`` holds that one message, so callers can say so in the lineage.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from datastore.errors import WorkbenchError

from . import Backend, GenerationOutput, SamplingConfig, check_conversations, register_backend


def _cut_at_stop(text: str, stops: tuple[str, ...], finish: str | None) -> tuple[str, str]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], "stop"
    return text, "length" if finish == "length" else "stop"


log = logging.getLogger("pipelines.generate.openai")

#: Default requests in flight. 4 keeps a single-GPU local server (vLLM, ``transformers
#: serve``) busy through continuous batching without queueing long prompts past the timeout;
#: hosted endpoints take more (``--concurrency``).
DEFAULT_CONCURRENCY = 4
#: Default per-request timeout in seconds: a 7B model on one busy GPU or a CPU server can take
#: minutes for Self-Instruct's 1024 new tokens; a short timeout would retry work the server
#: is still doing.
DEFAULT_TIMEOUT_S = 300.0
#: Default retries of one request after a timeout, 429 or 503 (then the job fails and resumes).
DEFAULT_MAX_RETRIES = 5
#: Back-off bounds in seconds: the n-th retry waits uniform(0, min(cap, base * 2**n)).
BACKOFF_BASE_S, BACKOFF_CAP_S = 1.0, 60.0
#: HTTP statuses that mean "slow down" rather than "wrong request".
RETRY_STATUSES = (429, 503)


class AdaptiveLimit:
    """How many requests may be in flight: starts at ``maximum``, halves (down to 1) on an
    overload signal, grows by one after ``limit`` successes in a row (up to ``maximum``).

    One overload halves the limit once per window: a request that was sent before the last
    decrease does not decrease it again (a burst of 429s for one wave of requests is one
    signal, as TCP cuts its window once per round trip). Thread-safe.
    """

    def __init__(self, maximum: int):
        self.maximum = self.limit = int(maximum)
        self.in_flight = 0
        self.epoch = 0
        self._ok = 0
        self._cv = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns the epoch to pass to :meth:`release`."""
        with self._cv:
            while self.in_flight >= self.limit:
                self._cv.wait()
            self.in_flight += 1
            return self.epoch

    def release(self, epoch: int, *, overloaded: bool, why: str = "") -> None:
        with self._cv:
            self.in_flight -= 1
            if overloaded:
                self._ok = 0
                if epoch == self.epoch and self.limit > 1:
                    old, self.limit = self.limit, max(1, self.limit // 2)
                    self.epoch += 1
                    log.warning("openai backend: %s; concurrency %d -> %d", why, old, self.limit)
            else:
                self._ok += 1
                if self.limit < self.maximum and self._ok >= self.limit:
                    self._ok = 0
                    self.limit += 1
                    log.info("openai backend: %d successes in a row; concurrency -> %d", self.limit - 1, self.limit)
            self._cv.notify_all()


def _retry_after(e: Exception) -> float | None:
    """Seconds from the ``Retry-After`` header of an HTTP error (RFC 9110 section 10.2.3,
    the delay-seconds form), or None."""
    resp = getattr(e, "response", None)
    try:
        v = resp.headers.get("retry-after") if resp is not None else None
        return max(0.0, float(v)) if v is not None else None
    except (TypeError, ValueError):
        return None


@register_backend
class OpenAIBackend(Backend):
    """Generate through an OpenAI-compatible HTTP API.

    Args:
        model: the model name the server knows (``/v1/models`` lists them); required.
        base_url: e.g. ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL`` or OpenAI's.
        api_key: default ``$OPENAI_API_KEY``, else ``"EMPTY"`` (local servers need none).
        api_key_env: the NAME of an environment variable holding the key (what job folders
            store: a key itself is never written anywhere).
        max_concurrency: most requests in flight at once (a batch of 64 prompts is 64
            requests); lowered on overload, see :class:`AdaptiveLimit`. Default 4.
        timeout_s: per-request timeout in seconds (default 300); max_retries: retries of one
            request after a timeout, 429 or 503 (default 5), with back-off
            (``backoff_base_s``, ``backoff_cap_s``).
        chat_only: send ``complete`` prompts as one chat user message each (the server has no
            ``/v1/completions``); found out by itself on a 404 or 405.
        client: an ``openai.OpenAI`` instance to use instead (tests, custom transports).

    Raises (on use): WorkbenchError naming the server when it cannot be reached or refuses.
    """

    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, max_concurrency: int = DEFAULT_CONCURRENCY,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES,
                 backoff_base_s: float = BACKOFF_BASE_S, backoff_cap_s: float = BACKOFF_CAP_S,
                 chat_only: bool = False, client: Any = None, model_name: str | None = None, **_ignored: Any):
        model = model or model_name
        if not model:
            raise WorkbenchError("the openai backend needs a model name (the server's /v1/models lists them)")
        if max_concurrency < 1:
            raise WorkbenchError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model_name = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.max_concurrency = int(max_concurrency)
        self.limit = AdaptiveLimit(self.max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff = (float(backoff_base_s), float(backoff_cap_s))
        self.chat_only = bool(chat_only)
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise WorkbenchError(f"the openai backend's api_key_env names {api_key_env}, which is not set")
        if client is None:
            import openai
            client = openai.OpenAI(base_url=self.base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                   timeout=timeout_s, max_retries=0)  # retries are ours: they adapt the limit
        self.client = client

    def info(self) -> dict:
        return {"backend": self.name, "model": self.model_name, "base_url": self.base_url}

    def _params(self, s: SamplingConfig) -> dict:
        p = {"model": self.model_name, "max_tokens": s.max_tokens, "temperature": s.temperature,
             "top_p": s.top_p, "seed": s.seed}
        if s.stop:
            p["stop"] = list(s.stop)[:4]  # the OpenAI API takes at most 4; all are applied client-side
        return p

    def _send(self, fn, x):
        """One request under the adaptive limit, retried with back-off on overload."""
        import openai
        for attempt in range(self.max_retries + 1):
            epoch = self.limit.acquire()
            try:
                r = fn(x)
            except (openai.APITimeoutError, openai.APIStatusError) as e:
                timeout = isinstance(e, openai.APITimeoutError)
                if not timeout and e.status_code not in RETRY_STATUSES:
                    self.limit.release(epoch, overloaded=False)
                    raise
                why = "request timed out" if timeout else f"server answered {e.status_code}"
                self.limit.release(epoch, overloaded=True, why=why)
                if attempt == self.max_retries:
                    raise
                wait = _retry_after(e)
                if wait is None:
                    wait = random.uniform(0, min(self.backoff[1], self.backoff[0] * 2 ** attempt))
                log.warning("openai backend: %s; retry %d of %d in %.2f s", why, attempt + 1, self.max_retries, wait)
                time.sleep(wait)
                continue
            except BaseException:
                self.limit.release(epoch, overloaded=False)
                raise
            self.limit.release(epoch, overloaded=False)
            return r

    @contextlib.contextmanager
    def _clear_errors(self, passthrough: tuple[int, ...] = ()):
        """Turn the client's errors into one WorkbenchError naming the server (HTTP statuses in
        ``passthrough`` are re-raised as they are)."""
        import openai
        where = self.base_url or "api.openai.com"
        try:
            yield
        except openai.APITimeoutError as e:
            raise WorkbenchError(f"openai backend: {where} did not answer within the timeout after "
                                 f"{self.max_retries} retries (raise --timeout or lower --concurrency)") from e
        except openai.APIConnectionError as e:
            raise WorkbenchError(f"openai backend: cannot reach {where} ({e})") from e
        except openai.APIStatusError as e:
            if e.status_code in passthrough:
                raise
            raise WorkbenchError(f"openai backend: {where} answered {e.status_code}: {str(e)[:300]}") from e

    def _call(self, fn, items: list) -> list:
        with self._clear_errors():
            if len(items) <= 1 or self.max_concurrency == 1:
                return [self._send(fn, x) for x in items]
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
                return list(pool.map(lambda x: self._send(fn, x), items))

    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """One ``/v1/completions`` request per prompt, ``max_concurrency`` at a time; on a
        chat-only server (404 or 405 there, or ``chat_only``) one chat request per prompt, the
        prompt as the one user message (the output's ``messages`` holds it)."""
        import openai
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
        prompts = list(prompts)
        if not self.chat_only and prompts:
            try:
                with self._clear_errors(passthrough=(404, 405)):
                    first = self._send(one, prompts[0])
            except openai.APIStatusError as e:  # 404 or 405: no /v1/completions on this server
                log.warning("openai backend: %s has no /v1/completions (%d); each prompt is sent as one chat "
                            "user message", self.base_url or "the server", e.status_code)
                self.chat_only = True
            else:
                return [first] + self._call(one, prompts[1:])
        outs = self.chat([[{"role": "user", "content": p}] for p in prompts], sampling,
                         prompt_template_hash=prompt_template_hash)
        return [o.model_copy(update={"prompt": p}) for o, p in zip(outs, prompts)]

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
