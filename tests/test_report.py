"""logpipe report: each planted anomaly of sample_logs/scenario is found, the clean baseline week
yields nothing high, the inventory judges transport by what leaves, --pods names workloads by time,
and the CLI's options and errors behave."""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from logpipe import reports
from logpipe.cli import cli
from logpipe.parse import parse_lines
from logpipe.pods import load_pods, pods_from_json

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "sample_logs" / "scenario"
ANOMALY_FILES = sorted((ROOT / "queries" / "anomalies").glob("*.sql"))
CI, CRON, WORKER, FRONTEND, NOTIF, UPLOADER, REPORTS, PAY = (
    "10.244.2.11", "10.244.2.21", "10.244.3.15", "10.244.1.41", "10.244.1.51", "10.244.1.61", "10.244.1.31",
    "10.244.1.21")


def write_dataset(files: list[Path], out: Path) -> Path:
    """Parse log files and write them as a dataset: out/date=YYYY-MM-DD/part-0.parquet."""
    table = pa.Table.from_batches([b for f in files for b in _record_batches(f, f.stat().st_mtime_ns)])
    days = pc.strftime(table["start_time"], format="%Y-%m-%d")
    for day in sorted(set(days.to_pylist())):
        part = out / f"date={day}"
        part.mkdir(parents=True)
        pq.write_table(table.filter(pc.equal(days, day)), part / "part-0.parquet")
    return out


@functools.lru_cache(maxsize=None)
def _record_batches(path: Path, _mtime: int) -> tuple:
    """A log file's parsed rows, parsed once for the datasets of it (the scenario's logs make three)."""
    return tuple(b.records for b in parse_lines(path.open(encoding="utf-8"), str(path)) if b.parsed)


@pytest.fixture(scope="session")
def empty_data(tmp_path_factory) -> Path:
    """The dataset of an ingested empty log (a quiet pod's): no record."""
    tmp = tmp_path_factory.mktemp("empty")
    (tmp / "empty.log").write_text("")
    assert CliRunner().invoke(cli, ["ingest", str(tmp / "empty.log"), "--data", str(tmp / "d")]).exit_code == 0
    return tmp / "d"


@pytest.fixture(scope="session")
def scenario_data(tmp_path_factory) -> Path:
    return write_dataset([SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"],
                         tmp_path_factory.mktemp("scenario"))


@pytest.fixture(scope="session")
def baseline_data(tmp_path_factory) -> Path:
    return write_dataset([SCENARIO / "baseline-week.log"], tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="session")
def incident_data(tmp_path_factory) -> Path:
    return write_dataset([SCENARIO / "incident-day.log"], tmp_path_factory.mktemp("incident"))


def anomalies(data: Path | tuple, **options) -> dict:
    """The anomalies report of dataset ``data`` (or of ``data``, a connection of ``report_db``, kept
    open: opening one is ~0.3 s of a report's ~1 s) with ``options`` (resolve_window's, params,
    baseline_dir, pods_path)."""
    if isinstance(data, tuple):
        return _anomalies(data, **options)
    with report_db(data, baseline_dir=options.pop("baseline_dir", None), pods_path=options.pop("pods_path", None)) as db:
        return _anomalies(db, **options)


def _anomalies(db: tuple, **options) -> dict:
    con, floor = db
    params = options.pop("params", None)
    window = reports.resolve_window(con, window_floor=floor, **options)
    return reports.public(reports.run_report(con, "anomalies", params=params, window=window))


@contextlib.contextmanager
def report_db(data: Path, **options):
    """``reports.open_report_db(data, **options)``'s (connection, window floor), closed at the end."""
    con, floor = reports.open_report_db(data, **options)
    try:
        yield con, floor
    finally:
        con.close()


@pytest.fixture(scope="session")
def scenario_db(scenario_data):
    """The scenario's report connection, for the tests that only read it (each with its own window and params)."""
    with report_db(scenario_data) as db:
        yield db


@pytest.fixture(scope="session")
def incident(scenario_data) -> dict:
    """The scenario's anomalies as `logpipe report anomalies -o json` prints them (``anomalies(scenario_db)``'s
    document, key for key): run_once's run, which test_cli_json_shape and the --input comparison read too
    (a report of its own cost this module ~0.6 s of CPU)."""
    r = run_once("report", "anomalies", "--data", str(scenario_data), "-o", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def found(doc: dict, kind: str, source: str | None = None, destination: str | None = None) -> list[dict]:
    return [f for f in doc["findings"] if f["kind"] == kind
            and (destination is None or f["destination"] == destination)
            and (source is None or source in (f["source"] or "").split(","))]


# ---- planted anomalies ---------------------------------------------------------------------------

PLANTED = [
    # kind, source, destination, lowest acceptable severity
    ("new_destination", REPORTS, "exfil.example", "high"),  # (9.7 MB uploaded to it: upload_high)
    ("new_destination", CRON, "pastebin.com", "medium"),
    ("new_pair", FRONTEND, "api.stripe.com", "low"),
    ("unregistered_egress", CRON, "pastebin.com", "medium"),
    ("unregistered_egress", CRON, "203.0.113.50", "medium"),
    ("blocked_attempt", WORKER, "198.51.100.77", "medium"),
    ("blocked_attempt", WORKER, "crypto-miner.example", "medium"),
    ("authz_denial", FRONTEND, "httpbin.org", "high"),
    ("authz_denial", NOTIF, "hooks.slack.com", "high"),
    ("error_spike", None, "api.stripe.com", "high"),
    ("latency_outlier", CI, "api.github.com", "medium"),
    ("volume_outlier", UPLOADER, "storage.example", "high"),
    ("plaintext_egress", NOTIF, "http-only.example", "medium"),
    ("plaintext_egress", CRON, "pastebin.com", "low"),
    ("direct_ip_egress", CI, "203.0.113.9", "medium"),
    ("tls_failure", CRON, "legacy-partner.example", "high"),
]


@pytest.mark.parametrize("kind,source,destination,at_least", PLANTED,
                         ids=[f"{k}-{d}" for k, _s, d, _a in PLANTED])
def test_planted_anomaly_is_found(incident, kind, source, destination, at_least):
    hits = found(incident, kind, source, destination)
    assert hits, f"{kind} {source}->{destination} not found; got {[(f['kind'], f['destination']) for f in incident['findings']]}"
    f = hits[0]
    assert reports.SEVERITIES.index(f["severity"]) >= reports.SEVERITIES.index(at_least)
    assert set(reports.FINDING_KEYS) <= set(f) <= {*reports.FINDING_KEYS, reports.CLIENT_IPS}
    assert f["advice"] and isinstance(f["evidence"], dict)


def test_a_new_destination_is_high_only_for_an_upload_of_upload_high(incident):
    """exfil.example got 9.7 MB from a workload that never called it: high. The other newcomers got
    at most 160 kB: passthrough ones medium, the rest low."""
    news = {f["destination"]: (f["severity"], f["evidence"]["bytes_up"]) for f in found(incident, "new_destination")}
    assert news["exfil.example"][0] == "high" and news["exfil.example"][1] >= 1_000_000
    assert {d: sev for d, (sev, up) in news.items() if d != "exfil.example"} == {
        "pastebin.com": "medium", "203.0.113.50": "medium", "203.0.113.9": "medium", "http-only.example": "low"}


def test_every_anomaly_query_has_a_planted_finding(incident):
    kinds = {f["kind"] for f in incident["findings"]}
    assert kinds == {p.stem for p in ANOMALY_FILES}


@pytest.mark.parametrize("destination", ["httpbin.org", "api.stripe.com", "hooks.slack.com", "storage.example",
                                         "api.github.com", "legacy-partner.example", "exfil.example"])
def test_tls_origination_is_not_plaintext(incident, destination):
    assert not found(incident, "plaintext_egress", destination=destination)


@pytest.fixture(scope="module")
def baseline_db(baseline_data):
    with report_db(baseline_data) as db:
        yield db


def test_clean_baseline_has_no_high_finding(baseline_db):
    doc = anomalies(baseline_db)
    assert doc["baseline"]["requests"] > 1000 and doc["window"]["requests"] > 100
    bad = [f for f in doc["findings"] if f["severity"] in ("high", "critical")]
    assert bad == []


def test_clean_baseline_days_split_has_no_high_finding(baseline_db):
    doc = anomalies(baseline_db, baseline_days=4)
    assert [f for f in doc["findings"] if f["severity"] in ("high", "critical")] == []


def test_evidence_details(incident):
    rbac = found(incident, "authz_denial", FRONTEND, "httpbin.org")[0]
    assert rbac["evidence"]["policies"] == ["ns[istio-egress]-policy[deny-httpbin-post]-rule[0]"]
    assert rbac["evidence"]["denials"] == 30 and len(rbac["evidence"]["sample_request_ids"]) == 3
    assert "deny-httpbin-post" in rbac["advice"]
    uaex = found(incident, "authz_denial", NOTIF, "hooks.slack.com")[0]
    assert uaex["evidence"]["mechanism"] == "ext_authz" and uaex["evidence"]["denials"] == 20
    tls = found(incident, "tls_failure", destination="legacy-partner.example")[0]
    assert any("CERTIFICATE_EXPIRED" in r for r in tls["evidence"]["reasons"])
    spike = found(incident, "error_spike", destination="api.stripe.com")[0]
    assert spike["evidence"]["worst_bucket"].startswith("2025-03-08T14:00")
    assert spike["evidence"]["baseline_share"] < 0.05
    assert found(incident, "volume_outlier", UPLOADER)[0]["evidence"]["largest_request_bytes"] == 524288000
    blocked = found(incident, "blocked_attempt", WORKER, "crypto-miner.example")[0]
    assert blocked["evidence"]["attempts"] == 12 and blocked["evidence"]["blocked_by"] == "block_all"


@pytest.mark.parametrize("destination,protocol,resolution", [("pastebin.com", "HTTP", "DNS"),
                                                             ("203.0.113.50", "TCP", "STATIC")])
def test_unregistered_egress_service_entry(incident, destination, protocol, resolution):
    f = found(incident, "unregistered_egress", CRON, destination)[0]
    se = yaml.safe_load(f["evidence"]["service_entry"])
    assert se["kind"] == "ServiceEntry" and se["apiVersion"].startswith("networking.istio.io/")
    spec = se["spec"]
    assert spec["location"] == "MESH_EXTERNAL" and spec["resolution"] == resolution
    port = 80 if protocol == "HTTP" else 5432
    assert spec["ports"] == [{"number": port, "name": f"{protocol.lower()}-{port}", "protocol": protocol}]
    assert (spec["hosts"] == [destination]) if resolution == "DNS" else (spec["addresses"] == [destination])


# An inbound sidecar's TCP denial (IPv6, no authority), an HTTP one whose Host is "[v6]:port", and a
# waypoint's egress denial: each named as the egress view names destinations, its scope said.
DENIALS = """\
[2025-03-12T03:15:03.770Z] "- - -" 0 - - rbac_access_denied_matched_policy[none] "-" 64 0 1 - "-" "-" "-" "-" "-" inbound|3306|| - [fd00:10:244::33]:3306 [fd00:10:244::1b]:37585 - -
[2025-03-12T03:15:04.770Z] "GET /admin HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.7.1" "11111111-dec8-49b5-a301-8b6c40659b3c" "[FD00:10:96::a]:8080" "-" inbound|8080|| - [fd00:10:244::40]:8080 [fd00:10:244::1b]:41000 - default
[2025-03-12T03:15:05.770Z] "POST /post HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[istio-egress]-policy[deny-httpbin-post]-rule[0]] - "-" 287 19 0 - "-" "okhttp/4.12.0" "06680fc5-dec8-49b5-a301-8b6c40659b3c" "HTTPBin.org" "-" inbound-vip|80|http|httpbin.org - 240.240.0.2:80 10.244.1.41:37218 - default
"""


def test_authz_denials_name_destinations_as_egress_does_and_say_their_scope(tmp_path):
    log = tmp_path / "denials.log"
    log.write_text(DENIALS)
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    got = sorted((f["source"], f["destination"], f["evidence"]["scope"], f["evidence"]["ports"])
                 for f in doc["findings"] if f["kind"] == "authz_denial")
    assert got == [("10.244.1.41", "httpbin.org", "egress", [80]),
                   ("fd00:10:244::1b", "fd00:10:244::33", "internal", [3306]),
                   ("fd00:10:244::1b", "fd00:10:96::a", "internal", [8080])]


def test_direct_ip_egress_reads_v6_authorities(tmp_path):
    """A Host of `[v6]:port`, and a bare v6 one (HTTP wants brackets; some clients omit them), is a raw
    IP: authority_host.sql, the one reading of an authority's host the views and queries share."""
    line = ('[2024-04-09T12:17:33.610Z] "GET /ip HTTP/1.1" 200 - 0 31 187 186 "-" "curl/7.60.0" '
            '"324cc97a-c981-43be-a58b-ef236dca216{n}" "{host}" "[2001:db8::8{n}]:80" PassthroughCluster '
            '10.244.1.14:47337 [2001:db8::8{n}]:80 10.244.1.14:60522 -\n')
    log = tmp_path / "v6.log"
    log.write_text(line.format(n=0, host="[2001:DB8::80]:8080") + line.format(n=1, host="2001:db8::81"))
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    assert sorted(f["destination"] for f in doc["findings"] if f["kind"] == "direct_ip_egress") == [
        "2001:db8::80", "2001:db8::81"]


def test_tls_failure_is_the_planted_tls_failures_alone(incident):
    """tls_failure counts TLS failures: the 29 planted (CERTIFICATE_EXPIRED) to legacy-partner.example.
    Stripe's 90 refused connects ("delayed connect error: 111", errno ECONNREFUSED, before any TLS)
    were a second, MEDIUM tls_failure finding of the CRITICAL error_spike's same failures."""
    assert [f["destination"] for f in found(incident, "tls_failure")] == ["legacy-partner.example"]
    (expired,) = found(incident, "tls_failure", CRON, "legacy-partner.example")
    assert expired["severity"] == "high" and expired["evidence"]["failures"] == 29
    assert expired["evidence"]["reasons"] == [
        "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED"]
    assert "check the certificate" in expired["advice"]
    assert found(incident, "error_spike", destination="api.stripe.com")[0]["evidence"]["failures"] == 90


# A waypoint's 503 UF,URX line (as in sample_logs/waypoint-egress-1.23.log) with its own time, host,
# code, flags and transport failure reason.
WAYPOINT_LINE = ('[{t}] "GET /x HTTP/1.1" {code} {flags} {details} - "{reason}" 0 91 {ms} - "-" "Go-http-client/1.1" '
                 '"{rid}" "{host}" "203.0.113.40:443" inbound-vip|80|http|{host} 10.244.0.18:38818 240.240.0.9:80 '
                 '10.244.1.21:56180 - default\n')
DAY = dt.datetime(2025, 3, 8, tzinfo=dt.timezone.utc)


def waypoint_lines(host: str, at: dt.datetime, n: int, code: int = 200, flags: str = "-", reason: str = "-") -> list[str]:
    """n lines to host, a minute apart from at: a 200, or a failure (503 UF,URX) with reason."""
    details = "via_upstream" if code < 500 else "upstream_reset_before_response_started{connection_failure}"
    return [WAYPOINT_LINE.format(t=(at + dt.timedelta(minutes=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                 code=code, flags=flags, details=details, reason=reason, ms=100 + i, host=host,
                                 rid=f"{zlib.crc32(f'{host} {at}'.encode()):08x}-0000-4000-8000-{i:012x}")
            for i in range(n)]


def test_tls_failure_counts_tls_reasons_alone(tmp_path):
    """Envoy's transport failure reason is the TLS socket's ("TLS error: …", "TLS_error:|…:TLS_error_end")
    or a connect's that failed before any TLS (refused, timed out): only the first are tls_failure's,
    in the window and in the baseline (in_baseline) alike."""
    refused, immediate, timeout = "delayed connect error: 111", "immediate connect error: 111", "connection timeout"
    expired = "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED"
    verify = "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
    plain = "TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end"
    reset = "TLS_error:|33554536:system library:OPENSSL_internal:Connection reset by peer:TLS_error_end"
    fail = dict(code=503, flags="UF,URX")
    at, before = DAY + dt.timedelta(hours=10), DAY - dt.timedelta(days=2)
    lines = (waypoint_lines("refused.example", at, 12, reason=refused, **fail)
             + waypoint_lines("immediate.example", at, 3, reason=immediate, **fail)
             + waypoint_lines("timeout.example", at, 3, reason=timeout, **fail)
             + waypoint_lines("expired.example", at, 2, reason=expired, **fail)
             + waypoint_lines("verify.example", at, 1, reason=verify, **fail)
             + waypoint_lines("mixed.example", at, 11, reason=refused, **fail)
             + waypoint_lines("mixed.example", at + dt.timedelta(hours=1), 2, reason=plain, **fail)
             + waypoint_lines("reset.example", at, 1, reason=reset, **fail)
             + waypoint_lines("mixed.example", before, 5, reason=refused, **fail)
             + waypoint_lines("expired.example", before, 1, reason=expired, **fail)
             + waypoint_lines("refused.example", before, 20))
    log = tmp_path / "tls.log"
    log.write_text("".join(lines))
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    got = {f["destination"]: (f["severity"], f["evidence"]["failures"], f["evidence"]["reasons"],
                              f["evidence"]["in_baseline"])
           for f in doc["findings"] if f["kind"] == "tls_failure"}
    assert got == {"expired.example": ("high", 2, [expired], 1),
                   "verify.example": ("high", 1, [verify], 0),
                   "mixed.example": ("low", 2, [plain], 0),
                   "reset.example": ("low", 1, [reset], 0)}



def test_volume_outlier_averages_a_baseline_upload_over_the_baselines_days(tmp_path):
    """baseline_daily_bytes is a pair's baseline upload over the baseline's days (first to last record:
    5 here), not over the pair's own first-to-last span (one minute, floored at a day): 12 MB uploaded
    on one day of five is 2.4 MB a day, so a 30 MB upload in the window is ten times that (it read
    12 MB a day, and the upload no finding)."""
    upload = lambda lines, size: [x.replace('" 0 91 ', f'" {size} 91 ') for x in lines]  # noqa: E731
    lines = (waypoint_lines("filler.example", DAY - dt.timedelta(days=6), 1)
             + waypoint_lines("filler.example", DAY - dt.timedelta(days=1), 1)
             + upload(waypoint_lines("up.example", DAY - dt.timedelta(days=3), 2), 6_000_000)
             + upload(waypoint_lines("up.example", DAY + dt.timedelta(hours=10), 1), 30_000_000))
    log = tmp_path / "uploads.log"
    log.write_text("".join(lines))
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    (f,) = found(doc, "volume_outlier")
    assert (f["destination"], f["severity"]) == ("up.example", "medium")
    assert f["evidence"]["baseline_daily_bytes"] == 2_400_000



def test_volume_outlier_keeps_no_baseline_row(scenario_db):
    """volume_outlier sums the baseline as it reads it (by pair; its uploads' p99 by destination), so its
    memory is its pairs', not its rows': no CTE DuckDB keeps for its readers holds more rows than the
    baseline's pairs. A CTE of the baseline's rows, which three aggregates read, DuckDB kept whole (a
    10M-row, 6.8-day dataset's 5.8M baseline rows, 375 MB: the section peaked at the 768 MiB bound; here
    the scenario's 2,475 rows against its 11 pairs). (DuckDB 2.0's EXPLAIN JSON: a plan in which no CTE
    is kept, or of other keys, fails rather than passes.)"""
    from logpipe.queries import bind_params

    def nodes(n):
        yield n
        for c in n.get("children", []):
            yield from nodes(c)

    con, floor = scenario_db
    window = reports.resolve_window(con, window_floor=floor)
    (q,) = [q for q in reports.report_queries("anomalies") if q.name == "volume_outlier"]
    values = bind_params(q, {k: v for k, v in window.params().items() if k in q.params})
    names = set(con.extract_statements(q.sql)[0].named_parameters)
    plan = json.loads(con.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + q.sql, {k: values[k] for k in names}).fetchall()[0][1])
    kept = {n["extra_info"]["CTE Name"]: n["children"][0]["intermediate_rows"]
            for root in plan["operator"] for n in nodes(root)
            if n["name"] == "CTE" and n["extra_info"].get("Materialized Consumers")}
    (pairs,) = con.execute("SELECT count(DISTINCT (client_named(source_owner, source_ip), destination)) FROM egress "
                           "WHERE start_time < $1", [window.start]).fetchall()[0]
    assert "base_pair" in kept, kept
    assert max(kept.values()) <= pairs, (kept, pairs)


def test_volume_outlier_samples_the_earliest_of_equal_uploads(tmp_path):
    """Its sample request ids are the largest uploads; of equal ones, the earliest (they were any of
    them, so one dataset's report differed from run to run: 1M bench rows, uploads of 4,974 bytes)."""
    lines = [x.replace('" 0 91 ', '" 3000000 91 ') for x in waypoint_lines("up.example", DAY + dt.timedelta(hours=1), 5)]
    log = tmp_path / "uploads.log"
    log.write_text("".join(reversed(lines)))
    (f,) = found(anomalies(write_dataset([log], tmp_path / "data")), "volume_outlier")
    ids = [x.split('" "')[2] for x in lines]
    assert f["evidence"]["sample_request_ids"] == ids[:3], (ids, f["evidence"])


def _sized(lines: list[str], field: str, sizes: list[int]) -> list[str]:
    """``lines`` (waypoint_lines') with their upload (``field`` "rx") or duration ("ms") set, one each."""
    old = {"rx": lambda x: '" 0 91 ', "ms": lambda x: f" 91 {x.split(' 91 ')[1].split(' ')[0]} "}[field]
    new = {"rx": lambda n: f'" {n} 91 ', "ms": lambda n: f" 91 {n} "}[field]
    return [x.replace(old(x), new(n), 1) for x, n in zip(lines, sizes)]


def test_sample_request_ids_are_the_largest_first_then_the_earliest(tmp_path):
    """volume_outlier's sample ids are the largest uploads, latency_outlier's (a p99 jump) the slowest
    requests, each the earliest of equal ones: the first three of all, in that order (min_by with a key
    that negates the size; a key without the minus, or without the time, gives other ids). (The
    baseline calls up.example once, uploading nothing: a destination new to it would be
    new_destination's upload alone.)"""
    rid = lambda line: line.split('" "')[2]  # noqa: E731
    first = lambda line: line.replace(rid(line), "0" + rid(line)[1:])  # noqa: E731  (the least id, a later time)
    ups = waypoint_lines("up.example", DAY + dt.timedelta(hours=1), 5)
    ups[3] = first(ups[3])
    slow = waypoint_lines("slow.example", DAY + dt.timedelta(hours=2), 20)
    slow[18] = first(slow[18])
    lines = (_sized(ups, "rx", [3_000_000, 9_000_000, 5_000_000, 9_000_000, 1_000_000])
             + waypoint_lines("slow.example", DAY - dt.timedelta(days=1), 20)
             + waypoint_lines("up.example", DAY - dt.timedelta(days=1), 1)
             + _sized(slow, "ms", [900] * 16 + [4000, 7000, 4000, 2000]))
    log = tmp_path / "sizes.log"
    log.write_text("".join(reversed(lines)))
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    (f,) = found(doc, "volume_outlier")
    assert f["evidence"]["sample_request_ids"] == [rid(ups[1]), rid(ups[3]), rid(ups[2])], f["evidence"]
    (f,) = found(doc, "latency_outlier", destination="slow.example")
    assert f["evidence"]["what"] == "p99_jump", f["evidence"]
    assert f["evidence"]["sample_request_ids"] == [rid(slow[17]), rid(slow[16]), rid(slow[18])], f["evidence"]

def test_error_spike_names_the_clients_whose_requests_failed(incident):
    """An on-call's first question is who is affected: the finding's source is the clients whose
    requests failed in the worst bucket (the scenario's two payments pods, 47 and 43 of the 90 UF,URX
    503s to api.stripe.com between 14:00 and 15:00), not '-'."""
    (spike,) = [f for f in incident["findings"] if f["kind"] == "error_spike" and f["destination"] == "api.stripe.com"]
    assert spike["source"] == "10.244.1.21,10.244.1.22"
    assert spike["evidence"]["failures"] == 90


def test_error_spike_severity_is_one_buckets(tmp_path):
    """critical is >= 90% of >= 50 requests failed in one bucket: an hour of 10/10 and one of 20/60
    gave critical (the max share of the one, the max requests of the other), though neither is. The
    worst bucket (evidence, advice) is the one the severity is of: 57/60 beats a smaller 10/10."""
    fail = dict(code=503, flags="UF,URX", reason="delayed connect error: 111")
    one, two = DAY + dt.timedelta(hours=10), DAY + dt.timedelta(hours=11)
    lines = []
    for host, failed in (("mixed-hours.example", 20), ("critical-hour.example", 57)):
        lines += (waypoint_lines(host, DAY - dt.timedelta(days=2), 30)
                  + waypoint_lines(host, one, 10, **fail)
                  + waypoint_lines(host, two, failed, **fail) + waypoint_lines(host, two + dt.timedelta(seconds=30), 60 - failed))
    log = tmp_path / "spikes.log"
    log.write_text("".join(lines))
    doc = anomalies(write_dataset([log], tmp_path / "data"))
    got = {f["destination"]: (f["severity"], f["evidence"]) for f in doc["findings"] if f["kind"] == "error_spike"}
    assert set(got) == {"mixed-hours.example", "critical-hour.example"}
    severity, ev = got["mixed-hours.example"]
    assert severity == "high"
    assert (ev["worst_bucket"], ev["requests"], ev["failures"], ev["failed_share"], ev["spiking_buckets"]) == (
        one.isoformat(timespec="milliseconds").replace("+00:00", "Z"), 10, 10, 1.0, 2)
    severity, ev = got["critical-hour.example"]
    assert severity == "critical"
    assert (ev["worst_bucket"], ev["requests"], ev["failures"], ev["failed_share"], ev["spiking_buckets"]) == (
        two.isoformat(timespec="milliseconds").replace("+00:00", "Z"), 60, 57, 0.95, 2)
    (advice,) = [f["advice"] for f in doc["findings"] if f["destination"] == "critical-hour.example"]
    assert advice.startswith("Failures to critical-hour.example rose to 95% from a baseline of 0.0%")


def test_a_dns_resolution_failure_gets_dns_advice_not_a_service_entry(tmp_path):
    """Istio's AllowAnyDynamicDNSCluster (a dynamic forward proxy) answers 503 DF when a name does not
    resolve: registering the name would not help, so the findings that would advise a ServiceEntry say
    to check the name and DNS instead, and error_spike adds that advice to its own; a host that
    resolves keeps its ServiceEntry."""
    line = ('[{t}] "GET /x HTTP/1.1" {code} {flags} {details} - "-" 0 {size} 4 - "-" "curl/8" "{rid}" "{host}" "{up}" '
            'AllowAnyDynamicDNSCluster {upl} 93.184.216.34:80 10.244.1.5:3998 - allow_any_dynamic_dns\n')

    def lines(host, at, n, ok):
        return [line.format(t=(at + dt.timedelta(minutes=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                            code=200 if ok else 503, flags="-" if ok else "DF",
                            details="via_upstream" if ok else "dns_resolution_failure", size=10 if ok else 0,
                            rid=f"{host}-{i}", host=host, up="192.0.2.9:80" if ok else "-",
                            upl="10.244.1.5:4000" if ok else "-")
                for i in range(n)]

    log = tmp_path / "df.log"
    log.write_text("".join(lines("known.example", DAY - dt.timedelta(days=2), 3, True)
                           + lines("nx.example.org", DAY + dt.timedelta(hours=10), 12, False)
                           + lines("ok.example", DAY + dt.timedelta(hours=10), 2, True)))
    with report_db(write_dataset([log], tmp_path / "data")) as db:  # (its three reports on one connection)
        doc = anomalies(db)
        by = {(f["kind"], f["destination"]): f for f in doc["findings"]}
        for kind in ("unregistered_egress", "new_destination", "error_spike"):
            assert "DNS resolution of nx.example.org failed (response flag DF)" in by[kind, "nx.example.org"]["advice"], kind
        assert "register it" not in by["unregistered_egress", "nx.example.org"]["advice"]
        assert by["unregistered_egress", "nx.example.org"]["evidence"]["service_entry"] is None
        assert "ServiceEntry if legitimate" not in by["new_destination", "nx.example.org"]["advice"]
        assert "register it" in by["unregistered_egress", "ok.example"]["advice"]
        assert "hosts:\n  - \"ok.example\"" in by["unregistered_egress", "ok.example"]["evidence"]["service_entry"]
        assert "DNS" not in by["new_destination", "ok.example"]["advice"]
        # error_spike's DNS advice follows its failure_flags: without DF there, the 503s still fail (a 5xx)
        # and spike, but DF is no failure of the operator's and the advice says nothing of it (as DC's
        # hang-up advice needs DC among the flags); the other findings' DNS advice does not read the flags.
        flags = "UF,URX,UH,UO,NR,UT,UC,LR,UR"
        doc = anomalies(db, params={"failure_flags": flags})
        by = {(f["kind"], f["destination"]): f for f in doc["findings"]}
        assert by["error_spike", "nx.example.org"]["evidence"]["failures"] == 12
        assert "DNS" not in by["error_spike", "nx.example.org"]["advice"]
        assert "DNS resolution of nx.example.org failed" in by["unregistered_egress", "nx.example.org"]["advice"]
        doc = anomalies(db, params={"failure_flags": flags + ", DF"})
        (spike,) = [f for f in doc["findings"] if f["kind"] == "error_spike"]
        assert "DNS resolution of nx.example.org failed" in spike["advice"]


def test_findings_sorted_by_severity(incident):
    ranks = [reports.SEVERITIES.index(f["severity"]) for f in incident["findings"]]
    assert ranks == sorted(ranks, reverse=True)


@pytest.fixture(scope="module")
def incident_on_baseline(incident_data, baseline_data) -> dict:
    """The incident day's anomalies against the baseline week's dataset (--baseline)."""
    return anomalies(incident_data, baseline_dir=baseline_data)


def test_baseline_dataset_gives_the_same_findings(incident, incident_on_baseline):
    doc = incident_on_baseline
    assert doc["baseline"]["source"] == "baseline dataset" and doc["baseline"]["requests"] > 1000
    key = lambda d: sorted((f["kind"], f["destination"], f["severity"]) for f in d["findings"])  # noqa: E731
    assert key(doc) == key(incident)


def test_a_baseline_dataset_is_labelled_by_its_own_first_and_last_record(incident_data, baseline_data,
                                                                         incident_on_baseline):
    """Its end read the window's start (the other dataset's first record, 2025-03-08 00:02), though the
    baseline week's last egress request is at 2025-03-07 23:32:35."""
    doc = incident_on_baseline
    assert doc["baseline"]["start"] == "2025-03-01T00:14:24.252Z"
    assert doc["baseline"]["end"] == "2025-03-07T23:32:35.603Z"
    assert doc["window"]["start"] == "2025-03-08T00:02:11.224Z"
    r = run("report", "anomalies", "--data", str(incident_data), "--baseline", str(baseline_data), "-o", "text")
    assert "baseline 2025-03-01 00:14 UTC to 2025-03-07 23:32 UTC: 2475 egress requests (baseline dataset)" in r.stdout



def test_the_default_window_ends_at_the_last_record_which_it_counts(incident, scenario_db):
    """The window's end read a second past the last record (2025-03-08T23:58:43.799Z: the exclusive
    bound that keeps the record in it); it shows the record's time, 24 h after the start, and counts it."""
    scenario_con = scenario_db[0]
    last, = scenario_con.execute("SELECT max(start_time) FROM egress").fetchall()[0]
    assert incident["window"]["end"] == "2025-03-08T23:58:42.799Z" == last.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert incident["window"]["start"] == "2025-03-07T23:58:42.799Z"
    at_last = scenario_con.execute("SELECT count(*) FROM egress WHERE start_time = $1", [last]).fetchall()[0][0]
    before = scenario_con.execute("SELECT count(*) FROM egress WHERE start_time >= $1 AND start_time < $2",
                                  [last - dt.timedelta(hours=24), last]).fetchall()[0][0]
    assert at_last >= 1 and incident["window"]["requests"] == before + at_last == 687
    until = dt.datetime(2025, 3, 8, 12, tzinfo=dt.timezone.utc)
    assert anomalies(scenario_db, until=until)["window"]["end"] == "2025-03-08T12:00:00.000Z"  # (--until shown as given)


# ---- inventory -------------------------------------------------------------------------------------


def test_inventory(scenario_db):
    con, _ = scenario_db
    doc = reports.public(reports.run_report(con, "inventory", window=reports.Window(None, None, None, None)))
    assert set(doc) == {"window", "destinations", "sources"}
    assert doc["window"] == {"start": None, "end": None}  # (all the data)
    by = {(d["destination"], d["egress_kind"]): d for d in doc["destinations"]}
    assert by[("httpbin.org", "waypoint")]["transport"] == "tls-origination"
    assert by[("http-only.example", "waypoint")]["transport"] == "plaintext"
    assert by[("s3.amazonaws.com", "registered")]["transport"] == "tls"
    assert by[("s3.amazonaws.com", "registered")]["sni"] == "s3.amazonaws.com"
    assert by[("pastebin.com", "passthrough")]["requests"] == 15
    assert ("crypto-miner.example", "blocked") in by
    stripe = by[("api.stripe.com", "waypoint")]
    assert stripe["p50_ms"] <= stripe["p95_ms"] <= stripe["p99_ms"] and stripe["errors_5xx"] >= 90
    sources = {s["source"]: s for s in doc["sources"]}
    assert sources[WORKER]["blocked"] == 24
    assert "pastebin.com" in sources[CRON]["destinations"]
    # one naming in both tables: NAME_count counts what the list NAMEs lists (a destination's `sources`
    # was a count beside the sources table's `destinations` list)
    assert stripe["sources"] == ["10.244.1.21", "10.244.1.22", "10.244.1.41"] and stripe["source_count"] == 3
    for d in doc["destinations"]:
        assert d["source_count"] == len(d["sources"]) == len(set(d["sources"]))
        assert all(d["destination"] in sources[s]["destinations"] for s in d["sources"])
    for s in doc["sources"]:
        assert s["destination_count"] == len(s["destinations"])


def test_a_parameter_for_one_section(scenario_db, incident):
    """min_requests is five sections' threshold (error_spike's default 10, new_destination's 1):
    -p new_destination.min_requests sets that section's alone; -p min_requests sets all of them."""
    def kinds(**params) -> list[str]:
        return [f["kind"] for f in anomalies(scenario_db, params=params)["findings"]]

    base = [f["kind"] for f in incident["findings"]]  # (no params)
    # (and upload_high: min_requests drops no newcomer that uploaded that much, the scenario's exfiltration)
    one = kinds(**{"new_destination.min_requests": "100000", "new_destination.upload_high": str(10 ** 15)})
    assert "new_destination" in base and "new_destination" not in one
    assert [k for k in one if k != "new_destination"] == [k for k in base if k != "new_destination"]
    assert kinds(min_requests="100000").count("error_spike") == 0 < base.count("error_spike")
    for bad, said in (("nosuch.min_requests", "no report section 'nosuch'"),
                      ("new_destination.nope", "section 'new_destination' has no parameter 'nope'")):
        with pytest.raises(reports.UsageError, match=said):
            kinds(**{bad: "1"})


@pytest.mark.parametrize("name, starts", [("r.md", "# "), ("r.HTML", "<!DOCTYPE html>"), ("r.txt", "Egress inventory"),
                                          ("r.json", "{")])
def test_report_out_suffix_gives_the_format(empty_data, tmp_path, name, starts):
    """--out r.md wrote JSON (only a lower-case .html chose a format), as query --out q.md wrote markdown.
    (Of a dataset of no record: the format is the point, and the HTML draws no chart.)"""
    got = CliRunner().invoke(cli, ["report", "inventory", "--data", str(empty_data), "--out", str(tmp_path / name)])
    assert got.exit_code == 0, got.output
    assert (tmp_path / name).read_text().startswith(starts)



@pytest.mark.parametrize("command", [["report", "inventory"], ["query", "--sql", "SELECT 1 AS a"]])
def test_an_out_suffix_of_no_format_is_refused(scenario_data, tmp_path, command):
    """--out r.pdf (or .xlsx) wrote JSON into it and exited 0: a suffix of no format is a one-line usage
    error that names the suffixes there are; a name of no suffix is still the default (json). (Both
    reports' --out is the one option of `logpipe report`: the inventory's run is the cheaper.)"""
    from logpipe.errors import UsageError

    got = CliRunner().invoke(cli, [*command, "--data", str(scenario_data), "--out", str(tmp_path / "r.pdf")])
    assert isinstance(got.exception, UsageError) and not (tmp_path / "r.pdf").exists()
    said = str(got.exception)
    assert ".pdf is no format logpipe writes; end the name with " in said and ".json" in said
    assert said.endswith("or give -o FORMAT") and "\n" not in said
    plain = CliRunner().invoke(cli, [*command, "--data", str(scenario_data), "--out", str(tmp_path / "r")])
    assert plain.exit_code == 0, plain.output
    assert (tmp_path / "r").read_text().lstrip().startswith("{")


@pytest.mark.parametrize("how", [["-o", "csv"], ["-o", "TSV"], ["--out", "inv.csv"]])
def test_a_report_asked_for_csv_says_how_to_get_its_tables_so(scenario_data, tmp_path, how):
    """`report inventory -o csv` was click's "'csv' is not one of …", and `--out inv.csv` said ".csv is
    no format logpipe writes", though `logpipe query` writes each section's table as CSV: one line
    naming the sections to run so."""
    from logpipe.errors import UsageError

    how = [str(tmp_path / h) if h.endswith(".csv") else h for h in how]
    got = CliRunner().invoke(cli, ["report", "inventory", "--data", str(scenario_data), *how])
    assert isinstance(got.exception, UsageError) and not (tmp_path / "inv.csv").exists()
    said = str(got.exception)
    fmt = "tsv" if "TSV" in how else "csv"
    assert said == (f"a report is 2 tables, not one {fmt}: write a section's table with `logpipe query SECTION -o {fmt} "
                    "--out FILE` (SECTION: destinations, sources; -p since/until for a window), or the whole report "
                    "with -o json")
    table = run_once("query", "destinations", "--data", str(scenario_data), "-o", fmt)
    assert table.exit_code == 0 and table.stdout.startswith("destination" + ("," if fmt == "csv" else "\t") + "port")

def test_a_short_dataset_has_an_empty_baseline_not_an_inverted_one(tmp_path):
    """Data of under a day: the window (its last 24 h) holds it all and the baseline is empty; its
    header read "baseline 2025-03-12 03:14 to 2025-03-11 03:15". The markdown's two header lines are
    two lines (a line break), not one paragraph."""
    import io

    data = tmp_path / "d"
    assert CliRunner().invoke(cli, ["ingest", str(ROOT / "sample_logs" / "tcp-and-ipv6.log"), "--data", str(data)]).exit_code == 0
    with report_db(data, report="anomalies") as (con, floor):  # (as `logpipe report anomalies` opens it)
        doc = reports.run_report(con, "anomalies", window=reports.resolve_window(con, window_floor=floor))
    b = reports.public(doc)["baseline"]  # (-o json's document)
    assert b["start"] <= b["end"] and b["requests"] == 0
    md = io.StringIO()
    reports.render_text(doc, "anomalies", md, markdown=True)  # (-o markdown's)
    assert "egress requests  \nbaseline " in md.getvalue()


def test_inventory_counts_rows_without_a_time_unless_a_window_is_given(tmp_path):
    """A format with no %START_TIME% gives rows without a time: the inventory of all the data holds
    them (it held none: `start_time >= '-infinity'` is never true of a null); a window cannot place them."""
    log = tmp_path / "nots.log"
    log.write_text("GET /a 200 outbound|443||api.stripe.com 10.244.1.5:3333\n")
    fmt = "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS%"
    import io

    from logpipe.errors import DatasetError

    assert CliRunner().invoke(cli, ["ingest", str(log), "--data", str(tmp_path / "d"), "--format-string", fmt]).exit_code == 0
    utc = dt.timezone.utc
    with report_db(tmp_path / "d") as (con, _):  # (the reports of `logpipe report`, each of its own window)
        def inventory(fmt=None, since=None, until=None):
            doc = reports.run_report(con, "inventory", window=reports.inventory_window(con, since, until))
            if fmt is None:  # (-o json's document)
                return json.loads(reports.to_json(doc))
            out = io.StringIO()
            reports.render_text(doc, "inventory", out, markdown=fmt == "markdown")
            return out.getvalue()

        whole = inventory()
        assert [(d["destination"], d["requests"]) for d in whole["destinations"]] == [("api.stripe.com", 1)]
        assert [s["source"] for s in whole["sources"]] == ["10.244.1.5"]
        assert inventory(since=dt.datetime(2024, 1, 1, tzinfo=utc)) == {
            "window": {"start": "2024-01-01T00:00:00.000Z", "end": None}, "destinations": [], "sources": []}
        # the text says which window it covers (no format did)
        assert inventory("text").startswith("Egress inventory\n\nwindow   all the data\n")
        text = inventory("markdown", until=dt.datetime(2030, 1, 1, tzinfo=utc))
        assert "window   the start to 2030-01-01 00:00 UTC\n" in text
        with pytest.raises(DatasetError, match="the dataset's rows have no start_time"):  # (the anomalies')
            reports.resolve_window(con)


# ---- pods ------------------------------------------------------------------------------------------


def pod(name, ip, start, owner=("ReplicaSet", "uploader-5d8f7c9b4"), hash_="5d8f7c9b4", ns="shop", **spec):
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"pod-template-hash": hash_},
                                        "ownerReferences": [{"kind": owner[0], "name": owner[1], "controller": True}]},
            "spec": {"serviceAccountName": "uploader", **spec},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}], "startTime": start}}


def test_pods_table_owner_and_intervals():
    t = pods_from_json({"kind": "List", "items": [
        pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, "2025-02-01T00:00:00Z"),
        pod("batch-x", UPLOADER, "2025-03-08T12:00:00Z", owner=("Job", "batch"), hash_=None, ns="jobs"),
        pod("node-agent", "192.0.2.1", "2025-02-01T00:00:00Z", hostNetwork=True),
    ]}).to_pylist()
    assert [r["workload"] for r in t] == ["shop/uploader", "jobs/batch"]
    assert t[0]["owner_kind"] == "Deployment" and t[0]["service_account"] == "uploader"
    assert t[0]["valid_until"] == t[1]["valid_from"] == dt.datetime(2025, 3, 8, 12, tzinfo=dt.timezone.utc)


def test_pods_name_sources_by_time(scenario_data, tmp_path):
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"kind": "List", "items": [
        pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, "2025-02-01T00:00:00Z"),
        # The same IP reused by another pod after the 03:17 upload: the upload stays the uploader's.
        pod("batch-x", UPLOADER, "2025-03-08T12:00:00Z", owner=("Job", "batch"), hash_=None, ns="jobs"),
        # A pod that started after all the data: CI's IP is not attributed to it.
        pod("late-1", CI, "2025-04-01T00:00:00Z", owner=("ReplicaSet", "late-77"), hash_="77"),
    ]}))
    doc = anomalies(scenario_data, pods_path=pods)
    upload = found(doc, "volume_outlier", destination="storage.example")[0]
    # (the finding names the workload, and gives the IP beside it: `source` held the name alone)
    assert (upload["source"], upload["source_ips"]) == ("shop/uploader", [UPLOADER])
    assert found(doc, "latency_outlier", CI, "api.github.com")  # still an IP


def test_pods_name_the_inventory_s_sources_beside_their_ips(scenario_data, tmp_path):
    """`report inventory --pods -o json`: a source row has the workload (`source`) and its IPs
    (`source_ips`); the text shows `source` alone, as before."""
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"kind": "List", "items": [pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, "2025-02-01T00:00:00Z")]}))
    r = CliRunner().invoke(cli, ["report", "inventory", "--data", str(scenario_data), "--pods", str(pods), "-o", "json"])
    assert r.exit_code == 0, r.output
    rows = {s["source"]: s["source_ips"] for s in json.loads(r.stdout)["sources"]}
    assert rows["shop/uploader"] == [UPLOADER] and rows[CI] == [CI]
    text = CliRunner().invoke(cli, ["report", "inventory", "--data", str(scenario_data), "--pods", str(pods), "-o", "text"])
    assert text.exit_code == 0 and "shop/uploader" in text.stdout and "source_ips" not in text.stdout


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_pods_file_saved_by_powershell(tmp_path, encoding):
    """`kubectl get pods -A -o json > pods.json` in Windows PowerShell 5 writes UTF-16 with a
    byte-order mark (`Out-File -Encoding utf8`: UTF-8 with one): the same pods."""
    doc = {"kind": "List", "items": [pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, "2025-02-01T00:00:00Z")]}
    p = tmp_path / "pods.json"
    p.write_bytes(json.dumps(doc).encode(encoding))
    assert load_pods(p).to_pylist() == pods_from_json(doc).to_pylist()


@pytest.mark.parametrize("content,message", [("{", "cannot read pods file"), ('{"kind": "Service"}', "not a Kubernetes pod list")])
def test_pods_file_errors(tmp_path, content, message):
    from logpipe.errors import InputError

    p = tmp_path / "pods.json"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        load_pods(p)


# ---- CLI -------------------------------------------------------------------------------------------


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def run_once(*args):
    """``run(*args)`` of a report or query that only reads (the scenario's dataset, which no test
    changes), run once for every test that asks for the same (with the same LOGPIPE_* settings): a
    report's run is most of their time."""
    import os

    return _run_once(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LOGPIPE"))), *args)


@functools.lru_cache(maxsize=None)
def _run_once(_env, *args):
    return run(*args)


def test_cli_json_shape(scenario_data):
    r = run_once("report", "anomalies", "--data", str(scenario_data), "-o", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert list(doc) == ["window", "baseline", "findings"]
    assert list(doc["findings"][0]) == list(reports.FINDING_KEYS)
    assert doc["findings"][0]["severity"] == "critical"


@pytest.mark.parametrize("fmt,expect", [("text", "CRITICAL error_spike"), ("markdown", "| severity | kind |")])
def test_cli_text_and_markdown(scenario_data, fmt, expect):
    r = run_once("report", "anomalies", "--data", str(scenario_data), "-o", fmt)  # (the text: the README check's too)
    assert r.exit_code == 0, r.output
    assert expect in r.stdout and "\x1b[" not in r.stdout  # not a TTY: no colour
    assert "MESH_EXTERNAL" in r.stdout


# What a reader of the inventory cannot guess: each value of these columns is named in the legend.
CODED = {"egress_kind": {"waypoint", "registered", "passthrough", "blocked", "public_ip"},
         "transport": {"plaintext", "tls-origination", "tls", "tcp", "not-connected", "blocked"}}


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_inventory_says_what_its_columns_mean(scenario_data, fmt, tmp_path, monkeypatch):
    """Under each table a legend of its columns (its query's `-- @column` lines, the one place they are
    written): flagged, the transport and egress_kind values, the _count columns; none for a column the
    table lacks (a user's query of fewer columns)."""
    from logpipe.queries import load_queries

    text = run_once("report", "inventory", "--data", str(scenario_data), "-o", fmt).stdout
    flat = " ".join(text.split())
    doc = json.loads(run_once("report", "inventory", "--data", str(scenario_data), "-o", "json").stdout)
    queries = load_queries()
    assert text.count("Columns:") == 2
    for section, cols in (("destinations", ["egress_kind", "flagged", "transport", "source_count"]),
                          ("sources", ["destination_count", "blocked", "unregistered"])):
        meanings = queries[section].extra["columns"]
        for c in cols:
            said = f"- `{c}`: {meanings[c]}" if fmt == "markdown" else f"{c} {meanings[c]}"
            assert said in flat, c
    for col, values in CODED.items():
        meaning = queries["destinations"].extra["columns"][col]
        assert {d[col] for d in doc["destinations"]} - {None} <= values
        assert all(f"{v} (" in meaning for v in values), (col, meaning)
    mine = tmp_path / "q" / "inventory"
    mine.mkdir(parents=True)
    sql = (ROOT / "queries" / "inventory" / "destinations.sql").read_text()
    (mine / "destinations.sql").write_text(sql.split("SELECT\n", 1)[0] + "SELECT destination, count(*) AS flagged\n"
                                           "FROM egress WHERE $since = $since AND $until = $until GROUP BY 1")
    monkeypatch.setenv("LOGPIPE_QUERIES", str(tmp_path / "q"))
    text = run("report", "inventory", "--data", str(scenario_data), "-o", fmt).stdout
    mine_legend = text.split("Columns:", 1)[1].split("Sources and their destinations")[0]
    assert "flagged" in mine_legend and "egress_kind" not in mine_legend and "transport" not in mine_legend



def test_the_transport_legend_is_true_of_a_destination_whose_every_connection_failed(tmp_path):
    """A connection that failed to connect (UF,URX, no byte either way: nothing reached
    pg.partner.example) reads not-connected (it read tcp, as one that got through); the legend said
    "what left the mesh", which nothing did. It names not-connected, and error_share (1.0 here) counts them."""
    from logpipe.queries import load_queries

    log = tmp_path / "failed.log"
    log.write_text('[2025-03-12T03:14:39.286Z] "- - -" 0 UF,URX - - "-" 0 0 1003 - "-" "-" "-" "-" '
                   '"[2001:db8::5432]:5432" outbound|5432||pg.partner.example - [2001:2::f0f0:12]:5432 '
                   '[fd00:10:244::1b]:60524 - -\n')
    doc = json.loads(run("report", "inventory", "--input", str(log), "-o", "json").stdout)
    [row] = doc["destinations"]
    assert (row["destination"], row["transport"], row["error_share"], row["flagged"]) == ("pg.partner.example", "not-connected", 1.0, 1)
    meaning = load_queries()["destinations"].extra["columns"]["transport"]
    assert "left the mesh" not in meaning
    assert meaning.startswith("how the proxy sent it on, judged by its requests that connected upstream")
    assert "not-connected (none connected: each failed with a response flag that means no upstream connection" in meaning


def test_readme_demo_inventory_lines_are_the_reports(scenario_data):
    """README's abridged `make demo` output: the inventory's lines it shows whole (not cut with …) are
    lines the report prints, its legend's among them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("-o text\nEgress inventory\n", 1)[1].split("\nEgress anomalies\n", 1)[0]
    shown = [line for line in block.splitlines() if line.strip() and "…" not in line]
    out = run_once("report", "inventory", "--data", str(scenario_data), "-o", "text").stdout.splitlines()
    assert any(line.startswith("  transport ") for line in shown)
    assert [line for line in shown if line not in out] == []


def test_readme_demo_anomalies_lines_are_the_reports(scenario_data):
    """README's abridged `make demo` output of the anomalies: each line it shows is one the report
    prints, in the report's order, whole or cut with … after its start (a `…` alone leaves lines out).
    It showed `… with the ServiceEntry that would register it, ready for kubectl apply`, a line the
    report never printed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("\nEgress anomalies\n", 1)[1].split("\nlogpipe: wrote report.html\n", 1)[0]
    shown = [line.rstrip() for line in block.splitlines() if line.strip() and line.strip() != "…"]
    out = run_once("report", "anomalies", "--data", str(scenario_data), "-o", "text").stdout.splitlines()
    at = 0
    for line in shown:
        start, cut, _ = line.partition("…")
        assert not cut or start.strip(), f"README shows no start of the report's line: {line!r}"
        found = [i for i in range(at, len(out)) if (out[i].startswith(start) if cut else out[i].rstrip() == line)]
        assert found, f"README shows a line the report does not print (in this order): {line!r}"
        at = found[0] + 1
    assert "22 findings: 1 critical, 7 high, 10 medium, 4 low" in shown and len(shown) == 14


def test_cli_inventory_covers_all_data(scenario_data):
    r = run_once("report", "inventory", "--data", str(scenario_data), "-o", "json")
    doc = json.loads(r.stdout)
    assert sum(d["requests"] for d in doc["destinations"]) > 3000


@pytest.mark.parametrize("name, how", [("inventory", "-"), ("anomalies", "dir")])
def test_cli_report_on_log_files_equals_the_report_on_their_dataset(scenario_data, name, how):
    """``--input FILE`` (a directory, stdin): the logs parsed in memory give the report their
    dataset gives; the parse's summary on stderr, the baseline named as the logs'. (How the logs are
    read is the report's alike: each report reads them one way, the other report the other.)"""
    want = json.loads(run_once("report", name, "--data", str(scenario_data), "-o", "json").stdout)
    if name == "anomalies":
        assert want["baseline"].pop("source") == "dataset"
    text = "".join(p.read_text(encoding="utf-8") for p in (SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"))
    args, stdin = (["--input", str(SCENARIO)], None) if how == "dir" else (["--input", "-"], text)
    r = run("report", name, *args, "-o", "json", input=stdin)
    assert r.exit_code == 0, r.output
    assert "read 3815, parsed 3815" in r.stderr
    got = json.loads(r.stdout)
    if name == "anomalies":
        assert got["baseline"].pop("source") == "the --input logs"
    assert got == want


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_cli_a_report_of_no_records_is_empty_and_exits_0(tmp_path, empty_data, name):
    """Data of no record (an ingested empty log, a quiet pod's; --input logs of no access line) is no
    error (exit 1 is one: README): both reports answer empty and exit 0, as a query's empty answer
    does, and say why on stderr. The anomalies exited 1 where the inventory printed (none), and told
    to `logpipe ingest PATH`, the command just run; --input logs with no access line are no dataset to
    ingest into either (it said so too): an empty log the inventory's, a log of istio-agent's lines
    the anomalies' (the note is the reports' one, of parsed logs of no access line)."""
    empty, agent = tmp_path / "empty.log", tmp_path / "agent.log"
    empty.write_text("")
    agent.write_text("2025-01-30T10:53:15.757058Z\tinfo\tads\tADS: new connection for node:waypoint-1\n")
    empties = {"inventory": {"destinations": [], "sources": []}, "anomalies": {"findings": []}}[name]
    for args in (["--data", str(empty_data)], ["--input", str(empty if name == "inventory" else agent)]):
        r = run("report", name, *args, "-o", "json")
        assert r.exit_code == 0, r.output
        assert {k: v for k, v in json.loads(r.stdout).items() if k in empties} == empties
        whose = "the dataset holds no records" if args[0] == "--data" else "the --input logs hold no access lines"
        assert f"logpipe: note: {whose}" in r.stderr and "so the report is empty" in r.stderr, r.stderr
        assert "ingest" not in r.stderr.splitlines()[-1] and "baseline" not in r.stderr
    r = run("report", name, "--data", str(empty_data), "-o", "text")
    assert r.exit_code == 0 and ("(none)" if name == "inventory" else "0 findings") in r.stdout, r.output


def test_cli_report_with_nothing_to_read_says_what_to_give(tmp_path):
    """A missing dataset's hint names ``--input``, which the report takes too (it named `logpipe query
    --input`)."""
    for name in ("inventory", "anomalies"):
        r = CliRunner().invoke(cli, ["report", name, "--data", str(tmp_path / "nothing")], standalone_mode=False)
        assert str(r.exception).startswith(f"no dataset at {tmp_path / 'nothing'}"), r.exception
        assert str(r.exception).endswith("(or read log files without one, with --input FILE)")


def test_cli_report_takes_the_egress_views_settings(scenario_data):
    """--cluster-domain / --internal-cidr set the egress view for a report as for a query (README: "the
    cluster domain and internal CIDRs are settings"; report refused them: no such option)."""
    def destinations(*args):
        r = run_once("report", "inventory", "--data", str(scenario_data), "-o", "json", *args)
        assert r.exit_code == 0, r.output
        return {d["destination"] for d in json.loads(r.stdout)["destinations"]}

    usual = destinations()
    assert "details.legacy.svc.cluster.local" not in usual
    other = destinations("--cluster-domain", "corp.internal", "--internal-cidr", "default")
    assert other - usual == {"details.legacy.svc.cluster.local", "reviews.legacy.svc.cluster.local"}


def test_cli_list_shows_thresholds():
    r = run("report", "anomalies", "--list")
    assert r.exit_code == 0
    for text in ("error_spike: Error and failure spikes", "-p spike_factor 3.0", "-p tls_ports 443,8443"):
        assert text in r.stdout


@pytest.mark.parametrize("args", [["-o", "json"], ["--out", "sections.html"]])
def test_cli_list_refuses_an_output_it_would_not_write(tmp_path, args, monkeypatch, capsys):
    """`report NAME --list` prints text: -o/--out are refused in one line (they were ignored, exit 0)."""
    from logpipe.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["logpipe", "report", "inventory", "--list", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and not (tmp_path / "sections.html").exists()
    assert err == ("logpipe: error: `logpipe report inventory --list` lists the sections and their "
                   "parameters in text, which -o/--out do not change: drop them\n")


@pytest.mark.parametrize("command,args,given", [
    (["report", "anomalies"], ["-p", "spike_factor", "2"], "-p would be ignored: drop it"),
    (["report", "inventory"], ["--input", "-"], "--input would be ignored: drop it"),
    (["query", "destinations"], ["-p", "tls_ports", "443", "--input", "x.log"], "-p and --input would be ignored: drop them"),
    (["query"], ["-p", "limit", "3"], "-p would be ignored: drop it"),
    (["report", "anomalies"], ["--since", "2025-03-08", "--baseline-days", "3", "--pods", "pods.json"],
     "--pods, --baseline-days and --since would be ignored: drop them"),
    (["report", "anomalies"], ["--baseline", "old-data", "--until", "2025-03-09"],
     "--baseline and --until would be ignored: drop them"),
    (["query", "top_destinations"], ["--max-width", "20"], "--max-width would be ignored: drop it"),
])
def test_cli_list_refuses_parameters_and_inputs_it_would_ignore(command, args, given, monkeypatch, capsys):
    """--list runs nothing: -p, --input and the options that choose a report's rows or shape a query's table
    were ignored (exit 0, the listing on stdout); now refused in one line."""
    from logpipe.cli import main

    monkeypatch.setattr(sys, "argv", ["logpipe", *command, "--list", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err == (f"logpipe: error: `logpipe {' '.join(command)} --list` runs no query and reads no logs, so "
                   f"{given}, or run it without --list\n")


@pytest.mark.parametrize("args,message", [
    (["-p", "no_such", "1"], "no report parameter 'no_such'; the parameters are: "),
    (["-p", "min_request", "3"], "no report parameter 'min_request' (did you mean min_requests?); the parameters"),
    (["inventory", "--baseline-days", "3"], "the inventory has no baseline"),
    (["inventory", "--since", "2030-01-01"], "after the last record"),  # (as the anomalies; it was an empty inventory)
    (["--baseline", str(SCENARIO)], f"--baseline {SCENARIO} is not a logpipe dataset"),  # (a directory of logs)
    (["-p", "since", "2025-01-01"], "use those options"),
    (["-p", "spike_factor", "abc"], "takes a number"),
    # (min_requests is five sections' threshold, of three defaults: the message named error_spike's alone)
    (["-p", "min_requests", "abc"], "query error_spike: parameter min_requests takes an integer (default 10), not 'abc'"),
    (["-p", "new_destination.min_requests", "abc"],
     "query new_destination: parameter min_requests takes an integer (default 1), not 'abc'"),
    (["-p", "bucket_minutes", "0"], "query error_spike: Out of Range Error: Can't bucket using zero days; check the value"
                                    " given (-p bucket_minutes 0; `--list` shows each parameter's default)"),
    (["--baseline-days", "30"], "covers all the data"),
    (["--baseline-days", "2", "--baseline", "x"], "give one of them"),
    (["--baseline-days", "3", "--since", "2025-03-02"], "falls inside the baseline's first 3 day(s)"),
    # (the window ran from the baseline's end to an --until before it: "window 2025-03-04 00:00 UTC to
    # 2025-03-03 00:00 UTC: 0 egress requests", exit 0, and a note to give --since/--until)
    (["--baseline-days", "3", "--until", "2025-03-03"], "--until 2025-03-03 00:00 leaves no window after the "
                                                        "baseline's first 3 day(s), which end 2025-03-04 00:00 UTC"),
    (["--baseline-days", "3", "--until", "2025-03-04"], "leaves no window after the baseline's first 3 day(s)"),
    (["--since", "yesterday"], "not an ISO time"),
    (["--since", "2030-01-01"], "after the last egress request"),
    (["--until", "2020-01-01"], "before the first egress request"),
])
def test_cli_usage_errors(scenario_data, args, message):
    import logpipe.cli as cli_module

    which = [args.pop(0)] if args[0] == "inventory" else ["anomalies"]
    r = CliRunner().invoke(cli_module.cli, ["report", *which, "--data", str(scenario_data), *args],
                           standalone_mode=False)
    text = str(r.exception) if r.exception else r.output
    assert message in text


@pytest.mark.parametrize("args,message", [
    # The anomalies' bounds are the egress requests' (the scenario's first record, 00:10:40, is a call
    # inside the mesh): it said "before the first record (2025-03-01T00:14Z)", which was not.
    (["anomalies", "--until", "2025-03-01T00:12"],
     "--until 2025-03-01T00:12Z is before the first egress request (2025-03-01T00:14Z); choose a later time"),
    # Times alike to the minute are told apart: "00:10Z is before the first record (…00:10Z)".
    (["inventory", "--until", "2025-03-01T00:10"],
     "--until 2025-03-01T00:10:00Z is before the first record (2025-03-01T00:10:40Z); choose a later time"),
    (["anomalies", "--until", "2025-03-01T00:14:24"],
     "--until 2025-03-01T00:14:24.000Z is before the first egress request (2025-03-01T00:14:24.252Z); choose a later time"),
    (["anomalies", "--since", "2025-03-08T23:58:44"],
     "--since 2025-03-08T23:58:44Z is after the last egress request (2025-03-08T23:58:42Z); choose an earlier time"),
])
def test_a_window_bound_outside_the_data_names_what_it_is_outside_of(scenario_data, args, message):
    import logpipe.cli as cli_module

    r = CliRunner().invoke(cli_module.cli, ["report", args[0], "--data", str(scenario_data), *args[1:]],
                           standalone_mode=False)
    assert str(r.exception) == message


def test_cli_param_changes_result(scenario_data):
    r = run("report", "anomalies", "--data", str(scenario_data), "-o", "json", "-p", "blocked_high", "5")
    doc = json.loads(r.stdout)
    assert {f["severity"] for f in doc["findings"] if f["kind"] == "blocked_attempt"} == {"high"}


@pytest.mark.parametrize("tty", [True, False])
def test_text_colours_only_on_a_tty_and_escapes_log_values(tty):
    import io

    finding = {"kind": "new_destination", "severity": "high", "source": "10.0.0.1\x1b[2J",
               "destination": "evil\u202e.example", "evidence": {"requests": 1}, "advice": "look"}
    doc = {"window": {"start": None, "end": None, "requests": 1},
           "baseline": {"start": None, "end": None, "requests": 1, "source": "dataset"}, "findings": [finding]}
    out = io.StringIO()
    reports.render_text(doc, "anomalies", out, tty=tty)
    text = out.getvalue()
    assert "\x1b[2J" not in text and "\u202e" not in text
    assert "10.0.0.1\\x1b[2J" in text and "evil\\u202e.example" in text
    assert ("\x1b[1;31mHIGH" in text) is tty and ("\x1b[" in text) is tty


def test_a_report_keeps_the_rows_and_columns_its_queries_read(tmp_path, monkeypatch):
    """A report computes the traffic view once, into a temporary table that egress and denials read:
    its egress rows and (for authz_denial) its denials, an inbound sidecar's too, in the columns the
    report's SQL names (a row of every column took twice the time and memory). A query of the user's
    ($LOGPIPE_QUERIES) gets every column (its SELECT * of egress is whole), and every row when it
    names traffic."""
    from logpipe import db

    scenario_data = write_dataset([*sorted(SCENARIO.glob("*.log")), ROOT / "sample_logs" / "sidecar-inbound-1.22.log"],
                                  tmp_path / "d")

    inventories = []

    def kept(report):
        """The columns and (rows, non-egress rows) of the report's traffic table (and, of the inventory,
        its document as `logpipe report inventory -o json` prints it, into ``inventories``)."""
        with report_db(scenario_data, report=report) as (con, _):
            if report == "inventory":
                inventories.append(reports.public(reports.run_report(con, report, window=reports.inventory_window(con))))
            return ({r[0] for r in con.execute("DESCRIBE temp.main.traffic").fetchall()},
                    con.execute("SELECT count(*), count(*) FILTER (WHERE egress_kind IS NULL) FROM temp.main.traffic")
                    .fetchall()[0])

    counts = ("SELECT (SELECT count(*) FROM traffic), (SELECT count(*) FROM egress), "
              "(SELECT count(*) FROM denials WHERE egress_kind IS NULL)")
    con = db.connect(scenario_data, uses=["DESCRIBE traffic", counts])  # (their views alone: ~0.3 s less)
    try:
        every = {r[0] for r in con.execute("DESCRIBE traffic").fetchall()}
        rows, egress, denied = con.execute(counts).fetchall()[0]
    finally:
        con.close()
    assert 0 < denied and egress + denied < rows
    inventory, anomalies = kept("inventory"), kept("anomalies")
    assert inventory[1] == (egress, 0) and anomalies[1] == (egress + denied, denied)
    assert {"user_agent", "x_forwarded_for", "path"}.isdisjoint(inventory[0] | anomalies[0])
    assert {"destination", "egress_kind", "duration"} <= inventory[0] < every
    mine = tmp_path / "q" / "inventory"
    mine.mkdir(parents=True)
    (mine / "zz_rows.sql").write_text("-- title: rows\n-- @param since ''\n-- @param until ''\n"
                                      "SELECT * FROM egress WHERE $since = $since AND $until = $until LIMIT 1")
    monkeypatch.setenv("LOGPIPE_QUERIES", str(tmp_path / "q"))
    assert kept("inventory") == (every, (egress, 0))
    assert set(inventories[-1]["zz_rows"][0]) == every
    (mine / "zz_rows.sql").write_text("-- title: rows\n-- @param since ''\n-- @param until ''\n"
                                      "SELECT count(*) AS n FROM traffic WHERE $since = $since AND $until = $until")
    assert kept("inventory") == (every, (rows, rows - egress))
    assert inventories[-1]["zz_rows"] == [{"n": rows}]


def test_report_rows_in_a_scratch_file_left_nowhere(scenario_data, tmp_path, monkeypatch):
    """A report's rows are kept in a DuckDB file of its own (compressed: 10M rows 2.6 → 0.33 GB),
    whose name is gone as soon as it is attached: no file is left in the spill directory, during
    the report or after. Where no file can be made there, the rows stay in memory and the report
    is the same."""
    from logpipe import db

    spill = tmp_path / "spill"
    monkeypatch.setattr(db, "spill_dir", lambda: spill)
    with report_db(scenario_data, report="anomalies") as (con, floor):
        assert db.has_scratch(con)
        assert con.execute("SELECT table_catalog FROM information_schema.tables WHERE table_name = 'traffic' "
                           "AND table_type = 'BASE TABLE'").fetchall() == [(db.SCRATCH,)]
        assert list(spill.iterdir()) == []
        kept = _anomalies((con, floor))
    assert list(spill.iterdir()) == []
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(db, "spill_dir", lambda: tmp_path / "file" / "spill")  # (no directory can be made)
    with report_db(scenario_data, report="anomalies") as (con, floor):
        assert not db.has_scratch(con)
        assert _anomalies((con, floor)) == kept


def test_the_inventorys_and_egress_queries_times_are_to_the_millisecond_ztunnels_too(tmp_path):
    """first_seen/last_seen of the inventory (destinations, sources) and of the egress queries
    (by_source, denied) to the millisecond, as a finding's evidence (queries/views/evidence_time.sql):
    a destination ztunnel alone reached said ``…44.080629Z``, one a waypoint reached ``…44.080Z``."""
    from test_ztunnel_egress import BYPASS

    from conftest import run_logpipe

    (tmp_path / "zt.log").write_text(BYPASS + "\n")
    assert run_logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path).returncode == 0
    for args in (("report", "inventory"), ("query", "destinations"), ("query", "sources"), ("query", "by_source")):
        r = run_logpipe(*args, "--data", "ds", "-o", "json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert '"2024-04-12T10:17:44.080Z"' in r.stdout and "080629" not in r.stdout, (args, r.stdout)


def test_pods_of_one_ip_that_started_alike_do_not_double_its_rows(scenario_data, tmp_path):
    """Two pods of one IP with no start time (or the same one) each got an open interval, and the
    traffic view's join on them gave every row of the IP twice with --pods: the last listed holds it."""
    pods = tmp_path / "pods.json"
    undated = [pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, None), pod("batch-x", UPLOADER, None, owner=("Job", "batch"), ns="jobs"),
               pod("twin-1", CI, "2025-02-01T00:00:00Z", owner=("ReplicaSet", "twin-1")),
               pod("twin-2", CI, "2025-02-01T00:00:00Z", owner=("ReplicaSet", "twin-2"))]
    for p in undated[:2]:
        del p["status"]["startTime"]
    pods.write_text(json.dumps({"kind": "List", "items": undated}))
    sql = "select source_ip, source_workload, count(*) AS n from egress where source_ip in ('%s', '%s') group by all order by 1" % (UPLOADER, CI)
    plain = CliRunner().invoke(cli, ["query", "--data", str(scenario_data), "--sql", sql, "-o", "json"])
    named = CliRunner().invoke(cli, ["query", "--data", str(scenario_data), "--pods", str(pods), "--sql", sql, "-o", "json"])
    assert plain.exit_code == 0 and named.exit_code == 0, named.output
    before, after = json.loads(plain.stdout), json.loads(named.stdout)
    assert [(r["source_ip"], r["n"]) for r in after] == [(r["source_ip"], r["n"]) for r in before]
    assert {r["source_workload"] for r in after} == {"jobs/batch", "shop/twin-2"}


def test_ztunnels_workloads_of_one_ip_whose_lines_interleave_do_not_double_its_rows(tmp_path):
    """Per IP, ztunnel's workloads hold it between boundaries halfway from the previous holders' last
    line to the next one's first: taken from the workload just before (lag), a workload seen 10..100 s
    held the IP until 60 s and one seen 40..50 s from 35 s, and traffic's join on client_workloads
    gave every row of the IP between them twice (8 rows of 6)."""
    line = ("2024-04-12T10:{t}.000000Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:4116{i} "
            "src.workload={w} src.namespace=default dst.addr=1.2.3.4:443 dst.service=example.com "
            'direction="outbound" bytes_sent=67 bytes_recv=490 duration="2ms"')
    seen = [("00:10", "a"), ("00:20", "b"), ("00:30", "b"), ("00:40", "c"), ("00:50", "c"), ("01:40", "a")]
    log = tmp_path / "zt.log"
    log.write_text("".join(line.format(t=t, i=i, w=w + "-pod") + "\n" for i, (t, w) in enumerate(seen)))
    r = CliRunner().invoke(cli, ["query", "--input", str(log), "-o", "json", "--sql",
                                 "select start_time, source_workload from traffic order by 1, 2"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == len(seen)
    assert all(w["source_workload"] for w in rows)


def test_a_reports_views_over_traffic_bind_over_its_table(scenario_data, monkeypatch):
    """A report's connection makes the views over traffic (egress, denials, report_bounds,
    baseline_destinations) after traffic is a table: each binds when made, and over the traffic
    view it bound that view's whole tree again (the scenario's anomalies: 0.31 → 0.10 CPU-s of views)."""
    from logpipe import db

    made_over_table = {}
    create = db._create_views

    def recording(con, uses=None):
        over_table = bool(con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = 'traffic' AND temporary").fetchall())
        before = set(db._MADE.get(con, ()))
        create(con, uses)
        made_over_table.update({p.name: over_table for p in db._MADE[con] - before})

    monkeypatch.setattr(db, "_create_views", recording)
    with report_db(scenario_data, report="anomalies"):
        pass
    assert not made_over_table["traffic.sql"]
    for name in ("egress.sql", "denials.sql", "report_bounds.sql", "baseline_destinations.sql"):
        assert made_over_table[name], name


def test_the_inventory_keeps_the_rows_of_a_small_dataset(scenario_data, monkeypatch):
    """``open_report_db(keep_rows=None)`` (the inventory's text and JSON) keeps the traffic rows in a
    table (in memory) under db.SMALL_ROWS rows, where planning the traffic view in each section
    costs more than the table, and not at or over it; the inventory is the same either way. (Two
    connections and inventories: ~0.6 s of CPU.)"""
    def inventory():
        with report_db(scenario_data, report="inventory", keep_rows=None) as (con, _):
            kept = con.execute("SELECT database_name FROM duckdb_tables() WHERE table_name = 'traffic'").fetchall()
            return kept, reports.to_json(reports.run_report(con, "inventory", window=reports.inventory_window(con)))

    small, large = inventory(), None
    from logpipe import db

    monkeypatch.setattr(db, "SMALL_ROWS", 1)
    large = inventory()
    assert small[0] == [("temp",)] and large[0] == []
    assert small[1] == large[1] and '"destinations": [' in small[1]
