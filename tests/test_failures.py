"""One definition of a failed request for the failure-based reports: queries/views/is_failure.sql (a
5xx, a failure response flag, or a connection ztunnel logged with an error that is not a policy's;
false, not null, when none is logged), counted over egress that is not blocked, by error_spike, the
HTML report's error-share chart (with error_spike's failure_flags) and the stream's failure_burst
alert (logpipe/alerts.py ROWS_SQL). The same table of cases goes through all of them."""
from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pytest

from logpipe.schema import RECORD_SCHEMA

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
CODES = [0, 200, 404, 503, None]
FLAGS = [[], None, ["UF"], ["UAEX"], ["DC"], ["UC"], ["UAEX", "DC"]]
FAILURE_FLAGS = {"UF", "UC"}  # of the cases' flags, those in error_spike's failure_flags (not DC: a client's hang-up)


def fails(code, flags) -> bool:
    return (code or 0) >= 500 or bool(set(flags or ()) & FAILURE_FLAGS)


CASES = [(code, flags, blocked) for (code, flags), blocked in itertools.product(
    itertools.product(CODES, FLAGS), (False, True))]
# ztunnel's `error` on a connection it made straight to a public address (no flag, no code says it
# failed: istio/ztunnel src/proxy/metrics.rs access_log!, src/proxy.rs Error); a policy's refusal is
# authz_denial's, not a failure (as an RBAC 403 is none)
ZTUNNEL_ERRORS = [None, "io error: Connection refused (os error 111)", "io error: deadline has elapsed",
                  "http status: 503 Service Unavailable", "no healthy upstream: 203.0.113.7:443",
                  "connection closed due to policy rejection: allow policies exist, but none allowed",
                  "connection closed due to policy change",
                  # the client's own hang-up (Error::ClientDisconnected): Envoy's DC, no failure by default
                  "client disconnected before all data was written",
                  "send: client disconnected before all data was written"]


def ztunnel_fails(error) -> bool:
    return error is not None and "due to policy" not in error and "client disconnected" not in error


def host(i: int) -> str:
    return f"case{i}.example"


def zt_host(i: int) -> str:
    return f"zt{i}.example"


def case_records() -> pa.Table:
    """One egress row per case, each to its own destination: registered through a ServiceEntry, or
    blocked by the block_all route."""
    rows = []
    for i, (code, flags, blocked) in enumerate(CASES):
        row = {"start_time": T0, "line_number": i + 1, "downstream_remote_address_ip": "10.244.1.5",
               "response_code": code, "response_flags": flags, "method": "GET", "path": "/"}
        if blocked:
            row.update(route_name="block_all", authority=host(i), downstream_local_address_ip="198.51.100.78",
                       downstream_local_address_port=80)
        else:
            row.update(upstream_cluster=f"outbound|443||{host(i)}", upstream_cluster_direction="outbound",
                       upstream_cluster_port=443, upstream_cluster_host=host(i), upstream_host_ip="192.0.2.45",
                       upstream_host_port=443, authority=host(i))
        rows.append(row)
    for i, error in enumerate(ZTUNNEL_ERRORS):  # (ztunnel alone: no waypoint, a public address)
        rows.append({"start_time": T0, "line_number": len(CASES) + i + 1, "log_format": "ztunnel",
                     "downstream_remote_address_ip": "10.244.1.5", "direction": "outbound", "response_code": 0,
                     "dst_service": zt_host(i), "upstream_host_ip": "203.0.113.7", "upstream_host_port": 443,
                     "error": error})
    return pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)


def expected() -> set[str]:
    return ({host(i) for i, (code, flags, blocked) in enumerate(CASES) if not blocked and fails(code, flags)}
            | {zt_host(i) for i, error in enumerate(ZTUNNEL_ERRORS) if ztunnel_fails(error)})


def live() -> set[str]:
    """The destinations of the cases not blocked: both sides of a failed share."""
    return ({host(i) for i, (_, _, blocked) in enumerate(CASES) if not blocked}
            | {zt_host(i) for i in range(len(ZTUNNEL_ERRORS))})


@pytest.fixture(scope="module")
def con():
    from logpipe.db import connect

    c = connect(tables={"records": case_records()})
    yield c
    c.close()


def query_con(table: pa.Table):
    """A connection of ``table`` as its records for run_query, made as a report's is (``connect``'s
    ``uses``): no view up front, run_query makes those its statement names (~0.1 s less a connection)."""
    from logpipe.db import connect

    return connect(tables={"records": table}, uses=())


def error_spike_flags() -> str:
    from logpipe.queries import bind_params, load_queries

    return bind_params(load_queries()["error_spike"], None)["failure_flags"]


def test_the_cases_are_egress_of_the_kind_meant(con):
    got = dict(con.execute("SELECT destination, egress_kind FROM egress").fetchall())
    assert got == ({host(i): "blocked" if blocked else "registered" for i, (_, _, blocked) in enumerate(CASES)}
                   | {zt_host(i): "registered" for i in range(len(ZTUNNEL_ERRORS))})


@pytest.mark.parametrize("code,flags", list(itertools.product(CODES, FLAGS)))
def test_is_failure_macro(con, code, flags):
    """A 5xx or a flag of the list; a 4xx, UAEX (a denial) or nothing logged is no failure, and false
    rather than null (so that NOT is_failure(…) keeps the row too)."""
    got = con.execute("SELECT is_failure($1::INTEGER, $2::VARCHAR[], $3)",
                      [code, flags, error_spike_flags()]).fetchall()[0][0]
    assert got is fails(code, flags)


@pytest.mark.parametrize("error", ZTUNNEL_ERRORS)
@pytest.mark.parametrize("code,flags", [(0, []), (None, None), (503, []), (0, ["UF"])])
def test_is_failure_counts_ztunnel_s_errors_but_a_policy_s(con, code, flags, error):
    """The four-argument form adds ztunnel's `error`: a connection it could not make (refused, timed
    out, an HBONE 503) failed; a policy's refusal is authz_denial's (ztunnel_denial.sql), not a failure."""
    got = con.execute("SELECT is_failure($1::INTEGER, $2::VARCHAR[], $3, $4::VARCHAR)",
                      [code, flags, error_spike_flags(), error]).fetchall()[0][0]
    assert got is (fails(code, flags) or ztunnel_fails(error))


@pytest.mark.parametrize("code,flags", list(itertools.product(CODES, FLAGS)))
def test_is_failure_s_first_form_is_the_whole_one_without_the_error(con, code, flags):
    """is_failure(response_code, response_flags, failure_flags), as an operator's own SQL called it
    before `error` was added, still runs, and means the four-argument form with `error` unknown."""
    three, four = con.execute("SELECT is_failure($1::INTEGER, $2::VARCHAR[], $3), "
                              "is_failure($1::INTEGER, $2::VARCHAR[], $3, NULL)",
                              [code, flags, error_spike_flags()]).fetchall()[0]
    assert three is four is fails(code, flags)


def test_ztunnel_s_client_disconnect_is_a_failure_as_dc_is(con):
    """ztunnel's "client disconnected before all data was written" is the client hanging up, Envoy's
    DC: a failure (and an error in the error shares) only when failure_flags names DC."""
    hangup = "client disconnected before all data was written"
    for macro in ("is_failure(0, [], $1, $2)", "is_error(0, [], $1, NULL, $2)"):
        assert con.execute(f"SELECT {macro}", [error_spike_flags(), hangup]).fetchall()[0][0] is False
        assert con.execute(f"SELECT {macro}", [error_spike_flags() + ",DC", hangup]).fetchall()[0][0] is True
        assert con.execute(f"SELECT {macro}", ["UF", "io error: deadline has elapsed"]).fetchall()[0][0] is True


def test_is_failure_takes_the_flags_given(con):
    assert con.execute("SELECT is_failure(403, ['UAEX'], 'UAEX,UF')").fetchall()[0][0] is True
    assert con.execute("SELECT is_failure(0, ['UF'], 'UH')").fetchall()[0][0] is False


@pytest.mark.parametrize("code,flags", list(itertools.product(CODES, FLAGS)))
def test_is_error_s_first_form_is_the_whole_one_without_the_policy_columns(con, code, flags):
    """is_error(response_code, response_flags, failure_flags), as an operator's own SQL called it before
    the policy columns were added, still runs, and means the five-argument form with those two unknown
    (a 4xx too, unlike is_failure)."""
    three, five = con.execute("SELECT is_error($1::INTEGER, $2::VARCHAR[], $3), is_error($1::INTEGER, $2::VARCHAR[], $3, NULL, NULL)",
                              [code, flags, error_spike_flags()]).fetchall()[0]
    assert three is five is ((code or 0) >= 400 or bool(set(flags or ()) & FAILURE_FLAGS))


def test_error_spike_counts_the_macros_failures(con):
    """Every non-blocked case's destination is a finding (no baseline, no threshold) whose failures
    are the macro's; blocked ones are counted by neither side of the share."""
    from logpipe.queries import load_queries, run_query

    hour = dt.timedelta(hours=1)
    found = run_query(con, load_queries()["error_spike"], {
        "since": (T0 - hour).isoformat(), "until": (T0 + hour).isoformat(), "min_requests": 1,
        "min_error_share": 0.0, "spike_factor": 0.0}).to_pylist()
    assert {f["destination"] for f in found} == live()
    assert {f["destination"] for f in found if f["evidence"]["failures"]} == expected()
    assert all(f["evidence"]["requests"] == 1 for f in found)
    errors = {f["destination"]: f["evidence"]["errors"] for f in found if f["evidence"]["errors"]}
    assert errors == {zt_host(i): [e] for i, e in enumerate(ZTUNNEL_ERRORS) if ztunnel_fails(e)}


def test_a_bucket_without_failures_is_no_clients_hang_up(con):
    """With -p min_error_share 0 a bucket of no failure is a finding; its failures (none) are not all
    the clients' hang-ups: the advice is the one of failures, not 'Clients hung up on …'."""
    from logpipe.queries import load_queries, run_query

    hour = dt.timedelta(hours=1)
    found = run_query(con, load_queries()["error_spike"], {
        "since": (T0 - hour).isoformat(), "until": (T0 + hour).isoformat(), "min_requests": 1,
        "min_error_share": 0.0, "spike_factor": 0.0, "failure_flags": error_spike_flags() + ",DC"}).to_pylist()
    none = [f["advice"] for f in found if not f["evidence"]["failures"]]
    assert none and not any(a.startswith("Clients hung up") for a in none)


def test_a_client_hang_up_is_no_failure_by_default():
    """DC is Envoy's DownstreamConnectionTermination: the client closed its connection before the
    response (HTTP only; code 0, response_code_details downstream_remote_disconnect). The destination
    did not fail, and error_spike's advice sends the operator to the provider: DC is in no default
    list of failure flags (error_spike, so the stream and the HTML chart; the error shares), and a DC row
    is no failure for is_failure or is_error with it."""
    from logpipe.queries import failure_flags

    assert "DC" not in failure_flags()
    assert set(error_spike_flags().split(",")) == {"UF", "URX", "UH", "UO", "NR", "UT", "UC", "LR", "UR", "DF"}


def _spike_advice(rows: list[tuple[str, int | None, list[str]]], flags: str) -> dict[str, str]:
    """error_spike's advice per destination of ``rows`` (destination, code, flags), one hour, no baseline."""
    from logpipe.queries import load_queries, run_query

    records = [{"start_time": T0 + dt.timedelta(seconds=i), "line_number": i + 1, "response_code": code,
                "response_flags": fl, "downstream_remote_address_ip": "10.244.1.5", "authority": dest,
                "upstream_cluster": f"outbound|443||{dest}", "upstream_cluster_direction": "outbound",
                "upstream_cluster_port": 443, "upstream_cluster_host": dest}
               for i, (dest, code, fl) in enumerate(rows)]
    table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in records], schema=RECORD_SCHEMA)
    hour = dt.timedelta(hours=1)
    found = run_query(query_con(table), load_queries()["error_spike"], {
        "since": (T0 - hour).isoformat(), "until": (T0 + hour).isoformat(), "min_requests": 1,
        "failure_flags": flags}).to_pylist()
    return {f["destination"]: f["advice"] for f in found}


def test_with_dc_given_the_advice_does_not_blame_the_provider_for_clients_hanging_up():
    """-p failure_flags with DC counts hang-ups; a destination whose failures are all DC is told so (not
    "check the provider's status"), and one with others too says how many were only the client's."""
    rows = ([("hangup.example", 0, ["DC"])] * 10 + [("mixed.example", 503, ["UF"])] * 6
            + [("mixed.example", 0, ["DC"])] * 4)
    advice = _spike_advice(rows, "UF,DC")
    assert advice["hangup.example"].startswith("Clients hung up on hangup.example (DC: ")
    assert "provider" not in advice["hangup.example"]
    assert advice["mixed.example"].startswith("Failures to mixed.example rose to 100% from a baseline of 0.0%: "
                                              "check the provider's status")
    assert advice["mixed.example"].endswith(" 4 of the 10 failures are only DC: there the client hung up, not the "
                                            "provider (check the clients' timeouts).")
    without = _spike_advice(rows, "UF")  # (DC left out, as by default: the hang-ups are no failures)
    assert list(without) == ["mixed.example"] and without["mixed.example"].startswith("Failures to mixed.example rose to 60%")
    assert "only DC" not in without["mixed.example"]


def test_the_stream_alerts_rule_is_the_macros():
    """failure_burst (one failure is a burst here) alerts of exactly the destinations error_spike
    counts as failed (ROWS_SQL asks the macro), blocked, null and ztunnel's errors alike."""
    from logpipe.alerts import AlertRules

    rules = AlertRules(burst_threshold=1)
    assert ",".join(rules.failure_flags) == error_spike_flags()
    alerts = rules.check(case_records())
    assert {a.destination for a in alerts if a.kind == "failure_burst"} == expected()


def test_the_stream_s_failing_rows_are_the_macro_s(con):
    """The stream's rows (alerts.ROWS_SQL's `failing`) are failed as error_spike's: no copy of the rule."""
    from logpipe import alerts

    assert "is_failure(response_code, response_flags, $failure_flags, error)" in alerts.ROWS_SQL
    rows = con.sql(alerts.ROWS_SQL, params={"failure_flags": error_spike_flags()}).to_arrow_table().to_pylist()
    assert all(r["failing"] is not None for r in rows)
    assert {r["destination"] for r in rows if r["failing"]} == expected()


def test_the_html_error_chart_counts_what_error_spike_counts(con):
    """The chart's share is the macro's failures over the egress that is not blocked, with
    error_spike's flags (UC was missing from the chart's own list; a blocked 502 counted)."""
    from logpipe.html import chart_data
    from logpipe.reports import Window

    hour = dt.timedelta(hours=1)
    errors = chart_data(con, Window(T0, T0 + hour, T0 - hour, T0))["errors"]
    requests = len(live())
    assert errors == [{"t": T0, "error_share": round(len(expected()) / requests, 4), "requests": requests}]


@pytest.mark.parametrize("params", [{"failure_flags": "UC"}, {"error_spike.failure_flags": "UC"}])
def test_the_html_error_chart_takes_the_failure_flags_the_report_was_given(con, params):
    """`report anomalies -o html -p failure_flags UC`: the chart counts UC (and 5xx) as error_spike then
    does, not error_spike's default list."""
    from logpipe.html import chart_data
    from logpipe.reports import Window

    hour = dt.timedelta(hours=1)
    errors = chart_data(con, Window(T0, T0 + hour, T0 - hour, T0), params)["errors"]
    failed = (sum(1 for code, flags, blocked in CASES if not blocked and ((code or 0) >= 500 or "UC" in (flags or ())))
              + sum(map(ztunnel_fails, ZTUNNEL_ERRORS)))
    assert errors == [{"t": T0, "error_share": round(failed / len(live()), 4), "requests": len(live())}]


def test_a_flag_list_with_spaces_reads_as_without(con):
    """`-p failure_flags='UF, UH'` (spaces after the commas) means UF and UH, as the stream's alerts
    read the same list (they trim each name)."""
    assert con.execute("SELECT is_failure(0, ['UH'], 'UF, UH')").fetchall()[0][0] is True
    assert con.execute("SELECT is_error(0, ['UH'], 'UF , UH ', NULL, NULL)").fetchall()[0][0] is True


def test_every_query_s_failure_flags_default_is_error_spike_s():
    """The inventory's, top_destinations' and error_spike's `failure_flags` are one list by default:
    a destination's error share and its spikes count the same flags."""
    from logpipe.queries import bind_params, load_queries

    queries = load_queries()
    having = {name: bind_params(q, None)["failure_flags"] for name, q in queries.items()
              if "failure_flags" in bind_params(q, None)}
    assert {"error_spike", "destinations", "top_destinations"} <= set(having), sorted(having)
    assert set(having.values()) == {error_spike_flags()}, having


def test_an_egress_gateway_s_plaintext_request_is_plaintext_though_it_came_in_over_mtls():
    """At an egress gateway an HTTP line carries the SNI of the sidecar's mTLS hop into the gateway
    (outbound_.80_._.istio-egressgateway…), not of what leaves: Istio's own egress-gateway task
    (edition.cnn.com on port 80) leaves in clear text, and the inventory and plaintext_egress say so
    (upstream_transport.sql). Upstream port 443 is TLS origination; a TCP line with an SNI is TLS."""
    from logpipe.queries import load_queries, run_query

    base = dict(start_time=T0, method="GET", protocol="HTTP/1.1", authority="edition.cnn.com",
                upstream_cluster_direction="outbound", upstream_cluster_port=80, upstream_cluster_host="edition.cnn.com",
                downstream_remote_address_ip="10.244.2.10", response_code=200, bytes_received=120)
    rows = [dict(base, line_number=1, upstream_cluster="outbound|80||edition.cnn.com", upstream_host="151.101.65.67:80",
                 upstream_host_ip="151.101.65.67", upstream_host_port=80,
                 requested_server_name="outbound_.80_._.istio-egressgateway.istio-system.svc.cluster.local"),
            dict(base, line_number=2, upstream_cluster="outbound|80||edition.cnn.com", upstream_host="151.101.65.67:443",
                 upstream_host_ip="151.101.65.67", upstream_host_port=443, authority="api.cnn.com",
                 upstream_cluster_host="api.cnn.com", requested_server_name="outbound_.80_._.istio-egressgateway"),
            dict(start_time=T0, line_number=3, upstream_cluster="outbound|443||tls.cnn.com",
                 upstream_cluster_direction="outbound", upstream_cluster_port=443, upstream_cluster_host="tls.cnn.com",
                 upstream_host="151.101.65.68:443", upstream_host_ip="151.101.65.68", upstream_host_port=443,
                 requested_server_name="tls.cnn.com", downstream_remote_address_ip="10.244.2.10")]
    table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)
    con = query_con(table)
    queries = load_queries()
    inventory = {r["destination"]: r["transport"] for r in run_query(con, queries["destinations"], {}).to_pylist()}
    assert inventory == {"edition.cnn.com": "plaintext", "api.cnn.com": "tls-origination", "tls.cnn.com": "tls"}
    hour = dt.timedelta(hours=1)
    found = run_query(con, queries["plaintext_egress"], {"since": (T0 - hour).isoformat(),
                                                         "until": (T0 + hour).isoformat()}).to_pylist()
    assert [f["destination"] for f in found] == ["edition.cnn.com"]


# crypto-miner.example: 10.244.3.15 blocked by a block_all route; reached through the waypoint
MINER_BLOCKED = dict(route_name="block_all", response_code=502, authority="crypto-miner.example", method="GET",
                     downstream_local_address_ip="198.51.100.78", downstream_local_address_port=80,
                     downstream_remote_address_ip="10.244.3.15")
MINER_REACHED = dict(upstream_cluster="inbound-vip|80|http|crypto-miner.example", upstream_cluster_direction="inbound-vip",
                     upstream_cluster_port=80, upstream_cluster_host="crypto-miner.example",
                     upstream_host="198.51.100.78:80", upstream_host_ip="198.51.100.78", upstream_host_port=80,
                     response_code=200, method="GET")


def test_a_destination_only_blocked_before_is_new_when_reached_in_the_report_and_the_stream():
    """Blocked in the baseline (block_all), reached through the waypoint in the window: the report's
    new_destination names it, and the stream's known destinations (alerts.KNOWN_SQL, read from the
    dataset at its start) leave it out, so a stream raises it too."""
    from logpipe import alerts
    from logpipe.queries import load_queries, run_query

    day = dt.timedelta(days=1)
    blocked, reached = MINER_BLOCKED, dict(MINER_REACHED, downstream_remote_address_ip="10.244.1.31")
    rows = [dict(blocked, start_time=T0 - 2 * day, line_number=1), dict(blocked, start_time=T0 - 2 * day, line_number=2),
            dict(reached, start_time=T0, line_number=3)]
    table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)
    con = query_con(table)
    found = run_query(con, load_queries()["new_destination"], {"since": (T0 - dt.timedelta(hours=1)).isoformat(),
                                                               "until": (T0 + dt.timedelta(hours=1)).isoformat()})
    assert [f["destination"] for f in found.to_pylist()] == ["crypto-miner.example"]
    # (and only new_destination: new_pair is a known destination's new client, and the baseline's
    # blocked attempts made it no known one; it reported this pair as well)
    assert run_query(con, load_queries()["new_pair"], {"since": (T0 - dt.timedelta(hours=1)).isoformat(),
                                                       "until": (T0 + dt.timedelta(hours=1)).isoformat()}).num_rows == 0
    before = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows[:2]], schema=RECORD_SCHEMA)
    assert run_query(query_con(before), alerts.KNOWN_SQL).num_rows == 0


def test_a_client_blocked_from_a_known_destination_before_is_a_new_pair_when_it_reaches_it():
    """crypto-miner.example reached by 10.244.1.31 in the baseline (known), 10.244.3.15 only blocked from
    it then: when 10.244.3.15 reaches it in the window, that is its first call (new_pair), as
    new_destination reads a blocked attempt (the blocked row counted as the pair's: no finding)."""
    from logpipe.queries import load_queries, run_query

    day = dt.timedelta(days=1)
    blocked, reached = MINER_BLOCKED, MINER_REACHED
    rows = [dict(blocked, start_time=T0 - 2 * day, line_number=1),
            dict(reached, start_time=T0 - 2 * day, line_number=2, downstream_remote_address_ip="10.244.1.31"),
            dict(reached, start_time=T0, line_number=3, downstream_remote_address_ip="10.244.3.15")]
    table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)
    found = run_query(query_con(table), load_queries()["new_pair"], {
        "since": (T0 - dt.timedelta(hours=1)).isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat()})
    assert [(f["source"], f["destination"]) for f in found.to_pylist()] == [("10.244.3.15", "crypto-miner.example")]


def test_direct_ip_egress_reached_after_baseline_blocks_is_not_low():
    """direct_ip_egress is low for a destination the baseline reached; a baseline that was only
    blocked from it reached nothing (as new_destination and new_pair read it): reaching it now is
    high (passthrough), as for a destination the baseline never tried."""
    from logpipe.queries import load_queries, run_query

    day = dt.timedelta(days=1)
    ip = dict(authority="198.51.100.78", method="GET", downstream_local_address_ip="198.51.100.78",
              downstream_local_address_port=80, downstream_remote_address_ip="10.244.3.15")
    blocked = dict(ip, upstream_cluster="BlackHoleCluster", response_code=502, response_flags=["UH"])
    reached = dict(ip, upstream_cluster="PassthroughCluster", upstream_host="198.51.100.78:80",
                   upstream_host_ip="198.51.100.78", upstream_host_port=80, response_code=200)

    def severity(baseline: dict) -> str:
        rows = [dict(baseline, start_time=T0 - 2 * day, line_number=1), dict(reached, start_time=T0, line_number=2)]
        table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)
        (found,) = run_query(query_con(table), load_queries()["direct_ip_egress"], {
            "since": (T0 - dt.timedelta(hours=1)).isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat()}
        ).to_pylist()
        return found["severity"]

    assert (severity(blocked), severity(reached)) == ("high", "low")


def test_a_format_that_logs_no_client_is_one_unknown_client_for_new_pair_and_blocked_attempt():
    """Envoy's default format logs no %DOWNSTREAM_REMOTE_ADDRESS%: source_ip is null. The same unknown
    client calling a destination in the baseline and in the window is no new pair, and its blocked
    attempts then make the window's low (a null compared with = matched nothing: a new pair every time)."""
    from logpipe.queries import load_queries, run_query

    day = dt.timedelta(days=1)
    reached = dict(authority="api.example.com", method="GET", response_code=200, upstream_host="203.0.113.5:443",
                   upstream_host_ip="203.0.113.5", upstream_host_port=443, log_format="envoy")
    blocked = dict(upstream_cluster="BlackHoleCluster", response_flags=["UH"], response_code=0,
                   downstream_local_address_ip="198.51.100.78", downstream_local_address_port=443)
    rows = [dict(r, start_time=t, line_number=n) for n, (r, t) in enumerate(
        [(reached, T0 - 2 * day), (reached, T0), (blocked, T0 - 2 * day), (blocked, T0)], 1)]
    table = pa.Table.from_pylist([{n: r.get(n) for n in RECORD_SCHEMA.names} for r in rows], schema=RECORD_SCHEMA)
    con = query_con(table)
    window = {"since": (T0 - dt.timedelta(hours=1)).isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat()}
    assert run_query(con, load_queries()["new_pair"], window).num_rows == 0
    assert [(f["source"], f["destination"], f["severity"]) for f in
            run_query(con, load_queries()["blocked_attempt"], window).to_pylist()] == [
        ("A client (its address is not in the logs)", "198.51.100.78", "low")]  # (client_named.sql)
