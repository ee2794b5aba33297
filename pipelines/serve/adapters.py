"""Several adapters on one base model: load on demand, switch per request, combine by weight;
full fine-tunes served from their own model folder.

:class:`AdapterPool` loads the base model once and attaches adapters to it as they are asked for
(peft ``PeftModel.from_pretrained`` for the first, ``load_adapter`` for the next); a request names
an adapter (or None for the base model) and the pool activates it with ``set_adapter`` (or
``disable_adapter`` for the base) under a lock, so requests from several threads never see each
other's adapter. The base weights are never reloaded or copied (tested: the same tensor objects
before and after switching).

peft holds adapters of one PEFT type at a time on a model ("Cannot combine adapters with different
peft types"): LoRA, QLoRA and DoRA adapters (all type ``LORA``) stay attached side by side, while
asking for an adapter of another type (prefix tuning, P-tuning, prompt tuning, or LoRA after one of
those) first unloads every attached adapter (``unload()`` restores the base's own modules, without
merging; a prompt-learning wrapper leaves the base untouched), so two types never combine. A full
fine-tune (a run folder with ``model/`` instead of ``adapter/``) is loaded as its own model with its
own tokenizer, one at a time beside the base.

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


#: peft ``peft_type`` -> the method's name as the pages show it (DoRA is LoRA with ``use_dora``).
PEFT_LABELS = {"LORA": "LoRA", "PREFIX_TUNING": "prefix tuning", "P_TUNING": "P-tuning",
               "PROMPT_TUNING": "prompt tuning"}
FULL_LABEL = "full fine-tune"


def adapter_dir_of(path: str | Path) -> Path:
    """An adapter folder, or the ``adapter/`` folder of a run. Raises NotFound."""
    p = Path(path)
    if (p / "adapter_config.json").exists():
        return p
    if (p / "adapter" / "adapter_config.json").exists():
        return p / "adapter"
    raise NotFound(f"{p}: no adapter here (no adapter_config.json, nor adapter/adapter_config.json)")


def saved_dir_of(path: str | Path) -> Path:
    """What a run saved: its adapter folder (:func:`adapter_dir_of`) or the ``model/`` folder of a
    full fine-tune (``config.json`` and weights). Raises NotFound."""
    p = Path(path)
    try:
        return adapter_dir_of(p)
    except NotFound:
        pass
    for d in (p, p / "model"):
        if (d / "config.json").exists() and (any(d.glob("*.safetensors")) or any(d.glob("*.bin"))):
            return d
    raise NotFound(f"{p}: no adapter nor full model here (no adapter_config.json, adapter/ or model/ with weights)")


def peft_type_of(path: str | Path) -> str | None:
    """The ``peft_type`` of a saved adapter (``LORA``, ``PROMPT_TUNING``, ...), None for a full model."""
    d = saved_dir_of(path)
    cfg = d / "adapter_config.json"
    return json.loads(cfg.read_text(encoding="utf-8")).get("peft_type") if cfg.exists() else None


def adapter_card(path: str | Path) -> dict:
    """What is known about an adapter or a full fine-tune: its run card (``../run_card.json`` of a
    run's ``adapter/`` or ``model/`` folder) or its own ``adapter_card.json`` (combined adapters);
    ``{}`` if neither exists."""
    a = saved_dir_of(path)
    for c in (a / ADAPTER_CARD, a.parent / "run_card.json"):
        if c.exists():
            return json.loads(c.read_text(encoding="utf-8"))
    return {}


def method_label(path: str | Path) -> str:
    """The method of what ``path`` holds, as the pages name it: ``LoRA``, ``QLoRA``, ``DoRA``,
    ``prefix tuning``, ``P-tuning``, ``prompt tuning``, ``full fine-tune``, ``combined LoRA``
    (read from the adapter's config, with QLoRA and DPO from the run card)."""
    d = saved_dir_of(path)
    ptype = peft_type_of(d)
    if ptype is None:
        return FULL_LABEL
    card = adapter_card(d)
    label = PEFT_LABELS.get(ptype, ptype)
    if ptype == "LORA":
        cfg = json.loads((d / "adapter_config.json").read_text(encoding="utf-8"))
        label = "DoRA" if cfg.get("use_dora") else label
        if card.get("method") == "qlora":
            label = "QLoRA" + (" + DoRA" if cfg.get("use_dora") else "")
        if card.get("sources"):
            label = "combined " + label
    if card.get("stage") == "dpo":
        label = f"DPO ({label})"
    return label


def describe(path: str | Path) -> dict:
    """``{"name", "path", "kind" ("adapter" | "model"), "method", "stage", "template", "base_model",
    "created_at"}`` of a run's adapter or model folder (or a combined adapter). Raises NotFound."""
    d = saved_dir_of(path)
    card = adapter_card(d)
    tpl = card.get("template")
    bm = card.get("base_model")
    return {"name": d.parent.name if d.name in ("adapter", "model") else d.name, "path": str(d),
            "kind": "adapter" if (d / "adapter_config.json").exists() else "model", "method": method_label(d),
            "stage": card.get("stage") or ("combined" if card.get("sources") else "sft"),
            "template": tpl.get("name") if isinstance(tpl, dict) else tpl,
            "base_model": bm.get("name") if isinstance(bm, dict) else bm,
            "created_at": card.get("created_at")}


def list_servable(workspace: str | Path) -> list[dict]:
    """Everything the Chat page can serve, sorted by name: each run's ``runs/<id>/adapter`` (LoRA,
    QLoRA, DoRA, prefix, P-tuning, prompt tuning, DPO), each finished full fine-tune's
    ``runs/<id>/model`` (with its run card) and each ``adapters/<name>`` (combined adapters); rows
    as :func:`describe` gives them."""
    ws = Path(workspace)
    found = []
    for pattern in ("runs/*/adapter", "runs/*/model", "adapters/*"):
        for d in sorted(ws.glob(pattern)):
            try:
                found.append(describe(d))
            except NotFound:  # an unfinished run, or a folder of something else
                continue
    return sorted(found, key=lambda r: r["name"])


def list_adapters(workspace: str | Path) -> list[dict]:
    """Adapters of a workspace: each run's ``runs/<id>/adapter`` and each ``adapters/<name>``
    (combined adapters); :func:`list_servable` without full fine-tunes."""
    return [r for r in list_servable(workspace) if r["kind"] == "adapter"]


class AdapterPool:
    """One base model with adapters attached on demand, and one full fine-tune at a time.

    Args:
        base_model: folder of the base model (None: the embedded SmolLM2-135M-Instruct).
    Attributes:
        loaded: ``{name: folder}`` of what can answer now: the attached adapters and the loaded
            full fine-tune (an adapter of another PEFT type, or another full fine-tune, evicts them).
        peft_type: the PEFT type of the attached adapters (None when none is attached).
        base_loads: how many times the base model was loaded (1 for the pool's life).
        unloads: how many times attached adapters were unloaded to switch PEFT type.
        last: :func:`describe` of what answered the last request through :meth:`using` (kind
            ``base`` for the base model; None before the first request).
    """

    def __init__(self, base_model: str | Path | None = None):
        from pipelines.models import ensure_base_model, load_model, load_tokenizer

        self.base_path = Path(base_model) if base_model else ensure_base_model()
        self.base = load_model(self.base_path)
        self.base_loads = 1
        self.tokenizer = load_tokenizer(self.base_path)
        self.model = None  # the PeftModel once an adapter is attached
        self.peft_type: str | None = None
        self.loaded: dict[str, Path] = {}
        self.unloads = 0
        self.last: dict | None = None
        self._full: dict[str, tuple] = {}  # name -> (model, tokenizer) of the one full fine-tune loaded
        self._lock = threading.RLock()
        self._base_config_sha = _sha256(self.base_path / "config.json")

    def _check_base(self, path: Path) -> None:
        card = adapter_card(path)
        bm = card.get("base_model")
        sha = bm.get("config_sha256") if isinstance(bm, dict) else card.get("base_config_sha256")
        if sha and self._base_config_sha and sha != self._base_config_sha:
            raise WorkbenchError(f"adapter {path} was trained on another base model (config sha256 {sha[:12]}, "
                                 f"this base {self._base_config_sha[:12]})")

    def _unload_adapters(self) -> None:
        """Detach every adapter: LoRA layers are replaced by the base's own modules (no merge); a
        prompt-learning wrapper is dropped (it never changed the base)."""
        if self.model is None:
            return
        from peft.tuners.tuners_utils import BaseTuner
        if isinstance(self.model.base_model, BaseTuner):  # tuner adapters (LoRA family) live inside the base
            self.base = self.model.unload()
        self.model = None
        self.peft_type = None
        self.loaded = {n: p for n, p in self.loaded.items() if n in self._full}
        self.unloads += 1

    def ensure(self, name: str, path: str | Path) -> None:
        """Make ``name`` answerable from ``path`` (a run folder, its ``adapter/`` or ``model/``, or
        an adapter folder) unless it already is.

        An adapter of the attached PEFT type is attached beside the others; one of another type
        first unloads them. A full fine-tune replaces the previously loaded one.

        Raises:
            NotFound: nothing servable there. WorkbenchError: an adapter trained on another base
            model, or one peft cannot attach.
        """
        with self._lock:
            if name in self.loaded:
                return
            d = saved_dir_of(path)
            ptype = peft_type_of(d)
            if ptype is None:
                self._load_full(name, d)
                return
            self._check_base(d)
            from peft import PeftModel
            if self.model is not None and ptype != self.peft_type:
                self._unload_adapters()
            try:
                if self.model is None:
                    self.model = PeftModel.from_pretrained(self.base, str(d), adapter_name=name, is_trainable=False)
                else:
                    self.model.load_adapter(str(d), adapter_name=name, is_trainable=False)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise WorkbenchError(f"cannot attach adapter {d}: {e}") from e
            self.model.eval()
            self.peft_type = ptype
            self.loaded[name] = d

    def _load_full(self, name: str, d: Path) -> None:
        from pipelines.models import load_model, load_tokenizer

        for old in list(self._full):  # one full fine-tune in memory at a time
            del self._full[old]
            self.loaded.pop(old, None)
        try:
            model = load_model(d).eval()
            tok = load_tokenizer(d)
        except (OSError, ValueError) as e:
            raise WorkbenchError(f"cannot load the full fine-tune in {d}: {e}") from e
        self._full[name] = (model, tok)
        self.loaded[name] = d

    def tokenizer_for(self, name: str | None):
        """The tokenizer to encode for ``name``: a full fine-tune's own, else the base's."""
        with self._lock:
            return self._full[name][1] if name in self._full else self.tokenizer

    @contextlib.contextmanager
    def using(self, name: str | None, path: str | Path | None = None):
        """Context in which :attr:`active_model` computes with adapter ``name`` (None: the base).

        With ``path``, ``name`` is first made answerable (:meth:`ensure`) under the same lock, so a
        concurrent request cannot evict it in between. Holds the pool's lock for the duration, so
        concurrent requests are served one at a time, each with its own adapter."""
        with self._lock:
            if name is not None and path is not None:
                self.ensure(name, path)
            if name is None:
                self.last = {"name": None, "path": str(self.base_path), "kind": "base", "method": "base model",
                             "base_model": self.base_path.name}
                if self.model is None:
                    yield self.base
                else:
                    with self.model.disable_adapter():
                        yield self.model
                return
            if name not in self.loaded:
                raise NotFound(f"adapter '{name}' is not loaded (known: {', '.join(self.loaded) or 'none'})")
            self.last = describe(self.loaded[name]) | {"name": name}
            if name in self._full:
                yield self._full[name][0]
                return
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
           "combine_in_workspace", "describe", "list_adapters", "list_servable", "method_label", "peft_type_of",
           "saved_dir_of"]
