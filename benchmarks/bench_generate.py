"""Generation: batched against one-by-one with the transformers backend.

The same ``BENCH_GEN_N`` (default 8) chat prompts (demo seed-task instructions), greedy,
``BENCH_GEN_TOKENS`` (default 24) new tokens at most, through the embedded
SmolLM2-135M-Instruct on CPU with one torch thread (the machine's cores are shared): once
with ``batch_size=N`` (one padded batch) and once with ``batch_size=1`` (one prompt at a
time), each the median of ``BENCH_GEN_REPEATS`` (default 3) runs after a warm-up; model
loading is not timed. Measure: new tokens per second; ratio = batched / one-by-one.
Target: at least 2x (docs/architecture.md section 6 measured about 12 tokens/s for one sequence
and 50 tokens/s for a batch of 8 on 2 cores). Timings on a shared 2-core machine are noisy.
"""
from __future__ import annotations

import json
import os
import statistics
import time


def _prompts(n: int) -> list[list[dict]]:
    from pipelines.generate.instances import DEMO_SEED_TASKS
    recs = [json.loads(x) for x in DEMO_SEED_TASKS.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [[{"role": "user", "content": recs[i % len(recs)]["instruction"]}] for i in range(n)]


def measure(n: int = 8, max_tokens: int = 24, repeats: int = 3) -> dict:
    """``{"batched_tps", "single_tps", "ratio", "tokens_batched", "tokens_single", ...}``."""
    from pipelines.generate.backends import SamplingConfig, get_backend
    from pipelines.models import ensure_base_model
    model_dir = str(ensure_base_model())
    convs = _prompts(n)
    s = SamplingConfig(max_tokens=max_tokens, temperature=0.0, seed=0)
    batched = get_backend("transformers", model_path=model_dir, batch_size=n, num_threads=1)
    single = get_backend("transformers", model=batched._load()[0], tokenizer=batched.tokenizer, batch_size=1,
                         num_threads=1)
    batched.chat(convs[:2], SamplingConfig(max_tokens=4, temperature=0.0))  # warm-up
    out = {}
    for name, be in (("batched", batched), ("single", single)):
        rates, toks, secs = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            res = be.chat(convs, s)
            dt = time.perf_counter() - t
            k = sum(o.tokens_generated for o in res)
            rates.append(k / dt)
            toks.append(k)
            secs.append(dt)
        out[f"{name}_tps"] = statistics.median(rates)
        out[f"tokens_{name}"] = statistics.median(toks)
        out[f"{name}_s"] = statistics.median(secs)
    out["ratio"] = out["batched_tps"] / out["single_tps"]
    out.update(n=n, max_tokens=max_tokens, repeats=repeats)
    return out


def run(console) -> list[dict]:
    from datastore.errors import WorkbenchError
    n = int(os.environ.get("BENCH_GEN_N", 8))
    max_tokens = int(os.environ.get("BENCH_GEN_TOKENS", 24))
    repeats = int(os.environ.get("BENCH_GEN_REPEATS", 3))
    try:
        m = measure(n, max_tokens, repeats)
    except WorkbenchError as e:
        console.print(f"[yellow]generate skipped: {e}[/]")
        return []
    console.print(f"generate: batched {m['batched_tps']:.1f} tok/s ({m['tokens_batched']:.0f} tokens in "
                  f"{m['batched_s']:.1f} s) vs one-by-one {m['single_tps']:.1f} tok/s "
                  f"({m['tokens_single']:.0f} tokens in {m['single_s']:.1f} s): {m['ratio']:.2f}x")
    return [{**m, "measure": f"transformers backend, {n} chat prompts x {max_tokens} new tokens, greedy, 1 thread "
                        f"(median of {repeats})",
             "ours": f"batched (batch {n}): {m['batched_tps']:.1f} tok/s",
             "peer": f"one-by-one: {m['single_tps']:.1f} tok/s",
             "ratio": f"{m['ratio']:.2f}x", "target": ">= 2x", "met": m["ratio"] >= 2.0}]
