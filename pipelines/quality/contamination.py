"""Held-out checks: evaluation sets registered on a dataset version, and contamination.

A version registers an evaluation set (a file of prompts/references: JSON Lines or JSON
with a ``prompt``/``instruction``/``question``/``text`` field, or plain text one item per
line); the set applies to that version and every later one. **Contamination** is word
n-gram overlap between a training sample (its prompt and response) and an evaluation
item: a sample is contaminated when it shares at least one word n-gram with an item.

``n = 13`` by default, the overlap length GPT-3 used for its contamination study (Brown et
al. 2020, "Language Models are Few-Shot Learners", appendix C); lower it (e.g. 8) for short
items. Tokens are lower-cased runs of letters and digits; items shorter than ``n`` words
cannot match and are counted as ``short_items``. Computed in DuckDB (``datastore.quality.
contamination``): the items' n-gram hashes joined with the version's.
"""
from __future__ import annotations

import json
from pathlib import Path

from datastore import Store
from datastore import quality as Q
from datastore import versions as V
from datastore.errors import FormatError, WorkbenchError

DEFAULT_N = 13
TEXT_FIELDS = ("prompt", "instruction", "question", "input", "text", "query")


def read_items(path: str | Path) -> list[str]:
    """Evaluation items from a file (module docstring). For a JSON record, the texts of all
    present fields among :data:`TEXT_FIELDS` are joined by a newline; OpenAI ``messages``
    records give their user turns.

    Raises:
        FormatError: unreadable file, or a record without any text field (names the line).
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"cannot read evaluation set: {e}", file=str(p)) from None
    s = raw.lstrip()
    records: list = []
    if s.startswith("["):
        try:
            records = json.loads(s)
        except json.JSONDecodeError as e:
            raise FormatError(f"bad JSON: {e.msg}", file=str(p), line=e.lineno) from None
        lines = [None] * len(records)
    elif s.startswith("{"):
        lines = []
        for i, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FormatError(f"bad JSON: {e.msg}", file=str(p), line=i) from None
                lines.append(i)
    else:
        return [line for line in raw.splitlines() if line.strip()]
    items = []
    for k, (r, ln) in enumerate(zip(records, lines), 1):
        if isinstance(r, str):
            items.append(r)
            continue
        if not isinstance(r, dict):
            raise FormatError("an item must be an object or a string", file=str(p), line=ln, row=k)
        texts = [r[f] for f in TEXT_FIELDS if isinstance(r.get(f), str) and r[f].strip()]
        if not texts and isinstance(r.get("messages"), list):
            texts = [m.get("content") for m in r["messages"] if isinstance(m, dict) and m.get("role") == "user"
                     and isinstance(m.get("content"), str)]
        if not texts:
            raise FormatError(f"no text field (one of {', '.join(TEXT_FIELDS)})", file=str(p), line=ln, row=k)
        items.append("\n".join(texts))
    return items


def register_eval_set(workspace: str | Path, dataset: str, version: str | int | None, name: str,
                      path: str | Path | None = None, *, texts: list[str] | None = None, user: str | None) -> dict:
    """Register an evaluation set on a version (from a file or given ``texts``).

    Raises:
        PermissionDenied: the user may not edit samples. Conflict: the name is taken.
        WorkbenchError: empty set or no name.
    """
    from pipelines.policy import require
    if not name or not name.strip():
        raise WorkbenchError("an evaluation set needs a name")
    items = texts if texts is not None else read_items(path)
    if not items:
        raise WorkbenchError("the evaluation set is empty")
    with Store(workspace, create=False) as st:
        who, _ = require(st, user, "edit_samples", dataset)
        v = V.resolve(st, dataset, version)
        esid = Q.register_eval_set(st, v, name.strip(), items, source=str(path) if path else None, user=who)
    return {"eval_set_id": esid, "name": name.strip(), "items": len(items), "version": v.number}


def list_eval_sets(workspace: str | Path, dataset: str, version: str | int | None = None) -> list[dict]:
    """Evaluation sets that apply to the version (registered on it or an earlier one)."""
    with Store(workspace, create=False) as st:
        v = V.resolve(st, dataset, version)
        return Q.list_eval_sets(st, v.dataset_id, v.number)


def check(workspace: str | Path, dataset: str, version: str | int | None = None, *, n: int = DEFAULT_N,
          user: str | None = None, list_limit: int = 200) -> dict:
    """Contamination of a version against every evaluation set that applies to it:
    ``{"version", "n", "samples", "contaminated", "rate", "sets": [{"name", "items",
    "short_items", "contaminated", "rate"}], "overlapping": [{"sample_id", "eval_set",
    "item_no", "ngrams"}]}`` (the overlapping samples, first ``list_limit`` by id). Cached per
    version, n and set of evaluation sets."""
    from pipelines.policy import require
    if n < 1:
        raise WorkbenchError("n must be at least 1")
    with Store(workspace, create=False) as st:
        require(st, user, "read_datasets")
        v = V.resolve(st, dataset, version)
        sets = Q.list_eval_sets(st, v.dataset_id, v.number)
        key = json.dumps({"n": n, "sets": [s["eval_set_id"] for s in sets], "limit": list_limit})
        hit = Q.cache_get(st, v.version_id, "contamination", key)
        if hit is not None:
            return hit
        raw = Q.contamination(st, v, [s["eval_set_id"] for s in sets], n, list_limit=list_limit)
        names = {s["eval_set_id"]: s["name"] for s in sets}
        out = {"version": v.number, "n": n, "samples": v.n_samples, "contaminated": raw["contaminated"],
               "rate": round(raw["contaminated"] / v.n_samples, 6) if v.n_samples else None,
               "sets": [{"name": s["name"], "items": s["items"], "from_version": s["from_version"],
                         "short_items": raw["per_set"][s["eval_set_id"]]["short_items"],
                         "contaminated": raw["per_set"][s["eval_set_id"]]["contaminated"],
                         "rate": round(raw["per_set"][s["eval_set_id"]]["contaminated"] / v.n_samples, 6)
                         if v.n_samples else None} for s in sets],
               "overlapping": [{"sample_id": sid, "eval_set": names[es], "item_no": item, "ngrams": k}
                               for sid, es, item, k in raw["samples"]]}
        Q.cache_put(st, v.version_id, "contamination", key, out)
    return out


def summary(workspace: str | Path, dataset: str, version: str | int | None = None, *,
            user: str | None = None) -> dict:
    """For the dashboard: the cached or computed contamination, or ``{"status": "no evaluation sets"}``."""
    sets = list_eval_sets(workspace, dataset, version)
    if not sets:
        return {"status": "no evaluation sets"}
    return {"status": "checked", **check(workspace, dataset, version, user=user)}
