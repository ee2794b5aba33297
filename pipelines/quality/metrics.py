"""Quality metrics of a dataset version, overall and per slice.

What is measured, and where:

- **In DuckDB, over every sample of the version** (one scan with grouping sets,
  ``datastore.quality.version_aggregates``): sample count; response length in words
  (runs of non-space characters; mean, median, 10th/90th percentile, histogram); turns per
  sample (user, assistant and tool turns; an Alpaca record is 2 plus 2 per history pair);
  citation rate (:mod:`pipelines.quality.citation`); refusal rate and refusal accuracy
  against ``extra["expected_behavior"]`` (:mod:`pipelines.quality.refusal`); exact
  duplicate rate (1 - distinct (prompt, response) pairs / samples); language mix and
  policy-domain counts. The same figures per slice: task type, policy domain, source,
  language.
- **On a fixed sample** of at most ``sample_size`` prompts/responses (chosen by a hash of
  the content, so a version always gives the same sample): response length in tokens of the
  embedded tokenizer (SmolLM2), verb-noun diversity and distinct-n
  (:mod:`pipelines.quality.diversity`), near and semantic duplicate rates
  (``pipelines.filters.dedup.duplicate_rates`` when that module exists).
- **Live**: gate status (:mod:`pipelines.quality.gates`), annotator agreement and
  throughput (``pipelines.review.agreement`` when the version has reviews), contamination
  against registered evaluation sets (:mod:`pipelines.quality.contamination`).

The *response* of a sample is its ``output`` (instruction samples) or its last assistant
turn (conversations); the *prompt* is the instruction or the first user turn.

A version is immutable, so its scanned and sampled metrics are computed once and kept in
the metric cache (``quality_metric_cache``); the dashboard then renders from the cache.
Computing them for a 1M-sample version takes seconds of DuckDB time (see docs/quality.md).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from datastore import Store
from datastore import quality as Q
from datastore import versions as V

from . import citation, refusal

log = logging.getLogger("workbench.quality")

#: Response-length histogram bin edges in words (bin i holds edges[i] <= words < edges[i+1]).
WORD_EDGES: list[int] = [0, 1, 10, 25, 50, 100, 200, 400, 800, 1600]
DEFAULT_SAMPLE_SIZE = 2000
SNAPSHOT = "snapshot-v2"  # bump when the snapshot's shape changes: older cached ones are ignored
SLICES = Q.SLICE_COLUMNS


def word_bin_label(i: int) -> str:
    lo = WORD_EDGES[i]
    if i + 1 >= len(WORD_EDGES):
        return f"{lo}+"
    hi = WORD_EDGES[i + 1] - 1
    return str(lo) if hi == lo else f"{lo}-{hi}"


def _rate(a, b) -> float | None:
    return round(a / b, 6) if b else None


def _slice_row(r: dict) -> dict:
    n, resp = r["samples"], r["with_response"]
    refused = r["full_refusal"] + r["partial_refusal"]
    return {"value": r["value"], "samples": n,
            "words_mean": round(r["words_mean"], 2) if r["words_mean"] is not None else None,
            "words_median": r["words_median"],
            "turns_mean": round(r["turns_mean"], 3) if r["turns_mean"] is not None else None,
            "citation_rate": _rate(r["cited"], resp), "refusal_rate": _rate(refused, resp),
            "exact_duplicate_rate": _rate(n - r["distinct_texts"], n),
            "should_refuse_n": r["should_refuse_n"], "should_refuse_rate": _rate(r["should_refuse_ok"], r["should_refuse_n"]),
            "should_answer_n": r["should_answer_n"], "should_answer_rate": _rate(r["should_answer_ok"], r["should_answer_n"])}


def refusal_accuracy(matrix: dict[tuple, int]) -> dict:
    """The two refusal rates (refusal accuracy on refuse prompts, over-refusal on comply prompts) from counts ``{(expected, refusal_class): n}``.

    ``should_refuse``: of the samples labelled ``refuse``, the share whose response is a
    refusal (full or partial). ``should_answer``: of the samples labelled ``comply`` or
    ``safe-complete``, the share answered (``comply``: no refusal at all; ``safe-complete``:
    anything but a full refusal). Each comes with its counts and a per-label breakdown.
    """
    out = {}
    groups = {"should_refuse": ("refuse",), "should_answer": ("comply", "safe-complete")}
    for key, labels in groups.items():
        n = ok = 0
        per = {}
        for lab in labels:
            ln = lok = 0
            for (exp, cls), c in matrix.items():
                if exp == lab and cls is not None:
                    ln += c
                    lok += c if refusal.correct_for(exp, cls) else 0
            per[lab] = {"n": ln, "correct": lok, "rate": _rate(lok, ln)}
            n, ok = n + ln, ok + lok
        out[key] = {"n": n, "correct": ok, "rate": _rate(ok, n), "by_label": per}
    out["matrix"] = [{"expected": e, "refusal_class": c, "samples": k} for (e, c), k in sorted(
        matrix.items(), key=lambda x: (str(x[0][0]), str(x[0][1])))]
    return out


def domain_targets(suite: dict | None) -> tuple[dict[str, float], str]:
    """Target share per policy domain: the suite's ``domain_quotas`` (``{domain: quota}``)
    when set, else the default policy taxonomy's quotas (Llama Guard 3 S1-S14 in
    ``pipelines.generate.taxonomy``), normalised to shares. Returns ``(targets, source)``."""
    quotas = (suite or {}).get("domain_quotas")
    src = "suite"
    if not quotas:
        try:
            from pipelines.generate.taxonomy import load_taxonomy
            tax = load_taxonomy()
            quotas = {d.code: d.quota for d in tax.domains}
            src = f"taxonomy {tax.name}"
        except Exception as e:  # noqa: BLE001 - the generator's taxonomy is optional here
            log.info("no policy taxonomy for domain targets: %s", e)
            return {}, "none"
    total = sum(float(q) for q in quotas.values()) or 1.0
    return {str(k): float(q) / total for k, q in quotas.items()}, src


def domain_coverage(counts: dict, targets: dict[str, float], total: int) -> dict:
    """Coverage of the policy domains against target shares.

    A sample counts for a target domain when its ``policy_domain`` equals the domain code,
    or starts with it followed by a non-alphanumeric character (``S1``, ``S1: Violent
    Crimes``, ``s1-violent``), case-insensitively. ``empty`` lists target domains without a
    sample (flagged on the dashboard); ``under`` those below half their target share.
    """
    labelled = sum(c for d, c in counts.items() if d is not None)
    rows, used = [], set()
    for code, share in targets.items():
        c = 0
        for d, k in counts.items():
            if d is None:
                continue
            dl, cl = d.lower(), code.lower()
            if dl == cl or (dl.startswith(cl) and len(dl) > len(cl) and not dl[len(cl)].isalnum()):
                c += k
                used.add(d)
        actual = c / labelled if labelled else 0.0
        rows.append({"domain": code, "samples": c, "share": round(actual, 6), "target_share": round(share, 6),
                     "empty": c == 0, "under": labelled > 0 and actual < share / 2})
    other = {d: k for d, k in counts.items() if d is not None and d not in used}
    return {"targets": rows, "labelled_samples": labelled, "unlabelled_samples": counts.get(None, 0),
            "empty": [r["domain"] for r in rows if r["empty"]] if labelled else [],
            "under": [r["domain"] for r in rows if r["under"]], "other_domains": other, "total": total}


def _scan(frame, v, suite: dict | None, method: str) -> dict:
    norm, rr, pr = refusal.sql_patterns(method)
    rows = Q.version_aggregates(None, v, citation_re=citation.CITATION_RE, normalize=norm, refusal_re=rr,
                                partial_re=pr, word_edges=WORD_EDGES, frame=frame)
    allr = next(r for r in rows if r["set"] == "all") if rows else None
    n = allr["samples"] if allr else 0
    resp = allr["with_response"] if allr else 0
    out: dict = {"samples": n, "with_response": resp}
    if not allr:
        return out
    out["length_words"] = {
        "mean": round(allr["words_mean"], 3) if allr["words_mean"] is not None else None,
        "median": allr["words_median"], "p10": allr["words_p10"], "p90": allr["words_p90"],
        "histogram": [{"bin": int(r["value"]), "label": word_bin_label(int(r["value"])), "samples": r["samples"]}
                      for r in sorted((r for r in rows if r["set"] == "words_bin" and r["value"] is not None),
                                      key=lambda r: r["value"])]}
    out["turns"] = {"mean": round(allr["turns_mean"], 3) if allr["turns_mean"] is not None else None,
                    "median": allr["turns_median"],
                    "histogram": [{"turns": int(r["value"]), "samples": r["samples"]}
                                  for r in sorted((r for r in rows if r["set"] == "turns" and r["value"] is not None),
                                                  key=lambda r: r["value"])]}
    out["citation"] = {"cited": allr["cited"], "responses": resp, "rate": _rate(allr["cited"], resp)}
    refused = allr["full_refusal"] + allr["partial_refusal"]
    matrix = {(r["value"], r["value2"]): r["samples"] for r in rows if r["set"] == "expected"}
    out["refusal"] = {"method": method, "full_refusal": allr["full_refusal"], "partial_refusal": allr["partial_refusal"],
                      "rate": _rate(refused, resp), **refusal_accuracy(matrix)}
    out["duplicates"] = {"exact": _rate(n - allr["distinct_texts"], n), "exact_definition":
                         "1 - distinct (prompt, response) pairs / samples, over the whole version"}
    out["slices"] = {c: sorted((_slice_row(r) for r in rows if r["set"] == c),
                               key=lambda x: (-x["samples"], str(x["value"]))) for c in SLICES}
    out["language_mix"] = {str(r["value"]) if r["value"] is not None else "(unknown)": r["samples"]
                           for r in out["slices"]["language"]}
    counts = {r["value"]: r["samples"] for r in out["slices"]["policy_domain"]}
    targets, src = domain_targets(suite)
    cov = domain_coverage(counts, targets, n)
    cov["targets_source"] = src
    out["domain_coverage"] = cov
    return out


def _sampled(prompts: list[str], responses: list[str], sample_size: int) -> dict:
    """Metrics on the fixed content sample: tokens, diversity, near/semantic duplicates."""
    from . import diversity
    out: dict = {"sample_size": sample_size, "prompts_sampled": len(prompts), "responses_sampled": len(responses)}
    out["length_tokens"] = token_lengths(responses)
    out["diversity"] = diversity.diversity(prompts, responses)
    out["duplicates_sampled"] = duplicate_rates(prompts)
    return out


def token_lengths(texts: list[str]) -> dict:
    """Response length in tokens of the embedded model's tokenizer (no special tokens):
    ``{"tokenizer", "n", "mean", "median", "p90", "histogram"}``; ``{"error"}`` when the
    embedded model is not available."""
    if not texts:
        return {"n": 0}
    try:
        from pipelines.models import load_tokenizer
        tok = load_tokenizer()
    except Exception as e:  # noqa: BLE001 - an absent model must not hide the other metrics
        return {"n": 0, "error": f"embedded tokenizer unavailable: {e}"}
    import numpy as np
    lens = np.array([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]])
    edges = [0, 1, 16, 32, 64, 128, 256, 512, 1024, 2048]
    hist = np.histogram(lens, bins=edges + [max(int(lens.max()) + 1, edges[-1] + 1)])[0]
    return {"tokenizer": getattr(tok, "name_or_path", "embedded").split("/")[-1], "n": int(len(lens)),
            "mean": round(float(lens.mean()), 3), "median": float(np.median(lens)),
            "p90": float(np.percentile(lens, 90)),
            "histogram": [{"label": (f"{edges[i]}+" if i + 1 == len(edges) else f"{edges[i]}-{edges[i + 1] - 1}"),
                           "samples": int(c)} for i, c in enumerate(hist)]}


def duplicate_rates(texts: list[str]) -> dict:
    """Near and semantic duplicate rates from the dedup stage
    (``pipelines.filters.dedup.duplicate_rates(texts) -> {exact, near, semantic}``), or a
    note that the stage is not available."""
    try:
        from pipelines.filters.dedup import duplicate_rates as dr
    except ImportError as e:
        return {"exact": None, "near": None, "semantic": None,
                "note": f"pipelines.filters.dedup.duplicate_rates not available ({e})"}
    try:
        r = dr(texts)
        return {k: (float(r[k]) if r.get(k) is not None else None) for k in ("exact", "near", "semantic")} | \
            {"n": len(texts), "method": "pipelines.filters.dedup.duplicate_rates"}
    except Exception as e:  # noqa: BLE001
        log.exception("duplicate_rates failed")
        return {"exact": None, "near": None, "semantic": None, "note": f"duplicate_rates failed: {e}"}


def agreement(workspace, dataset: str, number: int, *, user: str | None) -> dict:
    """Inter-annotator agreement and throughput for the version from the review stage,
    or ``{"status": "no reviews"}``."""
    try:
        from pipelines.review import agreement as AG
    except ImportError:
        return {"status": "no reviews", "note": "review stage not installed"}
    try:
        figs = [f for f in AG.agreement_by_version(workspace, user, dataset) if f["version"] == number]
    except Exception as e:  # noqa: BLE001 - reviews are optional for the dashboard
        return {"status": "no reviews", "note": str(e)}
    if not figs:
        return {"status": "no reviews"}
    tasks = sorted({t for f in figs for t in f["tasks"]})
    annotators = []
    for t in tasks:
        try:
            rep = AG.agreement_report(workspace, user, t)
            annotators += [{"task": t, **{k: a.get(k) for k in ("annotator", "annotations", "throughput_per_hour",
                                                                 "median_time_s")}} for a in rep["annotators"]]
        except Exception as e:  # noqa: BLE001
            log.info("agreement report for %s: %s", t, e)
    return {"status": "reviewed", "tasks": tasks, "questions": figs, "annotators": annotators}


def compute(workspace: str | Path, dataset: str, version: str | int | None = None, *,
            user: str | None = None, refresh: bool = False, sampled: bool | str = True,
            sample_size: int = DEFAULT_SAMPLE_SIZE, refusal_method: str = refusal.DEFAULT_METHOD,
            live: bool = True, check_permission: bool = True) -> dict:
    """All metrics of one version (see the module docstring), as a JSON-ready dict:
    ``{"dataset", "version", "version_id", "content_hash", "samples", "length_words",
    "turns", "citation", "refusal", "duplicates", "slices", "language_mix",
    "domain_coverage", "sampled": {...}, "gate", "agreement", "contamination", "cached"}``.

    Scanned and sampled parts come from the metric cache when a snapshot of the version has
    at least what was asked for (``sampled=True`` needs the sampled part; ``sampled=False``
    takes any); ``sampled="cached"`` takes any snapshot and, when there is none, computes
    without the sampled part (the page: it never waits for the models). ``refresh``
    recomputes. ``live`` adds gate, agreement and contamination. The store is held
    only to read (the version's base rows as Arrow, the sampled texts) and to write the
    snapshot; the scan runs on the Arrow table in an in-memory DuckDB and the models load
    with the store closed, so commits by others are not held up. ``check_permission=False``
    is for the background gate job only (it acts for the commit's author, who may not be a
    workspace user).

    Raises:
        NotFound: no such dataset or version. PermissionDenied: ``user`` may not read datasets.
    """
    from pipelines.policy import require
    if sampled == "cached":
        sampled, accept_any = False, True
    else:
        accept_any = not sampled
    params = json.dumps({"m": refusal_method, "s": sample_size if sampled else 0, "w": WORD_EDGES})
    # an existing snapshot serves when it has at least what was asked for
    accept = [params] + [x for x in _param_variants(refusal_method)
                         if x != params and (accept_any or json.loads(x)["s"] > 0)]
    with Store(workspace, create=False) as st:
        if check_permission:
            require(st, user, "read_datasets")
        v = V.resolve(st, dataset, version)
        snap = None
        if not refresh:  # the requested variant, else any snapshot of this version (e.g. the gate job's)
            for p in accept:
                snap = Q.cache_get(st, v.version_id, SNAPSHOT, p)
                if snap is not None:
                    break
        suite_row = Q.get_suite(st, v.dataset_id)
        if live:  # what the live parts need, read on this one connection
            from . import gates
            gate = gates.status_of(st, v)
            n_sets = len(Q.list_eval_sets(st, v.dataset_id, v.number))
            n_tasks = Q.review_task_count(st, v.dataset_id, v.number)
        if snap is None:  # read what the computation needs, then let go of the store
            frame = Q.version_frame(st, v)
            prompts = [t for _, t in Q.sample_texts(st, v, limit=sample_size, field="prompt")] if sampled else []
            responses = [t for _, t in Q.sample_texts(st, v, limit=sample_size, field="response")] if sampled else []
    cached = snap is not None
    if snap is None:
        snap = _scan(frame, v, suite_row["suite"] if suite_row else None, refusal_method)
        del frame
        if sampled and snap["samples"]:
            snap["sampled"] = _sampled(prompts, responses, sample_size)
        with Store(workspace) as st:
            Q.cache_put(st, v.version_id, SNAPSHOT, params, snap)
    out = {"dataset": v.dataset, "version": v.number, "version_id": v.version_id,
           "content_hash": v.content_hash, **snap, "cached": cached}
    if live:
        from . import contamination
        out["gate"] = gate
        out["agreement"] = agreement(workspace, dataset, v.number, user=user) if n_tasks else {"status": "no reviews"}
        out["contamination"] = (contamination.summary(workspace, dataset, v.number, user=user) if n_sets
                                else {"status": "no evaluation sets"})
    return out


def trend(workspace: str | Path, dataset: str, *, user: str | None = None, compute_missing: bool = False,
          limit: int = 20) -> list[dict]:
    """Headline metrics of the last ``limit`` versions, oldest first: ``[{"version",
    "samples", "words_mean", "citation_rate", "refusal_rate", "exact_duplicate_rate",
    "should_refuse", "should_answer", "gate"}]``. Versions without cached metrics are
    computed when ``compute_missing`` (scanned part only), else left with ``None`` values."""
    from pipelines.policy import require
    with Store(workspace, create=False) as st:
        require(st, user, "read_datasets")
        vs = list(reversed(V.log(st, dataset)[:limit]))
        ds = V.get_dataset(st, dataset)
        gates_ = {g["number"]: g for g in Q.gate_history(st, ds.dataset_id)}
        snaps = {}
        for v in vs:
            for params in _param_variants():
                s = Q.cache_get(st, v.version_id, SNAPSHOT, params)
                if s:
                    snaps[v.number] = s
                    break
    out = []
    for v in vs:
        s = snaps.get(v.number)
        if s is None and compute_missing:
            s = compute(workspace, dataset, v.number, user=user, sampled=False, live=False)
        g = gates_.get(v.number, {})
        row = {"version": v.number, "samples": v.n_samples, "gate": g.get("status"), "overridden": g.get("overridden")}
        if s and s.get("samples"):
            row.update(words_mean=s["length_words"]["mean"], citation_rate=s["citation"]["rate"],
                       refusal_rate=s["refusal"]["rate"], exact_duplicate_rate=s["duplicates"]["exact"],
                       should_refuse=s["refusal"]["should_refuse"]["rate"],
                       should_answer=s["refusal"]["should_answer"]["rate"])
        out.append(row)
    return out


def _param_variants(method: str = refusal.DEFAULT_METHOD) -> list[str]:
    return [json.dumps({"m": method, "s": s, "w": WORD_EDGES}) for s in (DEFAULT_SAMPLE_SIZE, 0)]


def samples_behind(workspace: str | Path, dataset: str, version: str | int | None, facet: str, value, *,
                   refusal_class: str | None = None, user: str | None = None, limit: int = 50,
                   refusal_method: str = refusal.DEFAULT_METHOD):
    """The samples behind one bar: those of the version whose ``facet`` (one of
    ``datastore.quality.FACETS``) equals ``value``, first ``limit`` by id, as
    ``datastore.Sample`` objects.

    Raises:
        WorkbenchError: unknown facet.
    """
    from datastore.errors import WorkbenchError
    from pipelines.policy import require
    if facet not in Q.FACETS:
        raise WorkbenchError(f"unknown facet '{facet}' (known: {', '.join(Q.FACETS)})")
    norm, rr, pr = refusal.sql_patterns(refusal_method)
    with Store(workspace, create=False) as st:
        require(st, user, "read_datasets")
        v = V.resolve(st, dataset, version)
        ids = Q.facet_sample_ids(st, v, facet, value, citation_re=citation.CITATION_RE, normalize=norm,
                                 refusal_re=rr, partial_re=pr, word_edges=WORD_EDGES,
                                 refusal_class=refusal_class, limit=limit)
        return Q.samples_by_ids(st, v, ids)
