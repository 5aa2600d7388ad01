"""The dataset's Parquet part files (``logpipe/dataset.py`` keeps the manifest that makes them
visible): rows split by the UTC day of their ``start_time`` (``day_partitions``) into
``DATA/date=YYYY-MM-DD/`` (or ``date=unknown``), rejected lines into ``DATA/_rejects/``, each file
written hidden as ``.<final>.tmp`` and fsynced (``stage_files``); the manifest's commit renames them.

How a part is written: zstd, one row group per DuckDB task (``ROW_GROUP_ROWS``), no Arrow schema in
the file (its Parquet types read back as the record's, whether the rows were strings or ingest's
string views), a dictionary for every column whose values repeat, delta encodings for the numbers,
times and ids that do not (``UNIQUE_COLUMNS``), and min/max statistics where they prune row groups.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import arrowpl as _arrowpl
from .schema import RECORD_SCHEMA, REJECT_SCHEMA, view_schema

REJECTS_DIR = "_rejects"
UNKNOWN_DATE = "unknown"
ROW_GROUP_ROWS = 122_880  # DuckDB's row-group size: one row group per thread task


def _record_schema_for(table: pa.Table) -> pa.Schema:
    """RECORD_SCHEMA and ``table``'s extra columns after it: text, but a custom format's counts,
    which stay 64-bit ints (``layouts.CustomLayout.counts``)."""
    extra = [pa.field(n, pa.int64() if pa.types.is_integer(table.schema.field(n).type) else pa.string())
             for n in table.column_names if n not in RECORD_SCHEMA.names]
    return pa.schema(list(RECORD_SCHEMA) + extra) if extra else RECORD_SCHEMA


def _as_table(data: pa.Table | pa.RecordBatch, schema: pa.Schema | None = None) -> pa.Table:
    """``data`` in ``schema`` (default: the record's, and its extra string columns after it; as
    string views when ``data`` holds them, as ingest's lanes give them: ``schema.view_schema``)."""
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    if schema is None:
        schema = _record_schema_for(table)
        if _holds_views(table.schema):
            schema = view_schema(schema)
    have = set(table.column_names)  # (a property that builds its list anew: 2 s of a merge of 600 files)
    missing = [f for f in schema if f.name not in have]
    for f in missing:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    table = table.select(schema.names)
    # (a lane's rows are of their schema already: Table.cast would import pyarrow.compute, ~20 ms)
    return table if table.schema.equals(schema, check_metadata=True) else table.cast(schema)


def day_partitions(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """Split rows by UTC day of ``start_time``: ``("2024-07-18", rows)``…, ``("unknown", rows)``."""
    if table.num_rows == 0:
        return
    # start_time is UTC, so its date32 cast is the UTC day (pc.strftime is ~20x slower).
    days = _arrowpl.cast(table.column("start_time"), pa.date32())
    present = _arrowpl.compute("unique", days).to_pylist()
    if len(present) == 1:  # the usual case: no copy at all, and no import of pyarrow.compute (~20 ms)
        yield (present[0].isoformat() if present[0] is not None else UNKNOWN_DATE), table
        return
    import pyarrow.compute as pc  # (here: a query or report imports this module, never splits by day; ~50 ms)

    # One stable sort (nulls last), then zero-copy slices: one copy of the rows, not one per day.
    if _holds_views(table.schema):  # (pyarrow cannot take views)
        table = table.cast(_record_schema_for(table))
    order = pc.array_sort_indices(days, order="ascending", null_placement="at_end")
    table, days = table.take(order), days.take(order)
    counts = pc.value_counts(days)
    sizes = {v.as_py(): c.as_py() for v, c in zip(counts.field("values"), counts.field("counts"))}
    start = 0
    for day in sorted(d for d in present if d is not None) + ([None] if None in present else []):
        n = sizes[day]
        yield (day.isoformat() if day is not None else UNKNOWN_DATE), table.slice(start, n)
        start += n


# Columns whose values rarely repeat: a Parquet dictionary for them is built, then thrown away
# (times, ids, byte counts, client ports). Every other column is dictionary-encoded: ~15% faster
# writes and ~8% smaller files than trying a dictionary everywhere.
UNIQUE_COLUMNS = frozenset({
    "start_time", "received_at", "line_number", "request_id", "raw",
    "bytes_received", "bytes_sent", "duration", "upstream_service_time",
    "upstream_local_address", "upstream_local_address_port",
    "downstream_remote_address", "downstream_remote_address_port",
})


def _holds_views(schema: pa.Schema) -> bool:
    """Whether rows are string views (``schema.view_schema``: ingest's lanes give them so)."""
    return any(pa.types.is_string_view(f.type) for f in schema)


def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_string_view(t) or pa.types.is_list(t) or pa.types.is_large_list(t)


# Texts of one length that rarely repeat (request ids: UUIDs): DELTA_LENGTH_BYTE_ARRAY, whose lengths
# code to almost nothing and whose bytes are compressed without a length before each. A batch's
# write ~2.5% faster (three runs of 40 alternations: 0.958, 0.976, 0.995), its file ~2% smaller.
# Not the addresses of UNIQUE_COLUMNS: of varied lengths, they were written no faster.
DELTA_LENGTH_COLUMNS = frozenset({"request_id"})


def _encoding(field: pa.Field) -> str | None:
    """The encoding of a column that is not dictionary-encoded, when not Parquet's PLAIN."""
    if _delta_coded(field):
        return "DELTA_BINARY_PACKED"
    if field.name in DELTA_LENGTH_COLUMNS and (pa.types.is_string(field.type) or pa.types.is_string_view(field.type)):
        return "DELTA_LENGTH_BYTE_ARRAY"
    return None


def _delta_coded(field: pa.Field) -> bool:
    """Whether a column is written DELTA_BINARY_PACKED: the numbers and times that rarely repeat
    (UNIQUE_COLUMNS), whose neighbours are close (line numbers, times) or small (byte counts, ports).
    The write of a batch is ~14% faster than with their plain encoding, and the files ~4% smaller."""
    return field.name in UNIQUE_COLUMNS and (pa.types.is_integer(field.type) or pa.types.is_timestamp(field.type))


def _write_options(schema: pa.Schema) -> dict:
    """``pq.ParquetWriter``'s options for a part of ``schema``."""
    # Min/max statistics where they prune row groups (times, numbers); text columns go without.
    # No Arrow schema in the file: its Parquet types read back as the record's (RECORD_SCHEMA's
    # strings, lists, times in UTC) whether the rows were strings or string views (ingest's lanes).
    return dict(compression="zstd", store_schema=False, use_dictionary=[n for n in schema.names if n not in UNIQUE_COLUMNS],
                write_statistics=[f.name for f in schema if not _text(f.type)],
                column_encoding={f.name: _encoding(f) for f in schema if _encoding(f)})


def parquet_options(schema: pa.Schema) -> dict:
    """``_write_options`` for a file of ``schema`` that is not a part (``logpipe parse -o parquet``):
    the same encodings, its Arrow schema kept, as before (its readers get parse's types and metadata)."""
    return {**_write_options(schema), "store_schema": True}


def _write_hidden(table: pa.Table, final: Path, sync: bool = True) -> Path:
    """Write ``table`` to ``.<final name>.tmp`` next to ``final`` (fsynced, unless ``sync`` is false:
    then its caller's, before the commit); returns that path."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_name(final)
    pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, **_write_options(table.schema))
    if sync:
        fsync_file(tmp)
    return tmp


def write_hidden_pieces(pieces: Iterable[pa.Table], schema: pa.Schema, final: Path) -> Path:
    """``_write_hidden`` of the tables ``pieces`` one after another, each cast to ``schema``: a merge of
    many files (``Dataset.compact``) holds one row group of their rows in memory at a time."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = hidden_name(final)
    with pq.ParquetWriter(tmp, schema, **_write_options(schema)) as writer:
        held: list[pa.Table] = []
        for piece in pieces:
            held.append(_as_table(piece, schema))
            while sum(t.num_rows for t in held) >= ROW_GROUP_ROWS:
                rows = pa.concat_tables(held)
                writer.write_table(rows.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                held = [rows.slice(ROW_GROUP_ROWS)]
        if held:
            writer.write_table(pa.concat_tables(held), row_group_size=ROW_GROUP_ROWS)
    fsync_file(tmp)
    return tmp


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to its disk (whichever process wrote it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_files(root: Path, records: pa.Table | pa.RecordBatch | None,
                rejects: pa.Table | pa.RecordBatch | None = None, *, prefix: str = "part",
                sync: bool = True) -> list[tuple[Path, Path]]:
    """``Dataset.stage`` without opening the dataset (ingest's lanes call it, with ``sync`` false:
    the files are not fsynced, which their caller must do before they are committed)."""
    root = Path(root)
    pairs: list[tuple[Path, Path]] = []
    if records is not None:
        table = _as_table(records)
        for day, rows in day_partitions(table):
            final = root / f"date={day}" / f"{prefix}-{uuid.uuid4().hex}.parquet"
            pairs.append((_write_hidden(rows, final, sync), final))
    if rejects is not None and rejects.num_rows:
        final = root / REJECTS_DIR / f"{prefix}-{uuid.uuid4().hex}.parquet"
        pairs.append((_write_hidden(_as_table(rejects, REJECT_SCHEMA), final, sync), final))
    return pairs


def hidden_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp")


def _unlink(path: Path) -> None:
    """Delete ``path``; one already gone is fine (a rerun of a plan, a file a crash left half-handled)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
