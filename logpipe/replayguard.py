"""A stream's lines that an earlier stream into the dataset, or the stream itself, stored: not stored twice.

``kubectl logs -f`` prints the container's whole log before it follows it, so a stream that is
restarted (a dropped connection, a laptop that slept, a new terminal) is handed every line its last
run stored again. Ingest knows its inputs by their bytes' hash (dataset.py); a stream has no file to
know, so it knows lines: each stream keeps the 64-bit hashes of the lines it stored or found
replayed in ``DATA/_stream/<stream id>.seen`` (little-endian uint64s, appended after each write),
and reads the other streams' files, at its start and again before each batch (a stream still
running when another starts). A line whose bytes hash to one of them is counted as ``replayed``
and not stored again (lines an ingest stored, which keeps no hashes, are looked up in its files:
logpipe/ingested.py). Only a line with a time is known so: a row with a start time, a reject whose
text holds a date and time (``TIMED``). A format with no START_TIME has lines that repeat (``GET
/healthz 200``), as do the debug exporter's ``ScopeLogs #0`` and istio-agent's YAML: such lines are
stored in every run. The line is the one read, prefix included: ``kubectl logs --timestamps`` or
``--prefix`` given in one run and not the other makes other lines.

A run hands itself its log again too: ``while true; do kubectl logs -f …; done | logpipe stream``
prints the whole log at each reconnect. A line the run remembered already (``repeated``: ``mine``,
``mine_recent``, and the batch's own) is skipped only when it names one event, so that it can only
be a copy (``single_events``: a start time with a fraction of a second and a request id, or a TCP
line's client port; ``TIMED_FINE`` for a reject): under a format in whole seconds or without a
request id two requests print the same line (``GET /healthz 200`` of two probes), and those are
stored each time they come. (A rule by the run of copies, a copy of a line stored before the copies
began, tells nothing: every copy in a run of copies is of a line before it, a request's twin in the
next line too.)

A batch's files and its lines' hashes are stored in two steps, and a stream killed between them
(after its row file is shown, before its reject file is, or before it remembered the hashes) would
store the batch again when restarted, or lose its rejects. So before it shows a batch's files the
stream writes what it is about to do to ``_stream/<stream id>.pending`` (the hidden and final names,
then the hashes), locked while it exists, and removes it once both steps are done; a stream that
starts finishes a pending file whose stream is gone (``finish_publishes``: the hidden files shown, the
hashes remembered), before it reads what the streams stored.

A stream keeps the hashes of the replayed lines too, so the newest file of a source's streams holds
what its last restart was handed. A dataset's streams may watch several sources (a stream per pod, per
node's ztunnel), so an older file may be another source's newest. Bounds: a stream's file keeps its last
KEEP_HASHES hashes (8 bytes each: rewritten when it doubles), the newest KEEP_FILES files are read,
the older ones merged into one of them at a stream's start (their newest KEEP_HASHES hashes; they were
deleted, and a ninth source's restart stored its backlog again), but for a running stream's: each
stream holds a lock on its file while it runs (an idle one's file is old too: merged, it came back to
that stream as another's, so its own lines were judged replays), and a lookup is a binary search of one sorted array
(~1 µs, ~8 MB for a million lines) or a set of what other streams stored since; likewise for the
run's own, whose array is its file's last hashes (at most 2 * KEEP_HASHES). kubectl replays the
current log file, 10 MiB (containerd's default containerLogMaxSize, ~30,000 lines) for each
container it follows.
"""
from __future__ import annotations

import array
import bisect
import contextlib
import fcntl
import hashlib
import heapq
import json
import os
import re
import sys
import time
from pathlib import Path

DIR = "_stream"
KEEP_HASHES = 500_000  # per stream: the lines of its last ~160 MB of log
KEEP_FILES = 8  # other streams whose lines are looked up (the newest)
MERGE_RECENT = 200_000  # hashes other streams stored since the start, merged into the sorted array past this
_LITTLE = sys.byteorder == "little"
# A date and time in a reject's text (an agent's line, kubectl's --timestamps): a line that does not repeat.
TIMED_TEXT = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d"
TIMED = re.compile(TIMED_TEXT)
# ... with a fraction of a second (istio-agent's µs, Envoy's own log's ms) and not followed by a space:
# a line of one event. (Not kubectl --timestamps' time: CRI-O's conmon writes one for all the lines of a
# read, so two lines alike in one read are alike with it too.)
TIMED_FINE = re.compile(TIMED_TEXT + r"(?>[.,]\d+(?:Z|[+-]\d\d:?\d\d)?)(?! )")


def line_hash(line: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")


def line_hashes(lines) -> list[int]:
    """``line_hash`` of each line: the digests joined and read as one array (10,000 bench lines: 9.5 ms,
    12.7 ms one int.from_bytes each)."""
    blake2b = hashlib.blake2b
    return _hashes(b"".join([blake2b(line, digest_size=8).digest() for line in lines])).tolist()


class ReplayGuard:
    """The hashes of lines other streams into ``root`` stored (``seen``, and ``recent``: since this
    stream started), this stream's own file, and what this run remembered (``mine`` and
    ``mine_recent``: its file's last hashes, at most 2 * KEEP_HASHES). ``look_up=False``
    (``--keep-replayed``): none."""

    def __init__(self, root: str | os.PathLike, stream_id: str, *, look_up: bool = True):
        self.dir = Path(root) / DIR
        self.path = self.dir / f"{stream_id}.seen"
        self.look_up = look_up
        self.kept = 0  # hashes in this stream's file
        self.recent: set[int] = set()
        self.mine = array.array("Q")  # (sorted)
        self.mine_recent: set[int] = set()
        self._read: dict[Path, tuple[int, int]] = {}  # another stream's file: (inode, bytes read)
        self._file = None  # this stream's file, open and locked while the stream runs (_merge_older)
        seen = array.array("Q")
        if look_up:
            with contextlib.suppress(FileNotFoundError):
                files = sorted(self.dir.glob("*.seen"), key=_mtime, reverse=True)
                if len(files) > KEEP_FILES:  # (the older ones: one file, not deleted; running streams' as they are)
                    files = files[:KEEP_FILES - 1] + _merge_older(self.dir, stream_id, files[KEEP_FILES - 1:])
                for f in files:
                    seen.extend(self._read_new(f))
        self.seen = array.array("Q", sorted(seen))

    def refresh(self) -> None:
        """Take in what the other streams stored since the last look (a stream still running)."""
        if not self.look_up:
            return
        try:
            files = [f for f in self.dir.glob("*.seen") if f != self.path]
        except OSError:
            return
        for f in files:
            self.recent.update(self._read_new(f))
        if len(self.recent) > MERGE_RECENT:
            self.seen, self.recent = _merged(self.seen, self.recent), set()
            # What the other streams hold is their files' (each its last KEEP_HASHES, as a stream that
            # starts reads them); merged as they come, a stream kept every hash any stream stored while
            # it ran (a file rewritten is read again whole): a stream per pod for a week, ~1.3 GB each
            # (10 pods, 30 lines/s). Read again from the files once it holds twice as many as they do
            # (as a start reads them: 1M hashes ~3 s on a shared core, then not before the others store as
            # many again; the merges, each as long as what it holds, stay as short as the files).
            held = sum(self._read[f][1] for f in files if f in self._read) // 8
            if len(self.seen) > 2 * held + MERGE_RECENT:
                self._read = {}
                self.seen = array.array("Q", sorted(x for f in files for x in self._read_new(f)))

    def _read_new(self, path: Path) -> array.array:
        """The hashes of ``path`` not read yet (all of them when it was rewritten since)."""
        try:
            st = path.stat()
        except OSError:
            return array.array("Q")
        ino, done = self._read.get(path, (st.st_ino, 0))
        if ino != st.st_ino or st.st_size < done:
            done = 0
        if st.st_size == done:
            return array.array("Q")
        data = _read(path, done)
        self._read[path] = (st.st_ino, done + 8 * len(data))
        return data

    def replayed(self, hashes: list[int]) -> list[bool]:
        """Per hash, whether another stream stored (or was handed) a line of it."""
        return _members(hashes, self.seen, self.recent) if self.look_up else [False] * len(hashes)

    def repeated(self, hashes: list[int]) -> list[bool]:
        """Per hash, whether this run remembered it already (a line it stored or was handed before)."""
        return _members(hashes, self.mine, self.mine_recent) if self.look_up else [False] * len(hashes)

    def publishing(self, root: Path, pairs: list[tuple[Path, Path]], hashes: list[int]) -> Publishing:
        """The record of a batch about to be shown (``Publishing``): call ``done`` after ``remember``."""
        return Publishing(self, Path(root), pairs, hashes)

    def remember(self, hashes: list[int]) -> None:
        """Add the hashes of lines this stream stored or found replayed (stored ones after they are
        written: a crash between the two stores them again next time, rather than losing them)."""
        if not hashes:
            return
        self.dir.mkdir(exist_ok=True)
        data = array.array("Q", hashes)
        if self.kept + len(hashes) > 2 * KEEP_HASHES:  # the last KEEP_HASHES only, written whole
            data = (_read(self.path) + data)[-KEEP_HASHES:]
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            f = _locked(tmp, "wb")  # (locked before it is shown: a running stream's file always is)
            try:
                f.write(_bytes(data))
                f.flush()
                os.replace(tmp, self.path)
            except BaseException:
                f.close()
                raise
            self.close()
            self._file = f
            self.kept = len(data)
            if self.look_up:  # (this run's hashes: the file's, as bounded)
                self.mine, self.mine_recent = _merged(array.array("Q"), data), set()
            return
        if self._file is None:
            self._file = _locked(self.path, "ab")
        self._file.write(_bytes(data))
        self._file.flush()
        self.kept += len(hashes)
        if self.look_up:
            self.mine_recent.update(hashes)
            if len(self.mine_recent) > MERGE_RECENT:
                self.mine, self.mine_recent = _merged(self.mine, self.mine_recent), set()

    def close(self) -> None:
        """Release this stream's file (its end): a later stream may merge it (``_merge_older``)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _locked(path: Path, mode: str):
    """``path`` opened (``mode`` and for reading too: NFS takes flock for a POSIX lock of the whole file,
    and a shared one, a read lock, of a file open for writing alone fails, EBADF: every store failed),
    with the lock that tells a running stream's file (``_merge_older``). (A new file, open and not yet
    locked, is the newest: never one of the older files merged.)"""
    f = open(path, mode + "+")
    try:
        fcntl.flock(f, fcntl.LOCK_SH)
    except BaseException:
        f.close()
        raise
    return f


def _append_locked(path: Path, data: bytes) -> None:
    """Append ``data`` to a stopped stream's file, holding the lock a running stream's holds
    (``_locked``): a stream's start merging that file meanwhile (``_merge_older``, which then removes
    it) waits for it, or is waited for and the file made anew. (Appended without the lock, after such
    a merge had read the file and before it removed it, the hashes were lost with the file: the
    restart stored the batch again.)"""
    while True:
        with _locked(path, "ab") as f:
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino  # (not merged and removed meanwhile)
            except FileNotFoundError:
                same = False
            if same:
                f.write(data)
                return


def _merge_older(d: Path, stream_id: str, older: list[Path]) -> list[Path]:
    """The hashes of the files ``older`` (newest first: other streams', past the newest KEEP_FILES - 1)
    in one file, ``older-<stream_id>.seen``, at most KEEP_HASHES (those of the newest files first);
    then those files are removed. Each source's stream keeps its own backlog known only in its own
    files, so a file deleted for being old made that source's next restart store its backlog again
    (a ninth stream into the dataset: a ztunnel per node, a stream per pod, test runs). A running
    stream's file (locked: ``_locked``) is left as it is, however old (an idle stream): merged, the
    stream would read its own hashes back as another stream's, and append to a file of its own name
    anew. Returns the files to read: the merged one and the running streams'."""
    merged: set[int] = set()
    taken, running = [], []  # (taken: each file open, locked, until it is removed)
    try:
        for f in older:
            try:  # (for writing too: NFS's exclusive lock, a write lock, needs it; "rb" never had it there)
                h = open(f, "r+b")
            except FileNotFoundError:
                continue
            except OSError:  # (a file this user cannot write: not merged, nor deleted, but read)
                running.append(f)
                continue
            try:
                fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)
                same = os.fstat(h.fileno()).st_ino == os.stat(f).st_ino  # (not rewritten since it was opened)
            except OSError:  # a running stream's (or another stream's start merges it now)
                same = False
            if not same:
                h.close()
                running.append(f)
                continue
            taken.append((f, h))
            if len(merged) < KEEP_HASHES:
                data = _read(f)
                merged.update(data[max(0, len(data) - (KEEP_HASHES - len(merged))):])  # (a file's last ones are its newest)
        if not taken:
            return running
        path = d / f"older-{stream_id}.seen"
        tmp = d / f".{path.name}.tmp"
        try:
            tmp.write_bytes(_bytes(array.array("Q", sorted(merged))))
            os.replace(tmp, path)
        except OSError:  # (the older files stay as they are; read now, merged by the next stream)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return [f for f, _ in taken] + running
        for f, _ in taken:  # (after the merged file is in place: a stream starting meanwhile reads either)
            with contextlib.suppress(OSError):
                f.unlink()
        return [path] + running
    finally:
        for _, h in taken:
            h.close()


PENDING_TMP_SECONDS = 3600  # an unlocked ``.<id>.pending.tmp`` this old is a killed stream's


class Publishing:
    """A batch being shown (``ReplayGuard.publishing``): its files' hidden and final names and its
    lines' hashes in ``_stream/<id>.pending``, which exists, locked, from before the first rename
    until the hashes are remembered."""

    def __init__(self, guard: "ReplayGuard", root: Path, pairs: list[tuple[Path, Path]], hashes: list[int]):
        self.pending = guard.dir / f"{guard.path.stem}.pending"
        guard.dir.mkdir(exist_ok=True)
        tmp = guard.dir / f".{self.pending.name}.tmp"
        self.file = open(tmp, "w+b")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX)  # (before it is visible: a visible one is always locked)
            head = {"pairs": [[str(h.relative_to(root)), str(f.relative_to(root))] for h, f in pairs]}
            self.file.write(json.dumps(head).encode() + b"\n" + _bytes(array.array("Q", hashes)))
            self.file.flush()
            os.replace(tmp, self.pending)
        except BaseException:
            self.file.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def done(self) -> None:
        with contextlib.suppress(OSError):
            self.pending.unlink()
        self.file.close()


def finish_publishes(root: str | os.PathLike) -> int:
    """Finish the batches that killed streams were showing (``Publishing``): each pending file whose
    lock is free has its hidden files renamed to their final names and, when all of its files are
    there, its hashes added to its stream's file; then it is removed. Returns the batches finished.
    (A batch whose hidden file is gone, swept a day later, is not remembered: its lines are stored
    again rather than lost.)"""
    root = Path(root)
    d = root / DIR
    finished = 0
    try:
        names = list(d.iterdir())
    except OSError:
        return 0
    for p in names:
        if p.name.endswith(".pending.tmp"):  # killed while it wrote one: nothing was shown
            with contextlib.suppress(OSError):
                if p.stat().st_mtime < time.time() - PENDING_TMP_SECONDS:
                    p.unlink()
            continue
        if not p.name.endswith(".pending"):
            continue
        try:
            f = open(p, "rb")
        except OSError:
            continue
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its stream is alive and showing it now
                continue
            try:
                if os.fstat(f.fileno()).st_ino != os.stat(p).st_ino:
                    continue  # (done and removed by its stream while we opened it)
            except OSError:
                continue
            head, _, rest = f.read().partition(b"\n")
            try:
                pairs = json.loads(head)["pairs"]
            except (ValueError, KeyError, TypeError):
                pairs = None
            shown = pairs is not None
            for hidden, final in pairs or ():
                with contextlib.suppress(FileNotFoundError):
                    os.replace(root / hidden, root / final)
                shown = shown and (root / final).exists()
            if shown and rest:
                _append_locked(d / (p.name[: -len(".pending")] + ".seen"), _bytes(_hashes(rest)))
            with contextlib.suppress(OSError):
                p.unlink()
            finished += 1
    return finished


def single_events(rows, fine_layouts: set[str]) -> list[bool]:
    """Per row (each with a start time), whether its line names one event, so that the same line
    seen again in a run can only be the log printed again: a start time with a fraction of a second
    (its layout's times had one in this run: Envoy's %START_TIME% prints milliseconds, also .000;
    ``fine_layouts`` is updated) and a request id (Envoy makes one per request, FORMATS.md b.4) or,
    for a line of no HTTP request (TCP, ztunnel), the client's port (one connection's). Two requests
    in the same millisecond print the same line where the format names neither (two probes of
    /healthz; Envoy's default format's TCP lines, which hold no client address)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    layouts = rows.column("log_format")
    fine_layouts.update(v for v in pc.unique(layouts.filter(pc.not_equal(pc.subsecond(rows.column("start_time")), 0)))
                        .to_pylist() if v is not None)
    port = pc.fill_null(rows.column("downstream_remote_address_port"), 0)
    named = pc.or_(pc.is_valid(rows.column("request_id")),
                   pc.and_(pc.is_null(rows.column("method")), pc.greater(port, 0)))
    fine = pc.is_in(layouts, value_set=pa.array(sorted(fine_layouts), pa.string()))
    return pc.fill_null(pc.and_(fine, named), False).to_pylist()


def _members(hashes: list[int], ordered: array.array, recent: set[int]) -> list[bool]:
    """Per hash, whether it is in the sorted array ``ordered`` (a binary search) or in ``recent``."""
    if not (ordered or recent):
        return [False] * len(hashes)
    n = len(ordered)
    out = []
    for h in hashes:
        i = bisect.bisect_left(ordered, h)
        out.append((i < n and ordered[i] == h) or h in recent)
    return out


def _merged(ordered: array.array, recent) -> array.array:
    """The sorted array ``ordered`` and the hashes ``recent`` as one sorted array, each hash once (a
    merge: no Python int per hash of ``ordered``, ~8 MB for a million)."""
    out, last = array.array("Q"), None
    for h in heapq.merge(ordered, sorted(recent)):
        if h != last:
            out.append(h)
            last = h
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read(path: Path, start: int = 0) -> array.array:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            raw = f.read()
    except OSError:
        return array.array("Q")
    return _hashes(raw)


def _hashes(raw: bytes) -> array.array:
    data = array.array("Q")
    data.frombytes(raw[: len(raw) - len(raw) % 8])  # (a write cut short by a crash: its whole hashes)
    if not _LITTLE:
        data.byteswap()
    return data


def _bytes(data: array.array) -> bytes:
    if _LITTLE:
        return data.tobytes()
    swapped = array.array("Q", data)
    swapped.byteswap()
    return swapped.tobytes()
