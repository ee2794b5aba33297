"""Several adapters on one base model: load on demand, switch per request, combine by weight.

:class:`AdapterPool` loads the base model once and attaches adapters to it as they are asked for
(peft ``PeftModel.from_pretrained`` for the first, ``load_adapter`` for the next); a request names
an adapter (or None for the base model) and the pool activates it with ``set_adapter`` (or
``disable_adapter`` for the base) under a lock, so requests from several threads never see each
other's adapter. The base weights are never reloaded or copied (tested: the same tensor objects
before and after switching).

:func:`combine_adapters` makes a new LoRA adapter from weighted existing ones with peft's
``add_weighted_adapter``. The default ``combination_type="cat"`` concatenates the low-rank
factors, so the new adapter's weight update is exactly ``sum_i w_i * B_i A_i * scale_i``
(peft docs; rank = the sum of the ranks); ``linear`` (same rank required) and ``svd`` are peft's
approximations. The new folder gets its own ``adapter_card.json`` (sources, weights, method,
base model, template) and the tokenizer of the first source (which carries the chat template).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path

from datastore.errors import NotFound, WorkbenchError

ADAPTER_CARD = "adapter_card.json"


def _sha256(path: Path) -> str | None:
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adapter_dir_of(path: str | Path) -> Path:
    """An adapter folder, or the ``adapter/`` folder of a run. Raises NotFound."""
    p = Path(path)
    if (p / "adapter_config.json").exists():
        return p
    if (p / "adapter" / "adapter_config.json").exists():
        return p / "adapter"
    raise NotFound(f"{p}: no adapter here (no adapter_config.json, nor adapter/adapter_config.json)")


def adapter_card(path: str | Path) -> dict:
    """What is known about an adapter: its run card (``../run_card.json`` of a run's adapter
    folder) or its own ``adapter_card.json`` (combined adapters); ``{}`` if neither exists."""
    a = adapter_dir_of(path)
    for c in (a / ADAPTER_CARD, a.parent / "run_card.json"):
        if c.exists():
            return json.loads(c.read_text(encoding="utf-8"))
    return {}


def list_adapters(workspace: str | Path) -> list[dict]:
    """Adapters of a workspace: each run's ``runs/<id>/adapter`` and each ``adapters/<name>``
    (combined adapters). Returns ``[{"name", "path", "stage", "template", "base_model", "created_at"}]``
    sorted by name."""
    ws = Path(workspace)
    found = []
    for pattern in ("runs/*/adapter", "adapters/*"):
        for d in sorted(ws.glob(pattern)):
            if not (d / "adapter_config.json").exists():
                continue
            card = adapter_card(d)
            tpl = card.get("template")
            found.append({"name": d.parent.name if d.name == "adapter" else d.name, "path": str(d),
                          "stage": card.get("stage") or ("combined" if card.get("sources") else "sft"),
                          "template": tpl.get("name") if isinstance(tpl, dict) else tpl,
                          "base_model": (card.get("base_model") or {}).get("name")
                          if isinstance(card.get("base_model"), dict) else card.get("base_model"),
                          "created_at": card.get("created_at")})
    return sorted(found, key=lambda r: r["name"])


class AdapterPool:
    """One base model with adapters attached on demand.

    Args:
        base_model: folder of the base model (None: the embedded SmolLM2-135M-Instruct).
    Attributes:
        loaded: ``{adapter name: adapter folder}`` attached so far.
        base_loads: how many times the base model was loaded (1 for the pool's life).
    """

    def __init__(self, base_model: str | Path | None = None):
        from pipelines.models import ensure_base_model, load_model, load_tokenizer

        self.base_path = Path(base_model) if base_model else ensure_base_model()
        self.base = load_model(self.base_path)
        self.base_loads = 1
        self.tokenizer = load_tokenizer(self.base_path)
        self.model = None  # the PeftModel once an adapter is attached
        self.loaded: dict[str, Path] = {}
        self._lock = threading.RLock()
        self._base_config_sha = _sha256(self.base_path / "config.json")

    def _check_base(self, path: Path) -> None:
        card = adapter_card(path)
        bm = card.get("base_model")
        sha = bm.get("config_sha256") if isinstance(bm, dict) else card.get("base_config_sha256")
        if sha and self._base_config_sha and sha != self._base_config_sha:
            raise WorkbenchError(f"adapter {path} was trained on another base model (config sha256 {sha[:12]}, "
                                 f"this base {self._base_config_sha[:12]})")

    def ensure(self, name: str, path: str | Path) -> None:
        """Attach the adapter at ``path`` as ``name`` unless it is attached already.

        Raises:
            NotFound: no adapter there. WorkbenchError: another base model, or an adapter peft cannot
            attach beside the loaded ones (e.g. a prompt-learning adapter next to LoRA).
        """
        with self._lock:
            if name in self.loaded:
                return
            a = adapter_dir_of(path)
            self._check_base(a)
            from peft import PeftModel
            try:
                if self.model is None:
                    self.model = PeftModel.from_pretrained(self.base, str(a), adapter_name=name, is_trainable=False)
                else:
                    self.model.load_adapter(str(a), adapter_name=name, is_trainable=False)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise WorkbenchError(f"cannot attach adapter {a}: {e}") from e
            self.model.eval()
            self.loaded[name] = a

    @contextlib.contextmanager
    def using(self, name: str | None):
        """Context in which :attr:`active_model` computes with adapter ``name`` (None: the base).

        Holds the pool's lock for the duration, so concurrent requests are served one at a time,
        each with its own adapter."""
        with self._lock:
            if name is None:
                if self.model is None:
                    yield self.base
                else:
                    with self.model.disable_adapter():
                        yield self.model
                return
            if name not in self.loaded:
                raise NotFound(f"adapter '{name}' is not loaded (known: {', '.join(self.loaded) or 'none'})")
            self.model.set_adapter(name)
            yield self.model

    def base_weight_ids(self) -> list[int]:
        """Identities of the base model's weight tensors (to show they are never reloaded)."""
        return [id(p) for n, p in self.base.named_parameters() if "lora_" not in n]


def combine_adapters(sources: list[str | Path], weights: list[float], out_dir: str | Path, *,
                     combination_type: str = "cat", name: str | None = None,
                     base_model: str | Path | None = None) -> Path:
    """Combine LoRA adapters by weight into a new adapter folder with its own card.

    Args:
        sources: adapter folders (or run folders) trained on the same base model.
        weights: one weight per source (may be negative).
        out_dir: the new adapter folder (must not exist or be empty).
        combination_type: peft's ``add_weighted_adapter`` type (``cat`` exact, ``linear``, ``svd``, ...).
    Returns:
        ``out_dir``, holding ``adapter_config.json``, the weights, the tokenizer and ``adapter_card.json``.
    Raises:
        WorkbenchError: fewer than two sources, weights of another length, a non-LoRA adapter, an
        existing non-empty ``out_dir``, or peft refusing the combination (e.g. ``linear`` with
        different ranks).
    """
    if len(sources) < 2:
        raise WorkbenchError("combining needs at least two adapters")
    if len(weights) != len(sources):
        raise WorkbenchError(f"{len(weights)} weight(s) for {len(sources)} adapter(s)")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError(f"{out} exists and is not empty")
    dirs = [adapter_dir_of(s) for s in sources]
    for d in dirs:
        cfg = json.loads((d / "adapter_config.json").read_text(encoding="utf-8"))
        if cfg.get("peft_type") != "LORA":
            raise WorkbenchError(f"{d} is a {cfg.get('peft_type')} adapter; only LoRA adapters combine by weight")
    pool = AdapterPool(base_model)
    names = [f"src{i}" for i in range(len(dirs))]
    for n, d in zip(names, dirs):
        pool.ensure(n, d)
    new = name or out.name
    try:
        pool.model.add_weighted_adapter(names, [float(w) for w in weights], adapter_name="combined",
                                        combination_type=combination_type)
    except (ValueError, RuntimeError) as e:
        raise WorkbenchError(f"peft could not combine the adapters ({combination_type}): {e}") from e
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    pool.model.save_pretrained(str(tmp), selected_adapters=["combined"])
    saved = tmp / "combined" if (tmp / "combined" / "adapter_config.json").exists() else tmp
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    shutil.move(str(saved), str(out))
    shutil.rmtree(tmp, ignore_errors=True)
    from pipelines.models import load_tokenizer
    try:
        load_tokenizer(dirs[0]).save_pretrained(str(out))
    except (OSError, ValueError):
        pool.tokenizer.save_pretrained(str(out))
    cards = [adapter_card(d) for d in dirs]
    templates = {json.dumps(c.get("template"), sort_keys=True) for c in cards}
    card = {"name": new, "stage": "combined", "combination_type": combination_type,
            "sources": [{"path": str(d), "weight": float(w), "run_id": c.get("run_id"), "stage": c.get("stage")}
                        for d, w, c in zip(dirs, weights, cards)],
            "base_model": {"name": pool.base_path.name, "path": str(pool.base_path),
                           "config_sha256": pool._base_config_sha},
            "template": cards[0].get("template") if len(templates) == 1 else None,
            "templates_differ": len(templates) > 1,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (out / ADAPTER_CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out


def combine_in_workspace(workspace: str | Path, sources: list[str | Path], weights: list[float], name: str, *,
                         user: str, combination_type: str = "cat") -> Path:
    """:func:`combine_adapters` into ``workspace/adapters/<name>``; needs the ``train`` permission."""
    from datastore import Store
    from pipelines import policy

    with Store(workspace) as st:
        policy.require(st, user, "train", name)
    return combine_adapters(sources, weights, Path(workspace) / "adapters" / name, combination_type=combination_type)


__all__ = ["ADAPTER_CARD", "AdapterPool", "adapter_card", "adapter_dir_of", "combine_adapters",
           "combine_in_workspace", "list_adapters"]
