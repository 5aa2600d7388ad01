"""Worker processes: how many (cores, the memory budget), the pool, and what a worker does with a
task (parse a byte range or chunk; for ingest, also stage its rows as hidden Parquet files). Stage 1
on both cores; ``logpipe/pipeline.py`` decides when to use them.
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from . import alloc
from .errors import InputError, UsageError
from .sources import CHUNK_BYTES, FileRange, Input, iter_byte_chunks

if TYPE_CHECKING:
    import pyarrow as pa

    from .parse import ParsedBatch, Parser

# This module imports neither polars nor pyarrow (nor logpipe.parse, which does): a command can
# start its worker processes first thing (``WorkerPool.start``), so that they import those while
# this process does too, and give the pool its parser once it is built (``WorkerPool.use``).


# Inputs at least this large are parsed by worker processes (both cores); smaller ones in-process,
# where starting workers would cost more than it saves.
PARALLEL_MIN_BYTES = 48 << 20
# As many small inputs take the workers too, however small: each costs ~10-20 ms of fixed work.
PARALLEL_MIN_INPUTS = 32


# Memory: the whole process tree stays within LOGPIPE_MEMORY (default 1 GiB). Measured with `make
# bench` (tree RSS): a worker peaks at ~320-360 MiB (polars, pyarrow, one task in flight), the parent
# at ~180-250 MiB besides. So the default fits two workers (the parent's own lane and one worker
# process: WorkerPool) however many cores there are; a larger budget lets more cores work.
# LOGPIPE_WORKERS=N sets the count outright.
DEFAULT_MEMORY = "1G"
WORKER_MIB, PARENT_MIB = 384, 256
_SIZE_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


# With workers, ingest's tasks of a plain file are this large: a worker reads its range, parses it
# in CHUNK_BYTES pieces (its memory stays bounded) and writes one Parquet file per day (~50k rows of
# Istio lines). Compressed inputs and stdin are sent to the workers in CHUNK_BYTES tasks.
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


def default_workers(inp: Input) -> int:
    """Worker processes for ``inp``: none (1) for a small file, else one per core, as many as fit in
    the memory budget (``memory_workers``); ``LOGPIPE_WORKERS`` overrides."""
    env = os.environ.get("LOGPIPE_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise UsageError(f"LOGPIPE_WORKERS={env!r}: expected a whole number of worker processes, 1 or more")
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, memory_workers())
    if workers < 2:
        return 1
    try:
        size = inp.size()
    except OSError:
        size = None
    return workers if size is None or size >= PARALLEL_MIN_BYTES else 1


def is_small(inp: Input) -> bool:
    """A file too small to be split among the workers (it is parsed whole, by one of them or here)."""
    if inp.is_stdin:
        return False
    try:
        return inp.size() < PARALLEL_MIN_BYTES
    except OSError:
        return False


def ingest_workers(inputs: list[Input]) -> int:
    """Workers for an ingest of ``inputs``: those of its largest input, or, when its small inputs
    add up to a large one or are many, those of a large input (each small input is then one
    worker's task)."""
    counts = [default_workers(i) for i in inputs if not is_small(i)]
    small = [i.size() for i in inputs if is_small(i)]
    if len(small) > 1 and (sum(small) >= PARALLEL_MIN_BYTES or len(small) >= PARALLEL_MIN_INPUTS):
        counts.append(default_workers(Input("-")))  # as for an input of unknown size
    return max(counts, default=1)


def boot_pool(paths: list[str], ingest: bool = True) -> "WorkerPool | None":
    """The workers an ingest (or ``logpipe parse``) of ``paths`` will use, started now: a command
    calls this first thing, so that they import polars and pyarrow (~0.3 s) while it does too; it
    gives them the parser later (``WorkerPool.use``). None when it will parse in this process alone."""
    from .sources import expand_inputs

    inputs = expand_inputs(paths)[0]
    workers = ingest_workers(inputs) if ingest else max((default_workers(i) for i in inputs), default=1)
    return WorkerPool(None, workers).start() if workers > 1 else None


def memory_workers(budget: str | None = None) -> int:
    """How many workers fit in ``budget`` (``LOGPIPE_MEMORY``, default 1G) beside the parent."""
    text = (budget if budget is not None else os.environ.get("LOGPIPE_MEMORY", "")).strip() or DEFAULT_MEMORY
    mib = parse_size_mib(text, "LOGPIPE_MEMORY")
    return max(1, int((mib - PARENT_MIB) // WORKER_MIB))


def parse_size_mib(text: str, name: str) -> float:
    """``1G``, ``1.5GiB``, ``1500M``, ``800MB`` as MiB (binary units); a clear error for anything else."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?", text.strip(), re.IGNORECASE)
    if not m:
        raise UsageError(f"{name}={text!r}: expected a size with a unit, such as 1G or 1500M")
    return float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


class WorkerPool:
    """``workers`` lanes that parse with ``parser``: this process (a thread of it) and ``workers - 1``
    worker processes, started on first use (``start`` starts them early, so that they boot while
    this process does something else) and kept for every input. The parser may come later
    (``use``), before the first task: the processes can boot before it is built.

    Why this process works too: it has imported polars and pyarrow and built the parser already; one
    more worker process would repeat that (~0.45 s of CPU) and pickle its results back. Meanwhile
    this process only waits: for the next task, or for the workers' results."""

    def __init__(self, parser: "Parser | None", workers: int):
        self.parser, self.workers = parser, workers
        self._executor: _Lanes | None = None

    def use(self, parser: "Parser") -> "WorkerPool":
        """Parse with ``parser`` from now on (the tasks of every lane)."""
        self.parser = parser
        if self._executor is not None:
            self._executor.use(parser)
        return self

    def executor(self):
        """The lanes, their worker processes started (booting) on the first call."""
        if self._executor is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: polars' thread pool does not survive fork. The parser travels by pickle.
            ctx = multiprocessing.get_context("spawn")
            from . import native

            native.library()  # cut.c is built (once per machine) here, not by every worker at once
            # One polars thread per lane: the lanes are the parallelism; more threads only contend.
            os.environ.setdefault("POLARS_MAX_THREADS", "1")
            alloc.setup()  # allocators for the workers (logpipe/alloc.py)
            procs = ProcessPoolExecutor(self.workers - 1, mp_context=ctx, initializer=_init_worker) \
                if self.workers > 1 else None
            with _sigint_held():  # the processes start now: Ctrl-C waits for them from their first instruction
                self._executor = _Lanes(self.parser, procs, self.workers)
        return self._executor

    def start(self) -> "WorkerPool":
        """Start the worker processes now (they take ~0.3 s to boot), not at the first task."""
        self.executor()
        return self

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _sigint_held():
    """SIGINT blocked in this thread while it starts worker processes: they inherit the block (a
    Ctrl-C while one boots, importing polars for ~0.3 s, would print its traceback), and
    ``_init_worker`` then ignores it. This process gets a Ctrl-C that came meanwhile right after."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


_LANE = threading.local()  # in the thread of this process's own lane: .lanes (its _Lanes), .parser


class _Lanes:
    """An executor of ``lanes`` lanes: the first runs tasks in this process, the others forward them
    to ``procs`` (``lanes - 1`` processes; None for one lane). A task goes to whichever lane is free
    first (one queue, one thread per lane), as it would to ``lanes`` processes. A worker process gets
    the parser with each task, as its pickle (a few hundred bytes: the parser's options), and
    rebuilds it when it differs from the last one's (``_in_worker``)."""

    def __init__(self, parser: "Parser | None", procs, lanes: int):
        from concurrent.futures import ThreadPoolExecutor

        self.procs, self.lanes, self._roles = procs, lanes, iter(range(lanes))
        self._threads = ThreadPoolExecutor(lanes, thread_name_prefix="logpipe-lane", initializer=self._role)
        self.parser, self._pickled = None, None
        for _ in range(lanes - 1):  # the worker processes boot now
            procs.submit(int)
        self.use(parser)

    def use(self, parser: "Parser | None") -> None:
        """Parse with ``parser``; the worker processes build it now, not at their first task."""
        import pickle

        if parser is None or parser is self.parser:
            return
        self.parser, self._pickled = parser, pickle.dumps(parser)
        for _ in range(self.lanes - 1):
            self.procs.submit(_in_worker, self._pickled, int)

    def _role(self) -> None:
        if next(self._roles) == 0:
            _LANE.lanes = self

    def submit(self, fn, *args):
        return self._threads.submit(self._run, fn, args)

    def _run(self, fn, args):
        if getattr(_LANE, "lanes", None) is self:
            _LANE.parser = self.parser
            return fn(*args)
        return self.procs.submit(_in_worker, self._pickled, fn, *args).result()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        if self.procs is not None:
            self.procs.shutdown(wait=wait, cancel_futures=cancel_futures)


def _worker_parser() -> "Parser | None":
    """The parser of the lane this runs in: this process's, or a worker process's."""
    return getattr(_LANE, "parser", None) or _WORKER_PARSER


def parse_parallel(chunks, pool: WorkerPool, source: str, first_line: int, stage: tuple | None = None):
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
            n = body.lines if isinstance(body, FileRange) else body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            task = executor.submit(_stage_chunk, body, source, line_no, *stage) if stage else \
                executor.submit(_parse_chunk, body, source, line_no)
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


_WORKER_PARSER: "Parser | None" = None
_WORKER_PICKLED: bytes | None = None


def _init_worker() -> None:
    import importlib

    importlib.import_module(".parse", __package__)  # polars, pyarrow, the grammars: while booting, not at the first task
    # A terminal's Ctrl-C reaches the whole process group. The main process stops the run (the
    # tasks in flight end, then their files are dropped); a worker interrupted while waiting for a
    # task would only print a traceback. After the imports: polars installs a SIGINT handler of its
    # own when imported. Until here SIGINT was blocked (_sigint_held); one that came is dropped now.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _freeze()


def _freeze() -> None:
    # The objects of start-up (modules, grammars, the parser) are kept out of the cyclic GC, which
    # runs less often: a batch makes few Python objects and almost no cycles. ~3% less CPU in `make bench`'s ingest.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _in_worker(pickled: bytes | None, fn, *args):
    """Run task ``fn(*args)`` in a worker process with the parser ``pickled`` (``_Lanes``)."""
    global _WORKER_PARSER, _WORKER_PICKLED
    if pickled is not None and pickled != _WORKER_PICKLED:
        import pickle

        _WORKER_PARSER, _WORKER_PICKLED = pickle.loads(pickled), pickled
        _freeze()
    return fn(*args)


def _parse_chunk(body: "bytes | FileRange", source: str, first_line: int) -> "ParsedBatch":
    batch = _worker_parser().parse_chunk(body.read() if isinstance(body, FileRange) else body, source, first_line)
    _check_lines(body, batch.read)
    return batch


def _stage_chunk(body: "bytes | FileRange", source: str, first_line: int, root: str, prefix: str) -> StagedBatch:
    from .batches import BatchBuffer

    buf, line_no, blank = BatchBuffer(), first_line, 0
    for piece in body.pieces(CHUNK_BYTES) if isinstance(body, FileRange) else _pieces(body, CHUNK_BYTES):
        batch = _worker_parser().parse_chunk(piece, source, line_no)
        line_no += batch.read
        blank += batch.blank
        buf.add(batch)
    _check_lines(body, line_no - first_line)
    return _stage_buffer(buf, line_no - first_line, blank, root, prefix)


def _check_lines(body: "bytes | FileRange", read: int) -> None:
    """A range must hold the lines counted in it when the file was first read (its line numbers,
    and the next range's, depend on it): else the file was rewritten meanwhile."""
    if isinstance(body, FileRange) and read != body.lines:
        raise body.changed(f"bytes {body.start:,} to {body.stop:,} hold {read:,} lines now, not {body.lines:,}")


def _stage_input(path: str, skip_bytes: int, first_line: int, root: str, prefix: str,
                 flush_rows: int | None = None) -> tuple[list[tuple[StagedBatch, int]], str | None]:
    """A whole input (a small file, plain or compressed) read, parsed and staged by one worker, as
    the in-process path does it, so that the workers parse several small inputs at once. Returns
    ``(staged, offset)`` for each flush, and the message of the ``InputError`` that stopped a
    corrupt archive (its complete lines before the damage are staged)."""
    from .batches import BatchBuffer

    inp = Input(path)
    out: list[tuple[StagedBatch, int]] = []
    buf = BatchBuffer(flush_rows) if flush_rows else BatchBuffer()
    line_no, blank, first, end, error, held = first_line, 0, first_line, skip_bytes, None, 0
    try:
        for body, end in iter_byte_chunks(inp, skip_bytes=skip_bytes):
            if body:
                batch = _worker_parser().parse_chunk(body, inp.name, line_no)
                line_no += batch.read
                blank += batch.blank
                buf.add(batch)
                held += len(body)
                # No more than a file-range task holds: a worker stays within ~0.35 GiB
                if buf.due() or held >= STAGE_TASK_BYTES:
                    out.append((_stage_buffer(buf, line_no - first, blank, root, prefix), end))
                    first, blank, held = line_no, 0, 0
    except InputError as e:
        error = str(e)
    if line_no > first or not out:
        out.append((_stage_buffer(buf, line_no - first, blank, root, prefix), end))
    return out, error


def _stage_buffer(buf, read: int, blank: int, root: str, prefix: str) -> StagedBatch:
    """Write what ``buf`` holds to hidden files (``dataset.stage_files``): the parent gets the counts."""
    from .dataset import stage_files
    from .parse import format_counts

    records, rejects = buf.take()
    formats: dict = {}
    undated, tmin, tmax = 0, None, None
    if records is not None:
        formats = format_counts(records)
        undated, tmin, tmax = time_bounds(records)
    pairs = stage_files(root, records, rejects, prefix=prefix)
    if rejects is None:
        from .schema import REJECT_SCHEMA

        rejects = REJECT_SCHEMA.empty_table()
    return StagedBatch(read, blank, records.num_rows if records is not None else 0, rejects,
                       formats, undated, tmin, tmax, pairs)


def stage_input_async(pool: "WorkerPool", inp: Input, skip_bytes: int, first_line: int, stage: tuple,
                      flush_rows: int | None = None):
    """Start ``_stage_input`` of ``inp`` in ``pool``; ``staged_result`` of the future is what
    ``parse_input`` would yield for it (in order, then the ``InputError`` of a corrupt archive)."""
    return pool.executor().submit(_stage_input, inp.path, skip_bytes, first_line, *stage, flush_rows)


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
    import pyarrow.compute as pc

    st = records.column("start_time")
    mm = pc.min_max(st)
    return st.null_count, mm["min"].as_py(), mm["max"].as_py()
