"""The one place that knows the stage order: sources → parse → (batches → dataset | output)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from .errors import DatasetError, InputError, RejectLimitError, UsageError
from .parse import Counts, ParsedBatch, Parser, default_parser
from .sources import CHUNK_BYTES, FileRange, Input, expand_inputs, iter_byte_chunks, iter_file_ranges


# Inputs at least this large are parsed by worker processes (both cores); smaller ones in-process,
# where starting workers would cost more than it saves.
PARALLEL_MIN_BYTES = 48 << 20


# With workers, ingest's tasks are this large: a worker parses a task in CHUNK_BYTES pieces (its
# memory stays bounded) and writes its rows as one Parquet file per day (~75k rows of Istio lines).
STAGE_TASK_BYTES = 16 << 20


@dataclass
class StagedBatch:
    """A task that an ingest worker parsed and wrote to hidden files itself (``Dataset.stage``):
    the counts, rejects (few), time bounds and files the parent needs, not the rows."""

    read: int
    blank: int
    parsed: int
    rejects: "pa.RecordBatch | pa.Table"
    formats: dict
    undated: int
    tmin: object
    tmax: object
    pairs: list

    @property
    def rejected(self) -> int:
        return self.rejects.num_rows


def parse_input(inp: Input, parser: Parser | None = None, *, skip_bytes: int = 0,
                first_line: int = 1, workers: int | None = None, stage: tuple | None = None,
                pool: "WorkerPool | None" = None) -> Iterator[tuple["ParsedBatch | StagedBatch", int]]:
    """Parse one input; yields each batch, in input order, with the decompressed byte offset it
    ends at. Large inputs are parsed by ``workers`` processes (default: one per core) while this
    process reads ahead a bounded number of chunks, so memory stays flat for any input size.
    ``stage=(dataset root, file prefix)``: workers also write their rows and rejects to hidden files
    there and yield ``StagedBatch``es (in-process parsing still yields ``ParsedBatch``es).
    ``pool``: workers already started (``WorkerPool``, shared by the inputs of one ingest)."""
    parser = parser or default_parser()
    if workers is None:
        workers = default_workers(inp)
    staged = stage is not None and workers > 1
    size = STAGE_TASK_BYTES if staged else CHUNK_BYTES
    if workers > 1 and not inp.is_stdin and _is_plain(inp):  # workers read their own parts of the file
        chunks = iter_file_ranges(inp, skip_bytes=skip_bytes, chunk_bytes=size)
    else:
        chunks = iter_byte_chunks(inp, skip_bytes=skip_bytes, chunk_bytes=size)
    if workers <= 1:
        line_no = first_line
        for body, end in chunks:
            if body:
                batch = parser.parse_chunk(body, inp.name, line_no)
                yield batch, end
                line_no += batch.read
        return
    if pool is not None and pool.workers == workers:
        yield from _parse_parallel(chunks, pool, inp.name, first_line, stage if staged else None)
        return
    with WorkerPool(parser, workers) as own:
        yield from _parse_parallel(chunks, own, inp.name, first_line, stage if staged else None)


def default_workers(inp: Input) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = os.environ.get("LOGPIPE_WORKERS")
    if env:
        return max(1, int(env))
    if cores < 2:
        return 1
    try:
        size = inp.size()
    except OSError:
        size = None
    return cores if size is None or size >= PARALLEL_MIN_BYTES else 1


class WorkerPool:
    """Worker processes that parse with ``parser``, started on first use (``start`` starts them
    early, so that they boot while this process does something else) and kept for every input."""

    def __init__(self, parser: Parser, workers: int):
        self.parser, self.workers = parser, workers
        self._executor = None

    def executor(self):
        if self._executor is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: polars' thread pool does not survive fork. The parser travels by pickle.
            ctx = multiprocessing.get_context("spawn")
            # One polars thread per worker: the workers are the parallelism; more threads only contend.
            os.environ.setdefault("POLARS_MAX_THREADS", "1")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                                 initargs=(self.parser,))
        return self._executor

    def start(self) -> None:
        for _ in range(self.workers):
            self.executor().submit(int)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _parse_parallel(chunks, pool: WorkerPool, source: str, first_line: int, stage: tuple | None = None):
    from collections import deque
    from concurrent.futures import wait

    pending: deque = deque()
    line_no = first_line
    workers, executor = pool.workers, pool.executor()
    ahead = workers + 1 if stage else workers * 2  # tasks in flight: bounded read-ahead, flat memory
    try:
        for body, end in chunks:
            n = body.lines if isinstance(body, FileRange) else body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            task = executor.submit(_stage_chunk, body, source, line_no, *stage) if stage else \
                executor.submit(_parse_chunk, body, source, line_no)
            pending.append((task, end))
            line_no += n
            while len(pending) > ahead:
                fut, e = pending.popleft()
                yield fut.result(), e
        while pending:
            fut, e = pending.popleft()
            yield fut.result(), e
    finally:  # stopped early (an error, or the consumer left): drop queued tasks, let running ones end
        for fut, _ in pending:
            fut.cancel()
        wait([fut for fut, _ in pending if not fut.cancelled()])


_WORKER_PARSER: Parser | None = None


def _init_worker(parser: Parser) -> None:
    global _WORKER_PARSER
    _WORKER_PARSER = parser


def _parse_chunk(body: "bytes | FileRange", source: str, first_line: int) -> ParsedBatch:
    return _WORKER_PARSER.parse_chunk(body.read() if isinstance(body, FileRange) else body, source, first_line)


def _stage_chunk(body: "bytes | FileRange", source: str, first_line: int, root: str, prefix: str) -> StagedBatch:
    from .batches import BatchBuffer
    from .dataset import stage_files

    if isinstance(body, FileRange):
        body = body.read()
    buf, line_no, blank = BatchBuffer(), first_line, 0
    for piece in _pieces(body, CHUNK_BYTES):
        batch = _WORKER_PARSER.parse_chunk(piece, source, line_no)
        line_no += batch.read
        blank += batch.blank
        buf.add(batch)
    records, rejects = buf.take()
    formats: dict = {}
    undated, tmin, tmax = 0, None, None
    if records is not None:
        import polars as pl

        formats = dict(pl.from_arrow(records.column("log_format")).value_counts().iter_rows())
        undated, tmin, tmax = _time_bounds(records)
    pairs = stage_files(root, records, rejects, prefix=prefix)
    if rejects is None:
        from .schema import REJECT_SCHEMA

        rejects = REJECT_SCHEMA.empty_table()
    return StagedBatch(line_no - first_line, blank, records.num_rows if records is not None else 0, rejects,
                       formats, undated, tmin, tmax, pairs)


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` in runs of whole lines of about ``size`` bytes."""
    start = 0
    while start < len(body):
        cut = body.rfind(b"\n", start, start + size)
        end = len(body) if start + size >= len(body) or cut < 0 else cut + 1
        yield body[start:end]
        start = end


def _time_bounds(records) -> tuple[int, object, object]:
    """Rows without a start_time, and the earliest and latest start_time."""
    import pyarrow.compute as pc

    st = records.column("start_time")
    mm = pc.min_max(st)
    return st.null_count, mm["min"].as_py(), mm["max"].as_py()


def format_reject(r: dict) -> str:
    said = str(r.get("reason") or "").startswith(f"column {r.get('column')}:")  # the reason names it already
    col = f", column {r['column']}" if r.get("column") and not said else ""
    return f"{r['source']}:{r['line_number']}: {r['class']}: {r['reason']}{col}"


class RejectReporter:
    """Rejects to stderr (capped) or to an ndjson file, under an --on-error policy."""

    def __init__(self, on_error: str, max_warnings: int, path: str | None = None):
        self.on_error = on_error
        self.max_warnings = max_warnings
        self.shown = 0
        self.hidden = 0
        self.file = open(path, "w", encoding="utf-8") if path else None

    def report(self, batch: ParsedBatch) -> None:
        if not batch.rejected:
            return
        rows = batch.rejects.to_pylist()
        if self.file:
            for r in rows:
                self.file.write(json.dumps(r, ensure_ascii=False) + "\n")
        elif self.on_error != "skip":
            for r in rows:
                if self.shown < self.max_warnings:
                    print(format_reject(r), file=sys.stderr)
                    self.shown += 1
                else:
                    self.hidden += 1
        if self.on_error == "fail":
            first = rows[0]
            raise RejectLimitError(
                f"{first['source']}:{first['line_number']} was rejected ({first['reason']}) and --on-error"
                " is fail; use --on-error warn to continue past bad lines"
            )

    def close(self) -> None:
        if self.hidden:
            print(f"… {self.hidden} more rejects not shown (raise --max-warnings, or use --rejects FILE)",
                  file=sys.stderr)
        if self.file:
            self.file.close()


def parse_to_output(paths: list[str], *, fmt: str | None, out_path: str | None, rejects_path: str | None,
                    on_error: str, max_warnings: int, parser: Parser | None = None) -> None:
    """``logpipe parse``: records to stdout (or --out), rejects to stderr, counts last."""
    from . import render

    inputs, errors = expand_inputs(paths)
    if errors and not inputs:
        raise InputError("; ".join(errors))
    for e in errors:
        print(f"logpipe: {e}", file=sys.stderr)
    if fmt is None:
        fmt = "parquet" if out_path and out_path.endswith(".parquet") else (
            "table" if sys.stdout.isatty() and not out_path else "ndjson")
    if fmt == "parquet" and not out_path:
        raise UsageError("-o parquet writes a file: add --out FILE.parquet")
    counts = Counts()
    reporter = RejectReporter(on_error, max_warnings, rejects_path)
    state = {"failed": bool(errors)}

    def records():
        for inp in inputs:
            try:
                for batch, _end in parse_input(inp, parser):
                    counts.add(batch)
                    reporter.report(batch)
                    if batch.parsed:
                        yield batch.records
            except InputError as e:
                print(f"logpipe: error: {e}", file=sys.stderr)
                state["failed"] = True

    # RECORD_SCHEMA, plus the extra columns of a custom layout (--format-string …)
    schema = (parser or default_parser()).schema

    try:
        if fmt == "parquet":
            render.write_parquet(records(), out_path, schema=schema)  # streamed, a row group at a time
        else:
            out = open(out_path, "w", encoding="utf-8", newline="") if out_path else sys.stdout
            try:
                render.render_table(records(), fmt, out, schema=schema)
            finally:
                if out is not sys.stdout:
                    out.close()
    finally:
        reporter.close()
        print(counts.summary(), file=sys.stderr)
    failed = state["failed"]
    if failed:
        raise InputError("some inputs could not be read (see above)")


def parse_to_tables(paths: list[str]):
    """Parse inputs in memory for ``logpipe query --input``: (records, rejects, counts), the two
    tables in RECORD_SCHEMA and REJECT_SCHEMA, ready for ``db.connect(tables=…)``."""
    import pyarrow as pa

    from .schema import RECORD_SCHEMA, REJECT_SCHEMA

    inputs, errors = expand_inputs(paths)
    if errors:
        raise InputError("; ".join(errors))
    counts = Counts()
    records, rejects = [], []
    for inp in inputs:
        for batch, _end in parse_input(inp):
            counts.add(batch)
            records.append(batch.records)
            rejects.append(batch.rejects)
    return (pa.Table.from_batches(records, schema=RECORD_SCHEMA),
            pa.Table.from_batches(rejects, schema=REJECT_SCHEMA), counts)


# ---- ingest: archives into the dataset -------------------------------------------------------------


@dataclass
class IngestSummary:
    """What ``ingest_paths`` did; ``lines()`` is the summary printed on stderr."""

    data: str = ""
    inputs: int = 0
    ingested: int = 0
    skipped: int = 0
    failed: int = 0
    counts: Counts = field(default_factory=Counts)
    rows: int = 0
    files: int = 0
    undated: int = 0
    min_time: object = None
    max_time: object = None
    bytes: int = 0
    seconds: float = 0.0
    errors: list = field(default_factory=list)

    def lines(self) -> list[str]:
        c = self.counts
        out = [
            f"inputs {self.inputs}: ingested {self.ingested}"
            + (f" ({len(self.errors)} only up to the damage)" if self.errors else "")
            + f", skipped as already ingested {self.skipped}" + (f", errors {self.failed}" if self.failed else ""),
            f"lines read {c.read}, parsed {c.parsed}, rejected {c.rejected} (noise {c.noise}, malformed {c.malformed})"
            + (f", blank {c.blank}" if c.blank else ""),
            f"rows written {self.rows} in {self.files} files to {self.data}",
        ]
        if self.min_time is not None:
            out.append(f"date range {self.min_time:%Y-%m-%d %H:%M:%S} to {self.max_time:%Y-%m-%d %H:%M:%S} UTC"
                       + (f" ({self.undated} rows without start_time in date=unknown)" if self.undated else ""))
        mb = self.bytes / 1e6
        size = f"{mb:.1f} MB" if mb >= 1 else f"{self.bytes / 1e3:.1f} kB"
        out.append(f"{size} in {self.seconds:.2f} s, {mb / max(self.seconds, 1e-6):.2f} MB/s")
        return out


def dataset_parser(ds, parser: Parser | None, err) -> Parser:
    """The dataset remembers the format it was ingested with (manifest ``format_spec``): a run that
    names a format records it; a run that names none reuses the remembered one, so the mesh's own
    format keeps working for later archives."""
    from .formats import parser_from_spec

    if parser is not None:
        spec = parser.format_spec
        if spec:
            ds.update_manifest(lambda m: m.__setitem__("format_spec", spec))
        return parser
    spec = ds.read_manifest().get("format_spec")
    if spec:
        print("logpipe: using the format remembered in the dataset's manifest (give --format-string to change it)",
              file=err)
        return parser_from_spec(spec)
    return default_parser()


def ingest_paths(paths: list[str], data_dir: str, *, force: bool = False, on_error: str = "warn",
                 max_reject_ratio: float = 0.1, max_warnings: int = 20, progress: bool | None = None,
                 flush_rows: int | None = None, err=None, parser: Parser | None = None) -> IngestSummary:
    """``logpipe ingest``: each input into the dataset at ``data_dir``, once.

    An input is known by the blake2b hash of its bytes: the same content (a renamed copy too) is
    skipped; a file whose first bytes are an ingested input's (it grew) ingests only the lines after
    that input's end; ``force`` re-ingests and removes the rows of every such earlier entry. Each
    input's files stay hidden until its manifest entry commits (``Dataset.commit_entry``), so a
    kill at any moment leaves whole inputs or nothing, and the next run redoes the rest.
    Problems with one input are reported on ``err`` and the others continue; at the end an
    ``InputError`` (unreadable inputs) or ``RejectLimitError`` (too many malformed lines) is raised
    when any input failed, after the summary is printed.
    """
    import time

    from . import batches as _batches
    from .dataset import HASH_ALGO, Dataset, fingerprint
    from .render import escape_control
    from .sources import looks_binary

    err = err or sys.stderr
    if not 0 <= max_reject_ratio <= 1:
        raise UsageError("--max-reject-ratio is a share of lines between 0 and 1, e.g. 0.1")
    started = time.monotonic()
    summary = IngestSummary(data=str(data_dir))
    inputs, errors = expand_inputs(paths)
    if errors and not inputs:
        raise InputError("; ".join(errors))
    for e in errors:
        print(f"logpipe: error: {e}", file=err)
    summary.failed += len(errors)
    data_root = os.path.realpath(data_dir)
    inputs = [i for i in inputs if i.is_stdin or not os.path.realpath(i.path).startswith(data_root + os.sep)]
    summary.inputs = len(inputs) + len(errors)
    ds = Dataset(data_dir, create=True)
    parser = dataset_parser(ds, parser, err)
    shown = 0
    ratio_failures: list[str] = []
    bar = _IngestProgress(err, progress)
    parallel = [i for i in inputs if default_workers(i) > 1]
    pool = WorkerPool(parser, max(default_workers(i) for i in parallel)) if parallel else None
    with _ingest_lock(ds), bar, (pool or contextlib.nullcontext()):
        if pool is not None:
            pool.start()  # the workers boot while the first input is hashed
        ds.recover()
        known = [e for e in ds.entries() if e.get("hash")]  # this process is the only ingest (lock)
        for inp in inputs:
            try:
                if looks_binary(inp):
                    raise InputError(f"{inp.name}: binary file (NUL bytes), not a text log; leave it out of the inputs")
                size, full, prefixes, replaces, skip_bytes, first_line = None, None, {}, [], 0, 1
                if not inp.is_stdin:
                    size, full, prefixes = fingerprint(inp.path, [e["size"] for e in known])
                    same = [e for e in known if e["size"] == size and e["hash"] == full]
                    grown = [e for e in known if 0 < e["size"] < size and prefixes.get(e["size"]) == e["hash"]]
                    if same and not force:
                        summary.skipped += 1
                        was = same[0]["path"]
                        if was != inp.name:  # same path: the summary's count says it
                            bar.note(f"{inp.name}: same content as {was}, already ingested; skipped (--force re-ingests)")
                        if same[0].get("error"):
                            bar.note(f"{inp.name}: already ingested up to its damage ({same[0]['read']} lines); skipped")
                        continue
                    if force:
                        replaces = [e["id"] for e in same + grown]
                    elif grown:
                        last = max(grown, key=lambda e: e["size"])
                        if last.get("ends_newline") is False:  # its last line was cut: read it all again
                            replaces = [e["id"] for e in grown]
                            bar.note(f"{inp.name}: grew after a cut last line; re-ingesting it whole")
                        else:
                            skip_bytes, first_line = last["bytes_end"], last["line_end"] + 1
            except (InputError, OSError) as e:
                msg = str(e) if isinstance(e, InputError) else f"{inp.name}: cannot read: {e.strerror}"
                print(f"logpipe: error: {msg}", file=err)
                summary.failed += 1
                continue

            entry_id = uuid.uuid4().hex[:12]
            entry = ds.begin_entry({
                "id": entry_id, "prefix": f"part-{entry_id}", "path": inp.name, "size": size, "hash": full,
                "hash_algo": HASH_ALGO, "skip_bytes": skip_bytes, "first_line": first_line,
                "compression": None if inp.is_stdin else _compression(inp),
                "format_spec": parser.format_spec,
            })
            counts, buf = Counts(), _batches.BatchBuffer(flush_rows or _batches.FLUSH_ROWS)
            stager, pairs = _Stager(ds, entry["prefix"]), []
            end, rows, undated, tmin, tmax, error = skip_bytes, 0, 0, None, None, None
            task = bar.start(inp.name, size - skip_bytes if size is not None and _is_plain(inp) else None)
            batches = parse_input(inp, parser, skip_bytes=skip_bytes, first_line=first_line,
                                  stage=(str(ds.root), entry["prefix"]), pool=pool)
            try:
                try:
                    for batch, end in batches:
                        if isinstance(batch, StagedBatch):  # a worker wrote its files
                            stager.pairs += batch.pairs
                        counts.add(batch)
                        bar.advance(task, end - skip_bytes, counts.read)
                        if batch.rejected and on_error != "skip":
                            bad = [r for r in batch.rejects.to_pylist() if r["class"] == "malformed"]
                            if bad and on_error == "fail":
                                raise RejectLimitError(
                                    f"{format_reject(bad[0])}; --on-error fail stops at the first malformed line"
                                    " (use --on-error warn to keep going)")
                            for r in bad:
                                if shown < max_warnings:  # log text is untrusted: no raw control chars
                                    bar.note(escape_control(format_reject(r)))
                                shown += 1
                        if batch.parsed:
                            none, lo, hi = (batch.undated, batch.tmin, batch.tmax) if isinstance(batch, StagedBatch) \
                                else _time_bounds(batch.records)
                            undated += none
                            tmin = lo if tmin is None or (lo is not None and lo < tmin) else tmin
                            tmax = hi if tmax is None or (hi is not None and hi > tmax) else tmax
                        if not isinstance(batch, StagedBatch):
                            buf.add(batch)
                            if buf.due():
                                stager.submit(*buf.take())
                except InputError as e:  # corrupt archive: keep what came before the damage
                    error = f"{e} ({counts.read} lines read)"
                stager.submit(*buf.take())
                pairs = stager.finish()
                rows = counts.parsed
                ratio = counts.malformed / max(counts.parsed + counts.malformed, 1)
                if ratio > max_reject_ratio:
                    ds.abandon_entry(entry, pairs)
                    msg = (f"{inp.name}: {counts.malformed} of {counts.parsed + counts.malformed} lines "
                           f"({ratio:.0%}) are malformed, over --max-reject-ratio {max_reject_ratio:g}; not "
                           f"ingested: check the format with `logpipe parse {inp.name}` or raise --max-reject-ratio")
                    print(f"logpipe: error: {msg}", file=err)
                    ratio_failures.append(msg)
                    summary.failed += 1
                    summary.counts = _add_counts(summary.counts, counts)
                    continue
                if counts.parsed == 0 and counts.noise:  # a format mismatch must not pass silently
                    bar.note(f"logpipe: warning: {inp.name}: no access line among its {counts.read} lines "
                             f"({counts.noise} not access-log output); if it is an access log in another format,"
                             " give it with --format-string or --format-file (`logpipe detect` shows the layouts)")
                if not inp.is_stdin and end != size and not error and entry["compression"] == "plain":
                    _, _, pre = fingerprint(inp.path, [end])  # a live log grew while we read it:
                    if end in pre:                             # identify it by what was read
                        size, full = end, pre[end]
                entry.update(
                    size=size, hash=full, bytes_end=end, bytes_read=end - skip_bytes,
                    line_end=first_line + counts.read - 1, read=counts.read, parsed=counts.parsed,
                    noise=counts.noise, malformed=counts.malformed, blank=counts.blank, rows=rows,
                    min_time=_iso(tmin), max_time=_iso(tmax), error=error,
                    ends_newline=_ends_newline(inp, end) if entry["compression"] == "plain" else None,
                )
                done = ds.commit_entry(entry, pairs, replaces)
            except KeyboardInterrupt:
                batches.close()  # workers finish their tasks first: then abandon removes all their files
                ds.abandon_entry(entry, stager.abandon())
                bar.__exit__(None, None, None)
                print(f"logpipe: {inp.name}: stopped before its end, not ingested (the next run does it)", file=err)
                _print_summary(summary, started, shown, max_warnings, ds, err)
                raise
            except BaseException:
                batches.close()
                ds.abandon_entry(entry, stager.abandon())
                raise
            finally:
                bar.finish(task)
            known = [e for e in known if e["id"] not in replaces] + ([done] if done.get("hash") else [])
            summary.counts = _add_counts(summary.counts, counts)
            summary.ingested += 1
            summary.rows += rows
            summary.files += len(done["parts"])
            summary.undated += undated
            summary.bytes += end - skip_bytes
            if tmin is not None:
                summary.min_time = tmin if summary.min_time is None else min(summary.min_time, tmin)
                summary.max_time = tmax if summary.max_time is None else max(summary.max_time, tmax)
            if error:
                print(f"logpipe: error: {error}", file=err)
                summary.failed += 1
                summary.errors.append(error)
            elif first_line > 1:
                bar.note(f"{inp.name}: grew since the last ingest; read lines {first_line} to {entry['line_end']}")
    _print_summary(summary, started, shown, max_warnings, ds, err)
    if summary.failed:
        if ratio_failures and summary.failed == len(ratio_failures):
            raise RejectLimitError(f"{len(ratio_failures)} input(s) had too many malformed lines (see above)")
        raise InputError(f"{summary.failed} input(s) had errors (see above); everything else was ingested")
    return summary


class _Stager:
    """Writes an input's buffered tables (``Dataset.stage``) on a background thread, one at a time:
    pyarrow encodes Parquet without the GIL, so reading and parsing go on meanwhile. At most one
    write is in flight, so memory stays bounded."""

    def __init__(self, ds, prefix: str):
        from concurrent.futures import ThreadPoolExecutor

        self._ds, self._prefix = ds, prefix
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="logpipe-write")
        self._pending = None
        self.pairs: list = []

    def submit(self, records, rejects) -> None:
        self._collect()
        if records is not None or rejects is not None:
            self._pending = self._pool.submit(self._ds.stage, records, rejects, prefix=self._prefix)

    def _collect(self) -> None:
        if self._pending is not None:
            done, self._pending = self._pending, None
            self.pairs += done.result()

    def finish(self) -> list:
        """Waits for the last write (raising its error); the ``(hidden, final)`` pairs written."""
        try:
            self._collect()
        finally:
            self._pool.shutdown(wait=True)
        return self.pairs

    def abandon(self) -> list:
        """After a failure: waits for a write in flight, ignoring its error; the pairs written."""
        try:
            self._collect()
        except Exception:  # noqa: BLE001 - its hidden files are swept as stale by recover()
            pass
        self._pool.shutdown(wait=True)
        return self.pairs


def _print_summary(summary: IngestSummary, started: float, shown: int, max_warnings: int, ds, err) -> None:
    import time

    summary.seconds = time.monotonic() - started
    if shown > max_warnings:
        print(f"… {shown - max_warnings} more malformed lines not shown (ingested inputs keep them in "
              f"{ds.rejects_glob()}; raise --max-warnings to see them here)", file=err)
    for line in summary.lines():
        print(line, file=err)


def _add_counts(a: Counts, b: Counts) -> Counts:
    return Counts(a.read + b.read, a.parsed + b.parsed, a.noise + b.noise, a.malformed + b.malformed,
                  a.blank + b.blank)


def _iso(t) -> str | None:
    return None if t is None else t.isoformat()


def _ends_newline(inp: Input, end: int) -> bool:
    if end == 0:
        return True
    with open(inp.path, "rb") as f:
        f.seek(end - 1)
        return f.read(1) == b"\n"


def _compression(inp: Input) -> str:
    from .sources import detect_compression

    with open(inp.path, "rb") as f:
        return detect_compression(f.read(10))


def _is_plain(inp: Input) -> bool:
    return _compression(inp) == "plain"


class _ingest_lock:
    """One ingest per dataset at a time (it recovers what a killed one left)."""

    def __init__(self, ds):
        self.ds = ds
        self.fd = None

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.ds.root / "_ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise DatasetError(f"another logpipe ingest is writing to {self.ds.root}; wait for it to finish") from None
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the flock


class _IngestProgress:
    """rich progress on a TTY (bytes and lines per input, throughput, ETA); notes above it. Off the
    TTY it only prints notes."""

    def __init__(self, err, enabled: bool | None):
        self.err = err
        self.enabled = (err.isatty() if hasattr(err, "isatty") else False) if enabled is None else enabled
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[lines]} lines"),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(file=self.err), transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def note(self, text: str) -> None:
        if self.progress:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.err)

    def start(self, name: str, size: int | None):
        if not self.progress:
            return None
        base = os.path.basename(name)
        return self.progress.add_task(base if len(base) <= 32 else "…" + base[-31:], total=size, lines=0)

    def advance(self, task, done: int, lines: int) -> None:
        if self.progress and task is not None:
            self.progress.update(task, completed=done, lines=lines)

    def finish(self, task) -> None:
        if self.progress and task is not None:
            self.progress.remove_task(task)
