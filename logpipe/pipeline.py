"""The one place that knows the stage order: sources → parse → (batches → dataset | output).

``logpipe ingest``'s own logic (input identity, reports, commits) is in ``logpipe/ingest.py``; the
lanes that parse on every core are ``logpipe/lanes.py``, their tasks ``logpipe/workers.py``."""
from __future__ import annotations

import contextlib
import json
import sys
from itertools import islice
from typing import Iterator

from .errors import InputError, RejectLimitError
from .batches import Counts, ParsedBatch
from .parse import Parser, default_parser
from . import holes as _holes
from .sources import CHUNK_BYTES, Input, expand_inputs, inspect, iter_byte_chunks, iter_file_ranges
from .tailheads import first_header, header_at
from . import workers as _workers
from .lanes import WorkerPool, default_workers
from .workers import StagedBatch, parse_parallel


def parse_input(inp: Input, parser: Parser | None = None, *, skip_bytes: int = 0,
                first_line: int = 1, workers: int | None = None, stage: tuple | None = None,
                pool: "WorkerPool | None" = None, hasher=None,
                say: bool = False) -> Iterator[tuple["ParsedBatch | StagedBatch", int]]:
    """Parse one input; yields each batch, in input order, with the decompressed byte offset it
    ends at. Large inputs are parsed by ``workers`` processes (default: one per core) while this
    process reads ahead a bounded number of chunks, so memory stays flat for any input size.
    ``stage=(dataset root, file prefix)``: workers also write their rows to hidden files there (the
    caller writes the rejects they hand back) and yield ``StagedBatch``es (in-process parsing still yields ``ParsedBatch``es).
    ``pool``: workers already started (``WorkerPool``, shared by the inputs of one ingest).
    ``hasher``: given the bytes read when the workers read a plain file's ranges (``dataset.InputHash``;
    it then holds all of them: its ``size`` is the last offset yielded). ``say``: a hole the input
    starts with is said on stderr (``holes.note``; ingest says it with its own notes)."""
    why, hole = inspect(inp)  # (as ingest says it before it enters the input: one line, no garbage rows)
    if why is not None:
        raise InputError(f"{inp.name}: {why}")
    if hole and not skip_bytes and say:
        print(f"logpipe: {_holes.note(inp.name, hole)}", file=sys.stderr)
    parser = parser or default_parser()
    if workers is None:
        workers = default_workers(inp)
    if workers > 1 and not inp.is_stream and is_plain(inp):  # workers read their own parts of the file
        chunks = iter_file_ranges(inp, skip_bytes=skip_bytes, hasher=hasher,
                                  chunk_bytes=_workers.STAGE_TASK_BYTES if stage is not None else CHUNK_BYTES)
    else:  # bytes go to the workers through pipes, held on both sides meanwhile: keep them small
        chunks = iter_byte_chunks(inp, skip_bytes=skip_bytes, chunk_bytes=CHUNK_BYTES)
        if workers > 1 and inp.is_stream:  # (no size: one chunk, a small pipe, is parsed here, no worker boots)
            chunks, more = _ahead(chunks)
            workers = workers if more else 1
    staged = stage is not None and workers > 1
    header = header_at(inp, skip_bytes)  # (`tail -f`'s, where a grown file is read on: logpipe/tailheads.py)
    if workers <= 1:
        line_no = first_line
        for body, end in chunks:
            if body:
                header = first_header(body) if line_no == first_line and not skip_bytes else header
                batch = parser.parse_chunk(body, inp.name, line_no, header=header)
                yield batch, end
                line_no, header = line_no + batch.read, batch.header
        return
    stopped: list = []  # (the error that ended the reading: raised once the chunks read before it are yielded)
    chunks = _until_error(chunks, stopped)
    if pool is not None and pool.workers == workers:
        yield from parse_parallel(chunks, pool, inp.name, first_line, stage if staged else None, header)
    else:
        with WorkerPool(parser, workers) as own:
            yield from parse_parallel(chunks, own, inp.name, first_line, stage if staged else None, header)
    if stopped:
        raise stopped[0]


def _until_error(chunks, stopped: list) -> Iterator:
    """``chunks`` until reading them fails (a damaged archive), the error put in ``stopped``: the lanes
    still hold the chunks before it (as many as they parse at once), which a damaged archive keeps
    (``ingest``: its complete lines before the damage); raised at once, it dropped them."""
    try:
        yield from chunks
    except Exception as e:  # noqa: BLE001 - raised by parse_input, after the results of the chunks before it
        stopped.append(e)


def _ahead(chunks) -> tuple[Iterator, bool]:
    """``chunks`` with their first two read now (the first held until the second is there, or the
    input ends), and whether there are two: a pipe's workers start then (unless ``lanes.boots_now``
    started them), not for a pipe of one chunk. A big pipe's first chunk waits for the second's read
    (8 MB of `cat`: ~20 ms). An error met reading ahead is raised after the chunk before it."""
    it, held, error = iter(chunks), [], None
    try:
        held.extend(islice(it, 2))
    except Exception as e:  # noqa: BLE001 - raised in turn, below
        error = e

    def rest():
        yield from held
        if error is not None:
            raise error
        yield from it

    return rest(), len(held) > 1


def format_reject(r: dict) -> str:
    said = f"column {r.get('column')}:" in str(r.get("reason") or "")  # the reason names it already
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
        elif self.on_error == "warn":  # (fail: its error names the first; skip: none)
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
                    on_error: str, max_warnings: int, parser: Parser | None = None,
                    pool: WorkerPool | None = None, found: tuple | None = None) -> None:
    """``logpipe parse``: records to stdout (or --out), rejects to stderr, counts last. ``pool``: the
    workers started for ``paths`` (``lanes.boot_pool``), shared by its large inputs; ``found``: the
    inputs and errors it expanded ``paths`` to (else they are expanded here)."""
    from . import render

    inputs, errors = found if found is not None else expand_inputs(paths)
    if errors and not inputs:
        raise InputError("; ".join(errors))
    for e in errors:
        print(f"logpipe: {e}", file=sys.stderr)
    if fmt is None:
        fmt = "parquet" if out_path and out_path.endswith(".parquet") else (
            "table" if sys.stdout.isatty() and not out_path else "ndjson")
    if fmt == "parquet":
        render.parquet_out(out_path)
    counts = Counts()
    reporter = RejectReporter(on_error, max_warnings, rejects_path)
    state = {"failed": bool(errors)}

    def records():
        for inp in inputs:
            try:
                for batch, _end in parse_input(inp, parser, pool=pool, say=True):
                    counts.add(batch)
                    reporter.report(batch)
                    if batch.parsed:
                        yield batch.records
            except InputError as e:
                print(f"logpipe: error: {e}", file=sys.stderr)
                state["failed"] = True

    parser = parser or default_parser()
    if pool is not None:
        pool.use(parser)
    # RECORD_SCHEMA, plus the extra columns of a custom layout (--format-string …)
    schema = parser.schema

    try:
        if fmt == "parquet":
            from .parts import parquet_options

            # Streamed, a row group at a time, with the encodings of ingest's parts: the same rows and
            # schema, ~10% less CPU (4 alternating pairs of the bench's 1M lines: 3.90 against 4.36 s),
            # the file ~13% smaller (51 against 59 MB).
            render.write_parquet(records(), out_path, schema=schema, options=parquet_options(schema))
        else:
            # (--out through a temporary file renamed over it when complete, as Parquet's: opened "w",
            # a run that failed, --on-error fail's first reject, left the file emptied or half written)
            with render.atomic_file(out_path, "x", encoding="utf-8", newline="") if out_path else \
                    contextlib.nullcontext(sys.stdout) as out:
                render.render_table(records(), fmt, out, schema=schema)
    finally:
        reporter.close()
        print(counts.summary(), file=sys.stderr)
    failed = state["failed"]
    if failed:
        raise InputError("some inputs could not be read (see above)")


def parse_to_tables(paths: list[str], parser: Parser | None = None):
    """Parse inputs in memory for ``logpipe query --input``: (records, rejects, counts), the two
    tables in the parser's schema (RECORD_SCHEMA, plus a custom format's extra columns) and
    REJECT_SCHEMA, ready for ``db.connect(tables=…)``."""
    import pyarrow as pa

    from .schema import REJECT_SCHEMA

    parser = parser or default_parser()

    inputs, errors = expand_inputs(paths)
    if errors:
        raise InputError("; ".join(errors))
    counts = Counts()
    records, rejects = [], []
    seen: dict[tuple, str] = {}
    # One pool for the inputs that take workers, started at the first task of one: not a pool (a
    # worker process's boot, ~0.3 CPU-s) per input, as parse_input starts when it is given none.
    workers = max((default_workers(inp) for inp in inputs), default=1)
    pool = WorkerPool(parser, workers) if workers > 1 else None
    with pool or contextlib.nullcontext():
        for inp in inputs:
            key = _identity(inp) if len(inputs) > 1 else None  # (one input: nothing to be the same as)
            if key is not None and key in seen:  # (as ingest skips it: the same report a dataset gives)
                print(f"logpipe: {inp.name}: same content as {seen[key]}; read once", file=sys.stderr)
                continue
            if key is not None:
                seen[key] = inp.name
            for batch, _end in parse_input(inp, parser, say=True, pool=pool):
                counts.add(batch)
                records.append(batch.records)
                rejects.append(batch.rejects)
    return (pa.Table.from_batches(records, schema=parser.schema),
            pa.Table.from_batches(rejects, schema=REJECT_SCHEMA), counts)


WHOLE_FILE_COMPRESSION = ("gzip", "bz2", "zstd")  # (an archive's files are inputs of their own)


def text_fingerprint(inp: Input, sizes=(), algo: str | None = None, size: int | None = None) -> tuple | None:
    """``dataset.fingerprint`` of a compressed input's text (decompressed; its first ``size`` bytes when
    given): its size, hash and the hashes of its first ``sizes`` bytes; None when it cannot be read
    whole (its damage is said when it is read)."""
    from .dataset import HASH_ALGO, fingerprint_stream
    from .sources import open_binary
    from .unpack import is_damage

    try:
        stream, _ = open_binary(inp)
        with stream:
            return fingerprint_stream(stream, sizes, algo or HASH_ALGO, size)
    except Exception as e:  # noqa: BLE001 - what is not damage is raised
        if isinstance(e, InputError) or is_damage(e):
            return None
        raise


def _identity(inp: Input) -> tuple | None:
    """An input's text as ingest knows it (a compressed file's decompressed), or None (stdin, a
    pipe, a file it cannot read whole: read as it comes)."""
    from .dataset import fingerprint

    if inp.is_stream:
        return None
    try:
        if compression_of(inp) in WHOLE_FILE_COMPRESSION:
            text = text_fingerprint(inp)
            return text[:2] if text is not None else None
        return fingerprint(inp.path)[:2]
    except OSError:
        return None


# ---- ingest: archives into the dataset -------------------------------------------------------------


def dataset_parser(ds, parser: Parser | None, err) -> Parser:
    """The dataset remembers the format it was ingested with (manifest ``format_spec``): a run that
    names a format records it; a run that names none reuses the remembered one, so the mesh's own
    format keeps working for later archives."""
    from .layouts import parser_from_spec

    if parser is not None:
        spec = parser.format_spec
        if spec:
            before = ds.read_manifest().get("format_spec")
            if before and before != spec:  # (said: later runs that name none read with this one now)
                print("logpipe: note: the dataset's remembered format is replaced by the one given; its inputs "
                      "already ingested keep the rows the old one read (--force re-reads an input)", file=err)
            ds.update_manifest(lambda m: m.__setitem__("format_spec", spec))
        return parser
    spec = ds.read_manifest().get("format_spec")
    if spec:
        print("logpipe: using the format remembered in the dataset's manifest (give --format-string to change it)",
              file=err)
        return parser_from_spec(spec)
    return default_parser()


def compression_of(inp: Input) -> str:
    from .unpack import HEAD_BYTES, detect_compression

    with open(inp.path, "rb") as f:
        return detect_compression(f.read(HEAD_BYTES))


def is_plain(inp: Input) -> bool:
    return compression_of(inp) == "plain"
