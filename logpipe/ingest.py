"""``logpipe ingest``: inputs into a dataset, each input once, whole or not at all.

The stages themselves live in ``logpipe/pipeline.py`` (parsing: its lanes are ``logpipe/lanes.py``,
what they do, for ingest staging Parquet files too, ``logpipe/workers.py``) and ``logpipe/dataset.py``
(the files and the manifest); this module decides, per input, whether and from where to read it,
reports, and commits.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import sys
import uuid
from collections import deque
from dataclasses import dataclass

from . import batches as _batches
from .dataset import HASH_ALGO, HEAD_BYTES, INGEST_LOCK, Dataset, InputHash, fingerprint, fingerprint_stream, head_hashes
from .errors import (DatasetError, InputChangedError, InputError, RejectLimitError, UsageError, denied, interrupted,
                     no_space)
from .batches import MOSTLY_MALFORMED, Counts
from .parse import Parser
from .progress import IngestProgress, IngestSummary, print_summary
from .pipeline import (WHOLE_FILE_COMPRESSION, compression_of, dataset_parser, format_reject, is_plain, parse_input,
                       text_fingerprint)
from .lanes import WorkerPool, boots_now, default_workers, ingest_workers, ingested_before, is_small
from .workers import (STAGE_TASK_BYTES, StagedBatch, stage_input_async, stage_inputs_async, staged_result, time_bounds,
                      unopened)
from .render import escape_control
from .reports import DEFAULT_WINDOW
from . import holes as _holes
from . import tailheads as _tailheads
from .sources import CHUNK_BYTES, FileRange, Input, document_of, expand_inputs, inspect, read_head
from .unpack import read_failure
from .schema import REJECT_SCHEMA


# Small inputs parsed by the workers: started in groups of LAUNCH_INPUTS (or LAUNCH_BYTES), at most
# AHEAD_INPUTS or AHEAD_BYTES in flight (a result waiting here holds the input's rejects: a log of
# mostly noise is as large as its text; a compressed input counts 8x its size); each group of those
# done is committed with two manifest writes.
LAUNCH_INPUTS, LAUNCH_BYTES, AHEAD_INPUTS, AHEAD_BYTES = 16, 16 << 20, 64, 64 << 20

# A malformed line costs ~1,000x a parsed one (its diagnosis and Lark's exact path: 2-15 ms), so an
# archive in another format would run for hours before --max-reject-ratio judged it. An input of at
# least PROBE_MIN_BYTES, or stdin (its probed bytes are read again: sources.read_head), is probed
# first: when most access lines of its first PROBE_BYTES are malformed (over half, and over
# --max-reject-ratio; PROBE_MIN_LINES of them at least), it is not read further. ~15 ms per probed
# input; --max-reject-ratio 1 turns the probe off.
PROBE_MIN_BYTES, PROBE_BYTES, PROBE_MIN_LINES = 4 << 20, 32 << 10, 20

# An input whose text is the start of an ingested input's (an earlier capture of the same log, ingested
# after the later one) is skipped once that input's file, read again, proves it (``_Run.holder``): at
# most HOLDERS_READ such files are read for it (entries whose ``heads`` say they may hold it: almost
# always the one that does).
HOLDERS_READ = 4

# An input whose first lines are the end of an ingested input's (hourly `kubectl logs --since=2h`
# captures: each starts with the previous one's last hour) is read from the first line after them
# (``_Run.overlap``): the first line of its first OVERLAP_HEAD bytes (OVERLAP_FIRST first) that names
# one event (``replayguard.single_events``) is looked up among the ingested rows (``Ingested.stored``);
# only when an input's time range holds it is a file read. The overlap is then read on in chunks of
# OVERLAP_CHUNK bytes, parsed here, until a line that names one event is not stored.
OVERLAP_FIRST, OVERLAP_HEAD, OVERLAP_CHUNK = 4 << 10, 64 << 10, 1 << 20
# Only when at most OVERLAP_HOLDERS ingested inputs' time ranges hold its first lines' time: captures of
# one log hold few (the hour before), but a directory of pods' logs of the same hours holds them all, and
# a look-up per input in all their files made a second run of 300 pods' logs 3.2 → 16.5 s (and found
# nothing: one pod's log holds no other's lines). There, a pod's own earlier capture is not looked for.
OVERLAP_HOLDERS = 4


@dataclass
class _Plan:
    """An input decided on: its pending manifest entry, from where to read it, and (a small input
    parsed by a worker while others are) the worker's task."""

    inp: Input
    entry: dict
    size: int | None
    full: str | None
    replaces: list
    skip_bytes: int
    first_line: int
    future: object = None
    hasher: InputHash | None = None  # hashed while read (``_Run.hash_while_read``): ``full`` is None till then

    @property
    def weight(self) -> int:
        """What its worker's result may hold here, at most: its text (``AHEAD_BYTES``)."""
        return (self.size or 0) * (1 if self.entry.get("compression") == "plain" else 8)


def ingest_paths(paths: list[str], data_dir: str, *, force: bool = False, on_error: str = "warn",
                 max_reject_ratio: float = 0.1, max_warnings: int = 20, progress: bool | None = None,
                 flush_rows: int | None = None, err=None, parser: Parser | None = None,
                 pool: WorkerPool | None = None, found: tuple | None = None) -> IngestSummary:
    """``logpipe ingest``: each input into the dataset at ``data_dir``, once.

    An input is known by the hash of its bytes (``dataset.HASH_ALGO``): the same content (a renamed copy too) is
    skipped; a file whose first bytes are an ingested input's (it grew) ingests only the lines after
    that input's end; one whose text is an ingested input's first bytes (an earlier capture of a log,
    after the later one) is skipped, once that input's file proves it (``_Run.holder``); ``force`` re-ingests and removes the rows of every such earlier entry. Each
    input's files stay hidden until its manifest entry commits (``Dataset.commit_entry``), so a
    kill at any moment leaves whole inputs or nothing, and the next run redoes the rest.
    Problems with one input are reported on ``err`` and the others continue; at the end an
    ``InputError`` (unreadable inputs) or ``RejectLimitError`` (too many malformed lines) is raised
    when any input failed, after the summary is printed. ``pool``: the caller's workers for
    ``paths`` (``lanes.boot_pool``), started before this process imported polars; else it starts its own.
    ``found``: the inputs and errors ``boot_pool`` expanded ``paths`` to (else they are expanded here).
    """
    import time

    err = err or sys.stderr
    if not 0 <= max_reject_ratio <= 1:
        raise UsageError("--max-reject-ratio is a share of lines between 0 and 1, e.g. 0.1")
    started = time.monotonic()
    summary = IngestSummary(data=str(data_dir))
    inputs, errors = found if found is not None else expand_inputs(paths)
    if errors and not inputs:
        raise InputError("; ".join(errors))
    for e in errors:
        print(f"logpipe: error: {e}", file=err)
    summary.failed += len(errors)
    data_root = os.path.realpath(data_dir)
    inputs = [i for i in inputs if i.is_stream or not os.path.realpath(i.path).startswith(data_root + os.sep)]
    summary.inputs = len(inputs) + len(errors)
    ds = Dataset(data_dir, create=True)
    parser = dataset_parser(ds, parser, err)
    bar = IngestProgress(err, progress)
    if pool is None:
        workers = ingest_workers(inputs)
        pool = WorkerPool(None, workers) if workers > 1 else None
    # Small inputs that LOGPIPE_WORKERS gives lanes to, without the run's pool (too few for it): each
    # is parsed in those lanes (parse_input), all by this one pool, started at its first task; not a
    # pool per input (three small inputs: 0.92 s, 1.03 CPU-s with three worker boots; 0.52, 0.58 with one).
    spare = None if pool is not None else _spare_pool(inputs)
    done = False
    try:
        with _ingest_lock(ds), bar, (pool or contextlib.nullcontext()), (spare or contextlib.nullcontext()):
            if pool is not None:
                pool.use(parser)
                # (else at its first task, if any: a rerun, or a pipe whose second chunk is not there yet)
                if not pool.started and (force or not ingested_before(inputs, ds.entries())) and boots_now(inputs):
                    pool.start()  # (booting since boot_pool, or from now on: while the first input is hashed)
            if spare is not None:
                spare.use(parser)
            ds.recover()
            run = _Run(ds, parser, pool, bar, summary, err, started, force=force, on_error=on_error,
                       max_reject_ratio=max_reject_ratio, max_warnings=max_warnings, flush_rows=flush_rows, spare=spare)
            try:
                run.ingest(inputs)
            except BaseException as e:  # (Ctrl-C reaches the workers too: a task may end after its plan was dropped)
                for lanes in (pool, spare):
                    if lanes is not None:
                        lanes.close()  # every task over, its files written: then what this run left pending goes
                with contextlib.suppress(Exception):
                    ds.recover()
                # (a nightly job's disk filled up, or the directory was made read-only: what was committed
                # stays, the summary says what)
                if full := no_space(e) or denied(e, str(ds.root)):
                    summary.unread = _unread(summary)
                    print_summary(summary, started, run.shown, max_warnings, ds, err)
                    fix = "free space (or move --data)" if no_space(e) else "check the path and permissions"
                    raise DatasetError(f"cannot write to dataset directory {data_dir}: {full}; {fix},"
                                       " then run the ingest again: it reads what was not ingested") from None
                raise
            done = True  # every input finished: the lanes end now (the with's exit: WorkerPool.close)
    except BaseException as e:
        # A Ctrl-C while they end (a worker slow to exit under load, or stuck: killed, not waited for)
        # comes after every input was committed or failed: the summary says so, then exit 130.
        if done and interrupted(e):
            print_summary(summary, started, run.shown, max_warnings, ds, err)
        _discard_new(ds, err)
        raise
    with _interrupt_after():  # (the summary whole: a Ctrl-C meanwhile is raised after it)
        print_summary(summary, started, run.shown, max_warnings, ds, err)
    if run.late_inputs and (note := _late_note(ds, run.late_inputs, run.cutoff)):
        print(note, file=err)
    if summary.ingested:
        _compact(ds, err, run.days)
    if summary.failed:
        _discard_new(ds, err)
        if run.ratio_failures and summary.failed == len(run.ratio_failures):
            raise RejectLimitError(f"{len(run.ratio_failures)} input(s) had too many malformed lines (see above)")
        rest = ("everything else was ingested" if summary.failed < summary.inputs
                else "the complete lines before the damage were ingested" if summary.errors or summary.damaged
                else "nothing was ingested")
        raise InputError(f"{summary.failed} input(s) had errors (see above); {rest}")
    return summary


def _discard_new(ds: Dataset, err=None) -> None:
    """A failed run that made the dataset and stored nothing in it leaves none (``Dataset.discard_if_empty``):
    it left an empty one, which ``report`` read as a dataset of empty logs, exit 0. Not while another
    ingest has begun in it since. Said on ``err`` (the summary before it named the directory)."""
    if ds.created is not None:
        with contextlib.suppress(DatasetError), _ingest_lock(ds):
            if ds.discard_if_empty() and err is not None:
                print(f"nothing stored: no dataset left at {ds.root}", file=err)


def _unread(summary: IngestSummary) -> int:
    """The inputs a run that stopped (a full disk, Ctrl-C) did not finish: neither ingested, skipped
    nor failed (a damaged archive is counted twice: ingested or skipped, and an error)."""
    return summary.inputs - (summary.ingested + summary.skipped + len(summary.documents) + summary.failed
                             - len(summary.errors) - summary.damaged)


def _spare_pool(inputs: list[Input]) -> WorkerPool | None:
    """The pool ``parse_input`` parses small ``inputs`` in when ``LOGPIPE_WORKERS`` gives them lanes
    (``default_workers``) and the run has no pool; not started (at its first task)."""
    workers = max((default_workers(i) for i in inputs), default=1)
    return WorkerPool(None, workers) if workers > 1 else None


class _Run:
    """One ingest's inputs, in order, into ``ds``: whether and from where to read each (``decide``),
    reading and checking it (``finish``), committing (``finish_group``).

    Small inputs (a directory of rotated or per-pod logs) go in groups: ``decided`` holds those
    decided, begun together in one manifest write (``launch``); ``ahead`` those begun, each one
    worker task (``workers.stage_input_async``) when there are workers, so that several are parsed
    at once; they are finished in input order and committed in groups. The manifest is rewritten
    whole: a write per input would make thousands of small inputs cost O(inputs²)."""

    def __init__(self, ds, parser: Parser, pool, bar, summary: IngestSummary, err, started: float, *,
                 force: bool, on_error: str, max_reject_ratio: float, max_warnings: int, flush_rows: int | None,
                 spare: WorkerPool | None = None):
        self.ds, self.parser, self.pool, self.bar, self.summary, self.err = ds, parser, pool, bar, summary, err
        self.spare = spare  # (parse_input's lanes when there is no pool: ingest_paths)
        self.started, self.force, self.on_error = started, force, on_error
        self.max_reject_ratio, self.max_warnings, self.flush_rows = max_reject_ratio, max_warnings, flush_rows
        entries = ds.entries()
        self.known = _Known((e for e in entries if e.get("hash")), str(ds.manifest_path))  # this process is the only ingest (lock)
        self.timed = any(e.get("max_time") for e in entries)  # (rows an input may overlap: ``overlap``)
        # rows before ``cutoff`` (a day before the dataset's newest one so far) are in no default
        # anomalies window from now on: the inputs (entry ids) that added some (``_late_note``)
        last = max((e["max_time"] for e in entries if e.get("max_time")), default=None, key=_parse_time)
        self.cutoff = _parse_time(last) - DEFAULT_WINDOW if last else None
        self.late_inputs: set[str] = set()
        self.days: set[str] = set()  # the day directories this run wrote rows to, and _rejects (``_compact``)
        # the algorithm of the dataset's entries (those before hash_algo was recorded: blake2b)
        self.hash_algo = next((e.get("hash_algo", "blake2b-128") for e in self.known), HASH_ALGO)
        # the format option a hint's `logpipe parse` repeats, so that it reads the lines as this run did
        self.format_option = parser.custom.option if parser.custom is not None else ""
        self.shown = 0  # malformed lines met (at most max_warnings printed)
        self.ratio_failures: list[str] = []
        self.stopped: str | None = None  # the input a Ctrl-C stopped in ``finish`` (said there)
        self.files: dict[str, Input] = {}  # an entry's id: this run's input that is it (``holder`` reads it)
        self.ingested = None  # (``ingested.Ingested``: made at the first ``overlap`` check that needs it)
        self.decided: list[_Plan] = []
        self.ahead: deque = deque()

    def ingest(self, inputs: list[Input]) -> None:
        try:
            for inp in inputs:
                small = is_small(inp)
                if not small:
                    self.launch()  # manifest entries in input order
                plan = self.decide(inp, begin=not small)
                while plan == "wait":
                    self.drain(0)
                    plan = self.decide(inp, begin=not small)
                if plan is None:
                    continue
                if small:
                    # In flight, it stands in for its entry: a later copy of it, or a later input
                    # that grew from it, waits for it to be committed (decide).
                    self.known.add({"id": plan.entry["id"], "path": inp.name, "size": plan.size,
                                    "hash": plan.full, "ahead": True,
                                    **{k: plan.entry[k] for k in _TEXT_KEYS if k in plan.entry}})
                    self.decided.append(plan)
                    if len(self.decided) >= LAUNCH_INPUTS or sum(p.size or 0 for p in self.decided) >= LAUNCH_BYTES:
                        self.launch()
                    if len(self.ahead) > AHEAD_INPUTS:
                        self.drain(AHEAD_INPUTS // 2)
                    while len(self.ahead) > 1 and sum(p.weight for p in self.ahead) > AHEAD_BYTES:
                        self.drain(len(self.ahead) - 1)
                else:
                    self.drain(0)
                    self.finish_group([plan])
            self.drain(0)
        except BaseException as e:
            self.drop([*self.ahead, *self.decided])
            if interrupted(e):
                self.bar.__exit__(None, None, None)
                # every input not finished: those in flight, and those not reached yet (not only the first)
                self.summary.unread = _unread(self.summary)
                if more := self.summary.unread - (self.stopped is not None):  # (besides the one said: finish)
                    print(f"logpipe: {more} more input(s) not ingested (the next run does them)", file=self.err)
                print_summary(self.summary, self.started, self.shown, self.max_warnings, self.ds, self.err)
            raise

    def decide(self, inp, begin: bool = True):
        """Whether and from where to read ``inp``: None (skipped, or it failed), "wait", or its
        plan (its manifest entry begun, unless ``begin`` is false: ``launch`` begins it)."""
        try:
            why, hole = inspect(inp)
            if why is not None:
                raise InputError(f"{inp.name}: {why}")
            if (kind := document_of(inp)) is not None:  # (a bundle's resource: said once for all, in the summary)
                self.summary.documents.append((inp.name, kind))
                return None
            size, full, prefixes, replaces, skip_bytes, first_line, hasher = None, None, {}, [], 0, 1, None
            content = continues = None
            mends = False
            heads = [] if inp.is_stream else _text_heads(inp, self.hash_algo)
            if not inp.is_stream and self.hash_while_read(inp, heads):
                size, hasher = inp.size(), InputHash(self.hash_algo)
            elif not inp.is_stream:
                sizes = self.known.prefix_sizes(heads)  # (those it may have grown from)
                size, full, prefixes = fingerprint(inp.path, sizes, self.hash_algo)
                same, grown = self.known.same_grown(self.known.bytes, size, full, prefixes)
                content = self.content(inp, same, sizes)
                # Also known by its text: a compressed input's (a rotated log, gzipped), a plain one's bytes
                text = content if content is not None else (size, full, prefixes) if is_plain(inp) else None
                if text is not None:
                    by_text = self.known.same_grown(self.known.text, *text)
                    same = same + [e for e in by_text[0] if e not in same]
                    grown = grown + [e for e in by_text[1] if e not in grown]
                if any(e.get("ahead") for e in same + grown):  # it is, or grew from, an input still
                    return "wait"  # in flight: decide again once that one is committed (as one by one)
                if same and not self.force:
                    self.summary.skipped += 1
                    for e in same:  # (those it is: an earlier capture of it later in this run is read in them)
                        self.files.setdefault(e["id"], inp)
                        self.known.gain_heads(e, heads)  # (an entry from before heads were recorded: this run knows them)
                    was = same[0]["path"]
                    if was != inp.name:  # same path: the summary's count says it
                        self.bar.note(f"{inp.name}: same content as {was}, already ingested; skipped (--force re-ingests)")
                    # A damaged archive (these bytes, not a copy of its text up to the damage) is said each run as an
                    # error, so that a nightly job's exit status says it for as long as the dataset lacks the rest
                    # (not a file of OTLP messages that ended inside one: its exporter may still be writing it)
                    if damaged := [e for e in same if e.get("error") and e["hash"] == full
                                   and e.get("compression") in WHOLE_FILE_COMPRESSION]:
                        print(f"logpipe: error: {inp.name}: damaged archive, ingested before up to its damage "
                              f"({damaged[0]['line_end']} lines), the rest unreadable: replace it with an intact copy (its"
                              " lines after the damage are read then), or move it out of the inputs", file=self.err)
                        self.summary.failed += 1
                        self.summary.damaged += 1
                    elif cut := [e for e in same if e.get("error")]:
                        self.bar.note(f"{inp.name}: already ingested up to where it stopped ({cut[0]['line_end']} lines);"
                                      " skipped")
                    return None
                if not same and text is not None and heads:  # the start of a longer text ingested before?
                    holders = self.holders(text[0], heads)
                    if any(e.get("ahead") for e in holders):
                        return "wait"
                    if (holder := self.holder(holders, *text[:2])) is not None:
                        self.summary.skipped += 1
                        cut = " (its last line, cut short, is whole there)" if content is None \
                            and not _ends_newline(inp, size) else ""
                        again = f" even with --force: --force {holder['path']} re-reads them" if self.force else ""
                        self.bar.note(f"{inp.name}: its lines are the start of {holder['path']}{cut}, already ingested;"
                                      f" skipped{again}")
                        return None
                if self.force:
                    replaces = [e["id"] for e in same + grown]
                elif grown:
                    last = max(grown, key=lambda e: e["size"])
                    if last.get("ends_newline") is False:  # its last line was cut: read it all again
                        replaces = [e["id"] for e in grown]
                        self.bar.note(f"{inp.name}: grew after a cut last line; re-ingesting it whole")
                    else:
                        skip_bytes, first_line = last["bytes_end"], last["line_end"] + 1
                        continues = last["path"]
                        # (an intact copy of a damaged archive: not an exporter's file that grew)
                        mends = bool(last.get("error")) and last.get("compression") in WHOLE_FILE_COMPRESSION
            overlaps = None
            if not self.force and not skip_bytes and not replaces and not inp.is_stream \
                    and (over := self.overlap(inp)) is not None:
                skip_bytes, first_line, overlaps = over
                if skip_bytes >= (content[0] if content is not None else size or 0) > 0:  # all of it
                    self.summary.skipped += 1
                    self.bar.note(f"{inp.name}: its lines were ingested already (with {overlaps}); skipped")
                    return None
                if hasher is not None:  # (hashed while read: from skip_bytes on, not whole)
                    size, full, _ = fingerprint(inp.path, (), self.hash_algo)
                    hasher = None
            wrong, probed = self.probe(inp, size, skip_bytes, first_line)
            if hole and not skip_bytes and not wrong:
                self.bar.note(f"logpipe: {_holes.note(inp.name, hole)}")
        except (InputError, OSError) as e:
            msg = str(e) if isinstance(e, InputError) else f"{inp.name}: cannot read: {e.strerror}"
            print(f"logpipe: error: {msg}", file=self.err)
            self.summary.failed += 1
            return None
        if wrong:
            print(f"logpipe: error: {wrong}", file=self.err)
            self.ratio_failures.append(wrong)
            self.summary.failed += 1
            self.summary.counts += probed  # (the lines the probe read: counted, none stored)
            self.summary.refused_lines += probed.read
            return None
        entry_id = uuid.uuid4().hex[:12]
        entry = {
            "id": entry_id, "prefix": f"part-{entry_id}", "path": inp.name, "size": size, "hash": full,
            "hash_algo": self.hash_algo, "skip_bytes": skip_bytes, "first_line": first_line,
            "compression": None if inp.is_stream else compression_of(inp),
            "format_spec": self.parser.format_spec,
        }
        if not inp.is_stream and content is not None:
            entry["content_size"], entry["content_hash"] = content[0], content[1]
        if continues is not None and continues != inp.name:  # (a rotated copy of a log read before)
            entry["continues"] = continues
        if mends:
            entry["mends"] = continues
        if overlaps is not None:
            entry["overlaps"] = overlaps
        if heads:
            entry["heads"] = heads
        return _Plan(inp, self.ds.begin_entry(entry) if begin else entry, size, full, replaces, skip_bytes, first_line,
                     hasher=hasher)

    def content(self, inp: Input, same: list, sizes) -> tuple | None:
        """A compressed input's text as ``fingerprint`` gives a file's (its size, hash and prefixes'
        hashes, decompressed): logrotate's ``access.log.1`` becomes ``access.log.2.gz``, the same lines
        as an input ingested before (a plain file's hash is its text's). None for other inputs, when
        its bytes are known already, or when it cannot be read whole (its damage is said when it is
        read). One more pass over its text before it is read (~0.6 s a 100 MB, ~18% of its ingest):
        what it costs to know it, whatever came first, the plain file or the compressed one."""
        if same or compression_of(inp) not in WHOLE_FILE_COMPRESSION:
            return None
        return text_fingerprint(inp, sizes, self.hash_algo)

    def hash_while_read(self, inp: Input, heads: list) -> bool:
        """Whether ``inp`` is hashed as its ranges are read for the workers, rather than before: when
        no input ingested before can be it or its start (none is as small), nor start with it (by its
        ``heads``), nothing waits for its hash."""
        if self.pool is None or not is_plain(inp) or is_small(inp):
            return False
        size = inp.size()
        return not self.known.any_upto(size) and not self.holders(size, heads)

    def holders(self, size: int, heads: list) -> list[dict]:
        """The entries whose text may start with a text of ``size`` bytes and ``heads``
        (``dataset.head_hashes``): longer, and their heads within its first ``size`` bytes are its own.
        No file is read: a new log, no one's start, costs a look-up of its heads (``_Known``)."""
        mine = {tuple(h) for h in heads}
        return [e for e in self.known.by_head(mine)  # (its first line's: mine)
                if (_text_of(e)[0] or 0) > size and {tuple(h) for h in e["heads"] if h[0] <= size} <= mine]

    def holder(self, holders: list[dict], size: int, full: str) -> dict | None:
        """The first of ``holders`` whose text starts with the ``size`` bytes hashed ``full``, proved by
        its file (this run's input that is it, or the file at its recorded path) read again to the end
        of the text it was ingested with: that file still holds that text, and its first ``size`` bytes
        hash to ``full``. None when none does or no file is left to prove it (then it is ingested: the
        manifest records no hash of its every line end)."""
        tried: set = set()
        for e in sorted(holders, key=lambda e: _text_of(e)[0]):
            m, text = _text_of(e)
            if (m, text) in tried or len(tried) >= HOLDERS_READ:
                continue
            tried.add((m, text))
            inp = self.files.get(e["id"])
            if inp is None and e["path"] != "<stdin>" and os.path.isfile(e["path"]):
                inp = Input(e["path"])
            if inp is None:
                continue
            try:
                if is_plain(inp):
                    with open(inp.path, "rb") as f:
                        got = fingerprint_stream(f, [size], self.hash_algo, m)
                elif compression_of(inp) in WHOLE_FILE_COMPRESSION:
                    got = text_fingerprint(inp, [size], self.hash_algo, m)
                else:
                    got = None
            except (OSError, InputError):  # (gone, or unreadable now: it proves nothing)
                continue
            if got is not None and got[1] == text and got[2].get(size) == full:
                return e
        return None

    def overlap(self, inp: Input) -> tuple[int, int, str] | None:
        """Where ``inp`` is read from when its first lines are the end of an ingested input's (a
        capture of a log whose first part an earlier capture holds): ``(skip_bytes, first_line, the
        path of that input)``, or None. Its first line that names one event must be stored already
        (``Ingested.stored``); the overlap then ends at the last line before the first one that names
        one event and is not stored (or starts after the latest time of the inputs whose range holds
        that first line: none of them holds it); the lines between (noise, a TCP line without id) were
        stored with them. No file is read when no ingested input's time range holds its first event."""
        from .ingested import Ingested, lookup_errors
        from .replayguard import single_events

        if self.ingested is None:
            if not (self.timed or self.known.timed):
                return None  # (a new dataset: nothing to overlap, no file read)
            self.ingested = Ingested(self.ds)  # (then this run's commits are added: ``finish``'s ``after``)
        ing = self.ingested
        kind = compression_of(inp)
        if ing.lo is None or (kind != "plain" and kind not in WHOLE_FILE_COMPRESSION):
            return None
        head = read_head(inp, OVERLAP_HEAD)
        cut = head.rfind(b"\n", 0, OVERLAP_FIRST) + 1
        held = ing.holders(head[:cut] or head)
        if held == 0 or (held or 0) > OVERLAP_HOLDERS:  # (no time of its first lines in an ingested input's range,
            return None  # or in too many: not parsed)
        for body in ((head[:cut], head) if 0 < cut < len(head) else (head,)):
            rows = self.parser.parse_chunk(body, inp.name).records
            first = next((i for i, yes in enumerate(single_events(rows, set())) if yes), None)
            if first is not None:
                break
        else:
            return None
        t = rows.column("start_time")[first].as_py()
        holding = [e for (a, b, _), e in zip(ing.spans, ing.entries) if a <= t <= b]
        if len(holding) > OVERLAP_HOLDERS:
            return None
        try:
            if not holding or not ing.stored(rows.slice(first, 1))[0]:
                return None
            # (the input said to hold it: the one whose files do, of the few whose time range holds it)
            was = next((e for e in holding if ing.stored(rows.slice(first, 1), e)[0]), holding[-1])
            return self._overlap_end(inp, ing, holding, was)
        except lookup_errors():  # (a dataset file damaged: the input is read whole, as before)
            return None

    def _overlap_end(self, inp: Input, ing, holding: list[dict], was: dict) -> tuple[int, int, str] | None:
        """``overlap``'s end, once ``inp``'s first event is stored by ``was``, one of ``holding``."""
        from .replayguard import single_events
        from .sources import iter_byte_chunks

        hi = max(_parse_time(e["max_time"]) for e in holding)
        fine: set = set()
        start = 0
        if compression_of(inp) == "plain":  # (a compressed one is read from its start)
            start = self._overlap_near(inp, ing, hi)
        last = end = None  # the overlap's last line and the byte after it
        line, over = 1 + (_count_lines(inp.path, start) if start else 0), False
        chunks = iter_byte_chunks(inp, skip_bytes=start, chunk_bytes=OVERLAP_CHUNK)
        try:
            for body, stop in chunks:
                batch = self.parser.parse_chunk(body, inp.name, line)
                rows = batch.records
                numbers = rows.column("line_number").to_pylist()
                asked = sorted((i for i, yes in enumerate(single_events(rows, fine)) if yes), key=numbers.__getitem__)
                times = rows.column("start_time").to_pylist()
                inside = [i for i in asked if times[i] <= hi]
                have = dict(zip(inside, ing.stored(rows.take(inside)))) if inside else {}
                was_last = last
                for i in asked:
                    if not have.get(i):
                        over = True
                        break
                    last = numbers[i]
                if last != was_last:
                    joined = set(batch.joined_lines)
                    while last + 1 in joined:  # (the parts of its line the runtime split: its row's)
                        last += 1
                    end = _line_end(body, stop - len(body), last - line + 1)
                line += batch.read
                if over:
                    break
        finally:
            chunks.close()
        if last is None:
            return None
        return end, last + 1, was["path"]

    def _overlap_near(self, inp: Input, ing, hi) -> int:
        """A plain input's line start in its overlap at most OVERLAP_CHUNK bytes before the overlap's
        end, found by bisection: the overlap is a prefix, so the first line that names one event after an
        offset is stored (``Ingested.stored``) if and only if the offset is in the overlap (or that line
        is the overlap's last, or no such line is found: then the reading on from ``low`` decides). A probe parses OVERLAP_FIRST bytes (OVERLAP_HEAD when no line of those
        names one event) and looks one row up: a 100 MB capture's overlap is found in ~14 probes, not
        by parsing all of it."""
        from .replayguard import single_events

        low, high = 0, inp.size()
        with open(inp.path, "rb") as f:
            while high - low > OVERLAP_CHUNK:
                mid = (low + high) // 2
                f.seek(mid)
                window = f.read(OVERLAP_HEAD)
                begin = window.find(b"\n") + 1  # (the first line that starts after mid)
                stored = False
                for size in (OVERLAP_FIRST, OVERLAP_HEAD):
                    cut = window.rfind(b"\n", begin, begin + size) + 1
                    if cut <= begin:
                        continue
                    rows = self.parser.parse_chunk(window[begin:cut], inp.name).records
                    if (first := next((i for i, yes in enumerate(single_events(rows, set())) if yes), None)) is not None:
                        stored = rows.column("start_time")[first].as_py() <= hi and ing.stored(rows.slice(first, 1))[0]
                        break
                if stored:
                    low = mid + begin
                else:
                    high = mid
        return low

    def probe(self, inp: Input, size: int | None, skip_bytes: int, first_line: int) -> tuple[str | None, Counts]:
        """Why a large input is not read further (``PROBE_BYTES``: its first lines are mostly
        malformed, as an input in another format is), or None; and the counts of the lines it read."""
        counts = Counts()
        if self.max_reject_ratio >= 1:
            return None, counts
        if not inp.is_stream and (size - skip_bytes if is_plain(inp) else size) < PROBE_MIN_BYTES:
            return None, counts  # (skip_bytes is a decompressed offset) stdin, of unknown size, is always probed
        body = read_head(inp, PROBE_BYTES, skip_bytes)
        # (with the header in effect, as the read's: a `kubectl cluster-info dump`'s first 32 KiB, its
        # nodes' JSON, are noise under it, malformed without: every dump of 4 MB or more was refused)
        header = _tailheads.first_header(body) if not skip_bytes else _tailheads.header_at(inp, skip_bytes)
        counts.add(self.parser.parse_chunk(body, inp.name, first_line, header=header))
        if not counts.mostly_malformed(PROBE_MIN_LINES, max(MOSTLY_MALFORMED, self.max_reject_ratio)):
            return None, counts
        access = counts.access
        share = counts.malformed / access
        look = f"`{inp.parse_command(head=True, option=self.format_option)}`"
        fix = (f"Is the format the proxies'? {look} says why" if self.format_option else
               f"Another format? {look} says why; give the format with --format-string or --format-file")
        return (f"{inp.name}: {counts.malformed} of its first {access} access lines ({share:.0%}) are malformed; "
                f"not ingested, not read further. {fix} (--max-reject-ratio 1 ingests it anyway)"), counts

    def finish(self, plan: _Plan):
        """Read ``plan``'s input to its end (or take its worker's result) and check it: None when
        it is not ingested, else ``(entry, pairs, replaces, after)`` to commit, then ``after(done)``."""
        inp, entry, size, full, replaces = plan.inp, plan.entry, plan.size, plan.full, plan.replaces
        skip_bytes, first_line = plan.skip_bytes, plan.first_line
        self.known.remove([entry["id"]])  # its stand-in while in flight (below)
        counts, buf = Counts(), _batches.BatchBuffer(self.flush_rows or _batches.FLUSH_ROWS)
        stager, pairs = _Stager(self.ds, entry["prefix"]), []
        held: list = []  # the workers' rejects (StagedBatch), written together: FLUSH_ROWS at a time
        end, rows, undated, tmin, tmax, error, first, text = skip_bytes, 0, 0, None, None, None, None, None
        task = self.bar.start(inp.name, size - skip_bytes if size is not None and entry["compression"] == "plain" else None)
        if plan.future is not None:
            batches = staged_result(plan.future)
        else:
            batches = parse_input(inp, self.parser, skip_bytes=skip_bytes, first_line=first_line,
                                  stage=(str(self.ds.root), entry["prefix"]), pool=self.pool or self.spare,
                                  hasher=plan.hasher)
        try:
            try:
                for batch, end in batches:
                    if isinstance(batch, StagedBatch):  # a worker wrote its rows' files; its rejects are written here
                        stager.staged(batch.pairs)
                        if batch.rejected:  # (a table: _stage_buffer's BatchBuffer.take)
                            held.extend(batch.rejects.to_batches())
                            if sum(b.num_rows for b in held) >= (self.flush_rows or _batches.FLUSH_ROWS):
                                stager.submit(None, _batches.concat_batches(held, REJECT_SCHEMA))
                                held = []
                    counts.add(batch)
                    if first is None and batch.rejected:  # (what the warning of an input of no access line names)
                        first = batch.rejects.slice(0, 1).to_pylist()[0]
                    self.bar.advance(task, end - skip_bytes, counts.read)
                    if batch.rejected and self.on_error != "skip":
                        bad = [r for r in batch.rejects.to_pylist() if r["class"] == "malformed"]
                        if bad and self.on_error == "fail":
                            raise RejectLimitError(
                                f"{format_reject(bad[0])}; --on-error fail stops at the first malformed line"
                                " (use --on-error warn to keep going)")
                        for r in bad:
                            if self.shown < self.max_warnings:  # log text is untrusted: no raw control chars
                                self.bar.note(escape_control(format_reject(r)))
                            self.shown += 1
                    if batch.parsed:
                        none, lo, hi = (batch.undated, batch.tmin, batch.tmax) if isinstance(batch, StagedBatch) \
                            else time_bounds(batch.records)
                        undated += none
                        tmin = lo if tmin is None or (lo is not None and lo < tmin) else tmin
                        tmax = hi if tmax is None or (hi is not None and hi > tmax) else tmax
                    if not isinstance(batch, StagedBatch):
                        buf.add(batch)
                        if buf.due():
                            stager.submit(*buf.take())
            except InputChangedError as e:  # none of it is one version of the file: keep nothing
                return self.fail_unread(plan, stager, str(e))
            except InputError as e:  # corrupt archive: keep what came before the damage
                if (cause := unopened(e, inp)) is not None:  # (no archive: its file could not be opened, as below)
                    return self.fail_unread(plan, stager, f"{inp.name}: cannot read: {cause.strerror}")
                error = f"{e} ({counts.read} lines read)"
                if entry["compression"] in WHOLE_FILE_COMPRESSION and not inp.is_stream:
                    # its text up to the damage: an intact copy put in its place is known by it to start with
                    # those lines (decide's ``grown``), and only the lines after them are read
                    try:
                        text = text_fingerprint(inp, (), self.hash_algo, end)
                    except OSError as failed:  # a read of it that fails now (EIO): as one in the loop, below
                        if not read_failure(failed):  # (it was an internal error that named no file, the run ended)
                            raise
                        return self.fail_unread(plan, stager, f"{inp.name}: cannot read: {failed.strerror}")
            except OSError as e:  # its file gone since it was decided on (a pod's log rotated away), or a read
                # of it failed (EIO, ESTALE: sources.reading names it; no damage): it alone fails, none of it kept
                if e.filename != inp.path:  # (not the input's: the dataset's, raised as before)
                    raise
                return self.fail_unread(plan, stager, f"{inp.name}: cannot read: {e.strerror}")
            if size is not None and end < size and not error and entry["compression"] == "plain":
                return self.fail_unread(plan, stager, FileRange(inp.path, skip_bytes, size, 0).shorter(end))
            stager.submit(*buf.take())
            if held:
                stager.submit(None, _batches.concat_batches(held, REJECT_SCHEMA))
            pairs = stager.finish()
            rows = counts.parsed
            ratio = counts.malformed / max(counts.access, 1)
            if ratio > self.max_reject_ratio:
                self.ds.abandon_entry(entry, pairs)
                msg = (f"{inp.name}: {counts.malformed} of {counts.access} lines "
                       f"({ratio:.0%}) are malformed, over --max-reject-ratio {self.max_reject_ratio:g}; not "
                       f"ingested: check the format with `{inp.parse_command(option=self.format_option)}` "
                       + ("(is the format the proxies'?)" if self.format_option else
                          "(your mesh's own format? give it with --format-string or --format-file)")
                       + ", or raise --max-reject-ratio")
                print(f"logpipe: error: {msg}", file=self.err)
                self.ratio_failures.append(msg)
                self.summary.failed += 1
                self.summary.counts += counts
                self.summary.refused_lines += counts.read
                return None
            if counts.parsed == 0 and counts.noise:  # a format mismatch must not pass silently
                self.bar.note(_batches.no_access_warning(f"{inp.name}: no access line among its {counts.read} lines",
                                                         counts.noise, first=first if self.parser.custom else None,
                                                         look=inp.parse_command(option=self.format_option)))
            if plan.hasher is not None:  # hashed while read: what was read is the input
                size, full = end, plan.hasher.hexdigest() if plan.hasher.size == end else _prefix_hash(inp, end, self.hash_algo)
            elif not inp.is_stream and end != size and not error and entry["compression"] == "plain":
                # a live log grew while we read it: identify it by what was read
                pre = _prefix_hash(inp, end, self.hash_algo)
                if pre is not None:
                    if size < HEAD_BYTES and (heads := _text_heads(inp, self.hash_algo, end)):  # (of what was read)
                        entry["heads"] = heads
                    size, full = end, pre
            if text is not None:  # (a damaged archive's: above)
                entry["content_size"], entry["content_hash"] = text[:2]
            entry.update(
                size=size, hash=full, bytes_end=end, bytes_read=end - skip_bytes,
                line_end=first_line + counts.read - 1, read=counts.read, parsed=counts.parsed,
                noise=counts.noise, malformed=counts.malformed, blank=counts.blank, joined=counts.joined, rows=rows,
                min_time=_iso(tmin), max_time=_iso(tmax), error=error,
                ends_newline=_last_line_whole(inp, entry["compression"], end, size),
            )
            if error:  # said here, in input order with the other inputs' warnings
                print(f"logpipe: error: {error}", file=self.err)
            elif first_line > 1 and entry.get("mends"):
                was = "intact now" if entry["mends"] == inp.name else f"an intact copy of the damaged archive {entry['mends']}"
                self.bar.note(f"{inp.name}: {was}, ingested before up to its damage; read lines {first_line} to"
                              f" {entry['line_end']}")
            elif first_line > 1 and entry.get("continues"):
                self.bar.note(f"{inp.name}: its first {first_line - 1} lines are {entry['continues']}'s, ingested"
                              f" before; read lines {first_line} to {entry['line_end']}")
            elif first_line > 1 and entry.get("overlaps"):
                self.bar.note(f"{inp.name}: its first {first_line - 1} lines were ingested already (the end of"
                              f" {entry['overlaps']}); read from line {first_line}")
            elif first_line > 1:
                self.bar.note(f"{inp.name}: grew since the last ingest; read lines {first_line} to {entry['line_end']}")
        except BaseException as e:
            batches.close()  # workers finish their tasks first: then abandon removes all their files
            _wait(plan)
            self.ds.abandon_entry(entry, stager.abandon())
            if interrupted(e):
                self.bar.__exit__(None, None, None)
                print(f"logpipe: {inp.name}: stopped before its end, not ingested (the next run does it)", file=self.err)
                self.stopped = inp.name
            raise
        finally:
            self.bar.finish(task)

        def after(done: dict) -> None:
            self.known.remove(replaces)
            if done.get("hash"):
                self.known.add(done)
            self.files[done["id"]] = inp
            if self.ingested is not None:
                self.ingested.add(done)
            self.summary.counts += counts
            self.summary.ingested += 1
            self.summary.rows += rows
            self.summary.files += len(done["parts"])
            self.days.update(p.split("/", 1)[0] for p in done["parts"] + done["rejects"])  # (and _rejects)
            self.summary.undated += undated
            self.summary.bytes += end - skip_bytes
            if tmin is not None and self.cutoff is not None and tmin < self.cutoff:
                self.late_inputs.add(done["id"])
            if tmin is not None:
                self.summary.min_time = tmin if self.summary.min_time is None else min(self.summary.min_time, tmin)
                self.summary.max_time = tmax if self.summary.max_time is None else max(self.summary.max_time, tmax)
            if error:
                self.summary.failed += 1
                self.summary.errors.append(error)

        return entry, pairs, replaces, after

    def fail_unread(self, plan: _Plan, stager, error) -> None:
        """``plan``'s input changed while it was read (``InputChangedError``), or its file could not be
        read any more: not ingested, none of it kept; the run goes on with the other inputs."""
        self.ds.abandon_entry(plan.entry, stager.abandon())
        print(f"logpipe: error: {error}", file=self.err)
        self.summary.failed += 1
        return None

    def drop(self, plans) -> None:
        """Plans begun and never finished: wait for their tasks, then drop their entries and files."""
        for plan in plans:
            if "state" in plan.entry:  # begun (launch may have stopped half-way)
                _wait(plan)
                self.ds.abandon_entry(plan.entry)

    def finish_group(self, plans: list) -> None:
        """Finish ``plans`` and commit those checked, together. A full disk (``errors.no_space``) fails
        the input whose files it stopped (each input's files are its own, a worker task of several
        too: ``workers._stage_inputs``): the others whose files are written commit, those not read
        yet are not read, and then the run stops with it. Any other error commits none of them."""
        items, k, full = [], 0, None
        try:
            for k, plan in enumerate(plans):
                if full is not None and plan.future is None:  # not read yet (no worker read it): not now
                    self.drop([plan])
                    continue
                try:
                    got = self.finish(plan)
                except OSError as e:
                    if not no_space(e):
                        raise
                    full = full or e  # (the input dropped itself)
                    self.summary.failed += 1
                    continue
                if got is not None:
                    items.append(got)
        except BaseException:
            for entry, pairs, _, _ in items:  # checked, not committed: not ingested either
                self.ds.abandon_entry(entry, pairs)
            self.drop(plans[k + 1:])  # (the one that failed dropped itself)
            raise
        with _interrupt_after():  # (what is in the manifest is what the summary counts)
            for (*_, after), done in zip(items, self.ds.commit_entries([item[:3] for item in items])):
                after(done)
        if full is not None:
            raise full

    def launch(self) -> None:
        """Begin the entries of ``decided`` (one manifest write) and start their worker tasks (with
        no workers, ``finish`` parses each in turn). Plain inputs of one chunk (CHUNK_BYTES, one
        batch alone too) go to the workers together, up to STAGE_TASK_BYTES a task, parsed in one
        batch (``workers.stage_inputs_async``), unless --flush-rows asks for fewer rows a file."""
        group: list = []
        for plan, entry in zip(self.decided, self.ds.begin_entries([p.entry for p in self.decided])):
            plan.entry = entry
            self.ahead.append(plan)
            if self.pool is None:
                continue
            if entry["compression"] == "plain" and (plan.size or 0) - plan.skip_bytes <= CHUNK_BYTES \
                    and (self.flush_rows is None or self.flush_rows >= _batches.FLUSH_ROWS):
                group.append(plan)
                if sum(p.size or 0 for p in group) >= STAGE_TASK_BYTES:
                    self._start(group)
                    group = []
            else:
                plan.future = stage_input_async(self.pool, plan.inp, plan.skip_bytes, plan.first_line,
                                                (str(self.ds.root), entry["prefix"]), self.flush_rows)
        self._start(group)
        self.decided.clear()

    def _start(self, plans: list) -> None:
        """One worker task for ``plans`` (plain inputs): each gets its share of it as its future."""
        if plans:
            items = [(p.inp, p.skip_bytes, p.first_line, p.entry["prefix"]) for p in plans]
            for plan, part in zip(plans, stage_inputs_async(self.pool, items, str(self.ds.root))):
                plan.future = part

    def drain(self, keep: int) -> None:
        """Finish inputs in flight until ``keep`` are left: the first one, waiting for it, with
        those after it that are done, committed together."""
        self.launch()
        while len(self.ahead) > keep:
            group = [self.ahead.popleft()]
            while self.ahead and len(group) < AHEAD_INPUTS and (self.ahead[0].future is None or self.ahead[0].future.done()):
                group.append(self.ahead.popleft())
            self.finish_group(group)


@contextlib.contextmanager
def _interrupt_after():
    """A Ctrl-C while inputs are committed (two manifest writes) and counted is raised once they are:
    one meanwhile left them committed (``Dataset.recover`` rolls a commit forward) and not counted,
    and the summary and its `N more input(s) not ingested` line said one too few ingested, one too
    many not. Only where Python's own handler is this thread's to replace (the main thread's)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    got: list = []
    signal.signal(signal.SIGINT, lambda *_: got.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if got:
        raise KeyboardInterrupt


def _text_of(e: dict) -> tuple[int | None, str | None]:
    """An entry's text's size and hash: a plain file's are its bytes', a compressed one's recorded."""
    if e.get("content_hash"):
        return e.get("content_size"), e["content_hash"]
    return (e["size"], e["hash"]) if e.get("compression") == "plain" else (None, None)


# What an entry in flight (``_Run.ingest``'s stand-in) is known by besides its bytes: its text and heads.
_TEXT_KEYS = ("compression", "content_size", "content_hash", "heads")


def _text_heads(inp: Input, algo: str, limit: int = HEAD_BYTES) -> list:
    """``dataset.head_hashes`` of an input's text (a compressed one's decompressed, as ``text_fingerprint``
    reads it), of its first ``limit`` bytes at most; [] for other inputs (OTLP files, UTF-16 text) or
    when it cannot be read."""
    from .sources import open_binary
    from .unpack import read_some

    try:
        kind = compression_of(inp)
        if kind != "plain" and kind not in WHOLE_FILE_COMPRESSION:
            return []
        with open(inp.path, "rb") if kind == "plain" else open_binary(inp)[0] as f:
            head, _ = read_some(f, min(limit, HEAD_BYTES))  # (a damaged archive: its text before the damage)
    except (OSError, InputError):
        return []
    return head_hashes(head, algo)


class _Known:
    """``_Run.known``: the entries an input may be known by (the dataset's that have a hash, and the
    stand-ins of inputs in flight), in the order they came, indexed by what ``decide`` looks for: their
    bytes' (size, hash), their text's (``_text_of``), their first head, and their sizes. A scan of each
    entry per input made an ingest of 100 small inputs into a dataset of 18,000 entries take ~13.5 s,
    ~8 s of it in the scans. Each look-up gives what a scan of the list gives: entries in that order.
    An entry's indexed keys must not change while it is here, but for ``gain_heads``. The entries are
    the manifest's as ``Dataset.read_manifest`` holds them (shared, no copy)."""

    def __init__(self, entries=(), where: str = "the manifest"):
        self.where = where  # (the manifest's path, for the error of an id it lists twice)
        self.entries: dict[str, dict] = {}  # id: entry, in the order they came
        self.seq: dict[str, int] = {}  # id: its place in that order
        # (size, hash) of its bytes, of its text (``_text_of``), its first head: the id of the one entry
        # of that key, or {id: None} of several (a dict a key, and each entry's keys kept: 21.6 MB for 18,000
        # entries, 6.1 MB so)
        self.bytes: dict[tuple, str | dict] = {}
        self.text: dict[tuple, str | dict] = {}
        self.head: dict[tuple, str | dict] = {}
        self.sizes: dict[int, int] = {}  # entries' sizes and content sizes (``fingerprint``'s prefix sizes): how many
        self.headless: dict[int, int] = {}  # those of entries with no heads (``prefix_sizes``)
        self.timed = 0  # entries with a max_time
        self.count = itertools.count()
        for e in entries:
            self.add(e)

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, e: dict) -> None:
        if e["id"] in self.entries:  # (a manifest edited or joined by hand: logpipe writes each id once)
            raise DatasetError(f"{self.where} lists input {e['id']} twice (edited or joined by hand?); remove one of"
                               " the two entries of that id, or restore the manifest")
        self.entries[e["id"]] = e
        self.seq[e["id"]] = next(self.count)
        self._file(e)
        self._count(e, 1)

    def remove(self, ids) -> None:
        """Those of ``ids`` known (others are not)."""
        for i in ids:
            if (e := self.entries.pop(i, None)) is None:
                continue
            del self.seq[i]
            self._unfile(e)
            self._count(e, -1)

    def gain_heads(self, e: dict, heads: list) -> None:
        """An entry from before heads were recorded, found by them now, known by them from now on: a copy
        of it with ``heads`` (the manifest's entries are read-only, and it is not written so)."""
        if "heads" not in e:
            self._unfile(e)
            _tally(self.headless, e, -1)
            e = self.entries[e["id"]] = dict(e, heads=heads)
            self._file(e)
            if not heads:
                _tally(self.headless, e, 1)

    def _count(self, e: dict, step: int) -> None:
        _tally(self.sizes, e, step)
        if not e.get("heads"):
            _tally(self.headless, e, step)
        self.timed += step * bool(e.get("max_time"))

    def prefix_sizes(self, heads: list):
        """The sizes at which an input of text ``heads`` (``dataset.head_hashes``) is hashed for the entries
        it may have grown from (``fingerprint``'s prefixes, ``decide``'s ``grown``): those of the entries
        whose first head is one of its own (an entry whose text, or bytes, an input's start is, starts with
        the same first line, so has the same first head) and of those with none (recorded before heads
        were, or a text of no line end); every entry's when the input has no heads (UTF-16, OTLP). An
        input was hashed at every entry's size below its own: ~5,600 a 3.2 MB input among 18,000
        entries' sizes (~25 ms each)."""
        if not heads:
            return self.sizes
        out = set(self.headless)
        for e in self.by_head(heads):
            out.update(_sizes_of(e))
        return out

    def _keys(self, e: dict) -> list[tuple[dict, tuple]]:
        """The (index, key) pairs ``e`` is filed under."""
        keys = [(self.bytes, (e["size"], e["hash"])), (self.text, _text_of(e))]
        if e.get("heads"):
            keys.append((self.head, tuple(e["heads"][0])))
        return keys

    def _file(self, e: dict) -> None:
        i = e["id"]
        for index, k in self._keys(e):
            got = index.setdefault(k, i)
            if got != i:
                if isinstance(got, str):
                    index[k] = got = {got: None}
                got[i] = None

    def _unfile(self, e: dict) -> None:
        for index, k in self._keys(e):
            got = index[k]
            if isinstance(got, str):
                del index[k]
            else:
                del got[e["id"]]
                if not got:
                    del index[k]

    def find(self, index: dict, keys) -> list[dict]:
        """The entries of any of ``keys`` in ``index``, in the order they came."""
        ids = set()
        for k in keys:
            got = index.get(k)
            if isinstance(got, str):
                ids.add(got)
            elif got:
                ids.update(got)
        return [self.entries[i] for i in sorted(ids, key=self.seq.__getitem__)]

    def same_grown(self, index: dict, size: int, full: str, prefixes: dict) -> tuple[list, list]:
        """The entries of ``index`` (``bytes``, ``text``) whose (size, hash) is ``(size, full)`` (``same``),
        or one of ``prefixes``' smaller than ``size`` (``grown``). Most prefixes are no entry's (each
        entry's size is one): those are passed over in C (100 inputs among 18,000 entries: 0.2 s, ~1 s
        with a Python look-up of each, under cProfile)."""
        return (self.find(index, [(size, full)]),
                self.find(index, [k for k in filter(index.__contains__, prefixes.items()) if 0 < k[0] < size]))

    def by_head(self, heads) -> list[dict]:
        """The entries whose first head is one of ``heads``."""
        return self.find(self.head, (tuple(h) for h in heads))

    def any_upto(self, size: int) -> bool:
        """Whether an entry's size or content size is within 1 and ``size`` (a look at each size: for large
        inputs only, ``hash_while_read``)."""
        return any(0 < n <= size for n in self.sizes)


def _sizes_of(e: dict) -> list[int]:
    """An entry's size, and its text's when it has one of its own (a compressed input's)."""
    return [e["size"]] + ([e["content_size"]] if e.get("content_size") else [])


def _tally(counts: dict[int, int], e: dict, step: int) -> None:
    """Count ``e``'s sizes in ``counts`` (``step`` 1) or no more (-1; a size no entry has is dropped)."""
    for n in _sizes_of(e):
        if not (got := counts.get(n, 0) + step):
            del counts[n]
        else:
            counts[n] = got


def _count_lines(path: str, end: int) -> int:
    """The newlines in a file's first ``end`` bytes."""
    n = 0
    with open(path, "rb") as f:
        while end > 0 and (block := f.read(min(end, OVERLAP_CHUNK * 8))):
            n += block.count(b"\n")
            end -= len(block)
    return n


def _line_end(body: bytes, offset: int, k: int) -> int:
    """The input offset just after the ``k``-th line of ``body`` (which starts at ``offset``)."""
    at = -1
    for _ in range(k):
        at = body.find(b"\n", at + 1)
        if at < 0:
            return offset + len(body)
    return offset + at + 1


def _wait(plan: _Plan) -> None:
    """Wait for a plan's worker task (its files written) so that abandoning the plan removes them."""
    if plan.future is not None:
        with contextlib.suppress(BaseException):
            plan.future.exception()


class _Stager:
    """Writes an input's buffered tables (``Dataset.stage``) on a background thread, one at a time:
    pyarrow encodes Parquet without the GIL, so reading and parsing go on meanwhile. At most one
    write is in flight, so memory stays bounded."""

    def __init__(self, ds, prefix: str):
        from concurrent.futures import ThreadPoolExecutor

        self._ds, self._prefix = ds, prefix
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="logpipe-write")
        self._pending = None
        self._syncing: list = []  # (fsyncs of files the lanes wrote: ``staged``)
        self._syncer = None
        self.pairs: list = []

    def staged(self, pairs: list) -> None:
        """Files a lane wrote and did not fsync (``workers._stage_buffer``): fsynced on a thread of
        their own while the lanes go on; ``finish`` waits for them."""
        from concurrent.futures import ThreadPoolExecutor

        from .parts import fsync_file

        self.pairs += pairs
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="logpipe-fsync")
        self._syncing += [self._syncer.submit(fsync_file, hidden) for hidden, _ in pairs]

    def _synced(self) -> None:
        syncing, self._syncing = self._syncing, []
        try:
            for done in syncing:
                done.result()
        finally:
            if self._syncer is not None:
                self._syncer.shutdown(wait=True)

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
            self._synced()
        return self.pairs

    def abandon(self) -> list:
        """After a failure: waits for a write in flight, ignoring its error; the pairs written."""
        try:
            self._collect()
        except Exception:  # noqa: BLE001 - its hidden files are swept as stale by recover()
            pass
        self._pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self._synced()
        return self.pairs


def _iso(t) -> str | None:
    return None if t is None else t.isoformat()


def _parse_time(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)


def _late_note(ds, inputs: set[str], cutoff) -> str | None:
    """The note on this run's rows before ``cutoff`` (of ``inputs``, the entries whose earliest row
    is): the default anomalies window, the data's last 24 h, never holds them. Counted in the
    start_time column of their files whose day is not after the cutoff's (their own rows of a merged
    one), under the readers' lock: a `logpipe compact` run meanwhile may have merged the files they
    were committed with (and deleted those), and may not while they are read."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .dataset import readers_lock

    n, lo, hi = 0, None, None
    with readers_lock(ds.root, shared=True):
        m = ds.read_manifest()
        shared = m.get("shared", {})
        for e in m["inputs"]:
            for rel in e["parts"] if e["id"] in inputs else ():
                folder = rel.split("/", 1)[0]
                day = folder.removeprefix("date=")
                if folder == day or day == "unknown" or day > f"{cutoff:%Y-%m-%d}":  # (rows' files only: not _rejects/)
                    continue
                column = pq.ParquetFile(ds.root / rel).read(columns=["start_time"]).column(0)
                if rel in shared:  # (its rows of it: shared says how many rows of it are whose, in order)
                    ends = list(itertools.accumulate(k for _, k in shared[rel]))
                    column = pa.chunked_array([c for (owner, k), end in zip(shared[rel], ends) if owner == e["id"]
                                               for c in column.slice(end - k, k).chunks], column.type)
                old = pc.filter(column, pc.less(column, pa.scalar(cutoff, column.type)))
                if len(old):
                    n += len(old)
                    a, b = pc.min_max(old).values()
                    lo = a.as_py() if lo is None else min(lo, a.as_py())
                    hi = b.as_py() if hi is None else max(hi, b.as_py())
    if not n:
        return None
    until = hi.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return (f"logpipe: note: {n} of this run's rows ({lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC) are older than"
            " the dataset's last day before it; the default anomalies window (the data's last 24 h) leaves them"
            f" out: report them with --since {lo:%Y-%m-%dT%H:%MZ} --until {until:%Y-%m-%dT%H:%MZ}")


def _compact(ds, err, days: set[str]) -> None:
    """Merge the small part files (``INGEST_SMALL_ROWS``) of the day directories this run wrote to
    (``days``) that hold many (``COMPACT_MIN_FILES``), whichever inputs wrote them (``Dataset.compact``):
    a run of many small inputs (per-pod logs, daily tarballs) leaves a file per input and day, and a
    query reads 600 files ~3x slower than the same rows in a few (README, Ingest). After the note on
    late rows, which reads this run's files. Its small reject files likewise (``_rejects`` in ``days``)."""
    from .compaction import INGEST_SMALL_ROWS
    from .dataset import compact_dataset
    from .errors import LogpipeError

    merged: dict = {}
    try:
        compact_dataset(ds, across=True, small_rows=INGEST_SMALL_ROWS, days=days, merged=merged, waiting=lambda: print(
            f"logpipe: waiting for the queries reading {ds.root} to finish, to merge small part files", file=err))
    except (OSError, LogpipeError) as e:  # the rows are stored as they are; merging can wait
        why = no_space(e) or (e.strerror if isinstance(e, OSError) and e.strerror else str(e))
        print(f"logpipe: compaction skipped: {why}; the rows are stored (`logpipe compact` merges the small part"
              " files later)", file=err)
        return
    print_merged(merged, err)


def print_merged(merged: dict, err) -> None:
    """``merged 600 small part files into 2`` (and the reject files' line) of a compaction's ``merged``."""
    for kind, what in (("parts", "part"), ("rejects", "reject")):
        if kind in merged:
            print(f"merged {merged[kind][0]} small {what} files into {merged[kind][1]}", file=err)


def _prefix_hash(inp: Input, end: int, algo: str) -> str | None:
    """The hash of ``inp``'s first ``end`` bytes, as ``fingerprint`` gives it (None when it is shorter now)."""
    return fingerprint(inp.path, [end], algo)[2].get(end)


def _last_line_whole(inp: Input, compression: str, end: int, size: int | None) -> bool | None:
    """Whether the input's last line read was whole (a grown input is read again whole when it was
    not): a plain file's byte before ``end``; an OTLP/JSON file's (its lines are its requests) last
    byte, unless it grew while read; None when it cannot be told."""
    if compression == "plain":
        return _ends_newline(inp, end)
    if compression == "otlp-json" and not inp.is_stream:
        return inp.size() == size and _ends_newline(inp, size)
    return None


def _ends_newline(inp: Input, end: int) -> bool:
    if end == 0:
        return True
    with open(inp.path, "rb") as f:
        f.seek(end - 1)
        return f.read(1) == b"\n"


class _ingest_lock:
    """One ingest per dataset at a time (it recovers what a killed one left)."""

    def __init__(self, ds):
        self.ds = ds
        self.fd = None

    def __enter__(self):
        import fcntl

        self.fd = self.ds.lock_file(INGEST_LOCK)  # (an existing dataset read-only now: one clear error)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise DatasetError(f"another logpipe ingest is writing to {self.ds.root}; wait for it to finish") from None
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the flock
