"""Prompt tuning (Lester et al. 2021): ``num_virtual_tokens`` trainable input embeddings prepended to
every sequence (peft ``PromptTuningConfig``), initialised from the embeddings of a short text
(:data:`INIT_TEXT`; text initialisation converges faster than random in Lester et al., section 3.2)."""
from __future__ import annotations

from pipelines.train.methods.prefix import load  # noqa: F401  (same PeftModel reload)

NAME = "prompt"
SAVES = "adapter"
INIT_TEXT = "Answer the user's request helpfully, accurately and concisely."


def prepare(model, config):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    from pipelines.models import ensure_base_model

    tok_path = config.base_model or str(ensure_base_model())
    return get_peft_model(model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                    num_virtual_tokens=config.num_virtual_tokens,
                                                    prompt_tuning_init=PromptTuningInit.TEXT,
                                                    prompt_tuning_init_text=INIT_TEXT,
                                                    tokenizer_name_or_path=tok_path))
