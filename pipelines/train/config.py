"""The typed configuration of a training run (written to ``run_dir/train_config.json``).

A run is configured only through this file (ARCHITECTURE.md section 6): the job layer
writes it, the training process reads it back with :meth:`TrainConfig.load`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datastore.errors import WorkbenchError


class DatasetRef(BaseModel):
    """One pinned dataset version the run trains on."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    version_number: int | None = None
    version_id: str | int | None = None
    content_hash: str | None = Field(None, description="hex SHA-256 content hash of the version")


class TrainConfig(BaseModel):
    """Supervised fine-tuning settings.

    Units: ``learning_rate`` per step (AdamW), ``max_length_tokens`` per sequence after the
    template, ``warmup_ratio`` a fraction of ``max_steps``, ``max_grad_norm`` the L2 clip.
    The effective batch is ``per_device_batch_size * grad_accum`` sequences per step.
    """

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(None, description="folder of the base model; None: the embedded "
                                                     "SmolLM2-135M-Instruct (pipelines.models)")
    base_model_name: str | None = None
    method: Literal["lora"] = "lora"
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    max_steps: int = Field(30, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    per_device_batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length_tokens: int = Field(256, ge=8)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 42
    template: str = "chatml"
    datasets: list[DatasetRef] = Field(default_factory=list)
    logging_steps: int = Field(1, ge=1)
    probe_prompt: str = Field("Give three tips for staying healthy.",
                              description="instruction used to check the saved adapter")

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("target_modules must name at least one module")
        return v

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a config file. Raises ``WorkbenchError`` naming the file on bad content."""
        p = Path(path)
        try:
            return cls.model_validate_json(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise WorkbenchError(f"training config not found: {p}") from e
        except ValueError as e:  # pydantic.ValidationError derives from ValueError
            raise WorkbenchError(f"{p}: invalid training config: {e}") from e
