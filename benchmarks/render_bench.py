"""Render + tokenize N conversations: :func:`pipelines.render.encode_conversations` (ids and
loss labels, template compiled once, batch tokenization) against
``tokenizer.apply_chat_template(conv, tokenize=True)`` called per sample, on the same N
conversations (real hh-rlhf dialogues cycled with a ``(#k)`` suffix), side by side, with the
ids checked identical. ``BENCH_RENDER_N`` (default 100,000) sets N; ``BENCH_REPEATS`` the runs.
Nothing is cached across conversations on our side (the cycled data would reward it); see
docs/render_speed.md for the method and the figures.
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


def bench_render(n: int, repeats: int, check_every: int = 50) -> dict:
    """Time both sides on the same ``n`` conversations, alternating (peer, ours) ``repeats``
    times; medians. Also: the one-time build of the fast tokenizer (``setup_s``, not in
    ``ours_s``: it is per tokenizer, like compiling the template), ids identical to the peer on
    every conversation, and ``(ids, labels)`` identical to the per-sample HF path
    (:func:`pipelines.render.render_with_mask`) on every ``check_every``-th conversation."""
    import os

    from pipelines.models import load_tokenizer
    from pipelines.render import encode_conversations, get_template, render_with_mask
    from pipelines.render.fast_bpe import fast_encoder_status

    tok = load_tokenizer()
    tpl = get_template("chatml")
    tok.chat_template = tpl.text
    convs = conversations(n)
    t = time.perf_counter()
    _, fast = fast_encoder_status(tok)
    setup = time.perf_counter() - t

    def ids_of(x):
        return x["input_ids"] if isinstance(x, dict) or hasattr(x, "keys") else x

    t_ours, t_peer, same, loads = [], [], True, []
    c_ours, c_peer = [], []  # CPU seconds of this process (all threads): less sensitive to other load
    same_labels = True
    for r in range(repeats):  # alternate so both sides see the same machine state
        loads.append(os.getloadavg()[0])
        t, c0 = time.perf_counter(), time.process_time()
        peer = [list(ids_of(tok.apply_chat_template(c, tokenize=True))) for c in convs]
        t_peer.append(time.perf_counter() - t)
        c_peer.append(time.process_time() - c0)
        t, c0 = time.perf_counter(), time.process_time()
        ours = encode_conversations(tok, convs, tpl)
        t_ours.append(time.perf_counter() - t)
        c_ours.append(time.process_time() - c0)
        same = same and all(o[0] == p for o, p in zip(ours, peer))
        if r == 0 and check_every:
            same_labels = all(ours[i] == render_with_mask(tok, convs[i], tpl) for i in range(0, n, check_every))
        del peer, ours
    loads.append(os.getloadavg()[0])
    o, p = statistics.median(t_ours), statistics.median(t_peer)
    return {"n": n, "ours_s": o, "peer_s": p, "ratio": p / o, "identical_ids": same,
            "identical_labels_sampled": same_labels, "fast_path": fast, "setup_s": setup,
            "ours_runs": t_ours, "peer_runs": t_peer, "ratios": [b / a for a, b in zip(t_ours, t_peer)],
            "cpu_ratio": statistics.median(c_peer) / statistics.median(c_ours),
            "ours_cpu_runs": c_ours, "peer_cpu_runs": c_peer, "load_avg_1m": loads, "cpus": os.cpu_count()}


if __name__ == "__main__":
    import os
    print(bench_render(int(os.environ.get("BENCH_RENDER_N", 100_000)), int(os.environ.get("BENCH_REPEATS", 1))))
