"""Benchmark inputs built from ../shared/data (never committed; cached in .bench/)."""
from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DATA", REPO.parent / "shared" / "data"))
BENCH_DIR = REPO / ".bench"
SOURCES = ["alpaca-format-samples/code_alpaca_2k.json",
           "alpaca-format-samples/llamafactory_alpaca_en_demo.json",
           "alpaca-format-samples/llamafactory_identity.json"]


def shared_available() -> bool:
    return all((SHARED / s).exists() for s in SOURCES)


def alpaca_jsonl(n_rows: int) -> Path:
    """A JSON Lines Alpaca file of ``n_rows`` records cycling through the real Alpaca-format
    files in ../shared/data (3,107 records); each copy's instruction gets a ``(#k)`` suffix
    so rows stay distinct. About 540 bytes a row."""
    out = BENCH_DIR / f"alpaca_{n_rows}.jsonl"
    if out.exists():
        return out
    base = []
    for s in SOURCES:
        base.extend(json.loads((SHARED / s).read_text()))
    BENCH_DIR.mkdir(exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n_rows):
            r = base[i % len(base)]
            k = i // len(base)
            rec = {"instruction": r["instruction"] + (f" (#{k})" if k else ""), "input": r["input"],
                   "output": r["output"]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.rename(out)
    return out
