"""Serving what was trained (issue 8 items 4 and 5): several adapters on one base model
(:mod:`pipelines.serve.adapters`) and the chat playground's services (:mod:`pipelines.serve.chat`)."""
