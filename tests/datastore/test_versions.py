import subprocess
import sys
import time

import pytest

from datastore import Conflict, NotFound, Sample, Store, StoreLocked
from datastore import audit
from datastore import versions as V
from datastore.samples import row_hash


def rows(*texts):
    return [Sample(instruction=t, output=t.upper()).to_row() for t in texts]


def test_commit_log_resolve_and_read_old_versions(tmp_workspace):
    with Store(tmp_workspace) as st:
        v1 = V.commit(st, "d", author="ann", message="first", add=rows("a", "b", "c"), create=True)
        assert (v1.number, v1.n_samples, v1.n_added, v1.parent_id) == (1, 3, 3, None)
        ids = [s.sample_id for s in V.read_page(st, v1)]
        assert ids == [1, 2, 3]
        new_b = Sample(instruction="b", output="changed").to_row()
        v2 = V.commit(st, "d", author="bob", message="edit", update={2: new_b}, remove=[3], add=rows("d"))
        assert (v2.number, v2.n_samples, v2.n_added, v2.n_removed, v2.n_modified) == (2, 3, 1, 1, 1)
        assert v2.parent_id == v1.version_id
        # the old version is still readable as it was
        old = {s.sample_id: s.output for s in V.read_page(st, V.resolve(st, "d", 1))}
        new = {s.sample_id: s.output for s in V.read_page(st, V.resolve(st, "d", "v2"))}
        assert old == {1: "A", 2: "B", 3: "C"}
        assert new == {1: "A", 2: "changed", 4: "D"}
        assert [v.number for v in V.log(st, "d")] == [2, 1]
        assert V.resolve(st, "d").number == 2
        assert V.resolve(st, "d", v1.version_id).number == 1
        assert V.resolve(st, "d", v1.version_id[:6]).number == 1
        V.tag(st, "d", "gold", 1, user="ann")
        assert V.resolve(st, "d", "gold").version_id == v1.version_id
        with pytest.raises(NotFound):
            V.resolve(st, "d", 7)
        with pytest.raises(Exception):
            V.tag(st, "d", "v3", 1, user="ann")


def test_diff_rows(tmp_workspace):
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="a", message="1", add=rows("a", "b", "c"), create=True)
        V.commit(st, "d", author="a", message="2", update={1: Sample(instruction="a", output="x").to_row()},
                 remove=[2], add=rows("e"))
        d = V.diff(st, "d", 1, 2)
        assert (d.added, d.removed, d.modified) == ([4], [2], [1])
        back = V.diff(st, "d", 2, 1)
        assert (back.added, back.removed, back.modified) == ([2], [4], [1])


def test_content_hash_is_order_free_counts_duplicates_and_is_incremental(tmp_workspace):
    with Store(tmp_workspace) as st:
        a = V.commit(st, "x", author="u", message="m", add=rows("a", "b", "c"), create=True)
        b = V.commit(st, "y", author="u", message="m", add=rows("c", "a", "b"), create=True)
        c = V.commit(st, "z", author="u", message="m", add=rows("a", "b", "c", "c"), create=True)
        assert a.content_hash == b.content_hash
        assert c.content_hash != a.content_hash
        # incremental update equals a from-scratch commit of the same content
        V.commit(st, "x", author="u", message="m", remove=[2], add=rows("q"))
        fresh = V.commit(st, "w", author="u", message="m", add=rows("a", "c", "q"), create=True)
        assert V.resolve(st, "x").content_hash == fresh.content_hash
        # ids, authors and timestamps are not part of the hash
        r = Sample(instruction="a", output="A", annotator_ids=["u1"], source="f.json", source_row=9).to_row()
        assert r["row_hash"] == row_hash(Sample(instruction="a", output="A").to_row())


def test_failed_commit_writes_nothing(tmp_workspace):
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="u", message="m", add=rows("a"), create=True)
        with pytest.raises(NotFound):
            V.commit(st, "d", author="u", message="m", add=rows("b"), remove=[99])
        with pytest.raises(Conflict):
            V.commit(st, "d", author="u", message="noop")
        assert V.resolve(st, "d").number == 1
        assert st.conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1


def test_every_write_is_audited(tmp_workspace):
    with Store(tmp_workspace) as st:
        V.commit(st, "d", author="ann", message="m", add=rows("a"), create=True)
        V.tag(st, "d", "t", None, user="bob")
        acts = [(e["user"], e["action"]) for e in audit.entries(st)]
    assert acts == [("bob", "version.tag"), ("ann", "version.commit"), ("ann", "dataset.create")]


def test_locked_store_names_the_holder_within_the_bound(tmp_workspace):
    Store(tmp_workspace).close()
    code = f"from datastore import Store; import time; s = Store({str(tmp_workspace)!r}); print('held', flush=True); time.sleep(5)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StoreLocked) as e:
            Store(tmp_workspace, timeout_s=1.0)
        assert time.monotonic() - t0 < 3
        assert f"PID {holder.pid}" in str(e.value)
        assert "from datastore import Store" in str(e.value)
    finally:
        holder.kill()
        holder.wait()
