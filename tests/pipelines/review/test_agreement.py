"""Agreement figures against values worked out by hand on a small fixture.

Three annotators (ann, bob, cat) answer all four items of one task (k = 3):

    item   decision (ann, bob, cat)      rating (ann, bob, cat)
    1      accept  accept  accept        5 4 5
    2      accept  reject  accept        3 3 2
    3      reject  reject  reject        1 2 1
    4      accept  accept  reject        4 4 4

Cohen's kappa, kappa = (p_o - p_e) / (1 - p_e):
    ann-bob: p_o = 3/4, p_e = 3/4*2/4 + 1/4*2/4 = 1/2  -> 1/2
    ann-cat: p_o = 3/4, p_e = 1/2                      -> 1/2
    bob-cat: p_o = 1/2, p_e = 1/2                      -> 0
Fleiss' kappa (N = 4, n = 3): P_i = 1, 1/3, 1, 1/3 -> P = 2/3; p_accept = 7/12,
    p_reject = 5/12 -> P_e = 74/144; kappa = (2/3 - 37/72) / (1 - 37/72) = 11/35.
Krippendorff's alpha, nominal: coincidences o_aa = 5, o_ar = o_ra = 2, o_rr = 3, n = 12,
    n_a = 7, n_r = 5: alpha = 1 - (n - 1) * 4 / (2 * 7 * 5) = 1 - 44/70 = 13/35.
Krippendorff's alpha, ordinal ratings: n_1..n_5 = 2, 2, 2, 4, 2; observed disagreeing
    coincidences (4,5), (2,3), (1,2) once each way with delta^2 = 9, 4, 4 -> sum o*delta^2 = 34;
    sum over ordered pairs n_c n_k delta^2 = 3264; alpha = 1 - 11 * 34 / 3264 = 1445/1632.
"""
from __future__ import annotations

import pytest

from pipelines.review import adjudicate, agreement, annotate, gold, tasks
from tests.pipelines.review.helpers import build

DECISIONS = {1: ("accept", "accept", "accept"), 2: ("accept", "reject", "accept"),
             3: ("reject", "reject", "reject"), 4: ("accept", "accept", "reject")}
RATINGS = {1: (5, 4, 5), 2: (3, 3, 2), 3: (1, 2, 1), 4: (4, 4, 4)}
WHO = ("ann", "bob", "cat")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = build(tmp_path_factory.mktemp("agree") / "ws", n=4)
    tasks.open_task(ws, "cora", name="hand", dataset="qa", overlap_k=3, pool=list(WHO))
    for sid in range(1, 5):
        for i, who in enumerate(WHO):
            annotate.submit(ws, who, "hand", sid, {"decision": DECISIONS[sid][i], "rating": RATINGS[sid][i]},
                            submit_id=f"{who}-{sid}", time_spent_ms=1000 * sid)
    return ws


def _q(rep, name):
    return next(q for q in rep["questions"] if q["question"] == name)


def test_pairwise_fleiss_and_krippendorff_match_the_hand_values(ws):
    rep = agreement.agreement_report(ws, "cora", "hand")
    assert rep["scope"] == "all" and rep["dataset"] == "qa" and rep["version"] == 1
    dec = _q(rep, "decision")
    pairs = {(p["a"], p["b"]): p for p in dec["pairs"]}
    assert pairs[("ann", "bob")]["cohen_kappa"] == pytest.approx(0.5)
    assert pairs[("ann", "cat")]["cohen_kappa"] == pytest.approx(0.5)
    assert pairs[("bob", "cat")]["cohen_kappa"] == pytest.approx(0.0)
    assert pairs[("bob", "cat")]["observed_agreement"] == pytest.approx(0.5)
    assert all(p["items"] == 4 for p in pairs.values())
    assert dec["fleiss_kappa"] == pytest.approx(11 / 35) and dec["fleiss_items"] == 4
    assert dec["krippendorff_alpha"] == pytest.approx(13 / 35) and dec["alpha_items"] == 4
    rat = _q(rep, "rating")
    assert rat["level"] == "ordinal"
    assert rat["krippendorff_alpha"] == pytest.approx(1445 / 1632) and rat["alpha_items"] == 4


def test_per_annotator_figures_adjudication_and_gold(ws):
    adjudicate.adjudicate(ws, "dora", "hand", 2, decision="accept")
    adjudicate.adjudicate(ws, "dora", "hand", 4, decision="accept")
    gold.mark_gold(ws, "cora", "hand", 1, {"decision": "accept"})
    gold.mark_gold(ws, "cora", "hand", 3, {"decision": "accept"})
    rows = {r["annotator"]: r for r in agreement.agreement_report(ws, "cora", "hand")["annotators"]}
    ann = rows["ann"]
    assert ann["annotations"] == 4
    assert ann["median_time_s"] == pytest.approx(2.5)               # 1, 2, 3, 4 s
    assert ann["throughput_per_hour"] == pytest.approx(4 / (10 / 3600), rel=1e-3)  # 4 in 10 s
    assert ann["agreement_with_others"] == pytest.approx(6 / 8) and ann["paired_items"] == 8
    assert ann["agreement_with_adjudicated"] == 1.0 and ann["adjudicated_items"] == 2
    assert rows["bob"]["agreement_with_adjudicated"] == 0.5
    assert rows["cat"]["agreement_with_adjudicated"] == 0.5
    assert {r["gold_accuracy"] for r in rows.values()} == {0.5}
    assert {r["gold_items"] for r in rows.values()} == {2}
    # bob agrees with ann on items 1, 3, 4 and with cat on items 1, 3: 5 of 8 item pairs
    assert rows["bob"]["agreement_with_others"] == pytest.approx(5 / 8)


def test_per_version_view(ws):
    rows = agreement.agreement_by_version(ws, "cora", "qa")
    dec = next(r for r in rows if r["question"] == "decision")
    assert dec["version"] == 1 and dec["tasks"] == ["hand"]
    assert dec["krippendorff_alpha"] == pytest.approx(13 / 35) and dec["alpha_items"] == 4


def test_measures_on_edge_cases():
    assert agreement.krippendorff_alpha([[2, 0], [2, 0]]) == (None, 2)  # one value only: undefined
    assert agreement.fleiss([]) == (None, 0)
    assert agreement.cohen_from_pairs([], ["a"]) == (None, 0, None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measures_equal_the_reference_libraries_on_random_data(seed):
    """The fast sufficient-statistic measures against krippendorff, statsmodels and
    scikit-learn on random units with 1 to 4 values each (uneven counts, missing values)."""
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import fleiss_kappa

    rng = np.random.default_rng(seed)
    raters, units, v = 4, 300, 5
    data = rng.integers(0, v, size=(raters, units)).astype(float)
    # correlated: rater r copies rater 0 with probability 0.6, so alpha is far from 0
    data[1:] = np.where(rng.random((raters - 1, units)) < 0.6, data[0], data[1:])
    data[rng.random((raters, units)) < 0.2] = np.nan
    vc = np.stack([(data == c).sum(axis=0) for c in range(v)], axis=1)
    for level in ("nominal", "ordinal"):
        ours, items = agreement.krippendorff_alpha(vc, level)
        ref = krippendorff.alpha(reliability_data=data, value_domain=list(range(v)), level_of_measurement=level)
        assert ours == pytest.approx(ref, abs=1e-12)
        assert items == int((vc.sum(axis=1) >= 2).sum())
    ours, items = agreement.fleiss(vc, raters=3)
    assert ours == pytest.approx(fleiss_kappa(vc[vc.sum(axis=1) == 3], method="fleiss"), abs=1e-12)
    assert items == int((vc.sum(axis=1) == 3).sum())
    both = ~np.isnan(data[0]) & ~np.isnan(data[1])
    a, b = data[0][both].astype(int), data[1][both].astype(int)
    table = np.zeros((v, v))
    np.add.at(table, (a, b), 1)
    kappa, n, obs = agreement.cohen_from_table(table)
    assert kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert n == int(both.sum()) and obs == pytest.approx(float((a == b).mean()))


def test_pair_rows_finds_every_pair_of_an_item():
    """k = 1, 2 and 3 annotations per item: C(k, 2) pairs each, ordered by annotator."""
    import numpy as np
    tab = {"item": np.array([0, 1, 1, 2, 2, 2]), "annotator": np.array([0, 2, 1, 0, 2, 1])}
    i, j = agreement._pair_rows(tab)
    got = sorted((int(tab["item"][a]), int(tab["annotator"][a]), int(tab["annotator"][b])) for a, b in zip(i, j))
    assert got == [(1, 1, 2), (2, 0, 1), (2, 0, 2), (2, 1, 2)]


def test_stored_codes_equal_the_sql_coding_of_the_answers(tmp_path):
    """Each submit stores its answers coded for agreement (``code_answers``); the SQL coding
    that older rows fall back on (``fill_codes``/``coded_table``) gives the same codes, and the
    report is the same either way."""
    import numpy as np

    from datastore import Store
    from datastore import annotations as A

    ws = build(tmp_path / "ws", n=4)
    questions = [
        {"name": "decision", "kind": "decision", "label": "D", "options": ["accept", "reject"], "required": True},
        {"name": "rating", "kind": "rating", "label": "R", "min": 1, "max": 3},
        {"name": "size", "kind": "label", "label": "S", "options": [1, 2, 3]},
        {"name": "tone", "kind": "label", "label": "T", "options": ["dry", "it's warm"]},
        {"name": "flags", "kind": "multilabel", "label": "F", "options": ["unsafe", "wrong"]},
        {"name": "note", "kind": "text", "label": "N"},
    ]
    tasks.open_task(ws, "cora", name="codes", dataset="qa", overlap_k=2, pool=["ann", "bob"], questions=questions)
    answers = {1: ({"decision": "accept", "rating": 3, "size": 2, "tone": "it's warm", "flags": ["wrong"]},
                   {"decision": "reject", "flags": ["unsafe", "wrong"], "note": "x"}),
               2: ({"decision": "accept", "size": 1}, {"decision": "accept", "rating": 1, "tone": "dry"}),
               3: ({"decision": "reject", "rating": 2, "flags": []}, {"decision": "reject", "rating": 2, "size": 3})}
    for sid, (a, b) in answers.items():
        annotate.submit(ws, "ann", "codes", sid, a, submit_id=f"c-ann-{sid}")
        annotate.submit(ws, "bob", "codes", sid, b, submit_id=f"c-bob-{sid}")
    before = agreement.agreement_report(ws, "cora", "codes")
    mq = agreement.measured_questions(questions)
    with Store(ws) as st:
        tid = st.conn.execute("SELECT task_id FROM review_tasks WHERE name = 'codes'").fetchone()[0]
        sql = "SELECT sample_id, annotator, codes FROM annotations WHERE task_id = ? ORDER BY 1, 2"
        stored = st.conn.execute(sql, [tid]).fetchall()
        # the codes as written: ann on sample 1 answered rating 3, size "2", tone "it's warm", flag "wrong"
        assert list(stored[0][2]) == [1, 3, 2, 2, 1, 2]
        st.conn.execute("UPDATE annotations SET codes = NULL WHERE task_id = ?", [tid])
        fallback = A.coded_table(st.conn, [tid], mq, stored={tid: mq})
        assert A.fill_codes(st.conn, tid, mq) == 6
        assert st.conn.execute(sql, [tid]).fetchall() == stored
        again = A.coded_table(st.conn, [tid], mq, stored={tid: mq})
    for key in fallback["codes"]:
        assert np.array_equal(fallback["codes"][key], again["codes"][key]), key
    assert agreement.agreement_report(ws, "cora", "codes") == before


def test_agreement_page_is_the_report_and_the_per_version_rows(ws):
    page = agreement.agreement_page(ws, "cora", "hand")
    assert page["report"] == agreement.agreement_report(ws, "cora", "hand")
    assert page["by_version"] == agreement.agreement_by_version(ws, "cora", "qa")
