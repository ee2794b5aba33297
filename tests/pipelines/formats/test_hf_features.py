"""A Hugging Face ``datasets`` round trip keeps the Features the data came with, or refuses
naming the column; read back with ``datasets.load_from_disk`` itself."""
from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value, load_from_disk

from datastore import Store, WorkbenchError
from datastore import versions as V
from datastore.samples import Sample
from pipelines.formats import export_dataset_object, export_version, import_dataset_object, import_file

FEATURES = Features({
    "instruction": Value("string"),
    "output": Value("string"),
    "label": ClassLabel(names=["negative", "neutral", "positive"]),
    "score": Value("float32"),
    "spans": List(List(Value("int32"))),
    "embedding": List(Value("float32"), length=3),
    "meta": {"source": Value("string"), "weights": List(Value("float32"))},
})
ROWS = {
    "instruction": ["Rate: great film", "Rate: dull", "Rate: fine"],
    "output": ["positive", "negative", "neutral"],
    "label": [2, 0, 1],
    "score": [0.1, 1 / 3, 2.5e-8],
    "spans": [[[0, 4], [5, 9]], [], [[1, 2]]],
    "embedding": [[0.1, 0.2, 0.3], [1e-3, -2.0, 3.14159], [0.0, 0.0, 1.0]],
    "meta": [{"source": "a", "weights": [0.7]}, {"source": "b", "weights": []}, {"source": "c", "weights": [1.1, 2.2]}],
}


@pytest.fixture
def hf_folder(tmp_path):
    ds = Dataset.from_dict(ROWS, features=FEATURES)
    ds.save_to_disk(str(tmp_path / "src"))
    return tmp_path / "src", ds


def _same_data(a: Dataset, b: Dataset) -> None:
    assert a.features == b.features
    assert a.num_rows == b.num_rows
    for col in a.column_names:  # arrow values, so float32 compares as float32 bit patterns
        assert a.data.column(col).combine_chunks().equals(b.data.column(col).combine_chunks()), col


def test_folder_round_trip_gives_back_the_same_features_and_values(tmp_workspace, tmp_path, hf_folder):
    src, original = hf_folder
    rep = import_file(tmp_workspace, src, "h", user="t")
    assert (rep.container, rep.schema, rep.imported) == ("hf", "alpaca", 3)
    out = tmp_path / "out"
    export_version(tmp_workspace, "h", None, "hf", out, card=False)
    back = load_from_disk(str(out))
    assert back.features == FEATURES
    assert back.features["label"].names == ["negative", "neutral", "positive"]
    assert back.features["score"].dtype == "float32"  # not widened to float64
    _same_data(back, original)
    assert back["score"] == original["score"]
    assert np.float32(back[1]["score"]) == np.float32(1 / 3)


def test_dataset_object_round_trip(tmp_workspace, hf_folder):
    _, original = hf_folder
    import_dataset_object(tmp_workspace, original, "o", user="t")
    back = export_dataset_object(tmp_workspace, "o", fmt="alpaca")
    _same_data(back, original)


def test_data_that_no_longer_fits_is_refused_naming_the_column(tmp_workspace, tmp_path, hf_folder):
    src, _ = hf_folder
    import_file(tmp_workspace, src, "h", user="t")
    with Store(tmp_workspace) as st:
        s = next(iter(V.iter_samples(st, V.resolve(st, "h", None))))
        extra = {**s.extra, "label": 7}  # three class names: 7 is no label
        edited = Sample(**{**s.__dict__, "extra": extra, "sample_id": None})
        V.commit(st, "h", author="t", message="bad label", add=[edited.to_row()], remove=[s.sample_id])
    with pytest.raises(WorkbenchError, match=r"column 'label' no longer fits"):
        export_version(tmp_workspace, "h", None, "hf", tmp_path / "bad", card=False)
    assert not (tmp_path / "bad").exists()


def test_a_new_column_is_refused_naming_it(tmp_workspace, tmp_path, hf_folder):
    src, _ = hf_folder
    import_file(tmp_workspace, src, "h", user="t")
    with Store(tmp_workspace) as st:
        s = next(iter(V.iter_samples(st, V.resolve(st, "h", None))))
        edited = Sample(**{**s.__dict__, "extra": {**s.extra, "note": "added later"}, "sample_id": None})
        V.commit(st, "h", author="t", message="note", add=[edited.to_row()], remove=[s.sample_id])
    with pytest.raises(WorkbenchError, match=r"column 'note' is not among them"):
        export_version(tmp_workspace, "h", None, "hf", tmp_path / "bad", card=False)
