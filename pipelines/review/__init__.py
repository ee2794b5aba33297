"""Review: annotation tasks, blind double annotation, agreement, adjudication, gold items,
search and bulk actions. See docs/review.md.

Modules (each public function takes ``workspace`` and the acting ``user`` and checks the
policy itself): :mod:`.tasks` (open and inspect tasks, suggestions), :mod:`.annotate`
(an annotator's queue, drafts, idempotent submits), :mod:`.agreement` (Cohen's kappa,
Fleiss' kappa, Krippendorff's alpha, per-annotator figures), :mod:`.adjudicate` (the queue of
disagreements, resolving, merging a staging task), :mod:`.gold`, :mod:`.search` (find and act
in bulk), :mod:`.export`, :mod:`.hooks` (stale annotations on text changes).
"""
PUBLIC_MODULES = ("tasks", "annotate", "agreement", "adjudicate", "gold", "search", "export")
