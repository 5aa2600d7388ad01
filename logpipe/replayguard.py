"""A stream's lines that an earlier stream into the same dataset already stored: not stored twice.

``kubectl logs -f`` prints the container's whole log before it follows it, so a stream that is
restarted (a dropped connection, a laptop that slept, a new terminal) is handed every line its last
run stored again. Ingest knows its inputs by their bytes' hash (dataset.py); a stream has no file to
know, so it knows lines: each stream keeps the 64-bit hashes of the lines it stored (as rows or
rejects) in ``DATA/_stream/<stream id>.seen`` (little-endian uint64s, appended after each write),
and a new stream reads the hashes of the streams before it. A line whose bytes hash to one of them
is counted as ``replayed`` and not stored again; a row without a time is stored whatever (a format
with no START_TIME has lines that repeat: ``GET /healthz 200``). Lines a run sees twice itself are
both stored: only earlier runs' hashes are looked up. The line is the one read, prefix included:
``kubectl logs --timestamps`` or ``--prefix`` given in one run and not the other makes other lines.

Bounds: a stream's file keeps its last KEEP_HASHES hashes (8 bytes each: rewritten when it doubles),
the newest KEEP_FILES files are read (older ones are deleted), and a lookup is a binary search of one
sorted array (~1 µs, ~8 MB for a million lines). kubectl replays the current log file, 10 MiB
(containerd's default containerLogMaxSize, ~30,000 lines) for each container it follows.
"""
from __future__ import annotations

import array
import bisect
import contextlib
import hashlib
import os
import sys
from pathlib import Path

DIR = "_stream"
KEEP_HASHES = 500_000  # per stream: the lines of its last ~160 MB of log
KEEP_FILES = 8  # earlier streams whose lines are looked up (the newest)
_LITTLE = sys.byteorder == "little"


def line_hash(line: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")


class ReplayGuard:
    """The hashes of lines earlier streams into ``root`` stored (``seen``), and this stream's file."""

    def __init__(self, root: str | os.PathLike, stream_id: str):
        self.dir = Path(root) / DIR
        self.path = self.dir / f"{stream_id}.seen"
        self.kept = 0  # hashes in this stream's file
        seen = array.array("Q")
        with contextlib.suppress(FileNotFoundError):
            files = sorted(self.dir.glob("*.seen"), key=_mtime, reverse=True)
            for old in files[KEEP_FILES:]:
                with contextlib.suppress(OSError):
                    old.unlink()
            for f in files[:KEEP_FILES]:
                seen.extend(_read(f))
        self.seen = array.array("Q", sorted(seen))

    def replayed(self, hashes: list[int]) -> list[bool]:
        """Per hash, whether an earlier stream stored a line of it."""
        seen = self.seen
        if not seen:
            return [False] * len(hashes)
        n = len(seen)
        out = []
        for h in hashes:
            i = bisect.bisect_left(seen, h)
            out.append(i < n and seen[i] == h)
        return out

    def remember(self, hashes: list[int]) -> None:
        """Add the hashes of lines this stream stored (after they are written: a crash between the
        two stores them again next time, rather than losing them)."""
        if not hashes:
            return
        self.dir.mkdir(exist_ok=True)
        data = array.array("Q", hashes)
        if self.kept + len(hashes) > 2 * KEEP_HASHES:  # the last KEEP_HASHES only, written whole
            data = (_read(self.path) + data)[-KEEP_HASHES:]
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_bytes(_bytes(data))
            os.replace(tmp, self.path)
            self.kept = len(data)
            return
        with open(self.path, "ab") as f:
            f.write(_bytes(data))
        self.kept += len(hashes)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read(path: Path) -> array.array:
    data = array.array("Q")
    try:
        raw = path.read_bytes()
    except OSError:
        return data
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
