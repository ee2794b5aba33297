"""Quality dashboard on a 1M-sample version (target: renders in under 2 s, median).

The 1M-sample workspace is imported once from ``.bench/alpaca_1000000.jsonl`` with
``pipelines.formats.import_file`` and cached in ``.bench/quality_1m/ws`` (``BENCH_ROWS``
scales it down; the file is built by ``benchmarks.data.alpaca_jsonl`` when missing).

Measures (medians of ``BENCH_REPEATS``, default 3, on a shared 2-core machine: noisy):
- ``dashboard``: what the Quality page computes per render once the version's snapshot
  exists: ``metrics.compute`` (snapshot read + live gate, agreement, contamination), the
  trend across versions and every plotly figure. Target: < 2 s.
- ``snapshot (cold)``: scanning the 1M samples in DuckDB for the snapshot (one run; it is
  computed once per version, in the background gate job or on first view). No target.
- ``samples behind a bar``: the first 20 samples of the 10-24-word bin (keyset windows).
  No target; reported.
There is no peer tool for this measure (ratio empty).
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from .data import BENCH_DIR, alpaca_jsonl, shared_available


def _workspace(n: int) -> Path:
    ws = BENCH_DIR / ("quality_1m" if n == 1_000_000 else f"quality_{n}") / "ws"
    if (ws / "workbench.duckdb").exists():
        return ws
    src = BENCH_DIR / f"alpaca_{n}.jsonl"
    if not src.exists():
        src = alpaca_jsonl(n)
    from pipelines.formats import import_file
    import_file(ws, src, "alpaca1m", user="bench")
    return ws


def run(console) -> list[dict]:
    n = int(os.environ.get("BENCH_ROWS", 1_000_000))
    repeats = int(os.environ.get("BENCH_REPEATS", 3))
    if not (BENCH_DIR / f"alpaca_{n}.jsonl").exists() and not shared_available():
        console.print("[yellow]bench_quality: no .bench data and no ../shared/data; skipped[/]")
        return []
    os.environ.setdefault("WB_QUALITY_GATE", "off")
    from pipelines.quality import charts, metrics
    ws = _workspace(n)
    t = time.perf_counter()
    metrics.compute(ws, "alpaca1m", refresh=True, sampled=False, live=False)
    cold = time.perf_counter() - t
    metrics.compute(ws, "alpaca1m", live=False)  # sampled parts too, as the gate job leaves them

    def dashboard():
        m = metrics.compute(ws, "alpaca1m", sampled="cached")  # as the page asks
        tr = metrics.trend(ws, "alpaca1m")
        figs = charts.figures(m, tr)
        assert m["cached"] and figs
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        dashboard()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    facet = []
    for _ in range(repeats):
        t = time.perf_counter()
        metrics.samples_behind(ws, "alpaca1m", None, "words_bin", 2, limit=20)
        facet.append(time.perf_counter() - t)
    console.print(f"quality dashboard at {n:,} samples: runs {[round(x, 3) for x in times]} s; "
                  f"cold snapshot {cold:.1f} s; samples behind a bar {[round(x, 3) for x in facet]} s")
    return [
        {"measure": f"quality dashboard render, {n:,} samples (s, median)", "ours": round(med, 3), "peer": None,
         "ratio": None, "target": "< 2 s", "met": med < 2.0},
        {"measure": f"quality snapshot, cold scan of {n:,} samples (s, 1 run)", "ours": round(cold, 2), "peer": None,
         "ratio": None, "target": "once per version, background", "met": True},
        {"measure": "quality: 20 samples behind a bar (s, median)", "ours": round(statistics.median(facet), 3),
         "peer": None, "ratio": None, "target": "-", "met": True},
    ]
