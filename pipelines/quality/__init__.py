"""Quality: per-version metrics, the refusal classifier, validation gates (great-expectations),
contamination checks, the HTML report and the after-commit gate hook.

Import cheaply: great-expectations, spaCy and plotly are imported inside the functions
that need them (great-expectations alone takes about 4-6 s to import).
"""
