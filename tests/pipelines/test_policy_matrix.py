"""The role x action matrix, written out here, and every cell checked by
calling the real service function as a user of that role.

Allowed cell: the call does not raise ``PermissionDenied`` (for the review and user services,
which this area owns, it must also succeed). Denied cell: it raises ``PermissionDenied``.
Actions whose service does not exist yet have ``SERVICE_FOR[action] = None`` and are
reported as skipped ("service not built yet"), never faked.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from datastore import PermissionDenied, WorkbenchError
from pipelines import policy
from tests.pipelines.review.helpers import add_dataset, add_users

ROLES = ("annotator", "adjudicator", "curator", "admin")
USER_OF = {"annotator": "ann", "adjudicator": "dora", "curator": "cora", "admin": "admin"}
Y, N = True, False
#: The expected matrix (docs/architecture.md section 7), one row per action:
#:                           annotator adjudicator curator admin
EXPECTED = {
    "read_datasets":         (Y, Y, Y, Y),
    "read_own_annotations":  (Y, Y, Y, Y),
    "read_all_annotations":  (N, Y, Y, Y),
    "annotate":              (Y, Y, Y, Y),
    "adjudicate":            (N, Y, N, Y),
    "manage_tasks":          (N, N, Y, Y),
    "generate":              (N, N, Y, Y),
    "train":                 (N, N, Y, Y),
    "edit_samples":          (N, N, Y, Y),
    "override_gate":         (N, N, Y, Y),
    "purge_samples":         (N, N, N, Y),
    "manage_users":          (N, N, N, Y),
    "backup":                (N, N, N, Y),
}
#: Sample each role adjudicates (distinct, so every call meets an open item).
ADJ_SAMPLE = {"annotator": 1, "adjudicator": 2, "curator": 3, "admin": 4}
OWNED = {"read_own_annotations", "read_all_annotations", "annotate", "adjudicate", "manage_tasks", "manage_users"}


def _read_datasets(ws, user, role, tmp):
    from pipelines.generate.service import list_dataset_names
    assert "qa" in list_dataset_names(ws, user=user)


def _read_own(ws, user, role, tmp):
    from pipelines.review import annotate
    assert isinstance(annotate.my_annotations(ws, user, "all-hands"), list)


def _read_all(ws, user, role, tmp):
    from pipelines.review import adjudicate
    got = adjudicate.item_answers(ws, user, "all-hands", 6)
    assert got["sample"].sample_id == 6


def _annotate(ws, user, role, tmp):
    from pipelines.review import annotate
    ack = annotate.submit(ws, user, "all-hands", 5, {"decision": "accept", "rating": 4},
                          submit_id=f"matrix-{role}")
    assert ack.written


def _adjudicate(ws, user, role, tmp):
    from pipelines.review import adjudicate
    res = adjudicate.adjudicate(ws, user, "all-hands", ADJ_SAMPLE[role], decision="accept", note="matrix")
    assert res["adjudication_id"] > 0


def _manage_tasks(ws, user, role, tmp):
    from pipelines.review import tasks
    t = tasks.open_task(ws, user, name=f"task-by-{role}", dataset="qa", pool=["ann", "bob"])
    assert t.overlap_k == 2


def _generate(ws, user, role, tmp):
    from pipelines.generate.service import list_generation_jobs
    list_generation_jobs(ws, user=user)


def _train(ws, user, role, tmp):
    from pipelines.train.runs import stop_run
    try:
        stop_run(ws, "no-such-run", user=user)
    except PermissionDenied:
        raise
    except WorkbenchError:
        pass  # allowed through the policy; the run does not exist


def _edit_samples(ws, user, role, tmp):
    from pipelines.curate.revert import plan_revert
    plan_revert(ws, "qa", 1, user=user)


def _override_gate(ws, user, role, tmp):
    from pipelines.quality.gates import override_gate
    try:
        override_gate(ws, "qa", 1, "matrix", user=user)
    except PermissionDenied:
        raise
    except WorkbenchError as e:  # allowed through the policy; this version's gate has not failed
        assert "only a failed gate can be overridden" in str(e)
    else:
        raise AssertionError("override of a gate that has not failed was accepted")


def _purge_samples(ws, user, role, tmp):
    from pipelines.curate.purge import plan_purge
    plan_purge(ws, "qa", [1], user=user)


def _manage_users(ws, user, role, tmp):
    from pipelines import auth
    u = auth.add_user(ws, user, f"made-by-{role}", "annotator")
    assert u.role == "annotator" and not u.has_password


def _backup(ws, user, role, tmp):
    from pipelines.curate.backup import backup
    backup(ws, tmp / f"backup-{role}", user=user)


SERVICE_FOR = {
    "read_datasets": _read_datasets,
    "read_own_annotations": _read_own,
    "read_all_annotations": _read_all,
    "annotate": _annotate,
    "adjudicate": _adjudicate,
    "manage_tasks": _manage_tasks,
    "generate": _generate,
    "train": _train,
    "edit_samples": _edit_samples,
    "override_gate": _override_gate,
    "purge_samples": _purge_samples,
    "manage_users": _manage_users,
    "backup": _backup,
}


def test_expected_matrix_is_the_policy():
    assert set(EXPECTED) == set(policy.ACTIONS) == set(SERVICE_FOR)
    for action, row in EXPECTED.items():
        assert tuple(policy.can(r, action) for r in ROLES) == row, action


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("matrix") / "ws"
    ws.mkdir()
    add_users(ws)
    add_dataset(ws, n=6)
    from pipelines.review import tasks
    tasks.open_task(ws, "cora", name="all-hands", dataset="qa", overlap_k=4, pool=["ann", "dora", "cora", "admin"])
    return ws


@pytest.mark.parametrize("action,role", list(itertools.product(EXPECTED, ROLES)))
def test_cell(ws, tmp_path, action, role):
    fn = SERVICE_FOR[action]
    if fn is None:
        pytest.skip(f"{action}: service not built yet")
    allowed = EXPECTED[action][ROLES.index(role)]
    user = USER_OF[role]
    if allowed:
        fn(ws, user, role, tmp_path)
    else:
        with pytest.raises(PermissionDenied) as e:
            fn(ws, user, role, tmp_path)
        assert e.value.user == user and e.value.action == action


def test_unknown_user_and_missing_user_are_refused(ws):
    from datastore import NotFound
    from pipelines.review import annotate
    with pytest.raises(NotFound, match="no user named 'mallory'"):
        annotate.my_annotations(ws, "mallory", "all-hands")
    with pytest.raises(NotFound, match="pass --user"):
        annotate.my_annotations(ws, None, "all-hands")
