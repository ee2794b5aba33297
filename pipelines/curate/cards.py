"""Dataset cards: a version rendered as Hugging Face-style Markdown with a YAML header
(description, sources, licences, counts, quality metrics, curation log), written beside
exported data so a version published to a hub keeps its provenance.

The YAML keys follow the Hub's dataset card metadata (``pretty_name``, ``license``,
``language``, ``task_categories``, ``size_categories``, ``source_datasets``, ``tags``;
https://huggingface.co/docs/hub/datasets-cards); ours sit under ``workbench:`` (dataset,
version, version id, content hash) so tools that do not know them ignore them.
"""
from __future__ import annotations

import json
from pathlib import Path

from datastore import Store
from datastore import governance as G
from datastore import versions as V

from .licences import licence_lines, licence_list, parse_front_matter, warnings_for

MARKER = "<!-- written by Instruction Workbench: wb card -->"
#: ``f(store, version) -> (title, markdown) | None``: extra card sections from other areas
#: (e.g. the quality gate). Called with an open store; a failing section is skipped.
CARD_SECTIONS: list = []


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` samples (n<1K, 1K<n<10K, ...)."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for b, label in bounds:
        if n < b:
            return label
    return "n>1T" if n > 10**12 else "100M<n<1B"


def _quality(st, v: V.Version) -> dict:
    conn = st.conn
    p = [v.dataset_id, v.number, v.number]
    row = conn.execute(
        "SELECT count(quality_score), avg(quality_score), min(quality_score), max(quality_score), "
        "count(DISTINCT row_hash), count(*) FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ?",
        p).fetchone()
    out = {"samples_with_quality_score": row[0],
           "quality_score_mean": round(row[1], 4) if row[1] is not None else None,
           "quality_score_min": row[2], "quality_score_max": row[3],
           "exact_duplicate_samples": row[5] - row[4]}
    try:  # the quality gate of this version, where the quality area ran one
        from datastore import quality as Q
        g = Q.gate_result(st, v.version_id)
        if g:
            out["quality_gate"] = g.get("status")
    except Exception:
        pass
    return out


def card_data(workspace, dataset: str, version=None) -> dict:
    """Everything a card shows, as plain data: ``{"version", "description", "stats",
    "licences", "warnings", "sources", "quality", "log", "purges", "sections"}``."""
    with Store(workspace, create=False) as st:
        v = V.resolve(st, dataset, version)
        ds = V.get_dataset(st, dataset)
        stats = V.stats(st, v)
        licences = licence_list(G.licence_counts(st, v))
        prov = G.provenance(st, dataset)
        log = [x for x in reversed(V.log(st, dataset)) if x.number <= v.number]
        ids = {x.version_id for x in log}
        prov = [p for p in prov if p["version_id"] in ids]
        quality = _quality(st, v)
        langs = [r[0] for r in st.conn.execute(
            "SELECT DISTINCT language FROM samples WHERE dataset_id = ? AND valid_from <= ? AND valid_to > ? "
            "AND language IS NOT NULL ORDER BY 1", [v.dataset_id, v.number, v.number]).fetchall()]
        sections = []
        for f in CARD_SECTIONS:
            try:
                s = f(st, v)
            except Exception:
                s = None
            if s:
                sections.append(s)
    sources = []
    for e in licences:
        for src in e["sources"]:
            sources.append({"source": src, "license": e["license"]})
    return {"version": v, "description": ds.description, "stats": stats, "licences": licences,
            "warnings": warnings_for(licences), "sources": sources, "provenance": prov, "quality": quality,
            "languages": langs, "log": log, "sections": sections}


def render_card(workspace, dataset: str, version=None) -> str:
    """The card of a version as Markdown with a YAML header (see the module docstring).

    Raises:
        NotFound: unknown dataset or version.
    """
    import yaml
    d = card_data(workspace, dataset, version)
    v: V.Version = d["version"]
    lic_ids = [e["license"] for e in d["licences"]]
    kinds = d["stats"]["by_kind"]
    meta = {
        "pretty_name": f"{dataset} v{v.number}",
        "license": lic_ids[0] if len(lic_ids) == 1 else lic_ids,
        "task_categories": ["text-generation"],
        "size_categories": [size_category(v.n_samples)],
        "tags": ["instruction-tuning", "sft"] + (["conversational"] if kinds.get("conversation") else []),
        "source_datasets": sorted({s["source"] for s in d["sources"]}),
        "workbench": {"dataset": dataset, "version": v.number, "version_id": v.version_id,
                      "content_hash": v.content_hash, "samples": v.n_samples,
                      "licences": licence_lines(d["licences"]), "licence_warnings": d["warnings"]},
    }
    if d["languages"]:
        meta["language"] = d["languages"]
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    md = [f"---\n{head}---", MARKER, f"# {dataset} v{v.number}", ""]
    md += [d["description"] or f"Instruction-tuning dataset `{dataset}`, version {v.number} "
           f"(`{v.version_id}`), exported from Instruction Workbench.", ""]
    md += ["## Licences", ""] + [f"- {line}" for line in licence_lines(d["licences"])] + [""]
    if d["warnings"]:
        md += [f"> **Warning:** {w}" for w in d["warnings"]] + [""]
    md += ["| licence | samples | commercial use | sources |", "|---|---:|---|---|"]
    for e in d["licences"]:
        md.append(f"| {e['license']} | {e['samples']} | {e['commercial']} | {', '.join(e['sources']) or '-'} |")
    md += ["", "## Sources", "", "| file | licence | read from | SHA-256 | imported |", "|---|---|---|---|---|"]
    for p in d["provenance"]:
        md.append(f"| {Path(p['file'] or '').name} | {p['license'] or 'unknown'} | {p['license_origin'] or '-'} | "
                  f"{(p['file_sha256'] or '-')[:16]} | {str(p['created_at'])[:19]} by {p['created_by']} |")
    if not d["provenance"]:
        md.append("| (no import recorded) | | | | |")
    s = d["stats"]
    md += ["", "## Counts", "", f"- samples: {v.n_samples}",
           f"- by kind: {', '.join(f'{k} {n}' for k, n in s['by_kind'].items()) or '-'}",
           f"- by task type: {', '.join(f'{k} {n}' for k, n in s['by_task_type'].items()) or '-'}",
           f"- instruction output characters: mean {s['instruction_output_chars_mean']}, "
           f"median {s['instruction_output_chars_median']}",
           f"- conversations: {s['turns_per_conversation_mean']} turns on average",
           "", "## Quality metrics", ""]
    md += [f"- {k.replace('_', ' ')}: {val}" for k, val in d["quality"].items()]
    for title, body in d["sections"]:
        md += ["", f"## {title}", "", body]
    md += ["", "## Curation log", "",
           "Each version is one commit; its message states the operation and its parameters.", "",
           "| version | id | author | time (UTC) | samples | message |", "|---|---|---|---|---:|---|"]
    for x in d["log"]:
        msg = (x.message or "").replace("|", "\\|").replace("\n", " ")
        md.append(f"| v{x.number} | `{x.version_id}` | {x.author} | {str(x.created_at)[:19]} | {x.n_samples} | {msg} |")
    amended = [(x, a) for x in d["log"] for a in x.amendments]
    if amended:
        md += ["", "### Amendments", ""]
        for x, a in amended:
            md.append(f"- v{x.number}: {a.get('note', a.get('op'))} ({a.get('at')}, by {a.get('by')}; "
                      f"hash {str(a.get('old_content_hash'))[:12]} -> {str(a.get('new_content_hash'))[:12]})")
    md += ["", "### Operations", "", "```json",
           json.dumps([{"version": x.number, **(x.operation or {})} for x in d["log"]], indent=1, ensure_ascii=False,
                      default=str), "```", ""]
    return "\n".join(md)


def card_path_beside(out: Path, dataset: str | None = None) -> Path:
    """Where an export's card goes: ``README.md`` in the export's folder when that file is
    absent, or was written by us (the :data:`MARKER` line) for the same ``dataset`` (its YAML
    ``workbench.dataset``); else ``<file name>.README.md``, so exports of several datasets into
    one folder keep one card each."""
    out = Path(out)
    readme = out.parent / "README.md"
    if not readme.exists():
        return readme
    text = readme.read_text(encoding="utf-8", errors="replace")[:20000]
    if MARKER in text and (dataset is None or _card_dataset(text) == dataset):
        return readme
    return out.parent / f"{out.name}.README.md"


def _card_dataset(text: str) -> str | None:
    """The ``workbench.dataset`` of a card we wrote, or None."""
    wb = parse_front_matter(text).get("workbench")
    return wb.get("dataset") if isinstance(wb, dict) else None


def write_card(workspace, dataset: str, version, path: str | Path) -> Path:
    """Render the card and write it to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_card(workspace, dataset, version), encoding="utf-8")
    return path


def write_card_beside(workspace, dataset: str, version, out: Path, *, fmt: str | None = None) -> Path:
    return write_card(workspace, dataset, version, card_path_beside(out, dataset))
