"""Preference pairs as versioned samples: import, lineage, export, permissions."""
from __future__ import annotations

import json

import pytest

from datastore import Store
from datastore import versions as V
from datastore.errors import PermissionDenied
from pipelines.preference import formats as F
from pipelines.preference import store as PS
from pipelines.preference.pairs import EditRecord, RankingRecord
from tests.conftest import shared_file


def test_import_export_round_trip_and_hash(tmp_workspace, tmp_path):
    path = shared_file("sharegpt-openai-samples/llamafactory_dpo_en_demo.json")
    v, fmt, n = PS.import_file(tmp_workspace, path, "prefs", user="local-admin")
    assert (fmt, n, v.number, v.n_samples) == ("llamafactory_dpo", 300, 1, 300)
    with Store(tmp_workspace) as st:
        s = V.read_page(st, v, limit=1)[0]
        stats = V.stats(st, v)
    assert s.kind == "preference" and s.messages[-1]["role"] == "assistant"
    assert s.extra["prompt_turns"] == len(s.messages) - 1 and s.extra["rejected"][0]["role"] == "assistant"
    assert s.lineage == {"rule": "import", "file": path.name, "row": 1, "format": "llamafactory_dpo"}
    assert stats["by_kind"] == {"preference": 300}
    out = tmp_path / "back.json"
    assert PS.export_version(tmp_workspace, "prefs", out, user="local-admin", fmt="llamafactory_dpo") == 300
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(path.read_text(encoding="utf-8"))
    # the same file imported again into another dataset has the same content hash
    v2, _, _ = PS.import_file(tmp_workspace, path, "prefs2", user="local-admin")
    assert v2.content_hash == v.content_hash
    # trl conversational export
    trl_out = tmp_path / "trl.jsonl"
    PS.export_version(tmp_workspace, "prefs", trl_out, user="local-admin", fmt="trl")
    first = json.loads(trl_out.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"prompt", "chosen", "rejected"} and isinstance(first["prompt"], list)


def test_pairs_from_records_carry_lineage_to_annotations(tmp_workspace):
    P = [{"role": "user", "content": "Capital of France?"}]
    src = {"task": "t1", "dataset": "stage", "version_id": "abc", "sample_id": 4}
    edits = [EditRecord(P, "Lyon.", "Paris.", 11, "ann", src), EditRecord(P, "Lyon.", "Lyon.", 12, "bob", src)]
    ranks = [RankingRecord(P, ["Paris.", "Marseille.", "Lyon."], ranks=[1, 2, 3], annotation_id=13, annotator="cat",
                           source={**src, "sample_id": 5})]
    v, rep = PS.commit_pairs_from_records(tmp_workspace, "prefs", edits, ranks, user="local-admin", mode="best")
    assert (rep.pairs, rep.unchanged_edits) == (2, 1)
    _, items = PS.read_items(tmp_workspace, "prefs", user="local-admin")
    assert [(i.chosen_text, i.rejected_text) for i in items] == [("Paris.", "Lyon."), ("Paris.", "Marseille.")]
    assert items[0].lineage["annotations"] == [11, 13] and items[0].lineage["sample_id"] == 4
    assert items[1].lineage["annotations"] == [13] and items[1].lineage["rule"] == "ranking"
    assert v.operation["op"] == "extract_preferences" and v.operation["unchanged_edits"] == 1


def test_permissions(tmp_workspace):
    from pipelines import auth
    auth.add_user(tmp_workspace, None, "admin1", "admin")
    auth.add_user(tmp_workspace, "admin1", "ann", "annotator")
    p = F.parse_record({"prompt": "a", "chosen": "b", "rejected": "c"})
    with pytest.raises(PermissionDenied):
        PS.commit_items(tmp_workspace, "prefs", [p], user="ann", message="x")
    PS.commit_items(tmp_workspace, "prefs", [p], user="admin1", message="x")
    assert len(PS.read_items(tmp_workspace, "prefs", user="ann")[1]) == 1


def test_extract_from_a_real_review_task(tmp_workspace):
    """Edits submitted through review's service layer become pairs with lineage to the annotations."""
    pytest.importorskip("pipelines.review.annotate")
    from datastore import Sample
    from pipelines import auth
    from pipelines.curation import stage_candidates
    from pipelines.review import annotate as RA
    from pipelines.review import tasks as RT

    auth.add_user(tmp_workspace, None, "boss", "admin")
    auth.add_user(tmp_workspace, "boss", "ann", "annotator")
    auth.add_user(tmp_workspace, "boss", "bob", "annotator")
    cands = [Sample(kind="conversation", messages=[{"role": "user", "content": "Capital of France?"},
                                                   {"role": "assistant", "content": "Lyon."}]),
             Sample(kind="instruction", instruction="2+2?", output="4")]
    stage_candidates(tmp_workspace, "stage", cands, user="boss", message="cands")
    RT.open_task(tmp_workspace, "boss", name="t1", dataset="stage", overlap_k=2, pool=["ann", "bob"])
    answers = {("ann", 1): {"decision": "edit", "edit": {"response": "Paris."}},
               ("bob", 1): {"decision": "edit", "edit": {"response": "Paris."}},
               ("ann", 2): {"decision": "accept"},
               ("bob", 2): {"decision": "edit", "edit": {"response": "  4 "}}}   # whitespace only: no pair
    for (who, sid), ans in answers.items():
        item = RA.open_item(tmp_workspace, who, "t1", sid)
        RA.submit(tmp_workspace, who, "t1", sid, ans, submit_id=item.submit_id)
    v, rep = PS.extract_from_review(tmp_workspace, "t1", "prefs", user="boss")
    _, items = PS.read_items(tmp_workspace, "prefs", user="boss")
    assert [(i.prompt, i.chosen_text, i.rejected_text) for i in items] == [
        ([{"role": "user", "content": "Capital of France?"}], "Paris.", "Lyon.")]
    assert len(items[0].lineage["annotations"]) == 2 and items[0].lineage["annotators"] == ["ann", "bob"]
    assert items[0].lineage["task"] == "t1" and items[0].lineage["sample_id"] == 1
    assert items[0].lineage["dataset"] == "stage" and items[0].lineage["version_number"] == 1
    assert (rep.edits_seen, rep.unchanged_edits, rep.duplicate_edits) == (3, 1, 1)
