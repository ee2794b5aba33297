"""Check a finished run: the saved adapter reloads to the trained model, and it differs from the base.

:func:`verify_adapter` reloads the base model plus ``run_dir/adapter`` (``PeftModel.from_pretrained``
through the run's method), recomputes the logits on the probe prompt stored in
``run_dir/probe_logits.pt`` and compares them with the logits the trained model gave at
the end of training and with the base model's, then generates one short greedy answer.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from datastore.errors import WorkbenchError

RELOAD_TOLERANCE = 1e-4  # max abs logit difference allowed between trained and reloaded model


def verify_adapter(run_dir: str | Path, *, max_new_tokens: int = 32, prompt: str | None = None) -> dict:
    """Reload and check the adapter of a run.

    Args:
        run_dir: a folder written by :func:`pipelines.train.sft.run_sft`.
        max_new_tokens: length of the greedy probe answer.
        prompt: the instruction to answer (default: the run's probe prompt).
    Returns:
        ``{"max_abs_diff_trained", "max_abs_diff_base", "tolerance", "reload_ok", "differs_from_base",
        "ok", "probe_prompt", "answer", "new_tokens", "generate_s", "load_s"}``; ``ok`` is
        ``max_abs_diff_trained <= tolerance and max_abs_diff_base > 0``.
    Raises:
        WorkbenchError: the run folder lacks its run card, adapter or probe file.
    """
    run_dir = Path(run_dir)
    card_path, probe_path = run_dir / "run_card.json", run_dir / "probe_logits.pt"
    if not card_path.exists():
        raise WorkbenchError(f"{run_dir} is not a finished training run: {card_path.name} is missing")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    adapter_dir = run_dir / ((card.get("artifacts") or {}).get("saved") or "adapter")  # model/ for full fine-tuning
    for p in (adapter_dir, probe_path):
        if not p.exists():
            raise WorkbenchError(f"{run_dir} is not a finished training run: {p.name} is missing")

    import torch

    from pipelines.models import load_model, load_tokenizer
    from pipelines.render import render_chat, template_from_tokenizer, template_input
    from pipelines.train.methods import get_method

    t0 = time.monotonic()
    probe = torch.load(probe_path, weights_only=True)
    ids = torch.tensor([probe["input_ids"]])
    n = int(probe["positions"])
    base = load_model(card["base_model"]["path"])
    tok = load_tokenizer(adapter_dir)
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits[0, -n:].float()
    model = get_method(card.get("method", "lora")).load(base, adapter_dir)
    with torch.no_grad():
        reloaded = model(input_ids=ids).logits[0, -n:].float()
    load_s = time.monotonic() - t0
    trained = probe["logits"].float()
    diff_trained = float((reloaded - trained).abs().max())
    diff_base = float((reloaded - base_logits).abs().max())

    question = prompt or probe.get("prompt") or card["config"]["probe_prompt"]
    tpl = template_from_tokenizer(tok, card["template"]["name"])  # the run's template, saved with the adapter
    text = render_chat(template_input([{"role": "user", "content": question}], tpl, tokenizer=tok,
                                      add_generation_prompt=True), tpl)
    enc = tok(text, add_special_tokens=False, return_tensors="pt")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    t1 = time.monotonic()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=pad_id)
    gen_s = time.monotonic() - t1
    new = out[0, enc["input_ids"].shape[1]:]
    return {
        "max_abs_diff_trained": diff_trained,
        "max_abs_diff_base": diff_base,
        "tolerance": RELOAD_TOLERANCE,
        "reload_ok": diff_trained <= RELOAD_TOLERANCE,
        "differs_from_base": diff_base > 0,
        "ok": diff_trained <= RELOAD_TOLERANCE and diff_base > 0,
        "probe_prompt": question,
        "answer": tok.decode(new, skip_special_tokens=True).strip(),
        "new_tokens": int(new.numel()),
        "generate_s": round(gen_s, 3),
        "load_s": round(load_s, 3),
    }
