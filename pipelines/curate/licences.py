"""Licences and provenance: reading a file's licence from its dataset card, what each
licence allows, and the licence list of a version with warnings on mixtures.

Licence ids are the Hugging Face Hub's licence identifiers (lower-case SPDX ids plus a few
of its own, e.g. ``other``, ``unknown``, ``openrail``); see
https://huggingface.co/docs/hub/repositories-licenses. What a licence allows is taken
from its text: Creative Commons "NonCommercial" (NC) licences forbid commercial use and
"NoDerivatives" (ND) forbid adapted material; "ShareAlike" (SA) and the GPL family
require derivatives to carry the same licence (https://creativecommons.org/licenses/).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

#: licence id -> commercial use (``allowed`` / ``forbidden`` / ``unknown``) and flags.
#: Sources: the licence texts (CC 4.0 legal codes; SPDX list), the C-UDA (research only),
#: and the Llama 2/3 community licences (commercial use allowed with conditions).
KNOWN: dict[str, dict] = {
    "cc0-1.0": {"commercial": "allowed"},
    "pddl": {"commercial": "allowed"},
    "mit": {"commercial": "allowed"},
    "apache-2.0": {"commercial": "allowed"},
    "bsd-2-clause": {"commercial": "allowed"},
    "bsd-3-clause": {"commercial": "allowed"},
    "odc-by": {"commercial": "allowed"},
    "cc-by-2.0": {"commercial": "allowed"},
    "cc-by-3.0": {"commercial": "allowed"},
    "cc-by-4.0": {"commercial": "allowed"},
    "cc-by-sa-3.0": {"commercial": "allowed", "share_alike": True},
    "cc-by-sa-4.0": {"commercial": "allowed", "share_alike": True},
    "odbl": {"commercial": "allowed", "share_alike": True},
    "gpl-3.0": {"commercial": "allowed", "share_alike": True},
    "lgpl-3.0": {"commercial": "allowed", "share_alike": True},
    "agpl-3.0": {"commercial": "allowed", "share_alike": True},
    "cc-by-nd-4.0": {"commercial": "allowed", "no_derivatives": True},
    "cc-by-nc-2.0": {"commercial": "forbidden"},
    "cc-by-nc-3.0": {"commercial": "forbidden"},
    "cc-by-nc-4.0": {"commercial": "forbidden"},
    "cc-by-nc-sa-3.0": {"commercial": "forbidden", "share_alike": True},
    "cc-by-nc-sa-4.0": {"commercial": "forbidden", "share_alike": True},
    "cc-by-nc-nd-3.0": {"commercial": "forbidden", "no_derivatives": True},
    "cc-by-nc-nd-4.0": {"commercial": "forbidden", "no_derivatives": True},
    "c-uda": {"commercial": "forbidden"},
    "research-only": {"commercial": "forbidden"},
    "llama2": {"commercial": "allowed", "conditions": True},
    "llama3": {"commercial": "allowed", "conditions": True},
    "llama3.1": {"commercial": "allowed", "conditions": True},
    "openrail": {"commercial": "allowed", "conditions": True},
    "other": {"commercial": "unknown"},
    "unknown": {"commercial": "unknown"},
}
_NC = re.compile(r"(^|[-_ ])(nc|non-?commercial|research[-_ ]?only|noncommercial)([-_ ]|$)", re.I)
CARD_NAMES = ("README.md", "dataset_card.md", "DATASET_CARD.md", "readme.md")


def normalize_licence(value: str | None) -> str | None:
    """Lower-case, trimmed licence id (``CC-BY-NC 4.0`` -> ``cc-by-nc-4.0``); None stays None."""
    if value is None:
        return None
    v = str(value).strip().lower().replace(" ", "-").replace("_", "-")
    return v or None


def classify(licence: str | None) -> dict:
    """``{"license", "commercial", "share_alike", "no_derivatives", "conditions"}`` for one id.
    An id we do not know counts as ``unknown`` unless its name says NC or research-only."""
    lid = normalize_licence(licence) or "unknown"
    info = dict(KNOWN.get(lid) or {"commercial": "forbidden" if _NC.search(lid) else "unknown"})
    return {"license": lid, "commercial": info["commercial"], "share_alike": bool(info.get("share_alike")),
            "no_derivatives": bool(info.get("no_derivatives")), "conditions": bool(info.get("conditions"))}


def warnings_for(entries: list[dict]) -> list[str]:
    """Warnings on a version's licence mixture (``entries`` from :func:`licence_list`)."""
    out = []
    forbidden = [e["license"] for e in entries if e["commercial"] == "forbidden"]
    unknown = [e["license"] for e in entries if e["commercial"] == "unknown"]
    if forbidden:
        n = sum(e["samples"] for e in entries if e["commercial"] == "forbidden")
        out.append(f"not for commercial use: {n} sample(s) under {', '.join(forbidden)}, which forbid commercial "
                   "use; a model or dataset made from this version inherits that restriction")
    if unknown:
        n = sum(e["samples"] for e in entries if e["commercial"] == "unknown")
        out.append(f"licence unknown for {n} sample(s) ({', '.join(unknown)}): check their terms before shipping")
    sa = [e["license"] for e in entries if e["share_alike"]]
    if sa and len(entries) > 1:
        out.append(f"share-alike terms ({', '.join(sa)}) mixed with other licences: derivatives must carry the "
                   "share-alike licence, which may conflict with the others")
    nd = [e["license"] for e in entries if e["no_derivatives"]]
    if nd:
        out.append(f"no-derivatives licence(s) {', '.join(nd)}: edited or merged samples may not be shared")
    return out


def licence_list(rows: list[tuple]) -> list[dict]:
    """Group ``(license, source, samples)`` rows into ``[{"license", "samples", "sources",
    "commercial", "share_alike", "no_derivatives", "conditions"}]``, largest first."""
    by: dict[str, dict] = {}
    for lic, src, n in rows:
        c = classify(lic)
        e = by.setdefault(c["license"], {**c, "samples": 0, "sources": []})
        e["samples"] += int(n)
        if src and src not in e["sources"]:
            e["sources"].append(src)
    return sorted(by.values(), key=lambda e: (-e["samples"], e["license"]))


def licence_lines(entries: list[dict]) -> list[str]:
    """One line per licence, ``"cc-by-nc-4.0: 6 samples"`` (``entries`` from :func:`licence_list`);
    the form run cards, model cards, dataset cards and refusals all use."""
    return [f"{e['license']}: {e['samples']} sample{'' if e['samples'] == 1 else 's'}" for e in entries]


def restricted(entries: list[dict]) -> list[dict]:
    """The entries whose licence forbids commercial use (non-commercial, research-only)."""
    return [e for e in entries if e["commercial"] == "forbidden"]


def licences_of_versions(workspace, versions: list[tuple[str, object]]) -> list[dict]:
    """The licences of several versions together (``[(dataset, version ref)]``, a training
    mixture), counted as :func:`licence_list` counts one version.

    Raises:
        NotFound: unknown dataset or version.
    """
    from datastore import Store
    from datastore import governance as G
    from datastore import versions as V
    rows: list[tuple] = []
    with Store(workspace, create=False) as st:
        for dataset, version in versions:
            rows += G.licence_counts(st, V.resolve(st, dataset, version))
    return licence_list(rows)


def licences_of(workspace, dataset: str, version=None) -> list[dict]:
    """The licences of a version: ``[{"license", "samples", "sources", "commercial", ...}]``
    (see :func:`licence_list`). For run cards and exports.

    Raises:
        NotFound: unknown dataset or version.
    """
    return licences_of_versions(workspace, [(dataset, version)])


# ---------------------------------------------------------------- dataset cards at import
def parse_front_matter(text: str) -> dict:
    """The YAML header (between ``---`` lines at the top) of a Markdown card, or ``{}``."""
    import yaml
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _first_licence(value) -> str | None:
    if isinstance(value, list):
        vals = [normalize_licence(v) for v in value if v]
        return vals[0] if len(vals) == 1 else (",".join(vals) if vals else None)
    return normalize_licence(value) if value else None


def licence_from_card(path: str | Path) -> tuple[str | None, str | None, dict]:
    """The licence of a data file or folder read from its dataset card: a Hugging Face
    ``README.md`` (or ``dataset_card.md``) YAML header beside the file or inside the
    folder (``license:``; ``license_name`` when it is ``other``), else a ``datasets``
    folder's ``dataset_info.json`` ``license`` field.

    Returns ``(licence, origin, card)``: origin names the file it came from; ``card`` keeps
    the card's provenance fields (pretty_name, source_datasets, homepage, license_link).
    ``(None, None, {})`` when there is no card or it names no licence.
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    for name in CARD_NAMES:
        card = folder / name
        if card.is_file():
            meta = parse_front_matter(card.read_text(encoding="utf-8", errors="replace"))
            lic = _first_licence(meta.get("license"))
            if lic == "other" and meta.get("license_name"):
                lic = normalize_licence(meta["license_name"])
            keep = {k: meta[k] for k in ("pretty_name", "source_datasets", "homepage", "license_link",
                                         "license_name", "language") if k in meta}
            if lic:
                return lic, f"{card.name} YAML header", keep
    candidates = [folder / "dataset_info.json"] + sorted(folder.glob("*/dataset_info.json"))
    for info in candidates:
        if info.is_file():
            try:
                data = json.loads(info.read_text(encoding="utf-8"))
            except ValueError:
                continue
            lic = _first_licence(data.get("license"))
            if lic:
                keep = {k: data[k] for k in ("homepage", "citation", "description") if data.get(k)}
                return lic, f"{info.relative_to(folder.parent) if info.parent != folder else info.name}", keep
    return None, None, {}
