"""Validation gates: a great-expectations suite per dataset, run on every new version.

**Suite.** Stored with the dataset (``quality_suites``) as JSON: ``{"expectations":
[{"type": "expect_...", "kwargs": {...}}], "domain_quotas": {domain: quota} | null}``. The
expectation entries are great-expectations 1.x expectation configurations, so any of its
column expectations can be added by hand (the Quality page edits the JSON or a form).
They run against one row per sample with these columns (:func:`gate_frame`):

``sample_id, kind, prompt, response, turns, task_type, policy_domain, language, source,
expected_behavior`` (stored fields, read through ``datastore.vocabulary``: an old spelling
such as ``extra["expected_behaviour"]`` or the domain ``S9_indiscriminate_weapons`` arrives as
``expected_behavior`` and ``S9``) and the derived ``prompt_chars``, ``response_words``
(whitespace tokens), ``empty_turns`` (turns whose content is blank), ``role_problems``
(role-order warnings of ``pipelines.formats.conversation.check_roles``: starts with the
assistant, two turns of one role in a row, a system turn in the middle, ends on a user
turn, no assistant turn).

:func:`default_suite` covers the default release checks: schema (kind), required fields (prompt and
response), non-empty turns, role order, lengths, allowed expected-behaviour labels and
policy domains (the codes of the default taxonomy, Llama Guard 3 S1-S14).

**Run.** great-expectations is imported lazily (about 4-6 s), with an ephemeral context
and a pandas data source (``gx.get_context(mode="ephemeral")``, a dataframe asset, a
whole-dataframe batch, ``ValidationDefinition.run(batch_parameters={"dataframe": df})``);
nothing is written to disk and nothing goes over the network (``GX_ANALYTICS_ENABLED=false``).
The outcome per expectation (success, unexpected count and percentage, up to 20 example
sample ids) is stored with the version (``quality_gate_results``).

**Launch rule.** :func:`check_launchable` raises :class:`GateFailed` for a version whose
gate failed (or errored) unless a curator recorded an override with a reason
(:func:`override_gate`, audit-logged). A version of a dataset without a suite has no gate.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from datastore import Store
from datastore import quality as Q
from datastore import versions as V
from datastore import vocabulary
from datastore.errors import NotFound, WorkbenchError

log = logging.getLogger("workbench.quality")

EXPECTED_BEHAVIOURS = list(vocabulary.EXPECTED_BEHAVIOURS)
FRAME_COLUMNS = ["sample_id", "kind", "prompt", "response", "turns", "task_type", "policy_domain", "language",
                 "source", "expected_behavior", "prompt_chars", "response_words", "empty_turns", "role_problems"]
MAX_EXAMPLES = 20


class GateFailed(WorkbenchError):
    """A version failed its validation gate and no curator has overridden it.

    Attributes: dataset, version (number), status (``failed``/``error``), failures (list of
    expectation summaries).
    """

    def __init__(self, dataset: str, version: int, status: str, failures: list[dict]):
        self.dataset, self.version, self.status, self.failures = dataset, version, status, failures
        what = "; ".join(_describe(f) for f in failures[:3]) or status
        super().__init__(
            f"{dataset} v{version} {'failed' if status == 'failed' else 'could not run'} its validation gate "
            f"({what}); fix the data, or a curator overrides with "
            f"'wb gate override --dataset {dataset} --version {version} --reason TEXT'")


def _describe(e: dict) -> str:
    col = e.get("kwargs", {}).get("column")
    base = e["type"] + (f"({col})" if col else "")
    if e.get("error"):
        return f"{base}: {e['error']}"
    return f"{base}: {e.get('unexpected_count', '?')} unexpected"


# ---------------------------------------------------------------- suites
def default_suite(*, domains: list[str] | None = None, max_response_words: int = 4000,
                  max_prompt_chars: int = 20000) -> dict:
    """The starting suite for a dataset (module docstring). ``domains``: allowed policy
    domains (default: the default taxonomy's codes, when available, else the shared
    vocabulary's Llama Guard 3 codes, ``datastore.vocabulary.POLICY_DOMAINS``)."""
    if domains is None:
        try:
            from pipelines.generate.taxonomy import load_taxonomy
            domains = [d.code for d in load_taxonomy().domains]
        except Exception:  # noqa: BLE001 - the generator's taxonomy is optional
            domains = list(vocabulary.POLICY_DOMAINS)

    def e(t, **kw):
        return {"type": t, "kwargs": kw}
    ex = [
        e("expect_column_values_to_be_in_set", column="kind", value_set=["instruction", "conversation"]),
        e("expect_column_values_to_not_be_null", column="prompt"),
        e("expect_column_values_to_not_be_null", column="response"),
        e("expect_column_values_to_be_between", column="empty_turns", min_value=0, max_value=0),
        e("expect_column_values_to_be_between", column="role_problems", min_value=0, max_value=0),
        e("expect_column_values_to_be_between", column="prompt_chars", min_value=1, max_value=max_prompt_chars),
        e("expect_column_values_to_be_between", column="response_words", min_value=1, max_value=max_response_words),
        e("expect_column_values_to_be_in_set", column="expected_behavior", value_set=EXPECTED_BEHAVIOURS),
    ]
    if domains:
        ex.append(e("expect_column_values_to_be_in_set", column="policy_domain", value_set=list(domains)))
    return {"expectations": ex, "domain_quotas": None}


def validate_suite(suite: dict) -> dict:
    """Check a suite's shape and that every expectation type exists in great-expectations
    and accepts its kwargs; returns the suite normalised.

    Raises:
        WorkbenchError: naming the entry and what is wrong.
    """
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise WorkbenchError('a suite is a JSON object with an "expectations" list')
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    out = []
    for i, e in enumerate(suite["expectations"]):
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or not isinstance(e.get("kwargs", {}), dict):
            raise WorkbenchError(f'suite entry {i}: needs "type" (text) and "kwargs" (object)')
        try:
            ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {})).to_domain_obj()
        except Exception as err:  # noqa: BLE001 - GX raises many kinds; the user gets one line
            raise WorkbenchError(f"suite entry {i} ({e['type']}): {str(err).splitlines()[0][:200]}") from None
        col = e.get("kwargs", {}).get("column")
        if col is not None and col not in FRAME_COLUMNS:
            raise WorkbenchError(f"suite entry {i} ({e['type']}): unknown column '{col}' "
                                 f"(columns: {', '.join(FRAME_COLUMNS)})")
        out.append({"type": e["type"], "kwargs": dict(e.get("kwargs", {}))})
    del gx
    quotas = suite.get("domain_quotas")
    if quotas is not None and (not isinstance(quotas, dict) or
                               not all(isinstance(v, (int, float)) and v >= 0 for v in quotas.values())):
        raise WorkbenchError('"domain_quotas" must map domain names to non-negative numbers')
    return {"expectations": out, "domain_quotas": quotas}


def get_suite(workspace: str | Path, dataset: str) -> dict | None:
    """The dataset's stored suite (``{"suite", "suite_hash", "updated_by", "updated_at"}``) or None."""
    with Store(workspace, create=False) as st:
        return Q.get_suite(st, V.get_dataset(st, dataset).dataset_id)


def save_suite(workspace: str | Path, dataset: str, suite: dict, *, user: str | None,
               schedule_head: bool = True) -> str:
    """Validate and store the dataset's suite (audit-logged); returns its hash. With
    ``schedule_head`` the head version's gate is scheduled again under the new suite.

    Raises:
        PermissionDenied: the user may not edit samples (curators and admins edit suites).
        WorkbenchError: the suite is malformed (see :func:`validate_suite`).
    """
    from pipelines.policy import require
    suite = validate_suite(suite)
    with Store(workspace, create=False) as st:
        who, _ = require(st, user, "edit_samples", dataset)
        ds = V.get_dataset(st, dataset)
        h = Q.put_suite(st, ds.dataset_id, dataset, suite, user=who)
        head = V.resolve(st, dataset) if ds.head else None
        if head is not None and schedule_head:
            with st.transaction() as conn:
                Q.mark_pending(conn, ds.dataset_id, head.number, h)
    if head is not None and schedule_head:
        from . import hooks
        hooks.launch(workspace, head)
    return h


# ---------------------------------------------------------------- running
def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    return gx


def gate_frame(st, v):
    """The per-sample frame the suite runs on (module docstring), indexed by ``sample_id``."""
    from pipelines.formats.conversation import check_roles
    df = Q.gate_frame(st, v)

    def roles_problems(kind, messages):
        if kind != "conversation" or not messages:
            return 0
        try:
            return len(check_roles([m.get("role") for m in json.loads(messages)]))
        except Exception:  # noqa: BLE001 - an empty or unreadable conversation is one problem
            return 1

    def empty(kind, messages, instruction, output):
        if kind == "conversation":
            try:
                return sum(1 for m in json.loads(messages or "[]")
                           if not isinstance(m.get("content"), str) or not m["content"].strip())
            except Exception:  # noqa: BLE001
                return 1
        return int(not (instruction or "").strip()) + int(output is not None and not output.strip())

    df["prompt_chars"] = df["prompt"].str.len()
    df["response_words"] = df["response"].map(lambda t: len(t.split()) if isinstance(t, str) else None)
    df["empty_turns"] = [empty(k, m, i, o) for k, m, i, o in zip(df["kind"], df["messages"], df["instruction"],
                                                                   df["output"])]
    df["role_problems"] = [roles_problems(k, m) for k, m in zip(df["kind"], df["messages"])]
    df = df[FRAME_COLUMNS].set_index("sample_id", drop=False)
    df.index.name = None
    return df


def validate_frame(df, suite: dict) -> dict:
    """Run the suite's expectations on ``df`` with great-expectations (ephemeral context,
    pandas data source). Returns ``{"success", "expectations": [{"type", "kwargs",
    "success", "unexpected_count", "unexpected_percent", "example_ids", "error"}],
    "statistics"}``."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_pandas("workbench").add_dataframe_asset("samples")
    batch = asset.add_batch_definition_whole_dataframe("version")
    gsuite = gx.ExpectationSuite(name="gate")
    for e in suite["expectations"]:
        gsuite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {})))
    gsuite = ctx.suites.add(gsuite)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="gate", data=batch, suite=gsuite))
    res = vd.run(batch_parameters={"dataframe": df},
                 result_format={"result_format": "COMPLETE", "partial_unexpected_count": MAX_EXAMPLES})
    d = res.to_json_dict()
    out = []
    for r in d["results"]:
        cfg = r["expectation_config"]
        rr = r.get("result") or {}
        exc = (r.get("exception_info") or {})
        err = exc.get("exception_message") if exc.get("raised_exception") else None
        idx = rr.get("unexpected_index_list") or []
        out.append({"type": cfg["type"], "kwargs": {k: v for k, v in cfg["kwargs"].items() if k != "batch_id"},
                    "success": bool(r["success"]), "unexpected_count": rr.get("unexpected_count"),
                    "unexpected_percent": rr.get("unexpected_percent"),
                    "example_ids": [int(i) for i in idx[:MAX_EXAMPLES] if not isinstance(i, dict)],
                    "error": err})
    return {"success": bool(d["success"]), "expectations": out, "statistics": d.get("statistics")}


def run_gate(workspace: str | Path, dataset: str, version: str | int | None = None, *, user: str | None = None,
             store_timeout_s: float = 8.0) -> dict:
    """Run the dataset's suite on a version now and store the result with the version.

    Opens the store briefly to read the version (and suite), runs great-expectations with
    the store closed, then opens it again to write the result. Returns the stored gate
    status (:func:`gate_status`).

    Raises:
        NotFound: no such dataset/version, or the dataset has no suite.
    """
    with Store(workspace, create=False, timeout_s=store_timeout_s) as st:
        v = V.resolve(st, dataset, version)
        srow = Q.get_suite(st, v.dataset_id)
        if srow is None:
            raise NotFound(f"dataset '{dataset}' has no validation suite (create one with 'wb gate init')")
        df = gate_frame(st, v)
    try:
        res = validate_frame(df, srow["suite"])
        status = "passed" if res["success"] else "failed"
        if any(e["error"] for e in res["expectations"]):
            status = "error"
    except Exception as e:  # noqa: BLE001 - stored as the gate's outcome, shown to the curator
        log.exception("gate run failed")
        res = {"success": False, "expectations": [], "error": f"{type(e).__name__}: {e}"}
        status = "error"
    res["samples"] = int(len(df))
    with Store(workspace, create=False, timeout_s=store_timeout_s) as st:
        Q.store_gate_result(st, v, status, srow["suite_hash"], res, user=user or "system")
    return gate_status(workspace, dataset, v.number)


def gate_status(workspace: str | Path, dataset: str, version: str | int | None = None) -> dict:
    """``{"status": "no-suite"|"not-run"|"pending"|"passed"|"failed"|"error", "summary",
    "override", "job", "suite_hash", "stale"}``; ``stale`` when the suite changed since the run.
    A pending gate whose background job ended without storing a result shows the job's error."""
    with Store(workspace, create=False) as st:
        v = V.resolve(st, dataset, version)
        return status_of(st, v)


def status_of(st, v) -> dict:
    """:func:`gate_status` on an open store for a resolved version."""
    srow = Q.get_suite(st, v.dataset_id)
    g = Q.gate_result(st, v.version_id)
    ov = Q.get_override(st, v.version_id)
    if g is None:
        return {"status": "no-suite" if srow is None else "not-run", "override": ov, "version": v.number}
    out = {"status": g["status"], "summary": g["summary"], "override": ov, "version": v.number,
           "suite_hash": g["suite_hash"], "finished_at": g["finished_at"],
           "stale": bool(srow and g["suite_hash"] and srow["suite_hash"] != g["suite_hash"])}
    if g["status"] == "pending" and g["job_dir"]:
        try:
            from pipelines.jobs import job_status
            js = job_status(g["job_dir"])
            out["job"] = {"dir": g["job_dir"], "state": js.get("state"), "error": js.get("error")}
        except WorkbenchError:
            out["job"] = {"dir": g["job_dir"], "state": "missing"}
    return out


def check_launchable(workspace: str | Path, dataset: str, version: str | int | None, *, user: str | None) -> None:
    """Raise :class:`GateFailed` unless the version may be launched for training.

    Launchable: the dataset has no suite; or the gate passed; or it failed/errored and a
    curator overrode it with a reason. A gate still pending (or never run) is run now,
    synchronously, so the answer is never "wait". Called by the training stage.

    Raises:
        GateFailed: failed or errored gate without an override.
        NotFound: no such dataset or version.
    """
    st_ = gate_status(workspace, dataset, version)
    if st_["status"] == "no-suite":
        return
    if st_["status"] in ("pending", "not-run") or st_.get("stale"):
        st_ = run_gate(workspace, dataset, st_["version"], user=user)
    if st_["status"] == "passed" or st_.get("override"):
        return
    failures = [e for e in (st_.get("summary") or {}).get("expectations", []) if not e.get("success")]
    if not failures and (st_.get("summary") or {}).get("error"):
        failures = [{"type": "gate", "kwargs": {}, "error": st_["summary"]["error"]}]
    raise GateFailed(dataset, st_["version"], st_["status"], failures)


def override_gate(workspace: str | Path, dataset: str, version: str | int | None, reason: str, *,
                  user: str | None) -> dict:
    """Let a failing version be launched: records who, when and why (audit log
    ``quality.gate.override``). Needs the ``override_gate`` permission (curators, admins).

    Raises:
        PermissionDenied: the user may not override gates.
        WorkbenchError: empty reason, or the version's gate has not failed.
    """
    from pipelines.policy import require
    if not reason or not reason.strip():
        raise WorkbenchError("an override needs a reason (it goes into the audit log)")
    with Store(workspace, create=False) as st:
        who, _ = require(st, user, "override_gate", dataset)
        v = V.resolve(st, dataset, version)
        g = Q.gate_result(st, v.version_id)
        if g is None or g["status"] not in ("failed", "error"):
            state = g["status"] if g else "not run"
            raise WorkbenchError(f"{dataset} v{v.number}: gate is {state}; only a failed gate can be overridden")
        Q.put_override(st, v, reason.strip(), user=who)
    return gate_status(workspace, dataset, v.number)


def user_role(workspace: str | Path, user: str | None) -> str | None:
    """The user's role (for the UI to decide what to show), or None for an unknown user."""
    from datastore import users as U
    try:
        with Store(workspace, create=False) as st:
            return U.get_role(st, user)[1]
    except WorkbenchError:
        return None
