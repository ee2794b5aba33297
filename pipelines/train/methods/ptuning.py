"""P-tuning (Liu et al. 2021, "GPT Understands, Too"): ``num_virtual_tokens`` continuous prompt
embeddings produced by a small trainable encoder (peft ``PromptEncoderConfig``, MLP of width
``encoder_hidden_size``), prepended to the input; the base stays frozen."""
from __future__ import annotations

from pipelines.train.methods.prefix import load  # noqa: F401  (same PeftModel reload)

NAME = "ptuning"
SAVES = "adapter"


def prepare(model, config):
    from peft import PromptEncoderConfig, TaskType, get_peft_model

    return get_peft_model(model, PromptEncoderConfig(task_type=TaskType.CAUSAL_LM,
                                                     num_virtual_tokens=config.num_virtual_tokens,
                                                     encoder_hidden_size=config.encoder_hidden_size))
