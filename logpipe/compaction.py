"""Compaction: a dataset's small Parquet part files merged into fewer (``Dataset.compact``: a stream
merges its own parts; ``logpipe compact`` and the end of an ingest, every input's), its small reject
files (``_rejects/``) likewise, and ``--force``'s removal of an input's rows from the files merged
across inputs (``drop_inputs``). ``dataset.py``
keeps the manifest these plans are recorded in, and the readers' lock they run under
(``compact_dataset``).

Compaction cannot swap several files atomically for a glob reader. It never shows duplicates:
the merged file is written hidden, the plan recorded in the manifest (with whose rows it holds), the
old files removed, then the merged file renamed into place; ``recover`` finishes an interrupted plan,
and so does the next compaction or ``--force`` (a plan in the manifest under the readers' lock is a
killed process's, as is a hidden merged file whose plan was never recorded: deleted, ``finish_plans``). ``--force``'s rewrite of a merged file without an input's rows is such a plan.
logpipe's own readers (``query``, ``report``: ``db.reading``) hold ``_compact.lock`` shared while
they read, and compaction and ``--force``'s replacement of an input's rows hold it exclusive, so a
query run while a stream compacts neither misses the merged group's rows nor fails on a file deleted
under it. Other readers globbing in those milliseconds may miss that group's rows, never see them twice.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DatasetError
from .parts import REJECTS_DIR, ROW_GROUP_ROWS, _unlink, hidden_name, write_hidden_pieces

if TYPE_CHECKING:
    from .dataset import Dataset

# A day directory's small files are merged once it holds this many.
COMPACT_MIN_FILES = 8
# Rows of a file merged across inputs, at most: 4 of DuckDB's row groups, 4 tasks a query can run at
# once (it is written a row group at a time: parts.write_hidden_pieces).
MERGE_ROWS = 4 * ROW_GROUP_ROWS
# The files an ingest merges at its end are smaller still. A query pays ~5 ms a file whatever its size
# (600 files of ~1,000 rows: 4.8 s against 1.6 s merged; the 20 ~52k-row parts of a 1M-line input read
# as fast as 2 merged files), and merging costs ~5-9 µs a row (measured on busy cores): a file of
# 1,000 rows repays its merge at the first query or two, one of 8,192 after ~10, one of 52k rows
# hardly ever (and would double a large input's ingest). `logpipe compact` merges every file under a
# row group (``ROW_GROUP_ROWS``).
INGEST_SMALL_ROWS = 8_192
MERGED_PREFIX = "merged"  # the name of a file merged across inputs (or rewritten by --force): merged-<uuid>


def compact_parts(ds: Dataset, min_files: int = COMPACT_MIN_FILES, *, across: bool = False, small_rows: int | None = None,
                  days: "set[str] | None" = None, writer: str | None = None, merged: dict | None = None) -> int:
    """Merge small part files in each day directory; returns the files removed. ``across`` false
    (a stream's own compaction): the parts of one writer (same name prefix; ``writer``: that one
    only, not another's, e.g. a large ingested input's ~52k-row parts) once it has at least
    ``min_files``. ``across`` (``logpipe compact``, ``ingest``): every file of fewer than
    ``small_rows`` rows (default ``ROW_GROUP_ROWS``), whoever wrote it, once the directory holds at
    least ``min_files`` of them, into files of at most ``MERGE_ROWS`` rows. ``days``: only these
    day directories (``date=…``; an ingest's, not every file's footer of a dataset). A merged file keeps each input's rows
    together, and the manifest records how many rows of it are whose (``shared``), so ``--force``
    can take one input's rows out of it (``drop_inputs``). The reject files (``_rejects/``, an entry's
    ``rejects``) are merged the same way, as one more directory (``days``: ``_rejects`` among them).
    ``merged``: filled with ``{"parts" or "rejects": [files removed, files made]}``. Call it under the
    readers' lock (``compact_dataset``): a plan left in the manifest is then a killed process's, finished first."""
    finish_plans(ds)
    removed = 0
    # _rejects/ too: every connection binds all its files (2,000 reject files of a few lines: a query's
    # connection 0.37-0.58 s instead of 0.15-0.31 s; 18,000, a month of nightly ingests of 600 pod logs:
    # 2.8-3.5 s; merged into one, as fast as none. README, Ingest.)
    for day_dir in [*sorted(ds.root.glob("date=*")), ds.root / REJECTS_DIR]:
        if days is not None and day_dir.name not in days:
            continue
        files = sorted(day_dir.glob("*.parquet"))
        if len(files) < min_files:
            continue
        # Read after listing: a file visible then was published under an entry this manifest holds.
        owners = _owners(ds, ds.read_manifest(), files)
        files = [f for f in files if ds.rel(f) in owners]
        meta: dict[Path, pq.FileMetaData] = {}
        if across:
            meta = {f: pq.read_metadata(f) for f in files}  # (each footer read once: ~1 ms a file)
            small = sorted(((f, md.num_rows) for f, md in meta.items() if md.num_rows < (small_rows or ROW_GROUP_ROWS)),
                           key=lambda fn: _owner_key(owners[ds.rel(fn[0])]))
            if len(small) < min_files:
                continue
            groups, rows = [[]], 0
            for f, n in small:
                if groups[-1] and rows + n > MERGE_ROWS:
                    groups.append([])
                    rows = 0
                groups[-1].append(f)
                rows += n
        else:
            by_writer: dict[str, list[Path]] = {}
            for f in files:
                by_writer.setdefault(f.name.rsplit("-", 1)[0], []).append(f)
            groups = [g for p, g in by_writer.items() if len(g) >= min_files and p != MERGED_PREFIX
                      and writer in (None, p)]
        for group in groups:
            if len(group) >= 2:
                prefix = MERGED_PREFIX if across else group[0].name.rsplit("-", 1)[0]
                _merge(ds, group, [owners[ds.rel(f)] for f in group], day_dir / f"{prefix}-{uuid.uuid4().hex}.parquet",
                       meta)
                removed += len(group)
                if merged is not None:
                    tally = merged.setdefault("rejects" if day_dir.name == REJECTS_DIR else "parts", [0, 0])
                    tally[0] += len(group)
                    tally[1] += 1
    return removed


def _owners(ds: Dataset, m: dict, files: list[Path]) -> dict[str, list]:
    """Whose rows each of ``files`` holds, as ``[[entry id or None (a stream's), rows], …]`` (rows
    None: all of the file's): a shared file's by the manifest, another's by the complete entry
    listing it. Files of an entry not complete (being committed, or dropped) are left out."""
    listed: dict[str, list] = {}
    busy, prefixes = set(), []
    for e in m["inputs"]:
        if e.get("state") == "complete":
            listed.update((rel, [[e["id"], None]]) for rel in _files_of(e))
        else:
            busy.update(_files_of(e))
            prefixes += [f"{e['prefix']}-"] if e.get("prefix") else []
    listed.update(m.get("shared", {}))
    return {rel: listed.get(rel, [[None, None]]) for f in files
            if (rel := ds.rel(f)) not in busy and not f.name.startswith(tuple(prefixes))}


def _merge(ds: Dataset, files: list[Path], owners: list[list], final: Path, meta: dict | None = None) -> None:
    """Write ``files``' rows as ``final`` (each file's rows of one owner sorted by time), and swap it in.
    ``meta``: the footers of some of them, read already."""
    meta = {f: (meta or {}).get(f) or pq.read_metadata(f) for f in files}
    rows: list[list] = []

    def pieces() -> Iterator[pa.Table]:
        for f, held in zip(files, owners):
            for owner, piece in _pieces(f, held, meta[f]):
                if rows and rows[-1][0] == owner:
                    rows[-1][1] += piece.num_rows
                else:
                    rows.append([owner, piece.num_rows])
                yield piece.sort_by([("start_time", "ascending")]) if "start_time" in piece.column_names else piece

    schema = pa.unify_schemas([meta[f].schema.to_arrow_schema() for f in files], promote_options="permissive")
    _swap_in(ds, [ds.rel(f) for f in files], pieces(), schema, rows, final)


def _swap_in(ds: Dataset, olds: list[str], pieces: Iterator[pa.Table], schema: pa.Schema, rows: list, final: Path) -> None:
    """Write ``pieces`` hidden as ``final``, record the plan (``olds`` out, ``final`` in, whose ``rows``
    it holds: known once ``pieces`` are written), then carry it out (``finish_compaction``;
    ``recover`` finishes it after a crash, and a Ctrl-C here before it stops)."""
    try:
        write_hidden_pieces(pieces, schema, final)
    except BaseException:
        _unlink(hidden_name(final))
        raise
    plan = {"olds": olds, "new": ds.rel(final), "rows": rows}
    try:
        ds.update_manifest(lambda m: m.setdefault("compactions", []).append(plan))
        finish_compaction(ds, plan)
    except KeyboardInterrupt:  # Ctrl-C mid-swap: finished first (ms), not left with rows hidden till the next writer
        if plan in ds.read_manifest().get("compactions", []):
            finish_compaction(ds, plan)
        else:  # (not recorded, or finished already)
            _unlink(hidden_name(final))
        raise


def drop_inputs(ds: Dataset, gone: set) -> None:
    """Delete the rows of entries ``gone`` (``--force``), under the readers' lock: their own files,
    and their rows of the shared files they are merged into (each rewritten without them, as a
    compaction is: ``_swap_in``)."""
    finish_plans(ds)
    m = ds.read_manifest()
    shared = m.get("shared", {})
    rewrite = set()
    for e in m["inputs"]:
        if e["id"] in gone:
            for rel in _files_of(e):
                if rel in shared:
                    rewrite.add(rel)
                else:
                    _unlink(ds.root / rel)
    for rel in sorted(rewrite):
        rows = shared[rel]
        kept = [r for r in rows if r[0] not in gone]
        if len(kept) == len(rows):
            continue  # (already rewritten: a run killed after it redoes this)
        if not kept:
            _unlink(ds.root / rel)  # (its manifest record goes with the entries: Dataset._finish)
            continue
        pieces = (piece for owner, piece in _pieces(ds.root / rel, rows) if owner not in gone)
        final = (ds.root / rel).parent / f"{MERGED_PREFIX}-{uuid.uuid4().hex}.parquet"
        _swap_in(ds, [rel], pieces, pq.read_schema(ds.root / rel), kept, final)


def finish_plans(ds: Dataset) -> int:
    """What killed compactions (and ``--force`` rewrites) left, finished under the readers' lock held
    exclusive (no merge is under way then: every one runs under it): the plans recorded in the manifest
    carried out, and the merged files written before their plan was recorded (hidden
    ``.merged-….tmp``, as large as a merge) deleted. Returns how many plans were finished."""
    plans = ds.read_manifest().get("compactions", [])
    for plan in plans:
        finish_compaction(ds, plan)
    for tmp in ds.root.glob(f"*/.{MERGED_PREFIX}-*.tmp"):  # (date=*/ and _rejects/)
        _unlink(tmp)
    return len(plans)


def finish_compaction(ds: Dataset, plan: dict) -> None:
    """Carry out a recorded plan (``_swap_in``'s): the old files out, the merged one in, the manifest told."""
    new = ds.root / plan["new"]
    made = hidden_name(new).exists() or new.exists()
    if made:
        for rel in plan["olds"]:
            _unlink(ds.root / rel)
        ds.publish([(hidden_name(new), new)])
    olds = set(plan["olds"])

    def done(m: dict) -> None:
        if made:  # (else the merged file never made it: the olds stay)
            rows = plan.get("rows")
            ids = ({r[0] for r in rows} if rows is not None
                   else {e["id"] for e in m["inputs"] if olds & set(_files_of(e))})
            m["inputs"] = [_swap_parts(e, olds, plan["new"] if e["id"] in ids else None) for e in m["inputs"]]
            shared = {rel: r for rel, r in m.get("shared", {}).items() if rel not in olds}
            if rows is not None and len(rows) > 1:  # (one owner's file is its own: --force deletes it)
                shared[plan["new"]] = rows
            m["shared"] = shared
        m["compactions"] = [p for p in m.get("compactions", []) if p != plan]

    ds.update_manifest(done)


def _files_of(entry: dict) -> list[str]:
    """An entry's files: its row files (``parts``) and reject files (``rejects``)."""
    return entry.get("parts", []) + entry.get("rejects", [])


def _swap_parts(entry: dict, olds: set, new: str | None) -> dict:
    """``entry`` with the files ``olds`` out of its parts (or its rejects: the list that held them),
    and ``new`` in (when it holds rows of its)."""
    for key in ("parts", "rejects"):
        if olds & set(entry.get(key, [])):
            entry = dict(entry, **{key: [p for p in entry[key] if p not in olds] + ([new] if new else [])})
    return entry


def _pieces(path: Path, rows: list, metadata: "pq.FileMetaData | None" = None) -> Iterator[tuple[str | None, pa.Table]]:
    """A row file's rows by owner, as ``rows`` (``[[owner, n], …]``; n None: the rest) says: ``(owner, rows)``…
    (``metadata``: its footer, read already.)"""
    table, at = pq.ParquetFile(path, metadata=metadata).read(use_threads=False), 0  # (small files: ~2x faster than read_table's)
    for owner, n in rows:
        n = table.num_rows - at if n is None else n
        yield owner, table.slice(at, n)
        at += n
    if at != table.num_rows:
        raise DatasetError(f"{path} holds {table.num_rows} rows, the manifest says {at}; "
                           "restore the manifest, or re-ingest into a new --data directory")


def _owner_key(rows: list) -> str:
    """A file's first owner, to sort files so that an input's end up merged together."""
    return rows[0][0] or ""
