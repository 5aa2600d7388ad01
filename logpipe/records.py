"""Stage 1, second half: the one place text becomes typed columns.

``type_columns`` types the text columns of parsed lines into RECORD_SCHEMA (or a custom layout's
schema): ``-`` and empty text become null here and only here, numbers are cast, flags split, times
parsed; a value that cannot be typed makes the line a reject, never a silent null. Rejects are built
here too, as REJECT_SCHEMA batches.
"""
from __future__ import annotations

import datetime as dt
import functools

import polars as pl
import pyarrow as pa

from . import arrowpl as _arrowpl
from .schema import LIST_COLUMNS, RECORD_SCHEMA, REJECT_SCHEMA, view_schema

TIME_COLUMNS = {f.name for f in RECORD_SCHEMA if pa.types.is_timestamp(f.type)}
# Times a record may hold: those every reader can (Python's datetime, years 1 to 9999). polars also
# reads year 0 and signed years ("-2024-…" in a JSON line), which then broke every later step.
TIME_RANGE = (dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
              dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc))


def type_columns(df: pl.DataFrame | list | None, source: str, schema: pa.Schema = RECORD_SCHEMA,
                 views: bool = False) -> tuple[pa.RecordBatch, list[dict]]:
    """Type the text columns of parsed lines into RECORD_SCHEMA. ``-`` and empty text become null
    here and nowhere else (cut.c types some columns as it cuts them, ``nativecut.Types``, and nulls
    those of a JSON line as it reads them, ``jsonlog.NULLED_KEYS``, by these rules: they arrive typed,
    or nulled). Lines with a value that cannot be typed are returned as
    rejects. ``df`` may be a list of frames whose columns differ in type (typed by cut.c or not),
    each typed alone, or of (frame, names of its string columns already nulled) pairs. ``views``:
    the batch's strings as Arrow string views (``schema.view_schema``), not cast to strings."""
    pairs = [f if isinstance(f, tuple) else (f, frozenset()) for f in (df if isinstance(df, list) else [df])]
    pairs = [(f, nulled) for f, nulled in pairs if f is not None and f.height]
    out = view_schema(schema) if views else schema
    if not pairs:
        return _empty_records(out), []
    typed, rejects = [], []
    for frame, nulled in pairs:
        got, more = _type_frame(frame, source, schema, nulled)
        typed.append(got)
        rejects.extend(more)
    typed_df = typed[0] if len(typed) == 1 else pl.concat(typed, how="diagonal_relaxed")
    if not typed_df["line_number"].is_sorted():  # only batches that mixed paths need the gather
        typed_df = typed_df.sort("line_number")
    return _to_record_batch(typed_df, schema, out), rejects


def _type_frame(df: pl.DataFrame, source: str, schema: pa.Schema,
                nulled: frozenset = frozenset()) -> tuple[pl.DataFrame, list[dict]]:
    """``type_columns`` of one frame, as a polars frame (not yet in the schema's order)."""
    # One lazy query (one pass through polars, common sub-expressions computed once): the
    # per-call overhead of ~100 eager operations would cost as much as the work on a small batch.
    # Its expressions depend only on the columns and the schema: built once (~3 ms of Python each).
    nulls, exprs, bad, typed_names = _typing_exprs(tuple(df.schema.items()), schema, nulled)
    lf = df.lazy().with_columns(nulls)
    typed_df = lf.select("line_number", "raw", *exprs, pl.lit(source, dtype=pl.String).alias("source"),
                         bad.alias("__bad")).collect()
    from .collectors import node_log_names  # (collectors reaches records through fastpath and exact)

    names = node_log_names(source)
    if names is not None and "pod" in typed_df.columns:  # (a line's own prefix wins)
        typed_df = typed_df.with_columns(pl.col("pod").fill_null(names[0]), pl.col("container").fill_null(names[1]))
    rejects: list[dict] = []
    bad = typed_df.drop_in_place("__bad")
    for name in (n for n in typed_names if n in TIME_COLUMNS):
        text = typed_df[name]
        if text.dtype != pl.String:  # typed by cut.c, in range
            continue
        if text.null_count() == text.len():  # (received_at of lines without a kubectl time: no reading)
            typed_df = typed_df.with_columns(text.cast(pl.Datetime("us", "UTC")))
            continue
        times = read_times(text)
        # not a time (null), or year 0 or -2024 (polars reads them; no later step could)
        wild = text.is_not_null() & (times.is_null() | ~times.is_between(*TIME_RANGE))
        if wild.any():
            bad = bad | wild
            times = pl.when(wild).then(None).otherwise(times)
        typed_df = typed_df.with_columns(times.alias(name))
    if bad.any():  # a value that was there and cannot be typed: the line is a reject
        texts = lf.filter(bad).collect()
        for row, text in zip(typed_df.filter(bad).iter_rows(named=True), texts.iter_rows(named=True)):
            name = next(n for n in typed_names if text[n] is not None and row[n] is None)
            value = str(text[name])
            why, at = f"invalid value: {name}: cannot read {value[:40]}", None
            if name in TIME_COLUMNS:  # (an ISO-8601 time with a part no time has: month 13, February 30)
                from .layouts import ISO_TIME_SPEC, time_fault_reason

                fault = time_fault_reason(name, ISO_TIME_SPEC, value, f"read as ISO-8601 ({ISO_TIME_SPEC})")
                if fault is not None:
                    why, at = fault
            if value.isascii() and value.isdigit() and typed_df[name].dtype.is_integer():  # (a count past its type's range)
                kind = typed_df[name].dtype
                why = (f"invalid value: {name}: {value[:40]} is out of range (at most {kind.max()}: the column "
                       f"is a {str(kind)[3:]}-bit int)")
            rejects.append(_reject(row["line_number"], row["raw"], why, "malformed") | ({AT: at} if at else {}))
        typed_df = typed_df.filter(~bad)
    return typed_df, rejects


# The times of every record: Envoy's %START_TIME% (UTC, milliseconds), or any ISO-8601 time with its
# offset (a JSON line, a custom format's time column).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
# Where Arrow's ISO-8601 cast and polars' TIME_FORMAT read a text alike (tests/test_times.py: a fuzz
# of both): date, "T", time with seconds, at most 6 digits of fraction, "Z" or an offset. Arrow's cast
# costs ~0.03 µs a time, polars' ~0.3 µs (a twentieth of a line's whole cost).
ISO_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})$"


def read_times(text: pl.Series) -> pl.Series:
    """ISO-8601 texts as UTC times (µs), null where a text is no time. By Arrow's cast when every
    text has ISO_SHAPE and Arrow reads them all (it fails a whole column, e.g. on a leap second or
    February 30), else by polars with TIME_FORMAT: the same times either way."""
    if text.null_count() < text.len() and text.str.contains(ISO_SHAPE).all():
        try:
            return _arrowpl.series(_arrowpl.cast(text.to_arrow(), pa.timestamp("us", "UTC")), text.name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return text.str.to_datetime(TIME_FORMAT, time_unit="us", time_zone="UTC", strict=False)


@functools.lru_cache(maxsize=64)
def _typing_exprs(kinds: tuple, schema: pa.Schema, nulled: frozenset = frozenset()) -> tuple[list, list, pl.Expr, list[str]]:
    """``type_columns``' expressions for text columns ``kinds`` ((name, dtype) pairs): the
    nulling of ``-`` and empty text (but of the string columns ``nulled`` already), the typed
    columns, whether a row holds a value that did not type, and the names of the typed columns."""
    kinds = dict(kinds)
    # A list column keeps its text here: "-" (Envoy's "none") is an empty list, null (a JSON null, an
    # absent key) stays null (unknown), whatever the other lines of the batch carry.
    ints = {f.name for f in schema if pa.types.is_integer(f.type)} - {"line_number"}  # (a custom format's counts too)
    text_cols = [c for c in kinds if c not in ("line_number", "prefix_len", "raw") and c not in LIST_COLUMNS
                 and not _typed_already(c, kinds[c], ints) and not (c in nulled and kinds[c] == pl.String)]
    cols = [pl.col(c).cast(pl.String) if kinds[c] != pl.String else pl.col(c) for c in text_cols]
    nulls = [null_empty(c).alias(name) for c, name in zip(cols, text_cols)]
    exprs, checks, typed_names = [], [], []
    for f in schema:
        name = f.name
        if name in ("line_number", "source") or name not in kinds:
            continue
        col = pl.col(name)
        if _typed_already(name, kinds[name], ints):  # (by cut.c: no cast, nothing that could fail to type)
            exprs.append(col)
            continue
        if name in TIME_COLUMNS:  # typed after the query (read_times): kept as text here
            exprs.append(col)
            typed_names.append(name)
            continue
        elif f.type == pa.int32():
            typed = col.cast(pl.Int32, strict=False)
        elif f.type == pa.int64():
            typed = col.cast(pl.Int64, strict=False)
        elif name in LIST_COLUMNS:  # (a split cannot fail: no check)
            col = col.cast(pl.String)
            none = col.is_in(["-", ""])
            exprs.append(pl.when(none).then(pl.lit([], dtype=pl.List(pl.String))).otherwise(col.str.split(",")).alias(name))
            continue
        else:
            exprs.append(col)
            continue
        exprs.append(typed.alias(name))
        checks.append(col.is_not_null() & typed.is_null())
        typed_names.append(name)
    bad = pl.any_horizontal(checks) if checks else pl.lit(False)
    return nulls, exprs, bad, typed_names


def null_empty(text: pl.Expr) -> pl.Expr:
    """``text`` with ``-`` (Envoy's "none") and empty text null: the one rule (cut.c applies it too,
    ``nativecut.Types``)."""
    return pl.when((text == "-") | (text == "")).then(None).otherwise(text)


def _typed_already(name: str, dtype: pl.DataType, ints: set) -> bool:
    """Whether a column arrives typed (cut.c, ``nativecut.Types``): no text to null or read. ``ints``:
    the schema's int columns."""
    return (name in TIME_COLUMNS and dtype == pl.Datetime("us", "UTC")) or (name in ints and dtype.is_integer())


def _to_record_batch(df: pl.DataFrame, schema: pa.Schema = RECORD_SCHEMA, out: pa.Schema | None = None) -> pa.RecordBatch:
    """``df``'s columns of ``schema`` as an Arrow batch of ``out`` (``schema``'s types, or its view types)."""
    out = out or schema
    # polars hands out string views without copying; one cast to the schema's types is then ~8x
    # cheaper than polars' own conversion to large strings followed by a cast.
    present = [n for n in schema.names if n in df.columns]
    table = df.select(present).to_arrow(compat_level=pl.CompatLevel.newest())
    if not table.num_rows:
        return _empty_records(out)
    # The schema's columns the lines did not have are Arrow's null arrays of their type, not polars'
    # null literals (the 9 a waypoint line lacks: 2.83 → 2.42 ms a 52k-line batch, medians of 60).
    # The columns already of their type are not cast: ~30 µs each of a batch's fixed cost.
    have = dict(zip(present, table.columns))
    columns = [pa.nulls(table.num_rows, f.type) if f.name not in have
               else have[f.name] if have[f.name].type == f.type else _arrowpl.cast(have[f.name], f.type) for f in out]
    return pa.Table.from_arrays(columns, schema=out).combine_chunks().to_batches()[0]


def _empty_records(schema: pa.Schema = RECORD_SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


# ---- rejects: lines that end as no row (REJECT_SCHEMA) ----------------------------------------------


# A reject's key for its column not yet known (``value_columns``): the value and its character that is wrong
AT = "__at"


def value_columns(rejects: list[dict], lines: dict[int, tuple[str, int | None]]) -> None:
    """The columns of ``rejects`` that name a value's character (``AT``), counted as the other rejects'
    are (exact.take_lines: in the line past its prefix, plus the prefix's length): ``lines``, line
    number -> that line's body and prefix length, a collector's record's text's, not the record's
    (counted in the reject's raw, a Fluent Bit record's was its column 82 where the line's is 7)."""
    for r in rejects:
        if AT in r:
            value, at = r.pop(AT)
            body, plen = lines.get(r["line_number"], ("", 0))
            k = body.find(value)
            r["column"] = None if k < 0 else (plen or 0) + k + at + 1


def _reject(line_number: int, raw: str, reason: str, cls: str, column: int | None = None) -> dict:
    return {"line_number": line_number, "raw": raw, "reason": reason, "class": cls, "column": column}


def _row(fields: dict, line_number: int, raw: str, layout: str, pod, container, received_at) -> dict:
    """A row the exact path read (``fields``, by Lark or json.loads) with its provenance: _reject's
    counterpart."""
    fields.update(line_number=line_number, raw=raw, log_format=layout, pod=pod, container=container,
                  received_at=received_at)
    return fields


def _rejects_batch(rejects: list[dict], source: str) -> pa.RecordBatch:
    rejects.sort(key=lambda r: r["line_number"])
    for r in rejects:
        r["source"] = source
        r["raw"] = r["raw"].rstrip("\n")
    return pa.RecordBatch.from_pylist(rejects, schema=REJECT_SCHEMA)

