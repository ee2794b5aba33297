"""LoRA (peft): low-rank adapters on the chosen projection modules; the base stays frozen."""
from __future__ import annotations

from pathlib import Path

NAME = "lora"


def lora_config(config):
    """The ``peft.LoraConfig`` for a :class:`pipelines.train.config.TrainConfig`."""
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                      bias="none")


def prepare(model, config):
    """Wrap ``model`` with fresh LoRA adapters (only they require grad); returns a ``PeftModel``."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(config))


def load(base_model, adapter_dir: str | Path):
    """Base model plus the adapter saved in ``adapter_dir``, in eval mode."""
    from peft import PeftModel

    m = PeftModel.from_pretrained(base_model, str(adapter_dir), is_trainable=False)
    m.eval()
    return m
