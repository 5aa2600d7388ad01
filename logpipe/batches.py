"""Stage 2: parsed batches into Arrow tables sized for Parquet, flushed by rows or by seconds.

Parsing yields one ``ParsedBatch`` per chunk of input (a few MiB of lines); a Parquet file per chunk
would leave a dataset of thousands of small files. ``BatchBuffer`` holds records and rejects until
``rows`` rows are buffered or ``seconds`` have passed since the first one (for a live stream), then
``take()`` hands them over as one table each.
"""
from __future__ import annotations

import time

import pyarrow as pa

from .parse import ParsedBatch
from .schema import RECORD_SCHEMA, REJECT_SCHEMA

FLUSH_ROWS = 122_880  # one Parquet row group (dataset.ROW_GROUP_ROWS); ~70 MB of Arrow on Istio lines


class BatchBuffer:
    """Accumulates ``ParsedBatch`` records and rejects; ``due()`` says when to flush."""

    def __init__(self, rows: int = FLUSH_ROWS, seconds: float | None = None):
        self.max_rows = rows
        self.seconds = seconds
        self._records: list[pa.RecordBatch] = []
        self._rejects: list[pa.RecordBatch] = []
        self.rows = 0
        self._since: float | None = None

    def add(self, batch: ParsedBatch) -> None:
        if batch.parsed:
            self._records.append(batch.records)
            self.rows += batch.parsed
        if batch.rejected:
            self._rejects.append(batch.rejects)
        if self._since is None and (batch.parsed or batch.rejected):
            self._since = time.monotonic()

    def __len__(self) -> int:
        return self.rows + sum(b.num_rows for b in self._rejects)

    def due(self) -> bool:
        if self.rows >= self.max_rows:
            return True
        return self.seconds is not None and self._since is not None and time.monotonic() - self._since >= self.seconds

    def take(self) -> tuple[pa.Table | None, pa.Table | None]:
        """The buffered rows and rejects as one table each (``None`` when empty); empties the buffer."""
        records = _concat(self._records, RECORD_SCHEMA)
        rejects = _concat(self._rejects, REJECT_SCHEMA)
        self._records, self._rejects, self.rows, self._since = [], [], 0, None
        return records, rejects


def _concat(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table | None:
    if not batches:
        return None
    # Custom formats may add extra string columns: unify by name, keep RECORD_SCHEMA's order first.
    if all(b.schema.equals(schema) for b in batches):
        return pa.Table.from_batches(batches, schema=schema)
    if all(b.schema.equals(batches[0].schema) for b in batches):  # (a lane's rows: string views)
        return pa.Table.from_batches(batches)
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="permissive")
