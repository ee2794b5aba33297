"""QLoRA (Dettmers et al. 2023): LoRA adapters over a base model quantized to 4 bits with
bitsandbytes (NF4 by default, double quantization of the scales).

Compute dtype: bfloat16 on a GPU that has it, float32 otherwise. On this kind of CPU bf16 compute
is about 20x slower (docs/architecture.md section 6, measured), so CPU runs compute in float32.
Paged optimizers (``paged_adamw_32bit``) are chosen on a GPU only; on a CPU they fall back to
non-paged anyway.
"""
from __future__ import annotations

from pathlib import Path

from pipelines.train.methods import lora

NAME = "qlora"
SAVES = "adapter"
GPU_OPTIM = "paged_adamw_32bit"


def compute_dtype(device: str):
    """torch dtype for the 4-bit matmuls on ``device`` ("cpu" or "cuda")."""
    import torch

    if device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(config, device: str):
    """The ``BitsAndBytesConfig`` (4-bit, ``bnb_4bit_quant_type``, double quantization)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=config.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=config.bnb_4bit_double_quant,
                              bnb_4bit_compute_dtype=compute_dtype(device))


def load_base(path: str | Path, config, device: str):
    """The base model quantized to 4 bits on ``device``."""
    from transformers import AutoModelForCausalLM

    from pipelines.models import offline_env

    offline_env()
    return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                quantization_config=quantization_config(config, device),
                                                dtype=compute_dtype(device),
                                                device_map={"": 0} if device == "cuda" else {"": "cpu"})


def default_optim(device: str) -> str:
    return GPU_OPTIM if device == "cuda" else "adamw_torch"


def prepare(model, config):
    """k-bit preparation (norms in float32, input grads on) then LoRA adapters."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from pipelines.train.layers import decoder_layers

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, lora.lora_config(config, len(decoder_layers(model))))


load = lora.load
