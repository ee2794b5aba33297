"""Plotly figures of a version's metrics, shared by the Quality page and the HTML report.

Every bar that stands for a set of samples carries ``customdata = [facet, value]`` (a
facet of ``datastore.quality.FACETS``), so a selection on the page can list the samples
behind it (:func:`pipelines.quality.metrics.samples_behind`).
"""
from __future__ import annotations

from .metrics import SLICES

_H = 320


def _bar(x, y, *, title, facet=None, values=None, xlabel="", ylabel="samples", color=None):
    import plotly.graph_objects as go
    cd = [[facet, v] for v in values] if facet else None
    fig = go.Figure(go.Bar(x=[str(v) for v in x], y=y, customdata=cd, marker_color=color,
                           hovertemplate="%{x}: %{y}<extra></extra>"))
    fig.update_layout(title=title, height=_H, margin=dict(l=40, r=10, t=40, b=40), xaxis_title=xlabel,
                      yaxis_title=ylabel, clickmode="event+select", dragmode="select")
    return fig


def figures(m: dict, trend: list[dict] | None = None) -> dict:
    """``{key: plotly Figure}`` for every metric present in ``m`` (the output of
    ``metrics.compute``) and, with ``trend``, the trend across versions."""
    import plotly.graph_objects as go
    figs: dict = {}
    if not m.get("samples"):
        return figs
    h = m["length_words"]["histogram"]
    figs["length_words"] = _bar([b["label"] for b in h], [b["samples"] for b in h],
                                title="Response length (words)", facet="words_bin", values=[b["bin"] for b in h],
                                xlabel="words")
    tk = (m.get("sampled") or {}).get("length_tokens") or {}
    if tk.get("histogram"):
        figs["length_tokens"] = _bar([b["label"] for b in tk["histogram"]], [b["samples"] for b in tk["histogram"]],
                                     title=f"Response length (tokens, sample of {tk['n']})", xlabel="tokens")
    th = m["turns"]["histogram"]
    figs["turns"] = _bar([b["turns"] for b in th], [b["samples"] for b in th], title="Turns per sample",
                         facet="turns", values=[b["turns"] for b in th], xlabel="turns")
    for col in SLICES:
        rows = m["slices"][col]
        figs[f"slice_{col}"] = _bar([r["value"] if r["value"] is not None else "(none)" for r in rows[:30]],
                                    [r["samples"] for r in rows[:30]], title=f"Samples by {col.replace('_', ' ')}",
                                    facet=col, values=[r["value"] for r in rows[:30]])
        rates = go.Figure()
        labels = [str(r["value"]) if r["value"] is not None else "(none)" for r in rows[:30]]
        for key, name in (("citation_rate", "citation rate"), ("refusal_rate", "refusal rate"),
                          ("exact_duplicate_rate", "exact duplicate rate")):
            rates.add_trace(go.Bar(name=name, x=labels, y=[r[key] for r in rows[:30]]))
        rates.update_layout(title=f"Rates by {col.replace('_', ' ')}", barmode="group", height=_H,
                            margin=dict(l=40, r=10, t=40, b=40), yaxis_range=[0, 1])
        figs[f"rates_{col}"] = rates
    ref = m["refusal"]
    cls = ["full_refusal", "partial_refusal", "compliance"]
    rm = go.Figure()
    exps = sorted({r["expected"] for r in ref["matrix"]}, key=lambda e: (e is None, str(e)))
    for c in cls:
        cells = [next((r["samples"] for r in ref["matrix"] if r["expected"] == e and r["refusal_class"] == c), 0)
                 for e in exps]
        rm.add_trace(go.Bar(name=c, x=[e or "(unlabelled)" for e in exps], y=cells,
                            customdata=[["expected_behavior", e, c] for e in exps]))
    rm.update_layout(title=(f"Refusals by expected behaviour (should refuse: {_pct(ref['should_refuse']['rate'])}, "
                            f"should answer: {_pct(ref['should_answer']['rate'])})"), barmode="stack", height=_H,
                     margin=dict(l=40, r=10, t=40, b=40), clickmode="event+select", dragmode="select")
    figs["refusal"] = rm
    cit = m["citation"]
    figs["citation"] = _bar(["cites a source", "no citation"], [cit["cited"], cit["responses"] - cit["cited"]],
                            title=f"Citation rate {_pct(cit['rate'])}", facet="cited", values=[True, False])
    cov = m["domain_coverage"]
    if cov["targets"] and cov["labelled_samples"]:
        dc = go.Figure()
        doms = [r["domain"] for r in cov["targets"]]
        dc.add_trace(go.Bar(name="share", x=doms, y=[r["share"] for r in cov["targets"]],
                            marker_color=["#d62728" if r["empty"] else "#1f77b4" for r in cov["targets"]],
                            customdata=[["policy_domain", d] for d in doms]))
        dc.add_trace(go.Scatter(name="target", x=doms, y=[r["target_share"] for r in cov["targets"]], mode="markers",
                                marker=dict(symbol="line-ew-open", size=18, color="black")))
        dc.update_layout(title=f"Policy-domain coverage (empty, in red: {', '.join(cov['empty']) or 'none'})",
                         height=_H, margin=dict(l=40, r=10, t=40, b=40), clickmode="event+select", dragmode="select")
        figs["domain_coverage"] = dc
    vn = ((m.get("sampled") or {}).get("diversity") or {}).get("verb_noun") or {}
    if vn.get("top"):
        ids, labels, parents, values = [], [], [], []
        for t in vn["top"]:
            ids.append(t["verb"])
            labels.append(t["verb"])
            parents.append("")
            values.append(t["samples"])
            for n in t["nouns"]:
                ids.append(f"{t['verb']}/{n['noun']}")
                labels.append(n["noun"])
                parents.append(t["verb"])
                values.append(n["samples"])
        sb = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="remainder"))
        sb.update_layout(title=(f"Root verbs and their direct objects ({vn['distinct_verbs']} verbs, "
                                f"{vn['distinct_pairs']} verb-noun pairs in {vn['parsed']} prompts)"),
                         height=420, margin=dict(l=10, r=10, t=40, b=10))
        figs["verb_noun"] = sb
    if trend:
        tr = go.Figure()
        xs = [f"v{r['version']}" for r in trend]
        for key, name in (("citation_rate", "citation rate"), ("refusal_rate", "refusal rate"),
                          ("exact_duplicate_rate", "exact duplicates"), ("should_refuse", "refuses what should be refused"),
                          ("should_answer", "answers what should be answered")):
            if any(r.get(key) is not None for r in trend):
                tr.add_trace(go.Scatter(name=name, x=xs, y=[r.get(key) for r in trend], mode="lines+markers"))
        tr.add_trace(go.Bar(name="samples", x=xs, y=[r["samples"] for r in trend], yaxis="y2", opacity=0.25))
        tr.update_layout(title="Trend across versions", height=_H, margin=dict(l=40, r=40, t=40, b=40),
                         yaxis=dict(range=[0, 1], title="rate"),
                         yaxis2=dict(overlaying="y", side="right", title="samples", showgrid=False))
        figs["trend"] = tr
    return figs


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
