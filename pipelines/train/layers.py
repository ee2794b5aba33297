"""Per-block training controls: freezing the lower blocks, layer drop, layer-wise learning rates.

Own code (a few lines each) because neither transformers nor peft offers them for decoder-only
models: transformers' ``layerdrop`` exists only on some encoder models, and peft freezes by
``layers_to_transform`` for LoRA only.

All functions find the decoder blocks with :func:`decoder_layers` (the ``nn.ModuleList`` whose
parameter names carry ``layers.<i>.``), so they work on a plain model and on a ``PeftModel``.
"""
from __future__ import annotations

import re

from datastore.errors import WorkbenchError

_BLOCK = re.compile(r"(?:^|\.)(?:layers|h|blocks|block)\.(\d+)\.")


def decoder_layers(model):
    """The model's decoder blocks (an ``nn.ModuleList``), lowest first.

    Raises:
        WorkbenchError: no list of blocks found (an architecture we cannot address per block).
    """
    import torch.nn as nn

    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and name.split(".")[-1] in ("layers", "h", "blocks", "block") \
                and len(mod) > 0:
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise WorkbenchError(f"cannot find the decoder blocks of {type(model).__name__}")
    return best


def block_index(param_name: str) -> int | None:
    """Index of the decoder block a parameter belongs to (``...layers.7.self_attn...`` -> 7), else None."""
    m = _BLOCK.search(param_name)
    return int(m.group(1)) if m else None


def freeze_lower_blocks(model, n: int, *, embeddings: bool = True) -> list[str]:
    """Stop gradients for the parameters of blocks ``0 .. n-1`` (and the input embeddings when
    ``embeddings``). Returns the names of the parameters frozen.

    Raises:
        WorkbenchError: ``n`` is not below the number of blocks (nothing would be left to train).
    """
    if n <= 0:
        return []
    total = len(decoder_layers(model))
    if n >= total:
        raise WorkbenchError(f"freeze_lower_blocks={n} freezes every block (the model has {total})")
    frozen = []
    emb = model.get_input_embeddings() if embeddings else None
    emb_ids = {id(p) for p in emb.parameters()} if emb is not None else set()
    for name, p in model.named_parameters():
        i = block_index(name)
        if (i is not None and i < n) or id(p) in emb_ids:
            if p.requires_grad:
                p.requires_grad_(False)
                frozen.append(name)
    return frozen


def apply_layer_drop(model, p: float, *, generator=None) -> int:
    """Skip each decoder block with probability ``p`` during training (LayerDrop, Fan et al. 2019;
    stochastic depth, Huang et al. 2016: a dropped residual block is the identity, its input passes
    through unchanged). In eval mode every block runs. Returns the number of blocks wrapped.

    The block's ``forward`` is replaced on the instance, so parameter names and saved weights are
    unchanged. A decoder block returns its hidden states (transformers 5) or a tuple whose first
    element they are; a dropped block returns the same type.
    """
    import torch

    if p <= 0:
        return 0
    layers = decoder_layers(model)
    for layer in layers:
        if getattr(layer, "_wb_layer_drop", None) is not None:
            layer._wb_layer_drop = p
            continue
        orig = layer.forward

        def forward(hidden_states, *args, _orig=orig, _layer=layer, **kwargs):
            prob = _layer._wb_layer_drop
            if _layer.training and prob > 0 and (prob >= 1 or float(torch.rand((), generator=generator)) < prob):
                return hidden_states
            return _orig(hidden_states, *args, **kwargs)

        layer._wb_layer_drop = p
        layer.forward = forward
    return len(layers)


def layerwise_param_groups(model, lr: float, decay: float | None, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay (LLRD).

    Block ``i`` of ``L`` gets ``lr * decay ** (L - 1 - i)``; parameters outside the blocks that
    sit below them (embeddings, virtual-token encoders) get ``lr * decay ** L``; those above them
    (final norm, LM head) get ``lr``. Source: Howard & Ruder 2018 (ULMFiT discriminative
    fine-tuning), Clark et al. 2020 (ELECTRA's layer-wise decay). ``decay`` None or 1: one group.
    Only parameters with ``requires_grad`` are included; biases and norms get no weight decay.
    Returns ``[{"params", "lr", "weight_decay", "name"}]`` (``name`` e.g. ``"block 3"``).
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_layers = len(decoder_layers(model))
    groups: dict[tuple, dict] = {}
    for name, p in params:
        i = block_index(name)
        if decay is None or decay == 1:
            key, scale = "all", 1.0
        elif i is not None:
            key, scale = f"block {i}", decay ** (n_layers - 1 - i)
        elif any(s in name for s in ("embed", "wte", "prompt_encoder", "prefix")):
            key, scale = "embeddings", decay ** n_layers
        else:
            key, scale = "head", 1.0
        no_decay = p.ndim < 2 or name.endswith(".bias") or "norm" in name
        gk = (key, no_decay)
        if gk not in groups:
            groups[gk] = {"params": [], "lr": lr * scale, "weight_decay": 0.0 if no_decay else weight_decay,
                          "name": key}
        groups[gk]["params"].append(p)
    return list(groups.values())
