"""Render + tokenize N conversations: :func:`pipelines.render.encode_conversations` (ids and
loss labels, template compiled once, batch tokenization) against
``tokenizer.apply_chat_template(conv, tokenize=True)`` called per sample, on the same N
conversations (real hh-rlhf dialogues cycled with a ``(#k)`` suffix), side by side, with the
ids checked identical. ``BENCH_RENDER_N`` (default 100,000) sets N; ``BENCH_REPEATS`` the runs.
"""
from __future__ import annotations

import gzip
import json
import re
import statistics
import time

from .data import SHARED


def conversations(n: int) -> list[list[dict]]:
    base = []
    with gzip.open(SHARED / "hh-rlhf-harmless-base-test" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            parts = re.split(r"\n\n(Human|Assistant): ", json.loads(line)["chosen"])
            msgs = [{"role": "user" if r == "Human" else "assistant", "content": c}
                    for r, c in zip(parts[1::2], parts[2::2])]
            if msgs and msgs[-1]["role"] == "assistant":
                base.append(msgs)
    out = []
    for i in range(n):
        conv, k = base[i % len(base)], i // len(base)
        out.append([{**conv[0], "content": conv[0]["content"] + (f" (#{k})" if k else "")}] + conv[1:])
    return out


def bench_render(n: int, repeats: int) -> dict:
    from pipelines.models import load_tokenizer
    from pipelines.render import encode_conversations, get_template

    tok = load_tokenizer()
    tpl = get_template("chatml")
    tok.chat_template = tpl.text
    convs = conversations(n)

    def ids_of(x):
        return x["input_ids"] if isinstance(x, dict) or hasattr(x, "keys") else x

    t_ours, t_peer, same = [], [], True
    for _ in range(repeats):  # alternate so both sides see the same machine state
        t = time.perf_counter()
        peer = [list(ids_of(tok.apply_chat_template(c, tokenize=True))) for c in convs]
        t_peer.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = encode_conversations(tok, convs, tpl)
        t_ours.append(time.perf_counter() - t)
        same = same and all(o[0] == p for o, p in zip(ours, peer))
        del peer, ours
    o, p = statistics.median(t_ours), statistics.median(t_peer)
    return {"n": n, "ours_s": o, "peer_s": p, "ratio": p / o, "identical_ids": same,
            "ours_runs": t_ours, "peer_runs": t_peer}


if __name__ == "__main__":
    import os
    print(bench_render(int(os.environ.get("BENCH_RENDER_N", 100_000)), int(os.environ.get("BENCH_REPEATS", 1))))
