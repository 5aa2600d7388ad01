"""Named queries: one ``.sql`` file each under ``queries/`` (not ``queries/views/``), run with bound
``$params``.

A query file starts with a block of ``--`` comment lines, then one SQL statement::

    -- title: Top external destinations                    ← first line: the title
    -- description: Hosts outside the mesh, by requests,  ← next lines: the description
    --   with bytes and error share.
    -- @param limit 20 rows to show                        ← @param NAME DEFAULT [HELP]
    -- @param since '' window start (ISO time)             ← a quoted default: text
    SELECT destination, count(*) AS requests
    FROM egress
    WHERE start_time >= coalesce(CAST(nullif($since, '') AS TIMESTAMPTZ), '-infinity'::TIMESTAMPTZ)
    GROUP BY ALL ORDER BY requests DESC
    LIMIT $limit

The ``title:`` and ``description:`` labels are optional. ``-- @column NAME MEANING`` says what a
column of the result means (lines indented further go on with it): a report prints the meanings of
its section's columns under the table (``column_legend``), the one place they are written. A line
``-- output: FORMAT`` (one word: one of ``logpipe query``'s ``-o`` formats) sets the query's output
where neither ``-o`` nor ``--out``'s suffix does (``service_entries``: YAML documents, on a terminal
and into ``kubectl apply -f -`` alike). In ``-- @param NAME DEFAULT [HELP]`` NAME
is an identifier and DEFAULT one word or a single-quoted string (``''`` inside it for a quote; ``''``
alone is the empty string); ``null`` or no default means NULL; the rest of the line is help text
shown by ``--list``. A bare default's spelling types the parameter: an integer default makes an
integer parameter (``-p limit abc`` is refused), a decimal one a float, ``true``/``false`` a boolean;
quoted defaults and the rest are text. Values reach DuckDB as bound parameters (``$name``), never as
SQL text. The query's name is its file name without ``.sql``; a user's folders (``--queries DIR``,
``$LOGPIPE_QUERIES``) are merged over the built-in ones, a user query replacing a built-in one of
the same name.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ParamError, QueryError, UsageError
from .resources import resource_dir

_PARAM_RE = re.compile(r"^@param\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+(.*?))?\s*$")
_COLUMN_RE = re.compile(r"^@column\s+([A-Za-z_][A-Za-z0-9_]*)\s+(\S.*?)\s*$")
_OUTPUT_RE = re.compile(r"^output:\s*([A-Za-z]+)$", re.IGNORECASE)
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
VIEWS_DIR = "views"


@dataclass
class Query:
    name: str
    title: str
    description: str
    params: dict[str, str | None]  # name → default text (None: NULL)
    sql: str  # the whole file, so DuckDB's "LINE n" is the file's line n
    path: Path | None = None
    line: int = 1  # first line of the statement, after the comment block
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else "<sql>"


def _split_default(rest: str) -> tuple[str | None, bool, str]:
    """``DEFAULT [DESCRIPTION]`` → (default text, quoted?, description)."""
    rest = rest.strip()
    if not rest:
        return None, False, ""
    if rest.startswith("'"):
        m = re.match(r"'((?:[^']|'')*)'(?:\s+|$)", rest)
        if m:
            return m.group(1).replace("''", "'"), True, rest[m.end():].strip()
    token, _, help_ = rest.partition(" ")
    return (None if token.lower() == "null" else token), False, help_.strip()


def parse_query(text: str, name: str, path: Path | None = None) -> Query:
    """A Query from the text of a query file (see the module docstring for the syntax)."""
    lines = text.splitlines()
    title, desc, params, helps, quoted, columns = "", [], {}, {}, set(), {}
    first = output = column = None
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s:
            continue
        if not s.startswith("--"):
            first = i
            break
        body = s[2:].strip()
        if column and s[2:].startswith("  ") and body and not body.startswith("@"):
            columns[column] += " " + body  # (an indented line goes on with the @column above)
            continue
        column = None
        if body.startswith("@column"):
            m = _COLUMN_RE.match(body)
            if not m:
                where = f"{path}:{i}" if path else f"line {i}"
                raise QueryError(f"{where}: cannot read {body!r}; write a column's meaning as `-- @column NAME MEANING`")
            column = m.group(1)
            columns[column] = m.group(2)
        elif body.startswith("@"):
            m = _PARAM_RE.match(body)
            if not m:
                where = f"{path}:{i}" if path else f"line {i}"
                raise QueryError(f"{where}: cannot read {body!r}; write parameters as `-- @param NAME DEFAULT [DESCRIPTION]`")
            default, is_quoted, help_ = _split_default(m.group(2) or "")
            params[m.group(1)] = default
            helps[m.group(1)] = help_
            if is_quoted:
                quoted.add(m.group(1))
        elif _OUTPUT_RE.match(body):  # (one word: a description's line that starts "Output: …" stays its text)
            output = _OUTPUT_RE.match(body).group(1).lower()
        elif not title:
            title = body[len("title:"):].strip() if body.lower().startswith("title:") else body
        elif body or desc:
            desc.append(body[len("description:"):].strip() if not desc and body.lower().startswith("description:") else body)
    q = Query(name=name, title=title or name, description="\n".join(desc).strip(), params=params,
              sql=text, path=path, line=first or 1)
    q.extra.update(param_help=helps, quoted=quoted, output=output, columns=columns)
    return q


def column_legend(query: Query, columns: Iterable[str]) -> list[tuple[str, str]]:
    """(column, meaning) for each of ``columns`` (a result's, in its order) that ``query``'s
    ``-- @column`` lines explain."""
    meanings = query.extra.get("columns", {})
    return [(c, meanings[c]) for c in columns if c in meanings]


def _query_files(root: Path) -> list[tuple[Path, int, int]]:
    """(path, mtime_ns, size) of each query file under ``root`` by path (``views/`` and dot-named
    files and folders left out): what ``_read_query`` is cached on."""
    found = []

    def walk(folder: str, top: bool) -> None:
        try:
            entries = list(os.scandir(folder))
        except PermissionError:  # (skipped, as Path.rglob skips it)
            return
        for e in entries:
            if e.name.startswith(".") or (top and e.name == VIEWS_DIR):
                continue
            if e.is_dir(follow_symlinks=False):  # (a link to a folder is not followed, as by rglob)
                walk(e.path, False)
            elif e.name.endswith(".sql") and e.is_file():
                st = e.stat()
                found.append((Path(e.path), st.st_mtime_ns, st.st_size))

    walk(os.fspath(root), True)
    return sorted(found)


@functools.lru_cache(maxsize=1024)
def _read_query(path: Path, mtime_ns: int, size: int) -> Query:
    """The query of a file as it was at ``mtime_ns`` and ``size``: each file is read and parsed again
    only when it changed (``load_queries`` runs for each query and report: ~3 ms each time before)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise QueryError(f"{path}: not UTF-8 text; save the query as UTF-8") from None
    return parse_query(text, path.stem, path)


def _user_dirs(extra_dirs: Iterable[str | os.PathLike]) -> list[Path]:
    dirs = [Path(d) for d in extra_dirs or ()]
    env = os.environ.get("LOGPIPE_QUERIES")
    if env:
        dirs = [Path(d) for d in env.split(os.pathsep) if d] + dirs
    for d in dirs:
        if not d.is_dir():
            raise UsageError(f"query folder {d} does not exist; pass an existing directory to --queries")
    return dirs


def load_queries(extra_dirs: Iterable[str | os.PathLike] = ()) -> dict[str, Query]:
    """Built-in queries (``queries/**/NAME.sql``, views excepted) merged with the user's folders
    (``extra_dirs``, ``$LOGPIPE_QUERIES``): name → Query, sorted by name."""
    found: dict[str, Query] = {}
    for root in [resource_dir("queries"), *_user_dirs(extra_dirs)]:
        for p, mtime_ns, size in _query_files(root):
            cached = _read_query(p, mtime_ns, size)  # (a copy each call: a caller may change its own)
            q = dataclasses.replace(cached, params=dict(cached.params), extra={
                k: v.copy() if isinstance(v, (dict, set, list)) else v for k, v in cached.extra.items()})
            q.extra["group"] = str(p.parent.relative_to(root)) if p.parent != root else ""
            found[q.name] = q
    return dict(sorted(found.items()))


def named_query(name: str, extra_dirs: Iterable[str | os.PathLike] = ()) -> Query:
    """The named query ``name`` (``logpipe query --list``; ``extra_dirs`` as ``--queries``), for
    ``run_query``."""
    return find_query(name, load_queries(extra_dirs))


def close_names(name: str, known, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names of ``known`` that look like ``name`` (a typo's likely meaning), closest first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)


def find_query(name: str, queries: dict[str, Query]) -> Query:
    if name in queries:
        return queries[name]
    if re.match(r"\s*(select|with|from|describe|show|pivot)\b", name, re.IGNORECASE):  # SQL given as a NAME
        shown = name.strip() if len(name.strip()) <= 60 else name.strip()[:57] + "..."
        raise QueryError(f"{shown!r} is SQL, not a query name: give it with --sql "
                         f"(logpipe query --sql \"{shown}\")")
    close = close_names(name, queries, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `logpipe query --list`"
    raise QueryError(f"no query named {name!r}; {hint}")


def _typed(name: str, value: Any, default: str | None, quoted: bool = False) -> Any:
    if not isinstance(value, str) or default is None or quoted:
        return value
    if _INT_RE.match(default):
        if _INT_RE.match(value.strip()):
            return int(value)
        raise ParamError(f"parameter {name} takes an integer (default {default}), not {value!r}")
    if _FLOAT_RE.match(default):
        try:
            return float(value)
        except ValueError:
            raise ParamError(f"parameter {name} takes a number (default {default}), not {value!r}") from None
    if default.lower() in ("true", "false"):
        if value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ParamError(f"parameter {name} takes true or false (default {default}), not {value!r}")
    return value


def bind_params(query: Query, params: dict[str, Any] | None) -> dict[str, Any]:
    """The query's defaults overlaid with ``params``, typed by the defaults' spelling."""
    params = dict(params or {})
    unknown = [k for k in params if k not in query.params]
    if unknown and query.path is not None:
        known = ", ".join(query.params) or "none"
        close = close_names(unknown[0], query.params, n=1)
        raise ParamError(f"query {query.name} has no parameter {unknown[0]!r}"
                         + (f" (did you mean {close[0]}?)" if close else "") + f"; its parameters: {known}")
    values = {}
    for k, default in query.params.items():
        try:
            values[k] = _typed(k, params.get(k, default), default, k in query.extra.get("quoted", ()))
        except ParamError as e:
            if query.path is None:
                raise
            # (a report's -p NAME sets NAME in every section that has it, each of its own default:
            # `-p min_requests abc` said "(default 10)", error_spike's, where new_destination's is 1)
            raise ParamError(f"query {query.name}: {e}") from None
    for k in unknown:  # ad-hoc SQL: every -p is a parameter
        values[k] = params[k]
    return values


def failure_flags(params: dict[str, Any] | None = None) -> list[str]:
    """The response flags that count as failures: error_spike's ``failure_flags`` as a report runs it
    (``-p error_spike.failure_flags``, else ``-p failure_flags``, else its default), each name trimmed.
    The HTML report's error-share chart and the stream's failure_burst alert count the same failures
    as the error_spike finding (queries/views/is_failure.sql)."""
    params = params or {}
    given = params.get("error_spike.failure_flags", params.get("failure_flags"))
    if given is None:
        given = bind_params(load_queries()["error_spike"], None)["failure_flags"]
    return [f.strip() for f in str(given).split(",") if f.strip()]


# ---- running ------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"LINE (\d+):")
_MISSING_RE = [  # DuckDB's message for a missing name → which kind of name it is
    (re.compile(r'Table with name "?([\w.]+)"? does not exist'), "views"),
    (re.compile(r'Referenced column "?(\w+)"? not found'), "columns"),
    (re.compile(r'Table Function with name "?(\w+)"? does not exist'), None),
    (re.compile(r'Scalar Function with name "?(\w+)"? does not exist'), None),
]
_MACRO_CANDIDATES = re.compile(r"^\s+(\w+\(.*\))\s*$", re.M)  # a macro's forms, one a line


def _statement(con, sql: str, where: str):
    """The one read statement of ``sql``, or a QueryError."""
    from .db import READ_STATEMENTS, Error

    try:
        statements = con.extract_statements(sql)
    except Error as e:
        raise QueryError(f"{where}: {_first_line(e)}") from None
    if not statements:
        raise QueryError(f"{where}: no SQL statement to run; write a SELECT")
    if len(statements) > 1:
        raise QueryError(f"{where}: {len(statements)} statements; run one SELECT at a time")
    kind = statements[0].type.name
    if kind == "LOAD":  # (DuckDB's type of INSTALL and FORCE INSTALL too: name the statement as written)
        words = [w.upper() for w in statements[0].query.split()[:2]] or ["LOAD"]
        kind = " ".join(words) if words[0] == "FORCE" else words[0]
    if kind not in READ_STATEMENTS:
        raise QueryError(
            f"{where}: {kind} statements are not allowed; logpipe queries only read (SELECT), "
            "and results are written with -o FORMAT --out FILE"
        )
    return statements[0]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _owned_names(con, kind: str) -> list[tuple[str, str]]:
    """(name, the view it is of) of the views (``kind`` "views": each its own) or their columns: all
    of them, also on a connection made for some statements (``db.connect(uses=…)``)."""
    from .db import make_views

    try:
        make_views(con)
        if kind == "views":
            sql = ("SELECT DISTINCT view_name, view_name FROM duckdb_views() WHERE NOT internal "
                   "AND view_name NOT LIKE 'logpipe\\_%' ESCAPE '\\' ORDER BY 1")
        else:
            sql = ("SELECT DISTINCT column_name, table_name FROM duckdb_columns() "
                   "WHERE table_name IN ('access_log', 'egress', 'traffic', 'rejects') ORDER BY 2, 1")
        return [(r[0], r[1]) for r in con.execute(sql).fetchall()]
    except Exception:  # the hint is a courtesy; never hide the real error behind another
        return []


def _workload_columns() -> set[str]:
    """ztunnel's columns of both ends' workloads (``src_*``, ``dst_*``): empty on an Envoy line."""
    from .schema import WORKLOAD_FIELDS

    return {f.name for f in WORKLOAD_FIELDS if f.name.startswith(("src_", "dst_"))}


def _hint(con, message: str) -> str:
    for rx, kind in _MISSING_RE:
        m = rx.search(message)
        if m and kind:
            name = m.group(1).split(".")[-1]
            owned = _owned_names(con, kind)
            known = sorted({n for n, _ in owned})
            owners = [view for n, view in owned if n == name]
            if owners:  # (a column of another view: rejects keep a line's raw text, rows do not)
                return f"{name} is a column of {' and '.join(owners)} only"
            close = close_names(name, known)
            if close and kind != "views" and set(close) <= _workload_columns():
                return (f"did you mean {', '.join(close)}? (ztunnel's: an Envoy line names only IPs; "
                        "egress's source_workload is a client's workload, by ztunnel's lines or `--pods FILE`, kubectl get pods -A -o json)")
            if close:
                return f"did you mean {', '.join(close)}?"
            if kind == "views":
                return f"the views are {', '.join(known)}"
            return "`logpipe query --sql 'DESCRIBE egress'` lists the columns"
    candidates = _MACRO_CANDIDATES.findall(message) if "does not support the supplied arguments" in message else []
    if candidates:  # (DuckDB lists a macro's forms on the lines after its first: name them in one)
        return f"it takes {' or '.join(c.strip() for c in candidates)}"
    if "file system operations are disabled" in message or "Permission Error" in message:
        return ("queries may read only the dataset; to save results use -o FORMAT --out FILE "
                "(COPY, read_csv and other file access are refused)")
    if message.startswith(_VALUE_ERRORS):  # (a value the SQL wrote, or a cast of a column, not a name)
        if "timestamp" in message.split("\n", 1)[0]:
            return ("write a time as '2025-03-08 14:00' (UTC; '2025-03-08 14:00+01:00' in another zone), or "
                    "relative to now: now() - INTERVAL 1 DAY")
        return "a value does not fit its type: `logpipe query --sql 'DESCRIBE egress'` gives each column's type"
    return "`logpipe query --sql 'DESCRIBE egress'` lists the columns"


# DuckDB's errors of a value, not of the SQL: with a -p value given, the value is the likely cause.
_VALUE_ERRORS = ("Conversion Error", "Out of Range Error", "Invalid Input Error")


def run_query(con, query_or_sql: Query | str, params: dict[str, Any] | None = None, given=None, *,
              few_rows: bool = False):
    """Run a named Query or ad-hoc SQL on ``con`` (from logpipe.db.connect) → pyarrow.Table.

    ``$name`` placeholders are bound by DuckDB from the query's defaults and ``params``; a DuckDB
    error becomes a QueryError naming the query, its file and line, with a hint (``given``: the
    params the user gave, which a value's error names; default all of them). ``few_rows``: the
    answer is small (a report's section), so DuckDB binds and plans the statement once, its rows
    fetched whole and copied into Arrow, where a relation (prepare_query's, which streams a large
    answer into Arrow) is bound when made and again when read: the scenario's 11 anomaly sections
    0.52-0.67 → 0.40-0.49 CPU-s."""
    return prepare_query(con, query_or_sql, params, given, once=few_rows)()


def prepare_query(con, query_or_sql: Query | str, params: dict[str, Any] | None = None, given=None, *,
                  once: bool = False):
    """``run_query``'s statement made ready once: a function that runs it on ``con`` each time it is
    called, over the rows the connection then reads (a live stream's micro-batches, swapped in by
    ``db.replace_records``), → pyarrow.Table; errors as run_query's. Its checks, its views and
    DuckDB's binding of it (a relation, which runs its query each time it is read) are done here,
    once: ~15 ms of each run of the alerts' statement over the traffic view. ``once``: the function
    is called once and its answer is small (run_query's ``few_rows``): no relation, DuckDB binds the
    statement when it runs it."""
    from .db import Error

    query = query_or_sql if isinstance(query_or_sql, Query) else parse_query(query_or_sql, "<sql>")
    where = query.where if query.path else "SQL error"  # (ad-hoc SQL: every error of it says so alike)
    from .db import make_views

    make_views(con, [query.sql])  # (a connection made for other statements: the views this one names)
    statement = _statement(con, query.sql, where)
    values = bind_params(query, params)
    # DuckDB refuses values for placeholders the statement does not have: pass only the ones it names.
    names = set(statement.named_parameters)
    missing = sorted(names - set(values))
    if missing:
        raise QueryError(f"{where}: no value for ${missing[0]}; give one with -p {missing[0]} VALUE")
    used = {k: v for k, v in values.items() if k in names}
    unused = [k for k in (params or {}) if k not in names and query.path is None]
    if unused:  # (ad-hoc SQL: a -p it never reads is a typo, or a placeholder the SQL lacks)
        has = ", ".join(f"${n}" for n in sorted(names)) or "no $placeholder"
        raise ParamError(f"-p {unused[0]}: the SQL has no ${unused[0]} (it has {has}); write ${unused[0]} where "
                         "the value goes")
    shown = {k: v for k, v in (params or {}).items() if k in names and (given is None or k in given)}
    if once:
        def run_once():
            try:
                with warnings.catch_warnings():  # (DuckDB's note of the copy, which a small answer can spare)
                    warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
                    return _whole_numbers(con.execute(query.sql, used or None).to_arrow_table())
            except Error as e:
                raise _query_error(con, query, e, shown) from None

        return run_once
    try:
        relation = con.sql(query.sql, params=used or None)
    except Error as e:
        raise _query_error(con, query, e, shown) from None

    def run():
        try:
            return _whole_numbers(relation.to_arrow_table())
        except Error as e:
            raise _query_error(con, query, e, shown) from None

    return run


def _query_error(con, query: Query, e: Exception, given: dict[str, Any]) -> QueryError:
    """The QueryError of DuckDB's error ``e`` running ``query`` (``given``: the -p values it names)."""
    from .errors import out_of_memory

    msg = _first_line(e)
    if memory := out_of_memory(e):  # (the query is right: the hint of a wrong name would mislead)
        where = f"query {query.name}" if query.path is not None else "SQL"
        return QueryError(f"{where}: {memory}")
    if given and msg.startswith(_VALUE_ERRORS):  # (a -p value the query cannot use, not the query's fault)
        said = ", ".join(f"-p {k} {v}" for k, v in given.items())
        if query.path is None:
            return ParamError(f"SQL error: {msg}; check the value given ({said})")
        return ParamError(f"query {query.name}: {msg}; check the value given ({said}; `--list` shows each "
                          "parameter's default)")
    if query.path is not None:
        m = _LINE_RE.search(str(e))
        where = f"{query.path}:{m.group(1) if m else query.line}"
        return QueryError(f"query {query.name} ({where}): {msg}; {_hint(con, str(e))}")
    return QueryError(f"SQL error: {msg}; {_hint(con, str(e))}")


def _whole_numbers(table):
    """DuckDB's sums of integers (a top-level DECIMAL(38,0) column: its HUGEINT) as 64-bit ints where
    every value fits, as the sums of bytes do: Python callers got ``Decimal('208389')``, Parquet files
    a decimal column. A DECIMAL the SQL asks for (``CAST(x AS DECIMAL(10,0))``) stays one. (Cast by
    ``arrowpl.cast``: no import of pyarrow.compute, ~50 ms of a small query's start-up.)"""
    import pyarrow as pa

    from .arrowpl import cast

    for i, f in enumerate(table.schema):
        if f.type == pa.decimal128(38, 0):
            try:
                table = table.set_column(i, f.name, cast(table.column(i), pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # (over 2^63: kept as it is)
                pass
    return table


def default_text(value: Any) -> str:
    """A bare ``@param`` default as the file spells it (and ``-p`` takes it): ``null``, ``true``,
    ``false``, ``20`` (``--list`` said Python's ``None``, ``True``)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def list_table(queries: dict[str, Query]):
    """``logpipe query --list``: one row per query (name, group, title, parameters with defaults)."""
    import pyarrow as pa

    def shown(q: Query) -> str:
        return " ".join(f"{k}={'' if v is None else v!r}" if k in q.extra.get("quoted", ())
                        else f"{k}={default_text(v)}" for k, v in q.params.items())

    qs = list(queries.values())
    return pa.table({
        "name": [q.name for q in qs],
        "group": [q.extra.get("group", "") for q in qs],
        "title": [q.title for q in qs],
        "parameters": [shown(q) for q in qs],
    })
