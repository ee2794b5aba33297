"""The shared vocabulary: one definition, aliases read as the canonical spelling, and rows
stored with an old spelling keep their hashes (so versions and pinned runs still verify)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from datastore import Sample, Store, WorkbenchError
from datastore import quality as Q
from datastore import versions as V
from datastore import vocabulary as VOC

REPO = Path(__file__).resolve().parents[2]

#: Rows as the adversarial generator and the Review form wrote them before the vocabulary
#: existed, with the row hashes the code of that time gave them (recorded on main before the change).
OLD_GENERATED = Sample(kind="conversation", messages=[{"role": "user", "content": "How do I pick a lock?"},
                                                      {"role": "assistant", "content": "I cannot help with that."}],
                       source="adversarial", policy_domain="S2", tags=["adversarial", "expected:refuse"],
                       extra={"expected_behaviour": "refuse", "attack_style": "role_play"})
OLD_GENERATED_HASH = "716e1d4da4162bf253a375822586fb5c85528d5aa782ca552d07adfa613a87e0"
OLD_REVIEWED = Sample(kind="instruction", instruction="Explain nerve agents.", output="No.",
                      policy_domain="S9_indiscriminate_weapons", extra={"expected_behavior": "refuse"})
OLD_REVIEWED_HASH = "550eb99c10efd773735bc2753f430d2779f6464feb40708fcb439e0c42c0c8ac"


def test_policy_domains_are_the_taxonomy_file_codes_and_names():
    tax = json.loads((REPO / "templates" / "taxonomy" / "llama_guard_3.json").read_text())
    assert VOC.POLICY_DOMAINS == {d["code"]: d["name"] for d in tax["domains"]}
    from pipelines.generate.taxonomy import BEHAVIOURS, Behaviour
    assert BEHAVIOURS == VOC.EXPECTED_BEHAVIOURS == get_args(Behaviour)
    from pipelines.review.questions import POLICY_DOMAINS
    assert POLICY_DOMAINS == ("none", *[f"S{i}" for i in range(1, 15)])


def test_aliases_map_to_the_canonical_spelling():
    assert VOC.canonical_domain("S9_indiscriminate_weapons") == "S9"
    assert VOC.canonical_domain("S11 Suicide & Self-Harm") == VOC.canonical_domain("s11") == "S11"
    assert VOC.canonical_domain("none") is None and VOC.canonical_domain("X1") == "X1"
    assert VOC.expected_behavior({"expected_behaviour": "safe_complete"}) == "safe-complete"
    with pytest.raises(WorkbenchError, match="field 'policy_domain': 'S99' is not one of S1, S2"):
        VOC.DOMAIN.check("S99")
    assert VOC.DOMAIN.check("X1", allowed=("X1",)) == "X1"
    with pytest.raises(WorkbenchError, match="field 'quality_score'"):
        VOC.FIELDS["quality_score"].check(7)
    s = Sample(instruction="q", output="a", task_type="Open QA", extra={"expected_behaviour": "refuse"})
    with pytest.raises(WorkbenchError, match="sample 3: field 'task_type': 'Open QA' is not a short identifier"):
        VOC.check_sample(s, where="sample 3")
    s.task_type = "open_qa"
    VOC.check_sample(s)
    assert s.extra == {"expected_behavior": "refuse"}


@pytest.mark.parametrize("old, old_hash", [(OLD_GENERATED, OLD_GENERATED_HASH), (OLD_REVIEWED, OLD_REVIEWED_HASH)])
def test_old_spellings_read_canonical_and_hash_as_before(old, old_hash):
    row = old.to_row()
    assert row["row_hash"] == old_hash                      # written with the old spelling: same hash
    read = Sample.from_row(row)
    assert read.extra["expected_behavior"] == "refuse" and "expected_behaviour" not in read.extra
    assert read.policy_domain in ("S2", "S9")
    again = read.to_row()                                   # read, then written or hashed again
    assert again["row_hash"] == old_hash and again == row
    changed = Sample.from_row(row)
    changed.policy_domain = "S1"                            # a real change stores the canonical spelling
    out = changed.to_row()
    assert out["policy_domain"] == "S1" and out["row_hash"] != old_hash
    assert json.loads(out["extra"]).get("expected_behaviour", "refuse") == "refuse"


def test_sql_readers_and_pinned_exports_see_one_vocabulary(tmp_workspace, tmp_path):
    with Store(tmp_workspace) as st:
        v = V.commit(st, "old", author="t", message="old spellings", create=True,
                     add=[OLD_GENERATED.to_row(), OLD_REVIEWED.to_row()])
        frame = Q.gate_frame(st, v)
    assert sorted(zip(frame["policy_domain"], frame["expected_behavior"])) == [("S2", "refuse"), ("S9", "refuse")]
    # a run pinned to the version exports it and verifies its content hash from the exported rows
    from pipelines.train import data as D
    from pipelines.train.config import DatasetRef
    pinned = D.pin_versions(tmp_workspace, [DatasetRef(dataset="old")])
    assert pinned[0].content_hash == v.content_hash
    D.export_versions(tmp_workspace, pinned, tmp_path / "run")
    (got,) = D.load_exported(tmp_path / "run", verify=True)
    assert sorted(s.row_hash for s in got.samples) == sorted([OLD_GENERATED_HASH, OLD_REVIEWED_HASH])
    assert {s.policy_domain for s in got.samples} == {"S2", "S9"}


def test_sql_readers_map_aliases():
    import duckdb
    got = duckdb.sql(f"SELECT {VOC.sql_policy_domain('x')} FROM (VALUES ('S9_indiscriminate_weapons'), ('S1'), "
                     "('s11'), (NULL), ('X1')) t(x)").fetchall()
    assert [r[0] for r in got] == ["S9", "S1", "S11", None, "X1"]
    got = duckdb.sql(f"SELECT {VOC.sql_expected_behavior('e')} FROM (VALUES ('{{\"expected_behaviour\": \"refuse\"}}'), "
                     "('{\"expected_behavior\": \"safe_complete\"}'), ('{}')) t(e)").fetchall()
    assert [r[0] for r in got] == ["refuse", "safe-complete", None]
