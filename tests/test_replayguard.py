"""The replay guard's hash files (logpipe/replayguard.py) with streams that run while others start."""
from __future__ import annotations

import os

from logpipe import replayguard
from logpipe.replayguard import ReplayGuard

OLD = 1_700_000_000  # (an mtime: an idle stream's file, older than every other)


def _ended_streams(root, n: int) -> None:
    """``n`` streams that stored a line each and ended, their files newer than OLD."""
    for k in range(n):
        g = ReplayGuard(root, f"ended{k}")
        g.remember([100 + k])
        g.close()
        os.utime(g.path, (OLD + 100 + k,) * 2)


def test_an_idle_running_streams_file_is_not_merged_into_another_streams(tmp_path):
    """A stream still running but idle has the oldest file: a stream that started merged it into its
    ``older-<id>.seen`` and deleted it, so the idle stream read its own hashes back as another stream's
    (its next copies of lines it stored judged replays) and appended to a new file of its name."""
    live = ReplayGuard(tmp_path, "live")
    live.remember([1, 2])
    os.utime(live.path, (OLD, OLD))
    _ended_streams(tmp_path, replayguard.KEEP_FILES)
    new = ReplayGuard(tmp_path, "new")  # (past KEEP_FILES files: the older ones merged)
    assert new.replayed([1, 2, 100]) == [True, True, True]  # (the running stream's file read as it is)
    assert live.path.exists() and not (tmp_path / "_stream" / "ended0.seen").exists()
    live.refresh()
    assert live.replayed([1, 2]) == [False, False]
    assert live.repeated([1, 2]) == [True, True]
    live.close()  # (ended: the next stream's start merges it)
    ReplayGuard(tmp_path, "next")
    assert not live.path.exists()
    assert ReplayGuard(tmp_path, "last").replayed([1, 2, 100]) == [True, True, True]


def test_a_running_streams_rewritten_file_stays_its_own(tmp_path, monkeypatch):
    """A stream's file is rewritten to its last KEEP_HASHES when it doubles: the new file is the
    running stream's too, not merged by a stream that starts."""
    monkeypatch.setattr(replayguard, "KEEP_HASHES", 4)
    live = ReplayGuard(tmp_path, "live")
    for k in range(4):
        live.remember([10 * k, 10 * k + 1, 10 * k + 2])
    assert live.path.stat().st_size <= 8 * 8  # (rewritten)
    os.utime(live.path, (OLD, OLD))
    _ended_streams(tmp_path, replayguard.KEEP_FILES)
    ReplayGuard(tmp_path, "new")
    assert live.path.exists()
    live.refresh()
    assert live.replayed([30, 31, 32]) == [False, False, False]


def test_a_running_streams_memory_of_the_others_is_their_files(tmp_path, monkeypatch):
    """A stream that runs while another stores lines for days takes in what the other's file holds,
    its last KEEP_HASHES (what a stream that starts reads), not every hash it ever stored: it kept
    them all, ~8 bytes each per line any stream stored while it ran."""
    monkeypatch.setattr(replayguard, "KEEP_HASHES", 100)
    monkeypatch.setattr(replayguard, "MERGE_RECENT", 50)
    watcher, busy = ReplayGuard(tmp_path, "watcher"), ReplayGuard(tmp_path, "busy")
    for k in range(300):
        busy.remember(list(range(10 * k, 10 * k + 10)))
        watcher.refresh()
        assert len(watcher.seen) + len(watcher.recent) <= 2 * 2 * 100 + 2 * 50, k
    kept = list(replayguard._read(busy.path))
    assert watcher.replayed(kept) == [True] * len(kept)  # (what the busy stream's file holds: known)
    assert ReplayGuard(tmp_path, "new").replayed(kept) == [True] * len(kept)


def _nfs_flock(real):
    """flock as an NFS client takes it (flock(2): a POSIX lock of the whole file): a shared lock of a
    file not open for reading, or an exclusive one of a file not open for writing, fails (EBADF)."""
    import errno
    import fcntl

    def flock(f, op):
        mode = fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & os.O_ACCMODE
        if (op & fcntl.LOCK_SH and mode == os.O_WRONLY) or (op & fcntl.LOCK_EX and mode == os.O_RDONLY):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return real(f, op)
    return flock


def test_the_locks_work_on_nfs(tmp_path, monkeypatch):
    """On NFS a stream's file, open to append alone, could not take its shared lock: every store of
    its hashes failed (the stream said it cannot keep them, and a restart stored its lines again); and
    an older file, open to read alone, could not take the exclusive lock: none was ever merged."""
    import fcntl

    monkeypatch.setattr(replayguard.fcntl, "flock", _nfs_flock(fcntl.flock))
    keep = replayguard.KEEP_HASHES
    monkeypatch.setattr(replayguard, "KEEP_HASHES", 4)  # (the file rewritten: its tmp file locked too)
    g = ReplayGuard(tmp_path, "one")
    g.remember([1, 2])
    g.remember([3, 4, 5, 6, 7, 8, 9])
    assert replayguard._read(g.path).tolist() == [6, 7, 8, 9]
    g.close()
    monkeypatch.setattr(replayguard, "KEEP_HASHES", keep)
    os.utime(g.path, (OLD, OLD))
    _ended_streams(tmp_path, replayguard.KEEP_FILES)
    new = ReplayGuard(tmp_path, "new")
    assert new.replayed([6, 9, 100, 10]) == [True, True, True, False]
    assert not g.path.exists() and (tmp_path / "_stream" / "older-new.seen").exists()
