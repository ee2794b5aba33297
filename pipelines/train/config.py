"""The typed configuration of a training run (written to ``run_dir/train_config.json``).

A run is configured only through this file (docs/architecture.md section 6): the launcher
(:mod:`pipelines.train.runs`) writes it, the training process
(``python -m pipelines.train.runner RUN_DIR``) reads it back with :meth:`TrainConfig.load`.

Impossible settings are refused here (pydantic) or by :func:`pipelines.train.validate.validate_config`
before any process starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datastore.errors import WorkbenchError

Method = Literal["lora", "qlora", "prefix", "ptuning", "prompt", "full"]
PEFT_PROMPT_METHODS = ("prefix", "ptuning", "prompt")


class DatasetRef(BaseModel):
    """One pinned dataset version the run trains on.

    ``version`` names the version to pin at launch (number, tag or id; None: the head); the
    launcher fills ``version_number``, ``version_id`` and ``content_hash``. A ``content_hash``
    given by the user must match the version's, or the launch stops. ``weight`` is the
    dataset's share of the training mixture (relative to the other weights; see
    :func:`pipelines.train.data.mix`); when no dataset has one, each contributes its own size.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str
    version: str | int | None = None
    version_number: int | None = None
    version_id: str | int | None = None
    content_hash: str | None = Field(None, description="hex SHA-256 content hash of the version")
    weight: float | None = Field(None, gt=0, description="mixing weight; None: the version's own size")


class ConfigFile:
    """``save``/``load`` of a pydantic run config as a JSON (or YAML) file; shared by
    :class:`TrainConfig` and ``pipelines.preference.dpo.DPORunConfig``. ``config_label`` names
    the kind of config in error messages."""

    config_label: ClassVar[str] = "config"

    def save(self, path: str | Path) -> Path:
        """Write the config as indented JSON (parents created); returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path):
        """Read a config file (JSON, or YAML when the name ends in .yaml/.yml).

        Raises ``WorkbenchError`` naming the file on bad content."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            if p.suffix in (".yaml", ".yml"):
                import yaml
                return cls.model_validate(yaml.safe_load(text) or {})
            return cls.model_validate_json(text)
        except FileNotFoundError as e:
            raise WorkbenchError(f"{cls.config_label} not found: {p}") from e
        except ValueError as e:  # pydantic.ValidationError derives from ValueError
            raise WorkbenchError(f"{p}: invalid {cls.config_label}: {e}") from e


class TrainConfig(ConfigFile, BaseModel):
    """Supervised fine-tuning settings.

    Units: ``learning_rate`` per step (AdamW), ``max_length_tokens`` per sequence after the
    template, ``warmup_ratio`` a fraction of ``max_steps``, ``max_grad_norm`` the L2 clip.
    The effective batch is ``per_device_batch_size * grad_accum`` sequences per step (per device).

    Method settings (Hu et al. 2021 LoRA; Kalajdzievski 2023 rsLoRA; Liu et al. 2024 DoRA;
    Dettmers et al. 2023 QLoRA; Li & Liang 2021 prefix tuning; Liu et al. 2021 P-tuning;
    Lester et al. 2021 prompt tuning) map one to one onto ``peft`` config fields.
    Regularizers: ``label_smoothing`` (Szegedy et al. 2016), ``rdrop_alpha`` (Liang et al. 2021,
    weight of the symmetric KL between two dropout passes), ``layer_drop`` (Fan et al. 2019
    LayerDrop / Huang et al. 2016 stochastic depth: each decoder block is skipped with this
    probability during training). ``layerwise_lr_decay`` (Howard & Ruder 2018; Clark et al. 2020):
    block ``i`` of ``L`` trains at ``lr * decay ** (L - 1 - i)``, embeddings at ``lr * decay ** L``.
    ``freeze_lower_blocks``: the lowest N decoder blocks (and, for full fine-tuning, the embeddings)
    get no update.
    """

    model_config = ConfigDict(extra="forbid")
    config_label: ClassVar[str] = "training config"

    base_model: str | None = Field(None, description="folder of the base model; None: the embedded "
                                                     "SmolLM2-135M-Instruct (pipelines.models)")
    base_model_name: str | None = None
    method: Method = "lora"
    # LoRA / QLoRA
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    use_rslora: bool = False
    use_dora: bool = False
    # QLoRA
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_double_quant: bool = True
    optim: str | None = Field(None, description="transformers optimizer name; None: adamw_torch, or "
                                                "paged_adamw_32bit for QLoRA on a GPU")
    # prompt-learning methods
    num_virtual_tokens: int = Field(16, ge=1)
    encoder_hidden_size: int = Field(128, ge=1, description="P-tuning prompt encoder width")
    # schedule
    max_steps: int = Field(30, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    per_device_batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length_tokens: int = Field(256, ge=8)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    max_grad_norm: float = Field(1.0, gt=0)
    layerwise_lr_decay: float | None = Field(None, gt=0, le=1)
    freeze_lower_blocks: int = Field(0, ge=0)
    # regularizers
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    rdrop_alpha: float = Field(0.0, ge=0)
    attention_dropout: float = Field(0.0, ge=0, lt=1, description="set on the model config (a dropout "
                                                                   "source for R-Drop)")
    layer_drop: float = Field(0.0, ge=0, le=1)
    # data
    seed: int = 42
    template: str = "chatml"
    serve_template: str | None = Field(None, description="template the preflight compares with; None: the "
                                                         "training template, which the run writes into its "
                                                         "saved tokenizer")
    datasets: list[DatasetRef] = Field(default_factory=list)
    eval_ratio: float = Field(0.1, ge=0, lt=1, description="share of each version held out for evaluation")
    assistant_only_loss: bool = True
    train_on_reasoning: bool = Field(True, description="learn the reasoning the template writes (reasoning_content "
                                                       "or thinking, e.g. inside <think>...</think>); False keeps it "
                                                       "in the input but out of the labels (answer and tool calls "
                                                       "stay learned)")
    packing: bool = False
    over_length_policy: Literal["drop", "truncate", "fail"] = Field(
        "drop", description="preflight policy for samples longer than max_length_tokens (the dropped ones are "
                            "listed in preflight.json and left out of training)")
    acknowledge_licences: list[str] = Field(
        default_factory=list, description="licence ids of the training data that forbid commercial use "
                                          "(non-commercial, research-only) which the launcher accepts; a "
                                          "launch on such data without them is refused "
                                          "(pipelines.train.licences)")
    # process
    logging_steps: int = Field(1, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps; None: before and after")
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps; None: only on stop "
                                                           "and at the end")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: torch's default). "
                                                             "In the config because the thread count changes "
                                                             "the float summation order, so a re-run needs it")
    probe_prompt: str = Field("Give three tips for staying healthy.",
                              description="instruction used to check the saved adapter")

    @field_validator("acknowledge_licences")
    @classmethod
    def _licence_ids(cls, v: list[str]) -> list[str]:
        from pipelines.curate.licences import normalize_licence
        return sorted({normalize_licence(x) for x in v if normalize_licence(x)})

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("target_modules must name at least one module")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.packing and self.method in PEFT_PROMPT_METHODS:
            raise ValueError(f"packing cannot be combined with {self.method}: virtual tokens are prepended "
                             "to each row, so packed samples would share them and their positions")
        if self.use_dora and self.method == "qlora":
            pass  # peft supports DoRA on 4-bit layers
        if self.rdrop_alpha > 0 and self.lora_dropout == 0 and self.attention_dropout == 0 \
                and self.layer_drop == 0:
            raise ValueError("R-Drop needs a dropout source (lora_dropout, attention_dropout or layer_drop "
                             "above 0); otherwise both passes are identical and its KL term is always 0")
        return self

