"""Stage 2: parsed batches, counted, and gathered into Arrow tables sized for Parquet, flushed by
rows or by seconds.

Parsing yields one ``ParsedBatch`` per chunk of input (a few MiB of lines): its rows, its rejects,
its blank lines, the parts of split lines it joined. ``Counts`` keeps the running totals every command
prints (``read == parsed + noise + malformed + blank + joined``). Several small inputs parsed as one batch are split back per input
(``split_inputs``, by ``INPUT_SHIFT``). A Parquet file per chunk would leave a dataset of thousands
of small files: ``BatchBuffer`` holds records and rejects until ``rows`` rows are buffered or
``seconds`` have passed since the first one (for a live stream), then ``take()`` hands them over as
one table each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from . import arrowpl as _arrowpl
from .schema import RECORD_SCHEMA, REJECT_SCHEMA


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``: the summaries' and alerts' counts."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

# Several small inputs parsed in one batch (workers._stage_inputs) number their lines k << INPUT_SHIFT
# + n, for the k-th input's line n: the rows keep the inputs' order and each line its number in its
# input (``line_in_input``), as LARK_CONTEXT_LINES asks.
INPUT_SHIFT = 40


def line_in_input(line_number: int) -> int:
    """A line's number in its input (``INPUT_SHIFT``)."""
    return line_number & ((1 << INPUT_SHIFT) - 1)


def same_input(a: int, b: int) -> bool:
    """Whether two line numbers of a batch are of one input (``INPUT_SHIFT``)."""
    return a >> INPUT_SHIFT == b >> INPUT_SHIFT


# An input whose access lines are over half malformed looks like another format (Counts.mostly_malformed).
MOSTLY_MALFORMED = 0.5


@dataclass
class ParsedBatch:
    """One batch of input lines, parsed: rows in ``records`` (RECORD_SCHEMA), the rest in
    ``rejects`` (REJECT_SCHEMA); ``blank`` lines are only counted, and so are the parts of a line
    the container runtime split that were joined to its first part's row (``joined_lines``: their
    line numbers)."""

    records: pa.RecordBatch
    rejects: pa.RecordBatch
    read: int
    blank: int
    joined_lines: tuple[int, ...] = ()
    header: str | None = None  # (`tail -f`'s header line in effect after its last line: tailheads.py)
    replayed: int = 0  # lines an earlier stream stored, not stored again (logpipe/replayguard.py)

    @property
    def joined(self) -> int:
        return len(self.joined_lines)

    @property
    def parsed(self) -> int:
        return self.records.num_rows

    @property
    def rejected(self) -> int:
        return self.rejects.num_rows


def split_inputs(batch: ParsedBatch, sources: list[str], reads: list[int]) -> list[ParsedBatch]:
    """A batch of several inputs' lines (numbered by ``INPUT_SHIFT``) as one batch per input: its
    rows and rejects (in order: both are sorted by line number), their line numbers in the input and
    its name; ``reads``: each input's lines, of which those neither a row nor a reject were blank
    or joined."""
    import pyarrow.compute as pc

    out = []
    numbers = [_arrowpl.series(t.column("line_number")) for t in (batch.records, batch.rejects)]
    for k, (source, read) in enumerate(zip(sources, reads)):
        parts = []
        for table, number in zip((batch.records, batch.rejects), numbers):
            lo, hi = (int(x) for x in number.search_sorted(pl.Series([k << INPUT_SHIFT, (k + 1) << INPUT_SHIFT])))
            part = table.slice(lo, hi - lo)
            at, field = part.schema.get_field_index, part.schema.field
            part = part.set_column(at("line_number"), field("line_number"),
                                   pc.subtract(part.column("line_number"), pa.scalar(k << INPUT_SHIFT, pa.int64())))
            part = part.set_column(at("source"), field("source"),
                                   pa.array([source] * (hi - lo), pa.string()).cast(field("source").type))
            parts.append(part)
        records, rejects = parts
        joined = tuple(line_in_input(n) for n in batch.joined_lines if n >> INPUT_SHIFT == k)
        out.append(ParsedBatch(records, rejects, read, read - records.num_rows - rejects.num_rows - len(joined), joined))
    # Every line a row, a reject, blank or joined, in its own input: a count that does not add up is
    # a bug the split would otherwise hide in an input's blank lines.
    if sum(reads) != batch.read or sum(b.blank for b in out) != batch.blank or min((b.blank for b in out), default=0) < 0:
        raise ValueError(f"split of {batch.read} lines ({batch.blank} blank) into inputs of {reads} lines does not add up")
    return out


@dataclass
class Counts:
    """Running totals: ``read == parsed + noise + malformed + blank + joined + replayed`` always holds."""

    read: int = 0
    parsed: int = 0
    noise: int = 0
    malformed: int = 0
    blank: int = 0
    formats: dict = field(default_factory=dict)
    joined: int = 0
    replayed: int = 0

    def add(self, batch: ParsedBatch) -> None:
        self.read += batch.read
        self.parsed += batch.parsed
        self.blank += batch.blank
        self.joined += batch.joined
        self.replayed += getattr(batch, "replayed", 0)
        if batch.rejected:
            classes = batch.rejects.column("class").to_pylist()
            self.noise += classes.count("noise")
            self.malformed += classes.count("malformed")
        if batch.parsed:
            formats = getattr(batch, "formats", None)  # a StagedBatch (logpipe/workers.py) counted them
            for k, v in (format_counts(batch.records) if formats is None else formats).items():
                self.formats[k] = self.formats.get(k, 0) + v

    def __add__(self, other: "Counts") -> "Counts":
        formats = dict(self.formats)
        for k, v in other.formats.items():
            formats[k] = formats.get(k, 0) + v
        return Counts(self.read + other.read, self.parsed + other.parsed, self.noise + other.noise,
                      self.malformed + other.malformed, self.blank + other.blank, formats, self.joined + other.joined,
                      self.replayed + other.replayed)

    @property
    def rejected(self) -> int:
        return self.noise + self.malformed

    @property
    def access(self) -> int:
        """Access lines: parsed or malformed (noise and blank lines are not)."""
        return self.parsed + self.malformed

    def mostly_malformed(self, lines: int, share: float = MOSTLY_MALFORMED) -> bool:
        """Whether, of ``lines`` access lines at least, over ``share`` are malformed: the look of an
        input in another format (ingest's probe, stream's warning)."""
        return self.access >= lines and self.malformed > share * self.access

    def summary(self) -> str:
        text = (
            f"read {self.read}, parsed {self.parsed}, rejected {self.rejected} "
            f"(noise {self.noise}, malformed {self.malformed})"
        )
        return (text + (f", blank {self.blank}" if self.blank else "") + (f", joined {self.joined}" if self.joined else "")
                + (f", replayed {self.replayed} (stored already)" if self.replayed else ""))


def no_access_warning(where: str, others: int, aside: str = "", first: dict | None = None, look: str = "") -> str:
    """What ingest says of an input, and a stream of its first lines, when not one of its lines is an
    access line (``where``: "app.log: … among its 300 lines", "… among the first 200 lines"): the
    usual causes are another container's log and a format logpipe was not given. Under a given format
    (``first``: the first of the lines' rejects) it names where that line departs from it, and asks
    whether the format is the proxies', rather than to give one; ``look``: the `logpipe parse` command
    with that format's option (``Input.parse_command``) that shows each line's reason."""
    aside = f"; {aside}" if aside else ""
    if first is not None:
        return (f"logpipe: warning: {where}, none follows the given format{aside}; line {first['line_number']}: "
                f"{first['reason']}. Is the format the proxies'? `{look}` shows each line's reason")
    return (f"logpipe: warning: {where} ({others} not access-log output{aside}): Istio's access log is the "
            "istio-proxy container's (`kubectl logs POD -c istio-proxy`); an access log in another format: "
            "give it with --format-string or --format-file (`logpipe detect` shows the layouts)")


def format_counts(records: pa.RecordBatch | pa.Table) -> dict[str, int]:
    """Rows per ``log_format`` (the layout or encoding that read them)."""
    return dict(_arrowpl.series(records.column("log_format")).value_counts().iter_rows())


FLUSH_ROWS = 122_880  # one Parquet row group (parts.ROW_GROUP_ROWS); ~70 MB of Arrow on Istio lines


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
        records = concat_batches(self._records, RECORD_SCHEMA)
        rejects = concat_batches(self._rejects, REJECT_SCHEMA)
        self._records, self._rejects, self.rows, self._since = [], [], 0, None
        return records, rejects


def concat_batches(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table | None:
    """``batches`` as one table (None when there are none), in ``schema`` when they all are in it."""
    if not batches:
        return None
    # Custom formats may add extra string columns: unify by name, keep RECORD_SCHEMA's order first.
    if all(b.schema.equals(schema) for b in batches):
        return pa.Table.from_batches(batches, schema=schema)
    if all(b.schema.equals(batches[0].schema) for b in batches):  # (a lane's rows: string views)
        return pa.Table.from_batches(batches)
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="permissive")
