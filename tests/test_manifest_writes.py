"""The manifest's writes cost what a commit changes, not the dataset's whole history: an entry that did
not change is written as the text it had (no json.dumps of every entry of every input ever ingested),
and an update reads the manifest only when another process wrote it since. What is written is what a
whole read-modify-write wrote."""
from __future__ import annotations

import json

import pytest

from logpipe import dataset
from logpipe.dataset import Dataset, _manifest_text


def _entry(i: int) -> dict:
    return {"id": f"{i:012x}", "path": f"/var/log/pods/ns_pod-{i}/c/0.log", "hash": f"{i:032x}", "size": 1000 + i,
            "heads": [[303, f"{i:032x}"]], "parts": [f"date=2024-01-01/part-{i:012x}-x.parquet"], "rejects": [],
            "state": "complete"}


@pytest.fixture
def ds(tmp_path):
    d = Dataset(tmp_path / "ds", create=True)
    d.update_manifest(lambda m: m["inputs"].extend(_entry(i) for i in range(200)))
    return d


def _on_disk(d: Dataset) -> str:
    return d.manifest_path.read_text(encoding="utf-8")


def test_a_write_serializes_only_the_entries_it_changed(ds, monkeypatch):
    dumped = []

    class CountingJson:  # (logpipe.dataset's json, counting the entries it serializes)
        def __getattr__(self, name):
            return getattr(json, name)

        def dumps(self, obj, **kw):
            dumped.append(obj)
            return json.dumps(obj, **kw)

    monkeypatch.setattr(dataset, "json", CountingJson())
    ds.update_manifest(lambda m: m["inputs"].append(_entry(200)))
    ds.update_manifest(lambda m: m.__setitem__("inputs", [dict(e, state="x") if e["id"] == _entry(7)["id"] else e
                                                           for e in m["inputs"]]))
    entries = [o for o in dumped if isinstance(o, dict) and "id" in o]
    assert [e["id"] for e in entries] == [_entry(200)["id"], _entry(7)["id"]]
    m = json.loads(_on_disk(ds))
    assert len(m["inputs"]) == 201 and m["inputs"][7]["state"] == "x" and m["inputs"][200] == _entry(200)
    assert _on_disk(ds) == _manifest_text(m)  # (the text a whole serialization gives)


def test_another_writer_s_changes_are_read_not_overwritten(ds):
    other = Dataset(ds.root)
    other.update_manifest(lambda m: m["inputs"].append(_entry(500)))
    ds.update_manifest(lambda m: m["inputs"].append(_entry(501)))
    ids = [e["id"] for e in json.loads(_on_disk(ds))["inputs"]]
    assert ids[-2:] == [_entry(500)["id"], _entry(501)["id"]] and len(ids) == 202


def test_what_a_caller_keeps_and_changes_later_is_not_written(ds):
    begun = ds.begin_entries([_entry(300)])[0]
    begun["path"] = "changed by the caller, after"
    begun["parts"].append("not written")
    ds.update_manifest(lambda m: None)
    written = next(e for e in json.loads(_on_disk(ds))["inputs"] if e["id"] == _entry(300)["id"])
    assert written["path"] == _entry(300)["path"] and written["parts"] == []


def test_an_entry_changed_in_place_is_written_and_a_failed_change_writes_nothing(ds):
    ds.update_manifest(lambda m: m["inputs"][3].__setitem__("path", "moved"))
    assert json.loads(_on_disk(ds))["inputs"][3]["path"] == "moved"
    before = _on_disk(ds)

    def half_done(m):
        m["inputs"][4]["path"] = "half"
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        ds.update_manifest(half_done)
    assert _on_disk(ds) == before
    ds.update_manifest(lambda m: None)  # (the half-done change is not kept for the next write either)
    assert json.loads(_on_disk(ds))["inputs"][4]["path"] == _entry(4)["path"]


@pytest.mark.parametrize("damage, said", [
    (lambda text: text[:len(text) // 2], "is not valid JSON"),  # (its first line whole: the open reads no further)
    (lambda text: '{"format": "something else", "inputs": []}\n', "is not a logpipe manifest"),
    (lambda text: "[1, 2]\n", "is not a logpipe manifest")])
def test_a_damaged_or_foreign_manifest_is_one_line(ds, tmp_path, damage, said):
    """A dataset's open checks the manifest's first line alone (a whole read of a 14 MB manifest cost every
    command ~0.12 s); a manifest damaged further on is said at its first read, in the same one line."""
    from conftest import run_logpipe

    ds.manifest_path.write_text(damage(_on_disk(ds)), encoding="utf-8")
    (tmp_path / "a.log").write_text("")
    r = run_logpipe("ingest", "a.log", "--data", str(ds.root), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("logpipe: error: ") and said in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_manifest_write_a_kill_cut_short_is_removed_by_the_next_ingest(ds, tmp_path):
    """A manifest write killed before its rename leaves ``._manifest.json.tmp``; the next ingest removes
    it, though it writes no manifest (its input ingested already). It stayed: test_ingest's kill -9 at
    the reject files' merge found it there now and then (check_consistent)."""
    from conftest import run_logpipe

    (tmp_path / "a.log").write_text("")
    assert run_logpipe("ingest", "a.log", "--data", str(ds.root), cwd=tmp_path).returncode == 0
    cut = ds.root / "._manifest.json.tmp"
    cut.write_text(_on_disk(ds)[:100])
    r = run_logpipe("ingest", "a.log", "--data", str(ds.root), cwd=tmp_path)
    assert r.returncode == 0 and "skipped as already ingested 1" in r.stderr, r.stderr
    assert not cut.exists()
