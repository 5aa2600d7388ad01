"""Arrow columns as JSON text, a whole column at a time, and Python values by the same conventions.

``json_line_batches`` assembles one compact, ASCII-only JSON object per row. With cut.c built
(``NativeRows``) it writes strings (escaped), lists of strings, 32- and 64-bit ints and times in µs
itself, from the columns' buffers; other columns are made JSON text first. Without it, or for what C
does not write, Arrow kernels do (ints, timestamps, ASCII strings, lists of them), and only columns
that need it (non-ASCII text, floats, nested values) go through ``to_pylist`` and Python's C JSON
encoder: the same output every way. ``logpipe/render.py`` writes it (json, ndjson) and shares the
column kinds (``columns``).
"""
from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import math
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii as _json_str  # C-accelerated in CPython
from typing import Any

import pyarrow as pa

from . import arrowpl as _arrowpl

# pyarrow.compute is imported where it is used: with cut.c built, JSON rows are written without it,
# and its import is ~50 ms of a small `logpipe parse`'s start-up (arrowpl.cast).


def _iso_datetime(d: dt.datetime) -> str:
    suffix = ""
    if d.tzinfo is not None:
        d, suffix = d.astimezone(dt.timezone.utc).replace(tzinfo=None), "Z"
    frac = f"{d.microsecond:06d}"
    return f"{d.replace(microsecond=0).isoformat()}.{frac[:3] if frac.endswith('000') else frac}{suffix}"


def to_jsonable(value: Any) -> Any:
    """One Python value (as from ``to_pylist``) → something ``json.dumps`` accepts, by the conventions.

    Datetimes become ISO-8601 (UTC with ``Z``, microseconds trimmed to milliseconds when the rest is
    zero), bytes UTF-8 with backslash escapes, non-finite floats ``None``, timedeltas seconds,
    intervals ISO-8601 durations, integral decimals ints, containers recursively.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return _iso_datetime(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, pa.MonthDayNano):  # DuckDB INTERVAL: ISO-8601 duration, e.g. P0M3DT1.5S
        seconds, nanos = divmod(abs(value.nanoseconds), 10**9)
        sign = "-" if value.nanoseconds < 0 else ""
        fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
        return f"P{value.months}M{value.days}DT{sign}{seconds}{fraction}S"
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pa.Scalar):
        return to_jsonable(value.as_py())
    if hasattr(value, "item"):  # numpy scalars (float16 columns)
        return to_jsonable(value.item())
    return str(value)


JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
JSON_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def column_kind(t: pa.DataType) -> str:
    T = pa.types
    if T.is_null(t):
        return "null"
    if T.is_boolean(t) or T.is_integer(t) or T.is_decimal(t):
        return "number"  # Arrow's cast to string is already the JSON spelling
    if T.is_floating(t):
        return "float"
    if T.is_string(t) or T.is_large_string(t) or T.is_string_view(t):
        return "str"
    if T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t) or T.is_binary_view(t):
        return "bytes"
    if T.is_timestamp(t):
        return "ts"
    if T.is_list(t) or T.is_large_list(t) or T.is_fixed_size_list(t) or T.is_list_view(t):
        return "list"
    return "other"


def columns(batch: pa.RecordBatch) -> Iterator[tuple[pa.Array, str]]:
    for arr in batch.columns:
        if pa.types.is_dictionary(arr.type):  # polars categoricals: dictionary<uint32, string_view>
            values = arr.dictionary
            if pa.types.is_string_view(values.type) or pa.types.is_binary_view(values.type):
                values = _arrowpl.cast(values, pa.string() if pa.types.is_string_view(values.type) else pa.binary())
            arr = values.take(arr.indices)
        yield arr, column_kind(arr.type)


@functools.cache
def const(text: str) -> pa.Scalar:
    """A string constant as an Arrow scalar, made once: passing Python ``str`` to a compute
    function converts it on every call, and that conversion retries a failing optional import."""
    return pa.scalar(text, pa.string())


_ZERO = pa.scalar(0, pa.int32())


def iso_array(arr: pa.Array) -> pa.Array:
    """Timestamps → ISO-8601 strings, vectorized; tz-aware columns are shown in UTC with ``Z``.

    Arrow's cast of a naive microsecond timestamp to string (``2024-07-18 16:13:58.198000``) is
    ~30x faster than ``strftime``; the space becomes ``T`` and ``000`` microseconds are trimmed. A
    year past 9999 or before 1 has more or other digits (``10025-03-01``, ``-0005-03-01``): the
    space is found, not assumed at the 11th character."""
    import pyarrow.compute as pc

    text = arr.cast(pa.timestamp("us"), safe=False).cast(pa.string())
    s = pc.replace_substring(text, pattern=" ", replacement="T", max_replacements=1)
    s = pc.if_else(pc.ends_with(s, pattern="000"), pc.utf8_slice_codeunits(s, start=0, stop=-3), s)
    return pc.binary_join_element_wise(s, const("Z"), const("")) if arr.type.tz is not None else s


# Up to this many times are made text by Python (``iso_texts``): a terminal's table of a few rows then
# needs no pyarrow.compute, whose import is ~50 ms.
ISO_BY_PYTHON_ROWS = 1000


def iso_texts(arr: pa.Array) -> list[str | None]:
    """``iso_array``'s texts as Python strings (None for a null); a short column of µs times is
    made so by Python (``_iso_datetime``, the same text: tests/test_render.py), unless a time is out
    of Python's years."""
    if len(arr) <= ISO_BY_PYTHON_ROWS and arr.type.unit == "us":
        try:
            return [None if v is None else _iso_datetime(v) for v in arr.to_pylist()]
        except (OverflowError, ValueError):
            pass
    return iso_array(arr).to_pylist()


# ---- JSON text, column-wise ----------------------------------------------------------------


def _json_plain(arr: pa.Array) -> pa.Array | None:
    """JSON string texts of ``arr`` computed in Arrow, or None when some value has a character
    outside printable ASCII (those need ``\\uXXXX`` escapes: Python's C encoder does them)."""
    import pyarrow.compute as pc

    if pc.all(pc.ascii_is_printable(arr)).as_py() is False:  # None: empty or all null
        return None
    for char, escape in (("\\", "\\\\"), ('"', '\\"')):
        if pc.any(pc.match_substring(arr, char)).as_py():  # most columns hold neither
            arr = pc.replace_substring(arr, char, escape)
    return pc.binary_join_element_wise(const('"'), arr, const('"'), const(""))


def _json_plain_list(arr: pa.Array) -> pa.Array | None:
    """Like ``_json_plain`` for a list of strings whose items need no escape at all."""
    import pyarrow.compute as pc

    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        return None
    if not pa.types.is_string(arr.type.value_type):
        return None
    items = pc.list_flatten(arr)
    if items.null_count or pc.all(pc.ascii_is_printable(items)).as_py() is False:
        return None
    if pc.any(pc.match_substring(items, '"')).as_py() or pc.any(pc.match_substring(items, "\\")).as_py():
        return None
    joined = pc.binary_join_element_wise(const('["'), pc.binary_join(arr, const('","')), const('"]'), const(""))
    return pc.if_else(pc.equal(pc.list_value_length(arr), _ZERO), const("[]"), joined)


def _json_cells(arr: pa.Array, kind: str) -> list[str]:
    """One column → its JSON texts (``"null"`` for nulls), in Python: the general path."""
    vals = arr.to_pylist()
    if kind == "str":
        return [_json_str(v) if v is not None else "null" for v in vals]
    if kind == "float":
        return [repr(v) if v is not None and math.isfinite(v) else "null" for v in vals]
    if kind == "bytes":
        return [_json_str(v.decode("utf-8", "backslashreplace")) if v is not None else "null" for v in vals]
    return [JSON(to_jsonable(v)) if v is not None else "null" for v in vals]


def _json_array(arr: pa.Array, kind: str) -> pa.Array:
    """One column → a string array of JSON texts, without nulls. The common column types (ints,
    timestamps, ASCII strings, lists of ASCII strings) never leave Arrow. Floats, and booleans and
    decimals without a null (the columns of a query's result cut.c leaves to this), need no
    pyarrow.compute, whose import is ~50 ms of a small `logpipe query -o json`'s start-up."""
    frag = None
    if kind == "null":
        return pa.array(["null"] * len(arr), pa.string())
    if kind == "number":
        frag = _arrowpl.cast(arr, pa.string())
    elif kind == "ts":
        import pyarrow.compute as pc

        frag = pc.binary_join_element_wise(const('"'), iso_array(arr), const('"'), const(""))
    elif kind == "str":
        frag = _json_plain(arr.cast(pa.string()))
    elif kind == "list":
        frag = _json_plain_list(arr)
    if frag is None:
        return pa.array(_json_cells(arr, kind), pa.string())
    if not frag.null_count:
        return frag
    import pyarrow.compute as pc

    return pc.fill_null(frag, const("null"))


def json_line_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch], end: str = "}",
                      rows: int | None = None) -> Iterator[pa.Array]:
    """Per batch (per ``rows`` rows of it, when given), a string array of one JSON object per row,
    assembled column-wise; each row ends with ``end``. With cut.c built (logpipe/native.py) the rows
    are assembled, and their values written, in one pass in C (~10x faster than joining ~120 Arrow
    columns; a batch's columns are prepared once for all its pieces); else in Arrow."""
    texts = [_json_str(name) + ":" for name in schema.names]
    texts = ["{" + k if i == 0 else "," + k for i, k in enumerate(texts)]
    keys = [const(k) for k in texts]
    for batch in batches:
        n = batch.num_rows
        native = NativeRows.of(texts, batch, end)
        for at in range(0, n, rows or max(n, 1)):
            m = min(rows or n, n - at)
            lines = native.lines(at, m) if native is not None else None
            if lines is not None:
                yield lines
                continue
            import pyarrow.compute as pc

            parts: list[Any] = []
            for key, (arr, kind) in zip(keys, columns(batch.slice(at, m))):
                parts += [key, _json_array(arr, kind)]
            yield pc.binary_join_element_wise(*parts, const(end), const("")) if parts else \
                pa.array(["{" + end] * m, pa.string())


# cut.c's kinds of column (logpipe_json_lines): by column_kind, or by it and the Arrow type's id.
JSON_FRAGMENT, JSON_STRING, JSON_INT32, JSON_INT64, JSON_TIME_Z, JSON_TIME, JSON_STRINGS = range(7)
_NATIVE_KINDS = {"str": JSON_STRING, ("number", pa.int32().id): JSON_INT32, ("number", pa.int64().id): JSON_INT64,
                 ("ts", pa.timestamp("us").id): JSON_TIME, ("list", pa.list_(pa.string()).id): JSON_STRINGS}


class NativeRows:
    """A batch's rows as text by cut.c: JSON objects (``of``: ``logpipe_json_lines``) or csv/tsv
    rows (``delimited``: ``logpipe_delimited_lines``). Its columns are read once
    (``_native_column``), then ``lines`` writes any run of its rows. Strings and lists of strings
    are escaped (or quoted) there, and 32- and 64-bit ints and times in µs written from their values
    (Arrow's casts to text cost more than the whole assembly); every other column is first made text
    by Python (``_json_array``, or the csv writer's cells)."""

    def __init__(self, lib, parts: list[tuple], call, head: tuple):
        import ctypes

        from . import native

        self._keep, self._call = parts, call
        ptrs = ctypes.c_void_p * len(parts)
        empty = pa.allocate_buffer(1)
        self._empty = empty

        def addresses(i: int, none=None):
            return ptrs(*[p[i].address if p[i] is not None else none for p in parts])

        self._args = (len(parts), native.int32s(p[0] for p in parts), addresses(1), addresses(2),
                      addresses(3, empty.address), (ctypes.c_int64 * len(parts))(*[p[4] for p in parts]), *head)
        self._items = (addresses(5), addresses(6), addresses(7, empty.address),
                       (ctypes.c_int64 * len(parts))(*[p[8] for p in parts]))
        self._need = ctypes.c_int64(0)

    @classmethod
    def of(cls, keys: list[str], batch: pa.RecordBatch, end: str) -> "NativeRows | None":
        """JSON objects, each row ``keys[0]`` value ``keys[1]`` value … ``end``. None when there is
        no library, no column or no row, or a column over 2 GiB of text."""
        from . import native

        lib, parts = _native_parts(batch, _json_array)
        if parts is None:
            return None
        key_bytes = [k.encode() for k in keys]
        key_offs = [0]
        for k in key_bytes:
            key_offs.append(key_offs[-1] + len(k))
        head = (b"".join(key_bytes), native.int32s(key_offs), end.encode(), len(end.encode()))
        return cls(lib, parts, lib.logpipe_json_lines, head)

    @classmethod
    def delimited(cls, batch: pa.RecordBatch, delimiter: str, quoted: bytes, cells) -> "NativeRows | None":
        """csv/tsv rows, each ending in a newline: fields separated by ``delimiter`` (one ASCII
        character), quoted when they hold a byte ``quoted`` marks; ``cells(arr, kind)`` gives the
        text of the columns C does not write (None for a null). None as for ``of``."""
        lib, parts = _native_parts(batch, lambda arr, kind: pa.array(cells(arr, kind), pa.string()), null_items=False)
        if parts is None:
            return None
        return cls(lib, parts, lib.logpipe_delimited_lines, (ord(delimiter), quoted))

    def lines(self, at: int, n: int) -> pa.Array | None:
        """Rows ``at`` to ``at + n``; None when C cannot write them (text that is not valid UTF-8, a
        time out of years 1 to 9999, over 2 GiB of it): then Python does."""
        import ctypes

        need = ctypes.byref(self._need)
        offs = pa.allocate_buffer(4 * (n + 1))
        self._call(n, *self._args, None, offs.address, *self._items, at, 0, need)  # (the most they can take)
        if self._need.value >= 2**31:
            return None
        out = pa.allocate_buffer(max(self._need.value, 1))
        written = self._call(n, *self._args, out.address, offs.address, *self._items, at, out.size, need)
        if written < 0:
            return None
        return pa.Array.from_buffers(pa.string(), n, [None, offs, out.slice(0, max(written, 1))])


def _native_parts(batch: pa.RecordBatch, fragment, null_items: bool = True) -> tuple:
    """(the library, ``batch``'s columns as ``_native_column`` reads them), or (None, None) when
    there is no library, no column or no row, or a column over 2 GiB of text."""
    from . import native

    lib = native.library()
    if lib is None or not batch.num_columns or not batch.num_rows:
        return None, None
    try:
        return lib, [_native_column(arr, kind, fragment, null_items) for arr, kind in columns(batch)]
    except (pa.ArrowInvalid, pa.ArrowCapacityError):  # a column over 2 GiB of text
        return None, None


def _native_column(arr: pa.Array, kind: str, fragment=_json_array, null_items: bool = True) -> tuple:
    """A column as ``logpipe_json_lines`` (and ``logpipe_delimited_lines``) reads it: (its kind
    there; validity, offsets and data buffers and first row; its items' validity, offsets and data
    buffers and first item (lists of strings)). A column C does not write is made text first by
    ``fragment(arr, kind)``; so is a list with a null item unless ``null_items`` (C's csv writes one
    empty, render.NULL_ITEM is Python's: its items, all of them, are looked at, not the slice's)."""
    native_kind = _NATIVE_KINDS.get((kind, arr.type.id), _NATIVE_KINDS.get(kind))
    if native_kind == JSON_STRINGS and (arr.type != pa.list_(pa.string()) or arr.buffers()[1] is None
                                        or not null_items and arr.values.null_count):
        native_kind = None
    if native_kind in (JSON_INT32, JSON_INT64, JSON_TIME) and arr.buffers()[1] is None:  # (all null)
        native_kind = None
    if native_kind == JSON_TIME and arr.type.unit != "us":
        native_kind = None
    if native_kind is None:  # its text made by Python first
        arr, native_kind = fragment(arr, kind), JSON_FRAGMENT
    validity = arr.buffers()[0]
    if native_kind in (JSON_FRAGMENT, JSON_STRING):
        arr = _arrowpl.cast(arr, pa.string()) if arr.type != pa.string() else arr
        return (native_kind, arr.buffers()[0], arr.buffers()[1], arr.buffers()[2], arr.offset, None, None, None, 0)
    if native_kind == JSON_STRINGS:
        items = arr.values  # (all of them, from its own offset: the lists' offsets index them)
        return (native_kind, validity, arr.buffers()[1], None, arr.offset, items.buffers()[0], items.buffers()[1],
                items.buffers()[2], items.offset)
    if native_kind == JSON_TIME and arr.type.tz is not None:
        native_kind = JSON_TIME_Z
    return (native_kind, validity, None, arr.buffers()[1], arr.offset, None, None, None, 0)


def text_bounds(a: pa.Array) -> tuple[int, int]:
    """The first and last offsets of a string array's text (its slice of the data buffer)."""
    bounds = pa.Array.from_buffers(pa.int32(), len(a) + 1, [None, a.buffers()[1]], offset=a.offset)
    return bounds[0].as_py(), bounds[-1].as_py()
