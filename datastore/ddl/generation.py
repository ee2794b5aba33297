"""Tables of the generation area (see datastore/ddl/__init__.py)."""
DDL: list[str] = []
