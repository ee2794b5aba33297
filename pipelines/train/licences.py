"""Licences of a run's training data: the launch check, the run card's section, the model card.

Which licences need an acknowledgement: those whose terms forbid commercial use
(:func:`pipelines.curate.licences.classify` gives ``commercial == "forbidden"``: the Creative
Commons NonCommercial licences, C-UDA and other research-only terms). A model trained on such
data carries the restriction, so :func:`check_acknowledged` refuses the launch until the config
names each such licence in ``acknowledge_licences`` (``wb train --acknowledge-licence``, the
Train page's checkbox); the acknowledgement is recorded in the run card.

Counts are samples of the pinned dataset versions (what the run folder's ``data/`` holds, the
held-out share included), one line per licence in the form ``cc-by-nc-4.0: 6 samples``
(:func:`pipelines.curate.licences.licence_lines`).

The model card (``README.md`` in ``adapter/``, ``model/`` or a merged model's folder) gets the
licences in its metadata and text. Metadata keys follow the Hugging Face model card spec
(https://huggingface.co/docs/hub/model-cards): ``license`` is the one licence id of the data, or
``other`` with ``license_name`` when the data mixes licences; ``training_data_licences`` (ours)
lists the lines. peft's template line ``- **License:** [More Information Needed]`` is replaced.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from pipelines.curate.licences import licence_lines, licence_list, licences_of_versions, restricted, warnings_for
from pipelines.train.validate import ConfigRefused

#: ``license_name`` of a model card whose training data mixes licences.
MIXED = "training-data-mixture"
_LICENSE_LINE = re.compile(r"^- \*\*License:\*\*.*$", re.M)
_BASE_LINE = re.compile(r"^- \*\*Finetuned from model \[optional\]:\*\* \[More Information Needed\]$", re.M)


class LicencesNotAcknowledged(ConfigRefused):
    """Training data under licences that forbid commercial use, not acknowledged in the config.
    ``licences``: the entries (``license``, ``samples``, ``sources``) left to acknowledge."""

    def __init__(self, entries: list[dict]):
        self.licences = entries
        ids = ", ".join(e["license"] for e in entries)
        super().__init__([
            "the training data includes licences that forbid commercial use (non-commercial or research-only): "
            + "; ".join(f"{line} ({', '.join(e['sources']) or 'no source recorded'})"
                        for line, e in zip(licence_lines(entries), entries))
            + f". A model trained on it inherits that restriction; acknowledge with acknowledge_licences: [{ids}] "
              f"in the config, --acknowledge-licence on wb train, or the checkbox on the Train page"])


def training_licences(workspace, refs) -> list[dict]:
    """Licence entries of pinned :class:`~pipelines.train.config.DatasetRef` s taken together
    (:func:`pipelines.curate.licences.licence_list` form). Raises NotFound."""
    return licences_of_versions(workspace, [(r.dataset, r.version_number if r.version_number is not None
                                             else r.version) for r in refs])


def check_acknowledged(entries: list[dict], acknowledged: list[str]) -> list[str]:
    """The restricted licence ids of ``entries``, all of them acknowledged.

    Raises:
        LicencesNotAcknowledged: a licence forbidding commercial use missing from ``acknowledged``
        (the message names each with its sample count and sources).
    """
    missing = [e for e in restricted(entries) if e["license"] not in set(acknowledged)]
    if missing:
        raise LicencesNotAcknowledged(missing)
    return [e["license"] for e in restricted(entries)]


def run_data_licences(run_dir: str | Path) -> list[dict] | None:
    """Licence entries of the versions exported into ``run_dir/data`` (their ``license`` and
    ``source`` columns), or None when the folder holds no export (a run trained from a list)."""
    import pyarrow.parquet as pq

    d = Path(run_dir) / "data"
    if not (d / "manifest.json").exists():
        return None
    rows = []
    for e in json.loads((d / "manifest.json").read_text(encoding="utf-8"))["datasets"]:
        names = set(pq.read_schema(d / e["file"]).names)
        cols = [c for c in ("license", "source") if c in names]
        t = pq.read_table(d / e["file"], columns=cols).to_pydict() if cols else {}
        n = e.get("samples") or (len(next(iter(t.values()))) if t else 0)
        lic, src = t.get("license") or [None] * n, t.get("source") or [None] * n
        rows += [(x, y, 1) for x, y in zip(lic, src)]
    return licence_list(rows)


def card_section(run_dir: str | Path, config) -> dict:
    """The run card's ``licences``: ``{"training_data": entries | None, "summary": lines,
    "restricted": ids, "acknowledged": ids, "warnings": [...]}``. ``training_data`` is None when
    the run folder holds no exported data (nothing is known about its licences)."""
    entries = run_data_licences(run_dir)
    ack = list(getattr(config, "acknowledge_licences", None) or [])
    if entries is None:
        return {"training_data": None, "summary": [], "restricted": [], "acknowledged": ack, "warnings": []}
    return {"training_data": entries, "summary": licence_lines(entries),
            "restricted": [e["license"] for e in restricted(entries)],
            "acknowledged": [x for x in ack if x in {e["license"] for e in restricted(entries)}],
            "warnings": warnings_for(entries)}


def _section_text(run_card: dict, lic: dict) -> str:
    entries = lic.get("training_data")
    lines = ["## Training data licences", ""]
    if entries is None:
        return "\n".join(lines + ["Not recorded: the run folder held no exported dataset version.", ""])
    data = ", ".join(f"{d['dataset']} v{d.get('version_number')}" for d in run_card.get("datasets") or [])
    lines += [f"Samples of the dataset versions run `{run_card.get('run_id')}` trained on ({data or '-'}), "
              "by licence:", ""]
    for line, e in zip(lic["summary"], entries):
        lines.append(f"- {line} (commercial use {e['commercial']}; sources: {', '.join(e['sources']) or '-'})")
    lines.append("")
    lines += [f"> **Warning:** {w}" for w in lic.get("warnings") or []]
    if lic.get("acknowledged"):
        lines += ["", f"Licences acknowledged at launch: {', '.join(lic['acknowledged'])}."]
    return "\n".join(lines + [""])


def write_model_card(folder: str | Path, run_card: dict) -> Path:
    """Write the training data's licences into ``folder/README.md`` (created when absent, as
    for a full fine-tune or a merged model; peft's card is kept and completed). Returns the path."""
    from huggingface_hub import ModelCard

    path = Path(folder) / "README.md"
    lic = run_card.get("licences") or {}
    entries = lic.get("training_data") or []
    base = (run_card.get("base_model") or {}).get("name")
    if path.exists():
        card = ModelCard.load(path)
    else:
        card = ModelCard(f"---\nlibrary_name: transformers\n---\n\n# {run_card.get('run_id') or Path(folder).name}\n\n"
                         f"Trained with Instruction Workbench ({run_card.get('method')}).\n\n"
                         "- **License:** [More Information Needed]\n"
                         f"- **Finetuned from model [optional]:** [More Information Needed]\n")
    ids = [e["license"] for e in entries]
    if len(ids) == 1:
        card.data.license = ids[0]
    elif ids:
        card.data.license = "other"
        card.data.license_name = MIXED
    card.data.training_data_licences = lic.get("summary") or []
    text = card.text
    line = (f"training data under {'; '.join(lic['summary'])}" if lic.get("summary")
            else "the training data's licences were not recorded")
    text = _LICENSE_LINE.sub(lambda _: f"- **License:** {line} (see Training data licences)", text, count=1)
    if base:
        text = _BASE_LINE.sub(lambda _: f"- **Finetuned from model [optional]:** {base}", text, count=1)
    section = _section_text(run_card, lic)
    text = text.replace("\n## Uses", "\n" + section + "\n## Uses", 1) if "\n## Uses" in text \
        else text.rstrip() + "\n\n" + section
    card.text = text
    card.save(path)
    return path
