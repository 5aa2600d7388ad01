"""The lanes that parse: how many (cores, the memory budget), and the pool of them: this process
(a thread of it) and one worker process per further lane. What a lane does with a task is in
``logpipe/workers.py``.

This module imports neither polars nor pyarrow (nor logpipe.parse, which does): a command can
start its worker processes first thing (``boot_pool``), so that they import those while it does
too, and give the pool its parser once it is built (``WorkerPool.use``).
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from typing import TYPE_CHECKING

from . import alloc
from .errors import UsageError
from .sources import CHUNK_BYTES, Input, holds_more

if TYPE_CHECKING:
    from .parse import Parser


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


def default_workers(inp: Input) -> int:
    """Worker processes for ``inp``: none (1) for a small file, else one per core, as many as fit in
    the memory budget (``memory_workers``); ``LOGPIPE_WORKERS`` overrides. None for stdin when it is
    closed (``<&-``): its reader only says so (``sources``), so no worker process boots before that."""
    import sys

    env = os.environ.get("LOGPIPE_WORKERS", "").strip()
    if env and (not env.isdigit() or int(env) < 1):
        raise UsageError(f"LOGPIPE_WORKERS={env!r}: expected a whole number of worker processes, 1 or more")
    if inp.is_stdin and sys.stdin is None:
        return 1
    if env:
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
    if inp.is_stream:
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


def boot_pool(paths: list[str], ingest: bool = True, rerun_of: str | None = None) -> "tuple[WorkerPool | None, tuple[list, list[str]]]":
    """The workers an ingest (or ``logpipe parse``) of ``paths`` will use, started now: a command
    calls this first thing, so that they import polars and pyarrow (~0.3 s) while it does too; it
    gives them the parser later (``WorkerPool.use``). None when it will parse in this process alone.
    With them, ``paths`` expanded (``sources.expand_inputs``: inputs and errors), which the command
    then reads: the inputs the pool was sized for, not a second listing of the directories.
    Not started when the ingest is a rerun, the dataset ``rerun_of`` (its ``--data``; None with
    ``--force``) having every input already (``ingested_before``): it starts at its first task, if any."""
    from .sources import expand_inputs

    found = expand_inputs(paths)
    inputs = found[0]
    workers = pool_workers(inputs, ingest)
    pool = WorkerPool(None, workers) if workers > 1 else None
    if pool is not None and boots_now(inputs, ingest) and not (ingest and ingested_before(inputs, _manifest_entries(rerun_of, inputs))):
        pool.start()
    return pool, found


def pool_workers(inputs: list[Input], ingest: bool = True) -> int:
    """The lanes of the pool for ``inputs``: ``ingest_workers``, or for ``logpipe parse`` those of its largest input."""
    return ingest_workers(inputs) if ingest else max((default_workers(i) for i in inputs), default=1)


# A pipe has no size: how long the pool's start waits to know whether it holds more than a chunk.
PIPE_WAIT = 0.05


def boots_now(inputs: list[Input], ingest: bool = True) -> bool:
    """Whether the pool for ``inputs`` starts before their first task: when a file takes workers, or
    a pipe (stdin, ``<(…)``: no size) holds more than a chunk (CHUNK_BYTES) within PIPE_WAIT
    (``sources.holds_more``: `cat` of a large log). Else a pipe starts it when its second chunk is
    there (``pipeline.parse_input``): a small pipe (10 lines: one chunk) is parsed with no worker
    process (`head -10 … | logpipe parse -`: 0.47 → 0.27 s, 0.41 → 0.24 CPU-s). Reading 8 MB of a
    60 MB `cat` ahead took ~21 ms, before polars is imported: its workers still fork first thing."""
    if pool_workers([i for i in inputs if not i.is_stream], ingest) > 1:
        return True
    return any(default_workers(i) > 1 and holds_more(i, CHUNK_BYTES, PIPE_WAIT) for i in inputs if i.is_stream)


def ingested_before(inputs: list[Input], entries: list[dict]) -> bool:
    """Whether every one of ``inputs`` is a file that a complete entry of ``entries`` (a dataset's
    manifest) recorded under its name at its present size: a rerun, which most likely reads nothing,
    so its workers need not boot (~0.5 s of CPU: a process importing polars and pyarrow) unless an
    input turns out to be new after all (``WorkerPool.executor`` starts them at its first task)."""
    done = {(e.get("path"), e.get("size")) for e in entries if e.get("state") == "complete"}
    try:
        return bool(inputs) and all(not i.is_stream and (i.name, i.size()) in done for i in inputs)
    except OSError:
        return False


def _manifest_entries(data_dir: str | None, inputs: list[Input] = ()) -> list[dict]:
    """The entries of the manifest at ``data_dir`` (``dataset.MANIFEST``), read without importing
    ``logpipe.dataset`` (pyarrow); none when there is none (yet) or it cannot be read, and none when
    one of ``inputs`` is a stream or a name not in its text at all: an input it has not seen, so not a rerun
    (``ingested_before``), known without parsing it. A month of nightly ingests (18,000 entries, a
    14 MB manifest) took ~0.15 s and +84 MB to parse here, before the workers could start; the search
    of its bytes takes a few milliseconds."""
    import json

    if data_dir is None:
        return []
    try:
        with open(os.path.join(data_dir, "_manifest.json"), "rb") as f:
            text = f.read()
        # The manifest is written with json.dumps' defaults (ASCII, escaped): a name is in it so.
        if any(i.is_stream or json.dumps(i.name).encode() not in text for i in inputs):
            return []
        entries = json.loads(text).get("inputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return entries if isinstance(entries, list) else []


def memory_workers(budget: str | None = None) -> int:
    """How many workers fit in ``budget`` (``LOGPIPE_MEMORY``, default 1G) beside the parent."""
    return max(1, int((budget_mib(budget) - PARENT_MIB) // WORKER_MIB))


def budget_mib(budget: str | None = None) -> float:
    """``budget``, else ``$LOGPIPE_MEMORY``, else DEFAULT_MEMORY, in MiB."""
    text = (budget if budget is not None else os.environ.get("LOGPIPE_MEMORY", "")).strip() or DEFAULT_MEMORY
    return parse_size_mib(text, "LOGPIPE_MEMORY")


def parse_size_mib(text: str, name: str) -> float:
    """``1G``, ``1.5GiB``, ``1500M``, ``800MB`` as MiB (binary units); a clear error for anything else."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?", text.strip(), re.IGNORECASE)
    if not m:
        raise UsageError(f"{name}={text!r}: expected a size with a unit, such as 1G or 1500M")
    return float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


# Worker processes this process has started (WorkerPool.executor): the tests count the boots of a run.
started_processes = 0


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

            ctx = multiprocessing.get_context(_start_method())
            from . import native

            native.library()  # cut.c is built (once per machine) here, not by every worker at once
            # One polars thread per lane: the lanes are the parallelism; more threads only contend.
            os.environ.setdefault("POLARS_MAX_THREADS", "1")
            alloc.setup()  # allocators for the workers (logpipe/alloc.py)
            procs = ProcessPoolExecutor(self.workers - 1, mp_context=ctx, initializer=_init_worker) \
                if self.workers > 1 else None
            global started_processes
            started_processes += self.workers - 1
            with _sigint_held():  # the processes start now: Ctrl-C waits for them from their first instruction
                self._executor = _Lanes(self.parser, procs, self.workers)
        return self._executor

    @property
    def started(self) -> bool:
        return self._executor is not None

    def start(self) -> "WorkerPool":
        """Start the worker processes now (they take ~0.3 s to boot), not at the first task."""
        self.executor()
        return self

    def close(self) -> None:
        """Shut the lanes down, their tasks in flight ended first. A Ctrl-C while it waits (a worker
        process slow to end under load, or stuck) ends the wait: the worker processes are killed
        (``_Lanes.kill``), not waited for, here or at exit, and the Ctrl-C is raised."""
        if self._executor is None:
            return
        lanes, self._executor = self._executor, None
        try:
            lanes.shutdown(wait=True, cancel_futures=True)
        except BaseException:
            lanes.kill()
            raise

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _start_method() -> str:
    """How worker processes start: forked from this process while it is still one thread that has
    imported neither polars nor pyarrow (``boot_pool``, first thing in a command), else spawned.

    A forked worker starts its imports at once; a spawned one first starts an interpreter and
    imports this command's modules again (~60 ms before its own imports begin, and ~25 ms of this
    process's time). Fork is not safe once polars or pyarrow is loaded: their thread pools and
    allocators' locks do not survive it (polars warns so), hence spawn then. Either way the parser
    travels by pickle (``_Lanes.use``)."""
    import multiprocessing
    import sys

    heavy = any(name in sys.modules for name in ("polars", "pyarrow"))
    if heavy or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"


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

    def kill(self) -> None:
        """Stop now: the worker processes killed (a task of theirs is lost), nothing waited for. The
        executor's thread then sees them gone and ends, so Python's exit does not wait for them."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self.procs is None:
            return
        # (Python 3.14's ProcessPoolExecutor.kill_workers; before it, its _processes: pid -> Process)
        if hasattr(self.procs, "kill_workers"):
            self.procs.kill_workers()
        else:
            for proc in list((getattr(self.procs, "_processes", None) or {}).values()):
                proc.kill()
        self.procs.shutdown(wait=False, cancel_futures=True)


def lane_parser() -> "Parser | None":
    """The parser of the lane this runs in: this process's, or a worker process's."""
    return getattr(_LANE, "parser", None) or _WORKER_PARSER


_WORKER_PARSER: "Parser | None" = None  # a worker process's parser (_in_worker), and its pickle
_WORKER_PICKLED: bytes | None = None
IN_WORKER = False  # this process is a pool's worker process (its tasks' results are pickled to the parent)


def _init_worker() -> None:
    import importlib

    global IN_WORKER
    IN_WORKER = True
    alloc.setup(this_process=True)  # (a forked worker has its parent's glibc malloc, not the environment's)

    parse = importlib.import_module(".parse", __package__)  # polars, pyarrow: while booting, not at the first task
    # A terminal's Ctrl-C reaches the whole process group. The main process stops the run (the
    # tasks in flight end, then their files are dropped); a worker interrupted while waiting for a
    # task would only print a traceback. After the imports: polars installs a SIGINT handler of its
    # own when imported. Until here SIGINT was blocked (_sigint_held); one that came is dropped now.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # The parent builds its parser and probes the input meanwhile (~70 ms in `make bench`), before
    # this process's first range is read. So it loads and compiles the built-in grammars now: the
    # parser the parent sends is rebuilt from them (``_in_worker``) in ~0.2 ms, whatever its options
    # (a custom format only adds its own), with what its first batch would build (``Parser.prepare``),
    # and the Parquet writer's modules (parts.py: pyarrow.parquet, pyarrow.compute; ~50-70 ms).
    parse.Parser().prepare()
    importlib.import_module(".parts", __package__)
    _freeze()


def _freeze() -> None:
    # The objects of start-up (modules, grammars, the parser) are kept out of the cyclic GC, which
    # runs less often: a batch makes few Python objects and almost no cycles. ~3% less CPU in `make bench`'s ingest.
    gc.freeze()
    gc.set_threshold(*alloc.GC_THRESHOLDS)


def _in_worker(pickled: bytes | None, fn, *args):
    """Run task ``fn(*args)`` in a worker process with the parser ``pickled`` (``_Lanes``)."""
    global _WORKER_PARSER, _WORKER_PICKLED
    if pickled is not None and pickled != _WORKER_PICKLED:
        import pickle

        _WORKER_PARSER, _WORKER_PICKLED = pickle.loads(pickled), pickled
        _freeze()
    return fn(*args)
