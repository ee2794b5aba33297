"""Tables of the quality area (see datastore/ddl/__init__.py)."""
DDL: list[str] = []
