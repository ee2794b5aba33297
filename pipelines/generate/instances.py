"""Self-Instruct steps 2-4 after instruction generation: classification-task identification,
instance generation (output-first for classification tasks, input-first for the others) and
instance filtering.

Source: Wang et al. 2023, "Self-Instruct" section 2.2-2.3 and its code yizhongw/self-instruct
(``identify_clf_or_not.py``, ``generate_instances.py``, ``prepare_for_finetuning.py``:
``parse_input_output``, ``filter_duplicate_instances``, ``filter_invalid_instances``).

Prompts: ``templates/generate/clf_identification.jinja``, ``instances_input_first.jinja``,
``instances_output_first.jinja``. Every constant is a field of :class:`InstanceConfig` with
its source. Work is done in batches; each batch's raw outputs are recorded in a
:class:`~pipelines.generate.checkpoint.Checkpoint` so a killed job resumes without
regenerating (stages ``clf`` and ``instances``).
"""
from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datastore.errors import WorkbenchError

from .backends import Backend, GenerationOutput, SamplingConfig
from .batching import run_batched
from .checkpoint import Checkpoint
from .prompts import render_prompt, template_hash

DEMO_SEED_TASKS = Path(__file__).resolve().parents[1] / "demo_data" / "seed_tasks.jsonl"

#: Task-level drop reasons, in the order they are checked.
TASK_DROP_REASONS: tuple[str, ...] = ("no_instances", "conflicting_instances")
#: Instance-level drop reasons.
INSTANCE_DROP_REASONS: tuple[str, ...] = ("empty_output", "input_equals_output", "repetitive_input",
                                          "repetitive_output", "duplicate_instance", "over_max_instances")


def repetitive(text: str, *, min_lines: int = 4, share: float = 0.5) -> bool:
    """True when ``text`` is a generation loop: at least ``min_lines`` non-empty lines, one of
    which makes up ``share`` or more of them (a small model's "Output: ..." repeated 35 times
    after a haiku). Ours, not the paper's: Self-Instruct's filters look at instructions only,
    and a 135M model loops in its outputs far more than GPT-3 did."""
    from collections import Counter
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return len(lines) >= min_lines and Counter(lines).most_common(1)[0][1] >= share * len(lines)


def _clf_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=3, temperature=0.0, top_p=1.0, seed=0, stop=("\n",))


def _instance_sampling() -> SamplingConfig:
    return SamplingConfig(max_tokens=300, temperature=0.0, top_p=1.0, seed=0, stop=("Task:", "Example 6"))


class InstanceConfig(BaseModel):
    """Constants of classification identification and instance generation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clf_sampling: SamplingConfig = Field(default_factory=_clf_sampling, description=(
        "Sampling for 'Is it classification?'. Source: yizhongw/self-instruct identify_clf_or_not.py "
        "(temperature 0, max_tokens 3, stop at the newline)."))
    instance_sampling: SamplingConfig = Field(default_factory=_instance_sampling, description=(
        "Sampling for instance generation. Source: yizhongw/self-instruct generate_instances.py "
        "(temperature 0, max_tokens 300, stop at the next 'Task:'); 'Example 6' stops after 5."))
    max_instances_per_task: int = Field(5, ge=1, description=(
        "Keep at most this many instances per task. Source: Self-Instruct "
        "prepare_for_finetuning.py keeps at most 5 per task."))
    num_examples: int = Field(2, ge=0, description=(
        "Seed tasks shown as in-context examples in each instance prompt (same classification "
        "kind as the task). The published prompts hold fixed examples; here they are sampled "
        "from the seed tasks (default: the demo's 30 seed tasks) with ``seed``."))
    batch_size: int = Field(8, ge=1, description="Prompts per backend call and per checkpoint record.")
    seed: int = Field(0, description="Seeds the choice of in-context examples.")


class Instance(BaseModel):
    input: str = ""
    output: str


class TaskInstances(BaseModel):
    """A task with its instances (kept) or its drop reason."""

    instruction: str
    is_classification: bool
    clf_source: str = Field(description="'given' (from the input), 'model' (asked) or 'default'")
    instances: list[Instance] = Field(default_factory=list)
    dropped_instances: list[dict] = Field(default_factory=list, description="[{input, output, reason}]")
    drop_reason: str | None = None
    lineage: dict[str, Any] = Field(default_factory=dict)


class InstancesResult(BaseModel):
    tasks: list[TaskInstances]
    elapsed_s: float

    @property
    def kept(self) -> list[TaskInstances]:
        return [t for t in self.tasks if t.drop_reason is None]

    def counts(self) -> dict:
        """``{"generated": tasks, "kept": tasks kept, "instances": n, "dropped": {reason: n}}``
        (task reasons and instance reasons together)."""
        dropped = {r: 0 for r in TASK_DROP_REASONS + INSTANCE_DROP_REASONS}
        for t in self.tasks:
            if t.drop_reason:
                dropped[t.drop_reason] += 1
            for d in t.dropped_instances:
                dropped[d["reason"]] += 1
        return {"generated": len(self.tasks), "kept": len(self.kept),
                "instances": sum(len(t.instances) for t in self.kept), "dropped": dropped}


# --------------------------------------------------------------------------- seed examples

def load_seed_tasks(path: str | Path | None = None) -> list[dict]:
    """Seed tasks in the Self-Instruct layout (``instruction``, ``instances``,
    ``is_classification``), from a JSON Lines file (default: the demo's 30 seed tasks).

    Raises:
        FormatError: a line that is not JSON or lacks ``instruction``.
    """
    from datastore.errors import FormatError
    p = Path(path) if path else DEMO_SEED_TASKS
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise FormatError(f"not JSON ({e.msg})", file=str(p), line=i) from e
        if not isinstance(rec.get("instruction"), str):
            raise FormatError("missing instruction", file=str(p), line=i, field="instruction")
        out.append(rec)
    return out


# --------------------------------------------------------------------------- prompts and parsing

def clf_prompt(instruction: str) -> str:
    return render_prompt("clf_identification", instruction=instruction.strip())[0]


def parse_clf(text: str) -> bool | None:
    """``True`` for an answer starting with "yes", ``False`` for "no", else None."""
    t = text.strip().lower()
    return True if t.startswith("yes") else False if t.startswith("no") else None


def instance_prompt(instruction: str, is_classification: bool, examples: list[dict]) -> tuple[str, str]:
    """``(prompt, template name)``: output-first for classification, input-first otherwise."""
    name = "instances_output_first" if is_classification else "instances_input_first"
    shown = [{"instruction": e["instruction"], "instances": [
        {"input": (x.get("input") or "").strip(), "output": (x.get("output") or "").strip()}
        for x in (e.get("instances") or [])][:3]} for e in examples]
    return render_prompt(name, examples=shown, instruction=instruction.strip())[0], name


_EXAMPLE = re.compile(r"(?:^|\n)\s*Example\s*\d+\s*\n", re.IGNORECASE)
_IO = re.compile(r"^\s*Input:\s*(?P<input>.*?)\s*\n\s*Output:\s*(?P<output>.*)$", re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(r"(?:^|\n)\s*Class label:\s*", re.IGNORECASE)
_LABEL_INPUT = re.compile(r"^(?P<label>[^\n]*?)\s*(?:\n\s*Input:\s*(?P<input>.*))?$", re.DOTALL | re.IGNORECASE)


def _none(x: str) -> str:
    x = x.strip()
    return "" if x.lower() in ("(none)", "none", "null", "n/a", "") else x


def parse_input_first(continuation: str) -> list[Instance]:
    """Instances from the continuation of an input-first prompt (which ends with
    "Example 1\\nInput:"): pieces split at "Example N" lines, each "Input: ... Output: ...".
    A piece without "Output:" is skipped (cut off by the token limit)."""
    text = "Example 1\nInput:" + continuation
    out = []
    for piece in _EXAMPLE.split(text):
        m = _IO.match(piece.strip("\n"))
        if m:
            out.append(Instance(input=_none(m.group("input")), output=m.group("output").strip()))
    return out


def parse_output_first(continuation: str) -> list[Instance]:
    """Instances from the continuation of an output-first prompt (which ends with
    "Class label:"): each "Class label: L / Input: X" pair is one instance (input X, output L)."""
    text = "Class label:" + continuation
    out = []
    for piece in _LABEL.split(text)[1:]:
        m = _LABEL_INPUT.match(piece.strip())
        if m and m.group("label").strip():
            out.append(Instance(input=_none(m.group("input") or ""), output=m.group("label").strip()))
    return out


def filter_instances(instances: list[Instance], max_instances: int) -> tuple[list[Instance], list[dict], str | None]:
    """Apply the published instance filters; returns ``(kept, dropped [{input, output, reason}],
    task drop reason or None)``.

    In order: an empty output, or an input equal to its output, drops the instance
    (``filter_invalid_instances``); so does an input or an output that loops (:func:`repetitive`,
    ours: ``repetitive_input``, ``repetitive_output``);
    an exact repeat of an earlier (input, output) drops it;
    two instances with the same non-empty input and different outputs drop the whole task
    (``conflicting_instances``: ``filter_duplicate_instances``); then at most ``max_instances``
    are kept (``over_max_instances``); a task left with none is ``no_instances``.
    """
    kept: list[Instance] = []
    dropped: list[dict] = []
    seen: set[tuple[str, str]] = set()
    outputs_by_input: dict[str, set[str]] = {}
    for x in instances:
        reason = None
        if not x.output.strip():
            reason = "empty_output"
        elif x.input.strip() and x.input.strip() == x.output.strip():
            reason = "input_equals_output"
        elif repetitive(x.input):
            reason = "repetitive_input"
        elif repetitive(x.output):
            reason = "repetitive_output"
        elif (x.input, x.output) in seen:
            reason = "duplicate_instance"
        if reason:
            dropped.append({"input": x.input, "output": x.output, "reason": reason})
            continue
        seen.add((x.input, x.output))
        if x.input.strip():
            outputs_by_input.setdefault(x.input.strip(), set()).add(x.output.strip())
        kept.append(x)
    if any(len(v) > 1 for v in outputs_by_input.values()):
        return [], dropped, "conflicting_instances"
    for x in kept[max_instances:]:
        dropped.append({"input": x.input, "output": x.output, "reason": "over_max_instances"})
    kept = kept[:max_instances]
    return kept, dropped, (None if kept else "no_instances")


# --------------------------------------------------------------------------- the stage

def _run_batched(backend, stage, prompts, sampling, tpl_hash, batch_size, ckpt, should_stop, on_batch=None):
    return run_batched(backend, stage, prompts, sampling, prompt_template_hash=tpl_hash, batch_size=batch_size,
                       checkpoint=ckpt, should_stop=should_stop, on_batch=on_batch)


def generate_instances(backend: Backend, tasks: list[dict], *, config: InstanceConfig | None = None,
                       seed_tasks: list[dict] | None = None, checkpoint: Checkpoint | None = None,
                       should_stop: Callable[[], None] | None = None,
                       progress: Callable[[dict], None] | None = None) -> InstancesResult:
    """Identify classification tasks and generate instances for each task.

    Args:
        tasks: ``[{"instruction": str, "is_classification": bool | None, "lineage": dict?}]``;
            a task whose ``is_classification`` is None is asked with the identification prompt.
        seed_tasks: in-context examples (Self-Instruct layout; default :func:`load_seed_tasks`).
        checkpoint / should_stop: see :mod:`pipelines.generate.checkpoint`.
        progress: called after each batch with ``{"step", "done", "total", ...counts}``.

    Returns:
        :class:`InstancesResult`, one :class:`TaskInstances` per input task, in order; each
        lineage records the model, backend, sampling, seed, template and hash of both prompts.

    Raises:
        WorkbenchError: a task without an instruction.
    """
    c = config or InstanceConfig()
    ckpt = checkpoint if checkpoint is not None else Checkpoint()
    t0 = time.monotonic()
    for i, t in enumerate(tasks):
        if not isinstance(t.get("instruction"), str) or not t["instruction"].strip():
            raise WorkbenchError(f"task {i} has no instruction")
    seeds = seed_tasks if seed_tasks is not None else load_seed_tasks()
    seeds = [s for s in seeds if s.get("instances")]

    # 1. classification identification (only where not given)
    ask = [i for i, t in enumerate(tasks) if t.get("is_classification") is None]
    clf_hash = template_hash("clf_identification")
    clf_outs = _run_batched(backend, "clf", [clf_prompt(tasks[i]["instruction"]) for i in ask], c.clf_sampling,
                            clf_hash, c.batch_size, ckpt, should_stop,
                            lambda d, n: progress and progress({"step": "classify", "done": d, "total": n}))
    is_clf: dict[int, tuple[bool, str, dict | None]] = {}
    for i, t in enumerate(tasks):
        if t.get("is_classification") is not None:
            is_clf[i] = (bool(t["is_classification"]), "given", None)
    for i, o in zip(ask, clf_outs):
        v = parse_clf(o.text)
        is_clf[i] = (bool(v), "model" if v is not None else "default", {"answer": o.text.strip()[:20]})

    # 2. instance generation
    rng = random.Random(c.seed)
    prompts, names, shown = [], [], []
    for i, t in enumerate(tasks):
        same = [s for s in seeds if bool(s.get("is_classification")) == is_clf[i][0]] or seeds
        ex = rng.sample(same, min(c.num_examples, len(same)))
        p, name = instance_prompt(t["instruction"], is_clf[i][0], ex)
        prompts.append(p)
        names.append(name)
        shown.append([e["instruction"] for e in ex])
    # one template per call keeps prompt_template_hash exact: group by template
    outs: list[GenerationOutput | None] = [None] * len(tasks)
    for name in ("instances_output_first", "instances_input_first"):
        idx = [i for i, n in enumerate(names) if n == name]
        res = _run_batched(backend, f"instances:{name}", [prompts[i] for i in idx], c.instance_sampling,
                           template_hash(name), c.batch_size, ckpt, should_stop,
                           lambda d, n, name=name: progress and progress({"step": name, "done": d, "total": n}))
        for i, o in zip(idx, res):
            outs[i] = o

    # 3. parse and filter
    result = []
    for i, t in enumerate(tasks):
        o = outs[i]
        clf, source, clf_info = is_clf[i]
        parsed = parse_output_first(o.text) if clf else parse_input_first(o.text)
        kept, dropped, reason = filter_instances(parsed, c.max_instances_per_task)
        lineage = {**(t.get("lineage") or {}), "instances": {
            "generator": "self_instruct.instances", "template": f"generate/{names[i]}",
            "prompt_template_hash": o.prompt_template_hash, "model": o.model, "backend": o.backend,
            "sampling": o.sampling, "seed": o.seed, "finish_reason": o.finish_reason,
            "example_tasks": shown[i], "is_classification": clf, "clf_source": source,
            **({"clf_template_hash": clf_hash, "clf_answer": clf_info["answer"]} if clf_info else {})}}
        result.append(TaskInstances(instruction=t["instruction"], is_classification=clf, clf_source=source,
                                    instances=kept, dropped_instances=dropped, drop_reason=reason, lineage=lineage))
    r = InstancesResult(tasks=result, elapsed_s=round(time.monotonic() - t0, 3))
    if progress is not None:
        progress({"step": "instances", "done": len(tasks), "total": len(tasks), **r.counts()})
    return r


def instances_to_samples(result: InstancesResult, *, source: str = "self-instruct") -> list:
    """One instruction sample per kept instance (instruction, input, output), with the task's
    lineage plus the instance index; ``task_type`` is ``classification`` or ``generation``."""
    from datastore import Sample
    out = []
    for t in result.kept:
        for k, x in enumerate(t.instances):
            out.append(Sample(kind="instruction", instruction=t.instruction, input=x.input, output=x.output,
                              source=source, task_type="classification" if t.is_classification else "generation",
                              lineage={**t.lineage, "instance_index": k, "instances_in_task": len(t.instances)},
                              layout={"schema": "alpaca", "keys": ["instruction", "input", "output"]}))
    return out
