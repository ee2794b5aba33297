"""Review at scale, through the service layer on a bulk-loaded fixture:

- fixture: ``BENCH_REVIEW_ROWS`` samples (default 1,000,000) in one dataset, a task with
  k = 2 over 20 annotators (opened with ``open_task``: 2M assignments), and every assignment
  but the last 1,000 per annotator answered (bulk-loaded: about 2M annotations). Cached in
  ``.bench/review_<rows>/`` and reused (each run consumes a few hundred pending items).
- next item: ``annotate.next_item`` for rotating annotators, p95 over ``BENCH_REVIEW_CALLS``
  calls (default 200); target < 150 ms.
- submit: ``annotate.submit`` of that item, p95; target < 150 ms.
- agreement: what the Agreement page computes, ``agreement.agreement_page``: the task's report
  (all nine measured questions) and the per-version rows of its dataset, median of 3; < 3 s.
- export: ``export.export_annotations`` of 100K samples with all their annotations to
  Parquet, median of 3; target < 10 s.
No peer runs here: the targets are the issue's absolute bounds (peer column "bound").
Timings on a shared 2-core machine are noisy; percentiles and medians are reported.
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

from .data import BENCH_DIR

N_ANNOTATORS = 20
PENDING_PER_ANNOTATOR = 1000
#: bump when ``datastore.review_fixture.bulk_annotate`` changes; a cached fixture of another version is rebuilt
FIXTURE_VERSION = "3: every default question answered, codes stored"


def _build(ws: Path, rows: int, console) -> None:
    import hashlib

    import pyarrow as pa

    from datastore import Store
    from datastore import annotations as A
    from datastore import review_fixture as F
    from datastore import samples as S
    from datastore import versions as V
    from pipelines import auth
    from pipelines.review import tasks
    from pipelines.review.agreement import measured_questions

    t0 = time.perf_counter()
    auth.add_user(ws, None, "admin", "admin")
    auth.add_user(ws, "admin", "cur", "curator")
    names = [f"ann{i:02d}" for i in range(N_ANNOTATORS)]
    for n in names:
        auth.add_user(ws, "admin", n, "annotator")
    instr = [f"Explain topic number {i} in two sentences." for i in range(rows)]
    out = [f"Topic {i} is explained here in two short sentences. That is all." for i in range(rows)]
    hashes = [hashlib.sha256(S.dumps({"kind": "instruction", "instruction": a, "input": "", "output": b})
                             .encode()).hexdigest() for a, b in zip(instr, out)]
    cols = {f.name: pa.nulls(rows, f.type) for f in S.ARROW_SCHEMA}
    cols.update(kind=pa.array(["instruction"] * rows), instruction=pa.array(instr), input=pa.array([""] * rows),
                output=pa.array(out), row_hash=pa.array(hashes))
    table = pa.table(cols, schema=S.ARROW_SCHEMA)
    with Store(ws) as st:
        V.commit(st, "big", author="admin", message=f"bench {rows}", add=table, create=True)
    console.print(f"  fixture: {rows:,} samples committed ({time.perf_counter() - t0:.0f} s)")
    tasks.open_task(ws, "cur", name="bench", dataset="big", overlap_k=2, pool=names)
    console.print(f"  fixture: task opened, {2 * rows:,} assignments ({time.perf_counter() - t0:.0f} s)")
    measured = measured_questions(tasks.get_task(ws, "cur", "bench").questions)
    with Store(ws) as st:
        with st.transaction():
            n = F.bulk_annotate(st.conn, 1, pending_per_annotator=PENDING_PER_ANNOTATOR)
            # what a submit through the service layer stores with each annotation
            A.fill_codes(st.conn, 1, measured)
        st.conn.execute("CHECKPOINT")
    console.print(f"  fixture: {n:,} annotations bulk-loaded ({time.perf_counter() - t0:.0f} s)")


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def run(console) -> list[dict]:
    from pipelines.review import agreement, annotate, export

    rows = int(os.environ.get("BENCH_REVIEW_ROWS", "1000000"))
    calls = int(os.environ.get("BENCH_REVIEW_CALLS", "200"))
    ws = BENCH_DIR / f"review_{rows}"
    if not (ws / ".ready").exists() or (ws / ".ready").read_text() != FIXTURE_VERSION:
        shutil.rmtree(ws, ignore_errors=True)
        ws.mkdir(parents=True)
        _build(ws, rows, console)
        (ws / ".ready").write_text(FIXTURE_VERSION)
    names = [f"ann{i:02d}" for i in range(N_ANNOTATORS)]
    nxt, sub = [], []
    for i in range(calls):
        who = names[i % N_ANNOTATORS]
        t = time.perf_counter()
        it = annotate.next_item(ws, who, "bench")
        nxt.append(time.perf_counter() - t)
        if it is None:
            break
        t = time.perf_counter()
        annotate.submit(ws, who, "bench", it.sample.sample_id, {"decision": "accept", "rating": 4},
                        submit_id=it.submit_id, time_spent_ms=3000, row_hash=it.sample.row_hash)
        sub.append(time.perf_counter() - t)
    agr = []
    for _ in range(3):  # what the Agreement page computes: the task's report and the per-version table
        t = time.perf_counter()
        rep = agreement.agreement_page(ws, "cur", "bench")["report"]
        agr.append(time.perf_counter() - t)
    dec = next(q for q in rep["questions"] if q["question"] == "decision")
    exp = []
    out = BENCH_DIR / "review_export.parquet"
    for _ in range(3):
        t = time.perf_counter()
        res = export.export_annotations(ws, "cur", "bench", out, limit=100_000)
        exp.append(time.perf_counter() - t)
    out.unlink(missing_ok=True)
    console.print(f"  review: decision alpha {dec['krippendorff_alpha']:.3f} over {dec['alpha_items']:,} items; "
                  f"export {res['items']:,} items / {res['annotations']:,} annotations")

    def row(measure, ours, target):
        return {"measure": measure, "ours": round(ours, 4), "peer": "bound", "ratio": round(ours / target, 3),
                "target": target, "met": ours < target}
    return [row(f"review next item p95 s ({len(nxt)} calls, {rows:,} samples)", _p95(nxt), 0.150),
            row(f"review submit p95 s ({len(sub)} calls)", _p95(sub) if sub else float("nan"), 0.150),
            row(f"review agreement page s (report + per version, median of 3, {dec['alpha_items']:,} items)", statistics.median(agr), 3.0),
            row("review export 100K samples with annotations s (median of 3)", statistics.median(exp), 10.0)]
