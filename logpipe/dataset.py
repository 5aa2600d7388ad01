"""Stage 3: record batches into a Hive-partitioned Parquet dataset, with rejects and a manifest.
How each Parquet part is split by day and written is ``logpipe/parts.py``'s; this module makes parts
visible, durably and atomically, and keeps the manifest.

Layout (what other engines and the rest of logpipe rely on)::

    DATA/date=YYYY-MM-DD/<prefix>-<uuid>.parquet   rows (RECORD_SCHEMA), by UTC day of start_time
    DATA/date=YYYY-MM-DD/merged-<uuid>.parquet     rows of several inputs, merged (``Dataset.compact``)
    DATA/date=unknown/<prefix>-<uuid>.parquet      rows without a start_time (none are dropped)
    DATA/_rejects/<prefix>-<uuid>.parquet          rejected lines (REJECT_SCHEMA)
    DATA/_rejects/merged-<uuid>.parquet            rejected lines of several inputs, merged
    DATA/_manifest.json                            one entry per ingested input (see ingest.ingest_paths)
    DATA/_lock                                     flock for manifest updates
    DATA/_compact.lock                             flock: readers (shared) against compaction (exclusive)

Read rows with ``read_parquet('DATA/date=*/*.parquet', hive_partitioning=true,
hive_types={'date': VARCHAR})`` (DuckDB) or ``pl.scan_parquet('DATA/date=*/*.parquet',
hive_partitioning=True)``. Rows without a ``start_time`` go to ``date=unknown`` rather than a fake
day: nothing is dropped, and no made-up 1970 shows in a date range. DuckDB infers ``date`` as DATE
when every directory is a day and as VARCHAR once ``unknown`` exists, hence ``hive_types``
(``db.py`` does this). Names starting with ``_`` or ``.`` are skipped by
Spark/Trino/Hive; DuckDB's ``*`` does match dot files, so files in flight are named
``.<final>.tmp`` (never ``*.parquet``) and a ``**/*.parquet`` glob would also pick up ``_rejects``.

Atomicity: every file is written under ``.<name>.tmp`` and ``os.replace``d to its final name; the
manifest likewise. ``append`` makes rows visible at once (streaming). Ingest uses ``stage`` +
``commit_entry``: an input's files stay hidden until the manifest records them (state
``committing``), then they are renamed and the entry marked ``complete``; ``recover`` rolls a
``committing`` entry forward and deletes the hidden files of a ``pending`` one. After a ``kill -9``
at any moment the dataset holds whole inputs only (an input caught between its first and last
rename shows part of its rows until the next run completes it), never a row twice.

A manifest entry (one per ingested input, or per appended piece of a grown file): ``id``,
``prefix`` (its files are ``<prefix>-*.parquet``, until merged), ``path``, ``size``, ``hash`` (of those raw bytes) and ``hash_algo`` (``HASH_ALGOS``), ``compression``,
``skip_bytes``/``bytes_end``/``bytes_read`` (decompressed offsets), ``first_line``/``line_end``,
``read``/``parsed``/``noise``/``malformed``/``blank``/``joined`` (``read`` = the other five; ``joined``: the
parts of lines a container runtime split, joined to their first part's row), ``parts``,
``rejects``, ``min_time``/``max_time``, ``error`` (damaged archive), ``ends_newline``, ``state``; a
compressed input's ``content_size``/``content_hash`` (of its text: a plain copy of it, or a gzipped one
of a plain input, is the same input), and ``continues`` (the path of the input whose lines it
starts with, when that is another file's: a log read while it grew, then rotated and compressed),
``mends`` (the path of the damaged archive whose lines up to its damage it starts with: an intact copy),
``heads`` (``head_hashes`` of its text: how an earlier capture of the same log, ingested after it, is
found; entries written before logpipe recorded them have none).
``parts`` lists the row files that hold the input's rows: its own, deleted whole by ``--force``, and
the merged files of several inputs' rows it has rows in (``shared``: ``{file: [[entry id, rows], …]}``,
each input's rows together, in that order; id null: a stream's rows), which ``--force`` rewrites
without its rows. ``rejects`` likewise lists its reject files, its own and merged ones (``shared`` too).

Compaction (small part files merged into fewer, and ``--force``'s rewrite of a merged file without
an input's rows) is ``logpipe/compaction.py``'s, with how it never shows a glob reader a row twice;
this module keeps the lock it runs under, which logpipe's own readers hold shared
(``readers_lock``, ``compact_dataset``), and ``recover`` finishes a plan a killed process left.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import blake3
import pyarrow as pa

from .compaction import COMPACT_MIN_FILES, MERGED_PREFIX, compact_parts, drop_inputs, finish_plans
from .errors import DatasetError, denied
from .parts import REJECTS_DIR, _unlink, hidden_name, stage_files

MANIFEST = "_manifest.json"
LOCK = "_lock"
READERS_LOCK = "_compact.lock"
INGEST_LOCK = "_ingest.lock"  # (ingest.py: one ingest at a time)
FORMAT = "logpipe-dataset"
STALE_TMP_SECONDS = 24 * 3600


class Dataset:
    """A logpipe dataset directory. ``Dataset(root)`` opens one (``DatasetError`` when missing);
    ``Dataset(root, create=True)`` creates it when needed."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        self.manifest_path = self.root / MANIFEST
        self._held: dict | None = None  # the manifest as last read or written, shared (``read_manifest``)
        self._held_key: tuple | None = None  # (which file that is: ``_file_key``)
        # what this object made: "directory" (it and the manifest), "manifest" (in an empty directory), or None
        self.created: str | None = None
        if self.manifest_path.is_file():
            self._check_manifest()
            return
        if not create:
            raise DatasetError(f"{self.root} is not a logpipe dataset (no {MANIFEST}); " + how_to_make(
                self.root, ", or point --data / $LOGPIPE_DATA at an existing dataset"))
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root} exists and is not a directory; choose another --data path")
        if (up := dataset_above(self.root)) is not None:  # (a mistyped --data, almost always: it made one inside)
            raise DatasetError(f"{self.root} is inside the dataset {up}: give --data {up} to add to it, or a "
                               "directory outside it for a dataset of its own")
        if _holds_others(self.root):
            raise DatasetError(
                f"{self.root} already holds files that are not a logpipe dataset; choose an empty or new --data directory"
            )
        made = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(f"cannot create dataset directory {self.root}: {e.strerror}; check the path and permissions") from None
        with self.locked():
            if not self.manifest_path.is_file():
                self._write_manifest({"format": FORMAT, "version": 1, "generation": 0, "inputs": [], "compactions": []})
                self.created = "directory" if made else "manifest"

    def discard_if_empty(self) -> bool:
        """Remove the dataset this object created (``created``) while it holds nothing: no input in its
        manifest and no file but its manifest and lock files (directories with no file in them go too); the directory too
        when it made it. A failed ingest into a new --data (every input over --max-reject-ratio, or
        unreadable) left such a dataset, which a report read as one of empty logs (exit 0). Anything else
        there (a stream's rows, a file in flight) keeps it. Call it under the ingest lock; True when removed."""
        if self.created is None:
            return False
        with self.locked():
            m = self.read_manifest()
            if m.get("inputs") or m.get("compactions") or m.get("shared"):
                return False
            ours = {MANIFEST, LOCK, READERS_LOCK, INGEST_LOCK}
            try:
                # (directories with no file in them, a day's or _rejects/ that the lanes made before the
                # failure, are left by a run as often as not: they hold nothing and go too)
                empty = [p for p in self.root.iterdir() if p.name not in ours]
                if any(not p.is_dir() or p.is_symlink() or any(q.is_file() or q.is_symlink() for q in p.rglob("*"))
                       for p in empty):
                    return False
                _unlink(self.manifest_path)  # (first: from now on it is no dataset)
                self._held = None
                for top in empty:
                    for d in sorted((q for q in top.rglob("*")), key=lambda q: len(q.parts), reverse=True):
                        d.rmdir()
                    top.rmdir()
                for name in (LOCK, READERS_LOCK, INGEST_LOCK):
                    _unlink(self.root / name)
                if self.created == "directory":
                    self.root.rmdir()
            except OSError:  # (a file made meanwhile, a read-only directory: what is left stays)
                return False
        return True

    # ---- globs ------------------------------------------------------------------------------------

    def row_glob(self) -> str:
        """What DuckDB/polars users read, with hive partitioning: rows only."""
        return f"{self.root}/date=*/*.parquet"

    def rejects_glob(self) -> str:
        return f"{self.root}/{REJECTS_DIR}/*.parquet"

    def row_files(self) -> list[Path]:
        return sorted(self.root.glob("date=*/*.parquet"))

    def reject_files(self) -> list[Path]:
        return sorted((self.root / REJECTS_DIR).glob("*.parquet"))

    # ---- manifest ---------------------------------------------------------------------------------

    def lock_file(self, name: str) -> int:
        """The descriptor of lock file ``name`` (made if missing), opened to write: a writer's first
        write to the dataset, so where it cannot be written that is one clear error."""
        try:
            return os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only mount or directory (or lock file): no dataset can be written there
            raise _cannot_write(self.root, e.strerror) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for a manifest read-modify-write (between processes)."""
        fd = self.lock_file(LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read_manifest(self) -> dict:
        """The manifest as its file says now, parsed once while no process writes it: every reader of this
        ``Dataset`` gets the same objects, which are read-only (``_Held``: ``update_manifest`` changes the
        manifest; ``dict(e)`` is a copy to change). An ingest into a dataset of 18,000 inputs (a month of
        nightly ingests of 600 pod logs: a 14 MB manifest, ~42 MB parsed) parsed it seven times, ~0.15 s
        each, and held five of them at once with its indexes: ~350 MB of its ~500 MB peak."""
        key = _file_key(self.manifest_path)
        if self._held is not None and key == self._held_key:
            return self._held
        try:
            with open(self.manifest_path, "rb") as f:
                st = os.fstat(f.fileno())  # (of the file read: another process may replace it meanwhile)
                data = f.read()
            m = json.loads(data.decode("utf-8"), object_pairs_hook=_Held)
        except FileNotFoundError:
            raise DatasetError(f"{self.manifest_path} is missing; re-create the dataset with `logpipe ingest`") from None
        except ValueError as e:
            raise DatasetError(f"{self.manifest_path} is not valid JSON ({e}); restore it or re-ingest into a new --data directory") from None
        if isinstance(m, dict):
            head = _head_of(data[:1 << 16].split(b"\n", 1)[0])
            self._held, self._held_key = m, (st.st_ino, st.st_size, st.st_mtime_ns, head.get("generation"))
        return m

    def _check_manifest(self) -> None:
        """That the manifest is a logpipe dataset's: its first line says so (``_manifest_text``'s head),
        else a read of it whole says what is wrong. (Read whole at every open, a 14 MB manifest of
        18,000 inputs cost each command ~0.12 s before it did anything.)"""
        if _head(self.manifest_path).get("format") == FORMAT:
            return
        m = self.read_manifest()
        if not isinstance(m, dict) or m.get("format") != FORMAT:  # (JSON, but an array, …: an internal error)
            raise DatasetError(f"{self.manifest_path} is not a logpipe manifest; point --data at a logpipe dataset")

    def _write_manifest(self, manifest: dict, durable: bool = True) -> None:
        manifest["generation"] = manifest.get("generation", 0) + 1
        pieces, held = _manifest_held(manifest)
        tmp = self.root / f".{MANIFEST}.tmp"
        self._held = None  # (until it is the file's)
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(pieces)  # (not joined first: a second 14 MB a write)
            f.flush()
            if durable:
                os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        os.replace(tmp, self.manifest_path)
        if durable:
            _fsync_dir(self.root)
        self._held, self._held_key = held, (st.st_ino, st.st_size, st.st_mtime_ns, held.get("generation"))

    def update_manifest(self, change: Callable[[dict], object], durable: bool = True) -> object:
        """Locked read-modify-write: ``change(manifest)`` edits it in place; its result is returned.
        ``durable=False`` skips fsync where losing the write to a power cut is harmless (``recover``
        redoes it); a ``kill -9`` never loses a write either way.

        ``change`` gets the manifest as read (``read_manifest``: no read when this process wrote it last)
        with lists and dicts of its own at the top (``inputs``, ``compactions``, ``shared``): it adds,
        removes and replaces entries, or sets an entry's keys (written: ``_Held``), never edits a list
        within an entry or a compaction in place (those are every reader's). What it puts there is
        written and then held as a copy (``_manifest_held``): the caller's objects stay the caller's."""
        with self.locked():
            held = self.read_manifest()
            m = dict(held)
            for key, items in m.items():
                if key in ("inputs", "compactions", "shared") and isinstance(items, (list, dict)):
                    m[key] = list(items) if isinstance(items, list) else dict(items)
            try:
                with _changing():
                    result = change(m)
                self._write_manifest(m, durable)
            except BaseException:
                self._held = None  # (an entry it changed in place, unwritten: read again)
                raise
            return result

    def entries(self, state: str | None = "complete") -> list[dict]:
        return [e for e in self.read_manifest()["inputs"] if state is None or e.get("state") == state]

    # ---- writing ----------------------------------------------------------------------------------

    def stage(self, records: pa.Table | pa.RecordBatch | None, rejects: pa.Table | pa.RecordBatch | None = None,
              *, prefix: str = "part") -> list[tuple[Path, Path]]:
        """Write rows (one file per day) and rejects as hidden files; returns ``(hidden, final)`` pairs.
        Nothing is visible to readers until ``publish`` renames them."""
        return stage_files(self.root, records, rejects, prefix=prefix)

    def publish(self, pairs: list[tuple[Path, Path]]) -> list[Path]:
        # No directory fsync: a rename lost to a power cut is redone by ``recover`` (ingest) or
        # leaves a stale hidden file (append); the file data itself was fsynced before.
        for tmp, final in pairs:
            if tmp.exists():
                os.replace(tmp, final)
        return [final for _, final in pairs]

    def append(self, records: pa.Table | pa.RecordBatch, rejects: pa.Table | pa.RecordBatch | None = None,
               *, prefix: str = "part") -> list[Path]:
        """Write rows and rejects now: each file atomically (hidden name, then rename). Returns the final
        paths (row files first). Does not touch the manifest."""
        return self.publish(self.stage(records, rejects, prefix=prefix))

    def rel(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    # ---- ingest entries: pending → committing → complete -----------------------------------------

    def begin_entry(self, entry: dict) -> dict:
        """Record an input as ``pending`` (its hidden files are garbage if the process dies)."""
        return self.begin_entries([entry])[0]

    def begin_entries(self, entries: list[dict]) -> list[dict]:
        """``begin_entry`` of several inputs in one manifest write (many small inputs: the manifest
        is rewritten whole, so one write per input would cost O(inputs²))."""
        begun = [dict(e, state="pending", parts=[], rejects=[], started_at=_now()) for e in entries]

        def add(m: dict) -> None:
            m["inputs"].extend(begun)

        if begun:
            self.update_manifest(add, durable=False)  # lost: their hidden files are swept as stale
        return begun

    def commit_entry(self, entry: dict, pairs: list[tuple[Path, Path]], replaces: list[str] = ()) -> dict:
        """Make an input's staged files visible, replacing the rows of entries ``replaces`` (--force).
        Crash-safe: the manifest says ``committing`` (with every file) before the first rename."""
        return self.commit_entries([(entry, pairs, replaces)])[0]

    def commit_entries(self, items: list[tuple[dict, list[tuple[Path, Path]], list[str]]]) -> list[dict]:
        """``commit_entry`` of several inputs ``(entry, pairs, replaces)``, with two manifest writes in all."""
        marked = {}
        for entry, pairs, replaces in items:
            parts = [self.rel(f) for _, f in pairs if f.parent.name != REJECTS_DIR]
            rejs = [self.rel(f) for _, f in pairs if f.parent.name == REJECTS_DIR]
            marked[entry["id"]] = dict(entry, state="committing", parts=parts, rejects=rejs, replaces=list(replaces))

        def mark(m: dict) -> None:
            m["inputs"] = [marked.get(e["id"], e) for e in m["inputs"]]

        if not marked:
            return []
        self.update_manifest(mark)
        return self._finish(list(marked.values()))

    def _finish(self, entries: list[dict]) -> list[dict]:
        # Old rows go first: a glob reader may briefly miss them, never see them twice (logpipe's
        # readers wait: the readers' lock is held while the rows are swapped).
        gone = {r for entry in entries for r in entry.get("replaces", ())}
        with readers_lock(self.root, waiting=self._say_waiting) if gone else contextlib.nullcontext():
            if gone:
                drop_inputs(self, gone)
            for entry in entries:
                self.publish([(hidden_name(self.root / rel), self.root / rel) for rel in entry["parts"] + entry["rejects"]])
        done = {}
        for entry in entries:
            d = dict(entry, state="complete", finished_at=_now())
            d.pop("replaces", None)
            done[entry["id"]] = d

        def mark(m: dict) -> None:
            m["inputs"] = [done.get(e["id"], e) for e in m["inputs"] if e["id"] not in gone]
            if gone and m.get("shared"):  # (a shared file of dropped entries' rows only was deleted)
                m["shared"] = {rel: rows for rel, rows in m["shared"].items() if any(r[0] not in gone for r in rows)}

        self.update_manifest(mark, durable=False)  # lost: still "committing", recover rolls it forward
        return list(done.values())

    def _say_waiting(self) -> None:
        import sys

        print(f"logpipe: waiting for the queries reading {self.root} to finish, to replace an input's rows",
              file=sys.stderr)

    def abandon_entry(self, entry: dict, pairs: list[tuple[Path, Path]] = ()) -> None:
        """Forget a pending entry and delete its hidden files (also one interrupted mid-write)."""
        for tmp, _ in pairs:
            _unlink(tmp)
        if entry.get("prefix"):
            for tmp in self.root.glob(f"*/.{entry['prefix']}-*.tmp"):
                _unlink(tmp)

        def drop(m: dict) -> None:
            m["inputs"] = [e for e in m["inputs"] if e["id"] != entry["id"]]

        self.update_manifest(drop, durable=False)

    def recover(self) -> dict:
        """Finish what a killed writer left: roll ``committing`` entries and compactions forward, drop
        ``pending`` entries and their hidden files, show a killed stream's batch
        (``replayguard.finish_publishes``), remove stale hidden files. Call with no other
        ingest running (``ingest.ingest_paths`` holds ``_ingest.lock``). A dataset that cannot be written
        now (a read-only mount or directory, what a killed run left in it to finish) is one error
        (``DatasetError``, as ``lock_file``'s): it was `internal error: PermissionError` on the
        manifest's write."""
        try:
            return self._recover()
        except OSError as e:
            if refused := denied(e, str(self.root)):
                raise _cannot_write(self.root, refused) from None
            raise

    def _recover(self) -> dict:
        m = self.read_manifest()
        stats = {"rolled_forward": 0, "dropped": 0, "compactions": 0}
        for e in m["inputs"]:
            if e.get("state") == "committing":
                self._finish([e])
                stats["rolled_forward"] += 1
            elif e.get("state") == "pending":
                self.abandon_entry(e)
                stats["dropped"] += 1
        stats["compactions"] = self.finish_compactions()
        # a stream killed while it showed a batch: finished here too, before its hidden files are swept
        from .replayguard import finish_publishes

        stats["stream_batches"] = finish_publishes(self.root)
        self.sweep_stale()
        # A manifest write killed before its rename (kill -9, the OOM killer): its writer held the lock
        # till the rename, so one there now is a killed one's; a run that wrote no manifest left it.
        with self.locked():
            _unlink(self.root / f".{MANIFEST}.tmp")
        return stats

    def sweep_stale(self, pattern: str = "*/.*.tmp") -> None:
        """Delete the hidden files (``pattern``) older than STALE_TMP_SECONDS: what a killed writer left
        half-written. ``recover`` sweeps every writer's; a stream, which holds no ingest lock, its own
        kind's (``.stream…``: no stream writes one for a day, and an ingest's are not named so)."""
        cutoff = time.time() - STALE_TMP_SECONDS
        for tmp in self.root.glob(pattern):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    # ---- compaction (``compaction.py``) -----------------------------------------------------------

    def finish_compactions(self) -> int:
        """Finish what a killed compaction left (``compaction.finish_plans``): ``recover``, and a stream
        as it starts (a stream killed while it merged its parts, restarted, may write too few to merge).
        Under the lock `logpipe compact` and streams hold while merging (``compact_dataset``): a plan
        another process is carrying out right now is left to it (as are readers). Returns the plans finished."""
        if not (self.read_manifest().get("compactions") or any(self.root.glob(f"*/.{MERGED_PREFIX}-*.tmp"))):
            return 0  # (date=*/ and _rejects/)
        with readers_lock(self.root, wait=False) as held:
            return finish_plans(self) if held else 0

    def compact(self, min_files: int = COMPACT_MIN_FILES, *, across: bool = False, small_rows: int | None = None,
                days: "set[str] | None" = None, writer: str | None = None, merged: dict | None = None) -> int:
        """Merge small part files in each day directory, and small reject files; returns the files removed
        (``compaction.compact_parts``). Call it under the readers' lock (``compact_dataset``)."""
        return compact_parts(self, min_files, across=across, small_rows=small_rows, days=days, writer=writer,
                             merged=merged)


# ---- input identity ---------------------------------------------------------------------------------

# The hash a new dataset identifies its inputs by: BLAKE3's first 128 bits (its output's prefix, as
# ``InputHash.hexdigest`` takes). The main process hashes each input, before or as it reads it, while
# the lanes parse: 0.05 s for the 320 MB bench file here (6.3 GB/s, one thread: max_threads=1, the
# default) against SHA-256's 0.18 s (1.8 GB/s); ``fingerprint`` of it, reads included, 0.08-0.10 s
# against 0.22-0.25 s. A cryptographic hash, since an input whose hash is known is skipped as already
# ingested (a non-cryptographic one, xxh3, would let crafted log content pass a new file off as
# ingested). Its ``update`` releases the GIL from 2 KB up, as hashlib's does (one 320 MB update in a
# thread: the main thread's loop never paused over 0.6 ms, as with SHA-256). A dataset keeps the
# algorithm of its first entries, so datasets made with SHA-256 or blake2b still find their inputs.
HASH_ALGO = "blake3-128"
HASH_ALGOS = {
    "blake3-128": lambda: blake3.blake3(),
    "sha256-128": lambda: hashlib.sha256(),
    "blake2b-128": lambda: hashlib.blake2b(digest_size=16),
}


class InputHash:
    """The hash an input is known by (128 bits, hex), fed as its bytes are read: by ``fingerprint``,
    or by the reader itself (``sources.iter_file_ranges``), so that a large new input is hashed in
    the pass that finds its ranges for the workers, not in a pass of its own before they can start
    (~0.2 s a GB)."""

    def __init__(self, algo: str = HASH_ALGO):
        self._hash, self.size = HASH_ALGOS[algo](), 0

    def update(self, data) -> None:
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:32]


def fingerprint(path: str | Path, prefix_sizes=(), algo: str = HASH_ALGO) -> tuple[int, str, dict[int, str]]:
    """Hash a file in one pass: ``(size, hash of all of it, {n: hash of its first n bytes})`` for each
    ``n`` in ``prefix_sizes`` smaller than the file (hex, 128 bits, by ``algo`` of ``HASH_ALGOS``).
    A renamed copy has the same hash; a file that was appended to has an earlier entry's hash as
    one of its prefixes."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        return fingerprint_stream(f, prefix_sizes, algo, size)


def fingerprint_stream(f, prefix_sizes=(), algo: str = HASH_ALGO, size: int | None = None
                       ) -> tuple[int, str, dict[int, str]]:
    """``fingerprint`` of what ``f`` reads, to ``size`` bytes (a file's, which may shrink while read)
    or to its end (a decompressed stream: ``ingest``'s content hash of a compressed input)."""
    stops = sorted({s for s in prefix_sizes if 0 < s and (size is None or s < size)})
    stops.append(size if size is not None else float("inf"))
    h = InputHash(algo)
    out: dict[int, str] = {}
    for stop in stops:
        while h.size < stop:
            chunk = f.read(int(min(1 << 20, stop - h.size)))
            if not chunk:
                break
            h.update(chunk)
        if h.size < stop:  # shrank while we read, or (a stream) ended
            break
        out[stop] = h.hexdigest()
    if size is None:
        out = {n: d for n, d in out.items() if n < h.size}
        return h.size, h.hexdigest(), out
    return size, out.get(size, h.hexdigest()), out


# An input's ``heads`` (its manifest entry's): the hashes of its text's first bytes up to a few line ends
# in its first HEAD_BYTES: its first line's, and the last within its first HEAD_ENDS bytes each (the first
# HEAD_BYTES themselves when no line ends there). An earlier capture of the same log, a text T that is
# another's first bytes, has the same hashes at each of those ends that lies within T (the line ends
# before T's end are the same), so an ingest finds the entries that may hold T by them, without
# reading any file (``ingest._holders``): their heads within T are T's own.
HEAD_BYTES = 4096
HEAD_ENDS = (512, HEAD_BYTES)


def head_hashes(head: bytes, algo: str = HASH_ALGO) -> list[list]:
    """``[[n, hash of its first n bytes], ...]`` of a text whose first HEAD_BYTES (or all of it, when
    shorter) are ``head``, at the ends ``HEAD_ENDS`` says; [] for an empty text."""
    head = head[:HEAD_BYTES]
    ends = {head.find(b"\n") + 1} | {head.rfind(b"\n", 0, k) + 1 for k in HEAD_ENDS}
    ends.discard(0)  # (no line end there)
    if not ends and len(head) == HEAD_BYTES:
        ends = {HEAD_BYTES}
    out = []
    for n in sorted(ends):
        h = InputHash(algo)
        h.update(head[:n])
        out.append([n, h.hexdigest()])
    return out


def _manifest_text(manifest: dict) -> str:
    """One input entry (or shared file) per line: greppable, diffable, and fast to write for thousands of inputs."""
    return "".join(_manifest_held(manifest)[0])


def _manifest_held(manifest: dict) -> tuple[list[str], dict]:
    """``_manifest_text`` (in pieces, to write), and the manifest it says as ``read_manifest`` would parse it (``_Held``), to be
    held: the entries that were ``_Held`` already as they are, copies of the others (read back from
    their text: no caller holds them). An entry's text is made once (``_entry_text``)."""
    head = {k: v for k, v in manifest.items() if k not in ("inputs", "compactions", "shared")}
    head_text = json.dumps(head, sort_keys=True)
    held = json.loads(head_text, object_pairs_hook=_Held)
    pieces = [head_text[:-1]]
    for key in ("inputs", "compactions", "shared"):
        items = manifest.get(key, [])
        if key == "shared" and key not in manifest:
            continue
        if key == "inputs":
            kept = [_entry_text(e) for e in items]
            lines = [e._text for e in kept]
        else:
            lines = [json.dumps(e, sort_keys=True) for e in items] if isinstance(items, list) else \
                [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(items.items())]
            ends = "[]" if isinstance(items, list) else "{}"
            kept = json.loads(ends[0] + ",".join(lines) + ends[1], object_pairs_hook=_Held)
        dict.__setitem__(held, key, kept)
        ends = "[]" if isinstance(items, list) else "{}"
        pieces.append(f',\n "{key}": {ends[0]}')
        if items:
            pieces.append("\n  ")
            for k, line in enumerate(lines):
                pieces.extend((",\n  ", line) if k else (line,))
            pieces.append("\n")
        pieces.append(ends[1])
    pieces.append("\n}\n")
    return pieces, held


class _Held(dict):
    """A dict of the manifest as ``read_manifest`` parsed it (or ``_manifest_held`` kept it), which every
    reader of the dataset shares: read-only (a ``TypeError`` says so), but in ``update_manifest``'s
    ``change``, where a key set in place marks it changed. ``_text``: its JSON text, once written
    (unset: parsed, not written yet; None: changed): an entry that did not change is written again as
    that text. A commit changes a few entries of a manifest that holds every input ever ingested, and
    serializing them all was most of its time (18,000 entries: ~0.2-0.3 s a write, three writes a group
    of inputs: 100 small inputs' ingest took 17.5 s against 4 s into a new dataset)."""

    __slots__ = ("_text",)

    def __reduce__(self):  # (a copy, or a pickle, is a plain dict)
        return dict, (dict(self),)


def _edit(name: str):
    method = getattr(dict, name)

    def edit(self, *args, **kwargs):
        if not getattr(_CHANGING, "on", False):
            raise TypeError("a manifest as read is shared, read-only: change it with Dataset.update_manifest,"
                            " or change a copy (dict(entry))")
        self._text = None
        return method(self, *args, **kwargs)

    edit.__name__ = name
    return edit


for _name in ("__setitem__", "__delitem__", "__ior__", "update", "pop", "popitem", "setdefault", "clear"):
    setattr(_Held, _name, _edit(_name))
_CHANGING = threading.local()  # (``update_manifest``'s change is running in this thread)


@contextlib.contextmanager
def _changing() -> Iterator[None]:
    was = getattr(_CHANGING, "on", False)
    _CHANGING.on = True
    try:
        yield
    finally:
        _CHANGING.on = was


def _entry_text(e: dict) -> _Held:
    """``e`` as held, with its text: itself when it is ``_Held`` and unchanged, else a copy read back from
    its text."""
    if isinstance(e, _Held):
        text = getattr(e, "_text", False)
        if text:
            return e
        if text is False:  # (as parsed: its text is made once)
            e._text = json.dumps(e, sort_keys=True)
            return e
    text = json.dumps(e, sort_keys=True)
    e = json.loads(text, object_pairs_hook=_Held)
    e._text = text
    return e


def _file_key(path: Path) -> tuple | None:
    """Which manifest file ``path`` is now: its inode, size, modification time and generation (each
    logpipe write makes a new file of the next generation); None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, _generation(path)


def _head(path: Path) -> dict:
    """A manifest's head, from its first line (``_manifest_text``'s: ``{"format": …, "generation": N,
    …,``), without reading the rest; {} when that line is not one."""
    try:
        with open(path, "rb") as f:
            return _head_of(f.readline(1 << 16))
    except OSError:
        return {}


def _head_of(line: bytes) -> dict:
    """``_head`` of a manifest whose first line (its first 64 KiB at most) is ``line``."""
    try:
        head = json.loads(line.rstrip().rstrip(b",") + b"}")
    except ValueError:
        return {}
    return head if isinstance(head, dict) else {}


def _generation(path: Path) -> int | None:
    """A manifest's generation (``_head``), None when its first line does not say."""
    return _head(path).get("generation")


def compact_dataset(dataset: Dataset, *, min_files: int = COMPACT_MIN_FILES, across: bool = False, wait: bool = True,
                    waiting=None, **which) -> int | None:
    """``Dataset.compact`` under the readers' lock (``readers_lock``), held exclusive: two logpipe
    processes (a stream and ``logpipe compact``) never merge the same files at once, which would
    duplicate rows, and no ``query`` or ``report`` is reading the files it deletes. None when
    ``wait`` is false and the lock is taken (a reader, another compaction). ``which``: ``Dataset.compact``'s
    ``small_rows``, ``days``, ``writer`` and ``merged``."""
    try:
        with readers_lock(dataset.root, wait=wait, waiting=waiting) as held:
            return dataset.compact(min_files=min_files, across=across, **which) if held else None
    except OSError as e:  # (a read-only mount or directory: `logpipe compact` said `internal error: PermissionError`)
        if refused := denied(e):
            raise _cannot_write(dataset.root, refused) from None
        raise


def _cannot_write(root, why: str) -> DatasetError:
    """The one error of a dataset that cannot be written (``why``: ``Read-only file system``, ``Permission
    denied``)."""
    return DatasetError(f"cannot write to dataset directory {root}: {why}; check the path and permissions")


def _ours(name: str) -> bool:
    return name.startswith(("date=", "_", "."))


def _holds_others(root: Path) -> bool:
    """Whether the directory ``root`` holds files no dataset has (``_ours``): a dataset is not made there."""
    return root.is_dir() and any(not _ours(p.name) for p in root.iterdir())


def how_to_make(root: str | Path, otherwise: str = "") -> str:
    """What makes a dataset at ``--data root``, which holds none (the advice of the commands that read
    one): ``logpipe ingest`` into it, or, where it holds other files (a directory of logs given as the
    dataset), into another directory, since ingest refuses that one (the advice was to ingest into it);
    then ``otherwise`` (the caller's other way). Where a dataset is near (``near_dataset``), only where
    it is: the advice was to ingest a dataset's own Parquet files as logs."""
    if near := near_dataset(root):
        return near
    root = Path(root)
    if root.exists() and not root.is_dir():
        return f"give --data a dataset's directory{otherwise}"
    if _holds_others(root):
        return (f"it holds other files: if they are logs, make a dataset of them with `logpipe ingest {root} --data "
                f"NEW_DIR`{otherwise}")
    return f"create a dataset with `logpipe ingest PATH --data {root}`{otherwise}"


def dataset_above(root: str | Path) -> str | None:
    """The dataset a directory ``root`` is inside (a day's directory, ``_rejects/``, any path under it),
    as the user would write it (relative where ``root`` is), or None."""
    root = Path(root)
    for up in Path(os.path.abspath(root)).parents:
        if (up / MANIFEST).is_file():
            return str(up if root.is_absolute() else os.path.relpath(up))
    return None


def near_dataset(root: str | Path) -> str | None:
    """Where the dataset is that ``--data root`` (no dataset) meant, as ``a dataset is at D: give --data D``:
    the one it is in (a day directory, ``_rejects/``, a file of theirs), else those right in it (the
    directory that holds ``./logpipe-data``, given as ``--data .``). None when there is none."""
    root = Path(root)
    if (up := dataset_above(root)) is not None:
        return f"a dataset is at {up}: give --data {up}"
    try:
        with os.scandir(root) as entries:  # (a directory of many logs: no stat of each)
            found = sorted(str(root / e.name) for e in entries if e.is_dir() and (Path(e.path) / MANIFEST).is_file())
    except OSError:  # (missing, a file, unreadable)
        return None
    if len(found) == 1:
        return f"a dataset is at {found[0]}: give --data {found[0]}"
    if found:
        return f"datasets are at {', '.join(found)}: give --data one of them"
    return None


@contextlib.contextmanager
def readers_lock(root: str | Path, *, shared: bool = False, wait: bool = True,
                 waiting: Callable[[], object] | None = None) -> Iterator[bool]:
    """``_compact.lock``: logpipe's readers hold it shared while they read the dataset's files
    (``db.reading``); whatever deletes files that readers may be reading (compaction, ``--force``)
    holds it exclusive. Yields whether it is held: not when ``wait`` is false and another process
    holds it, nor for a reader of a dataset where the lock file cannot be made (read-only: nothing
    compacts it). ``waiting`` is called when it must wait (to say so)."""
    path = Path(root) / READERS_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not shared:
            raise
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            fd = None
    if fd is None:
        yield False
        return
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
            if wait:
                if waiting is not None:
                    waiting()
                fcntl.flock(fd, mode)
                held = True
        yield held
    finally:
        os.close(fd)  # (releases the lock)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
