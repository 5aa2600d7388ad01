"""``logpipe report``: run a folder of named queries (``queries/inventory``, ``queries/anomalies``), one
section per ``.sql`` file, and shape the results into a stable document.

* inventory → ``{"window": {"start", "end"}, "destinations": [...], "sources": [...]}`` (one key per
  query of the folder; the window's ends null when --since/--until leave them open: all the data);
* anomalies → ``{"window": {...}, "baseline": {...}, "findings": [{"kind", "severity", "source",
  "destination", "evidence", "advice"}, ...]}`` (and ``source_ips`` of a finding of one client),
  findings most severe first, in a total order (_finding_order).

The judgement lives in the SQL; this module only chooses the time window and the baseline, which it
passes to every query as the ``$since``/``$until``/``$baseline_start``/``$baseline_end`` parameters:

* default: the last 24 hours of the egress data are the window (to the data's last record, of any
  kind: authz_denial's internal denials logged after the last egress request are in it), everything
  before them the baseline;
* ``baseline_days=N``: the first N days of the data are the baseline, the rest the window;
* ``since``/``until``: that window, everything before ``since`` the baseline;
* ``baseline_dir``: another dataset is the baseline (its rows before the window), this one the window.

With ``pods`` (``kubectl get pods -A -o json``, logpipe/pods.py) the connection's ``client_workloads``
names the pod's workload (``namespace/owner``) where a pod held an IP at a time, which the ``egress``
view gives as ``source_workload`` beside the client's ``source_ip`` (an IP, always). Without a pod for
it, an IP that ztunnel's lines name (``src.namespace``/``src.workload`` at ``src.addr``) is that
``namespace/pod``: the waypoint's line of the same call names its client by IP alone. The queries
name a client by both (client_named.sql): its workload where known, else its IP.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import DatasetError, UsageError

# The default anomalies window: the data's last 24 h (``logpipe ingest`` says when a run's rows fall before it).
DEFAULT_WINDOW = dt.timedelta(hours=24)
# A baseline of fewer days (UTC dates of egress) has not seen every day of the week: a client that calls
# on weekdays only, a weekly job, looks new in a window of a day it did not cover (a 2-day baseline of
# a weekend made Monday's traffic new pairs), and the report says so (_short_baseline).
BASELINE_MIN_DAYS = 7

REPORTS = ("inventory", "anomalies")
SEVERITIES = ("info", "low", "medium", "high", "critical")
FINDING_KEYS = ("kind", "severity", "source", "destination", "evidence", "advice")
# A finding's or an inventory row's client IPs (client_ips.sql), beside ``source`` (its workload where
# known, else its IP) where it has one client: in the JSON only, as the text and HTML show ``source``.
CLIENT_IPS = "source_ips"
WINDOW_PARAMS = ("since", "until", "baseline_start", "baseline_end")


@dataclass
class Window:
    """The window under judgement and the baseline it is compared with (UTC, end exclusive).
    What the report shows as an end that is no bound the user gave: ``last``, the data's last record
    (the window's bound is a second past it, so that the record is in it), and ``baseline_last``, a
    baseline dataset's last record (its bound, the window's start, is later: the other dataset's first)."""

    start: dt.datetime | None
    end: dt.datetime | None
    baseline_start: dt.datetime | None
    baseline_end: dt.datetime | None
    baseline_source: str = "dataset"
    baseline_last: dt.datetime | None = None
    last: dt.datetime | None = None

    def params(self) -> dict[str, str]:
        iso = lambda t: t.isoformat() if t is not None else ""  # noqa: E731
        return {"since": iso(self.start), "until": iso(self.end),
                "baseline_start": iso(self.baseline_start), "baseline_end": iso(self.baseline_end)}


def report_queries(name: str, extra_dirs=()) -> list:
    """The named queries of report ``name`` (the files of ``queries/<name>/``), in file-name order."""
    from .queries import load_queries

    if name not in REPORTS:
        raise UsageError(f"no report named {name!r}; choose one of {', '.join(REPORTS)}")
    found = [q for q in load_queries(extra_dirs).values() if q.extra.get("group", "").split("/")[0] == name]
    if not found:
        raise UsageError(f"report {name} has no queries; add .sql files to queries/{name}/")
    return found


def list_report(name: str, extra_dirs=()) -> list[dict[str, Any]]:
    """What ``--list`` prints: each section with its title and parameters (name, default, help)."""
    return [{"name": q.name, "title": q.title, "description": q.description, "params": query_params(q, WINDOW_PARAMS)}
            for q in report_queries(name, extra_dirs)]


def query_params(q, hide: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``q``'s parameters but ``hide``, each as a ``--list`` shows it (name, default, help)."""
    helps = q.extra.get("param_help", {})
    return [{"name": k, "default": v, "help": helps.get(k, "")} for k, v in q.params.items() if k not in hide]


# ---- the connection --------------------------------------------------------------------------------


# The views and macros this module's and html.py's own SQL name (tests/test_query.py checks it), and the
# egress columns it reads: with a report's queries, what a report's connection is made for
# (``db.connect(uses=…)``) and what of the traffic view it keeps (_materialize_traffic).
REPORT_READS = ("access_log authz_denied client_ips client_named client_workload client_workloads denials egress rejects ip_norm is_failure traffic "
                "start_time destination source_ip source_workload egress_kind response_code response_flags error bytes_received bytes_sent")


# ``open_report_db(keep_rows=None)`` (the inventory's text and JSON) keeps the traffic rows under
# db.SMALL_ROWS rows, the one bound of "few rows" (where a statement's time is its planning: db.connect
# reads them with one thread): computing the traffic view there is mostly planning it (~0.1 CPU-s), which
# each statement over the view does again (the scenario's 3,815 rows: `report inventory -o json` 0.86 → 0.63
# CPU-s; 100,000 rows, in process, 1.0 → 0.74); on many, the table costs memory a statement or two need
# not (100,000 rows in a scratch file: peak RSS 156 → 217 MB; 10M rows: open_report_db's docstring).


def open_report_db(data_dir, *, baseline_dir=None, pods_path=None, settings=None, tables=None, report=None,
                   keep_rows=True):
    """A DuckDB connection (logpipe.db) for a report: the dataset (or ``tables``, logs parsed in
    memory: ``pipeline.parse_to_tables``), plus the baseline dataset's rows before its first record when
    ``baseline_dir`` is given (``db.connect(baseline=…)``: DuckDB reads both datasets' files), plus the pod table when ``pods_path`` is given. With ``report`` (its name), only the views
    its queries and this module read are made; else all of them. ``keep_rows`` False: the traffic
    view is not kept in a table (_materialize_traffic), each statement computes it, reading only
    the columns it needs: cheaper for a statement or two (the inventory's two sections, without the
    HTML page's charts: 10M rows 7.0 → 5.7 s, 0.70 → 0.47 GB peak RSS), dearer for more. ``None``:
    kept when the rows are fewer than db.SMALL_ROWS (in memory: no scratch database), else not.

    Returns ``(con, window_floor)``: with a baseline dataset, the first record time of ``data_dir``
    (the window starts there and the baseline ends there), else ``None``."""
    from .db import SMALL_ROWS, connect, make_views, window_floor

    queries = [q for name in ([report] if report else REPORTS) for q in report_queries(name)]
    uses = None if report is None else [*(q.sql for q in queries), REPORT_READS]
    # The views over traffic are made after it is a table (_materialize_traffic), where it is one: a
    # view binds when made, and one made over the traffic view binds its whole tree again.
    con = connect(data_dir, settings=settings, tables=tables, sandbox=True, uses=[TRAFFIC_READS],
                  scratch=bool(keep_rows), baseline=baseline_dir)
    try:  # (a step that fails after connect, a --pods file that is no pod list, closes it: the caller has none)
        floor = window_floor(con)
        pods = None
        if pods_path is not None:
            from .pods import load_pods

            pods = load_pods(pods_path)
        attach_sources(con, pods)
        if keep_rows is None:
            keep_rows = con.execute("SELECT count(*) FROM logpipe_rows").fetchall()[0][0] < SMALL_ROWS
        if keep_rows:
            _materialize_traffic(con, queries)
        make_views(con, uses)
    except BaseException:
        con.close()
        raise
    return con, floor


def _materialize_traffic(con, queries) -> None:
    """Compute the ``traffic`` view once, into a table of the connection's scratch database (db.SCRATCH)
    and a temporary view of the same name over it that the ``egress`` and ``denials`` views then read
    (a temporary name shadows a view's, as attach_sources' client_workloads does): each report query reads egress several times (window, baseline, comparisons), and the
    judgement of a row is not free. It keeps the rows a report reads, egress, and denials (every
    proxy's) when a query reads them (authz_denial), all of them when a query names traffic; and the columns that
    ``queries`` (the report's), the views they read past traffic and REPORT_READS name, all of them
    when a query is the user's ($LOGPIPE_QUERIES: its ``SELECT *`` gives them all). A row of every
    column took twice the memory and time (1M rows: 506 MB and 9.7 s, 28 columns 267 MB and 4.8 s). In
    the scratch database (a file) DuckDB compresses the table, which a temporary table in memory it does
    not: 10M rows' anomalies, 2.6 GB → 0.33 GB, and the sections read it faster (7.8 → 3.8 s)."""
    from .db import SCRATCH, columns_named, has_scratch, _words
    from .resources import resource_dir

    db = con.execute("SELECT current_database()").fetchall()[0][0].replace('"', '""')
    # (from the catalog, as the view was made: a DESCRIBE binds the view, ~20 ms of the scenario's report)
    columns = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                                         "AND schema_name = 'main' AND table_name = 'traffic' ORDER BY column_index").fetchall()]
    statements = [q.sql for q in queries]
    builtin = resource_dir("queries").resolve()
    if all(q.path is not None and q.path.resolve().is_relative_to(builtin) for q in queries):
        columns = columns_named([*statements, REPORT_READS], columns, "traffic")
    said = set().union(*map(_words, statements))
    rows = "true" if "traffic" in said else "egress_kind IS NOT NULL" + (
        " OR authz_denied(response_code_details, connection_termination_details, response_flags, error)"
        if "denials" in said else "")
    select = f'SELECT {", ".join(_quoted(c) for c in columns)} FROM "{db}".main.traffic WHERE {rows}'
    if has_scratch(con):
        con.execute(f"CREATE TABLE {SCRATCH}.traffic AS {select}")
        con.execute(f"CREATE TEMP VIEW traffic AS SELECT * FROM {SCRATCH}.traffic")
    else:  # (no file for it: db._attach_scratch)
        con.execute(f"CREATE TEMP TABLE traffic AS {select}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# What attach_sources reads (for a connection made for some statements: ``db.connect(uses=…)``).
PODS_READS = "access_log ip_norm client_workload"
# What a report's connection needs before its traffic table is made (open_report_db): attach_sources'
# and _materialize_traffic's reads.
TRAFFIC_READS = f"traffic authz_denied {PODS_READS}"


# Who ztunnel logged at each client IP (its src.addr, src.namespace and src.workload, a pod's name),
# first and last: one row per IP and workload (a stream keeps these of the lines it has seen, alerts.py).
ZTUNNEL_SEEN = """
        SELECT ip_norm(downstream_remote_address_ip) AS ip,
            concat_ws('/', src_namespace, src_workload) AS workload,
            min(start_time) AS first_seen, max(start_time) AS last_seen
        FROM {access_log}
        WHERE log_format LIKE 'ztunnel%' AND src_workload IS NOT NULL
          AND downstream_remote_address_ip IS NOT NULL AND start_time IS NOT NULL
        GROUP BY ALL"""

# And when each held its IP: per IP, each workload holds it from halfway between its first line and the
# previous holders' last to halfway to the next one's (a line's time is when its connection completed, a
# waypoint's the request's start, a little before it: the nearest in time is who held the IP).
# "The previous holders' last" is the latest of all the workloads seen first before it, not the one
# just before it: so the boundaries only grow and the intervals cannot overlap where an IP's
# workloads' lines interleave (a 10..100 s, b 20..30 s, c 40..50 s: with the one before's, a held it
# until 60 s and c from 35 s, and traffic's join gave each row between twice).
ZTUNNEL_SOURCES = """
    SELECT ip, workload, client_workload(workload) AS owner,
        CASE WHEN before IS NOT NULL THEN before + (first_seen - before) / 2 END AS valid_from,
        CASE WHEN lead(first_seen) OVER w IS NOT NULL
             THEN upto + (lead(first_seen) OVER w - upto) / 2 END AS valid_until
    FROM (
        SELECT *, max(last_seen) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
            max(last_seen) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
        FROM ({seen})
        WINDOW w AS (PARTITION BY ip ORDER BY first_seen, workload)
    )
    WINDOW w AS (PARTITION BY ip ORDER BY first_seen, workload)"""

# A pod holds its IP from its start on (pods.py: each pod until the next one's start, the last for
# good), so --pods names the IPs it knows from their first pod's start (from any time: a pod of no
# start), and ztunnel's names an IP before that, or where no pod held it: one interval per IP and
# time, so that a row of traffic matches one at most.
# The pods' rows (--pods): the workload that names a client and judges it (its owner, client_workloads.sql)
# is the pod's owner as named, but a CronJob's run, a Job named after its CronJob and its scheduled minute
# (`ops/backup-29078747`: each night's a new Job), is its CronJob's, `ops/backup`, in the findings as in the
# judgement (they named it by the night's Job). (client_workload.sql's stripping of generated names is
# for pods' names, ztunnel's; an owner's name is its owner's choice: `ns/proxy-https`.)
_POD_ROWS = ("SELECT pod_ip AS ip, named AS workload, named AS owner, valid_from, valid_until FROM ("
             "SELECT *, CASE WHEN owner_kind = 'Job' THEN regexp_replace(workload, '-[0-9]{8,}$', '')"
             " ELSE workload END AS named FROM logpipe_pods)")
_POD_AND_ZTUNNEL_SOURCES = """
    WITH z AS ({ztunnel}),
    held AS (SELECT pod_ip AS ip, bool_or(valid_from IS NULL) AS always, min(valid_from) AS first
             FROM logpipe_pods GROUP BY ALL)
    """ + _POD_ROWS.replace("{", "{{").replace("}", "}}") + """
    UNION ALL
    SELECT z.ip, z.workload, z.owner, z.valid_from,
        CASE WHEN h.ip IS NULL THEN z.valid_until
             ELSE least(coalesce(z.valid_until, 'infinity'::TIMESTAMPTZ), h.first) END
    FROM z LEFT JOIN held h ON h.ip = z.ip
    WHERE h.ip IS NULL OR (NOT h.always AND coalesce(z.valid_from, '-infinity'::TIMESTAMPTZ) < h.first)"""


def attach_sources(con, pods=None, *, ztunnel=True, seen: str | None = None) -> None:
    """Fill the connection's ``client_workloads`` (queries/views/client_workloads.sql, empty as made),
    whose workloads the traffic view gives as ``source_workload`` beside the client's ``source_ip``:
    the pod that held the IP then (``pods``, ``--pods FILE``), else the workload ztunnel's lines name
    at that IP then (``ztunnel``: a waypoint's or sidecar's line names its client by IP alone). A
    temporary view of that name shadows the connection's. A connection whose views do not read it
    (``db.connect(uses=…)`` made only others) is left as it is. ``seen``: the name of a relation of
    ZTUNNEL_SEEN's rows to read ztunnel's lines from instead of the connection's ``access_log`` (a
    stream's: those of the dataset and of the lines it has read, which change from batch to batch);
    the view reads it then, however few rows it holds now."""
    if not con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = 'client_workloads' AND NOT temporary"
                       ).fetchall():
        return
    if seen is not None:
        seen = f"SELECT * FROM {seen}"
    elif ztunnel:
        db = con.execute("SELECT current_database()").fetchall()[0][0].replace('"', '""')
        base = f'"{db}".main.access_log'
        if con.execute(f"SELECT 1 FROM {base} WHERE log_format LIKE 'ztunnel%' AND src_workload IS NOT NULL"
                       " LIMIT 1").fetchall():
            seen = ZTUNNEL_SEEN.format(access_log=base)
    if pods is None and seen is None:
        return
    if pods is not None:
        con.register("logpipe_pods", pods)
    if pods is None:
        sql = ZTUNNEL_SOURCES.format(seen=seen)
    elif seen is None:
        sql = _POD_ROWS
    else:
        sql = _POD_AND_ZTUNNEL_SOURCES.format(ztunnel=ZTUNNEL_SOURCES.format(seen=seen))
    con.execute(f"CREATE OR REPLACE TEMP VIEW client_workloads AS {sql}")


# ---- window and baseline ---------------------------------------------------------------------------


def _apart(*times: dt.datetime) -> list[str]:
    """``times`` (UTC) as ISO text to the minute (``2025-03-08T14:02Z``), or to the second or
    millisecond where the minute would show two of them alike: an --until of 00:10 was "before the
    first record (2025-03-01T00:10Z)", which was at 00:10:40."""
    for fmt in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        texts = [t.strftime(fmt) for t in times]
        if len(set(texts)) == len(texts):
            return texts
    return [t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for t in times]


def _check_bounds(lo, hi, since, until, what: str = "record", last_what: str | None = None) -> None:
    """--since/--until that leave no record of the data (``lo``..``hi``) in the window: one line.
    ``what`` the bounds are the times of (``last_what``: the last's, when it is another): the
    anomalies' first is the first egress request's (their window starts from the egress), their last
    the last record's, of any kind, which their window ends past."""
    if since is not None and until is not None and since >= until:
        raise UsageError("--since must be before --until")
    if since is not None and hi is not None and since >= hi + dt.timedelta(seconds=1):
        given, last = _apart(since, hi)
        raise UsageError(f"--since {given} is after the last {last_what or what} ({last}); choose an earlier time")
    if until is not None and lo is not None and until <= lo:
        given, first = _apart(until, lo)
        raise UsageError(f"--until {given} is before the first {what} ({first}); choose a later time")


def inventory_window(con, since=None, until=None) -> Window:
    """The inventory's window: all the data, or --since/--until, checked as the anomalies' is."""
    if since is not None or until is not None:
        lo, hi = con.execute("SELECT min(start_time), max(start_time) FROM access_log").fetchall()[0]
        _check_bounds(lo, hi, since, until)
    return Window(since, until, None, None)


def resolve_window(con, *, since=None, until=None, baseline_days=None, window_floor=None, inputs=False) -> Window:
    """Pick the window and baseline from the options (see the module docstring). ``inputs``: the rows
    are ``--input`` logs parsed in memory, not a dataset (the errors say so). Data of no record has
    no window: an empty one (every end None), whose report is empty, as the inventory's and a
    query's answer are (``empty_note`` says why on stderr)."""
    table = "egress"
    # (the window starts from the last egress request, and ends past the last record of any kind:
    # authz_denial reports internal denials too, which a window that ended at the last egress request
    # left out when they were logged after it)
    lo, hi, last_row = con.execute("SELECT min(start_time), max(start_time), "
                                   "(SELECT max(start_time) FROM access_log) FROM egress").fetchall()[0]
    if lo is None:
        table = "access_log"
        lo, hi = con.execute("SELECT min(start_time), max(start_time) FROM access_log").fetchall()[0]
    if lo is None:
        if not _has_records(con):
            return Window(since, until, None, since)
        whose = "the --input logs'" if inputs else "the dataset's"
        raise DatasetError(f"{whose} rows have no start_time (a format"
                           " without %START_TIME%), and anomalies compare a window of time with a baseline;"
                           " `logpipe report inventory` and `logpipe query` read such rows")
    if window_floor is not None:
        # (the window is this dataset's rows, from its first record, window_floor, on, to its last
        # record; --since is checked against its last egress, else its last record: the last egress of
        # both could be the baseline's, before the window)
        hi = con.execute("SELECT coalesce((SELECT max(start_time) FROM egress WHERE start_time >= $1), "
                         "(SELECT max(start_time) FROM access_log WHERE start_time >= $1))", [window_floor]).fetchall()[0][0]
        if until is not None and until <= window_floor:
            given, first = _apart(until, window_floor)
            raise UsageError(f"--until {given} is before this dataset's first record ({first}), where the window "
                             "starts with --baseline; choose a later time")
    # (no --until: the window ends a second past the last record, which it includes, and shows that record)
    end, last = (until, None) if until is not None else (last_row + dt.timedelta(seconds=1), last_row)
    # (--since is refused only past the last record of any kind, where the window ends: one after the last
    # egress request but before later internal denials has authz_denial's findings, as the default has)
    last_any = last_row if window_floor is None else con.execute(
        "SELECT max(start_time) FROM access_log WHERE start_time >= $1", [window_floor]).fetchall()[0][0]
    later = last_any is not None and (hi is None or last_any > hi)
    _check_bounds(lo, last_any if later else hi, since, until, "egress request" if table == "egress" else "record",
                  "record" if later else None)
    if window_floor is not None:
        # (a --since before the floor, as a nightly `--since yesterday` on a log that starts after
        # midnight: the window is still this dataset's rows, from its first record; the rows before
        # it are the baseline dataset's, which it read as the window's)
        start = max(since, window_floor) if since is not None else window_floor
        base_last = con.execute(f"SELECT max(start_time) FROM {table} WHERE start_time < $1", [start]).fetchall()[0][0]
        return Window(start, end, lo, start, baseline_source="baseline dataset", baseline_last=base_last, last=last)
    if baseline_days is not None:
        if baseline_days <= 0:
            raise UsageError("--baseline-days takes a positive number of days, e.g. --baseline-days 6")
        day0 = lo.replace(hour=0, minute=0, second=0, microsecond=0)  # whole UTC days
        cut = day0 + dt.timedelta(days=baseline_days)
        if cut >= hi:
            raise UsageError(f"--baseline-days {baseline_days} covers all the data ({lo:%Y-%m-%d} to {hi:%Y-%m-%d}); "
                             "give fewer days")
        if since is not None and since < cut:  # (the window's rows would be the baseline's too: nothing new)
            raise UsageError(f"--since {since:%Y-%m-%d %H:%M} falls inside the baseline's first {baseline_days} "
                             f"day(s), which end {cut:%Y-%m-%d %H:%M} UTC; give a later --since or fewer --baseline-days")
        if until is not None and until <= cut:  # (a window from the cut to an --until before it: it ended before it began)
            raise UsageError(f"--until {until:%Y-%m-%d %H:%M} leaves no window after the baseline's first {baseline_days} "
                             f"day(s), which end {cut:%Y-%m-%d %H:%M} UTC; give a later --until or fewer --baseline-days")
        return Window(since or cut, end, lo, cut, last=last)
    # (data that starts after the baseline would end: an empty baseline, not one that ends before it starts)
    if since is not None:
        return Window(since, end, min(lo, since), since, last=last)
    if until is not None:
        start = until - DEFAULT_WINDOW
        return Window(start, until, min(lo, start), start)
    start = hi - DEFAULT_WINDOW
    return Window(start, end, min(lo, start), start, last=last)


def _count(con, start, end) -> int:
    return _span(con, start, end)[0]


def _span(con, start, end) -> tuple[int, int]:
    """The egress requests from ``start`` until ``end``: how many, and the UTC dates they fall on, first
    to last (0 of none)."""
    if start is None or end is None or start >= end:
        return 0, 0
    n, days = con.execute("SELECT count(*), date_diff('day', CAST(timezone('UTC', min(start_time)) AS DATE), "
                          "CAST(timezone('UTC', max(start_time)) AS DATE)) + 1 FROM egress "
                          "WHERE start_time >= $1 AND start_time < $2", [start, end]).fetchall()[0]
    return n, days or 0


def _short_baseline(requests: int, days: int) -> str | None:
    """The anomalies' line on a baseline of egress on fewer than BASELINE_MIN_DAYS dates, or None (a
    baseline of none has empty_note's)."""
    if not requests or days >= BASELINE_MIN_DAYS:
        return None
    return (f"the baseline covers {days} day{'s' if days != 1 else ''} (UTC dates of egress), under "
            f"{BASELINE_MIN_DAYS}: traffic of some days of the week only (weekday clients, weekly jobs) looks new; "
            f"give a baseline of {BASELINE_MIN_DAYS} days or more (--since, --baseline-days, --baseline DIR)")


# ---- running ---------------------------------------------------------------------------------------


def _check_params(queries, params: dict[str, str]) -> None:
    """``-p NAME VALUE`` sets NAME in every section that has it; ``-p SECTION.NAME VALUE`` in that
    section only (``min_requests`` is five sections' threshold, with three defaults)."""
    known = {k for q in queries for k in q.params}
    by_name = {q.name: q for q in queries}
    for k in params:
        section, _, name = k.rpartition(".")
        if section and (section not in by_name or name not in by_name[section].params):
            where = f"section {section!r} has no parameter {name!r}" if section in by_name else \
                f"no report section {section!r} (the sections: {', '.join(by_name)})"
            raise UsageError(f"-p {k}: {where}; see --list")
        if name in WINDOW_PARAMS:
            raise UsageError(f"-p {k} is set by --since/--until/--baseline-days/--baseline; use those options")
        if not section and k not in known:
            from .queries import close_names

            names = sorted(known - set(WINDOW_PARAMS))
            close = close_names(k, names, n=1)
            raise UsageError(f"no report parameter {k!r}" + (f" (did you mean {close[0]}?)" if close else "")
                             + f"; the parameters are: {', '.join(names)} (see --list; SECTION.NAME sets one section's)")


def run_report(con, name: str, *, params: dict[str, str] | None = None, window: Window | None = None,
               extra_dirs=()) -> dict[str, Any]:
    """Run report ``name`` on ``con`` and return its document (dicts and lists of plain values,
    datetimes included; ``to_json`` makes JSON of it). ``sections`` keeps the Arrow tables and
    titles for the renderers under the key ``_sections``, with each section's legend: the meaning of
    each of its columns that its query's ``-- @column`` lines give."""
    from .queries import column_legend, run_query

    queries = report_queries(name, extra_dirs)
    params = dict(params or {})
    _check_params(queries, params)
    window = window or resolve_window(con)
    wparams = window.params()
    sections = []
    for q in queries:
        mine = {k: v for k, v in params.items() if k in q.params}
        mine.update({k.rpartition(".")[2]: v for k, v in params.items() if k.rpartition(".")[0] == q.name})
        user = set(mine)  # (before the window's: an error of a value names the user's -p only)
        mine.update({k: v for k, v in wparams.items() if k in q.params})
        sections.append((q, run_query(con, q, mine, given=user, few_rows=True)))
    if name == "inventory":
        doc: dict[str, Any] = {"window": {"start": window.start, "end": window.end}}
        doc.update({q.name: t.to_pylist() for q, t in sections})
    else:
        findings = []
        for q, t in sections:
            missing = [k for k in FINDING_KEYS if k not in t.column_names]
            if missing:
                raise UsageError(f"{q.where}: an anomaly query must return the columns {', '.join(FINDING_KEYS)}; "
                                 f"{', '.join(missing)} missing")
            findings += [{**{k: row[k] for k in FINDING_KEYS},
                          **({CLIENT_IPS: row[CLIENT_IPS]} if row.get(CLIENT_IPS) is not None else {})}
                         for row in t.to_pylist()]
        for f in findings:
            if f["severity"] not in SEVERITIES:
                raise UsageError(f"query {f['kind']} returned severity {f['severity']!r}; "
                                 f"use one of {', '.join(SEVERITIES)}")
        findings.sort(key=_finding_order)
        base_requests, base_days = _span(con, window.baseline_start, window.baseline_end)
        doc = {
            "window": {"start": _ms(window.start), "end": _ms(window.last or window.end),
                       "requests": _count(con, window.start, window.end)},
            "baseline": {"start": _ms(window.baseline_start), "end": _ms(window.baseline_last or window.baseline_end),
                         "source": window.baseline_source, "requests": base_requests, "days": base_days,
                         "note": _short_baseline(base_requests, base_days)},
            "findings": findings,
        }
    # (the text's and HTML's tables without the client IPs, which the JSON's rows carry)
    shown = [(q, t.drop_columns([CLIENT_IPS]) if CLIENT_IPS in t.column_names else t) for q, t in sections]
    doc["_sections"] = [(q.name, q.title, t, column_legend(q, t.column_names)) for q, t in shown]
    return doc


def _ms(t: dt.datetime | None) -> dt.datetime | None:
    """A time of the anomalies' header (the window's and baseline's ends) to the millisecond, cut as
    the findings' evidence times are (by the evidence-time macro of queries/views/): a window that
    ended at a ztunnel line's request said ``…27.080629Z``, that request's finding ``…27.080Z``."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000) if t is not None else None


def _finding_order(f: dict[str, Any]) -> tuple:
    """The findings' order, a total one: most severe first, then kind, destination and source, then
    the evidence (its JSON text) and the advice, so that findings tied on the first four (one kind's
    rows of a source and destination, two sections' of the same pair) are listed alike however the
    queries' rows came (a report is diffed and committed; its JSON and text are the same bytes for
    the same data)."""
    from .jsonout import to_jsonable

    return (-SEVERITIES.index(f["severity"]), f["kind"], str(f["destination"]), str(f["source"]),
            json.dumps(to_jsonable(f["evidence"]), sort_keys=True, ensure_ascii=True), str(f["advice"]))


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without the renderers' private keys, as JSON-ready values."""
    from .jsonout import to_jsonable

    return to_jsonable({k: v for k, v in doc.items() if not k.startswith("_")})


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(public(doc), indent=2, ensure_ascii=True) + "\n"


def severity_counts(findings: list[dict]) -> dict[str, int]:
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        counts[f["severity"]] += 1
    return counts


def _has_records(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM access_log").fetchall()[0][0])


def empty_note(con, doc: dict[str, Any], inputs: bool = False) -> str | None:
    """A line for stderr when the report (``doc``, inventory or anomalies) has no egress to show, or
    the anomalies' comparison is meaningless, that says why: the data holds no record; it holds
    records but none is egress (what they are instead: _no_egress_note); the window holds no egress
    request; the anomalies' baseline holds none. The report is written all the same, exit 0 (README:
    the reports' exit codes), as a query's empty answer is. Only an empty report reads the data again."""
    whose = "the --input logs'" if inputs else "the dataset's"
    if not _has_records(con):
        if inputs:
            return ("logpipe: note: the --input logs hold no access lines (the summary above counts what they hold), "
                    "so the report is empty; give a proxy's log (kubectl logs … -c istio-proxy)")
        # (its rejects view was named as saying why where it held none: a dataset of empty logs)
        rejected = con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]
        why = "every line of its logs was rejected: its rejects view says why" if rejected else "its logs were empty"
        return f"logpipe: note: the dataset holds no records ({why}), so the report is empty"
    if "baseline" not in doc:  # the inventory
        if any(t.num_rows for _, _, t, _ in doc["_sections"]):
            return None
        span = _egress_span(con)
        if span is None:
            return _no_egress_note(con, whose)
        return (f"logpipe: note: no egress request falls in the window; {whose} egress runs from {_when(span[0])} "
                f"to {_when(span[1])}: give --since/--until that take in some of it")
    window, baseline = doc["window"]["requests"], doc["baseline"]["requests"]
    if window and baseline:
        return None
    span = _egress_span(con) if not window else None
    if not window and span is None:
        from .db import window_floor

        return _no_egress_note(con, whose, window_floor(con))
    if not window:
        if doc["baseline"]["source"] == "baseline dataset":
            fix = "the window is this dataset, which holds none: `logpipe report inventory` of it says what it holds"
        else:
            fix = (f"{whose} egress runs from {_when(span[0])} to {_when(span[1])}: give --since/--until that take in "
                   "some of it")
        return (f"logpipe: note: the window holds no egress requests (the baseline holds {baseline}), so no finding "
                f"of egress comes of it; {fix}")
    return ("logpipe: note: the baseline holds no egress requests, so everything looks new; "
            "widen it with --baseline-days N, --since, or --baseline DIR")


def _egress_span(con) -> tuple | None:
    """The first and last egress request's times, None when no row is egress."""
    n, lo, hi = con.execute("SELECT count(*), min(start_time), max(start_time) FROM egress").fetchall()[0]
    return (lo, hi) if n else None


# A row that is no egress (traffic.sql's egress_kind null) by where it went: into the proxy's own
# workload (a sidecar's inbound cluster, InboundPassthroughCluster; ztunnel's inbound), to a service
# of the mesh (an outbound or waypoint cluster whose host is in the mesh; ztunnel's hop in the mesh),
# else to an internal address, or nowhere (no upstream: 404 NR). $1: a baseline dataset's window floor
# (_no_egress_note), or null; the baseline's rows are those before it, so a row of no time is this dataset's.
_NOT_EGRESS = """
    SELECT went, sum(n)::BIGINT,
        (list(destination ORDER BY n DESC, destination) FILTER (WHERE destination IS NOT NULL))[1:4]
    FROM (
        SELECT CASE
                WHEN upstream_cluster_direction = 'inbound' OR upstream_cluster LIKE 'InboundPassthroughCluster%'
                    OR (log_format LIKE 'ztunnel%' AND direction = 'inbound') THEN 'inbound'
                WHEN upstream_cluster_direction IN ('outbound', 'inbound-vip') OR log_format LIKE 'ztunnel%' THEN 'mesh'
                ELSE 'other' END AS went,
            destination, count(*) AS n
        FROM "{db}".main.traffic WHERE egress_kind IS NULL AND coalesce(start_time >= $1, true)
        GROUP BY ALL
    )
    GROUP BY went"""


def _no_egress_note(con, whose: str, floor=None) -> str:
    """Data of records of which none is egress: what they are (inbound, to the mesh's services, to
    internal addresses), and what would show egress: the logs of a proxy it leaves by, or settings
    that count the user's external hosts as such. ``floor``: with a baseline dataset, this dataset's
    first record time (db.window_floor): the records told of are this dataset's, from it on, not the
    baseline's before it."""
    db = con.execute("SELECT current_database()").fetchall()[0][0].replace('"', '""')
    rows = {went: (n, dests or []) for went, n, dests in con.execute(_NOT_EGRESS.format(db=db), [floor]).fetchall()}
    total = sum(n for n, _ in rows.values())
    what = {"inbound": "inbound, into the proxy's own workload", "mesh": "to services of the mesh",
            "other": "to internal addresses or to no upstream"}
    parts = []
    for went in ("inbound", "mesh", "other"):
        if went in rows:
            n, dests = rows[went]
            shown = f": {', '.join(dests[:3])}{', …' if len(dests) > 3 else ''}" if dests and went != "inbound" else ""
            parts.append(f"{n} {what[went]}{shown}")
    return (f"logpipe: note: none of {whose} {total} records is egress ({'; '.join(parts)}), so there is no egress "
            "to report; egress is in the logs of a proxy it leaves by (an egress gateway's or waypoint's, a sidecar's "
            "outbound requests), and --mesh-domain, --internal-cidr and --cluster-domain set what counts as inside")


def cluster_note(con) -> str | None:
    """A line for stderr when rows of some layout name no upstream cluster at all (a custom format
    without %UPSTREAM_CLUSTER_RAW%, Envoy's default layout): what the report cannot tell of them.
    ztunnel's rows have none by nature (the egress judgement reads them by their workloads)."""
    from .formats import NO_CLUSTER_EFFECT

    blind = [f for (f,) in con.execute(
        "SELECT log_format FROM access_log WHERE log_format NOT LIKE 'ztunnel%' "
        "GROUP BY log_format HAVING count(upstream_cluster) = 0 ORDER BY log_format").fetchall()]
    if not blind:
        return None
    return (f"logpipe: note: no row of layout {', '.join(blind)} names an upstream cluster (its format logs no "
            f"%UPSTREAM_CLUSTER_RAW%), so for those rows {NO_CLUSTER_EFFECT}")


# ---- text and markdown ---------------------------------------------------------------------------

_COLOURS = {"critical": "\x1b[1;97;41m", "high": "\x1b[1;31m", "medium": "\x1b[33m", "low": "\x1b[36m",
            "info": "\x1b[2m"}


def evidence_items(evidence: dict) -> list[tuple[str, Any]]:
    """The evidence's keys and JSON-ready values a report shows: not the empty ones, nor the
    ServiceEntry (shown under the advice)."""
    from .jsonout import to_jsonable

    return [(k, to_jsonable(v)) for k, v in evidence.items() if not (v is None or k == "service_entry" or v == [])]


def _evidence_text(evidence: Any) -> str:
    from .jsonout import to_jsonable

    if not isinstance(evidence, dict):
        return str(to_jsonable(evidence))
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in evidence_items(evidence))


def _findings_table(findings: list[dict]):
    import pyarrow as pa

    return pa.table({
        "severity": [f["severity"] for f in findings],
        "kind": [f["kind"] for f in findings],
        "source": [f["source"] for f in findings],
        "destination": [f["destination"] for f in findings],
        "evidence": [_evidence_text(f["evidence"]) for f in findings],
        "advice": [f["advice"] for f in findings],
    }, schema=pa.schema([(n, pa.string()) for n in ("severity", "kind", "source", "destination", "evidence", "advice")]))


LEGEND_WIDTH = 100


def legend_text(legend: list[tuple[str, str]], markdown: bool) -> str:
    """What a section's columns mean (its query's ``-- @column`` lines): under its table, so a reader
    needs not the README to know what ``flagged`` counts or what ``tls-origination`` is."""
    import textwrap

    from .render import escape_control

    if markdown:
        return "Columns:\n\n" + "".join(f"- `{c}`: {escape_control(m)}\n" for c, m in legend)
    pad = max(len(c) for c, _ in legend) + 2
    return "Columns:\n" + "".join(
        textwrap.fill(escape_control(m), LEGEND_WIDTH, initial_indent=f"  {c:<{pad}}",
                      subsequent_indent=" " * (pad + 2), break_on_hyphens=False) + "\n"
        for c, m in legend)


def _when(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t is not None else "-"


def inventory_span(doc: dict[str, Any]) -> str:
    """What the inventory ``doc`` covers, as its text and HTML say it: all the data, or the window
    --since/--until give (an end they leave open: the start, the end)."""
    start, end = doc["window"]["start"], doc["window"]["end"]
    if start is None and end is None:
        return "all the data"
    return f"{_when(start) if start else 'the start'} to {_when(end) if end else 'the end'}"


def render_text(doc: dict[str, Any], name: str, out, *, tty: bool = False, markdown: bool = False) -> None:
    """Sections with headings and aligned tables (``markdown``: Markdown tables); anomaly severities
    are coloured on a TTY only. Every value from the logs passes through the renderer's escaping."""
    from .render import escape_control, escape_markdown, render_table

    h1, h2 = ("# ", "## ") if markdown else ("", "")
    bold = (lambda s: f"\x1b[1m{s}\x1b[0m") if tty else (lambda s: s)  # noqa: E731
    if name == "inventory":
        out.write(f"{h1}{bold('Egress inventory')}\n\n")
        out.write(f"window   {inventory_span(doc)}\n\n")
        for _qname, title, table, legend in doc["_sections"]:
            out.write(f"{h2}{bold(title)}\n\n")
            if table.num_rows:
                render_table(table, "markdown" if markdown else "table", out, tty=tty)
                if legend:
                    out.write("\n" + legend_text(legend, markdown))
            else:
                out.write("(none)\n")
            out.write("\n")
        return
    w, b, findings = doc["window"], doc["baseline"], doc["findings"]
    out.write(f"{h1}{bold('Egress anomalies')}\n\n")
    brk = "  " if markdown else ""  # (a markdown line break: the two lines are one paragraph otherwise)
    out.write(f"window   {_when(w['start'])} to {_when(w['end'])}: {w['requests']} egress requests{brk}\n")
    out.write(f"baseline {_when(b['start'])} to {_when(b['end'])}: {b['requests']} egress requests ({b['source']})"
              + (f"{brk}\nnote     {b['note']}\n" if b.get("note") else "\n"))
    if markdown:
        out.write("\n")
    counts = ", ".join(f"{n} {s}" for s, n in severity_counts(findings).items() if n)
    out.write(f"{len(findings)} finding{'' if len(findings) == 1 else 's'}" + (f": {counts}" if counts else "") + "\n\n")
    if not findings:
        return
    if markdown:
        render_table(_findings_table(findings), "markdown", out)
        for f in findings:
            yaml = f["evidence"].get("service_entry") if isinstance(f["evidence"], dict) else None
            if yaml:
                out.write(f"\n{h2}ServiceEntry for {escape_markdown(str(f['destination']))}\n\n```yaml\n"
                          f"{escape_control(yaml).replace(chr(92) + 'n', chr(10)).replace('```', '')}\n```\n")
        return
    for f in findings:
        sev = f["severity"].upper()
        label = f"{_COLOURS[f['severity']]}{sev:<8}\x1b[0m" if tty else f"{sev:<8}"
        src = escape_control(str(f["source"])) if f["source"] is not None else "-"
        dst = escape_control(str(f["destination"])) if f["destination"] is not None else "-"
        out.write(f"{label} {f['kind']:<19} {src} -> {dst}\n")
        out.write(f"         {escape_control(_evidence_text(f['evidence']))}\n")
        out.write(f"         {escape_control(str(f['advice']))}\n")
        yaml = f["evidence"].get("service_entry") if isinstance(f["evidence"], dict) else None
        if yaml:
            for line in yaml.split("\n"):
                out.write(f"           {escape_control(line)}\n")
        out.write("\n")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file and a rename (DESIGN.md: atomic)."""
    from .render import atomic_file

    with atomic_file(path, "x", encoding="utf-8", newline="") as f:  # (a path it cannot write: one line)
        f.write(text)
