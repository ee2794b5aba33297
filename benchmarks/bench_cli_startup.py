"""CLI start-up: ``wb --help`` and ``wb datasets`` on a small workspace, each in a fresh process.

Target: under 0.5 s wall, median of 5, on a quiet machine (what a user waits before the
first line). Each measure runs the real entry point (``python -m app.cli``) in a subprocess,
after one warm-up run that is not counted (it writes the bytecode cache, as an installed
``wb`` has one; the cache goes to a temporary folder, never into the repository). Reported per
row: median wall time, the spread (min-max), the median CPU time of the child (user + system)
and the 1-minute load average before and after, since on a loaded machine the wall time
measures the load, not ``wb``. The small workspace holds one dataset of 20 samples written
here (no shared data needed). There is no peer tool (ratio empty).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5
BOUND_S = 0.5


def _run(args: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """``(wall s, child CPU s)`` of one ``wb ARGS`` process; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=120)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"wb {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(args: list[str], env: dict, cwd: Path, repeats: int = REPEATS) -> dict:
    """Median, spread and CPU of ``repeats`` runs of ``wb ARGS`` after one warm-up run."""
    _run(args, env, cwd)
    load0 = os.getloadavg()[0]
    runs = [_run(args, env, cwd) for _ in range(repeats)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "cpu_median_s": statistics.median(cpus), "runs_s": walls,
            "load_1m": (round(load0, 2), round(os.getloadavg()[0], 2))}


def run(console) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="wb-cli-startup-"))
    try:
        return _run_in(tmp, console)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_in(tmp: Path, console) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for k in ("WB_WORKSPACE", "WB_USER", "WB_DEBUG"):
        env.pop(k, None)
    ws = tmp / "ws"
    src = tmp / "small.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"Add {i} and {i + 1}.", "output": str(2 * i + 1)}) + "\n"
                           for i in range(20)))
    _run(["-w", str(ws), "import", str(src), "--dataset", "small"], env, tmp)
    rows = []
    for label, args in (("wb --help", ["--help"]), ("wb datasets (small workspace)", ["-w", str(ws), "datasets"])):
        m = measure(args, env, tmp)
        console.print(f"{label}: runs {[round(x, 3) for x in m['runs_s']]} s, CPU median {m['cpu_median_s']:.3f} s, "
                      f"load {m['load_1m']}")
        rows.append({"measure": f"cli_startup: {label} (wall s, median of {REPEATS}; "
                                f"spread {m['min_s']:.3f}-{m['max_s']:.3f}; CPU {m['cpu_median_s']:.3f} s; "
                                f"load {m['load_1m'][0]}-{m['load_1m'][1]})",
                     "ours": round(m["median_s"], 3), "peer": None, "ratio": None,
                     "target": f"< {BOUND_S} s wall on a quiet machine", "met": m["median_s"] < BOUND_S,
                     **{k: m[k] for k in ("cpu_median_s", "runs_s", "load_1m")}})
    return rows
