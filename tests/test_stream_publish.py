"""A stream killed while it shows a batch (its files renamed from their hidden names, its lines'
hashes remembered) has that batch finished by the next stream into the dataset: every line stored
once, its rejects too (logpipe/replayguard.py: ``Publishing``, ``finish_publishes``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_logpipe
from test_stream import stream_cli

from logpipe import replayguard

ACCESS = 40
LINES = [
    *(f'[2025-01-30T10:00:{i % 60:02d}.{i:03d}Z] "GET /item/{i} HTTP/1.1" 200 - via_upstream - "-" 0 254 12 11 "-" '
      f'"curl/8.11.1" "req-{i:09d}" "api.stripe.com" "192.0.2.10:443" outbound|443||api.stripe.com '
      f"10.244.0.18:39682 240.240.0.2:443 10.244.0.24:45748 - default" for i in range(1, ACCESS + 1)),
    # an agent's lines: rejects (noise) with a time to the microsecond, so known again when replayed
    "2025-01-30T10:01:00.123456Z\tinfo\txdsproxy\tconnected to upstream XDS server",
    "2025-01-30T10:01:01.654321Z\twarn\tenvoy config\tStreamAggregatedResources gRPC config stream closed",
]
TEXT = "\n".join(LINES) + "\n"

# The writer, killed (os._exit: no clean-up, no lock released but by the process's end) at a point
# of showing its one batch: before any rename, between the row file's and the reject file's, after
# both before the hashes are remembered.
KILLED = r"""
import os, sys
from logpipe import replayguard
point, data = sys.argv[1], sys.argv[2]
real_replace, shown = os.replace, []
def replace(a, b):
    if str(b).endswith(".parquet"):
        if point == "before-any-rename":
            os._exit(9)
        real_replace(a, b)
        shown.append(b)
        if point == "between-renames":
            os._exit(9)
        return
    real_replace(a, b)
os.replace = replace
real_remember = replayguard.ReplayGuard.remember
def remember(self, hashes):
    if point == "before-remember":
        os._exit(9)
    real_remember(self, hashes)
replayguard.ReplayGuard.remember = remember
from logpipe.cli import main
sys.argv = ["logpipe", "stream", "--data", data, "--quiet"]
main()
"""


def _rows(data: Path, where: str) -> list:
    files = sorted(data.glob(where))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


@pytest.mark.parametrize("point", ["before-any-rename", "between-renames", "before-remember"])
def test_a_stream_killed_while_it_shows_a_batch_is_finished_by_the_next_one(tmp_path, point):
    data = tmp_path / "data"
    killed = subprocess.run([sys.executable, "-c", KILLED, point, str(data)], input=TEXT, text=True,
                            capture_output=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    assert list((data / replayguard.DIR).glob("*.pending")), "the killed stream left no pending record"

    again = stream_cli(data, input=TEXT.encode())  # restarted: handed the whole log again
    err = again.stderr.decode()
    assert again.returncode == 0, err
    assert "finished storing 1 batch(es) that a stopped stream was writing" in err
    assert "replayed 42 (stored already)" in err  # every line known: none stored twice
    rows = _rows(data, "date=*/*.parquet")
    assert sorted(r["line_number"] for r in rows) == list(range(1, ACCESS + 1))
    rejects = _rows(data, "_rejects/*.parquet")
    assert sorted(r["line_number"] for r in rejects) == [ACCESS + 1, ACCESS + 2]
    assert not list((data / replayguard.DIR).glob("*.pending"))
    assert not list(data.glob("*/.*.tmp"))


def test_a_live_streams_pending_batch_is_left_to_it(tmp_path):
    """A pending record still locked (its stream is alive, showing that batch) is not touched."""
    root = tmp_path / "data"
    (root / "date=2025-01-30").mkdir(parents=True)
    hidden, final = root / "date=2025-01-30" / ".streamx.parquet.tmp", root / "date=2025-01-30" / "streamx.parquet"
    hidden.write_bytes(b"rows")
    guard = replayguard.ReplayGuard(root, "live")
    shown = guard.publishing(root, [(hidden, final)], [1, 2, 3])
    try:
        assert replayguard.finish_publishes(root) == 0
        assert hidden.exists() and not final.exists()
    finally:
        shown.done()
    assert not (root / replayguard.DIR / "live.pending").exists()


def test_a_killed_streams_pending_record_is_finished_once(tmp_path):
    """Unlocked: the hidden file shown, the hashes added to that stream's file, the record removed;
    a record half-written (its temporary name, an hour old) is removed; a fresh one is left."""
    root = tmp_path / "data"
    (root / "date=2025-01-30").mkdir(parents=True)
    hidden, final = root / "date=2025-01-30" / ".streamx.parquet.tmp", root / "date=2025-01-30" / "streamx.parquet"
    hidden.write_bytes(b"rows")
    guard = replayguard.ReplayGuard(root, "dead")
    guard.publishing(root, [(hidden, final)], [7, 8]).file.close()  # (its process ended: the lock is free)
    stale, fresh = root / replayguard.DIR / ".old.pending.tmp", root / replayguard.DIR / ".new.pending.tmp"
    stale.write_bytes(b"{")
    fresh.write_bytes(b"{")
    os.utime(stale, (0, 0))
    assert replayguard.finish_publishes(root) == 1
    assert final.read_bytes() == b"rows" and not hidden.exists()
    assert list(replayguard._read(root / replayguard.DIR / "dead.seen")) == [7, 8]
    assert not stale.exists() and fresh.exists()
    assert replayguard.finish_publishes(root) == 0


def test_finishing_a_batch_appends_its_hashes_under_the_streams_lock(tmp_path):
    """A stream's start merging the dead stream's `.seen` (``_merge_older``: locked, read, then removed)
    while another's start finished that stream's batch: the hashes were appended without the lock, into
    the file about to be removed, and lost (a restart stored the batch again). Now the append waits for
    the merge and makes the file anew."""
    import fcntl
    import threading

    root = tmp_path / "data"
    (root / "date=2025-01-30").mkdir(parents=True)
    hidden, final = root / "date=2025-01-30" / ".streamx.parquet.tmp", root / "date=2025-01-30" / "streamx.parquet"
    hidden.write_bytes(b"rows")
    guard = replayguard.ReplayGuard(root, "dead")
    guard.remember([1, 2])
    guard.close()
    guard.publishing(root, [(hidden, final)], [7, 8]).file.close()
    seen = guard.path
    with open(seen, "r+b") as merging:  # (as _merge_older holds it: read, merged elsewhere, then removed)
        fcntl.flock(merging, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finish = threading.Thread(target=replayguard.finish_publishes, args=(root,))
        finish.start()
        finish.join(0.5)
        assert finish.is_alive(), "appended while the file was being merged"
        seen.unlink()
    finish.join(10)
    assert not finish.is_alive()
    assert replayguard._read(seen).tolist() == [7, 8]  # (made anew: 1 and 2 are in the merge's file)


def test_a_record_whose_hidden_file_is_gone_is_not_remembered(tmp_path):
    """A batch whose hidden file was swept (a day later) is not shown: its lines are not remembered,
    so a stream handed them again stores them, rather than losing them."""
    root = tmp_path / "data"
    (root / "date=2025-01-30").mkdir(parents=True)
    gone = root / "date=2025-01-30" / ".streamx.parquet.tmp"
    guard = replayguard.ReplayGuard(root, "dead")
    guard.publishing(root, [(gone, root / "date=2025-01-30" / "streamx.parquet")], [7]).file.close()
    assert replayguard.finish_publishes(root) == 1
    assert not (root / replayguard.DIR / "dead.seen").exists()
    assert not (root / replayguard.DIR / "dead.pending").exists()


def test_an_ingest_into_the_dataset_finishes_a_killed_streams_batch(tmp_path):
    """A dataset no stream writes again: an ingest's recover shows the killed stream's batch (its
    reject file too) before the hidden files could be swept a day later."""
    data = tmp_path / "data"
    killed = subprocess.run([sys.executable, "-c", KILLED, "between-renames", str(data)], input=TEXT, text=True,
                            capture_output=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    assert not list((data / "_rejects").glob("*.parquet"))  # (the rejects still hidden)
    log = tmp_path / "other.log"
    log.write_text(LINES[0].replace("req-000000001", "req-other") + "\n")
    got = run_logpipe("ingest", log, "--data", data)
    assert got.returncode == 0, got.stderr
    assert sorted(r["line_number"] for r in _rows(data, "_rejects/*.parquet")) == [ACCESS + 1, ACCESS + 2]
    assert not list((data / replayguard.DIR).glob("*.pending"))
    assert list(replayguard._read(next((data / replayguard.DIR).glob("*.seen"))))  # (its lines known)
