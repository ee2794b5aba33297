"""Prefix tuning (Li & Liang 2021): trainable key/value prefixes of ``num_virtual_tokens`` in
every attention layer (peft ``PrefixTuningConfig``); the base stays frozen.

It works through the model's key/value cache, so architectures without attention caches
(state-space and RNN models) cannot take it: :func:`check` refuses them before a run starts.
"""
from __future__ import annotations

from pathlib import Path

from datastore.errors import WorkbenchError

NAME = "prefix"
SAVES = "adapter"
#: model types without a key/value attention cache (transformers model_type names)
NO_KV_CACHE = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm", "bamba", "lfm2"})


def check(model_config: dict) -> None:
    """Raise ``WorkbenchError`` when the architecture cannot take key/value prefixes.

    ``model_config``: the base model's ``config.json`` as a dict."""
    mt = model_config.get("model_type", "?")
    if mt in NO_KV_CACHE:
        raise WorkbenchError(f"prefix tuning is not supported on the '{mt}' architecture: it has no "
                             "attention key/value cache to prepend prefixes to (use lora, ptuning or prompt)")
    if model_config.get("is_encoder_decoder"):
        raise WorkbenchError(f"prefix tuning here trains decoder-only models; '{mt}' is encoder-decoder")
    missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads") if k not in model_config]
    if missing:
        raise WorkbenchError(f"prefix tuning needs {', '.join(missing)} in the model config of '{mt}'")


def prepare(model, config):
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    return get_peft_model(model, PrefixTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                    num_virtual_tokens=config.num_virtual_tokens))


def load(base_model, adapter_dir: str | Path):
    from peft import PeftModel

    m = PeftModel.from_pretrained(base_model, str(adapter_dir), is_trainable=False)
    m.eval()
    return m
