"""Preference data beyond SFT: pairs from review, preference formats, preference
samples in the datastore, DPO with LoRA, and scoring heads.

- :mod:`pipelines.preference.pairs`: the :class:`Pair` record and the extraction rules
  (edits and comparison/ranking annotations).
- :mod:`pipelines.preference.formats`: trl, LLaMA-Factory DPO/KTO and hh-rlhf import/export.
- :mod:`pipelines.preference.store`: pairs as samples of kind ``preference`` (versioned).
- :mod:`pipelines.preference.dpo`: trl ``DPOTrainer`` with a LoRA adapter, run-folder protocol.
- :mod:`pipelines.preference.scoring`: classification/regression/ranking heads with LoRA.

Heavy libraries (torch, transformers, trl, peft) are imported inside functions only.
"""
