"""Export a task's items with every annotation and adjudication.

One row per item: the sample's current text, its state and round, the annotations as a
list of structs and the latest adjudication. Written with pyarrow in keyset pages of
``PAGE_ITEMS`` (never the whole task in memory), as Parquet or JSON Lines.
"""
from __future__ import annotations

from pathlib import Path

from datastore import WorkbenchError
from datastore import annotations as A

from ._common import check, read_store, task_of

PAGE_ITEMS = 100_000
FORMATS = ("parquet", "jsonl")


def export_annotations(workspace: str | Path, user: str | None, task: int | str, out: str | Path, *,
                       fmt: str = "parquet", after_id: int = 0, limit: int | None = None) -> dict:
    """Write the task's items (sample id > ``after_id``, at most ``limit``) to ``out``;
    returns ``{"path", "items", "annotations", "format"}``. Needs ``read_all_annotations``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    if fmt not in FORMATS:
        raise WorkbenchError(f"export format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    items = anns = 0
    writer = None
    fh = None
    with read_store(workspace) as st:
        check(st, user, "read_all_annotations")
        t = task_of(st, task)
        last = after_id
        try:
            while limit is None or items < limit:
                page = PAGE_ITEMS if limit is None else min(PAGE_ITEMS, limit - items)
                tab = A.export_table(st.conn, t["task_id"], t["dataset_id"], after_id=last, limit=page)
                if tab.num_rows == 0:
                    break
                items += tab.num_rows
                anns += int(pc.sum(pc.list_value_length(tab.column("annotations"))).as_py() or 0)
                last = tab.column("sample_id")[-1].as_py()
                if fmt == "parquet":
                    if writer is None:
                        writer = pq.ParquetWriter(out, tab.schema)
                    writer.write_table(tab)
                else:
                    import json
                    if fh is None:
                        fh = out.open("w", encoding="utf-8")
                    for rec in tab.to_pylist():
                        fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                if tab.num_rows < page:
                    break
        finally:
            if writer is not None:
                writer.close()
            if fh is not None:
                fh.close()
    return {"path": str(out), "items": items, "annotations": anns, "format": fmt}
