"""Filter, merge, split and revert: each one commit whose message and operation state
the parameters; previews match what the commit does; conditions are checked; roles."""
from __future__ import annotations

import json

import pytest

from datastore import PermissionDenied, Sample, Store, WorkbenchError
from datastore import versions as V
from pipelines import catalog
from pipelines.curate import condition as C
from pipelines.curate import filter as F
from pipelines.curate import merge as M
from pipelines.curate import revert as R
from pipelines.curate import split as S
from pipelines.formats import import_file


def _ids(ws, name, ref=None):
    with Store(ws) as st:
        return [s.sample_id for s in V.iter_samples(st, V.resolve(st, name, ref))]


def test_filter_by_condition_is_one_commit_with_recipe(ws):
    plan = F.plan_filter(ws, "d", user="local-admin", where="instruction LIKE '%math%'")
    assert plan.counts == {"source": 21, "kept": 10, "removed": 11}
    v = F.filter_version(ws, "d", user="local-admin", where="instruction LIKE '%math%'")
    assert v.number == 2 and v.n_samples == 10 and v.n_removed == 11
    assert v.message == "filter d v1 where (instruction LIKE '%math%'): kept 10 of 21"
    assert v.operation["op"] == "filter" and v.operation["where"] == "(instruction LIKE '%math%')"
    assert _ids(ws, "d") == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]  # odd i -> ids 2, 4, ...


def test_filter_metadata_quality_and_derived_columns(ws):
    # derived: duplicate keeps the first of a group; response_words counts words
    p = F.plan_filter(ws, "d", user="local-admin", where="NOT duplicate")
    assert p.counts["removed"] == 1
    p = F.plan_filter(ws, "d", user="local-admin", where="response_words >= 5")
    with Store(ws) as st:
        expect = sum(1 for s in V.iter_samples(st, V.resolve(st, "d")) if len(s.output.split()) >= 5)
    assert p.counts["kept"] == expect
    p = F.plan_filter(ws, "d", user="local-admin", fields={"license": "cc-by-nc-4.0"})
    assert p.counts["kept"] == 21
    p = F.plan_filter(ws, "d", user="local-admin", min_quality=0.5)
    assert p.counts["kept"] == 0  # no sample has a quality score


def test_filter_an_older_version_reinstates_ids(ws):
    F.filter_version(ws, "d", user="local-admin", where="sample_id <= 5")
    v = F.filter_version(ws, "d", 1, user="local-admin", where="sample_id > 15")
    assert _ids(ws, "d") == [16, 17, 18, 19, 20, 21]
    assert v.n_added == 6 and v.n_removed == 5


def test_filter_into_another_dataset_keeps_lineage(ws):
    v = F.filter_version(ws, "d", user="local-admin", where="sample_id = 2", into="small")
    with Store(ws) as st:
        s = next(V.iter_samples(st, v))
    assert s.lineage["parent"] == {"dataset": "d", "version_id": catalog.get_version(ws, "d").version_id, "sample_id": 2}


@pytest.mark.parametrize("cond", ["read_csv('/etc/passwd') IS NOT NULL", "(SELECT count(*) FROM samples) > 0",
                                  "1=1); DROP TABLE samples; --", "getenv('HOME') = 'x'", "nope = 1",
                                  "row_number() OVER () > 1"])
def test_unsafe_or_unknown_conditions_are_refused(ws, cond):
    with pytest.raises(WorkbenchError, match="not allowed|does not parse"):
        F.plan_filter(ws, "d", user="local-admin", where=cond)
    assert catalog.get_version(ws, "d").number == 1


def test_condition_runs_without_external_access():
    import pyarrow as pa
    cond = C.Condition(text="output IS NOT NULL AND length(read_text('/etc/hostname')::VARCHAR) > 0", columns=["output"])
    with pytest.raises(WorkbenchError, match="failed"):
        C.evaluate(cond, pa.table({"sample_id": [1], "output": ["x"]}))


def test_revert_restores_content_hash(ws):
    v1 = catalog.get_version(ws, "d", 1)
    F.filter_version(ws, "d", user="local-admin", where="sample_id % 3 = 0")
    plan = R.plan_revert(ws, "d", 1, user="local-admin")
    assert plan.counts["reinstated"] == 21 - 7
    r = R.revert(ws, "d", 1, user="local-admin")
    assert r.content_hash == v1.content_hash and r.n_samples == 21 and _ids(ws, "d") == list(range(1, 22))
    assert r.message.startswith("revert d to v1") and r.operation["to_version_id"] == v1.version_id


def test_merge_dedup_sees_through_invisible_characters_and_keeps_raw_text(tmp_workspace, tmp_path):
    recs = [{"instruction": "Name three primary colors.", "input": "", "output": "Red, yellow, blue."},
            {"instruction": "Name three\u00a0primary col\u200bors.", "input": "", "output": "Red, yellow, blue."}]
    (tmp_path / "z.json").write_text(json.dumps(recs))
    import_file(tmp_workspace, tmp_path / "z.json", "z", user="local-admin", license="mit")
    plan = M.plan_merge(tmp_workspace, ["z"], "m", user="local-admin")
    assert plan.counts["dropped_exact"] == 1 and plan.counts["added"] == 1
    assert plan.operation["normalization"].startswith("Unicode NFKC, zero-width and bidi")
    assert "exact dedup on text normalized (Unicode NFKC" in plan.message
    raw = M.plan_merge(tmp_workspace, ["z"], "m", user="local-admin", normalize=False)
    assert raw.counts["dropped_exact"] == 0 and raw.operation["normalization"] == "none" and "raw text" in raw.message
    M.merge_datasets(tmp_workspace, ["z"], "m", user="local-admin")
    with Store(tmp_workspace) as st:    # the stored text is never changed by dedup
        src = [s.instruction for s in V.iter_samples(st, V.resolve(st, "z"))]
        kept = [s.instruction for s in V.iter_samples(st, V.resolve(st, "m"))]
    assert src == [recs[0]["instruction"], recs[1]["instruction"]] and kept == [recs[0]["instruction"]]


def test_merge_exact_dedup_on_normalized_text(ws, tmp_path):
    other = [{"instruction": "QUESTION   number 0 about art", "input": "", "output": "word answer 0"},
             {"instruction": "A fresh question", "input": "", "output": "fresh"}]
    (tmp_path / "o.json").write_text(json.dumps(other))
    import_file(ws, tmp_path / "o.json", "o", user="local-admin", license="mit")
    plan = M.plan_merge(ws, ["d", "o"], "all", user="local-admin")
    # d has one exact duplicate; o's first record equals d's first after normalization
    assert plan.counts == {"incoming": 23, "added": 21, "dropped_exact": 2, "dropped_semantic": 0, "target_before": 0}
    v = M.merge_datasets(ws, ["d", "o"], "all", user="local-admin")
    assert v.n_samples == 21 and "dropped 2 exact duplicate(s)" in v.message and v.operation["sources"][1]["dataset"] == "o"
    # merging again adds nothing: everything is a duplicate of the target
    from datastore import Conflict
    with pytest.raises(Conflict):
        M.merge_datasets(ws, ["o"], "all", user="local-admin")


def test_split_random_and_stratified_is_seeded(ws):
    a = S.plan_split(ws, "d", user="local-admin", seed=3).counts
    assert a == {"d-train": 17, "d-eval": 2, "d-test": 2}
    parts = S.split_version(ws, "d", user="local-admin", seed=3)
    ids = [set(x.lineage["parent"]["sample_id"] for x in _samples(ws, p.dataset)) for p in parts]
    assert set().union(*ids) == set(range(1, 22)) and sum(map(len, ids)) == 21
    again = S.split_version(ws, "d", user="local-admin", seed=3)  # same seed: same parts, replaced
    assert [set(x.lineage["parent"]["sample_id"] for x in _samples(ws, p.dataset)) for p in again] == ids
    other = S.split_version(ws, "d", user="local-admin", seed=4)
    assert [set(x.lineage["parent"]["sample_id"] for x in _samples(ws, p.dataset)) for p in other] != ids
    assert parts[0].operation["split_id"] == parts[2].operation["split_id"] and "seed 3" in parts[0].message


def test_split_stratified_keeps_proportions(tmp_path):
    ws = tmp_path / "ws"
    with Store(ws) as st:
        rows = [Sample(instruction=f"q{i}", output="a", task_type="qa" if i < 60 else "code").to_row() for i in range(100)]
        V.commit(st, "s", author="x", message="m", add=rows, create=True)
    parts = S.split_version(ws, "s", user="local-admin", fractions=[0.5, 0.3, 0.2], stratify="task_type", seed=1)
    by = [{t: sum(1 for x in _samples(ws, p.dataset) if x.task_type == t) for t in ("qa", "code")} for p in parts]
    assert by == [{"qa": 30, "code": 20}, {"qa": 18, "code": 12}, {"qa": 12, "code": 8}]
    with pytest.raises(WorkbenchError, match="sum to 1"):
        S.plan_split(ws, "s", user="local-admin", fractions=[0.5, 0.6, 0.1])


def _samples(ws, name):
    with Store(ws) as st:
        return list(V.iter_samples(st, V.resolve(st, name)))


def test_annotator_may_not_curate(ws):
    from datastore import audit
    with Store(ws) as st:
        st.conn.execute("INSERT INTO users VALUES ('ann', 'annotator', NULL, ?)", [audit.now()])
    for call in (lambda: F.filter_version(ws, "d", user="ann", where="true"),
                 lambda: M.merge_datasets(ws, ["d"], "x", user="ann"),
                 lambda: S.split_version(ws, "d", user="ann"),
                 lambda: R.revert(ws, "d", 1, user="ann"),
                 lambda: catalog.tag_version(ws, "d", "t", 1, user="ann")):
        with pytest.raises(PermissionDenied):
            call()
