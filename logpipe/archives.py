"""Tar and zip archives of logs (``node-logs.tar.gz``, a copy of a node's ``/var/log/pods``, a
support bundle) as the files they hold: each regular file becomes an input of its own, named
``ARCHIVE:MEMBER`` (its rows' ``source``), its lines numbered from 1, so that it is ingested,
skipped or re-read as that file alone would be.

An archive is known by its content (a tar by the ``ustar`` header of its first block, after any
compression ``logpipe/unpack.py`` reads; a zip by its first local header), not its name. Its files
are unpacked, in one pass, into a private directory under ``$TMPDIR``, removed when the command
ends (and, when a killed run left it, by the next run that unpacks an archive: ``_remove_abandoned``): a member is read like any file (compressed members too), and the workers read it by its path.
Links, devices and hidden files (a name part that starts with ``.``, as in a directory) are left out.

Telling an archive from a log needs no module but ``unpack``: tarfile, zipfile, shutil and tempfile
(~10 ms) are imported only to unpack one, not by every command's start.
"""
from __future__ import annotations

import atexit
import os
from pathlib import PurePosixPath

from . import unpack as _unpack

BLOCK = 512


def archive_kind(path: str) -> str | None:
    """``"tar"``, ``"zip"`` or None (a log, compressed or not), by ``path``'s content (one open)."""
    try:
        with open(path, "rb") as raw:
            if zip_header(raw.peek(4)):
                return "zip"
            stream, _kind = _unpack.unpack(raw)
            head = stream.read(BLOCK)
    except Exception:  # noqa: BLE001 - unreadable or damaged: not an archive here; reading it says why
        return None
    return "tar" if tar_header(head) else None


# An archive's file that is an archive itself (a support bundle of node tarballs) is opened too, to
# this depth.
MAX_NESTING = 3


def unpack_archive(path: str, kind: str, name: str | None = None,
                   depth: int = 0) -> tuple[list[tuple[str, str, tuple[str, ...]]], list[str]]:
    """The files of the ``kind`` archive at ``path`` (``unpack_tar``, ``unpack_zip``), named after
    ``name`` (its own name: ``path`` unless it is an archive's file itself), those that are archives
    opened in turn: ``(unpacked path, name, its member names from the outermost archive in)``; and
    the errors of damaged or empty ones."""
    files, errors = (unpack_tar if kind == "tar" else unpack_zip)(path, name or path)
    out = []
    for where, label, member in files:
        inner = archive_kind(where) if depth < MAX_NESTING else None
        if inner is None:
            out.append((where, label, (member,)))
            continue
        more, more_errors = unpack_archive(where, inner, label, depth + 1)
        out += [(w, n, (member, *chain)) for w, n, chain in more]
        errors += more_errors
    return out, errors


def is_tar(path: str) -> bool:
    """Whether ``path``'s content (decompressed) starts with a tar header (``tar_header``)."""
    return archive_kind(path) == "tar"


def zip_header(head: bytes) -> bool:
    """Whether ``head`` starts a zip archive (its first local header, or an empty one's end record)."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def tar_header(head: bytes) -> bool:
    """Whether ``head`` starts with a POSIX or GNU tar header: ``ustar`` at byte 257 and a header
    checksum that adds up."""
    if len(head) < BLOCK or head[257:262] != b"ustar":
        return False
    try:
        stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:])


def unpack_tar(path: str, name: str | None = None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Unpack the regular files of the tar at ``path``: their ``(unpacked path, ARCHIVE:MEMBER name, MEMBER)``
    in archive order, and the error message (a list of it) when the archive is damaged (the files before the damage
    are kept, and the bytes the damaged one held before it: its complete lines are read) or holds
    no file. One pass over the archive's blocks (``_members``), not tarfile's reading of a member's
    data, which drops what a read that meets the damage had already decoded. ``name``: the archive's
    name in those (its path by default)."""
    name = name or path
    where = _private_dir()
    out: list[tuple[str, str, str]] = []
    error = None
    try:
        with open(path, "rb") as raw:
            stream, _kind = _unpack.unpack(raw)
            for member, size in _members(stream):
                if _hidden(member):
                    _copy(stream, size, None)
                    continue
                target = os.path.join(where, f"{len(out):06d}")
                out.append((target, f"{name}:{member}", member))
                with open(target, "wb") as f:
                    _copy(stream, size, f)
    except _Damaged as e:
        cut = f" in {out[-1][1]}" if e.in_file and out else f" after {len(out)} file(s)"
        error = (f"{name}: tar archive is corrupt or truncated{cut} ({e}); what it held before that point"
                 " is read")
    if not out and error is None:
        error = f"{name}: tar archive holds no files"
    return out, [error] if error else []


def unpack_zip(path: str, name: str | None = None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``unpack_tar`` for a zip archive. Its directory is at its end: a zip cut short has none, and
    nothing is read from it. Its files are stored apart, each found by the directory: a file whose
    data is damaged keeps its bytes before the damage (all of them when only its CRC is wrong, as a
    gzip's are), and the files after it are read (one that cannot be opened at all, encrypted or of
    a compression zipfile lacks, is left out); each is said, an error of its own. A read that fails (EIO: no damage,
    ``unpack.read_failure``) raises, none of its files read, as a tar's does."""
    import zipfile

    name = name or path
    where = _private_dir()
    out: list[tuple[str, str, str]] = []
    errors: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir() or _hidden(info.filename) or (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    continue  # (a directory, a hidden file, a link or device stored by a Unix zip)
                label = f"{name}:{info.filename}"
                try:
                    member = zf.open(info)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:  # (no byte of it read)
                    errors.append(f"{label}: encrypted, not read (the archive's other files are): extract it with its"
                                  " password (`unzip -P …`) and give the file" if info.flag_bits & 0x1 else
                                  f"{name}: zip archive is corrupt, truncated or unreadable in {label} ({e}); not"
                                  " read, the archive's other files are")
                    continue
                target = os.path.join(where, f"{len(out):06d}")
                out.append((target, label, info.filename))
                with member, open(target, "wb") as f:
                    if (damage := _copy_member(member, f, info)) is not None:
                        errors.append(f"{name}: zip archive is corrupt, truncated or unreadable in {label}"
                                      f" ({damage}); what it held before that point is read, and the archive's"
                                      " other files")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as e:
        if _unpack.read_failure(e):  # (EIO, a full $TMPDIR: `cannot read`, sources._add_file)
            raise
        import shlex

        # (no directory, a zip cut short: zip -FF scans it for its files' own headers instead)
        errors.append(f"{name}: zip archive is corrupt, truncated or unreadable ({e})" + (
            "; what it held before that point is read" if out else
            f"; none of its files read: `zip -FF {shlex.quote(name)} --out fixed.zip` recovers those before the"
            " damage, then ingest fixed.zip"))
    if not out and not errors:
        errors.append(f"{name}: zip archive holds no files")
    return out, errors


def _copy_member(member, f, info) -> str | None:
    """A zip file's bytes from ``member`` (``ZipFile.open``) into ``f``, a read at a time; what damage
    stopped it (``type: text``), or None. Its CRC is checked here, after its bytes are written:
    zipfile's own check raises from the read that decodes its last bytes, which drops them (all of a
    small file's). (``_expected_crc`` is zipfile's own, private: without it, zipfile checks as before.)"""
    import zipfile
    import zlib

    expected, crc, lines = getattr(member, "_expected_crc", None), 0, _Lines(f)
    if expected is not None:
        member._expected_crc = None
    while True:
        try:
            got, damage = _unpack.read_some(member, _unpack.READ_STEP)
        except zipfile.BadZipFile as e:  # (zipfile's check, if it still makes it)
            got, damage = b"", e
        lines.write(got)
        crc = zlib.crc32(got, crc)
        if damage is not None:
            lines.cut()
            return f"{type(damage).__name__}: {damage}"
        if not got:
            break
    if expected is not None and crc != expected:
        return f"BadZipFile: Bad CRC-32 for file {info.filename!r}"
    return None


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


class _Lines:
    """Writes a damaged file's bytes into ``f`` (None: nowhere) and ``cut``s them after their last
    newline: the line the damage cut short is no line of the file (read, it was a malformed reject),
    as a damaged gzip's complete lines alone are kept (``sources._byte_chunks``)."""

    def __init__(self, f):
        self.f, self.size, self.whole = f, 0, 0

    def write(self, got: bytes) -> None:
        if self.f is not None:
            self.f.write(got)
        if (k := got.rfind(b"\n")) >= 0:
            self.whole = self.size + k + 1
        self.size += len(got)

    def cut(self) -> None:
        if self.f is not None:
            self.f.truncate(self.whole)


def _copy(stream, size: int, f) -> None:
    """A member's ``size`` bytes (and the padding to its block's end) from ``stream`` into ``f`` (None:
    skipped); on damage, its complete lines read before it are in ``f`` first (``_Lines.cut``)."""
    left, lines = size, _Lines(f)
    while left:
        got, error = _unpack.read_some(stream, min(left, 1 << 20))
        lines.write(got)
        left -= len(got)
        if error is not None or (left and not got):
            lines.cut()
            raise _Damaged(f"{type(error).__name__}: {error}" if error is not None else "unexpected end of data", True)
    if size % BLOCK:
        _read(stream, BLOCK - size % BLOCK)


def _members(stream):
    """``(name, size)`` of each regular file, in order, ``stream`` then at its data: headers read as
    tar writes them (POSIX ustar, GNU long names, pax ``path`` records); other members skipped."""
    import tarfile

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
    import tarfile

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

# A private directory's name: its process's pid, start time (clock ticks after boot: /proc/PID/stat's
# field 22, so that the pid used again by another process is not taken for it) and pid namespace (the
# inode of /proc/self/ns/pid: a pid means that process only in its own), then mkdtemp's 8 characters.
# A killed run (kill -9, the OOM killer, a reset with a persistent /tmp) leaves its directory behind,
# gigabytes for days of logs: the next run that unpacks an archive removes those whose process is gone
# (``_remove_abandoned``).
_PREFIX = "logpipe-tar-"
_OWNED = r"logpipe-tar-(\d+)-(\d+)-(\d+)-[a-z0-9_]{8}"
_UNOWNED = r"logpipe-tar-[a-z0-9_]{8}"  # (logpipe's before the owner was named; /proc missing)
# A directory whose owner cannot be checked here (unnamed, or of another pid namespace: another
# container sharing $TMPDIR) is removed when nothing was written in it for this long: its files are
# written in one pass at an archive's unpacking and read by that command's ingest or query, not a day on.
ABANDONED_AFTER = 24 * 3600


def _private_dir() -> str:
    """A directory of this process's own under ``$TMPDIR`` (mode 700), removed at exit by the
    process that made it (worker processes forked after it leave it alone); the first one of a
    run removes those of killed runs first (``_remove_abandoned``)."""
    import tempfile

    owner = _owner()
    if not _DIRS:
        _remove_abandoned(tempfile.gettempdir(), owner)
    where = tempfile.mkdtemp(prefix=_PREFIX + (f"{owner[0]}-{owner[1]}-{owner[2]}-" if owner else ""))
    if not _DIRS:
        atexit.register(remove_unpacked)
    _DIRS.append((where, os.getpid()))
    return where


def _owner() -> tuple[int, int, int] | None:
    """This process's pid, start time and pid namespace, or None where /proc does not say them."""
    try:
        namespace = int(os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]"))
        start = _started(os.getpid())
    except (OSError, ValueError, IndexError):
        return None
    return None if start is None else (os.getpid(), start, namespace)


def _started(pid: int) -> int | None:
    """When process ``pid`` started (/proc/PID/stat's field 22), None when there is no such process
    (an error when /proc does not say: the process is not taken for gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rpartition(b")")[2].split()[19])  # (field 3 on, after the command's name in parentheses)


def _remove_abandoned(tmp: str, owner: tuple[int, int, int] | None) -> None:
    """Remove the private directories in ``tmp`` that killed runs left: named as ``_private_dir``
    names them, directories (not links to one) of this user, whose process is gone, or (its owner not
    checkable here) untouched for ``ABANDONED_AFTER``. None of them without /proc (``owner`` None).
    Only a run that unpacks looks (one listing of ``tmp``: ~0.4 ms for /tmp's 78 entries here), not
    every command's start."""
    import re
    import shutil
    import stat
    import time

    if owner is None:
        return
    try:
        entries = [e.name for e in os.scandir(tmp) if e.name.startswith(_PREFIX)]
    except OSError:
        return
    for name in entries:
        named = re.fullmatch(_OWNED, name)
        if named is None and re.fullmatch(_UNOWNED, name) is None:
            continue
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        if named and int(named[3]) == owner[2]:
            try:
                gone = _started(int(named[1])) != int(named[2])
            except (OSError, ValueError, IndexError):  # (/proc hides it: not known to be gone)
                continue
        else:
            gone = time.time() - st.st_mtime > ABANDONED_AFTER
        if gone:
            shutil.rmtree(path, ignore_errors=True)  # (it removes no link's target: it checks what it opens)


def remove_unpacked() -> None:
    """Remove what this process unpacked (at exit: ``logpipe/exits.py`` calls it where it skips
    Python's exit)."""
    import shutil

    while _DIRS:
        where, pid = _DIRS.pop()
        if os.getpid() == pid:
            shutil.rmtree(where, ignore_errors=True)
