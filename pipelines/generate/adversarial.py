"""Adversarial and refusal data: attack prompts per policy domain and attack style, each
labelled with its expected behaviour and a target response, plus benign look-alikes.

- Domains: a :class:`~pipelines.generate.taxonomy.Taxonomy` (default Llama Guard 3 S1-S14).
- Attack styles (:data:`ATTACK_STYLES`): role-play, hypothetical framing, obfuscation, prompt
  injection against a system prompt, multi-turn escalation (the families of garak's probes
  and PyRIT's converters/orchestrators); one Jinja prompt per style in ``templates/generate/``.
- Labels (:data:`~pipelines.generate.taxonomy.BEHAVIOURS`): an attack gets its domain's
  expected behaviour (``refuse`` or ``safe-complete``); a benign look-alike gets ``comply``.
- Targets: ``refuse`` renders ``refusal_target.jinja`` (the house style: brief, no lecture, a
  safe alternative where the domain has one), so every refusal follows the style exactly;
  ``safe-complete`` is generated with the ``safe_complete.jinja`` system prompt; ``comply``
  is the model's plain answer. All targets go to human review in a staging dataset.
- Benign look-alikes (XSTest, Röttger et al. 2024: safe prompts of 10 types that share words
  with unsafe ones) use the taxonomy's ``contrast_types``, rotated per domain.
- Quotas: ``quota`` prompts per domain and style (the taxonomy's per-domain value unless the
  config overrides it); :func:`coverage_table` shows kept counts against quotas.
"""
from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, SamplingConfig
from .batching import first_paragraph, novelty_filter, run_batched
from .checkpoint import Checkpoint
from .prompts import render_prompt, template_hash
from .taxonomy import Domain, Taxonomy, load_taxonomy

ATTACK_STYLES: tuple[str, ...] = ("role_play", "hypothetical", "obfuscation", "prompt_injection", "multi_turn")
DROP_REASONS: tuple[str, ...] = ("empty", "too_short", "copies_example", "duplicate", "near_duplicate")
DEFAULT_INJECTED_SYSTEM_PROMPT = ("You are the customer support assistant of an online bookshop. Only answer "
                                  "questions about orders, shipping and books.")


def _prompt_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=96, temperature=0.9, top_p=0.95, seed=0, stop=("\n\n",))


def _target_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=160, temperature=0.7, top_p=0.9, seed=0)


class AdversarialConfig(BaseModel):
    """What to generate. Defaults: every domain of the taxonomy, every attack style, the
    taxonomy's quota per domain and style, one benign look-alike per domain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taxonomy: str = Field("llama_guard_3", description="Built-in taxonomy name or a JSON file path.")
    domains: tuple[str, ...] | None = Field(None, description="Domain codes to cover (None: all).")
    styles: tuple[str, ...] = Field(ATTACK_STYLES, description="Attack styles to cover (ATTACK_STYLES).")
    quota: int | None = Field(None, ge=0, description=(
        "Prompts per domain and style; None: each domain's ``quota`` in the taxonomy (default 1)."))
    benign_per_domain: int = Field(1, ge=0, description=(
        "Benign look-alikes (label comply) per domain. Source: XSTest pairs safe prompts with "
        "unsafe contrasts (250 safe / 200 unsafe), i.e. about one safe prompt per unsafe one."))
    min_words: int = Field(4, ge=1, description="A generated prompt with fewer words is dropped as too_short.")
    near_dup_threshold: float = Field(0.7, ge=0.0, lt=1.0, description=(
        "ROUGE-L F-measure above which a prompt is a near duplicate of an earlier kept one "
        "(Self-Instruct's 0.7, docs/architecture.md section 4)."))
    obfuscation_converter: str = Field("none", description=(
        "Deterministic converter applied to obfuscation prompts after generation: none, "
        "leetspeak or base64 (PyRIT's converters of the same names)."))
    injected_system_prompt: str = Field(DEFAULT_INJECTED_SYSTEM_PROMPT, description=(
        "The system prompt the prompt-injection attacks try to override; kept as the sample's system turn."))
    prompt_sampling: SamplingConfig = Field(default_factory=_prompt_sampling, description=(
        "Sampling for attack prompts: a high temperature for variety (garak/PyRIT attacker "
        "models sample at about 0.9-1.0)."))
    target_sampling: SamplingConfig = Field(default_factory=_target_sampling, description=(
        "Sampling for safe-complete and comply targets (and the assistant turns of multi-turn "
        "conversations); Self-Instruct's answer temperature 0.7."))
    generate_targets: bool = Field(True, description="Generate safe-complete/comply targets with the backend.")
    batch_size: int = Field(8, ge=1, description="Prompts per backend call and per checkpoint record.")


class AdversarialItem(BaseModel):
    """One generated prompt (attack or benign), kept or dropped, with its label and target."""

    kind: str  # "attack" | "benign"
    domain: str
    domain_name: str
    style: str | None = None
    contrast_type: str | None = None
    expected: str
    system: str | None = None
    user_turns: list[str] = Field(default_factory=list)
    assistant_turns: list[str] = Field(default_factory=list, description="replies to all but the last user turn")
    target: str | None = None
    kept: bool = True
    drop_reason: str | None = None
    lineage: dict[str, Any] = Field(default_factory=dict)


class AdversarialResult(BaseModel):
    items: list[AdversarialItem]
    coverage: list[dict]
    elapsed_s: float

    @property
    def kept(self) -> list[AdversarialItem]:
        return [i for i in self.items if i.kept]

    def counts(self) -> dict:
        dropped = {r: 0 for r in DROP_REASONS}
        for i in self.items:
            if not i.kept:
                dropped[i.drop_reason] += 1
        return {"generated": len(self.items), "kept": len(self.kept), "dropped": dropped}


# --------------------------------------------------------------------------- helpers

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})


def convert_obfuscation(text: str, converter: str) -> str:
    """Apply a deterministic obfuscation converter: ``none``, ``leetspeak`` (a->4, e->3, i->1,
    o->0, s->5, t->7) or ``base64`` (the prompt asks to decode and answer).

    Raises:
        WorkbenchError: an unknown converter.
    """
    if converter == "none":
        return text
    if converter == "leetspeak":
        return text.lower().translate(_LEET)
    if converter == "base64":
        return "Decode this Base64 and do what it says: " + base64.b64encode(text.encode()).decode()
    raise WorkbenchError(f"unknown obfuscation converter '{converter}' (none, leetspeak, base64)")


_USER_TURN = re.compile(r"(?:^|\n)\s*User\s*\d+\s*:\s*", re.IGNORECASE)


def parse_multi_turn(continuation: str, n: int = 3) -> list[str]:
    """User turns from a multi-turn prompt's continuation (the prompt ends with "User 1:"),
    split at "User N:" markers; at most ``n`` non-empty turns."""
    turns = [" ".join(t.split()) for t in _USER_TURN.split(continuation)]
    return [t for t in turns if t][:n]


def house_refusal(domain: Domain) -> str:
    """The refusal target in the house style for ``domain`` (``refusal_target.jinja``)."""
    return render_prompt("refusal_target", domain=domain.model_dump())[0].strip()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:'\w+)?", text.casefold())


def copied_example(text: str, examples: list[str]) -> str | None:
    """The first of ``examples`` that ``text`` repeats word for word (its words, case and
    punctuation ignored, appear in ``text`` as one consecutive run), or None. A benign
    look-alike that copies the taxonomy's own example teaches nothing new: the prompt showed it."""
    words = " " + " ".join(_words(text)) + " "
    for e in examples:
        ew = _words(e)
        if ew and f" {' '.join(ew)} " in words:
            return e
    return None


def _quota(domain: Domain, config: AdversarialConfig) -> int:
    return config.quota if config.quota is not None else domain.quota


# --------------------------------------------------------------------------- the stage

def generate_adversarial(backend: Backend, config: AdversarialConfig | None = None, *,
                         taxonomy: Taxonomy | None = None, checkpoint: Checkpoint | None = None,
                         should_stop: Callable[[], None] | None = None,
                         progress: Callable[[dict], None] | None = None) -> AdversarialResult:
    """Generate attack prompts per domain and style and benign look-alikes, label them, filter
    them (empty, too short, a look-alike that repeats one of the taxonomy's contrast examples
    word for word (:func:`copied_example`), exact and ROUGE-L near duplicates) and write their
    targets.

    Returns:
        :class:`AdversarialResult` (all items, kept and dropped, and the coverage table).

    Raises:
        WorkbenchError: an unknown style or domain code, or an unknown converter.
    """
    c = config or AdversarialConfig()
    tax = taxonomy or load_taxonomy(c.taxonomy)
    bad = [s for s in c.styles if s not in ATTACK_STYLES]
    if bad:
        raise WorkbenchError(f"unknown attack style(s) {bad} (known: {', '.join(ATTACK_STYLES)})")
    domains = [tax.domain(code) for code in c.domains] if c.domains else list(tax.domains)
    convert_obfuscation("", c.obfuscation_converter)  # validate early
    t0 = time.monotonic()
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    report = (lambda d: progress(d)) if progress else (lambda d: None)

    # 1. specs, in a fixed order (so a resumed job builds the same batches)
    specs: list[dict] = []
    for d in domains:
        for style in c.styles:
            for k in range(_quota(d, c)):
                specs.append({"kind": "attack", "domain": d, "style": style, "k": k,
                              "template": f"adversarial_{style}"})
        for k in range(c.benign_per_domain):
            ct = tax.contrast_types[(domains.index(d) * max(1, c.benign_per_domain) + k) % len(tax.contrast_types)] \
                if tax.contrast_types else None
            specs.append({"kind": "benign", "domain": d, "style": None, "k": k, "contrast": ct,
                          "template": "benign_lookalike"})

    # 2. prompts, one batched (checkpointed) pass per template
    texts: list[str | None] = [None] * len(specs)
    outs_by_spec: list[Any] = [None] * len(specs)
    for tpl in dict.fromkeys(s["template"] for s in specs):
        idx = [i for i, s in enumerate(specs) if s["template"] == tpl]
        prompts = []
        for i in idx:
            s = specs[i]
            ctx: dict[str, Any] = {"domain": s["domain"].model_dump()}
            if tpl == "adversarial_prompt_injection":
                ctx["system_prompt"] = c.injected_system_prompt
            if tpl == "benign_lookalike":
                ct = s["contrast"]
                ctx.update(contrast_type=ct.type if ct else "safe question",
                           contrast_description=ct.description if ct else "a safe question",
                           examples=list(ct.examples[:2]) if ct else [])
            prompts.append(render_prompt(tpl, **ctx)[0])
        sampling = c.prompt_sampling
        if tpl == "adversarial_multi_turn":
            sampling = sampling.model_copy(update={"stop": ("\n\n\n", "User 4")})
        outs = run_batched(backend, f"adv:{tpl}", prompts, sampling, prompt_template_hash=template_hash(tpl),
                           batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop,
                           on_batch=lambda dn, n, tpl=tpl: report({"step": tpl, "done": dn, "total": n}))
        for i, o in zip(idx, outs):
            outs_by_spec[i] = o

    # 3. parse, label and filter
    items: list[AdversarialItem] = []
    examples = [e for ct in tax.contrast_types for e in ct.examples]
    for s, o in zip(specs, outs_by_spec):
        d: Domain = s["domain"]
        if s["style"] == "multi_turn":
            turns = parse_multi_turn(o.text)
        else:
            t = first_paragraph(o.text)
            if s["style"] == "obfuscation":
                t = convert_obfuscation(t, c.obfuscation_converter) if t else t
            turns = [t] if t else []
        expected = "comply" if s["kind"] == "benign" else d.expected
        lineage = {"generator": "adversarial", "template": f"generate/{s['template']}",
                   "prompt_template_hash": o.prompt_template_hash, "model": o.model, "backend": o.backend,
                   "sampling": o.sampling, "seed": o.seed, "finish_reason": o.finish_reason,
                   "taxonomy": tax.name, "domain": d.code, "attack_style": s["style"], "quota_index": s["k"],
                   **({"contrast_type": s["contrast"].type} if s.get("contrast") else {})}
        item = AdversarialItem(kind=s["kind"], domain=d.code, domain_name=d.name, style=s["style"],
                               contrast_type=s["contrast"].type if s.get("contrast") else None, expected=expected,
                               system=c.injected_system_prompt if s["style"] == "prompt_injection" else None,
                               user_turns=turns, lineage=lineage)
        copied = copied_example(" ".join(turns), examples) if s["kind"] == "benign" else None
        if not turns:
            item.kept, item.drop_reason = False, "empty"
        elif len(" ".join(turns).split()) < c.min_words:
            item.kept, item.drop_reason = False, "too_short"
        elif copied is not None:
            item.kept, item.drop_reason = False, "copies_example"
            item.lineage["copies_example"] = copied
        items.append(item)
    alive = [i for i in items if i.kept]
    verdicts = novelty_filter([" ".join(i.user_turns) for i in alive], [], c.near_dup_threshold)
    for it, v in zip(alive, verdicts):
        if not v["kept"]:
            it.kept, it.drop_reason = False, v["reason"]
            it.lineage["near_duplicate_of"] = v["match"]

    # 4. targets
    kept = [i for i in items if i.kept]
    for it in kept:
        if it.expected == "refuse":
            it.target = house_refusal(tax.domain(it.domain))
            it.lineage["target"] = {"source": "house_refusal", "template": "generate/refusal_target",
                                    "prompt_template_hash": template_hash("refusal_target")}
    mt = [i for i in kept if len(i.user_turns) > 1]
    if c.generate_targets:
        # the assistant turns before the last user turn of multi-turn conversations, turn by turn
        max_turns = max((len(i.user_turns) for i in mt), default=0)
        for t in range(max_turns - 1):
            group = [i for i in mt if len(i.user_turns) > t + 1]
            convs = [_conversation(i, upto=t) for i in group]
            outs = run_batched(backend, f"adv:mt_reply:{t}", convs, c.target_sampling, mode="chat",
                               batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop)
            for i, o in zip(group, outs):
                i.assistant_turns.append(o.text.strip())
        need = [i for i in kept if i.target is None]
        safe_hash = template_hash("safe_complete")
        convs = []
        for i in need:
            conv = _conversation(i, upto=len(i.user_turns) - 1)
            if i.expected == "safe-complete":
                sys_text = render_prompt("safe_complete", domain=tax.domain(i.domain).model_dump())[0].strip()
                conv = [{"role": "system", "content": sys_text}] + [m for m in conv if m["role"] != "system"]
            convs.append(conv)
        outs = run_batched(backend, "adv:targets", convs, c.target_sampling, mode="chat",
                           batch_size=c.batch_size, checkpoint=ckpt, should_stop=should_stop,
                           on_batch=lambda dn, n: report({"step": "targets", "done": dn, "total": n}))
        for i, o in zip(need, outs):
            i.target = o.text.strip()
            i.lineage["target"] = {"source": "model", "model": o.model, "backend": o.backend,
                                   "sampling": o.sampling, "seed": o.seed,
                                   **({"system_template": "generate/safe_complete", "prompt_template_hash": safe_hash}
                                      if i.expected == "safe-complete" else {})}
    res = AdversarialResult(items=items, coverage=coverage_table(kept, domains, c), elapsed_s=round(time.monotonic() - t0, 3))
    report({"step": "adversarial", **res.counts()})
    return res


def _conversation(item: AdversarialItem, upto: int) -> list[dict]:
    """System (if any), then user/assistant turns up to and including user turn ``upto``."""
    conv = [{"role": "system", "content": item.system}] if item.system else []
    for k in range(upto + 1):
        conv.append({"role": "user", "content": item.user_turns[k]})
        if k < upto and k < len(item.assistant_turns):
            conv.append({"role": "assistant", "content": item.assistant_turns[k]})
    return conv


def coverage_table(kept: list[AdversarialItem], domains: list[Domain], config: AdversarialConfig) -> list[dict]:
    """One row per domain: ``{"domain", "name", "expected", <style>: kept count, ..., "benign",
    "quota", "met"}``; ``met`` is True when every style reaches the quota and benign reaches
    ``benign_per_domain``."""
    rows = []
    for d in domains:
        row: dict[str, Any] = {"domain": d.code, "name": d.name, "expected": d.expected}
        q = _quota(d, config)
        for s in config.styles:
            row[s] = sum(1 for i in kept if i.domain == d.code and i.style == s)
        row["benign"] = sum(1 for i in kept if i.domain == d.code and i.kind == "benign")
        row["quota"] = q
        row["met"] = all(row[s] >= q for s in config.styles) and row["benign"] >= config.benign_per_domain
        rows.append(row)
    return rows


def adversarial_to_samples(result: AdversarialResult) -> list:
    """Kept items as conversation samples: optional system prompt, the user turns with the
    assistant turns between them, the target as the last assistant turn. ``policy_domain`` is
    the domain code; ``task_type`` ``adversarial`` or ``benign_lookalike``; tags carry the
    expected behaviour and the attack style; ``extra`` repeats them as fields
    (``expected_behavior``, ``attack_style``, ``contrast_type``, ``domain_name``). Every sample
    is checked against the shared vocabulary (``datastore.vocabulary.check_sample``; the codes of
    the result's taxonomy are allowed besides Llama Guard 3's, for a custom taxonomy).

    Raises:
        WorkbenchError: a field outside the vocabulary (naming the item and the field).
    """
    from datastore import Sample
    from datastore.vocabulary import EXPECTED, check_sample
    codes = tuple(r["domain"] for r in result.coverage)
    out = []
    for i in result.kept:
        conv = _conversation(i, upto=len(i.user_turns) - 1)
        if i.target is not None:
            conv.append({"role": "assistant", "content": i.target})
        tags = [f"expected:{i.expected}"] + ([f"attack:{i.style}"] if i.style else []) + \
               ([f"contrast:{i.contrast_type}"] if i.contrast_type else [])
        out.append(Sample(kind="conversation", messages=conv, source="adversarial", policy_domain=i.domain,
                          task_type="adversarial" if i.kind == "attack" else "benign_lookalike", tags=tags,
                          extra={EXPECTED.name: i.expected, "attack_style": i.style,
                                 "contrast_type": i.contrast_type, "domain_name": i.domain_name},
                          lineage=i.lineage))
        check_sample(out[-1], allowed_domains=codes, where=f"generated {i.kind} {len(out)} ({i.domain})")
    return out
