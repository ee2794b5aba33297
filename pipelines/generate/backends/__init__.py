"""Generator backends: one interface, a registry of backends by name.

A backend turns prompts (``complete``) or conversations (``chat``) into
:class:`GenerationOutput` records that carry everything needed to reproduce them: model,
backend, sampling parameters, seed and the prompt template's content hash
(docs/architecture.md section 4). ``max_tokens`` is always set explicitly: vLLM defaults to 16
and transformers to 20, neither of which is what anybody wants.

Registered, one file each in this folder: ``transformers`` (CPU or GPU, the embedded
default), ``openai`` (any OpenAI-compatible server), ``vllm`` (in-process ``vllm.LLM`` on a
GPU host) and ``scripted`` (deterministic canned answers for tests and dry runs). A new
backend is one file that decorates its class with :func:`register_backend`.

Usage::

    backend = get_backend("transformers")            # the embedded SmolLM2-135M-Instruct
    outs = backend.complete(["Task 1: ..."], SamplingConfig(max_tokens=64, seed=0))
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datastore.errors import WorkbenchError

FinishReason = Literal["stop", "length"]


class SamplingConfig(BaseModel):
    """Sampling parameters, with OpenAI/vLLM semantics.

    The defaults ``temperature=0.7`` and ``top_p=0.5`` are the values Self-Instruct used to
    generate instructions (Wang et al. 2023, "Self-Instruct: Aligning Language Models with
    Self-Generated Instructions", ACL 2023; code: yizhongw/self-instruct,
    ``self_instruct/bootstrap_instructions.py``).

    Attributes:
        max_tokens: most new tokens per output (required: never left to a backend default).
        temperature: softmax temperature; ``0`` means greedy decoding.
        top_p: nucleus sampling mass, in (0, 1].
        seed: random seed; a backend seeds its generator with it before each call.
        stop: strings that end an output; the text is cut before the first one found in the
            generated text (the prompt is not searched), and the finish reason is ``stop``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(..., gt=0, description="most new tokens per output")
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.5, gt=0.0, le=1.0)
    seed: int = 0
    stop: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _no_empty_stop(self):
        if any(s == "" for s in self.stop):
            raise ValueError("stop strings must not be empty")
        return self

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (``stop`` as a list)."""
        d = self.model_dump()
        d["stop"] = list(self.stop)
        return d


class GenerationOutput(BaseModel):
    """One generated text with its provenance.

    Attributes:
        text: the generated text (stop string and end-of-sequence token removed).
        prompt: the exact text the model continued (for ``chat``: the rendered chat template).
        messages: the conversation, for ``chat`` outputs (None for ``complete``).
        model: model name; backend: backend name.
        sampling: the sampling parameters as a dict (:meth:`SamplingConfig.as_dict`).
        seed: the seed the generator was seeded with.
        prompt_template_hash: SHA-256 of the prompt template's text, when the caller passed one.
        finish_reason: ``stop`` (end of sequence or a stop string) or ``length`` (hit max_tokens).
        tokens_generated: new tokens the model produced for this output.
    """

    model_config = ConfigDict(extra="forbid")

    text: str
    prompt: str
    messages: list[dict] | None = None
    model: str
    backend: str
    sampling: dict
    seed: int
    prompt_template_hash: str | None = None
    finish_reason: FinishReason
    tokens_generated: int


class Backend:
    """Interface every generator backend implements.

    Subclasses set the class attribute ``name`` (the registry key) and the instance
    attribute ``model_name``, and implement :meth:`complete` and :meth:`chat`. Both take a
    batch and return one output per input, in order.
    """

    name: ClassVar[str] = ""
    model_name: str = ""

    def complete(self, prompts: list[str], sampling: SamplingConfig, *,
                 prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """Continue each raw text prompt (no chat template)."""
        raise NotImplementedError

    def chat(self, conversations: list[list[dict]], sampling: SamplingConfig, *,
             prompt_template_hash: str | None = None) -> list[GenerationOutput]:
        """Answer each conversation (``[{"role", "content"}]``) as the assistant, through the
        model's own chat template with the generation prompt added."""
        raise NotImplementedError

    def info(self) -> dict:
        return {"backend": self.name, "model": self.model_name}


BACKENDS: dict[str, type[Backend]] = {}


def check_conversations(conversations: list) -> None:
    """Raise ``WorkbenchError`` naming the first conversation that is not a non-empty list of
    ``{"role": str, "content": str}`` messages (shared by the backends' ``chat``)."""
    for i, conv in enumerate(conversations):
        if not isinstance(conv, list) or not conv or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in conv):
            raise WorkbenchError(f"conversation {i}: expected a non-empty list of "
                                 "{'role': str, 'content': str} messages")


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no backend name")
    BACKENDS[cls.name] = cls
    return cls


def list_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(BACKENDS)


def get_backend(name: str, **kwargs: Any) -> Backend:
    """Construct the backend registered as ``name`` with ``kwargs``.

    Raises:
        WorkbenchError: no backend of that name.
    """
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise WorkbenchError(f"unknown generator backend '{name}' "
                             f"(known: {', '.join(list_backends()) or 'none'})") from None
    return cls(**kwargs)


# Built-in backends register themselves on import (torch is imported lazily inside).
from . import openai_backend, scripted_backend, transformers_backend, vllm_backend  # noqa: E402,F401
