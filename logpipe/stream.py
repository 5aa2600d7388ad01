"""``logpipe stream``: stdin, as it arrives, into the dataset in micro-batches, with live alerts.

A reader thread (logpipe/linereader.py) reads the raw bytes of stdin (``select`` + ``os.read``, so a
line is seen as soon as it is written, not when a buffer fills) and hands complete lines to the main thread through a
bounded queue (memory stays bounded however fast lines arrive: when the queue is full the reader
stops reading and the pipe pushes back on the writer). The main thread gathers lines into a batch
and flushes it every ``flush_rows`` lines or ``flush_seconds`` after the batch's first line,
whichever comes first: parse, alert, append to the dataset (atomic part files), tee. While a backlog
is read (lines waiting in the queue), its flushes are parsed and alerted on together (ALERT_ROWS),
then each written as before.

Nothing read is lost. On EOF the last line is kept even without a newline. On SIGINT or SIGTERM
the reader stops reading, hands over everything it has (a partial line included, which then
becomes a reject), the open batch is flushed, small parts are compacted and the summary printed;
the exit code is 0 (EOF), 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP). A SIGINT meanwhile (Ctrl-C
again, or one after a SIGTERM or SIGHUP, while a backlog read ahead is stored) ends it at once,
saying from which line on nothing was stored (exit 130); a SIGTERM or SIGHUP meanwhile does not. A signal it was started ignoring (nohup's SIGHUP) stays ignored. When stdout's reader goes away
(``--tee | head``), the --alerts-out file's (``>(notify)``) or stderr's (``2>&1 | head``), the batch in
hand is still written, then the stream ends with its summary (exit 0).
"""
from __future__ import annotations

import errno
import os
import queue
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import IO

from .errors import DatasetError, no_space
from .linereader import _EOF, _STOPPED, Damage, LineReader
from .runtimes import parts_at_end
from .tailheads import first_header

QUEUE_ITEMS = 8  # reads in flight between the threads (≈ 8 MiB, plus any long lines)
MAX_BATCH_BYTES = 8 << 20  # a batch is flushed early past this many bytes
PARSE_LINES = 10_000  # lines per parser call: ~3 MB; a call has a fixed cost of ~10 ms (1,000 took 3x as long)
# Rows per alert check. Its two DuckDB queries cost ~20 ms each whatever their rows (binding and
# planning the egress views), +~2 ms per 1,000 rows: a flush is one check (it was one per 5,000 rows),
# and while a backlog is read (lines waiting in the queue) its flushes are checked together (_flush),
# up to this many rows, a batch's bound (MAX_FLUSH_ROWS). 200k bench lines: 42 checks → 13, with the
# denials view's candidates (alerts.py) 6.1 → 3.8 s (bench/PERFORMANCE.md, session 40); peak RSS
# ~335 → ~360 MB (a --flush-rows 20000 stream's was 350-358 MB, now 365-369 MB).
ALERT_ROWS = 20_000
# A check's alerts are in event time order within each 5,000 rows of a batch: each was a check, and
# alerts whose lines are out of time order (several pods' backlogs) keep the order they had.
ALERT_ORDER_ROWS = 5_000
MAX_FLUSH_ROWS = 20_000  # a larger batch would not fit the memory bound (300 MiB, measured)
FORMAT_CHECK_LINES = 50  # access lines seen before a stream says its format looks wrong (_check_format)
# Lines, none an access line, before a stream says it may be the wrong log (a proxy's start-up prints
# ~100 lines of istio-agent's before its first access line, an idle one a few a minute after that).
NO_ACCESS_LINES = 500
# Each compaction of a stream merges its prefix's files again, the file its last compaction made
# among them, so the parts of one prefix (a "generation") are capped: past GENERATION_ROWS rows (and
# rejects: its reject files are merged too) the stream compacts them and starts a new prefix; a
# compaction then rewrites at most that many rows, not everything the stream wrote so far.
GENERATION_ROWS = 20_000
STREAM_PREFIX = "stream"  # its part files' names: stream<id>g<generation>-<uuid>.parquet
FINAL_COMPACT_WAIT = 10.0  # seconds a stream's last compaction waits for queries reading the dataset
SOURCE = "<stdin>"


@dataclass
class StreamOptions:
    flush_rows: int = 10_000
    flush_seconds: float = 2.0
    tee: bool = False
    alerts: bool = True
    alerts_format: str = "text"  # text | ndjson
    alerts_out: str | None = None  # path, "-" (stdout); None: stderr for text, stdout for ndjson
    window_seconds: float = 300.0
    burst_threshold: int = 5
    compact_every: int = 32  # compact this process's parts after this many new part files
    source: str = SOURCE
    max_warnings: int = 20  # malformed lines shown on stderr (all of them go to the rejects table)
    keep_replayed: bool = False  # store lines an earlier stream into the dataset stored (replayguard.py)
    pods: str | None = None  # --pods FILE (kubectl get pods -A -o json): read once, names the alerts' clients


class Streamer:
    """One ``logpipe stream`` run: build it (opens the dataset, loads known destinations), then ``run()``."""

    def __init__(self, data_dir: str, opts: StreamOptions, *, parser=None, stdin_fd: int = 0,
                 stdout: IO[str] | None = None, stderr: IO[str] | None = None):
        from .alerts import AlertRules, AlertWriter, seen_in_dataset
        from .compaction import COMPACT_MIN_FILES
        from .dataset import Dataset
        from .errors import UsageError
        from .batches import Counts
        from .pipeline import dataset_parser

        self.opts = opts
        self.stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr
        self.stderr = _Said(self._stderr, self._closed)  # (what it says: a reader gone ends the stream)
        self.pipe_closed = False
        self.closed_out = "stdout"  # (what pipe_closed says went away: stdout, stderr, or the --alerts-out file)
        self._alerts_file = None
        if opts.flush_rows < 1:
            raise UsageError(f"--flush-rows must be at least 1, not {opts.flush_rows}: a part file every N lines, "
                             "e.g. --flush-rows 10000 (the default)")
        if opts.flush_seconds <= 0:
            raise UsageError("--flush-seconds must be above 0, e.g. --flush-seconds 2")
        if opts.flush_rows > MAX_FLUSH_ROWS:
            raise UsageError(f"--flush-rows {opts.flush_rows} would hold too much in memory; use at most {MAX_FLUSH_ROWS}"
                             " (`logpipe compact` merges small parts later)")
        alerts_to_stdout = opts.alerts and (opts.alerts_out == "-" or (
            opts.alerts_out is None and opts.alerts_format == "ndjson"))
        if opts.tee and alerts_to_stdout:
            raise UsageError("--tee and the alerts (--alerts-out -, or ndjson alerts) would both write to stdout; send "
                             "the alerts to a file with --alerts-out FILE")
        if (opts.tee or alerts_to_stdout) and self.stdout is None:
            raise UsageError("stdout is closed, so --tee / ndjson alerts have nowhere to go; redirect stdout or drop them")
        pods = None
        if opts.alerts and opts.pods is not None:  # (before anything is made: a bad file is one error)
            from .pods import load_pods

            pods = load_pods(opts.pods)
        if opts.alerts and opts.alerts_out and not alerts_to_stdout:
            try:
                self._alerts_file = open(opts.alerts_out, "a", encoding="utf-8")
            except OSError as e:
                raise UsageError(f"cannot open --alerts-out {opts.alerts_out}: {e.strerror}; check the path") from None
        self.dataset = Dataset(data_dir, create=True)
        try:  # a stream killed while it merged its parts left some of their rows hidden: shown again now
            self.dataset.finish_compactions()
        except (OSError, DatasetError) as e:  # (its own compactions say so too, and go on)
            print(f"logpipe: compaction skipped: {e}", file=self.stderr)
        # one killed while it showed a batch's files: the batch shown and its lines remembered now
        from .replayguard import ReplayGuard, finish_publishes

        try:
            if finished := finish_publishes(self.dataset.root):
                print(f"logpipe: finished storing {finished} batch(es) that a stopped stream was writing",
                      file=self.stderr)
        except OSError as e:
            print(f"logpipe: could not finish a stopped stream's batch: {e.strerror or e}", file=self.stderr)
        # and one killed while it wrote a part left its hidden file, which no ingest may come to sweep
        self.dataset.sweep_stale(f"*/.{STREAM_PREFIX}*.tmp")
        # The dataset's remembered format when none is given; a given one is remembered (as ingest does).
        self.parser = dataset_parser(self.dataset, parser, self.stderr)
        self.counts = Counts()
        self.format_checked = False  # _check_format
        self.access_checked = False  # (_check_format: no access line at all)
        self.first_reject = None
        self.stream_id = uuid.uuid4().hex[:8]
        # (another stream's lines: not again)
        self.guard = ReplayGuard(self.dataset.root, self.stream_id, look_up=not opts.keep_replayed)
        self.guard_failed = False
        # (and the lines an ingest stored: looked up in its files, logpipe/ingested.py)
        self.ingested = None
        if not opts.keep_replayed:
            from .ingested import Ingested

            self.ingested = Ingested(self.dataset)
        self.replayed_rows = 0
        self.fine_layouts: set[str] = set()  # (layouts whose start times had a fraction of a second)
        self.generation = 0
        self.prefix = f"{STREAM_PREFIX}{self.stream_id}g0"
        self.rules = None
        if opts.alerts:
            from .settings import load_settings

            settings = load_settings(data_dir)
            known, unreached, seen = seen_in_dataset(data_dir, settings)
            self.rules = AlertRules(known, unreached=unreached, settings=settings, window_seconds=opts.window_seconds,
                                    burst_threshold=opts.burst_threshold, pods=pods, seen=seen)
        out = self.stdout if alerts_to_stdout else (self._alerts_file or self._stderr)
        self.alert_writer = AlertWriter(out if opts.alerts else None, opts.alerts_format)
        self.stdin_fd = stdin_fd
        self.next_line = 1
        self.header: str | None = None  # (`tail -f`'s header line in effect after the lines so far)
        self.rows_written = 0
        self.parts_written = 0
        self.gen_parts = 0  # part files of the current prefix (after a compaction: 1 per day)
        self.gen_rejects = 0  # reject files of the current prefix (after a compaction: 1)
        self.gen_rows = 0  # rows and rejects of the current prefix
        self.compacted = 0
        self._merged_file = False  # (this generation's parts merged once already: the merged file is one of them)
        self.compact_min_files = COMPACT_MIN_FILES
        self.signal: int | None = None
        self.unstored_from: int | None = None  # first line of a batch being written
        # first line neither stored nor being shown (what a batch being shown holds is finished by the
        # next stream if this one is killed: replayguard.Publishing): what a second Ctrl-C loses
        self.stored_to = 1
        self.warned = 0

    # ---- signals ------------------------------------------------------------------------------------

    def _on_signal(self, signum, _frame) -> None:
        if self.signal is None:
            self.signal = signum
            if signum == signal.SIGINT:  # (what was read ahead, a backlog's 8 MiB, takes seconds to store)
                self._say_now("logpipe: Ctrl-C: storing the lines read so far, then stopping (Ctrl-C again"
                              " stops at once, without them)")
        elif signum == signal.SIGINT:  # (Ctrl-C while it stores what it read, after a Ctrl-C or another signal: now)
            self._stop_now()
        # A SIGTERM (or SIGHUP) after the first signal is not "now": it is a supervisor's, whose "now" is
        # SIGKILL after its grace period (Kubernetes, docker stop, systemd), and the kubelet sends SIGTERM
        # again, granting the whole grace period again, when it restarts during one (pod-termination docs):
        # the stream goes on storing what it read.

    def _stop_now(self) -> None:
        """End the process at once, saying from which line on nothing was stored (exit 130). As a
        `kill -9` there: a batch being shown is finished by the next stream (replayguard.finish_publishes),
        a merge being swapped in by the next compaction; the alerts and --tee are flushed at each write."""
        # (after a SIGTERM it said "a second Ctrl-C": the first one the user pressed)
        how = "a second Ctrl-C" if self.signal == signal.SIGINT else f"Ctrl-C after {signal.Signals(self.signal).name}"
        self._say_now(f"logpipe: stopped at once by {how}: lines from {self.stored_to} on were not"
                      " stored (a restarted stream stores them when it is handed them again)")
        os._exit(130)

    def _say_now(self, text: str) -> None:
        """``text`` on stderr from a signal handler: written to its descriptor, not through the file
        object, whose write the handler may have interrupted (a reentrant write raises RuntimeError)."""
        try:
            os.write(self._stderr.fileno(), (text + "\n").encode())
        except (OSError, ValueError, AttributeError):  # (no descriptor: a test's StringIO)
            try:
                self._stderr.write(text + "\n")
            except (OSError, ValueError, RuntimeError):
                pass

    def _install_signals(self) -> dict:
        old = {}
        if threading.current_thread() is threading.main_thread():
            # (SIGHUP: the terminal or ssh session closed; its open batch is kept as on SIGTERM)
            for s in (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])):
                # A signal it was started ignoring stays ignored: `nohup logpipe stream … &`'s SIGHUP (the
                # stream was stopped by the logout it was to outlive), a script's `… &` job's SIGINT.
                if signal.getsignal(s) == signal.SIG_IGN:
                    continue
                old[s] = signal.signal(s, self._on_signal)
        return old

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        """Stream until EOF, a signal or a closed stdout; returns the exit code."""
        old = self._install_signals()
        q: queue.Queue = queue.Queue(maxsize=QUEUE_ITEMS)
        stop = threading.Event()
        reader = LineReader(self.stdin_fd, q, stop)
        pending: list[bytes] = []
        pending_bytes = 0
        # (a backlog's lines one alert check reads: 20,000 of --flush-rows 10000, 18,000 of 3000)
        check_rows = max(self.opts.flush_rows, ALERT_ROWS // self.opts.flush_rows * self.opts.flush_rows)
        deadline: float | None = None
        try:
            reader.start()
            done = False
            while not done:
                if (self.signal is not None or self.pipe_closed) and not stop.is_set():
                    stop.set()  # the reader hands over what it has, then _STOPPED
                wait = 0.2 if deadline is None else min(max(deadline - time.monotonic(), 0.0), 0.2)
                try:
                    item = q.get(timeout=wait)
                except queue.Empty:
                    item = None
                if item == _EOF or item == _STOPPED:
                    done = True
                elif item:
                    pending.extend(item)
                    pending_bytes += sum(map(len, item))
                    if deadline is None:
                        deadline = time.monotonic() + self.opts.flush_seconds
                full = pending_bytes >= MAX_BATCH_BYTES or (deadline is not None and time.monotonic() >= deadline)
                due = done or full
                # A backlog (more lines read, waiting): its flushes gathered for one alert check (ALERT_ROWS;
                # a live tail's queue is empty: it flushes as before). Without alerts, nothing to gain.
                group_rows = check_rows if self.rules is not None else self.opts.flush_rows
                backlog = not due and len(pending) < group_rows and not q.empty()
                if pending and not backlog and (due or len(pending) >= self.opts.flush_rows):
                    # The parts of a line the runtime split (a node's log file, tailed) wait for its
                    # last part, a flush time at most: then they are flushed, rejects, as they are
                    held = 0 if done else parts_at_end(pending)
                    if held == len(pending) and full:
                        held = 0
                    batches, lines = [], 0
                    while len(pending) > held and (due or len(pending) >= self.opts.flush_rows):  # parts of at most N lines
                        n = min(self.opts.flush_rows, len(pending) - held)
                        inner = parts_at_end(pending[:n]) if n < len(pending) else 0
                        n = n - inner if inner < n else len(pending) - held  # (a split line's parts in one)
                        if batches and lines + n > group_rows:
                            self._flush(batches)
                            batches, lines = [], 0
                        batches.append(pending[:n])
                        lines += n
                        pending = pending[n:]
                    if batches:
                        self._flush(batches)
                    pending_bytes = sum(map(len, pending))
                    if not pending:
                        deadline = None
                    elif held and len(pending) == held:
                        deadline = time.monotonic() + self.opts.flush_seconds
            reader.join(timeout=1.0)
            if max(self.gen_parts, self.gen_rejects) >= self.compact_min_files:
                self._compact(final=True)
        except Exception:
            stop.set()  # the reader stops; what it had read is counted in the summary, not stored
            print(self.summary(), file=self.stderr)
            raise
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            self.guard.close()  # (its hashes' file: a later stream's start may merge it now)
            if self._alerts_file:
                try:  # (each write is flushed: what it holds now is a failed write's, said already)
                    self._alerts_file.close()
                except OSError:
                    pass
        if isinstance(reader.error, Damage):  # (not a failed read: the data read is damaged)
            print(f"logpipe: error: stdin: its {reader.error.kind} data is damaged after line {self.next_line - 1}"
                  f" ({reader.error.detail}); the lines before it were stored", file=self.stderr)
        elif reader.error is not None:
            print(f"logpipe: stdin read error after line {self.next_line - 1}: {reader.error.strerror}",
                  file=self.stderr)
        if reader.archive is not None:
            print(f"logpipe: error: stdin is a {reader.archive} archive, not a log: give its path to `logpipe ingest`"
                  " (it reads an archive's files)", file=self.stderr)
        elif reader.binary:
            print("logpipe: error: stdin is binary (NUL bytes no hole explains), not a text log: check what is piped"
                  " into `logpipe stream` (an executable, a Parquet file, UTF-16 without its byte-order mark?)",
                  file=self.stderr)
        elif reader.cut_short:
            print(f"logpipe: warning: stdin's {reader.compressed} data ended before its end (cut short, or still"
                  " being written); its lines up to there are read", file=self.stderr)
        print(self.summary(), file=self.stderr)
        if self.signal == signal.SIGINT:
            return 130
        if self.signal == signal.SIGTERM:
            return 143
        if self.signal is not None:  # (SIGHUP: 129)
            return 128 + self.signal
        return 1 if reader.error is not None or reader.archive is not None or reader.binary else 0

    def _flush(self, batches: list[list[bytes]]) -> None:
        """Parse ``batches`` (one, or a backlog's several: ``run``), raise their alerts in one check,
        then write each batch as its own parts (its alerts before its write: a full disk loses none)."""
        self.unstored_from = self.next_line
        known: dict[int, None] = {}  # (the batches' new hashes, in order: a later batch's copies are the run's own)
        parsed = []
        for lines in batches:
            first, before = self.next_line, len(known)
            table, rejected = self._parse(lines, known)
            parsed.append((first, table, rejected, list(known)[before:]))
        tables = [table for _, table, _, _ in parsed if table.num_rows]
        if self.rules is not None and tables:
            self._alert(tables)
        ends = [first for first, *_ in parsed[1:]] + [self.next_line]
        for (first, table, rejected, stored), end in zip(parsed, ends):
            self.unstored_from = first
            self._store(table, rejected, stored, end)

    def _parse(self, lines: list[bytes], known: dict[int, None]):
        """The rows and rejects of ``lines`` that are to be stored (``_skip_replayed``: the hashes of
        their timed lines added to ``known``)."""
        import pyarrow as pa

        from .schema import REJECT_SCHEMA

        # Parsed in slices: the parser's peak memory grows with its batch, a part file should not shrink.
        records, rejects = [], []
        self.guard.refresh()
        if self.ingested is not None:
            self.ingested.refresh()
        start = 0
        while start < len(lines):
            end = start + PARSE_LINES
            if end < len(lines):  # (a split line's parts in one slice)
                end -= parts_at_end(lines[start:end]) % PARSE_LINES  # (all parts: as they are)
            if self.next_line == 1 and start == 0:  # (the input's start: `tail -f` of several files?)
                self.header = first_header(b"\n".join(lines[:2])) if lines else None  # (a dump's {, then its "kind")
            part = self.parser.parse_batch(lines[start:end], self.opts.source, self.next_line + start, self.header)
            self.header = part.header  # (`tail -f`'s header in effect: logpipe/tailheads.py)
            part = self._skip_replayed(part, lines[start:end], self.next_line + start, known)
            self.counts.add(part)
            if self.first_reject is None and part.rejects.num_rows:  # (what _check_format's warning names)
                self.first_reject = part.rejects.slice(0, 1).to_pylist()[0]
            self._warn(part)
            records.append(part.records)
            rejects.append(part.rejects)
            self._check_format()
            start = end
        self.next_line += len(lines)
        # A custom --format-string may add string columns after RECORD_SCHEMA (not in every slice).
        table = pa.concat_tables([pa.Table.from_batches([b]) for b in records], promote_options="permissive")
        return table, pa.Table.from_batches(rejects, REJECT_SCHEMA)

    def _store(self, table, rejected, stored: list[int], end: int) -> None:
        """Write a batch's rows and rejects (its lines up to ``end``), remember its lines' hashes, tee, compact."""
        shown = None
        if table.num_rows or rejected.num_rows:
            try:
                pairs = self.dataset.stage(table, rejected, prefix=self.prefix)
                # (what it shows and remembers, recorded first: a stream killed in between is finished
                # by the next one, not stored twice: replayguard.finish_publishes)
                shown = self.guard.publishing(self.dataset.root, pairs, stored)
                self.stored_to = end
                paths = self.dataset.publish(pairs)
            except OSError as e:  # disk full, permissions: stop and say from where lines are missing
                raise DatasetError(
                    f"cannot write to {self.dataset.root} ({no_space(e) or e.strerror or e}); lines from {self.unstored_from} on"
                    " were not stored: free space or fix permissions, then run the stream again"
                ) from None
            rows = sum(1 for p in paths if p.parent.name.startswith("date="))
            self.parts_written += rows
            self.gen_parts += rows
            self.gen_rejects += len(paths) - rows
            self.gen_rows += table.num_rows + rejected.num_rows  # (a merged reject file is capped too)
        self.rows_written += table.num_rows
        self.unstored_from = None
        self.stored_to = end
        self._remember(stored)
        if shown is not None:
            shown.done()
        if self.opts.tee and table.num_rows and not self.pipe_closed:
            self._write_safely(lambda: self._tee(table), self.stdout)
        files = max(self.gen_parts, self.gen_rejects)
        if files >= self.opts.compact_every or self.gen_rows >= GENERATION_ROWS:
            if files >= self.compact_min_files:
                self._compact()
            if self.gen_rows >= GENERATION_ROWS:
                self._next_generation()

    def _skip_replayed(self, part, lines: list[bytes], first: int, known: dict[int, None]):
        """``part`` without the rows and rejects of lines stored already (logpipe/replayguard.py),
        counted as ``replayed``: by another stream, if the line has a time (a row's start time, a date
        and time in a reject's text); earlier in this run, or by an ingest (logpipe/ingested.py), if it
        names one event (``single_events``, ``TIMED_FINE``). The hashes of the timed lines this run had
        not seen are added to ``known`` (those an ingest stored too: the next restart needs no look-up)."""
        import dataclasses

        import pyarrow as pa
        import pyarrow.compute as pc

        from .replayguard import TIMED, TIMED_FINE, line_hashes, single_events

        records, rejects = part.records, part.rejects
        dated = records.filter(pc.is_valid(records.column("start_time")))
        timed = list(zip(dated.column("line_number").to_pylist(), single_events(dated, self.fine_layouts)))
        texts = {}  # (a timed reject's line number: its text)
        if rejects.num_rows:
            for n, raw in zip(rejects.column("line_number").to_pylist(), rejects.column("raw").to_pylist()):
                if raw and TIMED.search(raw):
                    timed.append((n, bool(TIMED_FINE.search(raw))))
                    texts[n] = raw
        if not timed:
            return part
        timed.sort()  # (the first of a line's copies is the one stored)
        hashes = line_hashes([lines[n - first] for n, _ in timed])
        others, mines = self.guard.replayed(hashes), self.guard.repeated(hashes)
        ingested = self._ingested(dated, [n for (n, single), h, other, mine in zip(timed, hashes, others, mines)
                                          if single and not (other or mine or h in known)], texts)
        again = []
        for (n, single), h, other, mine in zip(timed, hashes, others, mines):
            mine = mine or h in known
            if not mine:
                known[h] = None
            if other or (mine and single and self.guard.look_up) or n in ingested:
                again.append(n)
        if not again:
            return part
        numbers = pa.array(again, pa.int64())
        records = records.filter(pc.invert(pc.is_in(records.column("line_number"), value_set=numbers)))
        rejects = rejects.filter(pc.invert(pc.is_in(rejects.column("line_number"), value_set=numbers)))
        rows = part.records.num_rows - records.num_rows
        self.replayed_rows += rows
        return dataclasses.replace(part, records=records, rejects=rejects,
                                   replayed=rows + part.rejects.num_rows - rejects.num_rows)

    def _ingested(self, dated, numbers: list[int], texts: dict[int, str]) -> set[int]:
        """Of the lines ``numbers`` (rows of ``dated``, or rejects with their ``texts``), those an
        ingest stored (logpipe/ingested.py). A look-up that fails (a damaged file) is said once, and
        the lines are stored, as before ingests were looked up."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.ingested is None or not numbers:
            return set()
        from .errors import LogpipeError
        from .ingested import lookup_errors

        rows = dated.filter(pc.is_in(dated.column("line_number"), value_set=pa.array(numbers, pa.int64())))
        asked = [n for n in numbers if n in texts]
        try:
            found = {n for n, yes in zip(rows.column("line_number").to_pylist(), self.ingested.stored(rows)) if yes}
            found.update(n for n, yes in zip(asked, self.ingested.rejected([texts[n] for n in asked])) if yes)
        except (LogpipeError, *lookup_errors()) as e:
            print(f"logpipe: cannot look up the lines an ingest stored ({e}): the stream stores them again",
                  file=self.stderr)
            self.ingested = None
            return set()
        return found

    def _remember(self, stored: list[int]) -> None:
        try:
            self.guard.remember(stored)
        except OSError as e:  # the rows are stored; only a later run's check of them is lost
            if not self.guard_failed:
                print(f"logpipe: cannot keep the stored lines' hashes ({e.strerror or e}): a restarted stream"
                      " would store this run's lines again", file=self.stderr)
            self.guard_failed = True

    def _check_format(self) -> None:
        """Once, after NO_ACCESS_LINES lines and none an access line: say so (another container's
        log?). Once, after FORMAT_CHECK_LINES access lines: when most are malformed, say the format is
        likely another one. Such a stream keeps up: past an input's first LARK_CONTEXT_LINES lines
        (logpipe/parse.py), malformed lines get the grammar's diagnosis alone, not Lark's context
        (ms each); every line still ends as a row or a reject."""
        c = self.counts
        others = c.noise + c.replayed  # (not a row among the replayed lines either)
        if not self.access_checked and c.access == 0 and not self.replayed_rows and others >= NO_ACCESS_LINES:
            self.access_checked = True  # (another container's log, or a format not given)
            from .batches import no_access_warning

            print(no_access_warning(f"no access line among the first {others + c.blank} lines", others,
                                    "a proxy with no traffic yet logs none",
                                    first=self.first_reject if self.parser.custom is not None else None,
                                    look=self._parse_hint()),
                  file=self.stderr)
        if self.format_checked or self.counts.access < FORMAT_CHECK_LINES:
            return
        self.format_checked = True
        if self.counts.mostly_malformed(FORMAT_CHECK_LINES):
            c = self.counts
            fix = (f"does the format given match the proxies' (`{self._parse_hint()}` shows each line's reason)?"
                   if self.parser.custom is not None else
                   "is the mesh's format another one? Give it with --format-string or --format-file")
            print(f"logpipe: warning: {c.malformed} of the first {c.access} access lines are malformed: {fix}"
                  " (past the first lines, malformed ones are diagnosed without Lark's context, to keep up)", file=self.stderr)

    def _parse_hint(self) -> str:
        """The `logpipe parse` of a hint under a custom format (given, or the one the dataset remembers):
        with its option, shell-quoted, so that pasted it reads the stream's lines as the stream does ("": none)."""
        from .sources import Input

        return Input("-").parse_command(head=True, option=self.parser.custom.option) if self.parser.custom is not None else ""

    def _warn(self, part) -> None:
        """The first malformed lines on stderr, as `logpipe parse` shows them (noise is only counted)."""
        if not part.rejected or self.warned >= self.opts.max_warnings:
            return
        from .pipeline import format_reject

        for r in part.rejects.to_pylist():
            if r["class"] == "malformed" and self.warned < self.opts.max_warnings:
                print(format_reject(r), file=self.stderr)
                self.warned += 1

    def _alert(self, tables: list) -> None:
        """Raise the alerts of the batches' rows ``tables`` (in one check, up to ALERT_ROWS rows)."""
        import pyarrow as pa

        from .errors import LogpipeError

        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        runs, at = [], 0  # (each batch's ALERT_ORDER_ROWS rows: its alerts in event time order)
        for t in tables:
            runs += range(at, at + t.num_rows, ALERT_ORDER_ROWS)
            at += t.num_rows
        try:
            alerts = [a for start in range(0, table.num_rows, ALERT_ROWS)
                      for a in self.rules.check(table.slice(start, ALERT_ROWS),
                                                runs=[r - start for r in runs if start <= r < start + ALERT_ROWS])]
        except LogpipeError as e:  # e.g. an edited queries/views/egress.sql that fails: keep the data flowing
            print(f"logpipe: alerts turned off: {e}", file=self.stderr)
            self.rules.close()
            self.rules = None
            return
        try:
            self._write_safely(lambda: self.alert_writer.write(alerts), self.alert_writer.out)
        except OSError as e:  # (a full disk: as the dataset's write says it, not a bare "No space left")
            if self._alerts_file is None or self.alert_writer.out is not self._alerts_file:
                raise
            raise DatasetError(
                f"cannot write the alerts to --alerts-out {self.opts.alerts_out} ({no_space(e) or e.strerror or e});"
                f" lines from {self.unstored_from} on were not stored: free space, then run the stream again"
            ) from None

    def _tee(self, records) -> None:
        from .render import iter_json_lines

        self.stdout.write("".join(line + "\n" for line in iter_json_lines(records)))
        self.stdout.flush()

    def _write_safely(self, write, out) -> None:
        try:
            write()
        except OSError as e:
            if not _gone(e):
                raise
            self._closed(out)

    def _closed(self, out) -> None:
        """The reader of ``out`` went away (`--tee | head`, `--alerts-out >(…)`, `2>&1 | head`): keep
        writing the dataset until the reader has handed over what it read, then end with the summary;
        later writes to ``out`` go to /dev/null (so does what its buffer holds: closing the --alerts-out
        file flushed it, raised BrokenPipeError again and lost the summary)."""
        self.pipe_closed = True
        if out is self._alerts_file:
            self.closed_out = f"--alerts-out {self.opts.alerts_out}"
        elif out is self._stderr:
            self.closed_out = "stderr"
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def _compact(self, final: bool = False) -> None:
        """Compact now, unless a query or report is reading the dataset: then the next flush tries
        again (a stream never waits on a reader), or, at the end, for up to FINAL_COMPACT_WAIT seconds
        (after Ctrl-C, not at all)."""
        from .dataset import compact_dataset
        from .errors import LogpipeError

        patience = FINAL_COMPACT_WAIT if final and self.signal != signal.SIGINT else 0.0
        give_up = time.monotonic() + patience
        try:
            told = False
            merged: dict = {}
            while compact_dataset(self.dataset, wait=False, writer=self.prefix, merged=merged) is None:  # (its own)
                if patience and not told:
                    told = True
                    print(f"logpipe: waiting up to {patience:g} s for the queries reading the dataset, to merge the"
                          " stream's small parts", file=self.stderr)
                if time.monotonic() >= give_up:
                    if final:
                        print("logpipe: compaction skipped: a query is reading the dataset "
                              "(`logpipe compact` merges the small parts later)", file=self.stderr)
                    return
                time.sleep(0.2)
            # (part files, as the summary counts them: an earlier round's merged file, merged again, is none
            # of them: the summary said "in 62 part files … (compacted 63)")
            n = merged.get("parts", [0])[0]
            self.compacted += max(0, n - self._merged_file)
            self._merged_file = self._merged_file or n > 0
        except (OSError, LogpipeError) as e:  # the parts are safe as they are; compaction can wait
            print(f"logpipe: compaction skipped: {e}", file=self.stderr)
        self.gen_parts = 1
        self.gen_rejects = min(self.gen_rejects, 1)

    def _next_generation(self) -> None:
        self.generation += 1
        self.prefix = f"{STREAM_PREFIX}{self.stream_id}g{self.generation}"
        self.gen_parts = self.gen_rejects = self.gen_rows = 0
        self._merged_file = False

    def summary(self) -> str:
        """Like ingest's: lines, then rows and parts, then alerts and why the stream ended."""
        from .batches import plural

        rows = f"rows written {self.rows_written} in {plural(self.parts_written, 'part file')} to {self.dataset.root}"
        if self.compacted:
            rows += f" (compacted {self.compacted})"
        end = f"alerts {self.alert_writer.written}" if self.opts.alerts else "alerts off"
        if self.signal is not None:
            end += f"; stopped by {signal.Signals(self.signal).name}"
        elif self.pipe_closed:
            end += f"; stopped: {self.closed_out} closed"
        more = self.counts.malformed - self.warned
        hidden = (f"… {more} more malformed lines not shown (raise --max-warnings; all are in the dataset's "
                  "rejects table)\n") if more > 0 else ""
        return f"{hidden}lines {self.counts.summary()}\n{rows}\n{end}"


class _Said:
    """The stream's stderr for what it says (a malformed line, a warning, the summary): a write its
    reader went away from (`2>&1 | head`) ends the stream as a closed stdout does (``_closed``). It
    raised BrokenPipeError from the middle of a batch: the batch in hand and every later line were not
    stored, and the writer (kubectl) got a broken pipe; likewise a terminal that hung up (EIO), whose
    SIGHUP's batch was lost so, exit 1."""

    def __init__(self, out, closed):
        self.out, self._closed = out, closed

    def write(self, text: str) -> int:
        try:
            return self.out.write(text)
        except OSError as e:
            if not _gone(e):
                raise
            self._closed(self.out)
            return len(text)

    def flush(self) -> None:
        try:
            self.out.flush()
        except OSError as e:
            if not _gone(e):
                raise
            self._closed(self.out)


def _gone(e: OSError) -> bool:
    """Whether a write failed because its reader went away: a pipe's (EPIPE), or a terminal's that hung
    up (EIO: the ssh session closed, whose SIGHUP the stream ends on after storing its batch)."""
    return isinstance(e, BrokenPipeError) or e.errno == errno.EIO


def run_stream(data_dir: str, opts: StreamOptions) -> int:
    return Streamer(data_dir, opts).run()
