"""A self-contained HTML quality report of one version.

One file: the metrics as tables, every chart of :mod:`pipelines.quality.charts` as a
plotly figure, and plotly.js itself inlined once (``plotly.offline.get_plotlyjs()``, about
4.6 MB), so the report opens offline with no external request (no CDN, no fonts). Text is
HTML-escaped.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from . import charts, metrics


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_html(m: dict, trend: list[dict] | None = None) -> str:
    """The report for metrics ``m`` (``metrics.compute`` output) as one HTML string."""
    import plotly.offline
    figs = charts.figures(m, trend)
    parts = []
    for i, (key, fig) in enumerate(figs.items()):
        parts.append(f'<section class="chart" id="chart-{html.escape(key)}">'
                     + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{i}",
                                   config={"displaylogo": False}) + "</section>")
    g = m.get("gate") or {}
    ref = m.get("refusal") or {}
    head = [
        {"metric": "samples", "value": m.get("samples")},
        {"metric": "response words (mean / median)",
         "value": f"{_fmt((m.get('length_words') or {}).get('mean'))} / {_fmt((m.get('length_words') or {}).get('median'))}"},
        {"metric": "turns per sample (mean)", "value": (m.get("turns") or {}).get("mean")},
        {"metric": "citation rate", "value": (m.get("citation") or {}).get("rate")},
        {"metric": f"refusal rate ({ref.get('method')})", "value": ref.get("rate")},
        {"metric": "refuses what should be refused", "value": (ref.get("should_refuse") or {}).get("rate")},
        {"metric": "answers what should be answered", "value": (ref.get("should_answer") or {}).get("rate")},
        {"metric": "exact duplicate rate", "value": (m.get("duplicates") or {}).get("exact")},
        {"metric": "near / semantic duplicate rate (sample)",
         "value": f"{_fmt(((m.get('sampled') or {}).get('duplicates_sampled') or {}).get('near'))} / "
                  f"{_fmt(((m.get('sampled') or {}).get('duplicates_sampled') or {}).get('semantic'))}"},
        {"metric": "distinct verbs / verb-noun pairs (sample)",
         "value": "{} / {}".format(*[_fmt((((m.get("sampled") or {}).get("diversity") or {}).get("verb_noun") or {}).get(k))
                                     for k in ("distinct_verbs", "distinct_pairs")])},
        {"metric": "distinct-1 / distinct-2 of prompts (sample)",
         "value": "{} / {}".format(*[_fmt(((m.get("sampled") or {}).get("diversity") or {}).get(k))
                                     for k in ("distinct_1_prompts", "distinct_2_prompts")])},
        {"metric": "empty policy domains", "value": ", ".join((m.get("domain_coverage") or {}).get("empty") or []) or "none"},
        {"metric": "gate", "value": g.get("status") + (" (overridden)" if g.get("override") else "") if g else None},
        {"metric": "contamination", "value": (m.get("contamination") or {}).get("rate",
                                                                                 (m.get("contamination") or {}).get("status"))},
        {"metric": "annotator agreement", "value": (m.get("agreement") or {}).get("status")},
    ]
    slices = "".join(
        f"<h3>By {html.escape(c.replace('_', ' '))}</h3>" + _table(m["slices"][c][:50], [
            "value", "samples", "words_mean", "words_median", "turns_mean", "citation_rate", "refusal_rate",
            "should_refuse_rate", "should_answer_rate", "exact_duplicate_rate"]) for c in metrics.SLICES) if m.get("slices") else ""
    gate_rows = (g.get("summary") or {}).get("expectations") or []
    gate_html = _table([{"expectation": e["type"], "column": e["kwargs"].get("column"), "success": e["success"],
                         "unexpected": e.get("unexpected_count"), "examples": ", ".join(map(str, e.get("example_ids", [])[:5]))}
                        for e in gate_rows], ["expectation", "column", "success", "unexpected", "examples"]) if gate_rows else ""
    cont = m.get("contamination") or {}
    cont_html = _table(cont.get("sets", []), ["name", "items", "short_items", "contaminated", "rate"]) if cont.get("sets") else ""
    title = f"Quality report: {m['dataset']} v{m['version']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}}table{{border-collapse:collapse;margin:0.5rem 0 1.5rem}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:0.9rem}}.chart{{margin:1rem 0}}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>
<p>version id {html.escape(m['version_id'])} · content hash {html.escape(m['content_hash'][:16])}</p>
<h2>Summary</h2>{_table(head, ["metric", "value"])}
<h2>Validation gate</h2>{gate_html or '<p>' + html.escape(str(g.get('status'))) + '</p>'}
<h2>Contamination</h2>{cont_html or '<p>' + html.escape(str(cont.get('status'))) + '</p>'}
<h2>Charts</h2>{''.join(parts)}
<h2>Slices</h2>{slices}
<h2>All metrics (JSON)</h2><pre>{html.escape(json.dumps({k: v for k, v in m.items() if k != 'slices'}, indent=1, default=str))}</pre>
</body></html>"""


def write_report(workspace: str | Path, dataset: str, version: str | int | None, out: str | Path, *,
                 user: str | None = None, sampled: bool = True) -> Path:
    """Compute (or read cached) metrics of the version and write the HTML report to ``out``
    (``sampled=False``: without the sampled metrics when none are cached yet)."""
    m = metrics.compute(workspace, dataset, version, user=user, sampled=sampled)
    tr = metrics.trend(workspace, dataset, user=user)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(m, tr), encoding="utf-8")
    return p
