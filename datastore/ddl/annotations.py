"""Tables of the review area: tasks, items, assignments, annotations, submits, drafts,
suggestions, gold items and adjudications (see datastore/ddl/__init__.py).

Design (docs/review.md):
- ``review_items`` holds one row per sample of a task with its ``round``: a sample whose text
  changes after annotation gets ``round + 1`` and its older annotations are marked stale.
- ``annotations`` is unique on (task, sample, annotator, round), so however a submit is
  retried or doubled there is at most one current annotation per annotator and sample;
  ``review_submits`` maps each client-supplied submit id to the annotation it produced, so a
  retried submit returns the first acknowledgement instead of writing again.
- Assignments and items carry no index: they are bulk-written once per task, sorted
  (assignments by annotator and queue position, items by sample), and read by filtered scans
  that DuckDB's zone maps narrow to a row group or two, which keeps a 1M-sample task cheap to
  open. ``annotations`` gets one single-column ART index on ``sample_id``: DuckDB 2.0 uses
  only single-column ART indexes for scans (the UNIQUE constraint's index is not used for
  lookups), and per-item reads (own answer, submit, adjudication) are point lookups there.
"""
DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS review_task_ids START 1",
    "CREATE SEQUENCE IF NOT EXISTS annotation_ids START 1",
    "CREATE SEQUENCE IF NOT EXISTS adjudication_ids START 1",
    """CREATE TABLE IF NOT EXISTS review_tasks (
        task_id INTEGER PRIMARY KEY,
        name VARCHAR UNIQUE NOT NULL,
        dataset_id INTEGER NOT NULL,
        version_number INTEGER NOT NULL,
        version_id VARCHAR NOT NULL,
        overlap_k INTEGER NOT NULL,
        pool VARCHAR[] NOT NULL,
        guidelines VARCHAR,
        questions JSON NOT NULL,
        target_dataset VARCHAR,                   -- where accepted staging samples are merged
        status VARCHAR NOT NULL DEFAULT 'open',   -- 'open' | 'closed'
        created_by VARCHAR, created_at TIMESTAMP,
        merged_version INTEGER                    -- target version made by merge_task
    )""",
    """CREATE TABLE IF NOT EXISTS review_items (
        task_id INTEGER NOT NULL,
        sample_id BIGINT NOT NULL,
        round INTEGER NOT NULL DEFAULT 0,         -- +1 each time the text changes (stale)
        state VARCHAR NOT NULL DEFAULT 'open',    -- 'open' | 'adjudicated' | 'removed'
        is_gold BOOLEAN NOT NULL DEFAULT false
    )""",
    """CREATE TABLE IF NOT EXISTS review_assignments (
        task_id INTEGER NOT NULL,
        sample_id BIGINT NOT NULL,
        annotator VARCHAR NOT NULL,
        position BIGINT NOT NULL,                 -- queue order (a hash: gold mixes in unannounced)
        status VARCHAR NOT NULL DEFAULT 'pending' -- 'pending' | 'done' | 'removed'
    )""",
    """CREATE TABLE IF NOT EXISTS annotations (
        annotation_id BIGINT PRIMARY KEY,
        task_id INTEGER NOT NULL,
        sample_id BIGINT NOT NULL,
        annotator VARCHAR NOT NULL,
        round INTEGER NOT NULL,
        row_hash VARCHAR,                         -- the sample revision the annotator saw
        decision VARCHAR,                         -- accept | reject | edit (copied for fast agreement)
        rating INTEGER,                           -- quality 1..5 (copied for fast agreement)
        answers JSON NOT NULL,
        time_spent_ms BIGINT,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        stale BOOLEAN NOT NULL DEFAULT false,
        submit_id VARCHAR,
        codes UTINYINT[],                         -- the answers coded for agreement (see annotations.coded_table)
        UNIQUE (task_id, sample_id, annotator, round)
    )""",
    # workspaces made before the codes column: their rows keep NULL codes and are coded from the JSON
    "ALTER TABLE annotations ADD COLUMN IF NOT EXISTS codes UTINYINT[]",
    "CREATE INDEX IF NOT EXISTS annotations_by_sample ON annotations (sample_id)",
    """CREATE TABLE IF NOT EXISTS review_submits (
        submit_id VARCHAR PRIMARY KEY,
        annotation_id BIGINT NOT NULL,
        annotator VARCHAR NOT NULL,
        "at" TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_drafts (
        task_id INTEGER NOT NULL, sample_id BIGINT NOT NULL, annotator VARCHAR NOT NULL,
        answers JSON, elapsed_ms BIGINT, updated_at TIMESTAMP,
        PRIMARY KEY (task_id, sample_id, annotator)
    )""",
    """CREATE TABLE IF NOT EXISTS review_suggestions (
        dataset_id INTEGER NOT NULL, sample_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,                  -- 'generator' | 'scoring_head' | 'reference'
        text VARCHAR, decision VARCHAR, score DOUBLE, model VARCHAR,
        created_by VARCHAR, created_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS review_gold (
        task_id INTEGER NOT NULL, sample_id BIGINT NOT NULL, expected JSON NOT NULL,
        created_by VARCHAR, created_at TIMESTAMP,
        PRIMARY KEY (task_id, sample_id)
    )""",
    """CREATE TABLE IF NOT EXISTS review_adjudications (
        adjudication_id BIGINT PRIMARY KEY,
        task_id INTEGER NOT NULL, sample_id BIGINT NOT NULL, round INTEGER NOT NULL,
        adjudicator VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,                -- accept | reject | edit
        chosen_annotation_id BIGINT,              -- the annotation picked, if one was
        final JSON,                               -- the final answers (and text, if edited)
        note VARCHAR,
        version_number INTEGER,                   -- dataset version the adjudication committed
        created_at TIMESTAMP NOT NULL
    )""",
]
