"""Training: supervised fine-tuning (trl ``SFTTrainer``) with pluggable methods (LoRA first).

``run_sft(config, conversations, run_dir)`` trains and writes a run folder;
``verify_adapter(run_dir)`` checks that the saved adapter reloads exactly.
Heavy imports (torch, transformers, trl) happen inside the functions, so importing this
package is cheap.
"""
from __future__ import annotations

from pipelines.train.config import DatasetRef, TrainConfig
from pipelines.train.methods import METHODS, get_method
from pipelines.train.sft import RunResult, run_sft
from pipelines.train.verify import verify_adapter

__all__ = ["DatasetRef", "METHODS", "RunResult", "TrainConfig", "get_method", "run_sft", "verify_adapter"]
