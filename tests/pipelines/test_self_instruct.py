"""Self-Instruct generation: prompt, parser, filters, the loop, and the transformers backend.

Unit tests use a scripted backend; the model tests use the real embedded SmolLM2-135M-Instruct
with tiny settings (one thread, a few prompts, short outputs: about 30 s together on 2 cores).
"""
from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from datastore.errors import WorkbenchError
from pipelines.generate.backends import (Backend, GenerationOutput, SamplingConfig, get_backend,
                                         list_backends)
from pipelines.generate.self_instruct import (ALPACA_BLACKLIST_ADDITIONS, DROP_REASONS, FILTERS,
                                              SELF_INSTRUCT_BLACKLIST, RougeFilter, SelfInstructConfig,
                                              demo_config, encode_prompt, filter_blacklist,
                                              filter_length, filter_non_ascii_start,
                                              filter_punctuation_start, filter_write_a_program,
                                              generate_responses, parse_instructions,
                                              prompt_template_hash, run_self_instruct)
from pipelines.render.templates import templates_root

from ..conftest import shared_file

SEEDS_REL = "self-instruct-seed-tasks/seed_tasks.jsonl"


# --------------------------------------------------------------------------- config

def test_sampling_defaults_are_self_instructs_and_max_tokens_is_required():
    s = SamplingConfig(max_tokens=16)
    assert (s.temperature, s.top_p, s.seed, s.stop) == (0.7, 0.5, 0, ())
    with pytest.raises(ValidationError):
        SamplingConfig()
    with pytest.raises(ValidationError):
        SamplingConfig(max_tokens=0)
    with pytest.raises(ValidationError):
        SamplingConfig(max_tokens=8, stop=("",))
    assert SamplingConfig(max_tokens=8, stop=("\n",)).as_dict() == {
        "max_tokens": 8, "temperature": 0.7, "top_p": 0.5, "seed": 0, "stop": ["\n"]}


def test_published_constants():
    c = SelfInstructConfig()
    assert (c.num_prompt_instructions, c.num_machine_instructions, c.prompts_per_round) == (8, 2, 5)
    assert (c.min_words_exclusive, c.max_words, c.rouge_threshold) == (3, 150, 0.7)
    assert c.sampling.max_tokens == 1024 and (c.sampling.temperature, c.sampling.top_p) == (0.7, 0.5)
    assert c.blacklist == SELF_INSTRUCT_BLACKLIST + ALPACA_BLACKLIST_ADDITIONS
    assert set(c.blacklist) == {"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                                "map", "maps", "draw", "plot", "go to",
                                "video", "audio", "music", "flowchart", "diagram"}
    assert c.forbidden_prefixes == ("Write a program",)
    # every constant documents its source
    for name, field in SelfInstructConfig.model_fields.items():
        assert field.description, name


def test_backend_registry():
    assert "transformers" in list_backends()
    with pytest.raises(WorkbenchError, match="unknown generator backend 'nope'.*transformers"):
        get_backend("nope")


# --------------------------------------------------------------------------- prompt

def test_prompt_template_renders_the_published_prompt():
    p = encode_prompt(["Name a  red\nfruit.", "Sort these numbers:"])
    assert p == "Come up with a series of tasks:\nTask 1: Name a red fruit.\nTask 2: Sort these numbers\nTask 3:"
    text = (templates_root() / "generator" / "self_instruct.jinja").read_text(encoding="utf-8")
    assert prompt_template_hash() == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_eight_instructions_end_with_task_9():
    p = encode_prompt([f"Instruction number {i}." for i in range(1, 9)])
    assert p.endswith("Task 8: Instruction number 8.\nTask 9:")


# --------------------------------------------------------------------------- parser

def test_parse_first_task_and_further_ones():
    text = " Name a fruit that is red.\nTask 10: Name a dog  breed.\n  Task 11 : \nTask 12: Say hi\nthere."
    assert parse_instructions(text) == ["Name a fruit that is red.", "Name a dog breed.", "Say hi there."]


def test_parse_does_not_split_mid_line_markers_and_skips_empty():
    assert parse_instructions("Explain what Task 3: means here.") == ["Explain what Task 3: means here."]
    assert parse_instructions("") == []
    assert parse_instructions("\nTask 10:\n") == []
    assert parse_instructions("task 10: lower case marker") == ["lower case marker"]


# --------------------------------------------------------------------------- filters

@pytest.mark.parametrize("text,expected", [
    ("Name three fruits", "length"),                              # 3 words: not > 3
    ("Name three red fruits", None),                               # 4 words
    (" ".join(["word"] * 150), None),                              # 150: at most 150
    (" ".join(["word"] * 151), "length"),
])
def test_filter_length(text, expected):
    assert filter_length(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Draw a cat sitting on a mat.", "blacklist"),
    ("Describe this IMAGE in detail please.", "blacklist"),
    ("Please go to the shop and buy milk.", "blacklist"),
    ("Recommend some music for a rainy day.", "blacklist"),          # Alpaca's addition
    ("Explain this flowchart step by step.", "blacklist"),           # Alpaca's addition
    ("Drawing conclusions from data is hard; explain why.", None),   # whole words only
    ("Create a mapping between two lists of names.", None),
    ("Go towards the light, said the guide; explain the idiom.", None),
])
def test_filter_blacklist(text, expected):
    assert filter_blacklist(text) == expected


def test_filter_blacklist_is_configurable():
    c = SelfInstructConfig(blacklist=("banana",))
    assert filter_blacklist("Peel a banana for me.", c) == "blacklist"
    assert filter_blacklist("Draw a cat for me.", c) is None


@pytest.mark.parametrize("text,expected", [
    ("Write a program that sorts a list.", "write_a_program"),
    ("write a program to add two numbers.", "write_a_program"),
    ("Write a poem about programs.", None),
    ("Please write a program that prints hello.", None),
])
def test_filter_write_a_program(text, expected):
    assert filter_write_a_program(text) == expected


@pytest.mark.parametrize("text,expected", [
    ('"Hello" is a greeting; explain it.', "punctuation_start"),
    ("- list three colours you like", "punctuation_start"),
    ("1. List three colours you like", None),
    ("List three colours you like.", None),
])
def test_filter_punctuation_start(text, expected):
    assert filter_punctuation_start(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("¿Cómo estás hoy, amigo mío?", "non_ascii_start"),
    ("Éclair recipes: list three of them.", "non_ascii_start"),
    ("Translate 'café' into English please.", None),
])
def test_filter_non_ascii_start(text, expected):
    assert filter_non_ascii_start(text) == expected


def test_filter_order_is_published_order():
    assert list(FILTERS) == ["length", "blacklist", "write_a_program", "punctuation_start", "non_ascii_start"]
    assert DROP_REASONS == ("truncated", "length", "blacklist", "write_a_program", "punctuation_start",
                            "non_ascii_start", "duplicate", "rouge")


def test_rouge_filter_drops_near_copy_keeps_unrelated():
    f = RougeFilter(["Generate a list of three fruits that are red."])
    near = "Generate a list of three fruits that are yellow."
    assert f.best(near) == (pytest.approx(8 / 9), "Generate a list of three fruits that are red.")
    assert f.check(near) == "rouge"
    assert f.best("Explain how photosynthesis works in green plants.")[0] == 0.0
    assert f.check("Explain how photosynthesis works in green plants.") is None


def test_rouge_filter_boundary_is_strictly_greater_than_0_7():
    f = RougeFilter(["alpha beta gamma delta epsilon zeta eta theta iota kappa"])
    at = "alpha beta gamma delta epsilon zeta eta lambda mu nu"          # LCS 7 of 10 and 10: F = 0.7
    above = "alpha beta gamma delta epsilon zeta eta lambda mu"          # LCS 7 of 10 and 9: F = 14/19
    assert f.best(at)[0] == pytest.approx(0.7)
    assert f.check(at) is None
    assert f.best(above)[0] == pytest.approx(14 / 19)
    assert f.check(above) == "rouge"


def test_rouge_filter_grows_with_kept_instructions():
    f = RougeFilter([])
    assert f.best("anything at all here") == (0.0, None)
    f.add("Summarize the news article in two sentences.")
    assert f.check("Summarize the news article in three sentences.") == "rouge"


# --------------------------------------------------------------------------- the loop (scripted backend)

class ScriptedBackend(Backend):
    """Returns canned continuations in order; records what it was asked."""

    name = "scripted"

    def __init__(self, texts: list[tuple[str, str]]):
        self.model_name = "scripted-model"
        self.texts = list(texts)
        self.calls: list[tuple[list[str], SamplingConfig, str | None]] = []

    def complete(self, prompts, sampling, *, prompt_template_hash=None):
        self.calls.append((list(prompts), sampling, prompt_template_hash))
        out = []
        for p in prompts:
            text, finish = self.texts.pop(0) if self.texts else ("", "stop")
            out.append(GenerationOutput(text=text, prompt=p, model=self.model_name, backend=self.name,
                                        sampling=sampling.as_dict(), seed=sampling.seed,
                                        prompt_template_hash=prompt_template_hash, finish_reason=finish,
                                        tokens_generated=len(text.split())))
        return out

    def chat(self, conversations, sampling, *, prompt_template_hash=None):
        return [GenerationOutput(text="ok: " + c[-1]["content"], prompt=c[-1]["content"], messages=c,
                                 model=self.model_name, backend=self.name, sampling=sampling.as_dict(),
                                 seed=sampling.seed, finish_reason="stop", tokens_generated=2)
                for c in conversations]


SEEDS = [f"Seed instruction number {w} about a topic." for w in
         ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")]


def _cfg(**kw):
    kw.setdefault("prompts_per_round", 2)
    return SelfInstructConfig(sampling=SamplingConfig(max_tokens=32, seed=7), **kw)


def test_run_self_instruct_counts_reasons_and_lineage():
    texts = [
        (" Name the capital city of France.\nTask 10: Draw a picture of a horse.\n"
         "Task 11: Seed instruction number one about a topic.\nTask 12: Hi there", "stop"),
        (" Name the capital city of Spain.\nTask 10: Write a program that adds numbers together."
         "\nTask 11: Explain why the sky looks blue\nTask 12: Summarize the plot of", "length"),
        (" Name the capital city of France.\nTask 10: ¿Qué hora es ahora mismo?\n"
         "Task 11: \"Quote\" this short sentence back.", "stop"),
        (" List three prime numbers under twenty.", "stop"),
    ]
    be = ScriptedBackend(texts)
    seen = []
    res = run_self_instruct(be, SEEDS, config=_cfg(), target_kept=4, max_rounds=5, progress=seen.append)
    assert [k.instruction for k in res.kept] == [
        "Name the capital city of France.", "Explain why the sky looks blue", "List three prime numbers under twenty."]
    assert res.dropped == {"truncated": 1, "length": 1, "blacklist": 1, "write_a_program": 1,
                           "punctuation_start": 1, "non_ascii_start": 1, "duplicate": 2, "rouge": 1}
    # "Name the capital city of Spain." vs "... of France.": ROUGE-L F = 5/6 > 0.7
    assert [(d.instruction, d.reason) for d in res.dropped_candidates if d.reason in ("rouge", "duplicate")] == [
        ("Seed instruction number one about a topic.", "duplicate"),
        ("Name the capital city of Spain.", "rouge"),
        ("Name the capital city of France.", "duplicate")]
    assert res.generated == 12 == len(res.kept) + sum(res.dropped.values())
    assert res.counts() == {"generated": 12, "kept": 3, "dropped": res.dropped}
    # target 4 not reached after 2 rounds of 2 prompts; the scripted backend then returns "" for round 3..5
    assert res.rounds == 5 and res.prompts == 10
    assert [p["round"] for p in seen] == [1, 2, 3, 4, 5] and seen[-1]["kept"] == 3

    lin = res.kept[0].lineage
    assert lin["model"] == "scripted-model" and lin["backend"] == "scripted"
    assert lin["prompt_template_hash"] == prompt_template_hash() and lin["prompt_template"] == "generator/self_instruct"
    assert lin["seed"] == 7 and lin["sampling"]["seed"] == 7 and lin["round"] == 1 and lin["position"] == 0
    assert len(lin["seed_instructions"]) == 8 and lin["machine_instructions"] == []
    assert set(lin["seed_instructions"]) <= set(SEEDS)
    # round 2 shows the kept instruction(s) from round 1: 2 machine-made at most, 6 seeds
    assert res.kept[2].lineage["round"] == 2 and res.kept[2].lineage["seed"] == 8
    assert res.kept[2].lineage["machine_instructions"] and len(res.kept[2].lineage["machine_instructions"]) == 2
    assert len(res.kept[2].lineage["seed_instructions"]) == 6
    prompts_r1, sampling_r1, h = be.calls[0]
    assert len(prompts_r1) == 2 and h == prompt_template_hash() and sampling_r1.seed == 7
    assert all(p.endswith("Task 9:") for p in prompts_r1)
    assert be.calls[1][1].seed == 8


def test_run_self_instruct_stops_at_target_and_is_deterministic():
    texts = [(" Describe a sunny day at the beach with friends.", "stop"),
             (" Compute the area of a circle of radius two.", "stop"),
             (" Suggest a name for a black cat.", "stop"),
             (" Translate good morning into German.", "stop")]
    b1, b2 = ScriptedBackend(texts), ScriptedBackend(texts)
    r1 = run_self_instruct(b1, SEEDS, config=_cfg(), target_kept=2, max_rounds=9)
    r2 = run_self_instruct(b2, SEEDS, config=_cfg(), target_kept=2, max_rounds=9)
    assert r1.rounds == 1 and len(r1.kept) == 2 and len(b1.texts) == 2
    assert [k.model_dump() for k in r1.kept] == [k.model_dump() for k in r2.kept]
    assert b1.calls[0][0] == b2.calls[0][0]  # same in-context sampling for the same seed
    b3 = ScriptedBackend(texts)
    run_self_instruct(b3, SEEDS, config=_cfg().model_copy(update={"sampling": SamplingConfig(max_tokens=32, seed=8)}),
                      target_kept=2, max_rounds=1)
    assert b3.calls[0][0] != b1.calls[0][0]


def test_run_self_instruct_published_rule_no_truncation_drop_when_disabled():
    texts = [(" Summarize the following paragraph in one sentence.", "length")]
    res = run_self_instruct(ScriptedBackend(texts), SEEDS, config=_cfg(drop_truncated_last=False, prompts_per_round=1),
                            target_kept=1, max_rounds=1)
    assert [k.instruction for k in res.kept] == ["Summarize the following paragraph in one sentence."]
    res = run_self_instruct(ScriptedBackend(texts), SEEDS, config=_cfg(prompts_per_round=1),
                            target_kept=1, max_rounds=1)
    assert res.kept == [] and res.dropped["truncated"] == 1


def test_run_self_instruct_rejects_bad_arguments():
    with pytest.raises(WorkbenchError, match="seed instruction"):
        run_self_instruct(ScriptedBackend([]), ["", "  "], config=_cfg(), target_kept=1, max_rounds=1)
    with pytest.raises(WorkbenchError, match="at least 1"):
        run_self_instruct(ScriptedBackend([]), SEEDS, config=_cfg(), target_kept=0, max_rounds=1)


def test_generate_responses_uses_chat_with_one_user_turn():
    outs = generate_responses(ScriptedBackend([]), ["Name a red fruit."], SamplingConfig(max_tokens=8))
    assert outs[0].messages == [{"role": "user", "content": "Name a red fruit."}]
    with pytest.raises(WorkbenchError, match="instruction 0"):
        generate_responses(ScriptedBackend([]), ["  "], SamplingConfig(max_tokens=8))


# --------------------------------------------------------------------------- the real model

@pytest.fixture(scope="module")
def backend():
    be = get_backend("transformers", num_threads=1)
    try:
        be.tokenizer  # loads (converts once if needed)
    except WorkbenchError as e:
        pytest.skip(f"embedded model not available: {e}")
    return be


def test_backend_complete_records_provenance_and_lengths(backend):
    s = SamplingConfig(max_tokens=6, temperature=0.0, seed=3)
    outs = backend.complete(["The capital of France is", "One, two, three,"], s, prompt_template_hash="abc")
    assert len(outs) == 2
    for o in outs:
        assert o.model == "SmolLM2-135M-Instruct" and o.backend == "transformers"
        assert o.sampling == s.as_dict() and o.seed == 3 and o.prompt_template_hash == "abc"
        assert o.finish_reason == "length" and o.tokens_generated == 6 and o.text
    assert outs[0].prompt == "The capital of France is"
    # stop strings cut the text and end the sequence
    o = backend.complete(["One, two, three,"], SamplingConfig(max_tokens=12, temperature=0.0, stop=(",",)))[0]
    assert o.finish_reason == "stop" and "," not in o.text and o.tokens_generated < 12


def test_backend_sampling_is_seeded(backend):
    s = SamplingConfig(max_tokens=12, seed=11)
    a = [o.text for o in backend.complete(["Tell me about cats.", "Name a colour:"], s)]
    b = [o.text for o in backend.complete(["Tell me about cats.", "Name a colour:"], s)]
    assert a == b


def test_self_instruct_with_real_model_and_seed_tasks(backend):
    path = shared_file(SEEDS_REL)
    seeds = [json.loads(line)["instruction"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(seeds) == 175
    cfg = demo_config(0).model_copy(update={"prompts_per_round": 4})
    res = run_self_instruct(backend, seeds, config=cfg, target_kept=1, max_rounds=2)
    assert len(res.kept) >= 1
    assert res.generated == len(res.kept) + sum(res.dropped.values())
    assert all(o.tokens_generated <= cfg.sampling.max_tokens for o in res.outputs)
    k = res.kept[0]
    assert k.instruction not in seeds and k.lineage["rouge_l_max"] <= 0.7
    assert k.lineage["model"] == "SmolLM2-135M-Instruct" and k.lineage["backend"] == "transformers"
    assert k.lineage["prompt_template_hash"] == prompt_template_hash()
    assert len(k.lineage["seed_instructions"]) == 8 and set(k.lineage["seed_instructions"]) <= set(seeds)

    answers = generate_responses(backend, [k.instruction for k in res.kept[:2]], SamplingConfig(max_tokens=24, seed=0))
    assert len(answers) == len(res.kept[:2])
    for a, k in zip(answers, res.kept):
        assert a.text.strip() and a.messages == [{"role": "user", "content": k.instruction}]
        assert a.prompt.endswith("<|im_start|>assistant\n") and k.instruction in a.prompt
