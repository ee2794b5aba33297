"""Tables of the runs area (see datastore/ddl/__init__.py)."""
DDL: list[str] = []
