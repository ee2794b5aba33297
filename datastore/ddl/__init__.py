"""Table definitions by area, one module each, collected by :mod:`datastore.schema`.

Each module holds ``DDL: list[str]`` of ``CREATE ... IF NOT EXISTS`` statements. A new
area is one new module listed in :data:`PARTS`.
"""
PARTS = ("annotations", "generation", "quality", "runs", "governance")
