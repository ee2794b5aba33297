"""DuckDB schema of a workspace and its forward migrations.

Design (docs/architecture.md section 2): samples are stored as revision rows with a
valid-from / valid-to range of version numbers (a type-2 slowly changing dimension).
Version ``v`` of a dataset is the rows with ``valid_from <= v < valid_to``; a commit
closes the changed rows (``valid_to = v``) and appends their new revisions, so it costs
in proportion to the change, not to the dataset.
"""
from __future__ import annotations

#: Version of the workspace schema this release writes. History (one forward migration per
#: step, in :data:`MIGRATIONS`): 1 = walking skeleton; 2 = ``versions.amendments`` (changes
#: made to a version after its commit, such as a purge that recomputed its hash).
SCHEMA_VERSION = 2
OPEN_END = 2_147_483_647  # valid_to of a revision that is still current (INT32 max)

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE SEQUENCE IF NOT EXISTS dataset_ids START 1",
    "CREATE SEQUENCE IF NOT EXISTS audit_ids START 1",
    "CREATE SEQUENCE IF NOT EXISTS quarantine_ids START 1",
    """CREATE TABLE IF NOT EXISTS datasets (
        dataset_id INTEGER PRIMARY KEY,
        name VARCHAR UNIQUE NOT NULL,
        kind VARCHAR NOT NULL DEFAULT 'sft',      -- 'sft' | 'staging'
        description VARCHAR,
        created_by VARCHAR, created_at TIMESTAMP,
        next_sample_id BIGINT NOT NULL DEFAULT 1,
        head INTEGER NOT NULL DEFAULT 0           -- number of the latest version (0: none)
    )""",
    """CREATE TABLE IF NOT EXISTS versions (
        version_id VARCHAR PRIMARY KEY,           -- 12 hex chars
        dataset_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        parent_id VARCHAR,
        author VARCHAR NOT NULL, message VARCHAR, created_at TIMESTAMP NOT NULL,
        content_hash VARCHAR NOT NULL,           -- hex SHA-256 of (multiset sum, count)
        hash_sum VARCHAR NOT NULL,               -- hex of the sum of sample hashes mod 2^256
        n_samples BIGINT NOT NULL, n_added BIGINT, n_removed BIGINT, n_modified BIGINT,
        operation JSON,
        amendments JSON,                         -- [{"op": "purge", ...}] changes after commit
        UNIQUE (dataset_id, number)
    )""",
    """CREATE TABLE IF NOT EXISTS tags (
        dataset_id INTEGER NOT NULL, tag VARCHAR NOT NULL, version_id VARCHAR NOT NULL,
        created_by VARCHAR, created_at TIMESTAMP, PRIMARY KEY (dataset_id, tag)
    )""",
    """CREATE TABLE IF NOT EXISTS samples (
        dataset_id INTEGER NOT NULL,
        sample_id BIGINT NOT NULL,
        valid_from INTEGER NOT NULL,
        valid_to INTEGER NOT NULL,
        row_hash VARCHAR NOT NULL,                -- hex SHA-256 of the canonical JSON
        kind VARCHAR NOT NULL,                    -- 'instruction' | 'conversation'
        system VARCHAR, instruction VARCHAR, input VARCHAR, output VARCHAR,
        history JSON, messages JSON,
        source VARCHAR, source_row BIGINT, license VARCHAR, task_type VARCHAR,
        language VARCHAR, difficulty VARCHAR, quality_score DOUBLE, policy_domain VARCHAR,
        tags VARCHAR[], annotator_ids VARCHAR[], lineage JSON,
        extra JSON, layout JSON
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        audit_id BIGINT PRIMARY KEY, "at" TIMESTAMP NOT NULL, user_name VARCHAR NOT NULL,
        action VARCHAR NOT NULL, target VARCHAR, details JSON
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantine_id BIGINT PRIMARY KEY, dataset_id INTEGER, import_id VARCHAR,
        file VARCHAR, row_number BIGINT, line_number BIGINT, field VARCHAR, reason VARCHAR,
        raw VARCHAR, created_at TIMESTAMP, created_by VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, password_hash VARCHAR,
        created_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id VARCHAR PRIMARY KEY, kind VARCHAR, status VARCHAR, created_by VARCHAR,
        created_at TIMESTAMP, updated_at TIMESTAMP, params JSON, result JSON, dir VARCHAR
    )""",
]


def all_ddl() -> list[str]:
    """The core :data:`DDL` followed by each area's (``datastore/ddl/*.py``), in order."""
    import importlib

    from .ddl import PARTS
    out = list(DDL)
    for part in PARTS:
        out += importlib.import_module(f".ddl.{part}", __package__).DDL
    return out


def ddl_fingerprint(stmts: list[str]) -> str:
    import hashlib
    return hashlib.sha256("\n;\n".join(stmts).encode()).hexdigest()[:16]


def _column_exists(conn, table: str, column: str) -> bool:
    return bool(conn.execute(
        "SELECT 1 FROM duckdb_columns() WHERE table_name = ? AND column_name = ? AND database_name = current_database()",
        [table, column]).fetchall())


def _m1_to_2(conn) -> None:
    """Schema 1 -> 2: ``versions.amendments`` (JSON list of post-commit changes, e.g. purges)."""
    if not _column_exists(conn, "versions", "amendments"):
        conn.execute("ALTER TABLE versions ADD COLUMN amendments JSON")


#: ``{from_version: migrate(conn)}``: each step moves the schema from ``from_version`` to
#: ``from_version + 1``. Steps must be idempotent (they may meet a partly current file).
MIGRATIONS: dict = {1: _m1_to_2}


def schema_version(conn) -> int | None:
    """The schema version recorded in the file (None for a new, empty file)."""
    has_meta = conn.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'meta' AND database_name = current_database()").fetchall()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def check_not_newer(found: int | None, path: str | None = None) -> None:
    """Refuse a file written by a newer release.

    Raises:
        WorkbenchError: ``found`` is higher than :data:`SCHEMA_VERSION`, naming both numbers.
    """
    from .errors import WorkbenchError
    if found is not None and found > SCHEMA_VERSION:
        where = f" ({path})" if path else ""
        raise WorkbenchError(
            f"this workspace{where} has schema version {found}, newer than this release supports "
            f"({SCHEMA_VERSION}): it was written by a newer Instruction Workbench. Upgrade Instruction "
            f"Workbench to open it; nothing was changed")


def ensure_schema(conn, path: str | None = None) -> list[int]:
    """Create the tables if missing and migrate an older file forward; returns the
    migration steps applied (``[1]`` means 1 -> 2; empty when none).

    Everything (core DDL, migration steps, the areas' DDL, the recorded version and DDL
    fingerprint) runs in one transaction: a failing step leaves the file as it was.

    Raises:
        WorkbenchError: the file was written by a newer release (schema version higher),
            or a migration step failed (the message names the step; the file is unchanged).
    """
    from .errors import WorkbenchError

    found = schema_version(conn)
    check_not_newer(found, path)
    stmts = all_ddl()
    fp = ddl_fingerprint(stmts)
    if found == SCHEMA_VERSION:
        have = conn.execute("SELECT value FROM meta WHERE key = 'ddl_fingerprint'").fetchone()
        if have and have[0] == fp:
            return []
    steps = list(range(found, SCHEMA_VERSION)) if found is not None else []
    conn.execute("BEGIN TRANSACTION")
    try:
        if found is None:
            # a new file, or one from before the meta table: everything is CREATE ... IF NOT EXISTS
            for stmt in stmts:
                conn.execute(stmt)
        else:
            for step in steps:
                try:
                    MIGRATIONS[step](conn)
                except Exception as e:
                    raise WorkbenchError(
                        f"could not migrate this workspace from schema version {step} to {step + 1}: {e}; "
                        "nothing was changed") from e
            # new tables of this release (and of each area) appear; nothing is dropped
            for stmt in stmts:
                conn.execute(stmt)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('ddl_fingerprint', ?)", [fp])
        if steps:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', ?)", [str(found)])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return steps
