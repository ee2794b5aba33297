"""Chat with the base model or an adapter, with the template its run used, and send answers to review.

Template rule (docs/architecture.md section 8, "a different template at serving than in
training"): an adapter is served with the serving template its run's preflight checked
(``run_card["preflight"]["serve_template"]``) when the card has one, else the template it trained
with (``run_card["template"]``), else the chat template saved in its tokenizer; the base model
with its tokenizer's own chat template. Prompts are rendered and tokenized by
:func:`pipelines.render.render_with_mask` (text in a message never becomes a control token) and
decoded greedily unless a temperature is given. The system prompt comes from the library
(:mod:`pipelines.system_prompts`) or is given as text.

:func:`send_to_review` stages a conversation and its answer as a candidate in a staging dataset
(``pipelines.curation.stage_candidates``) with the verdict (good/bad) as a tag and the adapter,
template and system prompt in its lineage; anyone who may ``annotate`` may flag an answer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from datastore import Sample
from datastore.errors import WorkbenchError

CHAT_STAGING = "chat-feedback"
VERDICTS = ("good", "bad")


@dataclass
class Reply:
    """One generated answer: ``text``, the ``adapter`` (None: base), the ``template`` name and its
    sha256, ``new_tokens``, ``seconds``, the ``messages`` it answered (system prompt included) and
    what ``served`` it (run name, kind, method, base model: :attr:`AdapterPool.last`)."""

    text: str
    adapter: str | None
    template: str
    template_sha256: str
    new_tokens: int
    seconds: float
    messages: list[dict] = field(default_factory=list)
    served: dict | None = None  # what answered: pipelines.serve.adapters.describe (run, method, base model)


def serving_template(adapter_path: str | Path | None, pool=None):
    """The chat template to serve ``adapter_path`` with (None: the base model); see the module doc.

    Returns a :class:`pipelines.render.templates.Template`.
    """
    from pipelines.render import get_template
    from pipelines.render.templates import template_from_tokenizer

    if adapter_path is not None:
        from pipelines.serve.adapters import adapter_card, saved_dir_of
        card = adapter_card(adapter_path)
        pre = card.get("preflight") or {}
        for cand in (pre.get("serve_template"), card.get("serve_template"), card.get("template")):
            name = cand.get("name") if isinstance(cand, dict) else cand
            if name and name != "tokenizer":
                try:
                    return get_template(name, "chat")
                except WorkbenchError:
                    continue
        from pipelines.models import load_tokenizer
        tok = load_tokenizer(saved_dir_of(adapter_path))
        if tok.chat_template:
            return template_from_tokenizer(tok, name=f"{Path(adapter_path).name}-tokenizer")
        raise WorkbenchError(f"adapter {adapter_path}: no template in its card and none in its tokenizer")
    if pool is not None and pool.tokenizer.chat_template:
        return template_from_tokenizer(pool.tokenizer, name="base-tokenizer")
    return get_template("chatml", "chat")


def system_prompt(name: str | None, text: str | None = None, **fields) -> str | None:
    """The system prompt: ``text`` when given, else the library prompt ``name`` rendered with
    ``fields`` (:func:`pipelines.system_prompts.render_system_prompt`), else None."""
    if text:
        return text
    if name:
        from pipelines.system_prompts import render_system_prompt
        return render_system_prompt(name, **fields)
    return None


def _stop_ids(tok, tpl) -> list[int]:
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    for s in ("<|im_end|>", "<|eot_id|>", "</s>", "<|end|>"):
        if s in tpl.text:
            i = tok.convert_tokens_to_ids(s)
            if isinstance(i, int) and i != tok.unk_token_id:
                ids.add(i)
    return sorted(ids)


def reply(pool, adapter: str | None, messages: list[dict], *, adapter_path: str | Path | None = None,
          system: str | None = None, max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0) -> Reply:
    """Generate the assistant's next turn.

    Args:
        pool: a :class:`pipelines.serve.adapters.AdapterPool`.
        adapter: the adapter's name in the pool (None: the base model); ``adapter_path`` attaches it
            first when it is not loaded.
        messages: the conversation so far (user/assistant turns; a leading system turn is replaced
            by ``system`` when that is given).
        max_new_tokens: at most this many new tokens; ``temperature`` 0 is greedy decoding.
    Raises:
        WorkbenchError: an empty conversation or one that does not end with a user turn.
    """
    import torch

    from pipelines.render import render_with_mask, template_input

    if not messages or messages[-1].get("role") != "user":
        raise WorkbenchError("the conversation must end with a user turn to be answered")
    if adapter is not None and adapter_path is not None:
        pool.ensure(adapter, adapter_path)
    path = adapter_path if adapter_path is not None else (pool.loaded.get(adapter) if adapter else None)
    tpl = serving_template(path, pool)
    msgs = [dict(m) for m in messages if not (system and m.get("role") == "system")]
    if system:
        msgs = [{"role": "system", "content": system}] + msgs
    tok = pool.tokenizer_for(adapter)
    inp = template_input(msgs, tpl, tokenizer=tok, add_generation_prompt=True)
    ids = render_with_mask(tok, inp, tpl)[0]
    t0 = time.monotonic()
    torch.manual_seed(seed)
    with pool.using(adapter, path) as model, torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                             temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
                             eos_token_id=_stop_ids(tok, tpl), pad_token_id=tok.pad_token_id or tok.eos_token_id)
        served = dict(pool.last or {})
    new = out[0, len(ids):].tolist()
    text = tok.decode(new, skip_special_tokens=True).strip()
    return Reply(text, adapter, tpl.name, tpl.sha256, len(new), round(time.monotonic() - t0, 3), msgs, served)


def side_by_side(pool, adapters: list[tuple[str | None, str | Path | None]], messages: list[dict], *,
                 system: str | None = None, max_new_tokens: int = 64) -> list[Reply]:
    """The same conversation answered by each ``(name, path)`` (name None: the base model), in order."""
    return [reply(pool, name, messages, adapter_path=path, system=system, max_new_tokens=max_new_tokens)
            for name, path in adapters]


def _stage(workspace, staging: str, sample: Sample, name: str, role: str, message: str, op: dict):
    """Stage one candidate through ``pipelines.curation.stage_candidates``. That function asks for
    ``edit_samples``; flagging a chat answer needs only ``annotate`` (anyone who reviews may flag),
    so it is called with ``action="annotate"`` where it accepts an action, and for a user without
    ``edit_samples`` otherwise the same commit is made here (one ``versions.commit`` into the
    staging dataset, created as kind ``staging``: what ``stage_candidates`` does)."""
    import inspect

    from datastore import Store
    from datastore import versions as V
    from pipelines import policy
    from pipelines.curation import stage_candidates

    if "action" in inspect.signature(stage_candidates).parameters:
        return stage_candidates(workspace, staging, [sample], user=name, message=message, operation=op,
                                action="annotate")
    if policy.can(role, "edit_samples"):
        return stage_candidates(workspace, staging, [sample], user=name, message=message, operation=op)
    with Store(workspace) as st:
        return V.commit(st, staging, author=name, message=message, add=[sample.to_row()], operation=op,
                        create=True, kind="staging")


def send_to_review(workspace: str | Path, answer: Reply, verdict: str, *, user: str, note: str | None = None,
                   staging: str = CHAT_STAGING, system_prompt_name: str | None = None) -> tuple[int, int]:
    """Stage the conversation with ``answer`` as a review candidate; returns ``(version number, sample id)``.

    The sample is a conversation (the messages answered, then the answer) tagged ``chat`` and
    ``chat:<verdict>``; its lineage names the generator ``chat``, the adapter, the template and its
    hash, the system prompt's library name and the note. Needs ``annotate``.

    Raises:
        WorkbenchError: a verdict other than good/bad. PermissionDenied.
    """
    from datastore import Store
    from datastore import versions as V
    from pipelines import policy

    if verdict not in VERDICTS:
        raise WorkbenchError(f"verdict must be one of {', '.join(VERDICTS)}, not '{verdict}'")
    with Store(workspace) as st:
        name, role = policy.require(st, user, "annotate", staging)
    s = Sample(kind="conversation", messages=answer.messages + [{"role": "assistant", "content": answer.text}],
               source="chat", tags=["chat", f"chat:{verdict}"], task_type="chat",
               lineage={"generator": "chat", "adapter": answer.adapter, "template": answer.template,
                        "template_sha256": answer.template_sha256, "system_prompt": system_prompt_name,
                        "verdict": verdict, "note": note, "by": name})
    msg = f"chat answer marked {verdict} by {name}"
    op = {"op": "chat_feedback", "verdict": verdict, "adapter": answer.adapter}
    v = _stage(workspace, staging, s, name, role, msg, op)
    with Store(workspace) as st:  # the new sample: the one the commit added
        sid = (V.diff(st, staging, v.number - 1, v.number).added[-1] if v.number > 1
               else V.read_page(st, v, limit=1)[0].sample_id)
    return v.number, sid


__all__ = ["CHAT_STAGING", "Reply", "VERDICTS", "reply", "role_of", "send_to_review", "serving_template", "side_by_side",
           "system_prompt"]


def role_of(workspace: str | Path, user: str) -> str:
    """The role of ``user`` (the local admin's while the workspace has no users), for pages
    deciding what to show; the service functions check permissions themselves."""
    from datastore import Store
    from datastore import users as U

    with Store(workspace, create=False) as st:
        return U.get_role(st, user)[1]
