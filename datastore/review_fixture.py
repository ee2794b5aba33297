"""Bulk loading of benchmark fixtures for the review area (the review scale benchmark allows the fixture
to be bulk-loaded; the timed calls then go through the service layer). Not used by the app."""
from __future__ import annotations

from .schema import OPEN_END


def bulk_annotate(conn, task_id: int, *, pending_per_annotator: int, seed: float = 0.42) -> int:
    """Answer every assignment of ``task_id`` except the last ``pending_per_annotator`` of each
    annotator's queue, with pseudo-random decisions (80 % accept, 10 % reject, 10 % edit),
    ratings 1-5 and difficulty correlated within an item, a policy domain on half of the
    answers and each of the five default flags on about 5 %, so every default question is
    measured and agreement is neither 0 nor 1. Call inside a transaction. Returns the number
    of annotations written."""
    conn.execute(f"SELECT setseed({float(seed)})")
    conn.execute(
        """CREATE TEMP TABLE _todo AS
           SELECT task_id, sample_id, annotator, position FROM (
             SELECT *, row_number() OVER (PARTITION BY annotator ORDER BY position DESC) AS back
             FROM review_assignments WHERE task_id = ? AND status = 'pending') WHERE back > ?""",
        [task_id, pending_per_annotator])
    n = conn.execute("SELECT count(*) FROM _todo").fetchone()[0]
    conn.execute(
        """INSERT INTO annotations (annotation_id, task_id, sample_id, annotator, round, row_hash, decision, rating,
                                    answers, time_spent_ms, created_at, updated_at, stale, submit_id)
           SELECT nextval('annotation_ids'), task_id, sample_id, annotator, 0, NULL, d, r,
                  json_object('decision', d, 'rating', r,
                              'difficulty', (['easy', 'medium', 'hard'])[1 + ((hash(sample_id) % 3)::INTEGER + (u < 0.25)::INTEGER) % 3],
                              'policy_domain', CASE WHEN u2 < 0.5 THEN (['none', 'S1', 'S6', 'S10'])[1 + (hash(sample_id) % 4)::INTEGER] END,
                              'flags', list_filter(['unsafe', 'factually_wrong', 'should_refuse', 'should_not_refuse',
                                                    'personal_data'], lambda x: random() < 0.05)), t, now()::TIMESTAMP, now()::TIMESTAMP, false,
                  'bulk-' || sample_id || '-' || annotator
           FROM (SELECT *, CASE WHEN u < 0.8 THEN 'accept' WHEN u < 0.9 THEN 'reject' ELSE 'edit' END AS d,
                        least(5, greatest(1, 1 + ((hash(sample_id) % 5) + CASE WHEN random() < 0.3 THEN 1 ELSE 0 END)))::INTEGER AS r,
                        (1000 + random() * 20000)::BIGINT AS t
                 FROM (SELECT *, random() AS u, random() AS u2 FROM _todo))""")
    conn.execute("""INSERT INTO review_submits SELECT submit_id, annotation_id, annotator, created_at
                    FROM annotations WHERE task_id = ? AND submit_id LIKE 'bulk-%'""", [task_id])
    conn.execute("""UPDATE review_assignments SET status = 'done' WHERE task_id = ? AND status = 'pending'
                    AND (sample_id, annotator) IN (SELECT sample_id, annotator FROM _todo)""", [task_id])
    conn.execute("DROP TABLE _todo")
    return n


def head_count(conn, dataset_id: int) -> int:
    return conn.execute("SELECT count(*) FROM samples WHERE dataset_id = ? AND valid_to = ?",
                        [dataset_id, OPEN_END]).fetchone()[0]
