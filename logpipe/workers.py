"""What a lane does with a task: parse a byte range or chunk of an input, and for ingest also
write its rows as hidden Parquet files (``StagedBatch``). The lanes themselves (this process and
worker processes, how many) are ``logpipe/lanes.py``; ``logpipe/pipeline.py`` decides when to use
them. Stage 1 on every core.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .errors import InputError
from . import lanes as _lanes
from .lanes import WorkerPool, lane_parser
from .sources import CHUNK_BYTES, FileRange, Input, iter_byte_chunks
from .tailheads import first_header, header_at, last_header

if TYPE_CHECKING:
    import pyarrow as pa

    from .batches import ParsedBatch


# With workers, ingest's tasks of a plain file are this large: a worker reads its range and parses it
# in one batch (a longer range, around a line longer than that, in pieces of this size: its memory
# stays bounded), and writes one Parquet file per day (~50k rows of Istio lines). Compressed inputs
# and stdin are sent to the workers in CHUNK_BYTES tasks. One 16 MB batch, not two of 8 MB: a batch
# has ~12 ms of fixed cost; 1M lines: wall 0.967 and 0.955, CPU 0.958 and 0.974 (twice 10 pairs),
# peak RSS of the process tree 511 -> ~585 MiB. (In the eleventh session, with more fixed cost
# elsewhere, the same change measured CPU 0.979 and wall 0.997.)
STAGE_TASK_BYTES = 16 << 20


@dataclass
class StagedBatch:
    """A task that an ingest worker parsed and whose rows it wrote to hidden files itself
    (``Dataset.stage``): the counts, time bounds and files the parent needs, not the rows; and its
    rejects (few), which the parent writes, an input's together (``ingest._Run.finish``): a file
    each task made a 16 MB task's ~250 rejects a file of their own (~2 ms a task in the lanes) and
    left ~20 small files for a 320 MB input, merged at the run's end (~40 ms, one core idle)."""

    read: int
    blank: int
    parsed: int
    rejects: "pa.RecordBatch | pa.Table"
    formats: dict
    undated: int
    tmin: object
    tmax: object
    pairs: list
    joined: int = 0  # (parts of split lines joined to their first part's row: ParsedBatch.joined)

    @property
    def rejected(self) -> int:
        return self.rejects.num_rows


def parse_parallel(chunks, pool: WorkerPool, source: str, first_line: int, stage: tuple | None = None,
                   header: str | None = None):
    """``chunks`` (byte ranges of a plain file, or bytes) parsed by the lanes, in order; ``header``:
    `tail -f`'s header line in effect before the first (a range knows its own; bytes are given the
    last one before them, looked for only in an input that starts with one: logpipe/tailheads.py)."""
    from collections import deque
    from concurrent.futures import wait

    pending: deque = deque()
    line_no = first_line
    workers, executor = pool.workers, pool.executor()
    # Tasks in flight: bounded read-ahead, flat memory. One per worker, plus one when neither its
    # input (a file range, not bytes) nor its result (an ingest task's counts) weighs anything.
    light = workers + 1 if stage else workers
    try:
        for body, end in chunks:
            if isinstance(body, FileRange):
                n, before = body.lines, body.header
            else:
                if header is None and line_no == first_line == 1:  # (the input's start)
                    header = first_header(body)
                n, before = body.count(b"\n") + (0 if body.endswith(b"\n") else 1), header
                header = (last_header(body) or header) if header is not None else None
            task = executor.submit(_stage_chunk, body, source, line_no, *stage, before) if stage else \
                executor.submit(_parse_chunk, body, source, line_no, before)
            pending.append((task, end))
            line_no += n
            while len(pending) > (light if isinstance(body, FileRange) else workers):
                fut, e = pending.popleft()
                yield fut.result(), e
        while pending:
            fut, e = pending.popleft()
            yield fut.result(), e
    finally:  # stopped early (an error, or the consumer left): drop queued tasks, let running ones end
        for fut, _ in pending:
            fut.cancel()
        wait([fut for fut, _ in pending if not fut.cancelled()])


def _parse_chunk(body: "bytes | FileRange", source: str, first_line: int, header: str | None = None) -> "ParsedBatch":
    batch = lane_parser().parse_chunk(body.read() if isinstance(body, FileRange) else body, source, first_line,
                                      header=header)
    _check_lines(body, batch.read)
    if _lanes.IN_WORKER:  # (a pool's worker process: the rows are pickled to the parent; not any child process)
        batch.records = _Shipped(batch.records)
    return batch


class _Shipped:
    """A worker process's rows as they are pickled to the parent: one Arrow IPC stream, read there
    without a copy (``_unship``), not pyarrow's pickle of each array's buffers. An 8 MB task of
    Istio lines (26k rows, 15 MB pickled): 7 ms to write, not ~30 ms to pickle. `parse -o parquet` of
    the bench's 1M lines, 5 alternating pairs under load: wall 3.89 against 4.12 s, CPU 4.12 against 4.27 s.
    (An IPC file in /dev/shm that the parent maps saved ~5% more, but leaves files behind a killed
    parent and needs a /dev/shm larger than a container's default 64 MB can be.)"""

    def __init__(self, rows: "pa.RecordBatch") -> None:
        self.rows = rows

    def __reduce__(self):
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.rows.schema) as writer:
            writer.write_batch(self.rows)
        return _unship, (sink.getvalue(),)


def _unship(stream: "pa.Buffer") -> "pa.RecordBatch":
    """The rows of a ``_Shipped`` stream (unpickled in the parent)."""
    import pyarrow as pa

    return pa.ipc.open_stream(stream).read_next_batch()


def _stage_chunk(body: "bytes | FileRange", source: str, first_line: int, root: str, prefix: str,
                 header: str | None = None) -> StagedBatch:
    from .batches import BatchBuffer

    buf, line_no, blank, joined = BatchBuffer(), first_line, 0, 0
    for piece in body.pieces(STAGE_TASK_BYTES) if isinstance(body, FileRange) else _pieces(body, CHUNK_BYTES):
        batch = lane_parser().parse_chunk(piece, source, line_no, views=True, header=header)  # (written as they are)
        line_no, header = line_no + batch.read, batch.header
        blank, joined = blank + batch.blank, joined + batch.joined
        buf.add(batch)
    _check_lines(body, line_no - first_line)
    return _stage_buffer(buf, line_no - first_line, blank, root, prefix, joined)


def _check_lines(body: "bytes | FileRange", read: int) -> None:
    """A range must hold the lines counted in it when the file was first read (its line numbers,
    and the next range's, depend on it): else the file was rewritten meanwhile."""
    if isinstance(body, FileRange) and read != body.lines:
        raise body.changed(f"bytes {body.start:,} to {body.stop:,} hold {read:,} lines now, not {body.lines:,}")


def _stage_input(path: "str | Input", skip_bytes: int, first_line: int, root: str, prefix: str,
                 flush_rows: int | None = None) -> tuple[list[tuple[StagedBatch, int]], str | None]:
    """A whole input (a small file, plain or compressed) read, parsed and staged by one worker, as
    the in-process path does it, so that the workers parse several small inputs at once. Returns
    ``(staged, offset)`` for each flush, and the message of the ``InputError`` that stopped a
    corrupt archive (its complete lines before the damage are staged). A file that cannot be opened
    raises its ``OSError`` (``unopened``), as one whose read fails does (EIO: ``sources.reading``),
    which crosses to the parent whole (errno, filename): it is no damage, and the parent need not
    open the file again to tell (it may be back by then)."""
    from .batches import BatchBuffer

    inp = _input(path)
    out: list[tuple[StagedBatch, int]] = []
    buf = BatchBuffer(flush_rows) if flush_rows else BatchBuffer()
    line_no, blank, joined, first, end, error, held = first_line, 0, 0, first_line, skip_bytes, None, 0
    header = header_at(inp, skip_bytes)
    try:
        for body, end in iter_byte_chunks(inp, skip_bytes=skip_bytes):
            if body:
                header = first_header(body) if line_no == first_line and not skip_bytes else header
                batch = lane_parser().parse_chunk(body, inp.name, line_no, views=True, header=header)
                line_no, header = line_no + batch.read, batch.header
                blank, joined = blank + batch.blank, joined + batch.joined
                buf.add(batch)
                held += len(body)
                # No more than a file-range task holds: a worker stays within ~0.35 GiB
                if buf.due() or held >= STAGE_TASK_BYTES:
                    out.append((_stage_buffer(buf, line_no - first, blank, root, prefix, joined), end))
                    first, blank, joined, held = line_no, 0, 0, 0
    except InputError as e:
        if (cause := unopened(e, inp)) is not None:
            raise cause from None
        error = str(e)
    if line_no > first or not out:
        out.append((_stage_buffer(buf, line_no - first, blank, root, prefix, joined), end))
    return out, error


def _stage_inputs(items: list[tuple["str | Input", int, int, str]], root: str) -> list[tuple[str, object]]:
    """Small plain inputs ((input or its path, skip_bytes, first_line, prefix) each) read, parsed in one batch and
    staged each to its own files: a batch costs ~12 ms whatever its size, a 3 MB input's parse ~25 ms.
    Per input, ``("ok", what _stage_input returns)`` or ``("error", the exception it raised)``: an
    input that cannot be read is staged alone (``_stage_input``), its error its own."""
    import polars as pl

    from .native import count_newlines
    from .batches import INPUT_SHIFT, split_inputs

    bodies, reads, ends, numbers = [], [], [], []
    try:
        for k, (path, skip, first, _) in enumerate(items):
            body = b"".join(chunk for chunk, _ in iter_byte_chunks(_input(path), skip_bytes=skip))
            lines = count_newlines(body, len(body)) + (1 if body and not body.endswith(b"\n") else 0)
            bodies.append(body if body.endswith(b"\n") or not body else body + b"\n")
            reads.append(lines)
            ends.append(skip + len(body))
            numbers.append(pl.int_range((k << INPUT_SHIFT) + first, (k << INPUT_SHIFT) + first + lines,
                                        dtype=pl.Int64, eager=True))
        if any(first_header(b) is not None or header_at(_input(path), skip) is not None
               for b, (path, skip, *_) in zip(bodies, items)):  # (`tail -f` output: each alone, as it is read)
            raise InputError("")
    except (InputError, OSError):  # one of them: each alone, so that its error is its own
        return [_caught(_stage_input, path, skip, first, root, prefix) for path, skip, first, prefix in items]
    batch = lane_parser().parse_chunk(b"".join(bodies), "-", 1, views=True, line_numbers=pl.concat(numbers))
    parts = split_inputs(batch, [_input(p).name for p, *_ in items], reads)
    # Each input's files written on their own: a write that fails (a full disk) fails its input alone
    return [_caught(_stage_part, part, end, root, prefix) for (*_, prefix), part, end in zip(items, parts, ends)]


def _stage_part(part, end: int, root: str, prefix: str) -> tuple[list[tuple[StagedBatch, int]], None]:
    """One input's part of a batch of several (``_stage_inputs``) staged, as ``_stage_input`` returns it."""
    from .batches import BatchBuffer

    buf = BatchBuffer()
    buf.add(part)
    return [(_stage_buffer(buf, part.read, part.blank, root, prefix, part.joined), end)], None


def unopened(e: InputError, inp: Input) -> OSError | None:
    """The ``OSError`` of opening ``inp``'s file that ``e`` reports (``sources._open``'s `cannot open`,
    `permission denied`: raised while handling it), or None: ``e`` is about its content (a damaged
    archive). A pipe's is None, as before (it is read as it comes, its error said as its reader's)."""
    cause = e.__context__
    if inp.is_stream or not isinstance(cause, OSError) or cause.filename != inp.path:
        return None
    return cause


def _input(path: "str | Input") -> Input:
    return path if isinstance(path, Input) else Input(path)


def _caught(fn, *args) -> tuple[str, object]:
    try:
        return "ok", fn(*args)
    except Exception as e:  # (returned to the parent, raised there for this input alone)
        return "error", e


def _stage_buffer(buf, read: int, blank: int, root: str, prefix: str, joined: int = 0) -> StagedBatch:
    """Write the rows ``buf`` holds to hidden files (``parts.stage_files``), not fsynced: the parent
    fsyncs them on a thread of its own (``ingest._Stager.staged``) while the lanes go on parsing, and
    before it commits them. It gets the counts and the rejects (``StagedBatch``). An fsync in the lane
    held it ~3-10 ms a 16 MB task (0.1 s at times), ~0.15 s of a 1M-line ingest's lanes in all."""
    from .parts import stage_files
    from .batches import format_counts

    records, rejects = buf.take()
    formats: dict = {}
    undated, tmin, tmax = 0, None, None
    if records is not None:
        formats = format_counts(records)
        undated, tmin, tmax = time_bounds(records)
    pairs = stage_files(root, records, None, prefix=prefix, sync=False)
    if rejects is None:
        from .schema import REJECT_SCHEMA

        rejects = REJECT_SCHEMA.empty_table()
    return StagedBatch(read, blank, records.num_rows if records is not None else 0, rejects,
                       formats, undated, tmin, tmax, pairs, joined)


def stage_input_async(pool: "WorkerPool", inp: Input, skip_bytes: int, first_line: int, stage: tuple,
                      flush_rows: int | None = None):
    """Start ``_stage_input`` of ``inp`` in ``pool``; ``staged_result`` of the future is what
    ``parse_input`` would yield for it (in order, then the ``InputError`` of a corrupt archive)."""
    return pool.executor().submit(_stage_input, inp, skip_bytes, first_line, *stage, flush_rows)


def stage_inputs_async(pool: "WorkerPool", items: list[tuple[Input, int, int, str]], stage_root: str) -> list:
    """Start ``_stage_inputs`` of small plain inputs ((input, skip_bytes, first_line, prefix) each) as
    one task; returns a future for each input (``InputPart``), as ``stage_input_async`` does."""
    group = pool.executor().submit(_stage_inputs, list(items), stage_root)
    return [InputPart(group, k) for k in range(len(items))]


class InputPart:
    """One input's result of a task of several (``stage_inputs_async``), as a future of its own."""

    def __init__(self, group, index: int):
        self.group, self.index = group, index

    def done(self) -> bool:
        return self.group.done()

    def cancel(self) -> bool:
        return self.group.cancel()

    def result(self):
        kind, value = self.group.result()[self.index]
        if kind == "error":
            raise value
        return value

    def exception(self):
        try:
            self.result()
        except BaseException as e:
            return e
        return None


def staged_result(future) -> Iterator[tuple[StagedBatch, int]]:
    staged, error = future.result()
    yield from staged
    if error is not None:
        raise InputError(error)


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` in runs of whole lines of about ``size`` bytes."""
    start = 0
    while start < len(body):
        cut = body.rfind(b"\n", start, start + size)
        end = len(body) if start + size >= len(body) or cut < 0 else cut + 1
        yield body[start:end]
        start = end


def time_bounds(records) -> tuple[int, object, object]:
    """Rows without a start_time, and the earliest and latest start_time."""
    from .arrowpl import compute

    st = records.column("start_time")
    mm = compute("min_max", st)
    return st.null_count, mm["min"].as_py(), mm["max"].as_py()
