"""Live alert rules for ``logpipe stream``: what is worth telling an operator on the spot.

What a row *means* is judged by the SQL in ``queries/`` (DESIGN.md principle 3), run by DuckDB on
each micro-batch (``db.connect(tables=…)``):

- ``queries/views/egress.sql`` gives each egress row its ``destination`` and ``egress_kind``
  (``blocked``, ``passthrough``, ``registered``, ``waypoint``, ``public_ip``);
- ``queries/views/denials.sql`` gives the RBAC / ext_authz denials and ztunnel's policy rejections,
  one row per request, as the ``authz_denial`` report reads them (read only when a cheap pre-check
  sees a candidate row in the batch);
- ``queries/anomalies/error_spike.sql`` supplies the response flags that count as failures.

The anomaly queries themselves compare a window against a baseline over the whole dataset; a live
alert instead needs state that survives from one micro-batch to the next (destinations already
known, the last alert per rule and destination, recent failures per destination), and running the
heavier queries per batch costs up to a second each. So this module keeps that state and applies
the rules row after row, in line order: the alerts are the same however the lines are cut into
micro-batches. An alert's ``count`` is the rows of its key (destination, or destination and source)
since its last alert, its own row included: those the window kept quiet, then it. It raises:

- ``new_destination``      an egress destination never seen in the dataset (loaded at start through
                           the same ``egress`` view) nor earlier in the stream: once; as in
                           new_destination.sql, a blocked row is no new egress and does not make its
                           destination known (an allowed request to it later is new), nor does one
                           the proxy made no upstream connection for (``upstream_connected`` false:
                           UF, UH, DF, …): its first such row is told once, as tried and never
                           reached, and its first connected row after it again, as reached;
- ``unregistered_egress``  ``egress_kind = 'passthrough'`` (no ServiceEntry, ALLOW_ANY): once per
                           destination per window; a request answered DF (DNS resolution failed)
                           says so instead of "no ServiceEntry";
- ``blocked_attempt``      ``egress_kind = 'blocked'`` (BlackHoleCluster / route block_all): once per
                           destination and client per window (another workload trying is news);
- ``authz_denial``         a row of authz_denial.sql: once per destination and client per window (the
                           two nodes' lines of one ztunnel refusal one denial across checks too:
                           PAIR_SECONDS);
- ``failure_burst``        ``burst_threshold`` failures (error_spike's: a 5xx, a failure flag, or a
                           connection ztunnel logged with an error not a policy's) of one egress
                           destination within the window, by event time: once per window;
- ``destination_scan``     one source reaching SCAN_DESTINATIONS new destinations that are IP addresses
                           within the window (a scan; blocked ones count): once per source per window,
                           and its further new destinations raise no ``new_destination``,
                           ``unregistered_egress`` or ``blocked_attempt`` alerts in that window (a scan of
                           1,000 IPs was 2,000 alerts).

A client is named as the reports name it (client_named.sql): its workload where ``--pods`` or ztunnel's
lines (the dataset's, and the stream's so far: ``seen``) name it, else its IP; blocked_attempt and
authz_denial, one client's, as the report's findings of those kinds, give it as ``source`` with its
``source_ips`` in their JSON.
"""
from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import json
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import IO, Iterable

import polars as pl
import pyarrow as pa

from .batches import plural

KINDS = ("new_destination", "unregistered_egress", "blocked_attempt", "authz_denial", "failure_burst",
         "destination_scan")
SCAN_DESTINATIONS = 10  # new IP destinations of one source within the window that make a scan
# failing: a failure for failure_burst, error_spike's rule (queries/views/is_failure.sql, with the
# same failure_flags, on a row that is not blocked: a blocked attempt is blocked_attempt's alert);
# tests/test_failures.py runs the same cases through both.
ROWS_SQL = """
SELECT line_number, start_time, source, pod, destination_named(destination) AS destination,
       destination IS NULL AS unnamed, destination_port, egress_kind, source_ip,
       client_named(source_workload, source_ip) AS client, upstream_cluster, route_name, response_code, response_flags, method, path, error,
       blocked_by(upstream_cluster, route_name, method, response_code, response_code_details, response_flags) AS blocked_by,
       egress_kind <> 'blocked' AND is_failure(response_code, response_flags, $failure_flags, error) AS failing,
       upstream_connected, dns_failed(response_flags) AS dns_failed,
       authz_denied(response_code_details, connection_termination_details, response_flags, error) AS denied
FROM egress
ORDER BY line_number
"""
DENIALS_SQL = """
SELECT line_number, start_time, source, pod, source_ip, client_named(source_workload, source_ip) AS client,
       destination_named(destination) AS destination, destination_port, method, path, response_code,
       response_flags, mechanism, policy, downstream_remote_address_ip AS client_ip,
       downstream_local_address AS dialled
FROM denials
ORDER BY line_number
"""
# One connection ztunnel's policy refused is two lines when both nodes' ztunnels are read, the client's
# 401 and the destination's inbound refusal, which denials.sql pairs into one denial (same client IP and
# address dialled, within 2 s): in a stream the two land in different checks when `kubectl logs -f`
# prints each node's on its own schedule, and were two denials, counted twice. A check's denials are
# read over its candidate rows and the ztunnel candidate lines of the checks before it kept for
# PAIR_SECONDS of event time (the newest such line's; 2 s the pairing reaches, and as much again for
# the other node's lines arriving behind; dropped once twice that old), at most PAIR_ROWS of them, the
# oldest dropped first: each (client IP, address dialled) counts the denials its lines make now less
# those counted already (PAIRED_SQL counts those of the lines left after a drop, when a key's lines were
# cut). A check per line of one client refused twice a second, both nodes' lines: 155 → 178 ms a check.
PAIR_SECONDS = 4
PAIR_ROWS = 10_000
PAIRED_SQL = """
SELECT downstream_remote_address_ip AS client_ip, downstream_local_address AS dialled, count(*) AS denials
FROM denials
GROUP BY ALL
"""
# The dataset's destinations (but those only blocked), and whether it reached each (a destination only
# tried without an upstream connection is not known: new_destination.sql's baseline_destinations)
KNOWN_SQL = ("SELECT destination, bool_or(upstream_connected) AS reached FROM egress"
             " WHERE destination IS NOT NULL AND egress_kind <> 'blocked' GROUP BY destination")
# The clients ztunnel's lines name (reports.ZTUNNEL_SEEN's rows: IP, workload, first and last seen),
# those the stream has seen (logpipe_seen: the dataset's at its start, and its lines') and a check's
# rows' own, one row per IP and workload: the check's rows, and the next checks', name their clients by
# them as a report names its rows' (reports.attach_sources), a check's own lines each other's too.
SEEN_SQL = """
SELECT ip, workload, min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM (SELECT ip, workload, first_seen, last_seen FROM logpipe_seen UNION ALL ({batch}))
GROUP BY ALL
"""
# Sightings (SEEN_SQL's rows: one per IP and ztunnel's pod name, so one per pod a node ran, not per
# line) kept at most: past it, those last seen longest ago (event time) go, down to 3/4 of it. They grew
# with pod churn for as long as the stream ran (a CronJob a minute: 1,440 pods a day), and each check
# with a ztunnel line aggregates them all again: 50,000 sightings are 3.3 MB, 56 ms a check (100,000:
# 6.6 MB, 91 ms; 200,000: 13 MB, 200 ms; the cut to 3/4, 27 ms, once per 12,500 new ones). A client
# whose every sighting went is named by its IP; an IP's older holder gone, its newer one names its rows
# however old (reports.ZTUNNEL_SOURCES: from its first sighting back).
SEEN_ROWS = 50_000
# The dataset's sightings a stream starts with: those last seen latest, in _latest_seen's order, read
# by DuckDB's top-N (it read them all, then cut them: a big dataset's every sighting in memory at once).
LATEST_SEEN_SQL = "SELECT * FROM ({seen}) ORDER BY last_seen DESC, ip, workload LIMIT $rows"
SEEN_SCHEMA = pa.schema([("ip", pa.string()), ("workload", pa.string()),
                         ("first_seen", pa.timestamp("us", tz="UTC")), ("last_seen", pa.timestamp("us", tz="UTC"))])
# What applied a denial (denials.sql's mechanism), named in its alert before the policy, as the
# authz_denial report's advice names each: RBAC's ns[NS]-policy[NAME]-rule[N] and ztunnel's NS/NAME
# are both AuthorizationPolicies, told apart by what enforced them.
DENIED_BY = {"rbac": "AuthorizationPolicy (Envoy RBAC)", "ztunnel policy": "AuthorizationPolicy (ztunnel)",
             "ext_authz": "ext_authz"}
# Alert spans kept per kind and key (by event time): an event near any alert raises none. Alerts less
# than two windows apart are one span (every event between them is within the window of one of them),
# so steady traffic is one span however long the stream runs. Past ALERT_SPANS spans the two closest
# are joined (the events of the gap between them quiet, counted by the next alert), none forgotten:
# the earliest of 64 alert times was forgotten, so a pod's backlog that came after another pod's 7 hours
# of passthrough lines raised an alert at each event near a forgotten time (96, one a minute; now none).
ALERT_SPANS = 64
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
    # An alert of one client (blocked_attempt, authz_denial, as the report's findings of those kinds):
    # the client as the reports name it (its workload where --pods or ztunnel's lines name it, else
    # its IP), and the IPs of the requests it counts.
    source: str | None = None
    source_ips: list[str] | None = None

    def as_dict(self) -> dict:
        from .jsonout import to_jsonable

        who = {"source": self.source, "source_ips": self.source_ips} if self.source is not None else {}
        return to_jsonable({"time": self.time, "kind": self.kind, "destination": self.destination, **who,
                            "count": self.count, "message": self.message, "evidence": self.evidence})

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=True, separators=(",", ":"))

    def to_text(self) -> str:
        from .jsonout import to_jsonable
        from .render import escape_control

        when = to_jsonable(self.time) if self.time else "-"
        ln = self.evidence.get("line_number")
        pod = self.evidence.get("pod")  # (kubectl --prefix: which of several pods printed the line)
        where = f" ({self.evidence.get('input')}:{ln}{f', pod {pod}' if pod else ''})" if ln else ""
        return escape_control(f"alert {when} {self.kind} {self.destination}: {self.message}{where}")


def _first(span: list) -> dt.datetime:
    return span[0]


def _last(span: list) -> dt.datetime:
    return span[1]


def _stamp(t: dt.datetime) -> str:
    from .jsonout import to_jsonable

    return to_jsonable(t)


def _name_key(name: str) -> tuple:
    """Destinations in order: IP addresses by number (203.0.113.2 before 203.0.113.10), then names."""
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return (1, 0, 0, name)
    return (0, ip.version, int(ip), name)


def _request(row: dict) -> str:
    """``GET /ip 200 UF,URX``, ``TCP UH`` or ``TCP error "io error: deadline has elapsed"``: what the
    line says happened (ztunnel says it in its ``error``: no code or flag)."""
    what = f"{row['method']} {row.get('path') or ''}".strip() if row.get("method") else "TCP"
    flags = ",".join(row.get("response_flags") or [])
    code = row.get("response_code") or None  # 0 on TCP lines
    error = f'error "{row["error"]}"' if row.get("error") else None
    return " ".join(str(x) for x in (what, code, flags, error) if x not in (None, ""))


SHOW_SOURCES = 3  # sources named in an alert's text (the rest counted)
EVIDENCE_SOURCES = 20  # sources, with their requests, in its ndjson evidence


def _client(row: dict) -> str:
    """The row's client as an alert's sentence names it: its IP (or workload), or, when the format logs
    none, the reports' wording (client_named.sql), begun in lower case mid-sentence."""
    name = row["client"]
    return name[:1].lower() + name[1:]


def _from(sources: Counter, row: dict) -> tuple[str, dict]:
    """``from 10.244.2.21, GET /x 200`` for one source; for several, ``from 6 sources (a ×3, b, c and 3
    more); this one from a, GET /x 200``: one line, bounded. And the evidence: every source (up to
    EVIDENCE_SOURCES) with its requests, and how many there were."""
    if len(sources) <= 1:
        return f"from {_client(row)}, {_request(row)}", {}
    pairs = sorted(sources.items(), key=lambda p: (-p[1], _name_key(p[0])))  # (10.244.2.9 before 10.244.2.10)
    names = ", ".join(ip if n == 1 else f"{ip} ×{n}" for ip, n in pairs[:SHOW_SOURCES])
    more = f" and {len(pairs) - SHOW_SOURCES} more" if len(pairs) > SHOW_SOURCES else ""
    text = f"from {len(pairs)} sources ({names}{more}); this one from {_client(row)}, {_request(row)}"
    return text, {"source_count": len(pairs), "sources": dict(pairs[:EVIDENCE_SOURCES])}


def _evidence(row: dict, **more) -> dict:
    """The alert's row: the input it came from (the row's ``source`` column, ``--source``: ``<stdin>``) as
    ``input``, since an alert's ``source`` is its client (blocked_attempt, authz_denial: the evidence's
    ``source`` was the input beside it), its line number, pod, and what it says."""
    keys = ("line_number", "pod", "start_time", "source_ip", "destination_port", "egress_kind", "method",
            "path", "response_code", "response_flags", "upstream_cluster", "route_name")
    out = {"input": row.get("source")} if row.get("source") not in (None, "") else {}
    out.update((k, row.get(k)) for k in keys if row.get(k) not in (None, [], ""))
    out.update(more)
    return out


def denial_candidates(records: pa.RecordBatch | pa.Table) -> pa.Table:
    """Cheap pre-check: the rows of this batch the denials view could find (it decides, of these alone:
    a row's denial and its columns are the row's own)."""
    df = pl.from_arrow(records)
    details = pl.concat_str([pl.col("response_code_details").fill_null(""),
                             pl.col("connection_termination_details").fill_null("")], separator=" ")
    hit = details.str.contains("rbac_access_denied", literal=True) | details.str.contains("ext_authz", literal=True) | (
        pl.col("response_flags").list.contains("UAEX").fill_null(False)) | (
        pl.col("error").str.contains("(?i)due to policy|^http status: 401").fill_null(False))  # (ztunnel_denial.sql decides)
    table = records if isinstance(records, pa.Table) else pa.Table.from_batches([records])
    return table.filter(df.select(hit).to_series().to_arrow())


def ztunnel_lines(records: pa.RecordBatch | pa.Table) -> bool:
    """Cheap pre-check: whether ``records`` hold a ztunnel line that names its client's workload
    (reports.ZTUNNEL_SEEN decides)."""
    import pyarrow.compute as pc

    names = records.schema.names
    if "log_format" not in names or "src_workload" not in names:
        return False
    fmt = records.column("log_format")
    return bool(pc.any(pc.and_(pc.starts_with(fmt, "ztunnel"), pc.is_valid(records.column("src_workload")))).as_py())


def _latest_seen(seen: pa.Table) -> pa.Table:
    """``seen`` (SEEN_SCHEMA), past SEEN_ROWS rows its 3/4 SEEN_ROWS last seen latest."""
    import pyarrow.compute as pc

    if seen.num_rows <= SEEN_ROWS:
        return seen
    order = pc.sort_indices(seen, [("last_seen", "descending"), ("ip", "ascending"), ("workload", "ascending")])
    return seen.take(order[:SEEN_ROWS * 3 // 4])


def _pair_keys(table: pa.Table) -> list[tuple]:
    """Each line's client IP and address dialled: what denials.sql pairs a ztunnel refusal's lines by."""
    return list(zip(table.column("downstream_remote_address_ip").to_pylist(),
                    table.column("downstream_local_address").to_pylist()))


def _in_order(alerts: list[Alert], now: dt.datetime, records, runs: list[int]) -> list[Alert]:
    """``alerts`` sorted by event time (then kind), within each run of ``records`` that starts at a row
    of ``runs`` (the rows before the first: a run too), by each alert's line number."""
    def key(a: Alert):
        return (a.time or now, KINDS.index(a.kind))

    starts = records.column("line_number").take(runs).to_pylist() if any(runs) else []
    if not starts:
        return sorted(alerts, key=key)
    groups: list[list[Alert]] = [[] for _ in range(len(starts) + 1)]
    for a in alerts:  # (a stable sort of each run's alerts: as a check of its rows alone orders them)
        groups[bisect.bisect_right(starts, a.evidence.get("line_number") or 0)].append(a)
    return [a for g in groups for a in sorted(g, key=key)]


def _policy(policy: str | None) -> str:
    """The policy a denial names, after what applied it: RBAC's ns[NS]-policy[NAME]-rule[N], ztunnel's
    NS/NAME, or, for denials.sql's "none" (RBAC's ``matched_policy[none]``, ztunnel's "allow policies
    exist, but none allowed"), what it means: it read as a policy named "none"."""
    if policy == "none":
        return ": ALLOW policies exist and none matched"
    return f" {policy}" if policy else ""


def _unregistered(row: dict) -> str:
    """Why an unregistered_egress row's destination is worth telling: no ServiceEntry registers it, or,
    for a request AllowAnyDynamicDNSCluster answered DF, its name did not resolve, which no
    ServiceEntry would change (unregistered_egress.sql's DNS advice, dns_failure_advice.sql)."""
    if row.get("dns_failed"):  # (dns_failed.sql, as the report's)
        return "DNS resolution failed, flag DF: a ServiceEntry would not make it resolve"
    return "no ServiceEntry"


class AlertRules:
    """Evaluate the live rules batch after batch. ``known`` holds destinations already in the dataset,
    ``unreached`` those it only tried without an upstream connection (``seen_destinations``); ``pods``
    (``--pods FILE``, pods.load_pods) and ``seen`` (the dataset's ztunnel clients, ``seen_in_dataset``)
    name the clients, as the reports name them, with the ztunnel lines of the checks so far."""

    def __init__(self, known: Iterable[str] = (), *, unreached: Iterable[str] = (), settings=None,
                 window_seconds: float = 300.0, burst_threshold: int = 5, pods: pa.Table | None = None,
                 seen: pa.Table | None = None):
        from .queries import failure_flags

        self.known: set[str] = set(known)
        self.pods = pods
        # (SEEN_SCHEMA: one row per IP and workload, so it grows with the cluster's pods, not the lines)
        self.seen = _latest_seen(SEEN_SCHEMA.empty_table() if seen is None else seen.cast(SEEN_SCHEMA))
        self.settings = settings
        self.window = dt.timedelta(seconds=window_seconds)
        self.burst_threshold = max(1, burst_threshold)
        self.failure_flags = failure_flags()
        # per (kind, key): the spans of event time of its alerts ([first, last] alert of each), sorted,
        # at most ALERT_SPANS (several pods' lines arrive out of time order: an event is quiet near any
        # alert, not only the last one)
        self._alerted: dict[tuple[str, str], list[list[dt.datetime]]] = {}
        # rows, sources (as _client names them) and source IPs since a key's last alert
        self._quiet: dict[tuple[str, str], tuple[int, Counter, set]] = {}
        self._failures: dict[str, list[dt.datetime]] = {}  # per destination: failure times, sorted
        self._failure_times = 0  # their total
        self._fresh: dict[str, deque] = {}  # per source: times and names of its last new destinations
        self._tried: set[str] = set()  # destinations new to the dataset that this stream saw only blocked or unreached
        # those of them told as tried and never reached (new_destination), or the dataset's so
        self._unreached: set[str] = set(unreached)
        self._tried |= self._unreached
        self.raised = 0
        self._con = None  # DuckDB connection of the last schema (check)
        self._con_schema = None
        self._named = False  # (its client_workloads filled: reports.attach_sources)
        self._queries: dict[str, object] = {}  # its statements, prepared (queries.prepare_query)
        # the recent ztunnel candidate lines (PAIR_SECONDS), and the denials they made per client IP and
        # address dialled: counted already
        self._pairable: pa.Table | None = None
        self._paired: Counter = Counter()
        self._pair_newest: dt.datetime | None = None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = self._con_schema = None
            self._queries = {}

    def _name_clients(self, records) -> None:
        """Add the clients the ztunnel lines of ``records`` name to ``seen``, and, once there are any
        (or pods), have the connection's client_workloads read them: the traffic view's
        ``source_workload``, which ROWS_SQL and DENIALS_SQL name clients by. (Until then its join costs
        nothing; a batch without ztunnel lines, a pyarrow look at two columns. 200k bench lines, with a
        ztunnel line every 1,000, streamed in 6.4 s against 5.9 s, without in 5.0 against 6.4 s: noise.)"""
        from .reports import ZTUNNEL_SEEN, attach_sources

        if ztunnel_lines(records):
            self.seen = _latest_seen(
                self._run(SEEN_SQL.format(batch=ZTUNNEL_SEEN.format(access_log="access_log"))).cast(SEEN_SCHEMA))
            self._con.register("logpipe_seen", self.seen)
        if not self._named and (self.pods is not None or self.seen.num_rows):
            attach_sources(self._con, self.pods, seen="logpipe_seen")  # (statements prepared before read it too)
            self._named = True

    def _run(self, sql: str, params: dict | None = None) -> pa.Table:
        """``sql`` on the batch: prepared once per connection (its checks, views and binding: ~15 ms of
        each batch's ~50 ms). DENIALS_SQL's view is made at its first batch with a candidate row."""
        from .queries import prepare_query

        if sql not in self._queries:
            self._queries[sql] = prepare_query(self._con, sql, params)
        return self._queries[sql]()

    def check(self, records: pa.RecordBatch | pa.Table, runs: Iterable[int] = ()) -> list[Alert]:
        """The alerts ``records`` raise, in event time order; given ``runs`` (row numbers, increasing),
        in event time order within each run of rows from one to the next (a stream's checks of several
        batches: its alerts as they were in checks of each run alone)."""
        from . import db

        if records.num_rows == 0:
            return []
        # One connection for the batches of one schema (its views made once: ~0.15 s a batch before)
        if self._con is not None and self._con_schema == records.schema:
            db.replace_records(self._con, records)
        else:
            from .reports import PODS_READS

            self.close()
            self._con = db.connect(tables={"records": records}, settings=self.settings, threads=1, sandbox=True,
                                   uses=(ROWS_SQL, PODS_READS))
            self._con_schema = records.schema
            self._con.register("logpipe_seen", self.seen)
            self._named = False
        try:
            self._name_clients(records)
            rows = pl.from_arrow(self._run(ROWS_SQL, {"failure_flags": ",".join(self.failure_flags)}))
            # (the denials view reads the candidate rows alone: of 20,000 bench rows, 373; 44 → 25 ms)
            denials = []
            if (candidates := denial_candidates(records)).num_rows:
                denials = self._denied(candidates)
        finally:
            db.replace_records(self._con, records.schema.empty_table())  # (the batch's memory let go)
        now = dt.datetime.now(dt.timezone.utc)
        alerts: list[Alert] = []
        if rows.height:
            alerts += self._rows(rows.with_columns(pl.col("start_time").fill_null(now)))
        alerts += self._denials(denials, now)
        alerts = _in_order(alerts, now, records, list(runs))
        self.raised += len(alerts)
        self._prune()
        return alerts

    def _denied(self, candidates: pa.Table) -> list[dict]:
        """DENIALS_SQL's rows of the check's ``candidates`` (on the connection, with their schema) that
        count: of a (client IP, address dialled) with ztunnel lines, only as many as its denials grew
        (PAIR_SECONDS): a 401 counted in an earlier check and the inbound refusal that pairs with it now
        are one denial. Of a key's new rows, those nearest a kept line that pairs now (absorbed: counted
        already) are the ones not counted (which of them does not change the counts)."""
        import pyarrow.compute as pc

        from . import db

        kept = self._pairable
        if kept is not None and kept.schema != candidates.schema:  # (another format's columns)
            try:
                kept = kept.select(candidates.schema.names).cast(candidates.schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                kept, self._paired = None, Counter()
        fresh = candidates.filter(pc.and_(pc.starts_with(candidates.column("log_format"), "ztunnel"),
                                          pc.is_valid(candidates.column("start_time"))))
        db.replace_records(self._con, candidates if kept is None else pa.concat_tables([kept, candidates]))
        rows = self._run(DENIALS_SQL).to_pylist()
        if kept is None and not fresh.num_rows:
            return rows
        old = set(kept.column("line_number").to_pylist()) if kept is not None else set()
        new = set(fresh.column("line_number").to_pylist())
        listed = {r["line_number"] for r in rows}
        has = Counter((r["client_ip"], r["dialled"]) for r in rows if r["line_number"] in old | new)
        ours: dict[tuple, list[dict]] = {}  # (the new rows of each key)
        for r in rows:
            if r["line_number"] in new:
                ours.setdefault((r["client_ip"], r["dialled"]), []).append(r)
        absorbed: dict[tuple, list[dt.datetime]] = {}  # (kept lines paired now: with new ones)
        if kept is not None:
            for key, n, t in zip(_pair_keys(kept), kept.column("line_number").to_pylist(),
                                 kept.column("start_time").to_pylist()):
                if n not in listed:
                    absorbed.setdefault(key, []).append(t)
        skip = set()
        for key, mine in ours.items():
            due = max(0, has[key] - self._paired.get(key, 0))
            near = absorbed.get(key, [])  # (the rows nearest a kept line it absorbed go uncounted first)
            mine = sorted(mine, key=lambda r: min((abs(r["start_time"] - t) for t in near), default=dt.timedelta.max))
            skip.update(r["line_number"] for r in mine[:max(0, len(mine) - due)])
        out = [r for r in rows if r["line_number"] not in old and r["line_number"] not in skip]
        # the lines kept for the next checks: the recent ones, and the denials they make counted
        table = fresh if kept is None else pa.concat_tables([kept, fresh])
        newest = pc.max(table.column("start_time")).as_py()  # (the table holds a line: else returned above)
        self._pair_newest = newest if self._pair_newest is None else max(newest, self._pair_newest)
        # (dropped once the oldest is twice PAIR_SECONDS old, down to PAIR_SECONDS: a count of what the
        # lines left make, below, once per PAIR_SECONDS of event time at most, not every check)
        since = self._pair_newest - dt.timedelta(seconds=PAIR_SECONDS)
        recent = table
        if pc.min(table.column("start_time")).as_py() < since - dt.timedelta(seconds=PAIR_SECONDS):
            recent = table.filter(pc.greater_equal(table.column("start_time"),
                                                   pa.scalar(since, table.schema.field("start_time").type)))
        if recent.num_rows > PAIR_ROWS:  # (the oldest go first)
            recent = recent.take(pc.sort_indices(recent, [("start_time", "descending")])[:PAIR_ROWS])
        recent = recent.combine_chunks()  # (a chunk per check, empty ones too, for as long as the stream ran)
        if recent.num_rows == table.num_rows:
            self._paired = has
        else:
            left = set(_pair_keys(recent))
            numbers = set(recent.column("line_number").to_pylist())
            cut = {k for k, n in zip(_pair_keys(table), table.column("line_number").to_pylist()) if n not in numbers}
            if left & cut:  # (a key's lines on both sides: those left make the denials they make without the others)
                db.replace_records(self._con, recent)
                self._paired = Counter({(r["client_ip"], r["dialled"]): r["denials"] for r in self._run(PAIRED_SQL).to_pylist()})
            else:  # (each key's lines all left or all gone)
                self._paired = Counter({k: n for k, n in has.items() if k in left})
        self._pairable = recent if recent.num_rows else None
        return out

    # ---- rules -------------------------------------------------------------------------------------

    def _rows(self, rows: pl.DataFrame) -> list[Alert]:
        """The rules, row after row in line order, so that the alerts do not depend on how the lines
        were cut into micro-batches (a scan recognised at its 10th address quiets only what follows)."""
        # (only the rows a rule may act on go through Python: most go to known, registered hosts)
        rows = rows.filter(
            pl.col("failing") | pl.col("egress_kind").is_in(["passthrough", "blocked"])
            | ~pl.col("destination").is_in(list(self.known)))
        out: list[Alert] = []
        for row in rows.iter_rows(named=True):
            dest, kind, src, t = row["destination"], row["egress_kind"], row["source_ip"], row["start_time"]
            if not row["unnamed"] and dest not in self.known and not row["denied"]:
                # Like new_destination.sql: a blocked row is not new egress, and does not make its
                # destination known (an allowed request to it later is new); the scan counts it once.
                # A request a policy refused is authz_denial's alert alone (as new_destination.sql
                # leaves it out: one event, one finding), nor a try of the destination.
                if dest not in self._tried:
                    out += self._scan(row, dest)  # (blocked ones too: a scan where the mesh allows only registered hosts)
                port = f" (port {row['destination_port']})" if row.get("destination_port") else ""
                if kind == "blocked":
                    self._tried.add(dest)
                elif row.get("upstream_connected") is False:  # (tried, nothing left: told once, not known)
                    self._tried.add(dest)
                    if dest not in self._unreached and not self._scanning(src, t):
                        self._unreached.add(dest)
                        msg = (f"first {kind} egress attempt to a destination not seen before{port}, never reached: "
                               f"the proxy made no upstream connection; from {_client(row)}, {_request(row)}")
                        out.append(Alert("new_destination", dest, t, msg, 1, _evidence(row)))
                else:
                    self._tried.discard(dest)
                    self.known.add(dest)
                    if not self._scanning(src, t):  # (the scan's alert said it)
                        tried = " (tried before without connecting)" if dest in self._unreached else ""
                        msg = (f"first {kind} egress to a destination not seen before{port}{tried}; "
                               f"from {_client(row)}, {_request(row)}")
                        out.append(Alert("new_destination", dest, t, msg, 1, _evidence(row)))
                    self._unreached.discard(dest)
            if kind == "passthrough":
                out += self._once_per_window(row, "unregistered_egress", dest)
            elif kind == "blocked" and not row["denied"]:  # per destination and client (another workload
                # trying is news); a CONNECT a policy refused is authz_denial's alert alone, as blocked_attempt.sql
                # leaves it out
                out += self._once_per_window(row, "blocked_attempt", self._client_key("blocked_attempt", row))
            if row["failing"]:
                out += self._burst(row)
        return out

    def _near(self, kind: str, key: str, t: dt.datetime) -> bool:
        """Whether an alert of ``kind`` for ``key`` was raised for an event within the window of ``t``,
        before or after it (by event time: a pod's backlog may arrive after another's later lines)."""
        spans = self._alerted.get((kind, key))
        if not spans:
            return False
        i = bisect.bisect_right(spans, t, key=_first)  # (spans[i - 1] starts at or before t, spans[i] after)
        return (i > 0 and t - spans[i - 1][1] < self.window) or (i < len(spans) and spans[i][0] - t < self.window)

    def _before(self, kind: str, key: str, t: dt.datetime) -> dt.datetime | None:
        """The event time of the last alert of ``kind`` for ``key`` before ``t``, if any (``t`` due:
        in no span, so the last alert before it ends a span)."""
        spans = self._alerted.get((kind, key))
        i = bisect.bisect_left(spans, t, key=_last) if spans else 0
        return spans[i - 1][1] if i else None

    def _due(self, kind: str, key: str, t: dt.datetime) -> bool:
        if self._near(kind, key, t):
            return False
        spans = self._alerted.setdefault((kind, key), [])
        i = bisect.bisect_right(spans, t, key=_first)
        join = 2 * self.window  # (alerts closer than this: every event between is near one)
        if i > 0 and t - spans[i - 1][1] < join:
            i -= 1
            spans[i][1] = t
        elif i < len(spans) and spans[i][0] - t < join:
            spans[i][0] = t
        else:
            spans.insert(i, [t, t])
        if i + 1 < len(spans) and spans[i + 1][0] - spans[i][1] < join:
            spans[i][1] = spans.pop(i + 1)[1]
        if len(spans) > ALERT_SPANS:  # (the two closest joined: the least time made quiet)
            j = min(range(len(spans) - 1), key=lambda j: spans[j + 1][0] - spans[j][1])
            spans[j][1] = spans.pop(j + 1)[1]
        return True

    def _alert_due(self, kind: str, key: str, row: dict, t: dt.datetime, quiet: bool = False):
        """None when an alert of ``kind`` for ``key`` is not due at ``t`` (or ``quiet``: a scan's alert
        said it): the row is counted by the next one. Else the alert's count (the rows of ``key``
        since its last alert, this one included), their sources, their IPs (sorted), and the words that
        say since when."""
        last = self._before(kind, key, t)
        n, sources, ips = self._quiet.pop((kind, key), (0, Counter(), set()))
        sources[_client(row)] += 1
        if row.get("source_ip"):
            ips.add(row["source_ip"])
        if quiet or not self._due(kind, key, t):
            self._quiet[(kind, key)] = (n + 1, sources, ips)
            return None
        return n + 1, sources, sorted(ips, key=_name_key), f" since its last alert ({_stamp(last)})" if last else ""

    def _scan(self, row: dict, dest: str) -> list[Alert]:
        """The destination_scan alert ``row`` raises: when its source has just reached SCAN_DESTINATIONS
        new destinations in the window (and raised none in the window before)."""
        src, t = row.get("source_ip"), row["start_time"]
        if not src:  # (a format that logs no client address: one source would be every client)
            return []
        if _name_key(dest)[0]:  # (a host name: a workload calling ten APIs by name is no scan)
            return []
        recent = self._fresh.setdefault(src, deque(maxlen=SCAN_DESTINATIONS))
        recent.append((t, dest))
        if len(recent) < SCAN_DESTINATIONS or max(x for x, _ in recent) - min(x for x, _ in recent) > self.window:
            return []
        if not self._due("destination_scan", src, t):
            return []
        names = sorted({d for _, d in recent}, key=_name_key)
        secs = (max(x for x, _ in recent) - min(x for x, _ in recent)).total_seconds()
        who = src if row["client"] == src else f"{row['client']} ({src})"  # (a scan is one pod's: its IP too)
        msg = (f"{who} reached {len(names)} IP addresses not seen before within {secs:.0f}s "
               f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}): a scan? Its further new destinations "
               f"raise no alert for {self.window.total_seconds():.0f}s")
        return [Alert("destination_scan", dest, t, msg, len(names), _evidence(row, destinations=names))]

    def _scanning(self, src: str | None, t: dt.datetime) -> bool:
        return bool(src) and self._near("destination_scan", src, t)

    def _client_key(self, kind: str, row: dict) -> str:
        """The key of a per-destination-and-client alert (blocked_attempt, authz_denial) of ``row``. A
        client ztunnel's line names only once it has been read (its connection's line comes when the
        connection closes: after the waypoint's or sidecar's lines of its requests, a new pod's first
        ones) was keyed by its IP until then: the windows and quiet rows of that key become its name's,
        so that its next attempt in the window is counted, not a second alert of the same pod."""
        dest, client, ip = row["destination"], row["client"], row.get("source_ip")
        key = f"{dest} {client}"
        if ip and client != ip and (kind, f"{dest} {ip}") in self._alerted:
            spans = sorted(self._alerted.pop((kind, f"{dest} {ip}")) + self._alerted.get((kind, key), []), key=_first)
            joined: list[list[dt.datetime]] = []
            for first, last in spans:  # (overlapping or touching spans as one, as _due keeps them)
                if joined and first - joined[-1][1] < 2 * self.window:
                    joined[-1][1] = max(joined[-1][1], last)
                else:
                    joined.append([first, last])
            self._alerted[(kind, key)] = joined[-ALERT_SPANS:]
            if (kind, f"{dest} {ip}") in self._quiet:
                n, sources, ips = self._quiet.pop((kind, f"{dest} {ip}"))
                m, more, more_ips = self._quiet.pop((kind, key), (0, Counter(), set()))
                self._quiet[(kind, key)] = (n + m, sources + more, ips | more_ips)
        return key

    def _once_per_window(self, row: dict, kind: str, key: str) -> list[Alert]:
        t = row["start_time"]
        due = self._alert_due(kind, key, row, t, quiet=self._scanning(row.get("source_ip"), t))
        if due is None:
            return []
        n, sources, ips, since = due
        if kind == "blocked_attempt":
            by = row.get("blocked_by")  # (blocked_by.sql: BlackHoleCluster, a route, or no route)
            by = f"route {by}" if by is not None and by == row.get("route_name") else by
            msg = f"{plural(n, 'attempt')} blocked by {by}{since}; from {_client(row)}, {_request(row)}"
            return [Alert(kind, row["destination"], t, msg, n, _evidence(row), source=row["client"], source_ips=ips)]
        who, more = _from(sources, row)  # (per destination: name its sources)
        msg = f"{plural(n, 'request')} through {row.get('upstream_cluster')} ({_unregistered(row)}){since} {who}"
        return [Alert(kind, row["destination"], t, msg, n, _evidence(row, **more))]

    def _burst(self, row: dict) -> list[Alert]:
        """The failure_burst alert a failed row raises, if any."""
        n = self.burst_threshold
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
            return []
        secs = (group[-1] - group[0]).total_seconds()
        msg = f"{n} failures within {secs:.0f}s; last from {_client(row)}, {_request(row)}"
        return [Alert("failure_burst", dest, t, msg, n, _evidence(row))]

    def _denials(self, rows: list[dict], now: dt.datetime) -> list[Alert]:
        out = []
        for row in rows:
            dest, client, t = row["destination"], row["client"], row["start_time"] or now
            due = self._alert_due("authz_denial", self._client_key("authz_denial", row), row, t)  # (per client, as blocked attempts)
            if due is None:
                continue
            n, _, ips, since = due
            by = DENIED_BY[row["mechanism"]] + _policy(row["policy"])
            msg = f"{plural(n, 'request')} from {_client(row)} denied by {by}{since}; this one {_request(row)}"
            out.append(Alert("authz_denial", dest, t, msg, n,
                             _evidence(row, mechanism=row["mechanism"], policy=row["policy"]),
                             source=client, source_ips=ips))
        return out

    def _prune(self) -> None:
        if len(self._alerted) > MAX_STATE:
            newest = max(v[-1][1] for v in self._alerted.values())
            self._alerted = {k: v for k, v in self._alerted.items() if newest - v[-1][1] < self.window}
        if len(self._quiet) > MAX_STATE:  # (the quiet rows of alerts forgotten above, or never raised)
            self._quiet = {k: v for k, v in self._quiet.items() if k in self._alerted}
        if len(self._failures) > MAX_STATE or self._failure_times > MAX_FAILURE_TIMES:
            keep = self.burst_threshold - 1  # (the latest ones: a burst still needs n failures)
            self._failures = {k: v[-keep:] for k, v in self._failures.items() if len(v) > 1 and keep}
            self._failure_times = sum(len(v) for v in self._failures.values())
        if len(self._tried) > MAX_STATE:  # (only a scan's count of a blocked address twice is at stake)
            self._tried.clear()
        if len(self._unreached) > MAX_STATE:  # (an unreached destination's attempt told again at worst)
            self._unreached.clear()
        if len(self._fresh) > MAX_STATE:
            newest = max(v[-1][0] for v in self._fresh.values())
            self._fresh = {k: v for k, v in self._fresh.items() if newest - v[-1][0] < self.window}


def known_destinations(data_dir, settings=None) -> set[str]:
    """Egress destinations the dataset reached (the ``egress`` view's ``destination``)."""
    return seen_destinations(data_dir, settings)[0]


def seen_destinations(data_dir, settings=None) -> tuple[set[str], set[str]]:
    """The dataset's egress destinations (but those only blocked): those it reached, and those it only
    tried without an upstream connection (``AlertRules``' ``known`` and ``unreached``)."""
    return seen_in_dataset(data_dir, settings, clients=False)[:2]


def seen_in_dataset(data_dir, settings=None, *, clients: bool = True) -> tuple[set[str], set[str], pa.Table]:
    """``seen_destinations``, and the clients the dataset's ztunnel lines name (reports.ZTUNNEL_SEEN's
    rows, SEEN_SCHEMA; with ``clients``, else none): ``AlertRules``' ``known``, ``unreached`` and
    ``seen``, read on one connection."""
    from . import db
    from .errors import DatasetError
    from .queries import run_query
    from .reports import PODS_READS, ZTUNNEL_SEEN

    seen = SEEN_SCHEMA.empty_table()
    with db.reading(data_dir):
        if not db.has_rows(data_dir):  # (a new dataset, or rejects only: its egress view is empty)
            return set(), set(), seen
        try:
            con = db.connect(data_dir, settings=settings, sandbox=True, uses=(KNOWN_SQL, PODS_READS))
        except DatasetError:  # no rows yet: everything is new
            return set(), set(), seen
        try:
            rows = run_query(con, KNOWN_SQL).to_pylist()
            if clients:  # (the latest SEEN_ROWS + 1 alone: _latest_seen keeps of them what it keeps of all)
                seen = run_query(con, LATEST_SEEN_SQL.format(seen=ZTUNNEL_SEEN.format(access_log="access_log")),
                                 {"rows": SEEN_ROWS + 1}).cast(SEEN_SCHEMA)
        finally:
            con.close()
    return ({r["destination"] for r in rows if r["reached"]}, {r["destination"] for r in rows if not r["reached"]},
            _latest_seen(seen))


class AlertWriter:
    """Alerts as text lines (stderr) or ndjson (a file or stdout); ``None`` output: counted only."""

    def __init__(self, out: IO[str] | None, fmt: str = "text"):
        self.out = out
        self.fmt = fmt
        self.written = 0

    def write(self, alerts: list[Alert]) -> None:
        if self.out is not None and alerts:
            render = Alert.to_json if self.fmt == "ndjson" else Alert.to_text
            self.out.write("".join(render(a) + "\n" for a in alerts))
            self.out.flush()
        self.written += len(alerts)  # (after the write: a write that failed, a full disk, counts none)
