"""Full fine-tuning, the baseline the parameter-efficient methods are compared with: every
parameter trains (except the lower blocks and embeddings under ``freeze_lower_blocks``); the
run saves the whole model (safetensors) instead of an adapter."""
from __future__ import annotations

from pathlib import Path

NAME = "full"
SAVES = "model"


def prepare(model, config):
    from pipelines.train.layers import freeze_lower_blocks

    for p in model.parameters():
        p.requires_grad_(True)
    freeze_lower_blocks(model, config.freeze_lower_blocks)
    return model


def load(base_model, model_dir: str | Path):
    """The fine-tuned model saved in ``model_dir`` (``base_model`` is not needed)."""
    from pipelines.models import load_model

    return load_model(model_dir)
