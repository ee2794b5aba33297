"""Licences read at import (card, flag, dataset_info.json), carried per sample, listed with
warnings, carried by exports; the dataset card's YAML header and sections."""
from __future__ import annotations

import json

import yaml

from datastore import Store
from datastore import governance as G
from pipelines.curate import cards, licences as L
from pipelines.curation import licences_of
from pipelines.formats import export_version, import_file


def test_licence_from_card_and_flag_per_sample(ws, tmp_path):
    assert licences_of(ws, "d") == [{"license": "cc-by-nc-4.0", "commercial": "forbidden", "share_alike": False,
                                     "no_derivatives": False, "conditions": False, "samples": 21,
                                     "sources": ["data.json"]}]
    (tmp_path / "m.json").write_text(json.dumps([{"instruction": "another one", "output": "x"}]))
    rep = import_file(ws, tmp_path / "m.json", "d", user="local-admin", license="MIT")
    assert (rep.license, rep.license_origin) == ("mit", "--license")
    ls = licences_of(ws, "d")
    assert [(e["license"], e["samples"]) for e in ls] == [("cc-by-nc-4.0", 21), ("mit", 1)]
    w = L.warnings_for(ls)
    assert len(w) == 1 and w[0].startswith("not for commercial use: 21 sample(s) under cc-by-nc-4.0")
    with Store(ws) as st:
        prov = G.provenance(st, "d")
    assert [(p["license"], p["license_origin"]) for p in prov] == [("cc-by-nc-4.0", "README.md YAML header"),
                                                                  ("mit", "--license")]
    assert prov[0]["card"]["pretty_name"] == "Test" and len(prov[0]["file_sha256"]) == 64


def test_hf_dataset_info_licence(tmp_path):
    from datasets import Dataset
    from datasets.info import DatasetInfo
    d = Dataset.from_list([{"instruction": "hello there", "output": "hi"}],
                          info=DatasetInfo(license="cc-by-sa-4.0"))
    d.save_to_disk(str(tmp_path / "hf"))
    assert L.licence_from_card(tmp_path / "hf")[:2] == ("cc-by-sa-4.0", "dataset_info.json")
    rep = import_file(tmp_path / "ws", tmp_path / "hf", "h", user="local-admin")
    assert rep.license == "cc-by-sa-4.0"


def test_classify_unknown_and_research_only():
    assert L.classify("research-only")["commercial"] == "forbidden"
    assert L.classify("my-custom-nc-licence")["commercial"] == "forbidden"
    assert L.classify(None)["commercial"] == "unknown"
    w = L.warnings_for(L.licence_list([("apache-2.0", "a", 5), (None, "b", 2)]))
    assert w == ["licence unknown for 2 sample(s) (unknown): check their terms before shipping"]


def test_export_carries_licences_and_card(ws):
    res = export_version(ws, "d", None, "alpaca", ws / "exports" / "d.json")
    assert res["licences"][0]["license"] == "cc-by-nc-4.0" and res["licence_warnings"]
    text = (ws / "exports" / "README.md").read_text()
    assert res["card"] == str(ws / "exports" / "README.md")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "cc-by-nc-4.0" and meta["size_categories"] == ["n<1K"]
    assert meta["workbench"]["content_hash"] == res["content_hash"] and meta["workbench"]["samples"] == 21
    for section in ("## Licences", "## Sources", "## Counts", "## Quality metrics", "## Curation log"):
        assert section in text
    assert "| v1 |" in text and "import data.json" in text and "forbid commercial" in text
    # a user's own README is never overwritten
    (ws / "exports2").mkdir()
    (ws / "exports2" / "README.md").write_text("mine")
    res = export_version(ws, "d", None, "alpaca", ws / "exports2" / "d.json")
    assert (ws / "exports2" / "README.md").read_text() == "mine" and res["card"].endswith("d.json.README.md")


def test_card_states_curation_log(ws):
    from pipelines.curate import filter as F
    F.filter_version(ws, "d", user="local-admin", where="sample_id < 5")
    md = cards.render_card(ws, "d")
    assert "filter d v1 where (sample_id < 5): kept 4 of 21" in md
    assert '"op": "filter"' in md


def test_two_datasets_exported_into_one_folder_keep_a_card_each(ws):
    import_file(ws, ws.parent / "src" / "data.json", "e", user="local-admin")
    first = export_version(ws, "d", None, "alpaca", ws / "out" / "d.json")
    again = export_version(ws, "d", None, "alpaca", ws / "out" / "d2.json")   # same dataset: same card
    second = export_version(ws, "e", None, "alpaca", ws / "out" / "e.json")
    assert first["card"] == again["card"] == str(ws / "out" / "README.md")
    assert second["card"] == str(ws / "out" / "e.json.README.md")
    dataset_of = lambda p: yaml.safe_load(open(p).read().split("---")[1])["workbench"]["dataset"]  # noqa: E731
    assert (dataset_of(first["card"]), dataset_of(second["card"])) == ("d", "e")
