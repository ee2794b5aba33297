"""The only layer with SQL: a workspace's DuckDB file, datasets, versions, samples,
audit log, quarantine, users and jobs. Imports nothing from ``pipelines`` or ``app``."""
from .errors import Conflict, FormatError, NotFound, PermissionDenied, StoreLocked, WorkbenchError
from .samples import Sample
from .store import Store, default_workspace
from .versions import Dataset, Diff, Version

__all__ = ["Conflict", "FormatError", "NotFound", "PermissionDenied", "StoreLocked", "WorkbenchError",
           "Sample", "Store", "default_workspace", "Dataset", "Diff", "Version"]
