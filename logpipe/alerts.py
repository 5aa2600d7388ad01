"""Live alert rules for ``logpipe stream``: what is worth telling an operator on the spot.

What a row *means* is judged by the SQL in ``queries/`` (DESIGN.md principle 3), run by DuckDB on
each micro-batch (``db.connect(tables=…)``):

- ``queries/views/egress.sql`` gives each egress row its ``destination`` and ``egress_kind``
  (``blocked``, ``passthrough``, ``registered``, ``waypoint``, ``public_ip``);
- ``queries/anomalies/authz_denial.sql`` finds RBAC / ext_authz denials and ztunnel's policy
  rejections (run only when a cheap pre-check sees a candidate row in the batch);
- ``queries/anomalies/error_spike.sql`` supplies the response flags that count as failures.

The anomaly queries themselves compare a window against a baseline over the whole dataset; a live
alert instead needs state that survives from one micro-batch to the next (destinations already
known, the last alert per rule and destination, recent failures per destination), and running the
heavier queries per batch costs up to a second each. So this module keeps that state and raises:

- ``new_destination``      an egress destination never seen in the dataset (loaded at start through
                           the same ``egress`` view) nor earlier in the stream: once; as in
                           new_destination.sql, a blocked row is no new egress and does not make its
                           destination known (an allowed request to it later is new);
- ``unregistered_egress``  ``egress_kind = 'passthrough'`` (no ServiceEntry, ALLOW_ANY): once per
                           destination per window;
- ``blocked_attempt``      ``egress_kind = 'blocked'`` (BlackHoleCluster / route block_all): once per
                           destination and source per window (another workload trying is news);
- ``authz_denial``         a row of authz_denial.sql: once per destination and source per window;
- ``failure_burst``        ``burst_threshold`` failures (5xx or a failure flag) of one egress
                           destination within the window, by event time: once per window;
- ``destination_scan``     one source reaching SCAN_DESTINATIONS new destinations that are IP addresses
                           within the window (a scan; blocked ones count): once per source per window,
                           and its further new destinations raise no ``new_destination``,
                           ``unregistered_egress`` or ``blocked_attempt`` alerts in that window (a scan of
                           1,000 IPs was 2,000 alerts).
"""
from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import json
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Iterable

import polars as pl
import pyarrow as pa

KINDS = ("new_destination", "unregistered_egress", "blocked_attempt", "authz_denial", "failure_burst",
         "destination_scan")
SCAN_DESTINATIONS = 10  # new IP destinations of one source within the window that make a scan
EPOCH = "1970-01-01T00:00:00Z"  # as `since` of an anomaly query: the whole micro-batch is the window
ROWS_SQL = """
SELECT line_number, start_time, source, destination, destination_port, egress_kind, source_ip,
       upstream_cluster, route_name, response_code, response_flags, method, path,
       blocked_by(upstream_cluster, route_name) AS blocked_by
FROM egress
ORDER BY line_number
"""
# Where a denial finding's first row is (authz_denial.sql names no line): its alert's `(<stdin>:N)`.
DENIAL_LINES_SQL = """
SELECT source_ip, destination, start_time, request_id, source, line_number
FROM traffic
ORDER BY line_number
"""
# (a blocked row makes no destination known, as in new_destination.sql: it was not reached)
KNOWN_SQL = "SELECT DISTINCT destination FROM egress WHERE destination IS NOT NULL AND egress_kind <> 'blocked'"
# Past this many entries the dedup maps forget entries whose window has passed (bounded memory).
MAX_STATE = 100_000
# failure_burst keeps each destination's recent failure times, sorted by event time, at most this many
# (the earliest go first), and at most MAX_FAILURE_TIMES over all destinations (past it, each keeps
# its latest burst_threshold - 1): memory stays bounded however long the stream runs.
FAILURE_TIMES = 1_000
MAX_FAILURE_TIMES = 200_000


@dataclass
class Alert:
    kind: str
    destination: str
    time: dt.datetime | None  # event time of the evidence (UTC)
    message: str
    count: int = 1
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        from .jsonout import to_jsonable

        return to_jsonable({"time": self.time, "kind": self.kind, "destination": self.destination,
                            "count": self.count, "message": self.message, "evidence": self.evidence})

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=True, separators=(",", ":"))

    def to_text(self) -> str:
        from .jsonout import to_jsonable
        from .render import escape_control

        when = to_jsonable(self.time) if self.time else "-"
        ln = self.evidence.get("line_number")
        where = f" ({self.evidence.get('source')}:{ln})" if ln else ""
        return escape_control(f"alert {when} {self.kind} {self.destination}: {self.message}{where}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _name_key(name: str) -> tuple:
    """Destinations in order: IP addresses by number (203.0.113.2 before 203.0.113.10), then names."""
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return (1, 0, 0, name)
    return (0, ip.version, int(ip), name)


def _request(row: dict) -> str:
    """``GET /ip 200 UF,URX`` or ``TCP 0 UH``: what the line says happened."""
    what = f"{row['method']} {row.get('path') or ''}".strip() if row.get("method") else "TCP"
    flags = ",".join(row.get("response_flags") or [])
    code = row.get("response_code") or None  # 0 on TCP lines
    return " ".join(str(x) for x in (what, code, flags) if x not in (None, ""))


SHOW_SOURCES = 3  # sources named in an alert's text (the rest counted)
EVIDENCE_SOURCES = 20  # sources, with their requests, in its ndjson evidence


def _sources_by(rows: pl.DataFrame, key: str = "destination") -> dict[str, list[tuple[str, int]]]:
    """Per ``key`` value: its rows' source IPs (``?`` when unlogged) with their rows, most first."""
    out: dict[str, list[tuple[str, int]]] = {}
    for k, ip, n in rows.group_by(key, pl.col("source_ip").fill_null("?")).len().iter_rows():
        out.setdefault(k, []).append((ip, n))
    for pairs in out.values():
        pairs.sort(key=lambda p: (-p[1], _name_key(p[0])))  # (10.244.2.9 before 10.244.2.10)
    return out


def _from(sources: list[tuple[str, int]], row: dict) -> tuple[str, dict]:
    """``from 10.244.2.21, GET /x 200`` for one source; for several, ``from 6 sources (a ×3, b, c and 3
    more); first from a, GET /x 200``: one line, bounded. And the evidence: every source (up to
    EVIDENCE_SOURCES) with its requests, and how many there were."""
    if len(sources) <= 1:
        return f"from {row.get('source_ip') or '?'}, {_request(row)}", {}
    names = ", ".join(ip if n == 1 else f"{ip} ×{n}" for ip, n in sources[:SHOW_SOURCES])
    more = f" and {len(sources) - SHOW_SOURCES} more" if len(sources) > SHOW_SOURCES else ""
    text = f"from {len(sources)} sources ({names}{more}); first from {row.get('source_ip') or '?'}, {_request(row)}"
    return text, {"source_count": len(sources), "sources": dict(sources[:EVIDENCE_SOURCES])}


def _evidence(row: dict, **more) -> dict:
    keys = ("source", "line_number", "start_time", "source_ip", "destination_port", "egress_kind", "method",
            "path", "response_code", "response_flags", "upstream_cluster", "route_name")
    out = {k: row.get(k) for k in keys if row.get(k) not in (None, [], "")}
    out.update(more)
    return out


def _denial_lines(findings: list[dict], rows: list[dict]) -> None:
    """Give each authz_denial finding the input and line number of its first denial (``input``,
    ``line_number``): the row of its source, destination and first_seen time, the one of its first
    sample request id if several share that time."""
    at: dict[tuple, list[dict]] = {}
    for r in rows:
        at.setdefault((r["source_ip"], r["destination"], r["start_time"]), []).append(r)
    for f in findings:
        ev = f.get("evidence") or {}
        rows_at = at.get((f.get("source"), f.get("destination"), ev.get("first_seen")))
        if not rows_at:
            continue
        ids = ev.get("sample_request_ids") or []
        row = next((r for r in rows_at if ids and r["request_id"] == ids[0]), rows_at[0])
        f["input"], f["line_number"] = row["source"], row["line_number"]


def denial_candidates(records: pa.RecordBatch | pa.Table) -> bool:
    """Cheap pre-check: could authz_denial.sql find anything in this batch?"""
    df = pl.from_arrow(records)
    details = pl.concat_str([pl.col("response_code_details").fill_null(""),
                             pl.col("connection_termination_details").fill_null("")], separator=" ")
    hit = details.str.contains("rbac_access_denied", literal=True) | details.str.contains("ext_authz", literal=True) | (
        pl.col("response_flags").list.contains("UAEX").fill_null(False)) | (
        pl.col("error").str.contains("(?i)due to policy").fill_null(False))  # (ztunnel_denial.sql decides)
    return bool(df.select(hit.any()).item())


def is_failure(failure_flags: list[str]) -> pl.Expr:
    """Whether an egress row is a failure for ``failure_burst``: error_spike's rule, in polars (the
    stream's rows are a polars frame, out of reach of a DuckDB macro): queries/views/is_failure.sql
    (a 5xx, or one of ``failure_flags``, error_spike's default; false, not null, when neither is
    logged) on a row that is not blocked (error_spike's ``egress_kind <> 'blocked'``: a blocked
    attempt is blocked_attempt's alert). tests/test_failures.py checks the two agree."""
    return (pl.col("egress_kind") != "blocked") & (
        (pl.col("response_code") >= 500).fill_null(False)
        | pl.col("response_flags").list.eval(pl.element().is_in(failure_flags)).list.any().fill_null(False))


class AlertRules:
    """Evaluate the live rules batch after batch. ``known`` holds destinations already in the dataset."""

    def __init__(self, known: Iterable[str] = (), *, settings=None, window_seconds: float = 300.0,
                 burst_threshold: int = 5):
        from .queries import failure_flags, load_queries

        self.known: set[str] = set(known)
        self.settings = settings
        self.window = dt.timedelta(seconds=window_seconds)
        self.burst_threshold = max(1, burst_threshold)
        queries = load_queries()
        self._authz = queries["authz_denial"]
        self.failure_flags = failure_flags()
        self._last: dict[tuple[str, str], dt.datetime] = {}
        self._failures: dict[str, list[dt.datetime]] = {}  # per destination: failure times, sorted
        self._failure_times = 0  # their total
        self._fresh: dict[str, deque] = {}  # per source: times and names of its last new destinations
        self._tried: set[str] = set()  # destinations new to the dataset that this stream saw only blocked
        self.raised = 0

    def check(self, records: pa.RecordBatch | pa.Table) -> list[Alert]:
        from . import db
        from .queries import run_query

        if records.num_rows == 0:
            return []
        con = db.connect(tables={"records": records}, settings=self.settings, threads=1, sandbox=True)
        try:
            rows = pl.from_arrow(run_query(con, ROWS_SQL))
            denials = run_query(con, self._authz, {"since": EPOCH}).to_pylist() if denial_candidates(records) else []
            if denials:
                _denial_lines(denials, run_query(con, DENIAL_LINES_SQL).to_pylist())
        finally:
            con.close()
        now = dt.datetime.now(dt.timezone.utc)
        alerts: list[Alert] = []
        if rows.height:
            rows = rows.with_columns(pl.col("start_time").fill_null(now), pl.col("destination").fill_null("-"))
            alerts += self._new_destinations(rows)
            alerts += self._once_per_window(rows.filter(pl.col("egress_kind") == "passthrough"), "unregistered_egress")
            alerts += self._once_per_window(rows.filter(pl.col("egress_kind") == "blocked"), "blocked_attempt")
            alerts += self._bursts(rows)
        alerts += self._denials(denials, now)
        alerts.sort(key=lambda a: (a.time or now, KINDS.index(a.kind)))
        self.raised += len(alerts)
        self._prune()
        return alerts

    # ---- rules -------------------------------------------------------------------------------------

    def _due(self, kind: str, dest: str, t: dt.datetime) -> bool:
        last = self._last.get((kind, dest))
        if last is not None and abs(t - last) < self.window:
            return False
        self._last[(kind, dest)] = t
        return True

    def _new_destinations(self, rows: pl.DataFrame) -> list[Alert]:
        # Like new_destination.sql: a blocked row is not new egress, and does not make its destination
        # known (an allowed request to it later is new); only the scan counts it (once).
        fresh = rows.filter(~pl.col("destination").is_in(list(self.known)) & (pl.col("destination") != "-"))
        out = []
        if fresh.height == 0:
            return out
        allowed = fresh.filter(pl.col("egress_kind") != "blocked")
        self.known.update(allowed["destination"].unique().to_list())
        counts = dict(allowed.group_by("destination").len().iter_rows())
        sources = _sources_by(allowed)
        first = {r["destination"]: r for r in allowed.unique("destination", keep="first", maintain_order=True)
                 .iter_rows(named=True)}
        for row in fresh.unique("destination", keep="first", maintain_order=True).iter_rows(named=True):
            dest = row["destination"]
            if dest in self._tried:  # (blocked earlier in this stream: no new address for a scan)
                scan = [] if self._scanning(row.get("source_ip"), row["start_time"]) else None
            else:
                scan = self._scan(row, dest)  # (blocked ones too: a scan where the mesh allows only registered hosts)
                if dest not in first:
                    self._tried.add(dest)
            if dest in first:
                self._tried.discard(dest)  # (known now)
            if scan is not None:
                out += scan
                continue
            if dest not in first:  # only blocked rows
                continue
            row, n = first[dest], counts[dest]
            port = f":{row['destination_port']}" if row.get("destination_port") else ""
            who, more = _from(sources[dest], row)
            msg = (f"first {row['egress_kind']} egress to a destination not seen before{port and ' (port ' + port[1:] + ')'}"
                   f"; {_plural(n, 'request')} {who}")
            out.append(Alert("new_destination", dest, row["start_time"], msg, n, _evidence(row, **more)))
        return out

    def _scan(self, row: dict, dest: str) -> list[Alert] | None:
        """None when the row's source is not scanning; else the destination_scan alert it raises now
        (when it has just reached SCAN_DESTINATIONS new destinations in the window), if any."""
        src, t = row.get("source_ip"), row["start_time"]
        if not src:  # (a format that logs no client address: one source would be every client)
            return None
        if _name_key(dest)[0]:  # (a host name: a workload calling ten APIs by name is no scan)
            return None
        recent = self._fresh.setdefault(src, deque(maxlen=SCAN_DESTINATIONS))
        recent.append((t, dest))
        if len(recent) < SCAN_DESTINATIONS or max(x for x, _ in recent) - min(x for x, _ in recent) > self.window:
            return None
        if not self._due("destination_scan", src, t):
            return []
        names = sorted({d for _, d in recent}, key=_name_key)
        secs = (max(x for x, _ in recent) - min(x for x, _ in recent)).total_seconds()
        msg = (f"{src} reached {len(names)} IP addresses not seen before within {secs:.0f}s "
               f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}): a scan? Its further new destinations "
               f"raise no alert for {self.window.total_seconds():.0f}s")
        return [Alert("destination_scan", dest, t, msg, len(names), _evidence(row, destinations=names))]

    def _scanning(self, src: str | None, t: dt.datetime) -> bool:
        last = self._last.get(("destination_scan", src)) if src else None
        return last is not None and abs(t - last) < self.window

    def _once_per_window(self, rows: pl.DataFrame, kind: str) -> list[Alert]:
        if rows.height == 0:
            return []
        # blocked attempts: per destination and source (another workload trying is news)
        key = ["destination", "source_ip"] if kind == "blocked_attempt" else ["destination"]
        counts = {tuple(k): n for *k, n in rows.group_by(key).len().iter_rows()}
        sources = _sources_by(rows) if kind == "unregistered_egress" else {}
        out = []
        for row in rows.unique(key, keep="first", maintain_order=True).iter_rows(named=True):
            dest, t, n = row["destination"], row["start_time"], counts[tuple(row[k] for k in key)]
            if self._scanning(row.get("source_ip"), t):  # (the scan's alert said it)
                continue
            if not self._due(kind, " ".join(str(row[k]) for k in key), t):
                continue
            if kind == "blocked_attempt":
                by = row.get("blocked_by")  # (blocked_by.sql: BlackHoleCluster, a route, or no route)
                by = f"route {by}" if by is not None and by == row.get("route_name") else by
                msg = f"{_plural(n, 'attempt')} blocked by {by}; from {row.get('source_ip') or '?'}, {_request(row)}"
                more = {}
            else:  # (per destination: name its sources)
                who, more = _from(sources[dest], row)
                msg = f"{_plural(n, 'request')} through {row.get('upstream_cluster')} (no ServiceEntry){' ' if more else '; '}{who}"
            out.append(Alert(kind, dest, t, msg, n, _evidence(row, **more)))
        return out

    def _bursts(self, rows: pl.DataFrame) -> list[Alert]:
        failing = rows.filter(is_failure(self.failure_flags))
        out = []
        n = self.burst_threshold
        for row in failing.iter_rows(named=True):
            dest, t = row["destination"], row["start_time"]
            times = self._failures.setdefault(dest, [])
            i = bisect.bisect_right(times, t)
            times.insert(i, t)
            self._failure_times += 1
            if len(times) > FAILURE_TIMES:  # (the earliest event times go first)
                del times[0]
                self._failure_times -= 1
                i -= 1
            # By event time, whatever order the lines arrived in (several pods' lines interleave): any
            # n failures within the window that include this one. Earlier arrivals were checked when
            # they came, so a burst not raised before holds t; at most n groups of n sorted neighbours.
            group = next((times[j:j + n] for j in range(max(0, i - n + 1), min(i, len(times) - n) + 1)
                          if times[j + n - 1] - times[j] <= self.window), None)
            if group is None or not self._due("failure_burst", dest, t):
                continue
            secs = (group[-1] - group[0]).total_seconds()
            msg = f"{n} failures within {secs:.0f}s; last from {row.get('source_ip') or '?'}, {_request(row)}"
            out.append(Alert("failure_burst", dest, t, msg, n, _evidence(row)))
        return out

    def _denials(self, findings: list[dict], now: dt.datetime) -> list[Alert]:
        out = []
        for f in findings:
            ev = f.get("evidence") or {}
            dest = f.get("destination") or "-"
            t = ev.get("first_seen") or now
            if not self._due("authz_denial", f"{dest} {f.get('source')}", t):  # (per source, as blocked attempts)
                continue
            n = ev.get("denials") or 1
            by = "policy " + ", ".join(ev.get("policies") or []) if ev.get("policies") else ev.get("mechanism", "policy")
            msg = f"{_plural(n, 'request')} from {f.get('source') or '?'} denied by {by}"
            # (as the other alerts' evidence: its first line's input and number, then the source IP)
            where = {"source": f.get("input"), "line_number": f.get("line_number")}
            evidence = {k: v for k, v in where.items() if v is not None} | {"source_ip": f.get("source")} | ev
            out.append(Alert("authz_denial", dest, t, msg, n, evidence))
        return out

    def _prune(self) -> None:
        if len(self._last) > MAX_STATE:
            newest = max(self._last.values())
            self._last = {k: v for k, v in self._last.items() if newest - v < self.window}
        if len(self._failures) > MAX_STATE or self._failure_times > MAX_FAILURE_TIMES:
            keep = self.burst_threshold - 1  # (the latest ones: a burst still needs n failures)
            self._failures = {k: v[-keep:] for k, v in self._failures.items() if len(v) > 1 and keep}
            self._failure_times = sum(len(v) for v in self._failures.values())
        if len(self._tried) > MAX_STATE:  # (only a scan's count of a blocked address twice is at stake)
            self._tried.clear()
        if len(self._fresh) > MAX_STATE:
            newest = max(v[-1][0] for v in self._fresh.values())
            self._fresh = {k: v for k, v in self._fresh.items() if newest - v[-1][0] < self.window}


def known_destinations(data_dir, settings=None) -> set[str]:
    """Egress destinations already in the dataset (the ``egress`` view's ``destination``)."""
    from . import db
    from .errors import DatasetError
    from .queries import run_query

    with db.reading(data_dir):
        try:
            con = db.connect(data_dir, settings=settings, sandbox=True)
        except DatasetError:  # no rows yet: everything is new
            return set()
        try:
            return set(run_query(con, KNOWN_SQL).column(0).to_pylist())
        finally:
            con.close()


class AlertWriter:
    """Alerts as text lines (stderr) or ndjson (a file or stdout); ``None`` output: counted only."""

    def __init__(self, out: IO[str] | None, fmt: str = "text"):
        self.out = out
        self.fmt = fmt
        self.written = 0

    def write(self, alerts: list[Alert]) -> None:
        self.written += len(alerts)
        if self.out is None or not alerts:
            return
        render = Alert.to_json if self.fmt == "ndjson" else Alert.to_text
        self.out.write("".join(render(a) + "\n" for a in alerts))
        self.out.flush()
