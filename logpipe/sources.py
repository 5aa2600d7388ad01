"""Stage 0: paths, globs, directories, compressed files and stdin into numbered batches of lines.

Compression and text encoding are detected by content, not by name (``logpipe/unpack.py``). A
corrupt or truncated archive yields every complete line before the damage, then raises
``InputError`` naming the file and how far it got.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os
import re
import select
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from . import archives as _archives
from . import holes as _holes
from . import tailheads as _tailheads
from . import unpack as _unpack
from .errors import InputChangedError, InputError
from .unpack import OTLP_PROTO_HINT, READ_STEP, detect_compression, read_some

CHUNK_BYTES = 8 << 20
UNPACK_NOTE_BYTES = 64 << 20  # an archive this large is said on a terminal as it is unpacked


@dataclass(frozen=True)
class Input:
    """One input: a file path, or ``-`` for stdin. ``label``: the name it goes by where that is not
    its path (an archive's file, unpacked: ``ARCHIVE:MEMBER``, ``logpipe/archives.py``)."""

    path: str
    label: str | None = None
    archive: str | None = None  # (the archive file it came out of)
    members: tuple[str, ...] = ()  # (its name in that archive, and in each archive within it)
    pipe: bool = False  # a named pipe or a device (``<(kubectl logs …)``, /dev/stdin): read once, as stdin is

    @property
    def is_stdin(self) -> bool:
        return self.path == "-"

    @property
    def is_stream(self) -> bool:
        """Read once, front to back, of unknown size, with no identity to skip it by: stdin or a pipe."""
        return self.path == "-" or self.pipe

    @property
    def name(self) -> str:
        """How rows, rejects, the manifest and messages name it: its path (or label), with bytes of a
        name that are not UTF-8 (a file named on another system) shown as ``\\xNN``, as they are in
        a line: a path keeps them as surrogates, which no text column or message can hold."""
        if self.is_stdin:
            return "<stdin>"
        name = self.label or self.path
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(name).decode("utf-8", "backslashreplace")
        return name

    def size(self) -> int | None:
        return None if self.is_stream else os.path.getsize(self.path)

    def parse_command(self, head: bool = False, option: str = "") -> str:
        """The command that shows why this input's lines are rejected (its first lines, ``head``),
        for a hint: ``logpipe parse FILE``, or an archive's file read out of its archive (an
        archive's file inside an archive: the outer archive's every file). ``option``: the format
        option it was read with (``CustomLayout.option``, shell-quoted), which the command repeats."""
        import shlex

        parse = f"logpipe parse {option}" if option else "logpipe parse"
        if self.archive is not None and len(self.members) > 1:
            return f"{parse} {shlex.quote(self.archive)}"
        if self.archive is not None and self.members:
            read = "unzip -p" if _archives.archive_kind(self.archive) == "zip" else "tar -xOf"
            text = f"{read} {shlex.quote(self.archive)} {shlex.quote(self.members[0])}"
            return text + (" | head" if head else "") + f" | {parse}"
        if self.is_stream:  # (its lines are gone: what wrote them can write them again)
            return f"… | head | {parse}" if head else f"… | {parse}"
        return f"head {shlex.quote(self.name)} | {parse}" if head else f"{parse} {shlex.quote(self.name)}"


PIECE_SCAN = 64 << 10  # FileRange.pieces: where a piece's last newline is looked for


def _runtimes():
    """``logpipe/runtimes.py`` (``whole_runs``: a split line's parts in one batch), imported when a
    file is first read: it imports polars."""
    from . import runtimes

    return runtimes


def _line_end(fd: int, start: int, end: int, stop: int) -> int:
    """Where a piece of ``[start, stop)`` that should end near ``end`` ends: after the last newline
    in the PIECE_SCAN bytes before ``end``, else (a longer line) after the first one from there on."""
    scan = min(PIECE_SCAN, end - start)
    while True:
        window = os.pread(fd, scan, end - scan)
        k = window.rfind(b"\n")
        if k < 0:
            break
        at = _runtimes().whole_runs(window, 0, k + 1)
        # back to the window's first whole line (a split line's parts may go on before it): look further
        if at == window.find(b"\n") + 1 and at <= k and scan < end - start:
            scan = min(scan * 4, end - start)
            continue
        return end - scan + at
    while end < stop:
        window = os.pread(fd, min(PIECE_SCAN, stop - end), end)
        k = window.find(b"\n")
        if k >= 0 or not window:
            return end + k + 1 if k >= 0 else stop
        end += len(window)
    return stop


@dataclass(frozen=True)
class FileRange:
    """Bytes ``[start, stop)`` of a plain file, ``lines`` whole lines: a worker process reads them
    itself, so they are not copied through a pipe."""

    path: str
    start: int
    stop: int
    lines: int
    header: str | None = None  # (`tail -f`'s header line in effect at start: logpipe/tailheads.py)

    def read(self) -> bytes:
        with reading(self.path), open(self.path, "rb") as f:
            f.seek(self.start)
            body = f.read(self.stop - self.start)
        if len(body) < self.stop - self.start:
            raise self.shorter(self.start + len(body))
        return body

    def changed(self, what: str) -> "InputChangedError":
        """The error of a range that is no longer what it was when its lines were counted."""
        return InputChangedError(f"{self.path}: changed while being read ({what}): truncated or rewritten, as by "
                                 "logrotate's copytruncate? Not ingested; ingest it again once nothing rewrites it "
                                 "(or ingest its rotated copy)")

    def shorter(self, at: int) -> "InputChangedError":
        try:
            now = f"; it is {os.path.getsize(self.path):,} bytes now"
        except OSError:
            now = ""
        return self.changed(f"read to byte {at:,} of {self.stop:,} counted{now}")

    def pieces(self, size: int) -> Iterator[bytes]:
        """The range as runs of whole lines of about ``size`` bytes, each read from the file once:
        the last newline before a piece's end is found in its last PIECE_SCAN bytes, read first (a
        slice of one large read would copy every byte again: ~4% of a worker's time)."""
        with reading(self.path), open(self.path, "rb", buffering=0) as f:
            fd, pos = f.fileno(), self.start
            while pos < self.stop:
                end = min(pos + size, self.stop)
                if end < self.stop:  # (the range itself ends at a newline)
                    end = _line_end(fd, pos, end, self.stop)
                body = os.pread(fd, end - pos, pos)
                if len(body) < end - pos:  # it shrank since its lines were counted
                    raise self.shorter(pos + len(body))
                yield body
                pos = end


def iter_file_ranges(inp: Input, skip_bytes: int = 0, chunk_bytes: int = CHUNK_BYTES,
                     hasher=None) -> Iterator[tuple[FileRange, int]]:
    """A plain (uncompressed) file as ranges of whole lines (the last line may lack its newline) of
    up to about ``chunk_bytes``: ``(range, end_offset)``. This process reads each byte once, into one
    reused buffer, only to find the ranges' last newlines and count their lines (for the line
    numbers), and gives it to ``hasher.update`` (``dataset.InputHash``) after it has yielded the range
    that ends in it (a worker starts on it ~10 ms sooner a range); a worker reads its range again itself.
    A range of a file that starts with `tail -f`'s header gets the header in effect at its start."""
    from .native import count_newlines

    buf = bytearray(chunk_bytes)
    start, held = skip_bytes, 0  # held: bytes at the front of buf after the last range's end
    hole = not skip_bytes  # (NUL bytes at the start: a hole, no line's, hashed but not in a range: holes.py)
    header = _tailheads.header_at(inp, skip_bytes)  # (None: no `tail -f` output, or looked at in the first bytes read)
    with reading(inp.path), open(inp.path, "rb", buffering=0) as f:
        if skip_bytes:
            if os.fstat(f.fileno()).st_size < skip_bytes:
                raise InputError(f"{inp.name}: shorter than the {skip_bytes} bytes already ingested")
            f.seek(skip_bytes)
        while True:
            if held == len(buf):  # one line longer than the buffer: make room for the rest of it
                buf.extend(bytes(len(buf)))
            with memoryview(buf) as view:
                got = f.readinto(view[held:])
            total = held + got
            if hole and got and not buf[0]:  # (held is 0 in the hole)
                nuls = total - len(buf[:total].lstrip(b"\x00"))
                if hasher is not None:
                    with memoryview(buf) as view:
                        hasher.update(view[:nuls])
                buf[:total - nuls] = buf[nuls:total]
                start, total = start + nuls, total - nuls
            if hole and total:  # (the input's first bytes, after any hole: `tail -f` of several files?)
                header = _tailheads.first_header(buf)
            hole = hole and total == 0
            if got == 0:  # end of the file: what is held is its last line, without a newline
                if held:
                    yield FileRange(inp.path, start, start + held, count_newlines(buf, held) + 1, header), start + held
                return
            cut = buf.rfind(b"\n", 0, total) + 1
            if cut:
                cut = _runtimes().whole_runs(buf, 0, cut)
            if cut:
                yield FileRange(inp.path, start, start + cut, count_newlines(buf, cut), header), start + cut
                header = (_tailheads.last_header(buf, cut) or header) if header is not None else None
            if hasher is not None:  # (the bytes read, in the file's order: what was held is hashed already)
                with memoryview(buf) as view:
                    hasher.update(view[held:total])
            if cut == 0:
                held = total
                continue
            buf[:total - cut] = buf[cut:total]
            start, held = start + cut, total - cut


def expand_inputs(paths: list[str]) -> tuple[list[Input], list[str]]:
    """Expand files, directories (recursed, sorted), globs and tar or zip archives (their files, each an input:
    ``logpipe/archives.py``). Returns the inputs and one error message for each path that gives
    nothing readable (or a damaged archive: its files before the damage are inputs)."""
    inputs: list[Input] = []
    errors: list[str] = []
    said: set[str] = set()

    def unsaid(unlisted: list[str]) -> list[str]:
        """Of the directories that cannot be listed, those not said yet: one under two inputs (`logs/**`
        matches logs and each directory under it, each walked) was said, and counted, once each."""
        new = [e for e in unlisted if e not in said]
        said.update(new)
        return new

    for p in paths:
        if p == "-":  # (given twice, `ingest - -`, it is read once: the second read nothing, an empty input)
            if not any(i.is_stdin for i in inputs):
                inputs.append(Input("-"))
            continue
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if glob.has_magic(p):  # (glob skips a directory it cannot list without a word)
            unlisted = _unlisted(p)
            errors += unsaid(unlisted)
            if not matches and not unlisted:
                errors.append(f"{p}: no file matches this pattern")
        if not matches:
            continue
        for m in matches:
            path = Path(m)
            if path.is_dir():
                files, unlisted = _dir_files(path)
                errors += unsaid(unlisted)
                if not files and not unlisted:
                    errors.append(f"{m}: directory holds no files")
                for f in files:
                    _add_file(str(f), inputs, errors)
            elif path.is_file():
                _add_file(str(path), inputs, errors)
            elif not path.exists():
                errors.append(f"{m}: no such file or directory")
            elif _is_pipe(m):  # ``<(kubectl logs …)``, a named pipe, /dev/stdin: read once, as stdin is
                inputs.append(Input(m, pipe=True))
            else:
                errors.append(f"{m}: not a regular file, a directory or a pipe (a socket or a block device)")
    # A file given twice (`logs logs/a.log`, or `'logs/**'`, which matches logs and each directory
    # under it, each walked) is one input, where it came first: it was an input each time, the later
    # ones "skipped as already ingested" (`inputs 3` for two files).
    seen: set[str] = set()
    return [i for i in inputs if i.is_stdin or not (i.name in seen or seen.add(i.name))], errors


def _add_file(path: str, inputs: list[Input], errors: list[str]) -> None:
    """A file as an input, or a tar or zip archive as the files it holds."""
    kind = _archives.archive_kind(path)
    if kind is None:
        inputs.append(Input(path))
        return
    size = os.path.getsize(path)
    if size >= UNPACK_NOTE_BYTES and sys.stderr.isatty():  # (minutes for a large one: say what is going on)
        import tempfile

        print(f"logpipe: {Input(path).name}: unpacking a {kind} archive of {size / 1e6:,.0f} MB into"
              f" {tempfile.gettempdir()} (TMPDIR=…)", file=sys.stderr, flush=True)
    try:
        files, trouble = _archives.unpack_archive(path, kind)
    except OSError as e:  # a read of it failed (EIO: unpack.read_failure), no damage: none of it is read
        errors.append(f"{Input(path).name}: cannot read: {e.strerror or e}")
        return
    inputs.extend(Input(where, label, path, members) for where, label, members in files)
    errors.extend(trouble)


def _dir_files(root: Path) -> tuple[list[Path], list[str]]:
    """The files under directory ``root`` (recursed, sorted; not in hidden directories, nor through
    links to directories), and an error for each directory that cannot be listed: ``Path.rglob``
    skipped one without a word (a node's log directory of mode 700, another user's), its files
    never read, exit 0; a ``root`` that could not be listed was said to hold no files."""
    files: list[Path] = []
    unlisted: list[str] = []

    for where, dirs, names in os.walk(root, onerror=lambda e: unlisted.append(_cannot_list(e))):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += (Path(where, n) for n in names if not n.startswith(".") and os.path.isfile(os.path.join(where, n)))
    return sorted(files), unlisted


def _cannot_list(e: OSError) -> str:
    """The error of a directory whose listing ``e`` refused."""
    return (f"{Input(os.path.normpath(e.filename)).name}: cannot list its files: {e.strerror} (check the directory's mode and owner);"
            " none of them read")


def _unlisted(pattern: str) -> list[str]:
    """An error for each directory that glob ``pattern`` looks into and cannot list: glob skips one
    without a word (`logpipe ingest 'logs/*.log'` of a directory of mode 700, another user's, said `no
    file matches this pattern`). Each part with a wildcard lists the directories its parts before
    match (``**``: those and every directory under them, hidden ones left out, as glob does)."""
    parts = Path(pattern).parts
    errors: dict[str, str] = {}

    def refused(e: OSError) -> None:
        if not isinstance(e, (FileNotFoundError, NotADirectoryError)):  # (a match that is a file, or gone)
            errors.setdefault(os.path.normpath(e.filename), _cannot_list(e))  # (`d/**/*.log` lists d twice)

    for k, part in enumerate(parts):
        if not glob.has_magic(part):
            continue
        base = os.path.join(*parts[:k]) if k else os.curdir
        for where in sorted(glob.glob(base, recursive=True)) if glob.has_magic(base) else [base]:
            if not os.path.isdir(where):
                continue
            if part == "**":
                for _, dirs, _ in os.walk(where, onerror=refused):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                continue
            try:
                os.scandir(where).close()
            except OSError as e:
                refused(e)
    return list(errors.values())


def _is_pipe(path: str) -> bool:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


class _Taken(io.RawIOBase):
    """Stdin, with the raw bytes read from it kept (``taken``) or, given them, read first again:
    ``read_head`` looks at stdin's first lines without using them up."""

    def __init__(self, rest: BinaryIO, again: bytes = b"", keep: bool = False):
        # Kept: all of ``again`` (read again, whole, next time if not now) and what follows it.
        self.rest, self.again, self.keep, self.taken = rest, memoryview(again), keep, bytearray(again if keep else b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if len(self.again):
            n = min(len(b), len(self.again))
            b[:n], self.again = self.again[:n], self.again[n:]
            return n
        data = getattr(self.rest, "read1", self.rest.read)(len(b))
        b[:len(data)] = data
        if self.keep:
            self.taken += data
        return len(data)


# Per stream input (stdin, "-", or a pipe's path): what read_head took from it, and from which file
# (a caller may swap sys.stdin meanwhile). A pipe is opened once and kept open: closing it after
# read_head would end the program that writes to it.
_STREAMS: dict[str, dict] = {}
_PIPES: dict[str, BinaryIO] = {}


def _stream_base(inp: Input) -> BinaryIO:
    if inp.is_stdin:
        if sys.stdin is None:  # (started with stdin closed: `<&-`)
            raise InputError("stdin is closed: pipe access-log lines in, or name the files to read")
        return _waiting(sys.stdin.buffer)
    if inp.path not in _PIPES:
        _PIPES[inp.path] = _waiting(_open(inp))
    return _PIPES[inp.path]


class _Waiting(io.RawIOBase):
    """stdin or a pipe, read to its first end, waiting for it in steps.

    The steps, so that Ctrl-C stops a command that waits for its input (a terminal, a pipe whose
    writer is quiet, a named pipe): the signal may go to another thread (polars'), and then a read
    that waits in this thread went on waiting (Python runs the handler, KeyboardInterrupt, in this
    thread between two steps). Only ``read1`` reads ``raw``: its buffer stays empty, so what the
    input has is what ``select`` sees. The first end: on a terminal, Ctrl-D is one read of nothing,
    and the read after it waits for more, so the readers above (which peek, and read on to make
    sure) took ten Ctrl-D to end `logpipe parse`, and `logpipe ingest -` never ended."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.ended = raw, False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.ended:
            return 0
        with contextlib.suppress(OSError, ValueError):  # (no descriptor to wait on: the read waits)
            while not select.select([self.raw.fileno()], [], [], 0.2)[0]:
                pass
        data = getattr(self.raw, "read1", self.raw.read)(len(b))
        b[:len(data)] = data
        self.ended = not data
        return len(data)


_WAITING: dict[int, tuple[BinaryIO, BinaryIO]] = {}  # id(stdin's or a pipe's stream) -> (it, its reader)


def _waiting(base: BinaryIO) -> BinaryIO:
    """The one reader of ``base`` (``_Waiting``); a terminal's is said once on stderr: a command given
    no file waits for lines typed or pasted."""
    known = _WAITING.get(id(base))
    if known is None or known[0] is not base:
        isatty = getattr(base, "isatty", None)
        if isatty and isatty():
            print("logpipe: reading access-log lines from the terminal (Ctrl-D ends them); to read a log, name "
                  "its file, or pipe it in: kubectl logs … | logpipe …", file=sys.stderr, flush=True)
        known = _WAITING[id(base)] = (base, io.BufferedReader(_Waiting(base), READ_STEP))
    return known[1]


def _stream_raw(inp: Input) -> BinaryIO:
    state = _STREAMS.setdefault(inp.path, {"again": b"", "of": None, "taking": None})
    base = _stream_base(inp)
    again = state["again"] if state["of"] is base else b""
    state["again"], state["of"] = b"", None
    if state["taking"] is None and not again:
        return base
    raw = _Taken(base, again, keep=state["taking"] is not None)
    if raw.keep:
        state["taking"] = raw
    return raw


def read_head(inp: Input, size: int, skip_bytes: int = 0) -> bytes:
    """The first lines of ``inp`` after ``skip_bytes`` (about ``size`` decompressed bytes, at least
    a whole line), without using them up: what it reads of stdin or a pipe is read again by the next open."""
    state = _STREAMS.setdefault(inp.path, {"again": b"", "of": None, "taking": None}) if inp.is_stream else None
    if state is not None:
        state["taking"] = True
    chunks = iter_byte_chunks(inp, skip_bytes=skip_bytes, chunk_bytes=size)
    try:
        body, _end = next(chunks, (b"", 0))
    finally:
        chunks.close()
        if state is not None:
            taking, state["taking"] = state["taking"], None
            if isinstance(taking, _Taken):
                state["again"], state["of"] = bytes(taking.taken), taking.rest
    return body


def holds_more(inp: Input, size: int, wait: float) -> bool | None:
    """Whether stream ``inp`` holds more than ``size`` bytes (as sent: a compressed pipe's text holds
    more), read ahead for at most ``wait`` seconds and read again by the next open (as ``read_head``'s);
    None when that is not known by then (a writer slower than that, a terminal, stdin closed)."""
    import time

    state = _STREAMS.setdefault(inp.path, {"again": b"", "of": None, "taking": None})
    try:
        base = _stream_base(inp)
        fd = base.raw.raw.fileno()  # (the BufferedReader of _Waiting of the stream: _waiting)
    except (InputError, AttributeError, OSError, ValueError):
        return None
    held = bytearray(state["again"] if state["of"] is base else b"")
    deadline, known = time.monotonic() + wait, None
    try:
        while len(held) <= size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            data = base.read1(size + 1 - len(held))
            if not data:
                known = False
                break
            held += data
        else:
            known = True
    finally:
        state["again"], state["of"] = bytes(held), base
    return known


@contextlib.contextmanager
def reading(path: str):
    """A read of ``path``'s file that fails (``unpack.read_failure``: EIO of a failing disk, NFS's
    ESTALE…) raises an ``OSError`` that names it, as a failed open's does: ingest fails that input
    alone (`cannot read: Input/output error`), keeps none of it, and the next run reads it again; a
    worker's crosses to the parent whole (errno, filename). Never damage: a read of a damaged archive
    keeps its lines before the damage, and later runs skip it (``unpack.is_damage``)."""
    try:
        yield
    except OSError as e:
        if not _unpack.read_failure(e) or e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror, path) from e


def _open_file(inp: Input) -> BinaryIO:
    """``inp``'s file, opened to read; a permission refused is one error with the fix (the open of
    ``inspect``, ingest's first, said `cannot read: Permission denied` without it)."""
    try:
        return open(inp.path, "rb")
    except PermissionError:
        raise InputError(f"{inp.name}: permission denied (check the file's mode and owner)") from None


def _open(inp: Input) -> BinaryIO:
    try:
        return _open_file(inp)
    except OSError as e:
        raise InputError(f"{inp.name}: cannot open: {e.strerror}") from None


def open_binary(inp: Input) -> tuple[BinaryIO, str]:
    """Open an input for reading decompressed bytes, as UTF-8 text when a byte-order mark says
    otherwise (``detect_compression``); returns the stream and its compression (or codec)."""
    raw = _stream_raw(inp) if inp.is_stream else _open(inp)
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
    return _unpack.unpack(buffered)


def inspect(inp: Input) -> tuple[str | None, int]:
    """Why a file is no text log, or None: a plain (uncompressed) file with NUL bytes at its start
    that no hole explains (``holes.binary``; UTF-16 text has them too, after its byte-order mark: it is
    not plain), or OTLP protobuf; and the size of the hole it starts with (copytruncate's), looked past."""
    if inp.is_stream:  # (its first bytes, decompressed, read again later: read_head)
        head = read_head(inp, 8192)[:8192].lstrip(b"\x00")
        return (_holes.BINARY_HINT if b"\x00" in head and _holes.binary(head) else None), 0
    hole = 0
    with reading(inp.path), _open_file(inp) as f:
        head = f.read(8192)
        kind = detect_compression(head)
        if kind == "otlp-proto":
            return OTLP_PROTO_HINT, 0
        if kind != "plain" or b"\x00" not in head:
            return None, 0
        if head[:1] == b"\x00":
            hole, head = _holes.after_hole(f, 8192)
    if _holes.binary(head):
        return _holes.BINARY_HINT, hole
    return None, hole


# What a support bundle (`kubectl cluster-info dump`, `oc adm must-gather`, `istioctl bug-report`) holds beside
# its logs: resources and config dumps, printed as indented JSON (`{` alone on the first line, a key on the
# next) or as Kubernetes YAML (`apiVersion:` and `kind:` at the top level, after any `---`). Each read as
# lines was hundreds of malformed rejects and an error (over --max-reject-ratio): 22 errors, exit 1, for a
# cluster-info dump of three namespaces. No log starts so; a document of log entries (a JSON array, Loki's
# or CloudWatch's response, indented) is read as its entries' lines before this looks (``unpack``).
_JSON_DOCUMENT = re.compile(rb"\A\s*\{[ \t\r]*\n(?:[ \t\r]*\n)*[ \t]+\"")
_YAML_START = re.compile(rb"\A(?:\s*#[^\n]*\n)*\s*(?:---[ \t\r]*\n(?:\s*#[^\n]*\n)*\s*)?(?:apiVersion|kind):[ \t]+\S")
_YAML_KEY = re.compile(rb"^(apiVersion|kind):[ \t]+\S", re.M)


def document_of(inp: Input) -> str | None:
    """What ``inp`` is when it is a resource document that a support bundle holds beside its logs
    (``_JSON_DOCUMENT``, ``_YAML_START``), by its first 8 KB of text; None for any other input (stdin
    and pipes are not looked at: given on purpose)."""
    if inp.is_stream:
        return None
    try:
        head = read_head(inp, 8192)[:8192]
    except (OSError, InputError):  # (reading it says why)
        return None
    if _JSON_DOCUMENT.match(head):
        return None if _tailheads.DUMP_START.match(head) and _log_sections(inp) else "indented JSON"
    if _YAML_START.match(head) and {m[1] for m in _YAML_KEY.finditer(head)} == {b"apiVersion", b"kind"}:
        return "Kubernetes YAML"
    return None


_START_MARK = re.compile(rb"^" + re.escape(_tailheads.START_LOOK), re.M)


def _log_sections(inp: Input) -> bool:
    """Whether ``inp``, a file that starts as `kubectl cluster-info dump`'s output does (its nodes'
    JSON), holds a container's log (a line ``==== START logs for container …``): its stdout, saved,
    is read (logpipe/tailheads.py: its resource JSON noise), its --output-directory's nodes.json is
    left out. Looked for from the start up to the first: the dump writes each namespace's resources
    before its pods' logs, kube-system's first, so a dump's first START follows its nodes' and
    kube-system's resources; a nodes.json is read whole."""
    try:
        return any(_START_MARK.search(body) for body, _end in iter_byte_chunks(inp))
    except (OSError, InputError):  # (reading it says why)
        return False


def iter_chunks(inp: Input, skip_bytes: int = 0) -> Iterator[tuple[list[str], int]]:
    """Yield ``(lines, end_offset)``: complete lines (decoded, invalid UTF-8 kept as ``\\xNN``,
    without their newline) and the decompressed byte offset just after them. A last line
    without a newline is yielded at the end. ``skip_bytes`` skips already-read content."""
    for body, end in iter_byte_chunks(inp, skip_bytes):
        yield split_lines(body), end


def split_lines(body: bytes) -> list[str]:
    """Decode a chunk of whole lines; invalid UTF-8 is kept visibly (``\\xNN``), never lost."""
    lines = body.decode("utf-8", "backslashreplace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def iter_byte_chunks(inp: Input, skip_bytes: int = 0, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[bytes, int]]:
    """Yield ``(body, end_offset)``: runs of complete lines as bytes (each ending in a newline, but
    the last line of the input may lack one) and the decompressed offset just after them."""
    with reading(inp.path):
        yield from _byte_chunks(inp, skip_bytes, chunk_bytes)


def _byte_chunks(inp: Input, skip_bytes: int, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    stream, kind = open_binary(inp)
    if kind == "otlp-proto":
        raise InputError(f"{inp.name}: {OTLP_PROTO_HINT}")
    if inp.is_stream and hasattr(stream, "peek"):
        head = _peek(stream, _archives.BLOCK)
        kind = "tar" if _archives.tar_header(head) else "zip" if _archives.zip_header(head) else None
        if kind is not None:
            raise InputError(f"{inp.name}: a {kind} archive: give its path instead (logpipe reads an archive's files"
                             " from the archive file, not from a pipe)")
    # A plain file is read a chunk a call (no decompression error to stop at: see unpack.read_some)
    step = chunk_bytes if kind == "plain" and not inp.is_stream else READ_STEP
    offset = 0
    tail = b""
    hole = not skip_bytes  # (NUL bytes at the start: a hole, no line's: logpipe/holes.py)
    try:
        if skip_bytes:
            _skip(stream, skip_bytes, inp)
            offset = skip_bytes
        while True:
            chunk, error = read_some(stream, chunk_bytes, step)
            end = error is None and len(chunk) < chunk_bytes  # (read_some stops short at the input's end only)
            if hole and chunk:
                kept = chunk.lstrip(b"\x00")
                offset, hole = offset + len(chunk) - len(kept), not kept
                if not kept and error is None:
                    continue
                chunk = kept
            if chunk:
                cut = chunk.rfind(b"\n")
                if end:  # its last line, with or without a newline, with those before it (one task of a small pipe, not two)
                    cut = len(chunk) - 1
                elif cut >= 0:  # (the parts of a split line read in one batch)
                    cut = _runtimes().whole_runs(chunk, 0, cut + 1) - 1
                if cut < 0:  # no line ends in this chunk (a very long line): read on
                    tail += chunk
                elif not tail and cut + 1 == len(chunk):  # whole lines as read (a small file): no copy
                    body, tail = chunk, b""
                    offset += len(body)
                    yield body, offset
                else:  # one copy: the lines that were waiting, and this chunk up to its last newline
                    body = b"".join((tail, memoryview(chunk)[: cut + 1]))
                    tail = chunk[cut + 1 :]
                    offset += len(body)
                    yield body, offset
            if error is not None:
                # Keep every complete line before the damage (yielded above), then say where it broke.
                raise _corrupt(inp, offset + len(tail), error) from None
            if not chunk:
                break
        if tail:
            offset += len(tail)
            yield tail, offset
    finally:
        if not inp.is_stream:
            stream.close()




def _peek(stream: BinaryIO, n: int) -> bytes:
    try:
        return stream.peek(n)[:n]
    except Exception:  # noqa: BLE001 - a damaged start: the first read says so
        return b""


def _corrupt(inp: Input, good_bytes: int, e: BaseException) -> InputError:
    return InputError(
        f"{inp.name}: archive is corrupt or truncated after {good_bytes} bytes of content "
        f"({type(e).__name__}: {e}); the complete lines before that point were kept"
    )


def _skip(stream: BinaryIO, n: int, inp: Input) -> None:
    while n > 0:
        got = stream.read(min(n, CHUNK_BYTES))
        if not got:
            raise InputError(f"{inp.name}: shorter than the {n} bytes already ingested")
        n -= len(got)
