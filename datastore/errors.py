"""The workbench's error hierarchy.

Every error a user can cause derives from :class:`WorkbenchError`. The CLI prints
``str(err)`` as one line on stderr and exits non-zero; the UI shows it as a message.
This module lives in ``datastore`` because it is the bottom layer: ``pipelines`` and
``app`` import it from here, never the other way round.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: a problem the user can act on (never a bare traceback)."""


class NotFound(WorkbenchError):
    """A dataset, version, tag, sample or job that does not exist."""


class FormatError(WorkbenchError):
    """Bad input data.

    Attributes:
        file: path of the input file (or a description such as ``<Dataset>``).
        row: 1-based record number (JSON array index + 1, CSV data row, Parquet row), or None.
        line: 1-based physical line number where known (JSON Lines, JSON syntax errors, CSV).
        field: the field path, e.g. ``output`` or ``conversations[2].from``, or None.
        reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, file: str | None = None, row: int | None = None,
                 line: int | None = None, field: str | None = None):
        self.reason, self.file, self.row, self.line, self.field = reason, file, row, line, field
        parts = []
        if file:
            parts.append(str(file))
        if line is not None:
            parts.append(f"line {line}")
        if row is not None and (line is None or row != line):
            parts.append(f"row {row}")
        if field:
            parts.append(f"field '{field}'")
        where = ", ".join(parts)
        super().__init__(f"{where}: {reason}" if where else reason)


class StoreLocked(WorkbenchError):
    """The workspace's DuckDB file is held by another process (DuckDB allows one writer).

    Attributes:
        path: the DuckDB file.
        holder: description of the holding process (command line and PID) where known.
        waited_s: how long we retried before giving up.
    """

    def __init__(self, path: str, holder: str, waited_s: float):
        self.path, self.holder, self.waited_s = path, holder, waited_s
        super().__init__(
            f"workspace store {path} is busy: held by {holder}; gave up after {waited_s:.1f} s. "
            "Retry when it finishes.")


class PermissionDenied(WorkbenchError):
    """The user's role does not allow the action."""

    def __init__(self, user: str, action: str, resource: str | None = None):
        self.user, self.action, self.resource = user, action, resource
        on = f" on {resource}" if resource else ""
        super().__init__(f"permission denied: user '{user}' may not {action}{on}")


class Conflict(WorkbenchError):
    """A write that conflicts with existing state (duplicate name, stale parent version)."""
