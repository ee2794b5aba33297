"""The only layer with SQL: a workspace's DuckDB file, datasets, versions, samples,
audit log, quarantine, users and jobs. Imports nothing from ``pipelines`` or ``app``.

The error classes are imported eagerly (they are light); the other re-exports load their
submodule (and with it duckdb or pyarrow) on first use, through :mod:`datastore.lazy`, so
that ``from datastore.errors import WorkbenchError`` keeps ``wb --help`` fast.
"""
from .errors import Conflict, FormatError, NotFound, PermissionDenied, StoreLocked, WorkbenchError
from .lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "Sample": "samples", "Store": "store", "default_workspace": "store",
    "Dataset": "versions", "Diff": "versions", "Version": "versions"})

__all__ = ["Conflict", "FormatError", "NotFound", "PermissionDenied", "StoreLocked", "WorkbenchError",
           "Sample", "Store", "default_workspace", "Dataset", "Diff", "Version"]
