"""Self-Instruct instruction generation, as published, with every constant configurable.

Source: Wang et al. 2023, "Self-Instruct: Aligning Language Models with Self-Generated
Instructions" (ACL 2023), and its code, yizhongw/self-instruct
``self_instruct/bootstrap_instructions.py`` (``encode_prompt``,
``post_process_gpt3_response`` and the main loop). Stanford Alpaca
(tatsu-lab/stanford_alpaca ``generate_instruction.py``) adds blacklist words and drops the
last, truncated instruction of an output that hit its length limit.

One round:

1. build ``prompts_per_round`` prompts, each showing 8 in-context instructions: 2 sampled
   from the instructions kept so far (fewer while there are fewer) and the rest sampled from
   the human seeds, shuffled, rendered with ``templates/generator/self_instruct.jinja``
   ("Come up with a series of tasks:" / "Task 1: ..." / ... / "Task 9:");
2. generate the continuations in one batch (:class:`~pipelines.generate.backends.Backend`);
3. split each continuation into instructions at its "Task N:" markers
   (:func:`parse_instructions`): the text before the first marker is task 9;
4. run each candidate, in order, through the filters (:data:`FILTERS`, then exact duplicate,
   then ROUGE-L against the seeds and every earlier kept instruction); the first filter that
   objects names the drop reason.

Rounds repeat until ``target_kept`` instructions are kept or ``max_rounds`` have run.

Differences from the published code, on purpose: ``str.capitalize()`` is not applied to
instructions (it lowercases every later letter: "Translate to French" -> "Translate to
french"); the "Write a program" test is therefore case-insensitive, which matches what
capitalize-then-startswith did; a candidate identical to an earlier one is counted as
``duplicate`` (the published loop drops it too, as ROUGE-L 1.0). OpenAI's
``presence_penalty=2`` has no equivalent in the transformers backend and is not applied.
"""
from __future__ import annotations

import random
import re
import string
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, GenerationOutput, SamplingConfig
from .checkpoint import Checkpoint

TEMPLATE_NAME = "generator/self_instruct"

#: Blacklist of yizhongw/self-instruct ``post_process_gpt3_response``.
SELF_INSTRUCT_BLACKLIST: tuple[str, ...] = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to")
#: Words Stanford Alpaca adds (tatsu-lab/stanford_alpaca ``generate_instruction.py``).
ALPACA_BLACKLIST_ADDITIONS: tuple[str, ...] = ("video", "audio", "music", "flowchart", "diagram")

#: Drop reasons, in the order they are checked.
DROP_REASONS: tuple[str, ...] = (
    "truncated", "length", "blacklist", "write_a_program", "punctuation_start", "non_ascii_start",
    "duplicate", "rouge")


#: Lineage ``prompt_delivery`` of instructions generated on a server without text completions
#: (the openai backend's chat fallback): the published prompt went as one user message, so the
#: server's chat template wrapped it, which the published run did not do.
PROMPT_AS_CHAT = "self-instruct prompt sent as one chat user message"


def _default_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=1024, temperature=0.7, top_p=0.5, seed=0, stop=("\n\n", "\nTask 16"))


class SelfInstructConfig(BaseModel):
    """Every constant of the published instruction-generation step.

    The defaults are the published values; :func:`demo_config` gives the small settings
    that suit the embedded 135M model on 2 CPU cores.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_prompt_instructions: int = Field(8, ge=1, description=(
        "In-context instructions per prompt. Source: yizhongw/self-instruct "
        "--num_prompt_instructions default 8; paper section 2.2 (8 task instructions)."))
    num_machine_instructions: int = Field(2, ge=0, description=(
        "Of those, how many come from the instructions kept so far (the rest are human seeds; "
        "all seeds while none are kept). Source: yizhongw/self-instruct "
        "sample_machine_instructions(n=2); paper: 6 human-written and 2 model-generated."))
    shuffle_prompt_instructions: bool = Field(True, description=(
        "Shuffle the in-context instructions. Source: yizhongw/self-instruct random.shuffle."))
    prompts_per_round: int = Field(5, ge=1, description=(
        "Prompts generated per round (one batch). Source: yizhongw/self-instruct "
        "--request_batch_size default 5."))
    sampling: SamplingConfig = Field(default_factory=_default_sampling, description=(
        "Source: yizhongw/self-instruct: max_tokens=1024, temperature=0.7, top_p=0.5, stop "
        "['\\n\\n', '\\n16', '16.', '16 .'], i.e. after task 15; the paper (Table 5) stops at "
        "'Task 16'. sampling.seed seeds the in-context sampling; round r generates with seed + r."))
    min_words_exclusive: int = Field(3, ge=0, description=(
        "Keep only instructions with more than this many words. Source: yizhongw/self-instruct "
        "`len(inst.split()) <= 3` drops."))
    max_words: int = Field(150, ge=1, description=(
        "Keep only instructions with at most this many words. Source: yizhongw/self-instruct "
        "`len(inst.split()) > 150` drops."))
    blacklist: tuple[str, ...] = Field(SELF_INSTRUCT_BLACKLIST + ALPACA_BLACKLIST_ADDITIONS, description=(
        "Whole words (case-insensitive, regex word boundaries) that drop an instruction: tasks a "
        "language model cannot do. Source: yizhongw/self-instruct find_word_in_string list; "
        "Stanford Alpaca adds video, audio, music, flowchart, diagram."))
    forbidden_prefixes: tuple[str, ...] = Field(("Write a program",), description=(
        "Prefixes (case-insensitive) that drop an instruction. Source: yizhongw/self-instruct "
        "(the model kept turning tasks into 'Write a program ...')."))
    rouge_threshold: float = Field(0.7, ge=0.0, le=1.0, description=(
        "Drop an instruction whose ROUGE-L F-measure with any seed or earlier kept instruction "
        "is above this. Source: paper section 2.2 and yizhongw/self-instruct "
        "(RougeScorer(['rougeL'], use_stemmer=False), max > 0.7 drops)."))
    rouge_method: Literal["auto", "exact", "index"] = Field("auto", description=(
        "How the ROUGE-L novelty check is computed. 'exact': rouge-score against every pool "
        "instruction (the published reference, linear in the pool). 'index': the pruned index of "
        "pipelines/filters/near_dup.py (same decisions, measured recall and precision >= 0.99 in "
        "its benchmark). 'auto': exact while the pool holds at most exact_pool_max instructions "
        "(so lineage gets the exact best score and match), the index beyond (when installed). "
        "Source: Wang et al. 2023, Self-Instruct."))
    exact_pool_max: int = Field(1000, ge=0, description=(
        "rouge_method='auto' scores exactly up to this pool size: rouge-score does about 14,000 "
        "pairs/s per core (docs/architecture.md section 4), so 1,000 pool instructions cost ~70 ms "
        "per candidate; past it the pruned index keeps the filter fast."))
    drop_truncated_last: bool = Field(True, description=(
        "When an output hit max_tokens, drop its last instruction (likely cut mid-sentence). "
        "Source: Stanford Alpaca generate_instruction.py. (yizhongw/self-instruct drops the "
        "whole output instead.)"))


def demo_config(seed: int = 0) -> SelfInstructConfig:
    """Settings measured to keep at least 5 instructions quickly with the embedded
    SmolLM2-135M-Instruct on 2 CPU cores (see docs; the published values otherwise).

    The small model writes one fresh task after "Task 9:" and then mostly repeats it, so
    generation stops at the first new "Task" line: one candidate per prompt, short outputs.
    """
    return SelfInstructConfig(
        prompts_per_round=8,
        sampling=SamplingConfig(max_tokens=48, temperature=0.7, top_p=0.5, seed=seed,
                                stop=("\n\n", "\nTask")))


# --------------------------------------------------------------------------- prompt

@lru_cache(maxsize=1)
def _template():
    from pipelines.render.templates import get_template
    return get_template(TEMPLATE_NAME)


def prompt_template_hash() -> str:
    """SHA-256 (hex) of ``templates/generator/self_instruct.jinja``'s text."""
    return _template().sha256


def normalize_instruction(text: str) -> str:
    """Collapse whitespace runs to one space and strip (yizhongw/self-instruct)."""
    return re.sub(r"\s+", " ", text).strip()


def encode_prompt(instructions: Sequence[str]) -> str:
    """The generation prompt for these in-context instructions (rendered from the template in
    a sandboxed, StrictUndefined Jinja environment). Each instruction is whitespace-normalized
    and loses a trailing colon, as yizhongw/self-instruct ``encode_prompt`` does."""
    from pipelines.render.templates import render_strict
    shown = [normalize_instruction(i).rstrip(":") for i in instructions]
    return render_strict(_template().text, {"instructions": shown}, name=TEMPLATE_NAME)[0]


# --------------------------------------------------------------------------- parsing

_TASK_MARKER = re.compile(r"(?:^|\n)[ \t]*Task[ \t]*\d+[ \t]*:", re.IGNORECASE)


def parse_instructions(text: str) -> list[str]:
    """Split a continuation of the prompt into instructions.

    The text before the first "Task N:" marker (at the start of a line) is the instruction for
    the task the prompt opened; each marker starts another. Whitespace is collapsed and empty
    pieces are skipped, e.g. ``" Name a fruit.\\nTask 10: Name a dog breed.\\nTask 11:"`` ->
    ``["Name a fruit.", "Name a dog breed."]``.
    """
    return [p for p in (normalize_instruction(x) for x in _TASK_MARKER.split(text)) if p]


# --------------------------------------------------------------------------- filters
# Each takes the (normalized) instruction and the config; returns a drop reason or None.

def filter_length(instruction: str, config: SelfInstructConfig | None = None) -> str | None:
    """``length`` unless min_words_exclusive < words <= max_words (whitespace words)."""
    c = config or SelfInstructConfig()
    n = len(instruction.split())
    return None if c.min_words_exclusive < n <= c.max_words else "length"


@lru_cache(maxsize=32)
def _blacklist_re(words: tuple[str, ...]) -> re.Pattern | None:
    if not words:
        return None
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def filter_blacklist(instruction: str, config: SelfInstructConfig | None = None) -> str | None:
    """``blacklist`` if a blacklisted word occurs as a whole word (case-insensitive)."""
    c = config or SelfInstructConfig()
    rx = _blacklist_re(tuple(c.blacklist))
    return "blacklist" if rx is not None and rx.search(instruction) else None


def filter_write_a_program(instruction: str, config: SelfInstructConfig | None = None) -> str | None:
    """``write_a_program`` if the instruction starts with a forbidden prefix (case-insensitive)."""
    c = config or SelfInstructConfig()
    low = instruction.casefold()
    return "write_a_program" if any(low.startswith(p.casefold()) for p in c.forbidden_prefixes) else None


def filter_punctuation_start(instruction: str, config: SelfInstructConfig | None = None) -> str | None:
    """``punctuation_start`` if the first character is ASCII punctuation (``string.punctuation``)."""
    return "punctuation_start" if instruction and instruction[0] in string.punctuation else None


def filter_non_ascii_start(instruction: str, config: SelfInstructConfig | None = None) -> str | None:
    """``non_ascii_start`` if the first character is not ASCII (yizhongw: "non-english")."""
    return "non_ascii_start" if instruction and not instruction[0].isascii() else None


#: The per-instruction filters, in the published order.
FILTERS: dict[str, Callable[[str, SelfInstructConfig | None], str | None]] = {
    "length": filter_length,
    "blacklist": filter_blacklist,
    "write_a_program": filter_write_a_program,
    "punctuation_start": filter_punctuation_start,
    "non_ascii_start": filter_non_ascii_start,
}


class RougeFilter:
    """ROUGE-L novelty filter against a growing pool (seeds, then each kept instruction).

    Scores with ``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``
    F-measure, exactly as yizhongw/self-instruct; a candidate whose best score against the
    pool is above ``threshold`` is dropped as ``rouge``. The check is exact and linear in the
    pool (about 14,000 pairs per second per core); large pools belong to
    ``pipelines/filters/near_dup.py``.
    """

    def __init__(self, pool: Sequence[str] = (), threshold: float = 0.7):
        from rouge_score import rouge_scorer
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.threshold = threshold
        self.pool: list[str] = list(pool)

    def best(self, instruction: str) -> tuple[float, str | None]:
        """``(max ROUGE-L F, the pool instruction that reached it)``; ``(0.0, None)`` on an empty pool."""
        best, who = 0.0, None
        for other in self.pool:
            f = self.scorer.score(other, instruction)["rougeL"].fmeasure
            if f > best or who is None:
                best, who = f, other
        return best, who

    def check(self, instruction: str) -> str | None:
        """``rouge`` if too similar to the pool, else None."""
        return "rouge" if self.best(instruction)[0] > self.threshold else None

    def add(self, instruction: str) -> None:
        self.pool.append(instruction)


class IndexRougeFilter:
    """The same novelty rule through ``pipelines.filters.near_dup.RougeLIndex`` (an exact-pruning
    index: candidates by token overlap, verified by LCS). :meth:`best` returns
    ``(score, pool instruction)`` only when the score is above the threshold, else
    ``(None, None)``: the index does not compute scores it has pruned."""

    def __init__(self, pool: Sequence[str] = (), threshold: float = 0.7):
        from pipelines.filters.near_dup import RougeLIndex
        self.threshold = threshold
        self.index = RougeLIndex(threshold=threshold)
        self.pool: list[str] = []
        for p in pool:
            self.add(p)

    def best(self, instruction: str) -> tuple[float | None, str | None]:
        hit = self.index.nearest_above(instruction)
        if hit is None:
            return None, None
        i, score = hit
        return float(score), self.pool[i]

    def check(self, instruction: str) -> str | None:
        return "rouge" if self.best(instruction)[0] is not None else None

    def add(self, instruction: str) -> None:
        self.index.add(instruction)
        self.pool.append(instruction)


def near_dup_available() -> bool:
    """True when ``pipelines/filters/near_dup.py`` (the fast index) is installed."""
    import importlib.util
    try:
        return importlib.util.find_spec("pipelines.filters.near_dup") is not None
    except (ImportError, ValueError):
        return False


class HybridRougeFilter:
    """Exact scores (:class:`RougeFilter`) while the pool is small, the index past
    ``exact_pool_max``; both see every added instruction, so the switch loses nothing and the
    keep/drop decisions are the same either way."""

    def __init__(self, pool: Sequence[str], threshold: float, exact_pool_max: int):
        self.exact = RougeFilter(pool, threshold)
        self.index = IndexRougeFilter(pool, threshold)
        self.exact_pool_max = exact_pool_max
        self.threshold = threshold

    @property
    def pool(self) -> list[str]:
        return self.index.pool

    def best(self, instruction: str) -> tuple[float | None, str | None]:
        if len(self.index.pool) <= self.exact_pool_max:
            return self.exact.best(instruction)
        return self.index.best(instruction)

    def check(self, instruction: str) -> str | None:
        score = self.best(instruction)[0]
        return "rouge" if score is not None and score > self.threshold else None

    def add(self, instruction: str) -> None:
        self.index.add(instruction)
        if len(self.index.pool) <= self.exact_pool_max:
            self.exact.add(instruction)
        else:
            self.exact.pool = []  # no longer consulted; free it


def make_rouge_filter(pool: Sequence[str], config: SelfInstructConfig):
    """The novelty filter ``config.rouge_method`` asks for (``auto``: exact up to
    ``exact_pool_max`` pool instructions, then the index when it is installed)."""
    method = config.rouge_method
    if method == "auto":
        if not near_dup_available():
            method = "exact"
        elif len(pool) > config.exact_pool_max:
            return HybridRougeFilter(pool, config.rouge_threshold, -1)
        else:
            return HybridRougeFilter(pool, config.rouge_threshold, config.exact_pool_max)
    if method == "index":
        return IndexRougeFilter(pool, config.rouge_threshold)
    return RougeFilter(pool, config.rouge_threshold)


# --------------------------------------------------------------------------- records

class SelfInstructCandidate(BaseModel):
    """A kept instruction and where it came from.

    ``lineage`` keys: generator, round, prompt_index, position (0 = the task the prompt
    opened), seed_instructions and machine_instructions (shown in the prompt), model,
    backend, sampling, seed, prompt_template, prompt_template_hash, finish_reason,
    rouge_l_max and most_similar (its nearest instruction in the pool when it was kept);
    prompt_delivery (:data:`PROMPT_AS_CHAT`) when the prompt went as a chat user message.
    """

    instruction: str
    lineage: dict[str, Any]


class DroppedCandidate(BaseModel):
    """A dropped instruction, its reason (:data:`DROP_REASONS`) and, for ``rouge``, the pool
    instruction it matched and the ROUGE-L F-measure."""

    instruction: str
    reason: str
    round: int
    match: str | None = None
    score: float | None = None


class SelfInstructResult(BaseModel):
    """What :func:`run_self_instruct` produced.

    ``generated`` counts every parsed candidate; ``generated == len(kept) + sum(dropped.values())``.
    ``dropped`` has one entry per name in :data:`DROP_REASONS` (zero when unused).
    """

    kept: list[SelfInstructCandidate]
    generated: int
    dropped: dict[str, int]
    dropped_candidates: list[DroppedCandidate]
    rounds: int
    prompts: int
    tokens_generated: int
    elapsed_s: float
    outputs: list[GenerationOutput] = Field(default_factory=list, description="raw generations, in order")

    def counts(self) -> dict:
        """``{"generated", "kept", "dropped": {reason: n}}``."""
        return {"generated": self.generated, "kept": len(self.kept), "dropped": dict(self.dropped)}


# --------------------------------------------------------------------------- the loop

def run_self_instruct(backend: Backend, seed_instructions: list[str], *, config: SelfInstructConfig,
                      target_kept: int, max_rounds: int,
                      progress: Callable[[dict], None] | None = None,
                      checkpoint: Checkpoint | None = None,
                      should_stop: Callable[[], None] | None = None) -> SelfInstructResult:
    """Generate new instructions from seed instructions, Self-Instruct style.

    Args:
        backend: the generator (``complete`` is used: the prompt is a raw list to continue).
        seed_instructions: the human-written task instructions (175 in the published run).
        config: the constants (:class:`SelfInstructConfig`; :func:`demo_config` for the demo).
        target_kept: stop after the round in which this many instructions are kept (the last
            round's survivors are all kept, so the result may hold a few more).
        max_rounds: stop after this many rounds regardless.
        progress: called after each round with ``{"step": "self_instruct", "round",
            "max_rounds", "prompts", "generated", "kept", "target_kept", "dropped",
            "elapsed_s"}``.
        checkpoint: a :class:`~pipelines.generate.checkpoint.Checkpoint`; each round's raw
            outputs are recorded there, and rounds already recorded are replayed instead of
            regenerated (the in-context sampling is replayed too), so a resumed run gives the
            same result as an uninterrupted one.
        should_stop: called before each generated round; raises
            :class:`~pipelines.generate.checkpoint.Cancelled` to stop.

    Returns:
        :class:`SelfInstructResult` (kept candidates with lineage, counts, raw outputs).

    Raises:
        WorkbenchError: no usable seed instructions, or target_kept/max_rounds below 1.
    """
    seeds = [normalize_instruction(s) for s in seed_instructions if isinstance(s, str)]
    seeds = [s for s in seeds if s]
    if not seeds:
        raise WorkbenchError("self-instruct needs at least one non-empty seed instruction")
    if target_kept < 1 or max_rounds < 1:
        raise WorkbenchError(f"target_kept and max_rounds must be at least 1 "
                             f"(got {target_kept} and {max_rounds})")

    t0 = time.monotonic()
    base = config.sampling
    rng = random.Random(base.seed)
    tpl_hash = prompt_template_hash()
    rouge = make_rouge_filter(seeds, config)
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    seen: set[str] = set(seeds)
    kept: list[SelfInstructCandidate] = []
    dropped = {r: 0 for r in DROP_REASONS}
    dropped_list: list[DroppedCandidate] = []
    outputs: list[GenerationOutput] = []
    generated = n_prompts = tokens = 0
    rounds = 0

    for rnd in range(max_rounds):
        rounds = rnd + 1
        shown: list[tuple[list[str], list[str]]] = []
        prompts = []
        machine_pool = [k.instruction for k in kept]
        # the in-context sampling runs on replay too, so the RNG is where it would have been
        for _ in range(config.prompts_per_round):
            n_machine = min(config.num_machine_instructions, len(machine_pool), config.num_prompt_instructions)
            machine = rng.sample(machine_pool, n_machine)
            human = rng.sample(seeds, min(config.num_prompt_instructions - n_machine, len(seeds)))
            both = machine + human
            if config.shuffle_prompt_instructions:
                rng.shuffle(both)
            shown.append((human, machine))
            prompts.append(encode_prompt(both))
        rec = ckpt.get("self_instruct", rnd)
        if rec is None:
            if should_stop is not None:
                should_stop()
            sampling = base.model_copy(update={"seed": base.seed + rnd})
            outs = backend.complete(prompts, sampling, prompt_template_hash=tpl_hash)
            rec = ckpt.put("self_instruct", rnd, {"outputs": [o.model_dump() for o in outs]})
        outs = [GenerationOutput.model_validate(o) for o in rec["outputs"]]
        outputs.extend(outs)
        n_prompts += len(prompts)

        for pi, out in enumerate(outs):
            tokens += out.tokens_generated
            pieces = parse_instructions(out.text)
            for pos, inst in enumerate(pieces):
                generated += 1
                reason = None
                if config.drop_truncated_last and out.finish_reason == "length" and pos == len(pieces) - 1:
                    reason = "truncated"
                for f in FILTERS.values():
                    if reason is None:
                        reason = f(inst, config)
                if reason is None and inst in seen:
                    reason = "duplicate"
                score, nearest = (None, None)
                if reason is None:
                    score, nearest = rouge.best(inst)
                    if score is not None and score > config.rouge_threshold:
                        reason = "rouge"
                if reason is not None:
                    dropped[reason] += 1
                    dropped_list.append(DroppedCandidate(instruction=inst, reason=reason, round=rounds,
                                                         match=nearest if reason == "rouge" else None,
                                                         score=round(score, 4) if reason == "rouge" else None))
                    continue
                rouge.add(inst)
                seen.add(inst)
                human, machine = shown[pi]
                via_chat = {"prompt_delivery": PROMPT_AS_CHAT} if out.messages is not None else {}
                kept.append(SelfInstructCandidate(instruction=inst, lineage={**via_chat,
                    "generator": "self_instruct", "round": rounds, "prompt_index": pi, "position": pos,
                    "seed_instructions": human, "machine_instructions": machine,
                    "model": out.model, "backend": out.backend, "sampling": out.sampling, "seed": out.seed,
                    "prompt_template": TEMPLATE_NAME, "prompt_template_hash": tpl_hash,
                    "finish_reason": out.finish_reason,
                    "rouge_l_max": round(score, 4) if score is not None else None,
                    "most_similar": nearest}))
        if progress is not None:
            progress({"step": "self_instruct", "round": rounds, "max_rounds": max_rounds,
                      "prompts": n_prompts, "generated": generated, "kept": len(kept),
                      "target_kept": target_kept, "dropped": dict(dropped),
                      "elapsed_s": round(time.monotonic() - t0, 2)})
        if len(kept) >= target_kept:
            break

    return SelfInstructResult(kept=kept, generated=generated, dropped=dropped,
                              dropped_candidates=dropped_list, rounds=rounds, prompts=n_prompts,
                              tokens_generated=tokens, elapsed_s=round(time.monotonic() - t0, 3),
                              outputs=outputs)


def generate_responses(backend: Backend, instructions: list[str],
                       sampling: SamplingConfig) -> list[GenerationOutput]:
    """Answer each instruction as a one-turn user message through ``backend.chat`` (the model's
    chat template); the outputs become the candidates' responses, in order.

    Raises:
        WorkbenchError: an instruction that is not a non-empty string.
    """
    for i, inst in enumerate(instructions):
        if not isinstance(inst, str) or not inst.strip():
            raise WorkbenchError(f"instruction {i} is empty or not text")
    return backend.chat([[{"role": "user", "content": inst}] for inst in instructions], sampling)
