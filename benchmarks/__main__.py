"""``make bench``: one table of timings, each a median of repeated runs.

- import of a 1M-row Alpaca JSONL (built from ../shared/data) into a fresh workspace
  (validating, hashing, committing) against ``datasets.load_dataset("json")`` on the
  same file, side by side in the same run; ratio = datasets time / our time (target >= 1.0);
- commit of 10 changed samples in a 1M-sample and in a 10K-sample dataset (target: under
  100 ms, within 2x of each other);
- one page of 50 samples of an old version of the 1M-sample dataset, paged by key at a
  deep position (target: under 50 ms).

- render + tokenize ``BENCH_RENDER_N`` (default 100,000) conversations with loss masks against
  ``apply_chat_template(tokenize=True)`` per sample on the same conversations, side by side,
  ids checked identical (``benchmarks/render_bench.py``; ``BENCH_RENDER_REPEATS``, default 1).

Then every ``benchmarks/bench_<area>.py`` (``run(console) -> list[dict]``), one table.
``python -m benchmarks [core] [AREA ...]`` runs only those named.

``BENCH_ROWS`` (default 1,000,000) and ``BENCH_REPEATS`` (default 3) scale it down.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .data import BENCH_DIR, alpaca_jsonl, shared_available

console = Console(width=150)


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def bench_import(path: Path, repeats: int) -> dict:
    import datasets
    from pipelines.formats import import_file
    datasets.disable_progress_bars()

    def ours():
        ws = Path(tempfile.mkdtemp(dir=BENCH_DIR))
        try:
            import_file(ws, path, "bench", user="bench")
        finally:
            shutil.rmtree(ws)

    def theirs():
        cache = tempfile.mkdtemp(dir=BENCH_DIR)
        try:
            datasets.load_dataset("json", data_files=str(path), cache_dir=cache, split="train")
        finally:
            shutil.rmtree(cache)

    # alternate the two so both see the same machine state
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_theirs.append(median_time(theirs, 1)[0])
        t_ours.append(median_time(ours, 1)[0])
    o, p = statistics.median(t_ours), statistics.median(t_theirs)
    return {"ours_s": o, "peer_s": p, "ratio": p / o, "ours_runs": t_ours, "peer_runs": t_theirs}


def build_versions(ws: Path, path: Path, name: str) -> None:
    from datastore import Sample, Store
    from datastore import versions as V
    from pipelines.formats import import_file
    import_file(ws, path, name, user="bench")
    with Store(ws) as st:  # a few more versions so "old version" means something
        for k in range(3):
            V.commit(st, name, author="bench", message=f"edit {k}",
                     update={i: Sample(instruction=f"edited {k} {i}", output="x").to_row() for i in range(1 + k, 40, 7)})


def bench_commit(ws: Path, name: str, repeats: int) -> dict:
    import random

    from datastore import Sample, Store
    from datastore import versions as V
    rng = random.Random(0)
    with Store(ws) as st:
        n = V.resolve(st, name).n_samples
        times = []
        for r in range(repeats):
            ids = rng.sample(range(1, n + 1), 10)
            upd = {i: Sample(instruction=f"change {r} {i}", output="y").to_row() for i in ids}
            t = time.perf_counter()
            V.commit(st, name, author="bench", message="10 changes", update=upd)
            times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "runs": times}


def bench_page(ws: Path, name: str, repeats: int) -> dict:
    import random

    from datastore import Store
    from datastore import versions as V
    rng = random.Random(1)
    with Store(ws) as st:
        old = V.resolve(st, name, 1)
        times = []
        for _ in range(repeats):
            after = rng.randrange(old.n_samples // 2, old.n_samples - 50)
            t = time.perf_counter()
            page = V.read_page(st, old, after_id=after, limit=50)
            times.append(time.perf_counter() - t)
            assert len(page) == 50
    return {"median_s": statistics.median(times), "runs": times}


def _area_modules(selected: list[str]) -> list:
    """Every ``benchmarks/bench_<area>.py`` (or those named on the command line)."""
    import importlib
    import pkgutil
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    unknown = [n for n in selected if n not in names and n != "core"]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; have: core, {', '.join(names)}")
    return [importlib.import_module(f"benchmarks.bench_{n}") for n in names if not selected or n in selected]


def run_areas(selected: list[str]) -> None:
    """Run each area module's ``run(console) -> list[dict]`` (keys: measure, ours, peer,
    ratio, target, met) and print one table; raw rows go to ``.bench/results_<area>.json``."""
    mods = _area_modules(selected)
    if not mods:
        return
    t = Table(title="Instruction Workbench benchmarks by area (medians)")
    for c in ("area", "measure", "ours", "peer / other", "ratio", "target", "met"):
        t.add_column(c)
    for mod in mods:
        area = mod.__name__.rsplit("bench_", 1)[1]
        console.print(f"[bold]{area}[/]: {(mod.__doc__ or '').strip().splitlines()[0] if mod.__doc__ else ''}")
        rows = mod.run(console)
        (BENCH_DIR / f"results_{area}.json").write_text(json.dumps(rows, indent=2, default=str))
        for r in rows:
            met = r.get("met")
            t.add_row(area, str(r.get("measure", "")), str(r.get("ours", "")), str(r.get("peer", "")),
                      str(r.get("ratio", "")), str(r.get("target", "")),
                      "" if met is None else ("[green]yes[/]" if met else "[red]no[/]"))
    console.print(t)


def main() -> None:
    import sys
    selected = sys.argv[1:]
    BENCH_DIR.mkdir(exist_ok=True)
    if not selected or "core" in selected:
        core()
    areas = [s for s in selected if s != "core"]
    if areas or not selected:  # nothing named: every area; "core" alone: the core table only
        run_areas(areas)


def core() -> None:
    if not shared_available():
        console.print("[yellow]skipped: ../shared/data is absent; the benchmarks read real data in place[/]")
        return
    rows = int(os.environ.get("BENCH_ROWS", 1_000_000))
    repeats = int(os.environ.get("BENCH_REPEATS", 3))
    BENCH_DIR.mkdir(exist_ok=True)
    big, small = alpaca_jsonl(rows), alpaca_jsonl(10_000)
    res: dict = {"rows": rows, "repeats": repeats}
    console.print(f"import: {big.name} ({big.stat().st_size / 1e6:.0f} MB), {repeats} runs each side")
    res["import"] = bench_import(big, repeats)
    ws = Path(tempfile.mkdtemp(dir=BENCH_DIR))
    try:
        build_versions(ws, big, "big")
        build_versions(ws, small, "small")
        res["commit_big"] = bench_commit(ws, "big", max(7, repeats))
        res["commit_small"] = bench_commit(ws, "small", max(7, repeats))
        res["page_old"] = bench_page(ws, "big", 21)
    finally:
        shutil.rmtree(ws)
    from .render_bench import bench_render
    render_n = int(os.environ.get("BENCH_RENDER_N", 100_000))
    console.print(f"render: {render_n:,} conversations, both sides")
    res["render"] = rd = bench_render(render_n, int(os.environ.get("BENCH_RENDER_REPEATS", 1)))
    imp, cb, cs, pg = res["import"], res["commit_big"], res["commit_small"], res["page_old"]
    t = Table(title=f"Instruction Workbench benchmarks (medians; {rows:,}-row dataset)")
    for c in ("measure", "ours", "peer / other", "ratio", "target", "met"):
        t.add_column(c)
    ok = lambda b: "[green]yes[/]" if b else "[red]no[/]"
    t.add_row(f"import {rows:,}-row JSONL (validate, hash, commit)", f"{imp['ours_s']:.2f} s",
              f"datasets.load_dataset: {imp['peer_s']:.2f} s", f"{imp['ratio']:.2f}x", ">= 1.0x", ok(imp["ratio"] >= 1.0))
    both = cb["median_s"] / cs["median_s"]
    t.add_row(f"commit 10 changed samples, {rows:,}-sample dataset", f"{cb['median_s'] * 1e3:.1f} ms",
              f"10K-sample dataset: {cs['median_s'] * 1e3:.1f} ms", f"{both:.2f}x", "< 100 ms, within 2x",
              ok(cb["median_s"] < 0.1 and cs["median_s"] < 0.1 and 0.5 <= both <= 2.0))
    t.add_row("page of 50 samples of an old version (keyset)", f"{pg['median_s'] * 1e3:.1f} ms", "", "", "< 50 ms",
              ok(pg["median_s"] < 0.05))
    t.add_row(f"render + tokenize {render_n:,} conversations (ids + loss mask)", f"{rd['ours_s']:.2f} s",
              f"apply_chat_template per sample: {rd['peer_s']:.2f} s", f"{rd['ratio']:.2f}x",
              ">= 5.0x, identical ids", ok(rd["ratio"] >= 5.0 and rd["identical_ids"]))
    console.print(t)
    (BENCH_DIR / "results.json").write_text(json.dumps(res, indent=2))
    console.print(f"raw timings: {BENCH_DIR / 'results.json'}")


if __name__ == "__main__":
    main()
