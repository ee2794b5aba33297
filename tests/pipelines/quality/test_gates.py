"""Validation gates: the default suite with great-expectations, launch rule, override with
reason (policy + audit log), the after-commit hook (pending, then a stored result)."""
from __future__ import annotations

import time

import pytest

from datastore import PermissionDenied, Sample, Store, audit
from datastore import users as U
from datastore import versions as V
from datastore.errors import WorkbenchError
from pipelines.quality import gates as G


def _good(i):
    return Sample(kind="instruction", instruction=f"Write a haiku about autumn number {i}.",
                  output=f"Leaves fall slowly, {i} times.").to_row()


def test_default_suite_passes_clean_data_and_fails_bad(tmp_workspace, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="good", add=[_good(i) for i in range(5)], create=True)
    G.save_suite(tmp_workspace, "d", G.default_suite(), user=None)
    assert G.gate_status(tmp_workspace, "d")["status"] == "pending"  # scheduled; jobs are off
    assert G.run_gate(tmp_workspace, "d")["status"] == "passed"
    G.check_launchable(tmp_workspace, "d", None, user=None)
    bad = [Sample(kind="conversation", messages=[{"role": "assistant", "content": "Hi"},
                                                 {"role": "user", "content": "  "}]).to_row(),
           Sample(kind="instruction", instruction="Label this.", output="ok",
                  policy_domain="S99", extra={"expected_behavior": "maybe"}).to_row()]
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="bad", add=bad)
    g = G.run_gate(tmp_workspace, "d")
    assert g["status"] == "failed"
    failed = {(e["type"], e["kwargs"].get("column")): e for e in g["summary"]["expectations"] if not e["success"]}
    assert set(failed) == {("expect_column_values_to_be_between", "empty_turns"),
                           ("expect_column_values_to_be_between", "role_problems"),
                           ("expect_column_values_to_be_in_set", "expected_behavior"),
                           ("expect_column_values_to_be_in_set", "policy_domain")}
    assert failed[("expect_column_values_to_be_in_set", "policy_domain")]["example_ids"] == [7]
    assert failed[("expect_column_values_to_be_between", "role_problems")]["example_ids"] == [6]
    with pytest.raises(G.GateFailed, match="failed its validation gate"):
        G.check_launchable(tmp_workspace, "d", 2, user=None)
    G.check_launchable(tmp_workspace, "d", 1, user=None)  # v1 still passed


def test_override_needs_permission_and_reason_and_is_audited(tmp_workspace, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="bad", create=True, add=[
            Sample(kind="instruction", instruction="Do it.", output=None).to_row()])
    G.save_suite(tmp_workspace, "d", G.default_suite(domains=[]), user=None)
    assert G.run_gate(tmp_workspace, "d")["status"] == "failed"
    with pytest.raises(WorkbenchError, match="needs a reason"):
        G.override_gate(tmp_workspace, "d", 1, "  ", user=None)
    g = G.override_gate(tmp_workspace, "d", 1, "prompt-only samples are intended here", user=None)
    assert g["override"]["reason"] == "prompt-only samples are intended here"
    G.check_launchable(tmp_workspace, "d", 1, user=None)
    with Store(tmp_workspace) as st:
        e = audit.entries(st, action="quality.gate.override")
    assert e and e[0]["details"]["reason"] == "prompt-only samples are intended here"


def test_annotator_may_not_override(tmp_workspace, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="bad", create=True, add=[
            Sample(kind="instruction", instruction="Do it.", output=None).to_row()])
        U.insert(st, "ann", "annotator", None, actor="test")
        U.insert(st, "cur", "curator", None, actor="test")
    G.save_suite(tmp_workspace, "d", G.default_suite(domains=[]), user="cur")
    G.run_gate(tmp_workspace, "d", user="cur")
    with pytest.raises(PermissionDenied):
        G.override_gate(tmp_workspace, "d", 1, "because", user="ann")
    with pytest.raises(PermissionDenied):
        G.save_suite(tmp_workspace, "d", G.default_suite(), user="ann")


def test_bad_suite_is_rejected_with_the_entry_named(tmp_workspace, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="v", add=[_good(1)], create=True)
    with pytest.raises(WorkbenchError, match="entry 0"):
        G.save_suite(tmp_workspace, "d", {"expectations": [{"type": "expect_nothing_real", "kwargs": {}}]}, user=None)
    with pytest.raises(WorkbenchError, match="unknown column 'colour'"):
        G.save_suite(tmp_workspace, "d", {"expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "colour"}}]}, user=None)


@pytest.mark.slow  # a child process imports great-expectations (about 20 s here)
def test_after_commit_hook_runs_the_gate_in_the_background(tmp_workspace, monkeypatch):
    monkeypatch.setenv("WB_QUALITY_GATE", "job")
    monkeypatch.setenv("WB_QUALITY_SNAPSHOT", "off")
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="v1", add=[_good(1)], create=True)
        assert st.conn.execute("SELECT count(*) FROM quality_gate_results").fetchone()[0] == 0  # no suite: no gate
    monkeypatch.setenv("WB_QUALITY_GATE", "off")
    G.save_suite(tmp_workspace, "d", G.default_suite(), user=None)
    monkeypatch.setenv("WB_QUALITY_GATE", "job")
    t = time.perf_counter()
    with Store(tmp_workspace) as st:
        v2 = V.commit(st, "d", author="a", message="v2", add=[_good(2)])
    commit_s = time.perf_counter() - t
    g = G.gate_status(tmp_workspace, "d", 2)
    assert g["status"] == "pending" and g["job"]["dir"]
    assert commit_s < 5  # the gate itself (great-expectations import alone: ~5 s) is not in the commit
    from pipelines.jobs import wait_job
    st_ = wait_job(g["job"]["dir"], timeout_s=240)
    assert st_["state"] == "succeeded", st_
    assert G.gate_status(tmp_workspace, "d", v2.number)["status"] == "passed"
