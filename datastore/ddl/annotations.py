"""Tables of the annotations area (see datastore/ddl/__init__.py)."""
DDL: list[str] = []
