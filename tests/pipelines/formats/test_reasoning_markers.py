"""Reasoning written inline between markers moves into reasoning_content on import and back
inline on export, byte for byte (Sky-T1 traces, <think> conversations, ShareGPT)."""
import gzip
import json
import subprocess
import sys

import pytest

from datastore import Store, WorkbenchError
from datastore import versions as V
from pipelines.formats import export_version, import_file
from tests.conftest import shared_file

SKY = {  # file -> (rows, traces opening with the marker, traces that close it)
    "reasoning-traces/sky_t1_32b_ckpt140_aime24.jsonl.gz": (30, 30, 19),
    "reasoning-traces/sky_t1_32b_reflection0.5_amc23.jsonl.gz": (40, 40, 37),
    "reasoning-traces/sky_t1_27b_correct5k_minerva_math.jsonl.gz": (272, 147, 104),
}


def samples(ws, name):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, name, None)))


def write_lines(path, recs):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    return path


def sky_conversations(tmp_path):
    """The Sky-T1 evaluation outputs as conversations: the question, then the model's generation
    (``code[0]``), with the reference answer beside them."""
    recs = []
    for rel in SKY:
        for line in gzip.open(shared_file(rel), "rt", encoding="utf-8"):
            r = json.loads(line)
            recs.append({"messages": [{"role": "user", "content": r["question"]},
                                      {"role": "assistant", "content": r["code"][0]}],
                         "idx": r["idx"], "gt": r["gt"], "score": r["score"]})
    return write_lines(tmp_path / "sky.jsonl", recs)


def test_sky_t1_traces_move_into_reasoning_content_and_back(tmp_workspace, tmp_path):
    src = sky_conversations(tmp_path)
    rep = import_file(tmp_workspace, src, "sky", user="t", fmt="jsonl", reasoning_markers="thought")  # lines over 4 KB
    rows, opened, closed = (sum(v[i] for v in SKY.values()) for i in range(3))
    assert rep.imported == rows == 342
    got = samples(tmp_workspace, "sky")
    moved = [s for s in got if "reasoning_content" in s.messages[1]]
    assert len(moved) == closed == 160
    unclosed = [w for w in rep.warnings if "never closed" in w["message"]]
    assert len(unclosed) == opened - closed == 57
    assert unclosed[0]["message"] == ("reasoning opened with <|begin_of_thought|> at message 1 is never closed "
                                      "(a truncated trace?); left in the content")
    # amc23 idx 0 (row 31): the reasoning without its marker whitespace; the solution kept verbatim
    amc0 = got[30].messages[1]
    assert amc0["reasoning_content"].startswith("So I've got this problem here. Alicia lives in city A")
    assert amc0["reasoning_content"].endswith("should be 27 miles.")
    assert amc0["content"].startswith("<|begin_of_solution|>\n\nAlicia lives in c")
    assert amc0["content"].endswith("is \\( \\boxed{27} \\).<|end_of_solution|>")
    assert got[30].layout["reasoning"]["1"] == {"markers": ["<|begin_of_thought|>", "<|end_of_thought|>"],
                                                "ws": ["", "\n\n", "\n\n", "\n\n"]}
    # no marker at all (125 MINERVA rows) or an unclosed one: the text is untouched
    source = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    untouched = [(s, r) for s, r in zip(got, source) if "reasoning_content" not in s.messages[1]]
    assert len(untouched) == rows - closed
    assert all(s.messages == r["messages"] for s, r in untouched)
    out = tmp_path / "back.jsonl"
    export_version(tmp_workspace, "sky", None, "messages", out, reasoning="inline")
    assert out.read_bytes() == src.read_bytes()
    kept = tmp_path / "kept.jsonl"
    export_version(tmp_workspace, "sky", None, "messages", kept)
    assert json.loads(kept.read_text().splitlines()[30])["messages"][1]["reasoning_content"] == amc0["reasoning_content"]


def test_think_markers_auto_and_what_is_left_alone(tmp_workspace, tmp_path):
    msgs = [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\n2 and 2\n</think>\n\n4"}],
        [{"role": "user", "content": "<think>not mine</think> hi"}, {"role": "assistant", "content": " <think>a</think>b"}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure. <think>late</think> y"}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "<think>r</think>c", "reasoning_content": "own"}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "<|begin_of_thought|>t<|end_of_thought|>s"}],
    ]
    src = write_lines(tmp_path / "t.jsonl", [{"messages": m} for m in msgs])
    import_file(tmp_workspace, src, "t", user="t", reasoning_markers="auto")
    got = [s.messages for s in samples(tmp_workspace, "t")]
    assert got[0][1] == {"role": "assistant", "content": "4", "reasoning_content": "2 and 2"}
    assert got[1][0]["content"] == "<think>not mine</think> hi"            # user turns are not touched
    assert got[1][1] == {"role": "assistant", "content": "b", "reasoning_content": "a"}
    assert got[2][1] == msgs[2][1]                                          # not at the start
    assert got[3][1] == msgs[3][1]                                          # reasoning already there
    assert got[4][1] == {"role": "assistant", "content": "s", "reasoning_content": "t"}
    out = tmp_path / "back.jsonl"
    export_version(tmp_workspace, "t", None, "messages", out, reasoning="inline")
    assert [r["messages"] for r in map(json.loads, out.read_text().splitlines())][:3] == msgs[:3]
    assert json.loads(out.read_text().splitlines()[4])["messages"] == msgs[4]
    # the reasoning that came as a field is written with the <think> layout of DeepSeek-R1 / Qwen3
    assert json.loads(out.read_text().splitlines()[3])["messages"][1] == {
        "role": "assistant", "content": "<think>\nown\n</think>\n\n<think>r</think>c"}
    # one pair only: "think" leaves the Sky-T1 markers alone
    import_file(tmp_workspace, src, "only", user="t", reasoning_markers="think")
    assert samples(tmp_workspace, "only")[4].messages[1] == msgs[4][1]
    with pytest.raises(WorkbenchError, match="--reasoning-markers must be one of think, thought, auto, got 'xml'"):
        import_file(tmp_workspace, src, "bad", user="t", reasoning_markers="xml")


def test_sharegpt_refuses_reasoning_unless_inline(tmp_workspace, tmp_path):
    recs = [{"conversations": [{"from": "human", "value": "2+2?"},
                               {"from": "gpt", "value": "<think>\n2 and 2\n</think>\n\n4"}]}]
    src = tmp_path / "r.json"
    src.write_text(json.dumps(recs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    import_file(tmp_workspace, src, "r", user="t", reasoning_markers="think")
    assert samples(tmp_workspace, "r")[0].messages[1]["reasoning_content"] == "2 and 2"
    with pytest.raises(WorkbenchError, match=r"sample #1 .*message 1, field 'reasoning_content': ShareGPT has no "
                                             r"field for reasoning; export with the reasoning written inline"):
        export_version(tmp_workspace, "r", None, "sharegpt", tmp_path / "o.json")
    export_version(tmp_workspace, "r", None, "sharegpt", tmp_path / "o.json", reasoning="inline")
    assert (tmp_path / "o.json").read_bytes() == src.read_bytes()


def test_cli_options(tmp_path):
    ws = tmp_path / "ws"
    src = write_lines(tmp_path / "c.jsonl", [{"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>\na"}]}])

    def wb(*args):
        return subprocess.run([sys.executable, "-m", "app.cli", "--workspace", str(ws), *args],
                              capture_output=True, text=True)
    assert wb("init").returncode == 0
    r = wb("import", str(src), "--dataset", "c", "--reasoning-markers", "think")
    assert r.returncode == 0, r.stderr
    assert samples(ws, "c")[0].messages[1] == {"role": "assistant", "content": "a", "reasoning_content": "r"}
    r = wb("export", "--dataset", "c", "--format", "messages", "--out", str(tmp_path / "o.jsonl"), "--reasoning", "inline")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.jsonl").read_bytes() == src.read_bytes()
    r = wb("export", "--dataset", "c", "--format", "messages", "--out", str(tmp_path / "x.jsonl"), "--reasoning", "strip")
    assert r.returncode == 1 and "--reasoning must be one of keep, inline, got 'strip'" in r.stderr
    assert "Traceback" not in r.stderr


def test_markers_on_instruction_records_are_refused_before_anything_is_written(tmp_workspace, tmp_path):
    src = tmp_path / "alpaca.jsonl"
    src.write_text(json.dumps({"instruction": "2+2?", "output": "<think>\nadd\n</think>\n\n4"}) + "\n",
                   encoding="utf-8")
    with pytest.raises(WorkbenchError, match="holds alpaca records, whose text would be imported unchanged"):
        import_file(tmp_workspace, src, "a", user="t", reasoning_markers="think")
    import_file(tmp_workspace, src, "a", user="t")   # without the option the file imports as it is
    with Store(tmp_workspace) as st:
        assert [v.number for v in V.log(st, "a")] == [1]
