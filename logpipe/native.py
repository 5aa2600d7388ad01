"""The split plan's cut in C (``cut.c``), compiled on first use; polars does it when there is no C compiler.

Why C: cutting lines at their quotes and spaces with polars' string kernels (a list per line, then a
column per token) cost ~1.9 µs a line, a third of ingest's CPU; one pass over the bytes in C costs
~0.3 µs, and its tokens are Arrow string views into the lines' own buffer (no copy). ``cut.c`` holds
no layout: it runs the plan splitplan.py reads from the grammar.

The library is built once per machine with the system's C compiler (``$CC``, else ``cc``) into
``$LOGPIPE_CACHE`` (default ``$XDG_CACHE_HOME/logpipe``, ``~/.cache/logpipe``; a temporary
directory when that is not writable), named by a hash of the source, so a changed ``cut.c`` is
rebuilt and concurrent builds (ingest's workers) cannot collide. Without a compiler, or with
``LOGPIPE_NATIVE=0``, ``library()`` is None and splitplan.py cuts with polars: the same columns,
slower (the tests run both).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cut.c")
MAX_SEGMENT_TOKENS = 64  # cut.c's MAX_SEGMENT_TOKENS
MAX_DATA_BYTES = 2**31 - 1  # views hold 32-bit offsets
FLAGS = ("-O2", "-std=c99", "-shared", "-fPIC")

_LIB: ctypes.CDLL | None = None
_TRIED = False
_FAILED: str | None = None  # why the build or load failed
why_not: str | None = None  # why library() is None, for `make bench` and the tests


def enabled() -> bool:
    return os.environ.get("LOGPIPE_NATIVE", "1") != "0"


def library() -> ctypes.CDLL | None:
    """The loaded cut library, built when missing; None when disabled or when it cannot be built."""
    global _LIB, _TRIED, _FAILED, why_not
    if not enabled():
        why_not = "LOGPIPE_NATIVE=0"
        return None
    if not _TRIED:
        _TRIED = True
        try:
            _LIB = _load(_build())
        except (OSError, subprocess.SubprocessError, _BuildError) as e:
            _FAILED = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    why_not = None if _LIB is not None else _FAILED
    return _LIB


class _BuildError(Exception):
    pass


HINT_MARK = "no-compiler-noted"  # in the cache directory: the note below was given on this machine


def compiler_note() -> str | None:
    """Once per machine (a mark in the cache directory): when cut.c could not be built for want of a
    C compiler, what that costs and how to fix it. None otherwise, and when no mark can be written
    (a note on every run would nag)."""
    if not enabled() or library() is not None or not (_FAILED or "").startswith("no C compiler"):
        return None
    for directory in _cache_dirs():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(directory / HINT_MARK, "x"):
                pass
        except FileExistsError:
            return None
        except OSError:
            continue
        return (f"logpipe: note: {_FAILED}, so logpipe runs without logpipe/cut.c: the same records, but "
                "ingest is ~1.2x slower and JSON lines ~3x; install one (e.g. apt-get install gcc) and the "
                "next run builds it (LOGPIPE_NATIVE=0 silences this; said once)")
    return None


def _cache_dirs() -> list[Path]:
    if os.environ.get("LOGPIPE_CACHE"):
        return [Path(os.environ["LOGPIPE_CACHE"])]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(xdg) / "logpipe", Path(tempfile.gettempdir()) / f"logpipe-{os.getuid()}"]


def _build() -> Path:
    source = SOURCE.read_bytes()
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256(source + " ".join((*FLAGS, sys.platform, os.uname().machine)).encode())
    name = f"cut-{key.hexdigest()[:16]}.so"
    for directory in _cache_dirs():
        if (directory / name).is_file() and _ours(directory) and _ours(directory / name):
            return directory / name
    if shutil.which(compiler) is None:
        raise _BuildError(f"no C compiler ({compiler}) on PATH")
    for directory in _cache_dirs():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _ours(directory):
                continue
            fd, tmp = tempfile.mkstemp(prefix=name + ".", dir=directory)
        except OSError:
            continue
        os.close(fd)
        try:
            done = subprocess.run([compiler, *FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True,
                                  timeout=120)
            if done.returncode != 0:
                raise _BuildError(f"{compiler} failed on {SOURCE.name}: {done.stderr.strip() or done.returncode}")
            os.chmod(tmp, 0o700)  # whatever the umask: _ours
            os.replace(tmp, directory / name)  # atomic: a concurrent build writes the same bytes
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in directory.glob("cut-*.so"):  # builds of an earlier cut.c (a process using one keeps it)
            if old.name != name:
                old.unlink(missing_ok=True)
        return directory / name
    raise _BuildError("no cache directory for the native cut that is this user's alone (set LOGPIPE_CACHE)")


def cache_dir() -> Path | None:
    """The first cache directory (``_cache_dirs``) that exists or can be made and is this user's
    alone; None when there is none."""
    for directory in _cache_dirs():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if _ours(directory):
                return directory
        except OSError:
            continue
    return None


def _ours(path: Path) -> bool:
    """Whether only this user could have put ``path`` there (its owner, not writable by others): a
    library is loaded into the process, so one planted in a shared directory such as /tmp must not be."""
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i32p, vp = ctypes.POINTER(ctypes.c_int32), ctypes.c_void_p
    lib.logpipe_cut.restype = ctypes.c_int64
    lib.logpipe_cut.argtypes = [vp, vp, vp, ctypes.c_int32, ctypes.c_int64, ctypes.c_int32, vp, ctypes.c_int32,
                                ctypes.c_char_p, vp, vp, vp, vp, vp, vp, vp, ctypes.c_char_p, ctypes.c_int32]
    lib.logpipe_count.restype = ctypes.c_int64
    lib.logpipe_count.argtypes = [vp, ctypes.c_int64, ctypes.c_uint8]
    lib.logpipe_json_lines.restype = ctypes.c_int64
    lib.logpipe_json_lines.argtypes = [ctypes.c_int64, ctypes.c_int32, i32p, vp, vp, vp, vp,
                                       ctypes.c_char_p, i32p, ctypes.c_char_p, ctypes.c_int32, vp, vp, vp, vp, vp, vp,
                                       ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)]
    lib.logpipe_delimited_lines.restype = ctypes.c_int64
    lib.logpipe_delimited_lines.argtypes = [ctypes.c_int64, ctypes.c_int32, i32p, vp, vp, vp, vp, ctypes.c_uint8,
                                            ctypes.c_char_p, vp, vp, vp, vp, vp, vp, ctypes.c_int64, ctypes.c_int64,
                                            ctypes.POINTER(ctypes.c_int64)]
    lib.logpipe_json_flat.restype = ctypes.c_int64
    lib.logpipe_json_flat.argtypes = [vp, vp, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p, i32p,
                                      vp, vp, vp, vp]
    lib.logpipe_dict.restype = ctypes.c_int64
    lib.logpipe_dict.argtypes = [vp, vp, ctypes.c_int64, vp, vp, vp, vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
    lib.logpipe_lines.restype = ctypes.c_int64
    lib.logpipe_lines.argtypes = [ctypes.c_char_p, ctypes.c_int64, vp, ctypes.c_int64, ctypes.POINTER(ctypes.c_int64),
                                  ctypes.POINTER(ctypes.c_int64)]
    lib.logpipe_match.restype = ctypes.c_int64
    lib.logpipe_match.argtypes = [vp, vp, ctypes.c_int64, vp, ctypes.c_char_p, vp, ctypes.c_char_p, ctypes.c_int32,
                                  ctypes.c_int32, vp]
    lib.logpipe_split_last.restype = ctypes.c_int64
    lib.logpipe_split_last.argtypes = [vp, vp, ctypes.c_int64, vp, ctypes.c_uint8, vp, vp, vp]
    lib.logpipe_compact.restype = None
    lib.logpipe_compact.argtypes = [vp, ctypes.c_int64, vp, vp]
    return lib


class Plan(ctypes.Structure):
    """cut.c's plan_t: one plan of a cut (``nativecut.prepare`` fills it in)."""

    _fields_ = [("nseg", ctypes.c_int32), ("seg_left", ctypes.c_void_p), ("seg_free", ctypes.c_void_p),
                ("seg_right", ctypes.c_void_p), ("ntok", ctypes.c_int32),
                *((name, ctypes.c_void_p) for name in ("tok_seg", "tok_index", "tok_lstrip", "tok_rstrip", "tok_loff",
                                                       "tok_roff", "lits", "tok_split", "tok_col", "tok_part",
                                                       "out_kind")),
                ("nchk", ctypes.c_int32), ("chk", ctypes.c_void_p), ("dfa_cls", ctypes.c_void_p),
                ("dfa_tab", ctypes.c_void_p), ("dfa_acc", ctypes.c_void_p), ("nabsent", ctypes.c_int32),
                ("absent", ctypes.c_void_p), ("chk_skip", ctypes.c_void_p), ("tok_chk", ctypes.c_void_p)]


def address(obj) -> int | None:
    """The address of a ctypes array (None for None), for a Plan field: the caller keeps ``obj`` alive
    while the plan is used."""
    if obj is None:
        return None
    return ctypes.addressof(obj)


def uint8s(data: bytes) -> ctypes.Array:
    """``data`` as a C array (for a Plan field: ``address``)."""
    return (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")


def string_buffers(series):
    """A polars string Series as cut.c reads lines: (its Arrow large-string array, the address of its
    offsets, its data buffer), or None when it holds no bytes or more than views can address."""
    import pyarrow as pa

    lines = series.to_arrow()
    if lines.type != pa.large_string():
        lines = lines.cast(pa.large_string())
    _, offsets, data = lines.buffers()
    if data is None or data.size > MAX_DATA_BYTES:
        return None
    return lines, offsets.address + 8 * lines.offset, data


def string_views(series):
    """A polars string Series as cut.c's logpipe_cut reads lines, without a copy: (its Arrow string
    view array, the address of its views, a C array of its data buffers' addresses, one of their
    sizes, their number)."""
    import polars as pl
    import pyarrow as pa

    lines = series.to_arrow(compat_level=pl.CompatLevel.newest())
    if lines.type != pa.string_view():
        lines = lines.cast(pa.string_view())
    _, views, *data = lines.buffers()
    bufs = (ctypes.c_void_p * max(1, len(data)))(*(b.address if b is not None else None for b in data))
    sizes = (ctypes.c_int64 * max(1, len(data)))(*(b.size if b is not None else 0 for b in data))
    return lines, views.address + 16 * lines.offset, bufs, sizes, len(data)


def view_columns(lib, views, n: int, sizes, bufs, rows: int | None = None, skip=None, validity=None) -> list:
    """polars string columns of the ``len(sizes)`` columns of ``n`` string views cut.c wrote into
    ``views`` (pointing into the buffers ``bufs``, a C array of their addresses; ``sizes[k]``: column
    k's bytes in texts over 12 bytes), of which the first ``rows`` (default all) are filled; None for
    column k when ``skip[k]``; ``validity[k]``: column k's validity bitmap, if any. Each column's
    long texts are first copied into a buffer of its own (``logpipe_compact``)."""
    import pyarrow as pa
    from . import arrowpl as _arrowpl

    rows = n if rows is None else rows
    width = 16 * n  # an Arrow string view is 16 bytes
    texts = pa.allocate_buffer(sum(sizes) + 1)  # +1: a column with no long text still gets a buffer
    columns, at = [], 0
    for k, size in enumerate(sizes):
        if skip is not None and skip[k]:
            columns.append(None)
            continue
        column, text = views.slice(width * k, 16 * rows), texts.slice(at, max(1, size))
        lib.logpipe_compact(column.address, rows, bufs, text.address)
        bits = validity[k] if validity is not None else None
        columns.append(_arrowpl.series(pa.Array.from_buffers(pa.string_view(), rows, [bits, column, text])))
        at += size
    return columns


SPREAD = "spread"  # dictionary(): the probed rows' texts hardly repeat


def dictionary(lib, series, rows: int | None = None, probe: int = 0, ratio: int = 1):
    """``series`` (polars strings) as dictionary codes, by cut.c: (codes: row i's text is distinct
    text codes[i]; firsts: the row where distinct text k first appears), both UInt32 Series, or None
    when it cannot be read so. A null is a text of its own. With ``rows``, of its first ``rows`` only.
    With ``probe``: SPREAD, read no further, when its first ``probe`` rows hold over ``probe / ratio``
    distinct texts."""
    import pyarrow as pa
    from . import arrowpl as _arrowpl

    lines, views, bufs, _, _ = string_views(series)
    n = len(lines) if rows is None else min(rows, len(lines))
    validity = lines.buffers()[0]
    if validity is not None and lines.offset:  # (polars hands out whole arrays; a bit offset is not read)
        return None
    cap = 1 << max(4, (2 * n - 1).bit_length())
    codes, firsts, table = pa.allocate_buffer(4 * n), pa.allocate_buffer(4 * max(1, n)), pa.allocate_buffer(4 * cap)
    distinct = lib.logpipe_dict(views, None if validity is None else validity.address, n, bufs,
                                codes.address, firsts.address, table.address, cap, probe, ratio)
    if distinct < 0:
        return SPREAD
    as_series = lambda buf, m: _arrowpl.series(pa.Array.from_buffers(pa.uint32(), m, [None, buf]))  # noqa: E731
    return as_series(codes, n), as_series(firsts, distinct)


def dfa_tables(found) -> tuple[bytes, bytes, bytes, int, int]:
    """A DFA (``dfa.TokenDFA``) as cut.c's dfa_run walks it: (byte classes, table of 16-bit next-row
    offsets, accepting flags, number of classes, offset of the first sink's row)."""
    import array

    table = array.array("H", (state * found.nclasses for state in found.table))
    return found.classes, table.tobytes(), found.accepting, found.nclasses, found.first_sink * found.nclasses


NONE = "none"  # matches(): no text is accepted


def matches(lib, series, tables: tuple):
    """Which texts of ``series`` (polars strings) ``dfa_run`` accepts whole, by cut.c (``dfa_tables``
    of the DFA): a polars Boolean Series, false for a null; NONE when it accepts none; None when it
    cannot be read so (a validity bitmap at a bit offset). ~0.1 µs a text that leaves the DFA at once."""
    import polars as pl
    import pyarrow as pa
    from . import arrowpl as _arrowpl

    texts, views, bufs, _, _ = string_views(series)
    n = len(texts)
    validity = texts.buffers()[0]
    if validity is not None and texts.offset:  # (polars hands out whole arrays; a bit offset is not read)
        return None
    classes, table, accept, ncls, first_sink = tables
    out = pa.allocate_buffer(max(1, n))
    hits = lib.logpipe_match(views, None if validity is None else validity.address, n, bufs, classes, table,
                             accept, ncls, first_sink, out.address)
    if not hits:
        return NONE
    return _arrowpl.series(pa.Array.from_buffers(pa.uint8(), n, [None, out])).cast(pl.Boolean)


def split_last(lib, series, sep: str):
    """Each text of ``series`` (polars strings) cut at its last ``sep`` (one ASCII character), by
    cut.c: (the texts before it, the texts after it), two polars string Series of views into
    ``series``' own buffers (no copy); a text without ``sep`` is all before it, with nothing after it
    (null), and a null text gives null to both; None when it cannot be read so (a validity bitmap at
    a bit offset)."""
    import pyarrow as pa
    from . import arrowpl as _arrowpl

    texts, views, bufs, _, _ = string_views(series)
    n = len(texts)
    validity = texts.buffers()[0]
    if validity is not None and texts.offset:  # (polars hands out whole arrays; a bit offset is not read)
        return None
    vb = (n + 7) // 8
    out, valid = pa.allocate_buffer(32 * max(1, n)), pa.allocate_buffer(2 * vb or 1)
    lib.logpipe_split_last(views, None if validity is None else validity.address, n, bufs, ord(sep),
                           out.address, out.address + 16 * n, valid.address)
    data = [b if b is not None else pa.allocate_buffer(0) for b in texts.buffers()[2:]]
    return tuple(_arrowpl.series(pa.Array.from_buffers(pa.string_view(), n, [valid.slice(vb * k, vb),
                                                                  out.slice(16 * n * k, 16 * n), *data]))
                 for k in (0, 1))


def lines(lib, body: bytes):
    """``body``'s lines (cut at ``\\n``, as polars' ``read_lines`` cuts them) as a polars string Series
    of views into ``body`` itself (no copy: ~1 ms for 8 MB, read_lines ~3-4 ms), and whether any line
    may be blank (all white space: one that starts with a printable ASCII byte other than a space
    cannot), and whether ``body`` holds a NUL byte; None when ``body`` is not valid UTF-8 or is too
    large for views' 32-bit offsets."""
    import pyarrow as pa
    from . import arrowpl as _arrowpl

    if not isinstance(body, bytes) or len(body) > MAX_DATA_BYTES:  # (a bytearray may change under the views)
        return None
    cap = count_newlines(body, len(body)) + 1
    views = pa.allocate_buffer(16 * cap)
    odd, nul = ctypes.c_int64(0), ctypes.c_int64(0)
    n = lib.logpipe_lines(body, len(body), views.address, cap, ctypes.byref(odd), ctypes.byref(nul))
    if n < 0:
        return None
    series = _arrowpl.series(pa.Array.from_buffers(pa.string_view(), n, [None, views, pa.py_buffer(body)]))
    return series.alias("line"), odd.value > 0, nul.value > 0


def int32s(values) -> ctypes.Array:
    values = list(values)
    return (ctypes.c_int32 * max(1, len(values)))(*values)


def count_newlines(buf: bytearray | bytes, end: int) -> int:
    """``buf.count(b"\\n", 0, end)``, natively when cut.c is built (~8x faster)."""
    lib = library()
    if lib is None or end == 0:
        return buf.count(b"\n", 0, end)
    if isinstance(buf, bytes):
        return lib.logpipe_count(ctypes.c_char_p(buf), end, 10)
    view = (ctypes.c_char * len(buf)).from_buffer(buf)  # no copy; released on return (buf may grow)
    try:
        return lib.logpipe_count(ctypes.addressof(view), end, 10)
    finally:
        del view
