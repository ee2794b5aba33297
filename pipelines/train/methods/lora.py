"""LoRA (peft): low-rank adapters on the chosen projection modules; the base stays frozen.

Settings: rank ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``, rsLoRA
(``use_rslora``: scale alpha/sqrt(r), Kalajdzievski 2023) and DoRA (``use_dora``: weight-decomposed
LoRA, Liu et al. 2024). ``freeze_lower_blocks=N`` puts adapters only on blocks N and above
(peft ``layers_to_transform``), so the lower blocks get no update.
"""
from __future__ import annotations

from pathlib import Path

NAME = "lora"
SAVES = "adapter"


def lora_config(config, n_layers: int | None = None):
    """The ``peft.LoraConfig`` for a :class:`pipelines.train.config.TrainConfig`.

    ``n_layers``: the model's number of decoder blocks (needed for ``freeze_lower_blocks``)."""
    from peft import LoraConfig, TaskType

    layers = None
    if config.freeze_lower_blocks and n_layers:
        layers = list(range(config.freeze_lower_blocks, n_layers))
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                      use_rslora=config.use_rslora, use_dora=config.use_dora, bias="none",
                      layers_to_transform=layers)


def prepare(model, config):
    """Wrap ``model`` with fresh LoRA adapters (only they require grad); returns a ``PeftModel``."""
    from peft import get_peft_model

    from pipelines.train.layers import decoder_layers

    return get_peft_model(model, lora_config(config, len(decoder_layers(model))))


def load(base_model, adapter_dir: str | Path):
    """Base model plus the adapter saved in ``adapter_dir``, in eval mode."""
    from peft import PeftModel

    m = PeftModel.from_pretrained(base_model, str(adapter_dir), is_trainable=False)
    m.eval()
    return m
