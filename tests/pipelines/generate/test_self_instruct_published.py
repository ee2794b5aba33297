"""Self-Instruct as published: classification identification, output-first / input-first
instances, at most 5 instances, conflicting instances drop the task, the ROUGE-L rule
(exact reference vs the index), and resumable runs through checkpoints."""
from __future__ import annotations

import pytest

from datastore.errors import WorkbenchError
from pipelines.generate.backends import SamplingConfig, get_backend
from pipelines.generate.checkpoint import Cancelled, Checkpoint
from pipelines.generate.instances import (InstanceConfig, Instance, clf_prompt, filter_instances, generate_instances,
                                          instance_prompt, instances_to_samples, load_seed_tasks, parse_clf,
                                          parse_input_first, parse_output_first)
from pipelines.generate.prompts import template_hash
from pipelines.generate.self_instruct import (RougeFilter, SelfInstructConfig, make_rouge_filter,
                                              near_dup_available, run_self_instruct)

from .helpers import SI_SCRIPT


def test_instance_constants_name_their_source():
    c = InstanceConfig()
    assert c.max_instances_per_task == 5
    assert (c.clf_sampling.temperature, c.clf_sampling.max_tokens) == (0.0, 3)
    for name, field in InstanceConfig.model_fields.items():
        assert field.description, name
    for name, field in SelfInstructConfig.model_fields.items():
        assert field.description, name


def test_classification_prompt_and_answer():
    p = clf_prompt("Tell me if the review is positive or negative.")
    assert p.startswith("Can the following task be regarded as a classification task with finite output labels?")
    assert p.endswith("Task: Tell me if the review is positive or negative.\nIs it classification?")
    assert (parse_clf(" Yes"), parse_clf("no."), parse_clf(" maybe")) == (True, False, None)


def test_output_first_for_classification_input_first_otherwise():
    seeds = load_seed_tasks()
    p, name = instance_prompt("Label the tweet as sarcastic or not.", True, seeds[:1])
    assert name == "instances_output_first" and p.rstrip().endswith("Task: Label the tweet as sarcastic or not.\nClass label:")
    p, name = instance_prompt("Write a limerick about tea.", False, seeds[:1])
    assert name == "instances_input_first" and p.rstrip().endswith("Task: Write a limerick about tea.\nExample 1\nInput:")
    assert "Come up with examples for the following tasks." in p


def test_parsers():
    assert parse_input_first(" (none)\nOutput: Tea, tea.\nExample 2\nInput: green\nOutput: Green tea.\nExample 3\nInput: cut") == [
        Instance(input="", output="Tea, tea."), Instance(input="green", output="Green tea.")]
    assert parse_output_first(" Sarcastic\nInput: Oh great, rain.\nClass label: Not sarcastic\nInput: It rains.") == [
        Instance(input="Oh great, rain.", output="Sarcastic"), Instance(input="It rains.", output="Not sarcastic")]


def test_filter_instances_rules():
    many = [Instance(input=f"in {i}", output=f"out {i}") for i in range(7)]
    kept, dropped, reason = filter_instances(many, 5)
    assert reason is None and len(kept) == 5 and [d["reason"] for d in dropped] == ["over_max_instances"] * 2
    conflict = [Instance(input="same", output="a"), Instance(input="same", output="b")]
    assert filter_instances(conflict, 5)[0] == [] and filter_instances(conflict, 5)[2] == "conflicting_instances"
    bad = [Instance(input="x", output="x"), Instance(input="", output=" "), Instance(input="y", output="z"),
           Instance(input="y", output="z")]
    kept, dropped, reason = filter_instances(bad, 5)
    assert kept == [Instance(input="y", output="z")]
    assert [d["reason"] for d in dropped] == ["input_equals_output", "empty_output", "duplicate_instance"]
    assert filter_instances([], 5)[2] == "no_instances"
    # a generation loop (a haiku, then "Output: ..." over and over) is dropped; a list is not
    loop = "Sunset on the beach\nwaves fold the light away\n" + "Output: Sunset on the beach\n" * 35
    steps = "1. Preheat the oven.\n2. Mix the flour.\n3. Add eggs.\n4. Bake for 20 minutes."
    kept, dropped, _ = filter_instances([Instance(input="", output=loop), Instance(input="", output=steps)], 5)
    assert kept == [Instance(input="", output=steps)] and [d["reason"] for d in dropped] == ["repetitive_output"]


def test_generate_instances_classifies_and_records_lineage():
    be = get_backend("scripted", **SI_SCRIPT)
    tasks = [{"instruction": "Decide if the movie review below is positive or negative.", "is_classification": None},
             {"instruction": "Explain how rainbows form to a child.", "is_classification": False},
             {"instruction": "Classify the email as spam or not spam.", "is_classification": True}]
    r = generate_instances(be, tasks)
    by = {t.instruction: t for t in r.tasks}
    t2, t3 = by[tasks[1]["instruction"]], by[tasks[2]["instruction"]]
    assert t2.clf_source == "given" and not t2.is_classification
    assert t2.lineage["instances"]["template"] == "generate/instances_input_first"
    assert t2.lineage["instances"]["prompt_template_hash"] == template_hash("instances_input_first")
    assert t3.is_classification and [x.output for x in t3.instances] == ["Positive", "Negative"]
    t1 = by[tasks[0]["instruction"]]
    assert t1.clf_source == "model" and t1.lineage["instances"]["clf_template_hash"] == template_hash("clf_identification")
    samples = instances_to_samples(r)
    assert len(samples) == sum(len(t.instances) for t in r.kept) and samples
    assert all(s.lineage["instances"]["model"] == "scripted" for s in samples)
    with pytest.raises(WorkbenchError, match="task 0 has no instruction"):
        generate_instances(be, [{"instruction": " "}])


def test_generate_instances_resumes_from_checkpoint(tmp_path):
    tasks = [{"instruction": f"Explain idea number {i} to a child.", "is_classification": None} for i in range(5)]
    ck = tmp_path / "ck.jsonl"
    be = get_backend("scripted", **SI_SCRIPT)
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        if calls["n"] > 2:
            raise Cancelled("stop")
    cfg = InstanceConfig(batch_size=2)
    with pytest.raises(Cancelled):
        generate_instances(be, tasks, config=cfg, checkpoint=Checkpoint(ck), should_stop=stop_after_two)
    assert len(Checkpoint(ck)) == 2
    be2 = get_backend("scripted", **SI_SCRIPT)
    resumed = generate_instances(be2, tasks, config=cfg, checkpoint=Checkpoint(ck))
    fresh = generate_instances(get_backend("scripted", **SI_SCRIPT), tasks, config=cfg)
    assert resumed.model_dump(exclude={"elapsed_s"}) == fresh.model_dump(exclude={"elapsed_s"})
    assert be2.calls == 3 + 3 - 2  # 3 clf + 3 instance batches, 2 replayed


SEEDS = [f"Seed instruction number {w} about a different topic each time." for w in
         ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")]


def test_self_instruct_resume_equals_uninterrupted(tmp_path):
    cfg = SelfInstructConfig(prompts_per_round=2, rouge_method="exact", sampling=SamplingConfig(max_tokens=64, seed=3))
    fresh = run_self_instruct(get_backend("scripted", **SI_SCRIPT), SEEDS, config=cfg, target_kept=50, max_rounds=4)
    ck = tmp_path / "ck.jsonl"
    n = {"rounds": 0}

    def stop_at_3():
        n["rounds"] += 1
        if n["rounds"] == 3:
            raise Cancelled("killed")
    with pytest.raises(Cancelled):
        run_self_instruct(get_backend("scripted", **SI_SCRIPT), SEEDS, config=cfg, target_kept=50, max_rounds=4,
                          checkpoint=Checkpoint(ck), should_stop=stop_at_3)
    # a torn last line (process killed mid-write) is ignored
    with open(ck, "a") as f:
        f.write('{"stage": "self_instruct", "index": 2, "outp')
    be = get_backend("scripted", **SI_SCRIPT)
    resumed = run_self_instruct(be, SEEDS, config=cfg, target_kept=50, max_rounds=4, checkpoint=Checkpoint(ck))
    assert be.calls == 2  # rounds 3 and 4 only
    assert [k.model_dump() for k in resumed.kept] == [k.model_dump() for k in fresh.kept]
    assert resumed.dropped == fresh.dropped and resumed.generated == fresh.generated


def test_rouge_rule_is_rouge_score_and_index_agrees_when_present():
    pool = ["Name the capital city of France.", "Give three tips for staying healthy."]
    exact = RougeFilter(pool, 0.7)
    score, who = exact.best("Name the capital city of Spain.")
    assert score == pytest.approx(5 / 6) and who == pool[0]
    if not near_dup_available():
        pytest.skip("pipelines/filters/near_dup.py is not installed yet; the exact reference is used")
    idx = make_rouge_filter(pool, SelfInstructConfig(rouge_method="index"))
    cands = ["Name the capital city of Spain.", "Describe a walk in the forest at night.",
             "Give three tips for staying happy."]
    for c in cands:
        assert (idx.check(c) == "rouge") == (exact.check(c) == "rouge"), c


def test_auto_rouge_is_exact_for_small_pools_then_index():
    if not near_dup_available():
        pytest.skip("pipelines/filters/near_dup.py is not installed yet")
    pool = ["Name the capital city of France.", "Give three tips for staying healthy."]
    f = make_rouge_filter(pool, SelfInstructConfig(exact_pool_max=2))
    score, who = f.best("Describe a walk in the forest at night.")
    assert score is not None and score <= 0.7  # exact: a score even below the threshold
    f.add("Describe a walk in the forest at night.")  # pool of 3 > 2: the index from now on
    assert f.best("Describe a quiet walk in the forest at night.")[0] > 0.7
    assert f.best("List five prime numbers.") == (None, None)
    assert f.check("Name the capital city of Spain.") == "rouge"
