"""What a dataset's history costs an ingest in memory: its manifest parsed once and shared (the entries
read-only: ``dataset._Held``), not parsed again by each of its readers, copied to compare, nor joined
whole as text to write. An ingest into a dataset of 18,000 inputs (a 14 MB manifest) peaked at ~500 MB
RSS in its main process against ~150 MB into a new dataset: ~25 times the manifest's size."""
from __future__ import annotations

import gc
import io
import tracemalloc

import pytest
from conftest import SAMPLES

from logpipe import ingest
from logpipe.dataset import Dataset

ENTRIES = 3_000


def _entry(i: int) -> dict:
    """An entry as a nightly ingest of pod logs leaves it (times before the sample's: nothing overlaps)."""
    return {"blank": 0, "bytes_end": 3200814, "bytes_read": 3200814, "compression": "plain", "ends_newline": True,
            "error": None, "finished_at": "2024-12-01T21:53:44Z", "first_line": 1, "format_spec": "",
            "hash": f"{i:032x}", "hash_algo": "blake3-128", "heads": [[303, f"{i + 1:032x}"]], "id": f"{i:012x}",
            "joined": 0, "line_end": 10018, "malformed": 0, "max_time": "2024-01-01T01:00:00+00:00",
            "min_time": "2024-01-01T00:00:00+00:00", "noise": 58, "parsed": 9960,
            "parts": [f"date=2024-01-01/part-{i:012x}-x.parquet"], "path": f"/var/log/pods/ns_pod-{i}/c/0.log",
            "prefix": f"part-{i:012x}", "read": 10018, "rejects": [], "rows": 9960, "size": 3200814 + i,
            "skip_bytes": 0, "started_at": "2024-12-01T21:53:43Z", "state": "complete"}


def _ingest_peak(data, log) -> int:
    """The traced memory an in-process ingest of ``log`` into ``data`` peaks at, above what was held before."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        summary = ingest.ingest_paths([str(log)], str(data), err=io.StringIO(), progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.ingested == 1
    return peak - base


def test_an_ingest_holds_the_manifest_of_a_long_history_once(tmp_path, monkeypatch):
    """The peak an ingest's manifest adds is a few times its JSON text (parsed: ~3x; each entry's text,
    to write it again unchanged: ~1x), not ~17x as when each reader parsed it (4.5x measured; 3,000
    entries, a 2.3 MB manifest: 10 MB above an ingest into a new dataset, 40 MB before)."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")  # (everything in this process: traced)
    log = tmp_path / "a.log"
    log.write_text((SAMPLES / "waypoint-egress-1.23.log").read_text())
    history = Dataset(tmp_path / "history", create=True)
    history.update_manifest(lambda m: m["inputs"].extend(_entry(i) for i in range(ENTRIES)))
    size = history.manifest_path.stat().st_size
    del history
    new = _ingest_peak(tmp_path / "new", log)
    held = _ingest_peak(tmp_path / "history", log)
    assert held - new < 8 * size, f"the manifest ({size / 1e6:.1f} MB) added {(held - new) / 1e6:.1f} MB"


def test_the_entries_read_are_shared_and_read_only(tmp_path):
    """Every reader gets the one parse; a change of it outside ``update_manifest`` is an error (it would
    be every reader's, and written, or not, at the next write); ``update_manifest`` reads it no more."""
    ds = Dataset(tmp_path / "d", create=True)
    ds.update_manifest(lambda m: m["inputs"].extend(_entry(i) for i in range(3)))
    (first, *_), again = ds.entries(), ds.entries()
    assert first is again[0] and ds.read_manifest() is ds.read_manifest()
    with pytest.raises(TypeError, match="read-only"):
        first["path"] = "x"
    with pytest.raises(TypeError, match="read-only"):
        ds.read_manifest()["generation"] = 0
    assert dict(first, path="x")["path"] == "x"  # (a copy is the caller's)
    ds.update_manifest(lambda m: m["inputs"][0].__setitem__("path", "moved"))  # (in a change: written)
    assert Dataset(ds.root).entries()[0]["path"] == "moved" == ds.entries()[0]["path"]


def test_a_manifest_written_by_another_process_or_by_hand_is_read_again(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    ds.update_manifest(lambda m: m["inputs"].extend(_entry(i) for i in range(3)))
    held = ds.read_manifest()
    Dataset(ds.root).update_manifest(lambda m: m["inputs"].append(_entry(7)))
    assert len(ds.entries()) == 4 and ds.read_manifest() is not held
    text = ds.manifest_path.read_text()
    ds.manifest_path.write_text(text.replace(_entry(7)["path"], "/by/hand"))  # (the same generation)
    assert ds.entries()[-1]["path"] == "/by/hand"
