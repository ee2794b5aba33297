"""Curation and governance: filter, merge, split, revert, purge, licences, dataset cards,
backup and restore. Each curation operation is one commit whose message and ``operation``
state the operation and its parameters; each has a ``plan_*`` preview of its counts.

Modules: ``filter``, ``merge``, ``split``, ``revert``, ``purge``, ``licences``, ``cards``,
``backup`` (``condition`` checks filter conditions; ``base`` holds shared pieces).
"""
