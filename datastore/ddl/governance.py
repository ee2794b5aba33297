"""Tables of the governance area (see datastore/ddl/__init__.py)."""
DDL: list[str] = []
