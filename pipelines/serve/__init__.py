"""Serving what was trained: several adapters on one base model
(:mod:`pipelines.serve.adapters`) and the chat playground's services (:mod:`pipelines.serve.chat`)."""
