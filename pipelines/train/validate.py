"""Refuse impossible training configs before any process starts.

:func:`parse_config` turns a dict into a :class:`TrainConfig` with one readable line per bad field
(``lora_r: must be >= 1 (got 0)``). :func:`validate_config` checks what needs the base model's
architecture, without loading its weights: module names come from the safetensors header and the rest from ``config.json``
(milliseconds), so unknown target modules, prefix tuning on an
architecture without a key/value cache, or freezing more blocks than exist are refused with a clear
message.
"""
from __future__ import annotations

import json
from pathlib import Path

from datastore.errors import WorkbenchError
from pipelines.train.config import PEFT_PROMPT_METHODS, TrainConfig


class ConfigRefused(WorkbenchError):
    """A training config that cannot run; ``reasons`` lists each problem."""

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        super().__init__("training config refused: " + "; ".join(self.reasons))


def parse_config(data: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a dict. Raises :class:`ConfigRefused` naming each bad field."""
    from pydantic import ValidationError

    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        reasons = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "config"
            msg = err["msg"]
            if "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
            reasons.append(f"{loc}: {msg}")
        raise ConfigRefused(reasons) from None


def _model_config(base_path: Path) -> dict:
    p = base_path / "config.json"
    if not p.exists():
        raise ConfigRefused([f"base model folder {base_path} has no config.json"])
    return json.loads(p.read_text(encoding="utf-8"))


def _weight_names(base_path: Path) -> list[str] | None:
    """Tensor names from the safetensors header(s) (8-byte length, then JSON), or None."""
    import struct

    index = base_path / "model.safetensors.index.json"
    if index.exists():
        return list(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    files = sorted(base_path.glob("*.safetensors"))
    if not files:
        return None
    names: list[str] = []
    for f in files:
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            names.extend(k for k in json.loads(fh.read(n)) if k != "__metadata__")
    return names


def module_names(base_path: Path) -> set[str]:
    """Last name parts of the model's modules that hold weights (``q_proj``, ``down_proj``...).

    Read from the safetensors header (milliseconds; safetensors format: an 8-byte little-endian
    header length, then a JSON header of tensor names); without safetensors files, from a
    weightless build of the architecture on the meta device."""
    names = _weight_names(base_path)
    if names is not None:
        # a causal LM always has its output head, even when tied to the embeddings (not stored then)
        return {n.rsplit(".", 2)[-2] for n in names if n.count(".") >= 1} | {"lm_head"}
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(base_path), local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return {name.split(".")[-1] for name, mod in model.named_modules() if name and not list(mod.children())}


def validate_config(config: TrainConfig, base_path: str | Path | None = None) -> dict:
    """Check ``config`` against the base model's architecture. Returns the model config dict.

    Raises:
        ConfigRefused: every reason found (unknown method or template, a template that is not a chat
        template, target modules the model does not have, prefix tuning on an unsupported
        architecture, ``freeze_lower_blocks`` not below the block count or with a prompt method).
    """
    from pipelines.render import get_template
    from pipelines.train.methods import METHODS, get_method

    reasons: list[str] = []
    if config.method not in METHODS:
        reasons.append(f"method: unknown '{config.method}' (known: {', '.join(sorted(METHODS))})")
    try:
        tpl = get_template(config.template)
        if tpl.kind != "chat":
            reasons.append(f"template: '{config.template}' is a {tpl.kind} template; training needs a chat template")
    except WorkbenchError as e:
        reasons.append(f"template: {e}")
    if base_path is None:
        from pipelines.models import ensure_base_model
        base_path = config.base_model or ensure_base_model()
    base_path = Path(base_path)
    mcfg = _model_config(base_path)
    n_layers = int(mcfg.get("num_hidden_layers") or mcfg.get("n_layer") or 0)
    method = METHODS.get(config.method)
    if method is not None and hasattr(method, "check"):
        try:
            method.check(mcfg)
        except WorkbenchError as e:
            reasons.append(str(e))
    if config.method in ("lora", "qlora"):
        try:
            names = module_names(base_path)
        except Exception as e:  # noqa: BLE001 - an architecture transformers cannot build
            reasons.append(f"cannot build the base model's architecture to check target modules: {e}")
        else:
            unknown = [m for m in config.target_modules if m not in names and m != "all-linear"]
            if unknown:
                linear = sorted(n for n in names if n.endswith("proj") or n in ("c_attn", "c_proj", "fc1", "fc2"))
                reasons.append(f"target_modules: the model has no module named {', '.join(unknown)} "
                               f"(it has {', '.join(linear) or 'no projection layers'})")
    if config.freeze_lower_blocks:
        if config.method in PEFT_PROMPT_METHODS:
            reasons.append("freeze_lower_blocks applies to lora, qlora and full fine-tuning, not to "
                           f"{config.method} (the base is frozen anyway)")
        elif n_layers and config.freeze_lower_blocks >= n_layers:
            reasons.append(f"freeze_lower_blocks={config.freeze_lower_blocks} leaves nothing to train "
                           f"(the model has {n_layers} blocks)")
    if config.method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            reasons.append("QLoRA needs bitsandbytes (pip install bitsandbytes)")
    if config.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            reasons.append("device: 'cuda' asked for, but torch sees no CUDA device")
    if reasons:
        raise ConfigRefused(reasons)
    get_method(config.method)
    return mcfg
