"""Stage 4: DuckDB over the dataset (or over in-memory Arrow tables). The only module importing duckdb.

``connect`` builds an in-memory DuckDB with:

* ``logpipe_rows`` / ``logpipe_rejects``: the raw sources, either the Parquet dataset
  (``DATA/date=*/*.parquet`` with Hive partitions, ``DATA/_rejects/*.parquet``) or Arrow tables;
  with a baseline dataset (``report anomalies --baseline``), ``logpipe_rows`` is its rows before the
  first of those (``logpipe_data_rows``), then those;
* ``logpipe_settings`` (one row: ``cluster_domain``, ``mesh_domains``) and ``logpipe_cidrs`` (``cidr, family, first,
  last, kind``): the settings of logpipe/settings.py as tables, filled with bound parameters;
* every ``queries/views/*.sql`` (``access_log``, ``rejects``, ``traffic``, ``egress`` and the IP macros they use),
  which an operator can read and change.

With ``sandbox=True`` (the CLI's ``query`` and ``report``, whose SQL may come from a folder of
someone else's ``.sql`` files, and the stream's alerts) it then locks the connection down: external
access is limited to the dataset directory, and a baseline dataset's (DuckDB's ``allowed_directories``;
views read Parquet lazily, so access cannot simply be switched off), plus ``allow_write_paths``, and the configuration is
locked so a query cannot undo it. ``run_query`` (logpipe/queries.py) also accepts only read
statements, so ``COPY … TO`` cannot write even inside the dataset directory. A library caller's
connection (the default) is DuckDB's own: it reads and writes files as any DuckDB session does
(``read_csv`` of a team list to join, ``COPY … TO``).

Without logpipe, the same rows are one line away: DuckDB
``read_parquet('DATA/date=*/*.parquet', hive_partitioning=true, union_by_name=true)``, or polars
``pl.scan_parquet("DATA/date=*/*.parquet", hive_partitioning=True, missing_columns="insert",
extra_columns="ignore")`` (a custom format's extra columns are in its files only).
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb
import pyarrow as pa

from .errors import DatasetError, LogpipeError
from .resources import resource_dir
from .schema import RECORD_SCHEMA, REJECT_SCHEMA

if TYPE_CHECKING:
    from .settings import Settings

DEFAULT_DATA = "./logpipe-data"
ROWS_GLOB = "date=*/*.parquet"
REJECTS_GLOB = "_rejects/*.parquet"
# Statements run_query accepts: reads only (SELECT also covers DESCRIBE, SHOW, SUMMARIZE, FROM …).
READ_STATEMENTS = {"SELECT", "EXPLAIN"}

Error = duckdb.Error  # for callers that must catch DuckDB errors without importing duckdb


def _literal(text: str) -> str:
    """A SQL string literal. Only for paths logpipe itself chose (DDL cannot take parameters)."""
    return "'" + text.replace("'", "''") + "'"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir if data_dir is not None else os.environ.get("LOGPIPE_DATA") or DEFAULT_DATA)


def _missing(data: Path, why: str) -> DatasetError:
    from .dataset import how_to_make

    return DatasetError(f"{why}; {how_to_make(data, ' (or read log files without one, with --input FILE)')}")


@contextlib.contextmanager
def reading(*data_dirs) -> Iterator[None]:
    """Hold each dataset's readers' lock shared (logpipe/dataset.py) while a query reads it: a stream
    compacting, or ``ingest --force`` replacing an input's rows, waits until the query is done, and
    the query waits for a compaction under way, so it never misses rows or meets a deleted file."""
    from .dataset import MANIFEST, readers_lock

    with contextlib.ExitStack() as stack:
        for d in data_dirs:
            data = resolve_data_dir(d)
            if (data / MANIFEST).is_file():
                stack.enter_context(readers_lock(data, shared=True, waiting=lambda data=data: print(
                    f"logpipe: waiting for the compaction of {data} under way to finish", file=sys.stderr)))
        yield


def has_rows(data_dir: str | os.PathLike | None) -> bool:
    """Whether the dataset holds row files: without any, its ``access_log`` and every view over it
    (``egress``, …) are empty, and a caller that only reads them needs no connection (~0.15 s)."""
    return any(resolve_data_dir(data_dir).glob(ROWS_GLOB))


def _dataset_sources(con: duckdb.DuckDBPyConnection, data: Path, rows_view: str = "logpipe_rows",
                     rejects: bool = True) -> None:
    """Views ``rows_view`` (``logpipe_rows``) over the dataset ``data``'s row files and, with
    ``rejects``, ``logpipe_rejects`` over its rejects."""
    if not data.exists():
        raise _missing(data, f"no dataset at {data}")
    if not data.is_dir():
        raise _missing(data, f"{data} is a file, not a dataset directory")
    rows_there, has_rejects = has_rows(data), any(data.glob(REJECTS_GLOB))
    from .dataset import MANIFEST

    if not rows_there and not has_rejects and not (data / MANIFEST).is_file():  # (an empty log's dataset is one)
        raise _missing(data, f"{data} holds no logpipe data (no {ROWS_GLOB} files)")
    if rows_there:
        rows = _files(data, ROWS_GLOB)
        con.execute(
            f"CREATE VIEW {rows_view} AS SELECT * FROM read_parquet({rows}, hive_partitioning = true, "
            "union_by_name = true, hive_types = {'date': VARCHAR})"
        )
    else:  # only rejects (every line of its inputs malformed or noise), or nothing (an empty log ingested):
        # its views are still read, empty, with the remembered format's extra columns
        con.register(f"{rows_view}_arrow", _remembered_schema(data).empty_table())
        con.execute(f"CREATE VIEW {rows_view} AS SELECT *, CAST(NULL AS VARCHAR) AS date FROM {rows_view}_arrow")
    if not rejects:
        return
    if has_rejects:  # (bound now, each file's footer read: ~1 ms for one file, ~7 ms for 30, ~0.4 s for 2,000;
        # compaction.py merges the small ones, so that a connection that reads no rejects pays ~1 ms)
        rejects = _files(data, REJECTS_GLOB)
        con.execute(f"CREATE VIEW logpipe_rejects AS SELECT * FROM read_parquet({rejects}, union_by_name = true)")
    else:
        _register(con, "logpipe_rejects", REJECT_SCHEMA.empty_table())


# Data under these sizes is read by one DuckDB thread (connect, unless given ``threads``): on few rows a
# statement's time is its planning and a second thread only waits and wakes (a report of the scenario's
# 3,815 rows, in one process on two idle cores: 0.55-0.65 CPU-s with one thread, 0.60-0.75 with two, the
# same wall time; more where other processes share the cores: each of make test's two workers ran two).
SMALL_ROWS = 40_000  # (and a report keeps the rows of the inventory under it: reports.open_report_db)
SMALL_BYTES = 2 << 20  # (the rows' Parquet files: ~50 bytes a row, 1M rows 51 MB)


def _small(data: Path | None, tables: dict | None, baseline) -> bool:
    """Whether a connection's rows are few: ``tables``' records under SMALL_ROWS, or the datasets' row
    files (``data``'s and ``baseline``'s) under SMALL_BYTES together."""
    if tables is not None:
        records = tables.get("records", tables.get("access_log"))
        if records is not None and getattr(records, "num_rows", SMALL_ROWS) >= SMALL_ROWS:
            return False
    size = 0
    for d in (data, None if baseline is None else Path(baseline)):
        if d is not None:
            for f in d.glob(ROWS_GLOB):
                try:
                    size += f.stat().st_size
                except OSError:  # (compacted away since it was listed: the next file counts)
                    continue
                if size >= SMALL_BYTES:
                    return False
    return True


def _remembered_schema(data: Path) -> pa.Schema:
    """The record's schema with the extra columns of the format the dataset remembers (its manifest's
    ``format_spec``), for the empty views of a dataset without rows."""
    import json

    from .dataset import MANIFEST

    try:
        spec = json.loads((data / MANIFEST).read_text(encoding="utf-8")).get("format_spec")
    except (OSError, ValueError, AttributeError):
        spec = None
    if not spec:
        return RECORD_SCHEMA
    from .layouts import parser_from_spec

    try:
        return parser_from_spec(spec).schema
    except LogpipeError:
        return RECORD_SCHEMA


def _files(data: Path, pattern: str) -> str:
    """The SQL for read_parquet of ``data``'s files matching ``pattern``: the glob itself, or, when the
    dataset's own path holds a character DuckDB's glob reads as a pattern (``logs[1]``, ``a*b``), the
    list of its files (the glob found none: "No files found that match the pattern")."""
    if not re.search(r"[*?\[\]{}]", data.as_posix()):
        return _literal(f"{data.as_posix()}/{pattern}")
    return "[" + ", ".join(_literal(p.as_posix()) for p in sorted(data.glob(pattern))) + "]"


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_arrow")


def _table_sources(con: duckdb.DuckDBPyConnection, tables: dict, rows_view: str = "logpipe_rows") -> None:
    unknown = set(tables) - {"records", "access_log", "rejects"}
    if unknown:
        raise ValueError(f"connect(tables=…) takes keys 'records' and 'rejects', not {sorted(unknown)}")
    records = tables.get("records", tables.get("access_log"))
    records = RECORD_SCHEMA.empty_table() if records is None else _as_table(records)
    rejects = tables.get("rejects")
    rejects = REJECT_SCHEMA.empty_table() if rejects is None else _as_table(rejects)
    con.register(f"{rows_view}_arrow", records)
    # Same columns as the dataset: the Hive partition `date` is the UTC day of start_time as text,
    # 'unknown' without one (logpipe/dataset.py).
    date = ("coalesce(strftime(timezone('UTC', start_time), '%Y-%m-%d'), 'unknown')"
            if "start_time" in records.schema.names else "'unknown'")
    con.execute(f"CREATE VIEW {rows_view} AS SELECT *, {date} AS date FROM {rows_view}_arrow")
    _register(con, "logpipe_rejects", rejects)


# With a baseline (``connect(baseline=…)``), each connection's window floor: its own data's first
# record time, before which the baseline's rows are read (``window_floor``).
_FLOORS: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, object]" = weakref.WeakKeyDictionary()


def _baseline_sources(con: duckdb.DuckDBPyConnection, baseline: str | os.PathLike, data_start: str) -> None:
    """``logpipe_rows``: the baseline dataset's rows before the first record of the connection's own
    rows (view ``logpipe_data_rows``), then those, UNION ALL BY NAME (a custom format's extra columns
    of either, null in the other's rows; ``date`` last, as in a dataset's view). DuckDB reads both
    datasets' files as it reads one's, within its memory bound: rows of both were read into Arrow
    in the Python process, outside it (two datasets of 2M rows each: see README's ``--baseline``).
    ``data_start``: the start of the connection's own rows as an error names it."""
    try:
        _dataset_sources(con, Path(baseline), "logpipe_baseline_rows", rejects=False)
    except DatasetError as e:  # (a directory of logs given for a dataset: the hint is another one)
        raise DatasetError(f"--baseline {baseline} is not a logpipe dataset ({str(e).split(';')[0]}); give a "
                           "dataset made by `logpipe ingest LOGS --data DIR`, e.g. of last week's logs") from None
    floor = _FLOORS[con] = con.execute("SELECT min(start_time) FROM logpipe_data_rows").fetchall()[0][0]
    # (a literal, not a subquery: DuckDB pushes it into the baseline's read_parquet, EXPLAIN's
    # "Filters:", where the files' statistics skip row groups past it)
    # (no timed record of its own, an empty dataset's: the window holds nothing, and so no baseline row
    # is read, as the report of the empty dataset alone is empty; all of them were, and the baseline's
    # last 24 hours were judged as if they were the window)
    before = "WHERE false" if floor is None else f"WHERE start_time < {_timestamp(floor)}"
    if floor is not None and not con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM logpipe_baseline_rows {before} LIMIT 1)").fetchall()[0][0]:
        raise DatasetError(f"the baseline dataset {baseline} has no rows before {data_start}; "
                           "give an older dataset to --baseline, or use --baseline-days N")
    con.execute(f"CREATE VIEW logpipe_rows AS SELECT * EXCLUDE (date), date FROM (SELECT * FROM logpipe_baseline_rows "
                f"{before} UNION ALL BY NAME SELECT * FROM logpipe_data_rows)")


def _timestamp(t) -> str:
    """A SQL literal of DuckDB's value ``t`` (a TIMESTAMP WITH TIME ZONE: an aware datetime)."""
    return f"CAST({_literal(t.isoformat())} AS {'TIMESTAMPTZ' if t.tzinfo is not None else 'TIMESTAMP'})"


def window_floor(con: duckdb.DuckDBPyConnection):
    """Of a connection made with a baseline (``connect(baseline=…)``), its own data's first record
    time (the window starts there and the baseline's rows end before it; None without a record);
    None without a baseline."""
    return _FLOORS.get(con)


def replace_records(con: duckdb.DuckDBPyConnection, records) -> None:
    """Give a connection of ``connect(tables={"records": …})`` other rows of the same schema: its
    views read them from the next query on (a live stream's micro-batches: a connection and its
    views cost ~0.15 s to make, a replacement ~1 ms). Another schema needs a new connection (the
    views were bound to the first one's columns)."""
    con.register("logpipe_rows_arrow", _as_table(records))


def _as_table(t) -> pa.Table:
    if isinstance(t, pa.Table):
        return t
    if isinstance(t, pa.RecordBatch):
        return pa.Table.from_batches([t])
    return pa.table(t)


def _settings_tables(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    con.execute("CREATE TABLE logpipe_settings (cluster_domain VARCHAR, mesh_domains VARCHAR[])")
    con.execute("INSERT INTO logpipe_settings VALUES ($1, $2)", [settings.cluster_domain, list(settings.mesh_domains)])
    con.execute(
        "CREATE TABLE logpipe_cidrs (cidr VARCHAR, family INTEGER, first UHUGEINT, last UHUGEINT, kind VARCHAR)"
    )
    rows = settings.cidr_rows()
    if rows:
        # UHUGEINT parameters travel as text: Python ints above 2**64 do not bind directly. One
        # statement of a list per column (executemany's statement a row: ~12 ms a connection, ~2 ms).
        columns = [list(c) for c in zip(*[(c, f, str(lo), str(hi), k) for c, f, lo, hi, k in rows])]
        con.execute(
            "INSERT INTO logpipe_cidrs SELECT unnest($1), unnest($2), CAST(unnest($3) AS UHUGEINT), "
            "CAST(unnest($4) AS UHUGEINT), unnest($5)",
            columns,
        )


def view_files() -> list[Path]:
    return sorted(resource_dir("queries").joinpath("views").glob("*.sql"))


_CREATES = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(?:VIEW|MACRO)\s+([A-Za-z_]\w*)", re.I)
_WORD = re.compile(r"[a-z_]\w*")
# Words of a statement that reads DuckDB's catalog (SHOW TABLES, duckdb_views(), …): it is given
# every view, as it would list them all.
_CATALOG_WORDS = frozenset({"show", "show_tables", "show_tables_expanded", "information_schema", "pg_catalog",
                            "duckdb_views", "duckdb_tables", "duckdb_functions", "duckdb_columns", "sqlite_master"})


def _words(sql: str) -> set[str]:
    return set(_WORD.findall(re.sub(r"--[^\n]*", "", sql).lower()))


_STRING = re.compile(r"'(?:[^']|'')*'")


def _column_words(sql: str) -> set[str]:
    """``_words`` without those in string literals: an advice's "isolate the pod" or "the
    upstream_service_time column" names no column (the anomalies' table kept 3 more for them: 26 of 29)."""
    return set(_WORD.findall(_STRING.sub(" ", re.sub(r"--[^\n]*", "", sql)).lower()))


def _definitions(texts: dict[Path, str]) -> dict[Path, set[str]]:
    """The (lowercase) names of the views and macros each view file of ``texts`` creates."""
    return {p: set(map(str.lower, _CREATES.findall(sql))) for p, sql in texts.items()}


def _view_needs(texts: dict[Path, str]) -> dict[Path, set[Path]]:
    """For each view file of ``texts``, the other files whose views and macros it names."""
    defines = _definitions(texts)
    words = {p: _words(sql) for p, sql in texts.items()}
    return {p: {q for q in texts if q != p and defines[q] & words[p]} for p in texts}


def _in_dependency_order(texts: dict[Path, str], needs: dict[Path, set[Path]] | None = None) -> dict[Path, str]:
    """``texts`` (view files) ordered so that each comes after the files whose views and macros it
    names (``needs``: ``_view_needs(texts)``), by name where nothing decides (a cycle, or names that
    are no file's, keep their order)."""
    needs = _view_needs(texts) if needs is None else needs
    ordered: dict[Path, str] = {}
    while len(ordered) < len(texts):
        ready = [p for p in texts if p not in ordered and needs[p] <= ordered.keys()]
        for p in ready or [next(p for p in texts if p not in ordered)]:
            ordered[p] = texts[p]
    return ordered


class _ViewFiles:
    """The view files: their texts in dependency order, what each defines and which others it needs."""

    def __init__(self, texts: dict[Path, str]):
        self.needs = _view_needs(texts)
        self.texts = _in_dependency_order(texts, self.needs)
        self.defines = _definitions(self.texts)

    def used_by(self, uses: list[str]) -> dict[Path, str]:
        """The files the statements ``uses`` need: those defining a name they mention, and the files
        those name, in turn. A statement that reads the catalog (SHOW TABLES, …) needs them all."""
        said = set().union(*map(_words, uses))
        if said & _CATALOG_WORDS:
            return self.texts
        todo = [p for p in self.texts if self.defines[p] & said]
        wanted: set[Path] = set()
        while todo:
            p = todo.pop()
            if p not in wanted:
                wanted.add(p)
                todo += self.needs[p]
        return {p: sql for p, sql in self.texts.items() if p in wanted}


# The view files each connection of ``connect`` has run (``uses``: some of them; ``make_views``: more),
# and the view files it was made with: its later views (``make_views``, for each run_query) are made
# from the same texts, without listing and stating the files again (~0.7 ms each time).
_MADE: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, set[Path]]" = weakref.WeakKeyDictionary()
_FILES: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _ViewFiles]" = weakref.WeakKeyDictionary()


def _view_files() -> _ViewFiles:
    """The view files, read again only when one changed."""
    return _read_view_files(tuple((p, st.st_mtime_ns, st.st_size) for p in view_files() for st in [p.stat()]))


@functools.lru_cache(maxsize=4)
def _read_view_files(key: tuple) -> _ViewFiles:
    return _ViewFiles({p: p.read_text(encoding="utf-8") for p, *_ in key})


def _create_views(con: duckdb.DuckDBPyConnection, uses: list[str] | None = None) -> None:
    """Run queries/views/*.sql (those the statements ``uses`` need, or all) that ``con`` has not run
    yet, each after those it uses (a view binds when created, reading every Parquet file's schema:
    egress, which uses access_log and the IP macros, failed twice before it bound when the files ran
    by name). A dependency the order misses (a name written oddly) still works: a file that fails is
    run again until nothing new succeeds."""
    made = _MADE.setdefault(con, set())
    files = _FILES.get(con)
    if files is None:
        files = _FILES[con] = _view_files()
    texts = files.texts if uses is None else files.used_by(uses)
    pending = {p: sql for p, sql in texts.items() if p not in made}
    while pending:
        failed: dict[Path, Exception] = {}
        for path, sql in pending.items():
            try:
                con.execute(sql)
                made.add(path)
            except duckdb.CatalogException as e:
                failed[path] = e
            except duckdb.Error as e:
                raise LogpipeError(f"{path}: {str(e).splitlines()[0]}; fix the view file") from None
        if len(failed) == len(pending):
            path, e = next(iter(failed.items()))
            raise LogpipeError(f"{path}: {str(e).splitlines()[0]}; fix the view file") from None
        pending = {p: pending[p] for p in failed}


def make_views(con, uses: list[str] | None = None) -> None:
    """Give a connection of ``connect`` the views and macros the statements ``uses`` need that it
    lacks (``connect(uses=…)`` made only some), or every view (``uses`` None: for the hints of an
    error, which list the views and their columns). A connection ``connect`` did not make (a
    caller's own DuckDB) is left as it is. ``run_query`` calls it for each statement."""
    if con in _MADE:
        _create_views(con, uses)


def columns_named(uses: list[str], columns: list[str], past: str) -> list[str]:
    """Of ``columns`` (view ``past``'s), those that the statements ``uses`` name, or the view files
    they need beyond ``past`` and the files ``past`` needs: what those statements can read of a table
    that stands in for view ``past`` (a report's connection materializes ``traffic`` so). A statement
    that reads the catalog (SHOW TABLES, …) can read them all."""
    files = _view_files()
    before = files.used_by([past])
    said = set().union(*map(_column_words, uses),
                       *(_column_words(sql) for p, sql in files.used_by(uses).items() if p not in before))
    if said & _CATALOG_WORDS:
        return list(columns)
    return [c for c in columns if c.lower() in said]


def _lock_down(con: duckdb.DuckDBPyConnection, read_dirs: list[Path], write_paths: list[str]) -> None:
    dirs = [d.resolve().as_posix().rstrip("/") + "/" for d in read_dirs]
    paths = [Path(p).resolve().as_posix() for p in write_paths]
    con.execute("SET allowed_directories = $1", [dirs])
    con.execute("SET allowed_paths = $1", [paths])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def spill_dir() -> Path:
    """Where a connection's DuckDB writes what does not fit its memory: the system's temporary
    directory (``$TMPDIR``), not DuckDB's default ``.tmp`` in the working directory, which may be
    read-only, or someone's project. One directory per user (DuckDB names its files by process and
    removes them when the connection closes)."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"logpipe-duckdb-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


# What a DuckDB connection's process holds beside DuckDB's own memory (Python, pyarrow, the report's
# rendering), which LOGPIPE_MEMORY's budget holds too: peak RSS on the scenario's 1 MB dataset, report
# anomalies -o json 170 MiB, -o html 250 MiB (vl-convert), query top_destinations 150 MiB.
PYTHON_MIB = 256


def duckdb_memory_mib(budget: str | None = None) -> float:
    """DuckDB's share of the memory budget (``lanes.budget_mib``: ``$LOGPIPE_MEMORY``, default 1G):
    the budget less PYTHON_MIB; half of a budget under twice that (which no command keeps to)."""
    from .lanes import budget_mib

    mib = budget_mib(budget)
    return mib - PYTHON_MIB if mib >= 2 * PYTHON_MIB else mib / 2


def _bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Spill to ``spill_dir()``, and hold at most ``duckdb_memory_mib()`` in memory (768 MiB of the
    default 1 GiB budget; DuckDB's own default is 80% of the machine's memory: 10M rows' report
    anomalies peaked at 1.03 GiB RSS so, 0.88 GiB bounded, as fast; 20M rows' 1.77 and 0.95 GiB).
    A report keeps its rows in a table (logpipe/reports.py), in a file of its own (``SCRATCH``) or in
    memory: past the bound, DuckDB drops the file's blocks from memory (read again when needed), or
    spills the in-memory table's. What cannot spill fails (an ``OutOfMemoryException``, which
    errors.out_of_memory says in a line)."""
    con.execute("SET temp_directory = $1", [spill_dir().as_posix()])
    con.execute("SET memory_limit = $1", [f"{int(duckdb_memory_mib())}MiB"])


# The database a report's connection keeps its rows in (logpipe/reports.py): a DuckDB file, whose
# tables DuckDB compresses as it writes them, where an in-memory table keeps every value uncompressed
# (16 bytes a string): 10M rows' report table was 2.6 GB in memory, 0.3 GB in such a file.
SCRATCH = "logpipe_scratch"


def _attach_scratch(con: duckdb.DuckDBPyConnection) -> None:
    """Attach an empty DuckDB database file as ``SCRATCH``, in ``spill_dir()``: its name is removed at
    once (DuckDB keeps the file open, and writes no WAL beside it), so nothing is left behind, even by
    a killed process. Where no file can be made there (a read-only $TMPDIR), none is attached:
    ``has_scratch`` says so, and the caller keeps its table in memory, as before."""
    import tempfile

    try:
        where = spill_dir()
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="report-", suffix=".duckdb", dir=where)
        os.close(fd)
        os.unlink(path)  # (DuckDB creates it: an empty file is no database)
        con.execute(f"ATTACH {_literal(path)} AS {SCRATCH} (RECOVERY_MODE no_wal_writes)")
    except (OSError, duckdb.IOException):
        return
    with contextlib.suppress(OSError):
        os.unlink(path)


def has_scratch(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = $1", [SCRATCH]).fetchall())


def connect(
    data_dir: str | os.PathLike | None = None,
    *,
    settings: Settings | None = None,
    tables: dict[str, pa.Table] | None = None,
    sandbox: bool = False,
    allow_write_paths: list[str] | tuple[str, ...] = (),
    threads: int | None = None,
    uses: list[str] | tuple[str, ...] | None = None,
    scratch: bool = False,
    baseline: str | os.PathLike | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views ``access_log``, ``rejects``, ``traffic`` and ``egress``.

    ``data_dir`` (default ``$LOGPIPE_DATA`` or ``./logpipe-data``) is a dataset written by
    ``logpipe ingest``; ``tables={"records": t, "rejects": r}`` queries Arrow tables instead.
    ``settings`` (logpipe.settings.Settings) default to ``load_settings(data_dir)``.
    ``sandbox``: reads only the dataset, writes only the files of ``allow_write_paths`` (exact file
    paths), and the configuration is locked (the module docstring); otherwise DuckDB's own defaults.
    ``uses``: the statements the connection is for (SQL text); only the views and macros they name,
    and those these use, are made (each view binds when made: ~0.1 s for all of them, most of a
    connection's cost); ``make_views`` makes more (``run_query`` does, for its statement). Default: all of them.
    ``scratch``: a database ``SCRATCH`` (a file of its own, in ``spill_dir()``) for tables the
    connection makes (a report's rows), which a sandboxed connection cannot attach once locked.
    ``baseline``: another dataset (older) whose rows before the first record of ``data_dir`` (or of
    ``tables``) come first in ``access_log`` (``report anomalies --baseline``; ``window_floor`` gives
    that first record's time).
    """
    from .settings import load_settings

    # ``threads``: a small live batch gains nothing from more, and each thread keeps its own memory.
    con = duckdb.connect(":memory:", config={"threads": threads} if threads else {})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # stderr is for logpipe's own summaries
        # Each view binds when created, and a query reads the files again: each Parquet file's footer
        # read once a connection (a connection of the demo's dataset 0.17 → 0.13 s).
        con.execute("SET parquet_metadata_cache = true")
        _bound_memory(con)
        read_dirs: list[Path] = []
        data = None
        rows_view = "logpipe_rows" if baseline is None else "logpipe_data_rows"
        if tables is not None:
            _table_sources(con, tables, rows_view)
        else:
            data = resolve_data_dir(data_dir)
            _dataset_sources(con, data, rows_view)
            read_dirs.append(data)
        if baseline is not None:
            _baseline_sources(con, baseline, "the --input logs start" if data is None else f"{data_dir or data} starts")
            read_dirs.append(Path(baseline))
        if threads is None and _small(data, tables, baseline):
            con.execute("SET threads = 1")
        if settings is None:
            settings = load_settings(data if data is not None else data_dir)
        _settings_tables(con, settings)
        _create_views(con, None if uses is None else list(uses))
        if scratch:
            _attach_scratch(con)
        if sandbox:
            _lock_down(con, read_dirs, list(allow_write_paths))
        elif allow_write_paths:
            raise ValueError("allow_write_paths limits a sandboxed connection (sandbox=True); without one "
                             "every path may be written")
    except BaseException:
        con.close()
        raise
    return con
