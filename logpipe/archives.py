"""Tar archives of logs (``node-logs.tar.gz``, a copy of a node's ``/var/log/pods``, a support
bundle) as the files they hold: each regular file becomes an input of its own, named
``ARCHIVE:MEMBER`` (its rows' ``source``), its lines numbered from 1, so that it is ingested,
skipped or re-read as that file alone would be.

A tar is known by its content (the ``ustar`` header of its first block, after any compression
``logpipe/unpack.py`` reads), not its name. Its files are unpacked, in one pass over the archive,
into a private directory under ``$TMPDIR``, removed when the command ends: a member is read like
any file (compressed members too), and the workers read it by its path. Links, devices and
hidden files (a name part that starts with ``.``, as in a directory) are left out.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tarfile
import tempfile
from pathlib import PurePosixPath

from . import unpack as _unpack

BLOCK = 512


def is_tar(path: str) -> bool:
    """Whether ``path``'s content (decompressed) starts with a POSIX or GNU tar header: ``ustar`` at
    byte 257 and a header checksum that adds up."""
    try:
        with open(path, "rb") as raw:
            stream, _kind = _unpack.unpack(raw)
            head = stream.read(BLOCK)
    except Exception:  # noqa: BLE001 - unreadable or damaged: not a tar here; reading it says why
        return False
    if len(head) < BLOCK or head[257:262] != b"ustar":
        return False
    try:
        stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:])


def unpack_tar(path: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Unpack the regular files of the tar at ``path``: their ``(unpacked path, ARCHIVE:MEMBER name)``
    in archive order, and an error message when the archive is damaged (the files before the damage
    are kept, and the bytes the damaged one held before it: its complete lines are read) or holds
    no file. One pass over the archive's blocks (``_members``), not tarfile's reading of a member's
    data, which drops what a read that meets the damage had already decoded."""
    where = _private_dir()
    out: list[tuple[str, str]] = []
    error = None
    try:
        with open(path, "rb") as raw:
            stream, _kind = _unpack.unpack(raw)
            for name, size in _members(stream):
                if _hidden(name):
                    _copy(stream, size, None)
                    continue
                target = os.path.join(where, f"{len(out):06d}")
                out.append((target, f"{path}:{name}"))
                with open(target, "wb") as f:
                    _copy(stream, size, f)
    except _Damaged as e:
        cut = f" in {out[-1][1]}" if e.in_file and out else f" after {len(out)} file(s)"
        error = (f"{path}: tar archive is corrupt or truncated{cut} ({e}); what it held before that point"
                 " is read")
    if not out and error is None:
        error = f"{path}: tar archive holds no files"
    return out, error


class _Damaged(Exception):
    def __init__(self, why: str, in_file: bool):
        super().__init__(why)
        self.in_file = in_file


def _read(stream, n: int, in_file: bool = False) -> bytes:
    """``n`` bytes of ``stream``, or ``_Damaged`` (after the bytes read before the damage were taken
    by ``_copy``: see there)."""
    got, error = _unpack.read_some(stream, n)
    if error is not None or len(got) < n:
        raise _Damaged(f"{type(error).__name__}: {error}" if error is not None else "unexpected end of data", in_file)
    return got


def _copy(stream, size: int, f) -> None:
    """A member's ``size`` bytes (and the padding to its block's end) from ``stream`` into ``f`` (None:
    skipped); on damage, the bytes read before it are in ``f`` first."""
    left = size
    while left:
        got, error = _unpack.read_some(stream, min(left, 1 << 20))
        if f is not None:
            f.write(got)
        left -= len(got)
        if error is not None or (left and not got):
            raise _Damaged(f"{type(error).__name__}: {error}" if error is not None else "unexpected end of data", True)
    if size % BLOCK:
        _read(stream, BLOCK - size % BLOCK)


def _members(stream):
    """``(name, size)`` of each regular file, in order, ``stream`` then at its data: headers read as
    tar writes them (POSIX ustar, GNU long names, pax ``path`` records); other members skipped."""
    long_name = None
    while True:
        head, error = _unpack.read_some(stream, BLOCK)
        if error is not None:
            raise _Damaged(f"{type(error).__name__}: {error}", False)
        if len(head) < BLOCK or head.count(0) == BLOCK:  # the end (two zero blocks; a short end is fine)
            return
        try:
            info = tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        except tarfile.HeaderError as e:
            raise _Damaged(f"bad tar header: {e}", False) from None
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE):
            data = _read(stream, -(-info.size // BLOCK) * BLOCK)[: info.size]
            long_name = _long_name(info.type, data) or long_name
            continue
        name, long_name = long_name or info.name, None
        if info.isreg():
            yield name, info.size
        else:  # a directory, link, device, global pax header, GNU long link: its data (if any) skipped
            _copy(stream, info.size if info.type not in (tarfile.LNKTYPE, tarfile.SYMTYPE) else 0, None)


def _long_name(kind: bytes, data: bytes) -> str | None:
    """The next member's name, from a GNU long-name member or a pax header's ``path`` record."""
    if kind == tarfile.GNUTYPE_LONGNAME:
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    for record in data.split(b"\n"):
        _length, _, field = record.partition(b" ")
        key, eq, value = field.partition(b"=")
        if eq and key == b"path":
            return value.decode("utf-8", "surrogateescape")
    return None


def _hidden(name: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in PurePosixPath(name).parts)


_DIRS: list[tuple[str, int]] = []  # (directory, the process that made it)


def _private_dir() -> str:
    """A directory of this process's own under ``$TMPDIR`` (mode 700), removed at exit by the
    process that made it (worker processes forked after it leave it alone)."""
    where = tempfile.mkdtemp(prefix="logpipe-tar-")
    if not _DIRS:
        atexit.register(remove_unpacked)
    _DIRS.append((where, os.getpid()))
    return where


def remove_unpacked() -> None:
    """Remove what this process unpacked (at exit: ``logpipe/exits.py`` calls it where it skips
    Python's exit)."""
    while _DIRS:
        where, pid = _DIRS.pop()
        if os.getpid() == pid:
            shutil.rmtree(where, ignore_errors=True)
