"""Tables of the governance area (see datastore/ddl/__init__.py): purge tombstones, runs
flagged by a purge, import provenance (source file and licence), backups made."""
DDL: list[str] = [
    # one row per purge request; ``reason`` is the "why" of the tombstones
    """CREATE TABLE IF NOT EXISTS purges (
        purge_id VARCHAR PRIMARY KEY, purged_by VARCHAR NOT NULL, purged_at TIMESTAMP NOT NULL,
        reason VARCHAR NOT NULL, samples BIGINT, revisions BIGINT,
        versions JSON,                      -- [{"dataset","number","version_id","old_content_hash","new_content_hash"}]
        files JSON                          -- {"scrubbed": [...], "unscrubbable": [...]}
    )""",
    # one row per purged sample (id, who, when, why); the text is gone, this stays
    """CREATE TABLE IF NOT EXISTS tombstones (
        purge_id VARCHAR NOT NULL, dataset_id INTEGER NOT NULL, dataset VARCHAR NOT NULL,
        sample_id BIGINT NOT NULL, purged_by VARCHAR NOT NULL, purged_at TIMESTAMP NOT NULL,
        reason VARCHAR NOT NULL, revisions INTEGER, copy_of VARCHAR,
        PRIMARY KEY (dataset_id, sample_id)
    )""",
    """CREATE TABLE IF NOT EXISTS flagged_runs (
        run_id VARCHAR NOT NULL, run_dir VARCHAR, purge_id VARCHAR NOT NULL, dataset VARCHAR,
        version_id VARCHAR, flagged_at TIMESTAMP NOT NULL, note VARCHAR,
        PRIMARY KEY (run_id, purge_id)
    )""",
    # where each import came from: file, its SHA-256, the licence and where it was read
    """CREATE TABLE IF NOT EXISTS provenance (
        version_id VARCHAR PRIMARY KEY, dataset VARCHAR NOT NULL, file VARCHAR, file_sha256 VARCHAR,
        source VARCHAR, license VARCHAR, license_origin VARCHAR, card JSON,
        created_at TIMESTAMP, created_by VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS backups (
        backup_id VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL, schema_version INTEGER, tables JSON, files BIGINT
    )""",
]
