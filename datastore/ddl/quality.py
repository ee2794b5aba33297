"""Tables of the quality area (see datastore/ddl/__init__.py).

- ``quality_suites``: one validation suite per dataset (great-expectations expectation
  configurations as JSON, plus the dataset's policy-domain quotas), editable from the UI.
- ``quality_gate_results``: one row per dataset version once a gate is scheduled:
  ``pending`` until the background run stores ``passed``/``failed``/``error``.
- ``quality_overrides``: a curator's decision to launch a failing version anyway, with reason.
- ``quality_eval_sets`` / ``quality_eval_items``: evaluation sets registered on a dataset
  (from a version on) for the contamination check.
- ``quality_metric_cache``: expensive per-version metrics (parsed diversity, token lengths,
  near/semantic duplicates, contamination) keyed by version and parameters; versions are
  immutable, so a cached value never goes stale for the same key.
"""
DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS quality_eval_set_ids START 1",
    """CREATE TABLE IF NOT EXISTS quality_suites (
        dataset_id INTEGER PRIMARY KEY,
        suite JSON NOT NULL,                 -- {"expectations": [{"type", "kwargs"}], "domain_quotas": {...}}
        suite_hash VARCHAR NOT NULL,
        updated_by VARCHAR, updated_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS quality_gate_results (
        version_id VARCHAR PRIMARY KEY,
        dataset_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        status VARCHAR NOT NULL,             -- pending | passed | failed | error
        suite_hash VARCHAR,
        summary JSON,                        -- per expectation: type, column, success, unexpected count, example ids
        job_dir VARCHAR,
        scheduled_at TIMESTAMP, finished_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS quality_overrides (
        version_id VARCHAR PRIMARY KEY,
        dataset_id INTEGER NOT NULL,
        user_name VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        "at" TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quality_eval_sets (
        eval_set_id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        from_version INTEGER NOT NULL,       -- registered on this version; applies to it and later ones
        source VARCHAR, n_items BIGINT,
        created_by VARCHAR, created_at TIMESTAMP,
        UNIQUE (dataset_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS quality_eval_items (
        eval_set_id INTEGER NOT NULL,
        item_no BIGINT NOT NULL,
        text VARCHAR NOT NULL,
        PRIMARY KEY (eval_set_id, item_no)
    )""",
    """CREATE TABLE IF NOT EXISTS quality_metric_cache (
        version_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        params VARCHAR NOT NULL,
        value JSON NOT NULL,
        computed_at TIMESTAMP,
        PRIMARY KEY (version_id, name, params)
    )""",
]
