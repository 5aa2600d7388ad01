"""Turn Arrow data into output: an aligned terminal table, CSV, TSV, JSON, NDJSON, Markdown, Parquet,
and the YAML documents a query wrote (``yaml``: service_entries' ServiceEntries, one file for kubectl).

Input is a ``pyarrow.Table``, a ``RecordBatch``, a ``RecordBatchReader``, anything exporting an Arrow
C stream (a polars DataFrame, a DuckDB result), or an iterable of RecordBatches plus ``schema=``.
Output streams to a text file object and is flushed after every chunk of rows, so
``logpipe … | head`` stops early. ``BrokenPipeError`` is deliberately not caught here: the CLI turns
it into a quiet exit.

Values come from access logs and are attacker-controlled (a user agent can carry ``\\x1b[2J``).
The human formats (``table``, ``markdown``) pass every text cell through ``escape_control`` so a
crafted line cannot move the cursor, recolour the terminal or reorder text with bidi overrides
("Trojan Source", CVE-2021-42574). The machine formats keep data exact: JSON escapes by
construction (ASCII-only output), CSV/TSV quote.

Columns are converted a batch at a time, never per cell through Arrow scalars. JSON lines, and CSV/TSV
rows, are written by cut.c from the columns' buffers when it is built, else assembled column-wise
by Arrow kernels or written by Python's csv module: the same bytes (``logpipe/jsonout.py``).
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import itertools
import math
import os
import re
import sys
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any

import pyarrow as pa

from . import arrowpl as _arrowpl
from .errors import LogpipeError, UsageError, no_space
from .jsonout import (JSON_TEXT, NativeRows, column_kind, columns, iso_texts, json_line_batches,
                      text_bounds, to_jsonable)

FORMATS = ("table", "csv", "tsv", "json", "ndjson", "markdown")  # each writes any table
# … and yaml, which writes the YAML documents of a one-column result (``_write_yaml``)
DEFAULT_MAX_WIDTH = 40
CHUNK_ROWS = 4096  # rows per write + flush
WIDTH_SAMPLE_ROWS = 1000  # the table format sizes its columns from the first rows, then streams
ROW_GROUP_ROWS = 32 * 1024  # Parquet row group target when writing streamed batches (bounds memory)
# A null item of a list cell in table, csv, tsv and markdown, as a struct cell's null reads (its JSON):
# it was an empty item, ['a', None, ''] written `a,,` like ['a', '', ''] (a null cell stays empty)
NULL_ITEM = "null"

# ---- escaping ------------------------------------------------------------------------------

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1; bidi embeddings/overrides/isolates and marks (U+061C, U+200E/F, U+202A-E,
# U+2066-9); U+2028/9, which some terminals and editors treat as line breaks.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    n = ord(c)
    return _NAMED.get(c) or (f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")


def escape_control(s: str) -> str:
    """Make control and bidi characters visible text: ESC → ``\\x1b``, newline → ``\\n``,
    U+202E → ``\\u202e``. Other text, backslashes included, is left as is."""
    if _CONTROL_RE.search(s) is None:
        return s
    return _CONTROL_RE.sub(_escape_char, s)


# Escaped so a cell renders as its value: ``|`` (cell break); inline markup ``*``, backtick, ``~``,
# ``]`` (no ``](`` means no link or image) and ``_`` unless inside a word (CommonMark ignores
# intraword ``_``, so ``response_code`` stays readable); ``<`` (raw HTML, autolinks); a backslash
# before punctuation (it would swallow the next escape); ``&`` starting an entity (``&#x202e;``
# would become a bidi override once rendered).
_MD_RE = re.compile(
    r"\\(?=[!-/:-@\[-`{-~])|[|<*`~\]]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])|&(?=#?[0-9A-Za-z]+;)"
)


def escape_markdown(s: str) -> str:
    """``s`` as Markdown text (a table's cell, a heading) that renders as ``s``: control characters
    as ``escape_control`` shows them, then markup escaped (``_MD_RE``)."""
    return _MD_RE.sub(lambda m: "\\" + m.group(), escape_control(s))


# ---- values ----------------------------------------------------------------------------------


def _float_text(v: float) -> str:
    return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))


def _scalar_text(v: Any) -> str:
    """A value inside a list/struct cell, as text for csv/table."""
    if v is None:
        return NULL_ITEM
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _float_text(v)
    # (by what to_jsonable makes of it: DuckDB's INTERVAL, pyarrow's MonthDayNano, is a tuple, and was
    # written as the JSON of its duration, quotes and all: `"P0M386DT18696.597S"` in a table, tripled in csv)
    j = to_jsonable(v)
    if isinstance(j, (dict, list)):
        return JSON_TEXT(j)
    return j if isinstance(j, str) else str(j)


def _text_cells(arr: pa.Array, kind: str) -> list[str | None]:
    """One column → display/CSV text (``None`` for nulls); lists are joined with ``,``."""
    if kind == "null":
        return [None] * len(arr)
    if kind == "number":
        return _arrowpl.cast(arr, pa.string()).to_pylist()
    if kind == "ts":
        return iso_texts(arr)
    vals = arr.to_pylist()
    if kind == "str":
        return vals
    if kind == "float":
        return [_float_text(v) if v is not None else None for v in vals]
    if kind == "bytes":
        return [v.decode("utf-8", "backslashreplace") if v is not None else None for v in vals]
    if kind == "list":
        return [",".join(map(_scalar_text, v)) if v is not None else None for v in vals]
    return [_scalar_text(v) if v is not None else None for v in vals]


# ---- input -----------------------------------------------------------------------------------


def _open_batches(data: Any, schema: pa.Schema | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Any accepted input → (schema, its record batches)."""
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if not isinstance(data, pa.RecordBatchReader) and hasattr(data, "__arrow_c_stream__"):
        data = pa.RecordBatchReader.from_stream(data)  # polars DataFrame, DuckDB result, ...
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    batches = iter(data)
    if schema is None:
        first = next(batches, None)
        if first is None:
            return pa.schema([]), iter(())
        schema, batches = first.schema, itertools.chain([first], batches)
    return schema, batches


def _chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Slices of at most CHUNK_ROWS rows, none empty: the unit of write + flush."""
    for b in batches:
        for offset in range(0, b.num_rows, CHUNK_ROWS):
            yield b.slice(offset, CHUNK_ROWS)


# ---- JSON ------------------------------------------------------------------------------------


def iter_json_lines(data: Any, *, schema: pa.Schema | None = None) -> Iterator[str]:
    """One compact, ASCII-only JSON object per row (no trailing newline), keys in column order."""
    schema, batches = _open_batches(data, schema)
    for lines in json_line_batches(schema, _chunks(batches)):
        yield from lines.to_pylist()


def _write_ndjson(schema, batches, out, **_):
    for lines in json_line_batches(schema, batches, end="}\n", rows=CHUNK_ROWS):
        _write_text_array(lines, out)
        out.flush()


def _write_text_array(arr: pa.Array, out: IO[str], cut: int = 0) -> None:
    """Write the values of a string array back to back: its data buffer is that text already (but
    the last ``cut`` bytes, of ASCII text)."""
    if len(arr) == 0:
        return
    first, last = text_bounds(arr)
    data = memoryview(arr.buffers()[2])[first:last - cut]
    binary = getattr(out, "buffer", None)
    if binary is not None:
        out.flush()
        binary.write(data)
    else:
        out.write(bytes(data).decode("utf-8"))


def _write_json(schema, batches, out, **_):
    """json: an array of the rows' objects, each written with its ``,\n`` by ``json_line_batches``
    and the lines back to back, the comma after a piece's last left to the next piece (joining them
    in Arrow imported pyarrow.compute, ~50 ms of a small query's start-up)."""
    sep = "[\n"
    for lines in json_line_batches(schema, batches, end="},\n", rows=CHUNK_ROWS):
        out.write(sep)
        _write_text_array(lines, out, cut=len(",\n"))
        out.flush()
        sep = ",\n"
    out.write("[]\n" if sep == "[\n" else "\n]\n")
    out.flush()


# ---- CSV / TSV -------------------------------------------------------------------------------


def _write_delimited(schema, batches, out, *, delimiter: str, **_):
    """csv/tsv: Python's csv module, CHUNK_ROWS rows a write. With cut.c built, the rows of two columns
    or more (one empty field is written ``""``) go to a UTF-8 stream (or one of text) as that module
    writes them (``NativeRows.delimited``: ~20 µs a row of the record's columns in Python)."""
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(schema.names)
    quoted = _csv_quoted(delimiter) if len(schema) > 1 and _utf8_or_text(out) else None
    for batch in batches:
        native = NativeRows.delimited(batch, delimiter, quoted, _text_cells) if quoted else None
        for at in range(0, batch.num_rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, batch.num_rows - at)
            lines = native.lines(at, n) if native is not None else None
            if lines is not None:
                _write_text_array(lines, out)
            else:
                writer.writerows(zip(*[_text_cells(arr, kind) for arr, kind in columns(batch.slice(at, n))]))
            out.flush()


@functools.lru_cache(maxsize=4)
def _csv_quoted(delimiter: str) -> bytes | None:
    """The bytes that make the running Python's csv module quote a field (256 flags), asked of it:
    the delimiter, the quote and a newline in 3.11 (a carriage return too in other versions). None
    when it would quote for a character past ASCII, or refuses one: then every row is left to it."""
    def quotes(c: str) -> bool:
        text = io.StringIO()
        csv.writer(text, delimiter=delimiter, lineterminator="\n").writerow([f"a{c}b", "x"])
        return text.getvalue().startswith('"')

    try:
        if any(quotes(c) for c in ("\x80", "é", "\u2028", "\U0001F600")):
            return None
        return bytes(quotes(chr(b)) for b in range(128)) + bytes(128)
    except csv.Error:  # a character it refuses (NUL in some versions): every row is left to it
        return None


def _utf8_or_text(out) -> bool:
    """Whether bytes written for ``out`` (``_write_text_array``) are what its own writes would be."""
    if getattr(out, "buffer", None) is None:
        return True  # (decoded, then written as text)
    try:
        return codecs.lookup(out.encoding or "").name == "utf-8"
    except LookupError:
        return False


# ---- table / markdown ------------------------------------------------------------------------

_UNSAFE_KINDS = {"str", "bytes", "list", "other"}  # kinds whose text may carry control characters


def _display_cells(batch: pa.RecordBatch, escape, plain=lambda c: c) -> list[list[str]]:
    """Each column's cells as text: ``escape`` of a text's, ``plain`` of a number's or a time's."""
    cols = []
    for arr, kind in columns(batch):
        cells = _text_cells(arr, kind)
        shown = escape if kind in _UNSAFE_KINDS else plain
        cols.append([shown(c) if c is not None else "" for c in cells])
    return cols


def _char_width(c: str) -> int:
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def display_width(s: str) -> int:
    """Terminal columns taken by ``s`` (wide East Asian characters count 2, combining marks 0)."""
    return len(s) if s.isascii() else sum(map(_char_width, s))


def _cut(s: str, width: int) -> str:
    """``s`` cut to ``width`` columns, ending in ``…`` when anything was dropped."""
    if display_width(s) <= width:
        return s
    if s.isascii():
        return s[: width - 1] + "…"
    used, end = 0, 0
    for end, c in enumerate(s):
        w = _char_width(c)
        if used + w > width - 1:
            break
        used += w
    return s[:end] + "…"


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_number(t: pa.DataType) -> bool:
    t = _value_type(t)
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _sample(batches: Iterator[pa.RecordBatch], rows: int) -> list[pa.RecordBatch]:
    head, n = [], 0
    for b in batches:
        head.append(b)
        n += b.num_rows
        if n >= rows:
            break
    return head


def _write_table(schema, batches, out, *, max_width, tty, **_):
    cap = max(1, max_width or DEFAULT_MAX_WIDTH)
    right = [_is_number(f.type) for f in schema]
    names = [escape_control(n) for n in schema.names]
    head = _sample(batches, WIDTH_SAMPLE_ROWS)
    head_cells = [_display_cells(b, escape_control) for b in head]
    widths = [min(cap, display_width(n)) for n in names]
    for cols in head_cells:
        for i, col in enumerate(cols):
            widths[i] = min(cap, max(widths[i], max(map(display_width, col), default=0)))
    # A later text value wider than the sampled width is cut; a later number or timestamp is not
    # (a cut one would read as a different value): it only pushes its row out of line.
    fixed = [column_kind(_value_type(f.type)) not in _UNSAFE_KINDS for f in schema]
    limits = [cap if f else w for f, w in zip(fixed, widths)]

    def line(cells: Iterable[str]) -> str:
        parts = []
        for cell, w, limit, r in zip(cells, widths, limits, right):
            cell = _cut(cell, limit)
            pad = " " * (w - display_width(cell))
            parts.append(pad + cell if r else cell + pad)
        return "  ".join(parts).rstrip() + "\n"

    header = line(names)
    out.write(f"\x1b[1m{header[:-1]}\x1b[0m\n" if tty else header)
    out.write("  ".join("-" * w for w in widths) + "\n")
    out.flush()
    for cols in itertools.chain(head_cells, (_display_cells(b, escape_control) for b in batches)):
        out.write("".join(map(line, zip(*cols))))
        out.flush()


def _write_markdown(schema, batches, out, *, max_width, **_):
    # (--max-width cuts a cell's text, then it is escaped: cut after, `abc|defg` to 5 was `abc\…`,
    # its `\|` cut in two, and read `abc\…`, a backslash the value has not)
    def cut(c: str) -> str:
        return _cut(c, max_width) if max_width else c

    def escape(c: str) -> str:
        return escape_markdown(cut(escape_control(c)))

    def row(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cells) + " |\n"

    out.write(row(escape(n) for n in schema.names))
    out.write(row("---:" if _is_number(f.type) else "---" for f in schema))
    out.flush()
    for batch in batches:
        out.write("".join(map(row, zip(*_display_cells(batch, escape, cut)))))
        out.flush()


# ---- YAML documents --------------------------------------------------------------------------


def _write_yaml(schema, batches, out, **_):
    """yaml: a result of one text column whose values are YAML documents (the query wrote them:
    service_entries' ServiceEntries) as one multi-document stream, each document after ``---``, as
    ``kubectl apply -f`` reads a file; null values are no document. Rows of other results are no YAML
    this writer could vouch for (it does not serialize values), so they are refused, before any output."""
    if len(schema) != 1 or column_kind(_value_type(schema[0].type)) not in ("str", "null"):
        shape = f"{len(schema)} columns" if len(schema) != 1 else f"a column of {schema[0].type}"
        raise UsageError(f"-o yaml writes the YAML documents of a query of one text column (as `logpipe query "
                         f"service_entries` gives them); this result has {shape}: use -o json, or -o ndjson")
    for batch in batches:
        docs = [d for d in batch.column(0).to_pylist() if d is not None]
        out.write("".join(f"---\n{d}" if d.endswith("\n") else f"---\n{d}\n" for d in docs))
        out.flush()


# ---- public entry points ---------------------------------------------------------------------

_WRITERS = {
    "table": _write_table,
    "csv": functools.partial(_write_delimited, delimiter=","),
    "tsv": functools.partial(_write_delimited, delimiter="\t"),
    "json": _write_json,
    "ndjson": _write_ndjson,
    "markdown": _write_markdown,
    "yaml": _write_yaml,
}


def render_table(
    table: Any,
    fmt: str,
    out: IO[str],
    *,
    max_width: int | None = None,
    tty: bool | None = None,
    schema: pa.Schema | None = None,
) -> None:
    """Write ``table`` to the text stream ``out`` in ``fmt`` (one of ``FORMATS``, or ``yaml`` for a
    table of one text column of YAML documents).

    ``max_width`` caps each column of ``table`` output (default 40; also cuts ``markdown`` cells
    when given). ``tty`` (default: ``out.isatty()``) makes the ``table`` header bold.
    ``schema`` is needed only for a plain iterable of batches that may be empty.
    """
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise UsageError(f"unknown output format {fmt!r}: use one of {', '.join(_WRITERS)}")
    if tty is None:
        isatty = getattr(out, "isatty", None)
        tty = bool(isatty and isatty())
    schema, batches = _open_batches(table, schema)
    # (the JSON and delimited writers take whole batches: they write CHUNK_ROWS rows at a time, their
    # columns read once a batch)
    whole = writer in (_write_ndjson, _write_json) or getattr(writer, "func", None) is _write_delimited
    writer(schema, batches if whole else _chunks(batches), out, max_width=max_width, tty=tty)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "xb", **open_args):
    """Open a hidden temporary file next to ``path`` and rename it over ``path`` when the block
    ends, fsynced; on any error or Ctrl-C the temporary file goes and the old ``path`` stays. A
    ``path`` that is a link to a file: that file is replaced, the link stays. One that is not a file
    (``/dev/stdout``, ``/dev/null``, a pipe: ``--out >(gzip > r.json.gz)``) is written to as it is:
    the rename replaced it with a file (as root, ``--out /dev/stdout`` replaced the link in /dev)."""
    import stat

    path = os.fspath(path)
    try:
        kind = os.stat(path).st_mode  # (through links: /dev/stdout's to the process's own descriptor)
    except OSError:
        kind = None
    through = None  # (the mode of a path written to as it is)
    if kind is not None and not stat.S_ISREG(kind):
        through = mode.replace("x", "w")
    elif kind is not None and _names_descriptor(path):
        # (/dev/stdout of `>> FILE` or `> FILE`: the shell's file, written to as it is, appended to: its
        # link followed, FILE was replaced, what `>>` had gathered in it lost; "w" would truncate it)
        through = mode.replace("x", "a")
    if through is not None:
        try:
            opened = open(path, through, **open_args)
        except OSError as e:  # (/dev/stdout of a socket, a service's journal: ENXIO was an internal error)
            raise UsageError(f"cannot write {path}: {e.strerror or e}; choose another --out") from None
        with opened as f:
            yield f
        return
    if kind is not None and os.path.islink(path):
        path = os.path.realpath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        opened = open(tmp, mode, **open_args)  # "x": never clobber; honours the umask, unlike mkstemp
    except OSError as e:  # (a directory that is not there, or not writable: the user's --out)
        gone = isinstance(e, FileNotFoundError) and not os.path.isdir(directory or ".")
        why = "its directory does not exist" if gone else e.strerror or str(e)
        raise UsageError(f"cannot write {path}: {why}; choose another --out") from None
    try:
        with opened as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if full := no_space(e):  # (a disk that filled up as it was written: not a bug; the old file stays)
            raise LogpipeError(f"cannot write {path}: {full}; free space or choose another --out") from None
        raise


def _names_descriptor(path: str) -> bool:
    """Whether ``path`` is, or links through, a process's open descriptor (``/dev/stdout``,
    ``/dev/fd/N``, ``/proc/self/fd/N``) rather than naming a file."""
    path = os.path.abspath(path)
    for _ in range(40):  # (the links' chain: /dev/stdout -> /proc/self/fd/1 -> the shell's file)
        if path.startswith(("/proc/", "/dev/fd/")):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def parquet_out(path: str | os.PathLike[str] | None) -> None:
    """Refuse ``-o parquet`` to stdout (``path`` None: no ``--out``, or ``--out -``) on a terminal;
    into a pipe or a redirect it is written there (``write_parquet``). It was refused everywhere, with
    ``add --out FILE.parquet`` to a user who had given ``--out -``, which ``--help`` calls stdout."""
    if path is None and sys.stdout.isatty():
        raise UsageError("-o parquet is binary, not for the terminal: give --out FILE.parquet, or redirect "
                         "stdout (> FILE.parquet, | …)")


def write_parquet(table: Any, path: str | os.PathLike[str] | None, *, schema: pa.Schema | None = None,
                  options: dict | None = None) -> None:
    """Write ``table`` to ``path`` as zstd Parquet, atomically (``atomic_file``), or to stdout (``path``
    None: Parquet is written front to back, a pipe takes it); ``options``: ``pq.ParquetWriter``'s,
    else zstd and its defaults."""
    import pyarrow.parquet as pq  # (here: ~15 ms of every command's start otherwise)

    if path is None:
        sys.stdout.flush()
    with atomic_file(path, "xb") if path is not None else contextlib.nullcontext(sys.stdout.buffer) as f:
        schema, batches = _open_batches(table, schema)
        with pq.ParquetWriter(f, schema, **(options or {"compression": "zstd"})) as writer:
            _write_behind(writer, _row_groups(batches, schema))
        if path is None:
            f.flush()


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """``batches`` gathered into tables of ROW_GROUP_ROWS rows or more (the last may hold fewer):
    each write is at least one row group, so small streamed batches are gathered first."""
    buffered: list[pa.RecordBatch] = []
    for batch in batches:
        buffered.append(batch)
        if sum(b.num_rows for b in buffered) >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(buffered, schema)
            buffered = []
    if buffered:
        yield pa.Table.from_batches(buffered, schema)


def _write_behind(writer: Any, tables: Iterator[pa.Table]) -> None:
    """``writer.write_table`` of each of ``tables``, on a thread of its own, while this thread makes
    the next ones (``logpipe parse``: waits for the lanes' batches and hands them more tasks, which
    otherwise wait for each write). `parse -o parquet` of the bench's 1M lines, 8 alternating pairs:
    wall 2.58 against 2.93 s; its peak RSS ~+55 MiB (the row group that waits, the tasks ahead)."""
    import queue
    import threading

    handed: queue.Queue = queue.Queue(maxsize=1)  # (the rows held meanwhile: one row group waits)
    failed: list[BaseException] = []

    def write() -> None:
        while (table := handed.get()) is not None:
            if not failed:
                try:
                    writer.write_table(table)
                except BaseException as e:  # noqa: BLE001 - raised in the calling thread
                    failed.append(e)

    thread = threading.Thread(target=write, name="logpipe-parquet-writer", daemon=True)
    thread.start()
    try:
        for table in tables:
            if failed:
                break
            handed.put(table)
    finally:
        handed.put(None)
        thread.join()
    if failed:
        raise failed[0]
