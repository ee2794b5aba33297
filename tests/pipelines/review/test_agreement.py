"""Issue 3 item 4: agreement figures against values worked out by hand on a small fixture.

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
