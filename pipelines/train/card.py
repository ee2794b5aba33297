"""The run card (``run_dir/run_card.json``), merge-and-save of LoRA, and re-running a card.

A run card records what made an adapter: the dataset versions (name, number, id, content hash,
mixing weight), the licences of their samples with counts and the acknowledged ones
(:mod:`pipelines.train.licences`), the chat template's hash, the base model and the SHA-256 of
its weight and tokenizer files, the loss-mask settings (assistant turns only, reasoning learned
or not), the whole config with its seed, the metrics, the library versions, wall time and peak
memory. :func:`rerun` trains again from a card with the same config and the same exported data
(verified by content hash), so the loss curve can be compared (``compare_losses``).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
from datetime import datetime, timezone
from pathlib import Path

from datastore.errors import WorkbenchError

CARD = "run_card.json"
LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "tokenizers")
_HASH_CACHE = ".wb-sha256.json"


def sha256_file(path: str | Path) -> str | None:
    """SHA-256 of a file, or None when it does not exist. Large files are hashed once per
    (size, mtime) and the result kept beside them in ``.wb-sha256.json`` when that folder is writable."""
    p = Path(path)
    if not p.exists():
        return None
    st = p.stat()
    key = f"{p.name}:{st.st_size}:{int(st.st_mtime_ns)}"
    cache_file = p.parent / _HASH_CACHE
    cache = {}
    if st.st_size > (8 << 20) and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
            if key in cache:
                return cache[key]
        except ValueError:
            cache = {}
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if st.st_size > (8 << 20):
        try:
            cache[key] = digest
            cache_file.write_text(json.dumps(cache))
        except OSError:
            pass
    return digest


def library_versions() -> dict:
    """``{"python": ..., "<library>": version}`` of the training stack."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


def peak_memory(device: str) -> dict:
    """Peak resident memory of this process in MB (``ru_maxrss``, Linux reports KB) and, on CUDA,
    the peak allocated GPU memory in MB (``torch.cuda.max_memory_allocated``)."""
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        import torch
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


def base_model_files(base_path: Path) -> dict:
    """SHA-256 of the base model's weight files, config and tokenizer."""
    files = sorted(p.name for p in base_path.glob("*.safetensors")) + ["config.json", "tokenizer.json"]
    return {name: sha256_file(base_path / name) for name in files}


def build_card(*, run_dir: Path, config, template, base_path: Path, base_name: str, data_stats: dict,
               trainable: int, total_params: int, steps: int, stopped: bool, losses: list[dict],
               eval_losses: list[dict], metrics: dict, train_time_s: float, wall_time_s: float, device: str,
               tokens_seen: int, tokens_per_s: float | None, saved: str, optim: str) -> dict:
    """The run card dict (see the module doc)."""
    from pipelines.render import template_info
    from pipelines.train.licences import card_section

    manifest = Path(run_dir) / "data" / "manifest.json"
    datasets = (json.loads(manifest.read_text())["datasets"] if manifest.exists()
                else [d.model_dump(mode="json") for d in config.datasets])
    files = base_model_files(base_path)
    return {
        "run_id": Path(run_dir).name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": config.method,
        "base_model": {"name": base_name, "path": str(base_path), "files_sha256": files,
                       "config_sha256": files.get("config.json")},
        "tokenizer": {"sha256": files.get("tokenizer.json"), "chat_template_sha256": template.sha256},
        "template": template_info(template),
        # a DPO config has neither field: its loss covers the responses only, reasoning included
        "loss_mask": {"assistant_only": getattr(config, "assistant_only_loss", True),
                      "train_on_reasoning": getattr(config, "train_on_reasoning", True)},
        "datasets": datasets,
        "licences": card_section(run_dir, config),
        "config": config.model_dump(mode="json"),
        "seed": config.seed,
        "data": data_stats,
        "trainable_params": trainable,
        "total_params": total_params,
        "steps": steps,
        "stopped_early": stopped,
        "losses": losses,
        "eval_losses": eval_losses,
        "first_loss": losses[0]["loss"] if losses else None,
        "final_loss": losses[-1]["loss"] if losses else None,
        "metrics": metrics,
        "device": device,
        "optim": optim,
        "tokens_seen": tokens_seen,
        "tokens_per_s": round(tokens_per_s, 2) if tokens_per_s else None,
        "train_time_s": round(train_time_s, 3),
        "wall_time_s": round(wall_time_s, 3),
        "memory": peak_memory(device),
        "artifacts": {"saved": saved, "adapter": saved, "probe_logits": "probe_logits.pt",
                      "progress": "progress.jsonl", "log": "train.log", "config": "train_config.json"},
        "software": library_versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def write_card(run_dir: Path, card: dict) -> Path:
    p = Path(run_dir) / CARD
    tmp = p.with_name(CARD + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def read_card(run_dir: str | Path) -> dict:
    """The run card. Raises ``WorkbenchError`` when the run has none (not finished)."""
    p = Path(run_dir) / CARD
    if not p.exists():
        raise WorkbenchError(f"{run_dir} has no run card (the run has not finished)")
    return json.loads(p.read_text(encoding="utf-8"))


def update_metrics(run_dir: str | Path, metrics: dict) -> dict:
    """Merge ``metrics`` into the card's ``metrics`` (evaluation adds ROUGE-L, BLEU...)."""
    card = read_card(run_dir)
    card.setdefault("metrics", {}).update(metrics)
    write_card(Path(run_dir), card)
    return card


def merge_and_save(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Merge a LoRA run's adapter into its base model and save the result (safetensors plus the
    tokenizer with the run's chat template) to ``out_dir`` (default ``run_dir/merged``).

    Raises:
        WorkbenchError: the run is not a finished LoRA/QLoRA run (other methods have nothing to merge).
    """
    from pipelines.models import load_model, load_tokenizer
    from pipelines.train.methods import get_method

    run_dir = Path(run_dir)
    card = read_card(run_dir)
    if card["method"] not in ("lora", "qlora"):
        raise WorkbenchError(f"merge applies to LoRA and QLoRA runs; {run_dir.name} is a {card['method']} run")
    out = Path(out_dir) if out_dir else run_dir / "merged"
    base = load_model(card["base_model"]["path"])  # full precision, also for QLoRA adapters
    model = get_method("lora").load(base, run_dir / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
    load_tokenizer(run_dir / "adapter").save_pretrained(str(out))
    from pipelines.train.licences import write_model_card
    write_model_card(out, card)
    return out


def rerun(run_dir: str | Path, new_run_dir: str | Path, *, max_steps: int | None = None):
    """Train again from a finished run's card: the same config (seed included) on the same exported
    data (copied and verified against the pinned content hashes). Returns the :class:`RunResult`."""
    import shutil

    from pipelines.train.config import TrainConfig
    from pipelines.train.runner import train_from_run_dir

    run_dir, new = Path(run_dir), Path(new_run_dir)
    card = read_card(run_dir)
    cfg = TrainConfig.model_validate(card["config"])
    if max_steps is not None:
        cfg = cfg.model_copy(update={"max_steps": max_steps})
    new.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir / "data", new / "data", dirs_exist_ok=True)
    if (run_dir / "preflight.json").exists():  # the same samples dropped by the preflight
        shutil.copy2(run_dir / "preflight.json", new / "preflight.json")
    cfg.save(new / "train_config.json")
    return train_from_run_dir(new)


def compare_losses(card_a: dict, card_b: dict) -> float:
    """Largest absolute difference between two cards' step losses (same steps required).

    Raises:
        WorkbenchError: the curves have different steps."""
    a = {r["step"]: r["loss"] for r in card_a["losses"]}
    b = {r["step"]: r["loss"] for r in card_b["losses"]}
    if set(a) != set(b):
        raise WorkbenchError(f"loss curves cover different steps ({sorted(a)[:5]}... vs {sorted(b)[:5]}...)")
    return max((abs(a[k] - b[k]) for k in a), default=0.0)
