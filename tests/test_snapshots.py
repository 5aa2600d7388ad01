"""logpipe ingest of an earlier capture of a log after a later one: an input whose text is the start of
an ingested input's (``kubectl logs`` at 10h, ingested after the one at 11h) is skipped, its rows stored
once; found by the manifest entries' ``heads``, proved by the later capture's file."""
from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_logpipe
from test_ingest import check_consistent, gen_lines, manifest, rows, write_log

from logpipe import ingest, lanes


def captures(tmp_path: Path, n: int = 120, k: int = 80, names=("snap-11h.log", "snap-10h.log")) -> tuple[Path, Path]:
    """A log's capture of ``n`` lines and an earlier one of its first ``k`` lines."""
    lines = gen_lines(n, seed=11)
    return write_log(tmp_path / names[0], lines), write_log(tmp_path / names[1], lines[:k])


def ingest_ok(*args) -> str:
    r = run_logpipe("ingest", *args)
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_an_earlier_capture_ingested_after_the_later_one_is_skipped(tmp_path):
    data = tmp_path / "data"
    later, earlier = captures(tmp_path)
    ingest_ok(later, "--data", data)
    stored = rows(data)
    err = ingest_ok(earlier, "--data", data)
    assert f"{earlier}: its lines are the start of {later}, already ingested; skipped\n" in err
    assert "inputs 1: ingested 0, skipped as already ingested 1" in err and "rows written 0" in err
    assert rows(data) == stored > 0
    (entry,) = check_consistent(data)["inputs"]
    assert entry["read"] == 120 and entry["heads"]
    # a log that starts as the later capture and then differs is another log: ingested
    other = write_log(tmp_path / "other.log", gen_lines(80, seed=11)[:79] + gen_lines(1, seed=30))
    assert "ingested 1, skipped as already ingested 0" in ingest_ok(other, "--data", data)


def test_the_earlier_capture_first_in_the_same_run_is_skipped(tmp_path):
    """``ingest 'snaps/*.log'`` whose order puts the later capture first (both small: the earlier one
    waits for the later one's commit, then is proved by it)."""
    data = tmp_path / "data"
    captures(tmp_path / "snaps", names=("a-11h.log", "b-10h.log"))
    err = ingest_ok(str(tmp_path / "snaps" / "*.log"), "--data", data)
    assert "b-10h.log: its lines are the start of" in err and "inputs 2: ingested 1, skipped as already ingested 1" in err
    assert rows(data) == check_consistent(data)["inputs"][0]["parsed"]


@pytest.mark.parametrize("together", [False, True], ids=["two-runs", "one-run"])
def test_a_gzipped_earlier_capture_after_the_plain_later_one_is_skipped(tmp_path, together):
    data = tmp_path / "data"
    later, earlier = captures(tmp_path)
    packed = tmp_path / "snap-10h.log.gz"
    packed.write_bytes(gzip.compress(earlier.read_bytes()))
    if not together:
        ingest_ok(later, "--data", data)
    err = ingest_ok(*([later] if together else []), packed, "--data", data)
    assert f"{packed}: its lines are the start of {later}, already ingested; skipped" in err
    (entry,) = check_consistent(data)["inputs"]
    assert rows(data) == entry["parsed"] and entry["read"] == 120


def test_a_plain_earlier_capture_after_a_gzipped_later_one_is_skipped(tmp_path):
    data = tmp_path / "data"
    later, earlier = captures(tmp_path)
    packed = tmp_path / "snap-11h.log.gz"
    packed.write_bytes(gzip.compress(later.read_bytes()))
    ingest_ok(packed, "--data", data)
    assert f"{earlier}: its lines are the start of {packed}" in ingest_ok(earlier, "--data", data)
    assert len(check_consistent(data)["inputs"]) == 1


def test_an_earlier_capture_cut_mid_line_is_skipped(tmp_path):
    """A capture that ended inside a line: its whole lines are the later capture's, and its cut last
    line is one of the later capture's whole lines (stored once, not also as a malformed reject)."""
    data = tmp_path / "data"
    later, _ = captures(tmp_path)
    text = later.read_bytes()
    cut = tmp_path / "cut.log"
    cut.write_bytes(text[:text.index(b"\n", len(text) // 2) + 40])
    ingest_ok(later, "--data", data)
    err = ingest_ok(cut, "--data", data)
    assert f"{cut}: its lines are the start of {later} (its last line, cut short, is whole there), already" in err
    (entry,) = check_consistent(data)["inputs"]
    assert entry["read"] == 120 and rows(data) == entry["parsed"]


def test_an_earlier_capture_between_two_pieces_of_a_grown_log_is_skipped(tmp_path):
    """9h ingested, then 11h (read on after 9h's lines), then 10h: its lines are in those two."""
    data = tmp_path / "data"
    lines = gen_lines(120, seed=11)
    nine = write_log(tmp_path / "snap-09h.log", lines[:40])
    ingest_ok(nine, "--data", data)
    later, earlier = captures(tmp_path)
    ingest_ok(later, "--data", data)
    assert f"{earlier}: its lines are the start of {later}, already ingested; skipped" in ingest_ok(earlier, "--data", data)
    assert [e["read"] for e in check_consistent(data)["inputs"]] == [40, 80]


def test_force_on_an_earlier_capture_does_not_store_its_lines_twice(tmp_path):
    data = tmp_path / "data"
    later, earlier = captures(tmp_path)
    ingest_ok(later, "--data", data)
    stored = rows(data)
    err = ingest_ok(earlier, "--data", data, "--force")
    assert (f"{earlier}: its lines are the start of {later}, already ingested; skipped even with --force:"
            f" --force {later} re-reads them") in err
    assert rows(data) == stored
    ingest_ok(later, "--data", data, "--force")  # (what the note says: its rows replaced, once)
    (entry,) = check_consistent(data)["inputs"]
    assert rows(data) == stored == entry["parsed"]


def test_an_entry_without_heads_still_works(tmp_path):
    """A manifest written before entries recorded ``heads``: the earlier capture cannot be found by
    them alone (it is ingested, as before), unless the later capture is an input of the same run
    (skipped as the same content: its heads are known then)."""
    data = tmp_path / "data"
    later, earlier = captures(tmp_path)
    ingest_ok(later, "--data", data)
    m = manifest(data)
    for e in m["inputs"]:
        del e["heads"]
    (data / "_manifest.json").write_text(json.dumps(m))
    err = ingest_ok(later, earlier, "--data", data)
    assert f"{earlier}: its lines are the start of {later}" in err and "skipped as already ingested 2" in err
    assert len(check_consistent(data)["inputs"]) == 1
    err = ingest_ok(earlier, "--data", data)  # (nothing proves it here: its rows are found ingested, _Run.overlap)
    assert f"{earlier}: its lines were ingested already (with {later}); skipped" in err
    assert "ingested 0, skipped as already ingested 1" in err and len(check_consistent(data)["inputs"]) == 1


def test_an_earlier_capture_is_ingested_when_nothing_proves_it(tmp_path):
    """An entry's heads only say which files to read: when the later capture's file changed since,
    or moved away, nothing proves the earlier capture is its start: its rows are found ingested
    (``_Run.overlap``: it is skipped all the same); an earlier capture of a log ingested with its rows
    looked up only (--force) proves a still earlier one once found again."""
    data, data2 = tmp_path / "data", tmp_path / "data2"
    later, earlier = captures(tmp_path)
    text = later.read_bytes()
    ingest_ok(later, "--data", data)
    later.write_bytes(text[:-10] + b"0123456789")  # (its last line changed: not the text ingested)
    err = ingest_ok(earlier, "--data", data)
    assert f"{earlier}: its lines were ingested already (with {later}); skipped" in err
    later.write_bytes(text)
    ingest_ok(later, "--data", data2)
    shutil.move(later, tmp_path / "moved.log")
    assert "its lines were ingested already" in ingest_ok(earlier, "--data", data2)
    ingest_ok(earlier, "--data", data2, "--force")
    first = write_log(tmp_path / "snap-09h.log", gen_lines(120, seed=11)[:50])
    assert f"{first}: its lines are the start of {earlier}, already" in ingest_ok(first, "--data", data2)


def test_a_new_log_reads_no_other_file(tmp_path, monkeypatch):
    """The normal case: a log that is no one's start is told by the entries' heads, no file read again."""
    data = tmp_path / "data"
    logs = [write_log(tmp_path / f"pod-{i}.log", gen_lines(30, seed=40 + i)) for i in range(3)]
    ingest_ok(logs[0], logs[1], "--data", data)
    read = []
    monkeypatch.setattr(ingest._Run, "holder", lambda self, holders, *a: read.extend(holders))
    assert "ingested 1," in ingest_ok(logs[2], "--data", data)
    assert read == [] and len(check_consistent(data)["inputs"]) == 3
    assert all(e["heads"][0][0] == len(p.read_text().split("\n", 1)[0]) + 1 for e, p in zip(manifest(data)["inputs"], logs))


def test_a_large_earlier_capture_is_hashed_before_it_is_read(tmp_path, monkeypatch):
    """A large plain input no ingested input is as small as is hashed while the workers read it
    (``hash_while_read``): unless an entry's heads say it may be that entry's start."""
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 64 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    data = tmp_path / "data"
    later, earlier = captures(tmp_path, n=1600, k=1000)
    assert earlier.stat().st_size > 64 << 10
    ingest.ingest_paths([str(later)], str(data), err=io.StringIO(), progress=False)
    err = io.StringIO()
    s = ingest.ingest_paths([str(earlier)], str(data), err=err, progress=False)
    assert (s.ingested, s.skipped) == (0, 1), err.getvalue()
    assert len(check_consistent(data)["inputs"]) == 1
