"""Loss of a model on a fixed set of conversations, before and after training.

A run's logged step losses come from different batches, so their first and last values
are noisy; the demo and the tests compare the mean token loss on one fixed set of the
run's own training conversations, computed with the base model (the loss before
training) and with the trained adapter (the loss after it). Same template, truncation and
assistant-only labels as training (``sft.build_examples``).
"""
from __future__ import annotations

import json
from pathlib import Path


def fixed_set(conversations: list, n: int = 16) -> list:
    """``n`` conversations spread evenly over the list (deterministic)."""
    if len(conversations) <= n:
        return list(conversations)
    step = len(conversations) / n
    return [conversations[int(i * step)] for i in range(n)]


def mean_token_loss(model, rows: list[dict]) -> float:
    """Token-weighted mean cross-entropy over ``rows`` of ``{"input_ids", "labels"}``."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            labels = torch.tensor([r["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            if n == 0:
                continue
            out = model(input_ids=ids, labels=labels)
            total += float(out.loss) * n
            count += n
    return total / max(count, 1)


def loss_before_after(run_dir: str | Path, conversations: list, n: int = 16) -> dict:
    """``{"before", "after", "n_conversations", "n_tokens"}``: mean token loss of the base
    model and of the run's adapter on :func:`fixed_set` of ``conversations``."""
    from pipelines.models import load_model, load_tokenizer
    from pipelines.render import get_template
    from pipelines.train.methods import get_method
    from pipelines.train.sft import build_examples

    run_dir = Path(run_dir)
    card = json.loads((run_dir / "run_card.json").read_text(encoding="utf-8"))
    tok = load_tokenizer(run_dir / "adapter")
    tpl = get_template(card["template"]["name"])
    rows, stats = build_examples(tok, fixed_set(conversations, n), tpl, card["config"]["max_length_tokens"])
    base = load_model(card["base_model"]["path"])
    before = mean_token_loss(base, rows)
    model = get_method(card.get("method", "lora")).load(base, run_dir / "adapter")
    after = mean_token_loss(model, rows)
    return {"before": before, "after": after, "n_conversations": len(rows), "n_tokens": stats["loss_tokens"]}
