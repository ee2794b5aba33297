"""Personas and behaviours: conversations where the assistant acts as a persona (teacher,
lawyer, doctor, support agent, coding assistant, ...) with its system prompt, and shows one
behaviour: a direct answer, a clarification question, a refusal, or step-by-step reasoning.

Persona system prompts come from the system-prompt library (``templates/system/*.jinja``,
:mod:`pipelines.system_prompts`); the user request is generated with
``templates/generate/persona.jinja``, the reply with the persona's system prompt plus the
behaviour's instruction (:data:`BEHAVIOURS`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, SamplingConfig
from .batching import StageResult, first_paragraph, keep_novel, run_batched
from .checkpoint import Checkpoint
from .prompts import render_prompt, template_hash

#: persona -> (system-prompt library name, short description for the request prompt)
PERSONAS: dict[str, tuple[str, str]] = {
    "teacher": ("teacher", "explains ideas step by step to students"),
    "lawyer": ("lawyer", "gives general legal information, not legal advice"),
    "doctor": ("doctor", "gives general medical information and says when to see a doctor"),
    "support_agent": ("support_agent", "helps customers with orders and accounts"),
    "coding_assistant": ("coding_assistant", "helps programmers write and debug code"),
}
#: behaviour -> (hint for the request prompt, instruction appended to the system prompt)
BEHAVIOURS: dict[str, tuple[str, str]] = {
    "answer": ("a direct, complete answer", "Answer directly and completely."),
    "clarify": ("a clarification question, because the request is ambiguous or misses details",
                "The request is missing details: ask one short clarification question instead of answering."),
    "refuse": ("a brief refusal, because the request is outside what this role may do",
               "This request is outside your role: refuse briefly, without a lecture, and offer a safe alternative."),
    "step_by_step": ("step-by-step reasoning that ends with the answer",
                     "Reason step by step, numbering the steps, then give the final answer."),
}
DROP_REASONS: tuple[str, ...] = ("empty", "too_short", "duplicate", "near_duplicate")


def _sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=80, temperature=0.8, top_p=0.95, seed=0, stop=("\n\n",))


def _reply_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=160, temperature=0.7, top_p=0.9, seed=0)


class PersonaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    personas: tuple[str, ...] = Field(tuple(PERSONAS), description="Personas (keys of PERSONAS).")
    behaviours: tuple[str, ...] = Field(tuple(BEHAVIOURS), description="Behaviours (keys of BEHAVIOURS).")
    per_combination: int = Field(1, ge=1, description="Conversations per persona and behaviour.")
    min_words: int = Field(4, ge=1, description="A shorter request is too_short (Self-Instruct's > 3 words).")
    near_dup_threshold: float = Field(0.7, ge=0.0, lt=1.0, description="ROUGE-L F between requests (0.7).")
    sampling: SamplingConfig = Field(default_factory=_sampling, description="Sampling for the user requests.")
    reply_sampling: SamplingConfig = Field(default_factory=_reply_sampling, description="Sampling for replies.")
    batch_size: int = Field(8, ge=1, description="Prompts per backend call and per checkpoint record.")


class PersonaResult(StageResult):
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS


def persona_system_prompt(persona: str, behaviour: str) -> str:
    """The persona's library system prompt plus the behaviour's instruction."""
    from pipelines.system_prompts import render_system_prompt
    return render_system_prompt(PERSONAS[persona][0]).strip() + "\n" + BEHAVIOURS[behaviour][1]


def generate_persona_samples(backend: Backend, config: PersonaConfig | None = None, *,
                             checkpoint: Checkpoint | None = None, should_stop: Callable[[], None] | None = None,
                             progress: Callable[[dict], None] | None = None) -> PersonaResult:
    """Conversation samples ``[system, user, assistant]`` per persona x behaviour x
    ``per_combination``; tags ``persona:<p>`` and ``behaviour:<b>``.

    Raises:
        WorkbenchError: an unknown persona or behaviour.
    """
    from datastore import Sample
    c = config or PersonaConfig()
    bad = [p for p in c.personas if p not in PERSONAS] + [b for b in c.behaviours if b not in BEHAVIOURS]
    if bad:
        raise WorkbenchError(f"unknown persona/behaviour {bad} (personas: {', '.join(PERSONAS)}; "
                             f"behaviours: {', '.join(BEHAVIOURS)})")
    t0 = time.monotonic()
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    th = template_hash("persona")
    specs = [(p, b, k) for p in c.personas for b in c.behaviours for k in range(c.per_combination)]
    prompts = [render_prompt("persona", persona={"name": p.replace("_", " "), "description": PERSONAS[p][1]},
                             behaviour=b, behaviour_hint=BEHAVIOURS[b][0])[0] for p, b, k in specs]
    outs = run_batched(backend, "persona:requests", prompts, c.sampling, prompt_template_hash=th,
                       batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop,
                       on_batch=lambda d, n: progress and progress({"step": "requests", "done": d, "total": n}))
    dropped, alive = [], []
    for spec, o in zip(specs, outs):
        text = first_paragraph(o.text)
        if not text:
            dropped.append({"persona": spec[0], "behaviour": spec[1], "text": text, "reason": "empty"})
        elif len(text.split()) < c.min_words:
            dropped.append({"persona": spec[0], "behaviour": spec[1], "text": text, "reason": "too_short"})
        else:
            alive.append((spec, o, text))
    kept = keep_novel(alive, lambda a: a[2], c.near_dup_threshold, lambda a, r: dropped.append(
        {"persona": a[0][0], "behaviour": a[0][1], "text": a[2], "reason": r}))
    convs = [[{"role": "system", "content": persona_system_prompt(p, b)}, {"role": "user", "content": text}]
             for (p, b, k), o, text in kept]
    replies = run_batched(backend, "persona:replies", convs, c.reply_sampling, mode="chat",
                          batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop)
    samples = []
    for ((p, b, k), o, text), conv, r in zip(kept, convs, replies):
        samples.append(Sample(kind="conversation", messages=conv + [{"role": "assistant", "content": r.text.strip()}],
                              source="persona", task_type=f"persona:{b}", tags=[f"persona:{p}", f"behaviour:{b}"],
                              lineage={"generator": "persona", "persona": p, "behaviour": b, "variant": k,
                                       "template": "generate/persona", "prompt_template_hash": th,
                                       "system_prompt": f"system/{PERSONAS[p][0]}", "model": o.model,
                                       "backend": o.backend, "sampling": o.sampling, "seed": o.seed,
                                       "reply": {"sampling": r.sampling, "seed": r.seed}}))
    return PersonaResult(samples=samples, dropped=dropped, generated=len(specs), elapsed_s=round(time.monotonic() - t0, 3))
