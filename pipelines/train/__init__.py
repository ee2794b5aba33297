"""Training: supervised fine-tuning (trl ``SFTTrainer``) with pluggable methods (LoRA, QLoRA,
prefix tuning, P-tuning, prompt tuning, full fine-tuning), runs as background processes.

``run_sft(config, conversations, run_dir)`` trains in this process and writes a run folder;
:mod:`pipelines.train.runs` launches, lists, stops and resumes runs as their own processes
(``python -m pipelines.train.runner RUN_DIR``) on pinned dataset versions
(:mod:`pipelines.train.data`); :mod:`pipelines.train.evaluate` scores a finished run;
:mod:`pipelines.train.card` holds the run card, merge-and-save and re-runs;
:mod:`pipelines.train.launch` builds multi-GPU launch commands; ``verify_adapter(run_dir)``
checks that the saved adapter reloads exactly. Heavy imports (torch, transformers, trl) happen
inside the functions, so importing this package is cheap.
"""
from __future__ import annotations

from pipelines.train.config import DatasetRef, TrainConfig
from pipelines.train.methods import METHODS, get_method
from pipelines.train.sft import RunResult, run_sft
from pipelines.train.verify import verify_adapter

__all__ = ["DatasetRef", "METHODS", "RunResult", "TrainConfig", "get_method", "run_sft", "verify_adapter"]
