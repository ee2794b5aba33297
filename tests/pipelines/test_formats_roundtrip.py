"""Import then re-export in the same format every file of ../shared/data that is in one
of our formats; the records must equal the originals in count, order, keys, values and
JSON types (compared as canonical JSON, so 1 != 1.0 != "1" and null != missing != "")."""
import json
from pathlib import Path

import pytest

from pipelines.formats import export_version, import_file
from pipelines.formats import containers as C
from tests.conftest import shared_file

FILES = [
    "self-instruct-seed-tasks/seed_tasks.jsonl",
    "self-instruct-user-oriented/user_oriented_instructions.jsonl",
    "self-instruct-user-oriented/davinci-self-instruct_predictions.jsonl",
    "alpaca-format-samples/code_alpaca_2k.json",
    "alpaca-format-samples/llamafactory_alpaca_en_demo.json",
    "alpaca-format-samples/llamafactory_identity.json",
    "sharegpt-openai-samples/fastchat_dummy_conversation.json",
    "sharegpt-openai-samples/llamafactory_glaive_toolcall_en_demo.json",
    "sharegpt-openai-samples/llamafactory_dpo_en_demo.json",
    "sharegpt-openai-samples/llamafactory_kto_en_demo.json",
    "sharegpt-openai-samples/axolotl-fixtures/conversation.json",
    "sharegpt-openai-samples/axolotl-fixtures/conversation.missingturns.json",
    "sharegpt-openai-samples/axolotl-fixtures/alpaca_alpaca.json",
    "xstest/xstest_prompts.csv",
    "xstest/xstest_v2_completions_gpt4_gpteval.csv",
    "xstest/xstest_v2_completions_llama2orig_gpteval.csv",
    "xstest/xstest_v2_completions_mistralinstruct_gpteval.csv",
]
# Not in an issue-2 format (stated so the omission is visible):
#  hh-rlhf-harmless-base-test/test.jsonl.gz: preference transcripts (chosen/rejected);
#  sharegpt-openai-samples/mt_bench_question.jsonl: evaluation question sets (turns only);
#  llamafactory_dataset_info.json, chat-templates/*, axolotl *.tokenized*.json: configs and token ids.
EXPECTED = {  # file -> (schema, container, records)
    "self-instruct-seed-tasks/seed_tasks.jsonl": ("self-instruct", "jsonl", 175),
    "alpaca-format-samples/code_alpaca_2k.json": ("alpaca", "json", 2017),
    "sharegpt-openai-samples/fastchat_dummy_conversation.json": ("sharegpt", "json", 500),
    "sharegpt-openai-samples/llamafactory_kto_en_demo.json": ("messages", "json", 300),
    "xstest/xstest_prompts.csv": ("alpaca", "csv", 450),
}


def canon(records):
    return [json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records]


def records_of(path: Path):
    return [r.value for r in C.read_records(path, C.sniff(path))]


@pytest.mark.parametrize("rel", FILES)
def test_round_trip_is_lossless(rel, tmp_workspace, tmp_path):
    src = shared_file(rel)
    rep = import_file(tmp_workspace, src, "d", user="t")
    if rel in EXPECTED:
        assert (rep.schema, rep.container, rep.imported) == EXPECTED[rel]
    fmt = "csv" if rep.container == "csv" else rep.schema
    out = tmp_path / ("out.csv" if fmt == "csv" else "out.jsonl" if rep.container == "jsonl" else "out.json")
    res = export_version(tmp_workspace, "d", None, fmt, out)
    assert res["records"] == rep.imported
    assert canon(records_of(out)) == canon(records_of(src))


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_round_trip_through_parquet_and_hf(fmt, tmp_workspace, tmp_path):
    src = shared_file("alpaca-format-samples/llamafactory_alpaca_en_demo.json")
    import_file(tmp_workspace, src, "d", user="t")
    out = tmp_path / f"out.{fmt}"
    export_version(tmp_workspace, "d", None, fmt, out)
    rep = import_file(tmp_workspace, out, "again", user="t")
    assert rep.container == fmt and rep.imported == 999
    out2 = tmp_path / "back.json"
    export_version(tmp_workspace, "again", None, "alpaca", out2)
    assert canon(records_of(out2)) == canon(records_of(src))


def test_hf_dataset_object_in_python(tmp_workspace):
    from datasets import Dataset

    from pipelines.formats import export_dataset_object, import_dataset_object
    ds = Dataset.from_list([{"instruction": "Say hi", "input": "", "output": "hi"},
                            {"instruction": "Add", "input": "1+1", "output": "2"}])
    rep = import_dataset_object(tmp_workspace, ds, "obj", user="t")
    assert rep.imported == 2
    back = export_dataset_object(tmp_workspace, "obj", None, "alpaca")
    assert back.to_list() == ds.to_list()
