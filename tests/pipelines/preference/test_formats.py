"""Preference formats: round trips on the real LLaMA-Factory and hh-rlhf files, trl forms."""
from __future__ import annotations

import gzip
import json

import pytest

from datastore.errors import FormatError, WorkbenchError
from pipelines.preference import formats as F
from pipelines.preference.pairs import Pair, Unpaired
from tests.conftest import shared_file


def test_llamafactory_dpo_round_trip_on_the_demo_file():
    path = shared_file("sharegpt-openai-samples/llamafactory_dpo_en_demo.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    items, fmt = F.read_file(path)
    assert fmt == "llamafactory_dpo" and len(items) == len(raw) == 300
    assert sum(1 for p in items if p.prompt[0]["role"] == "system") == 80
    assert all(p.prompt[-1]["role"] == "user" and p.chosen[0]["role"] == "assistant" for p in items)
    assert [F.to_llamafactory_dpo(p) for p in items] == raw
    # into trl's conversational format and back: same pairs
    back = [F.parse_record(F.to_trl(p)) for p in items]
    assert [(b.prompt, b.chosen, b.rejected) for b in back] == [(p.prompt, p.chosen, p.rejected) for p in items]


def test_llamafactory_kto_round_trip_on_the_demo_file():
    path = shared_file("sharegpt-openai-samples/llamafactory_kto_en_demo.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    items, fmt = F.read_file(path)
    assert fmt == "llamafactory_kto" and all(isinstance(i, Unpaired) for i in items)
    assert sum(i.label for i in items) == 150
    assert [F.to_llamafactory_kto(i) for i in items] == raw
    u = F.to_trl(items[0])
    assert set(u) == {"prompt", "completion", "label"} and u["completion"][0]["role"] == "assistant"
    assert F.parse_record(u).completion == items[0].completion


def test_hh_rlhf_round_trip_byte_for_byte():
    path = shared_file("hh-rlhf-harmless-base-test/test.jsonl.gz")
    raw = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    items, fmt = F.read_file(path)
    assert fmt == "hh_rlhf" and len(items) == 2312
    assert [F.to_hh(p) for p in items] == raw
    multi = [p for p in items if len(p.chosen) > 1 or len(p.rejected) > 1]
    assert len(multi) == 5  # transcripts that differ before their last turn keep several completion turns
    assert all(p.prompt[-1]["role"] == "user" for p in items if p.prompt)
    one = items[0]
    assert one.chosen[-1]["role"] == "assistant" and one.chosen != one.rejected


def test_trl_plain_conversational_and_implicit(tmp_path):
    conv = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}], "id": 7}
    plain = {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}
    implicit = {"chosen": conv["prompt"] + conv["chosen"], "rejected": conv["prompt"] + conv["rejected"]}
    for rec, style in ((conv, "conversational"), (plain, "plain"), (implicit, "implicit")):
        p = F.parse_record(rec)
        assert F.detect(rec) == "trl" and p.layout["style"] == style
        assert (p.prompt, p.chosen, p.rejected) == (conv["prompt"], conv["chosen"], conv["rejected"])
    assert F.to_trl(F.parse_record(conv)) == conv           # extra key kept, key order kept
    assert F.to_trl(F.parse_record(plain), conversational=False) == plain
    # a multi-turn prompt exported plain is rendered with the chat template and its generation prompt
    p = Pair([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
             [{"role": "assistant", "content": "A"}], [{"role": "assistant", "content": "B"}])
    rec = F.to_trl(p, conversational=False)
    assert rec == {"prompt": "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n",
                   "chosen": "A", "rejected": "B"}
    out = tmp_path / "o.jsonl"
    assert F.write_file([p], out, "trl") == 1
    assert F.read_file(out)[0][0].prompt == p.prompt


def test_bad_records_name_file_row_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n"
                 + json.dumps({"prompt": "a", "chosen": 3, "rejected": "c"}) + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as e:
        F.read_file(f)
    assert (e.value.row, e.value.line, e.value.field) == (2, 2, "chosen")
    g = tmp_path / "none.json"
    g.write_text(json.dumps([{"instruction": "x", "output": "y"}]), encoding="utf-8")
    with pytest.raises(FormatError, match="not a preference record"):
        F.read_file(g)
    with pytest.raises(WorkbenchError, match="cannot be written as one KTO"):
        F.dump_record(Pair([], [{"role": "assistant", "content": "a"}], [{"role": "assistant", "content": "b"}]),
                      "llamafactory_kto")
