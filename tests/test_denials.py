"""What counts as a refusal (queries/egress/denied.sql, queries/anomalies/authz_denial.sql, and the
error shares' is_error.sql), on tests/logs/denials.log: a waypoint's 403 that httpbin itself answered
(via_upstream), a waypoint's RBAC 403, a 1.8-format sidecar 403 (no response_code_details), and
ztunnel's lines (text and JSON) with a policy rejection, a policy change and a connection failure."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe.cli import cli

LOG = Path(__file__).resolve().parent / "logs" / "denials.log"
SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def run(*args, inputs=(LOG,)) -> list | dict:
    """``logpipe ARGS --input INPUTS -o json``'s answer, each command run once for the tests that ask
    for it (its inputs are files no test changes: a report's run is most of these tests' time)."""
    return json.loads(_run(args, tuple(inputs)))


@functools.lru_cache(maxsize=None)
def _run(args: tuple, inputs: tuple) -> str:
    r = CliRunner().invoke(cli, [*args, *(a for i in inputs for a in ("--input", str(i))), "-o", "json"])
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.fixture(scope="module")
def denied() -> dict:
    return {(row["source"], row["destination"]): row for row in run("query", "denied")}


# 10.244.0.24 as the named queries name it, as the reports do: the workload ztunnel logged at the IP
SLEEP = "default/sleep-7656cf8794-r7zb9"


def test_a_403_the_destination_answered_is_no_refusal(denied):
    """httpbin's /status/403 through the waypoint (details via_upstream) was the provider's answer."""
    assert (SLEEP, "httpbin.org") not in denied and ("10.244.0.24", "httpbin.org") not in denied


def test_a_mesh_403_and_a_403_of_unknown_details_are_refusals(denied):
    assert denied["10.244.1.41", "httpbin.org"]["denied_by"] == "rbac"
    assert denied["10.244.1.23", "api.partner.example"]["denied_by"] == "http 403"  # (1.8: no details logged)


# ---- ztunnel's policy rejections ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def con():
    """A connection of no rows, for the views' macros (and ``ask``'s expressions over them)."""
    from logpipe.db import connect
    from logpipe.schema import RECORD_SCHEMA

    c = connect(tables={"records": RECORD_SCHEMA.empty_table()})
    yield c
    c.close()


# ztunnel's texts (istio/ztunnel src/proxy.rs: Error, AuthorizationRejectionError), and its others
@pytest.mark.parametrize("error, denial", [
    ("connection closed due to policy rejection", True),  # (builds before the reason was given)
    ("connection closed due to policy rejection: allow policies exist, but none allowed", True),
    ("connection closed due to policy rejection: explicitly denied by: default/deny-curl", True),
    ("connection closed due to policy rejection: workload not found", True),
    ("connection closed due to policy change", True),  # (an open connection a changed policy refuses)
    ("send: connection closed due to policy rejection", True),
    ("connection failed: Connection refused (os error 111)", False),
    ("http status: 503 Service Unavailable", False),
    ("io error: connection reset by peer", False),
    ("no healthy upstream: 10.244.2.9:8080", False),
    ("policy", False),
    (None, False),
])
def test_ztunnel_denial_reads_ztunnels_policy_texts_only(con, error, denial):
    assert con.execute("SELECT ztunnel_denial($1::VARCHAR)", [error]).fetchall()[0][0] is denial


def test_ztunnel_policy_rejections_are_authz_denials():
    doc = run("report", "anomalies")
    got = {(f["source"], f["destination"]): f for f in doc["findings"] if f["kind"] == "authz_denial"}
    # (a ztunnel row's client reads as the workload its line names: reports.attach_sources)
    sleep, curl = "default/sleep-7656cf8794-r7zb9", "default/curl-5b7d8c9f6-h7k2p"
    assert set(got) == {("10.244.1.41", "httpbin.org"), (sleep, "api.partner.example"),
                        (curl, "httpbin.default.svc.cluster.local")}
    egress = got[sleep, "api.partner.example"]
    assert egress["evidence"]["mechanism"] == "ztunnel policy" and egress["evidence"]["scope"] == "egress"
    assert egress["evidence"]["policies"] == ["istio-egress/deny-partner"]
    assert "ztunnel" in egress["advice"] and "istio-egress/deny-partner" in egress["advice"]
    inbound = got[curl, "httpbin.default.svc.cluster.local"]["evidence"]
    assert inbound["scope"] == "internal" and inbound["denials"] == 2 and inbound["policies"] == ["none"]
    assert got["10.244.1.41", "httpbin.org"]["evidence"]["mechanism"] == "rbac"


def test_a_pair_denied_in_several_ways_is_told_what_denied_each(tmp_path):
    """One client to one destination: a sidecar's RBAC 403, ztunnel's policy rejection and an ext_authz
    denial. The advice names each policy with what applied it (it read 'Denied by AuthorizationPolicy
    ns[default]-policy[deny-admin]-rule[0], istio-egress/deny-partner', ztunnel's policy as if RBAC's,
    and left the ext_authz denial out)."""
    ztunnel = next(x for x in LOG.read_text().splitlines() if "explicitly denied by" in x)
    tail = '"api.partner.example" "-" outbound|443||api.partner.example - 198.51.100.20:443 10.244.0.24:60207 - default'
    log = tmp_path / "mixed.log"
    log.write_text("\n".join([
        ztunnel,
        '[2025-01-30T10:53:28.000Z] "GET /admin HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[default]-policy'
        '[deny-admin]-rule[0]] - "-" 0 19 0 - "-" "curl/8.11.1" "0c4e3d7a-1b2f-4f5e-9a6b-7c8d9e0f1a2b" ' + tail,
        '[2025-01-30T10:53:29.000Z] "GET /export HTTP/1.1" 403 UAEX ext_authz_denied - "-" 0 0 3 - "-" "curl/8.11.1" '
        '"5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f" ' + tail]) + "\n")
    [f] = [f for f in run("report", "anomalies", inputs=(log,))["findings"] if f["kind"] == "authz_denial"]
    # (all three of the client: the workload ztunnel's line names at its IP, reports.attach_sources)
    assert (f["source"], f["destination"], f["evidence"]["denials"]) == ("default/sleep-7656cf8794-r7zb9",
                                                                         "api.partner.example", 3)
    assert f["evidence"]["mechanism"] == "ext_authz,rbac,ztunnel policy"
    assert f["advice"] == (
        'Denied by AuthorizationPolicy ns[default]-policy[deny-admin]-rule[0] (ns[NAMESPACE]-policy[NAME]-rule[INDEX]; '
        '"none" means no ALLOW policy matched); refused by ztunnel (L4 AuthorizationPolicy) istio-egress/deny-partner '
        '(NAMESPACE/NAME of an explicit DENY; "none" means no ALLOW policy allowed it): if the call is legitimate, '
        'extend the policy (kubectl get authorizationpolicy -A); if not, find out why this client tries. Denied by the '
        'external authorizer (ext_authz, UAEX): check its decision log for these request ids.')


def test_one_mechanism_s_advice_names_its_policies_alone():
    """A pair denied one way keeps that way's advice (tests/logs/denials.log)."""
    got = {(f["source"], f["destination"]): f["advice"] for f in run("report", "anomalies")["findings"]
           if f["kind"] == "authz_denial"}
    assert got["default/sleep-7656cf8794-r7zb9", "api.partner.example"].startswith(
        "Refused by ztunnel (L4 AuthorizationPolicy) istio-egress/deny-partner (NAMESPACE/NAME")
    assert got["10.244.1.41", "httpbin.org"].startswith(
        "Denied by AuthorizationPolicy ns[istio-egress]-policy[deny-httpbin-post]-rule[0] (ns[NAMESPACE]")
    assert all(a.endswith("find out why this client tries.") for a in got.values())


def test_ztunnels_sample_denials_are_found():
    """sample_logs' ztunnel denials: ztunnel-json.log line 5 in the last day; ztunnel.log lines 9 and
    11 (a "connection failed" early deny) with the whole data as the window."""
    both = (SAMPLES / "ztunnel.log", SAMPLES / "ztunnel-json.log")
    last_day = [f for f in run("report", "anomalies", inputs=both)["findings"] if f["kind"] == "authz_denial"]
    assert [(f["source"], f["destination"], f["evidence"]["denials"]) for f in last_day] == [
        ("default/curl-5b7d8c9f6-h7k2p", "httpbin.default.svc.cluster.local", 1)]  # (ztunnel's src.workload)
    whole = run("report", "anomalies", "--since", "2024-01-01", inputs=both)["findings"]
    [f] = [f for f in whole if f["kind"] == "authz_denial"]
    assert f["evidence"]["denials"] == 3 and f["evidence"]["policies"] == ["default/deny-curl", "none"]


def test_a_ztunnel_rejection_to_a_public_address_is_denied_egress(denied):
    assert denied[SLEEP, "api.partner.example"]["denied_by"] == "ztunnel policy"
    assert (SLEEP, "api.other.example") not in denied  # (a connection failure is no refusal)
    assert not any(src == "10.244.0.24" for src, _ in denied)  # (named, as the reports name it)


def test_a_ztunnel_rejection_is_an_error_in_the_error_shares():
    """A denied connection is no success: the inventory's and top_destinations' error share count it
    (is_error.sql), as they count a waypoint's RBAC 403 (a 4xx)."""
    inventory = run("report", "inventory")["destinations"]
    # (ztunnel's connection to the ServiceEntry host is registered egress, as the sidecar's 403 to it is:
    # one row of both, whose error share is 1.0 with one 4xx, the sidecar's)
    [zt] = [d for d in inventory if d["destination"] == "api.partner.example" and d["egress_kind"] == "registered"]
    assert (zt["requests"], zt["error_share"], zt["errors_4xx"], zt["errors_5xx"], zt["flagged"]) == (2, 1.0, 1, 0, 0)
    top = {d["destination"]: d for d in run("query", "top_destinations")}
    assert top["api.partner.example"]["error_share"] == 1.0


def test_the_stream_alerts_on_a_ztunnel_rejection():
    from logpipe.alerts import AlertRules, denial_candidates
    from logpipe.parse import default_parser

    line = next(x for x in LOG.read_text().splitlines() if "explicitly denied by" in x)
    records = default_parser().parse_batch([line], "<stdin>", 1).records
    assert denial_candidates(records).num_rows == 1
    alerts = AlertRules(window_seconds=300).check(records)
    assert [(a.kind, a.destination) for a in alerts if a.kind == "authz_denial"] == [
        ("authz_denial", "api.partner.example")]
    assert "denied by AuthorizationPolicy (ztunnel) istio-egress/deny-partner;" in next(
        a.message for a in alerts if a.kind == "authz_denial")


def test_the_denials_view_reads_a_batchs_candidate_rows_alone(monkeypatch):
    """A stream's check hands the denials view only the rows the pre-check (denial_candidates) picks,
    not the whole batch (of 20,000 bench rows, 373: 44 → 25 ms a check), and raises the alerts the
    view raised over the whole batch."""
    import pyarrow as pa

    from logpipe import alerts, db
    from logpipe.parse import default_parser

    records = default_parser().parse_batch(LOG.read_text().splitlines(), "<stdin>", 1).records
    picked = alerts.denial_candidates(records).num_rows
    assert 0 < picked < records.num_rows

    def check() -> list[str]:
        rules = alerts.AlertRules(window_seconds=300)
        try:
            return [a.to_json() for a in rules.check(records)]
        finally:
            rules.close()

    handed = []
    replace = db.replace_records
    monkeypatch.setattr(db, "replace_records", lambda con, t: handed.append(t.num_rows) or replace(con, t))
    got = check()
    assert handed == [picked, 0]  # (the candidates, then none: the batch let go)
    monkeypatch.setattr(alerts, "denial_candidates", lambda r: pa.Table.from_batches([r]))  # (every row)
    assert '"authz_denial"' in "".join(got) and check() == got


@pytest.fixture(scope="module")
def ask(con):
    """One value of a SQL expression over the views' macros (``con``: a connection of no rows, the
    one the ztunnel texts' tests read; a second one of every view cost ~0.45 s)."""
    return lambda sql: con.execute(sql).fetchall()[0][0]


# A TCP connection a waypoint's network RBAC filter refused (code 0, no flag, the policy in
# connection_termination_details) is no success: connection_denied says so, and is_error counts it, as
# it counts ztunnel's policy rejection and an HTTP RBAC 403. Older Envoy wrote rbac_access_denied with no
# policy: authz_denial, denied and the error share all read it through rbac_denial.sql (authz_denial
# asked for …_matched_policy[ and missed it); ext_authz refusals through ext_authz_denial.sql.
MACRO_CASES = [
    ("connection_denied('rbac_access_denied_matched_policy[none]', NULL)", True),
    ("connection_denied(NULL, 'connection closed due to policy rejection')", True),
    ("connection_denied(NULL, 'connection failed: connection refused')", False),
    ("connection_denied(NULL, NULL)", False),
    ("is_error(0, [], 'UF', 'rbac_access_denied_matched_policy[ns[a]-policy[b]-rule[0]]', NULL)", True),
    ("is_error(0, [], 'UF', NULL, NULL)", False),
    ("rbac_denial('rbac_access_denied', NULL)", True),
    ("rbac_denial(NULL, 'rbac_access_denied_matched_policy[none]')", True),
    ("rbac_denial('via_upstream', NULL)", False),
    ("rbac_denial(NULL, NULL)", False),
    ("ext_authz_denial(['UAEX'], NULL)", True),
    ("ext_authz_denial(NULL, 'ext_authz_denied')", True),
    ("ext_authz_denial([], 'via_upstream')", False),
]


@pytest.mark.parametrize("expr,want", MACRO_CASES)
def test_denial_macros(ask, expr, want):
    assert ask(f"SELECT {expr}") is want


def test_a_policy_is_read_from_its_own_field():
    """The denials view reads RBAC's policy from response_code_details or connection_termination_details,
    each alone: a policy's own brackets make the match greedy, and over both fields joined it ran from
    one field's policy to the other's end."""
    import datetime as dt

    import pyarrow as pa

    from logpipe.db import connect
    from logpipe.schema import RECORD_SCHEMA

    row = dict(start_time=dt.datetime(2025, 1, 30, tzinfo=dt.timezone.utc), line_number=1, response_code=403,
               response_code_details="rbac_access_denied_matched_policy[ns[a]-policy[p]-rule[0]]",
               connection_termination_details="rbac_access_denied_matched_policy[ns[b]-policy[q]-rule[1]]")
    table = pa.Table.from_pylist([{n: row.get(n) for n in RECORD_SCHEMA.names}], schema=RECORD_SCHEMA)
    sql = "SELECT policy FROM denials"
    assert connect(tables={"records": table}, uses=[sql]).sql(sql).fetchall() == [("ns[a]-policy[p]-rule[0]",)]


@pytest.mark.parametrize("line", [
    '[2025-03-12T03:15:03.770Z] "- - -" 0 - - rbac_access_denied_matched_policy[none] "-" 64 0 1 - "-" "-" "-" "-" "-"'
    " inbound|3306|| - [fd00:10:244::33]:3306 [fd00:10:244::1b]:37585 - -",
    '2025-03-12T03:15:03.770Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.12:40000 src.workload="curl"'
    ' dst.addr=10.244.2.9:15008 dst.service="db.default.svc.cluster.local" direction="inbound"'
    ' error="connection closed due to policy rejection: allow policies exist, but none allowed"',
])
def test_a_denial_no_allow_policy_matched_is_said_so(line):
    """RBAC's matched_policy[none] and ztunnel's "allow policies exist, but none allowed" (denials.sql's
    policy "none") read "denied by AuthorizationPolicy (Envoy RBAC) none", as if a policy were named
    "none"; the evidence keeps the report's value."""
    from logpipe.alerts import AlertRules
    from logpipe.parse import default_parser

    records = default_parser().parse_batch([line], "<stdin>", 1).records
    [denial] = [a for a in AlertRules(window_seconds=300).check(records) if a.kind == "authz_denial"]
    assert ": ALLOW policies exist and none matched; this one TCP" in denial.message, denial.message
    assert denial.message.split(" denied by ")[1].startswith("AuthorizationPolicy (")
    assert denial.evidence["policy"] == "none"


def test_a_section_run_alone_takes_the_reports_window(tmp_path):
    """`logpipe query SECTION` alone, its window left empty, judges the window `report anomalies`
    gives it (report_bounds.sql: from 24 h before the last egress request to a second past the last
    record): authz_denial's was the last 24 h of every record, so an internal denial two days after
    the last egress request was its only finding, where the report's was the egress denial before it;
    both are findings of both now (the window ends past the last record, the internal denial's, which
    a window that ended at the last egress request left out). Data of no egress: every record's."""
    lines = LOG.read_text().splitlines()
    log = tmp_path / "late.log"  # (the waypoint's RBAC 403, then ztunnel's inbound denial two days on)
    log.write_text(lines[1] + "\n" + lines[4].replace("2025-01-30T10:53:29", "2025-02-01T10:53:29") + "\n")
    ztunnel = (SAMPLES / "ztunnel.log", SAMPLES / "ztunnel-json.log")  # (no egress: all internal)
    for inputs in ((log,), ztunnel):
        report = run("report", "anomalies", inputs=inputs)["findings"]
        for section in sorted({f["kind"] for f in report} | {"authz_denial"}):
            alone = run("query", section, inputs=inputs)
            assert alone == [f for f in report if f["kind"] == section], (inputs, section)
    assert sorted((f["kind"], f["destination"]) for f in run("query", "authz_denial", inputs=(log,))) == [
        ("authz_denial", "httpbin.default.svc.cluster.local"), ("authz_denial", "httpbin.org")]


def test_a_reports_times_are_to_the_millisecond_ztunnels_too():
    """ztunnel logs microseconds, Envoy milliseconds (its %START_TIME%): a finding's evidence said
    ``first_seen=…26.375Z last_seen=…27.080629Z`` (api.partner.example, denied by a sidecar and by
    ztunnel), and the header a ztunnel line's time to the µs. Every time of the report is to the
    millisecond now (queries/views/evidence_time.sql), ztunnel's cut, not rounded, in JSON and text."""
    import re

    doc = run("report", "anomalies")
    times = [doc[part][end] for part in ("window", "baseline") for end in ("start", "end")]
    times += [f["evidence"][k] for f in doc["findings"] for k in ("first_seen", "last_seen", "start_time")
              if f["evidence"].get(k) is not None]
    assert len(times) > 10 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in times), times
    assert doc["window"]["end"] == "2025-01-30T10:53:31.080Z"  # (ztunnel's 10:53:31.080629Z, the last egress)
    [zt] = [f for f in doc["findings"] if f["kind"] == "authz_denial" and f["destination"] == "api.partner.example"]
    assert (zt["evidence"]["first_seen"], zt["evidence"]["last_seen"]) == (
        "2025-01-30T10:53:27.080Z", "2025-01-30T10:53:27.080Z")
    text = CliRunner().invoke(cli, ["report", "anomalies", "--input", str(LOG), "-o", "text"]).stdout
    # (ztunnel's refusal is authz_denial's alone: new_destination's line of both times left it, as new_pair's did)
    assert "first_seen=2025-01-30T10:53:27.080Z last_seen=2025-01-30T10:53:27.080Z\n" in text, text


def test_a_destination_only_denied_in_the_baseline_was_never_reached(tmp_path):
    """An HTTP request the proxy's RBAC or ext_authz filter denied (403, no flag; UAEX) was answered by
    the proxy and never sent on: upstream_connected is false, as for a UF. A baseline that only tried
    a host through the egress waypoint and was denied every time never reached it: allowed today, it is
    a new destination (it was none: the denials counted as reached)."""
    def line(t, path, code, flags, details, host, up):
        return (f'[{t}] "POST {path} HTTP/1.1" {code} {flags} {details} - "-" 0 19 1 - "-" "curl/8.11.1" '
                f'"7c81b4da-552f-49ab-a717-2f5e0dc7547{path[-1]}" "{host}" "{up}" inbound-vip|80|http|{host} - '
                '240.240.0.2:80 10.244.0.24:59784 - default')
    log = tmp_path / "waypoint.log"
    log.write_text("\n".join([
        line("2025-01-28T10:00:00.000Z", "/p1", 403, "-",
             "rbac_access_denied_matched_policy[ns[istio-egress]-policy[deny-post]-rule[0]]", "paste.example", "-"),
        line("2025-01-28T10:00:01.000Z", "/p2", 403, "UAEX", "ext_authz_denied", "drop.example", "-"),
        line("2025-01-30T10:00:00.000Z", "/p3", 200, "-", "via_upstream", "paste.example", "192.0.2.10:80"),
        line("2025-01-30T10:00:01.000Z", "/p4", 200, "-", "via_upstream", "drop.example", "192.0.2.11:80"),
    ]) + "\n")
    rows = run("query", "--sql", "select destination, response_code, upstream_connected from egress order by start_time",
               inputs=(log,))
    assert [(r["destination"], r["response_code"], r["upstream_connected"]) for r in rows] == [
        ("paste.example", 403, False), ("drop.example", 403, False),
        ("paste.example", 200, True), ("drop.example", 200, True)]
    findings = run("report", "anomalies", "--since", "2025-01-30T00:00:00Z", inputs=(log,))["findings"]
    assert sorted(f["destination"] for f in findings if f["kind"] == "new_destination") == [
        "drop.example", "paste.example"]


# ---- ztunnel's refusals on the client's side ---------------------------------------------------------
# The client's ztunnel logs its outbound line with "http status: 401 Unauthorized" when the destination's
# ztunnel refused the HBONE CONNECT by policy (istio/ztunnel src/proxy/inbound.rs answers assert_rbac's
# refusal, and only it, with 401; istio/ztunnel#691) or its own node-local fast path's policy refused it
# (older builds, src/proxy/outbound.rs).
@pytest.mark.parametrize("error, denial, refused", [
    ("http status: 401 Unauthorized", True, True),
    ("connection closed due to policy rejection: explicitly denied by: default/deny-curl", True, True),
    ("connection closed due to policy rejection", True, True),
    ("connection closed due to policy change", True, False),  # (it was open: it connected)
    ("send: connection closed due to policy rejection", True, False),  # (bytes had flowed)
    ("http status: 503 Service Unavailable", False, False),
    ("http status: 4010", False, False),
    ("io error: Connection refused (os error 111)", False, False),
    (None, False, False),
])
def test_ztunnel_s_401_to_the_client_is_a_policy_refusal_before_the_connection_came_up(con, error, denial, refused):
    assert con.execute("SELECT ztunnel_denial($1::VARCHAR), ztunnel_refused($1::VARCHAR)", [error]).fetchall() == [
        (denial, refused)]


def _zt_client(t: str, port: int, error: str, *, sent: int = 0, recv: int = 0) -> str:
    """curl's ztunnel's outbound line to httpbin's pod over HBONE, ended with ``error``."""
    return (f'2025-01-30T10:{t}Z\terror\taccess\tconnection complete\tsrc.addr=10.244.1.12:{port} '
            'src.workload="curl-5b7d8c9f6-h7k2p" src.namespace="default" '
            'src.identity="spiffe://cluster.local/ns/default/sa/curl" dst.addr=10.244.2.9:15008 '
            'dst.hbone_addr=10.244.2.9:8080 dst.service="httpbin.default.svc.cluster.local" '
            'dst.workload="httpbin-868cdd659c-nl9j4" dst.namespace="default" '
            'dst.identity="spiffe://cluster.local/ns/default/sa/httpbin" direction="outbound" '
            f'bytes_sent={sent} bytes_recv={recv} duration="1ms" error="{error}"')


def test_an_outbound_ztunnel_refusal_is_a_denial_and_not_connected(tmp_path):
    """The client's ztunnel line of a connection the destination's ztunnel refused by policy ("http
    status: 401 Unauthorized") is a denial as the destination's own line is (it was none: a 401 read
    as an error, and upstream_connected true), in the denials view, authz_denial and the stream's
    alert; it and a policy rejection never came up (upstream_connected false, as for an RBAC 403); a
    connection a changed policy closed after it moved bytes did connect."""
    log = tmp_path / "ztunnel-client.log"
    log.write_text("\n".join([
        _zt_client("53:40.000001", 47100, "http status: 401 Unauthorized"),
        _zt_client("53:41.000001", 47101, "http status: 401 Unauthorized"),
        _zt_client("53:42.000001", 47102, "connection closed due to policy rejection: explicitly denied by: default/deny-curl"),
        _zt_client("53:43.000001", 47103, "connection closed due to policy change", sent=517, recv=2048),
    ]) + "\n")
    rows = run("query", "--sql", "select t.error, t.upstream_connected, d.mechanism, d.policy from traffic t "
               "left join denials d using (start_time) order by start_time", inputs=(log,))
    assert [(r["upstream_connected"], r["mechanism"], r["policy"]) for r in rows] == [
        (False, "ztunnel policy", None), (False, "ztunnel policy", None),
        (False, "ztunnel policy", "default/deny-curl"), (True, "ztunnel policy", None)]
    [f] = [f for f in run("report", "anomalies", inputs=(log,))["findings"] if f["kind"] == "authz_denial"]
    assert (f["source"], f["destination"], f["evidence"]["denials"], f["evidence"]["mechanism"],
            f["evidence"]["scope"]) == ("default/curl-5b7d8c9f6-h7k2p", "httpbin.default.svc.cluster.local", 4,
                                        "ztunnel policy", "internal")
    from test_stream import stream_cli

    r = stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--alerts-out", "-",
                   input=(_zt_client("53:40.000001", 47100, "http status: 401 Unauthorized") + "\n").encode())
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["kind"] for x in r.stdout.splitlines()] == ["authz_denial"]


# ---- one refused connection, both nodes' ztunnel logs read ----------------------------------------------
# The destination's ztunnel logs its inbound refusal (naming the policy) and the client's ztunnel its
# outbound "http status: 401 Unauthorized" for the same connection: one denial, the inbound line's
# (denials.sql). The inbound line's src.addr is the client pod's IP on the HBONE connection's port, not
# the app's; both lines log the address dialled, dst.hbone_addr (istio/ztunnel src/proxy/inbound.rs).


def _zt_server(t: str, port: int, error: str, *, client: str = "10.244.1.12", dialled: str = "10.244.2.9:8080") -> str:
    """httpbin's ztunnel's inbound line of a connection from curl (``client``) to ``dialled``."""
    return (f'2025-01-30T10:{t}Z\terror\taccess\tconnection complete\tsrc.addr={client}:{port} '
            'src.workload="curl-5b7d8c9f6-h7k2p" src.namespace="default" '
            'src.identity="spiffe://cluster.local/ns/default/sa/curl" dst.addr=10.244.2.9:15008 '
            f'dst.hbone_addr={dialled} dst.service="httpbin.default.svc.cluster.local" '
            'dst.workload="httpbin-868cdd659c-nl9j4" dst.namespace="default" '
            'dst.identity="spiffe://cluster.local/ns/default/sa/httpbin" direction="inbound" '
            f'bytes_sent=0 bytes_recv=0 duration="0ms" error="{error}"')


DENY = "connection closed due to policy rejection: explicitly denied by: default/deny-curl"
UNAUTHORIZED = "http status: 401 Unauthorized"


def test_a_refused_connection_logged_by_both_nodes_ztunnels_is_one_denial(tmp_path):
    """Each 401 whose inbound refusal is in the data (same client IP, same address dialled, within
    2 s of it either way: the two nodes' clocks) is no second denial; the inbound line, which names the
    policy, is the one. It counted twice (denials=4 for these two connections, the 401s naming no
    policy). Neither line connected."""
    log = tmp_path / "ztunnel-both-nodes.log"
    log.write_text("\n".join([
        _zt_client("53:40.000001", 47100, UNAUTHORIZED),
        _zt_server("53:39.400001", 51234, DENY),  # (the other node's clock 0.6 s behind)
        _zt_client("53:50.000001", 47102, UNAUTHORIZED),
        _zt_server("53:51.900001", 51234, DENY),  # (1.9 s ahead; the same pooled HBONE connection)
    ]) + "\n")
    rows = run("query", "--sql", "select direction, error, upstream_connected from traffic order by start_time",
               inputs=(log,))
    assert [r["upstream_connected"] for r in rows] == [False] * 4
    denials = run("query", "--sql", "select direction, mechanism, policy from denials order by start_time",
                  inputs=(log,))
    assert [(r["direction"], r["mechanism"], r["policy"]) for r in denials] == [
        ("inbound", "ztunnel policy", "default/deny-curl")] * 2
    [f] = [f for f in run("report", "anomalies", inputs=(log,))["findings"] if f["kind"] == "authz_denial"]
    assert (f["source"], f["destination"], f["evidence"]["denials"], f["evidence"]["policies"]) == (
        "default/curl-5b7d8c9f6-h7k2p", "httpbin.default.svc.cluster.local", 2, ["default/deny-curl"])
    [q] = run("query", "authz_denial", inputs=(log,))
    assert q["evidence"]["denials"] == 2


def test_a_401_without_its_inbound_refusal_in_the_data_stays_a_denial(tmp_path):
    """A 401 stays the denial when no inbound refusal matches it: only the client's node's logs, an
    inbound refusal over 2 s away, of another client IP, or to another port or address dialled."""
    log = tmp_path / "ztunnel-unmatched.log"
    log.write_text("\n".join([
        _zt_client("53:40.000001", 47100, UNAUTHORIZED),
        _zt_server("53:42.100001", 51234, DENY),  # (2.1 s later: another connection)
        _zt_client("54:00.000001", 47101, UNAUTHORIZED),
        _zt_server("54:00.000001", 51234, DENY, client="10.244.1.13"),
        _zt_client("54:20.000001", 47102, UNAUTHORIZED),
        _zt_server("54:20.000001", 51234, DENY, dialled="10.244.2.9:9090"),
        _zt_client("54:40.000001", 47103, UNAUTHORIZED),
        _zt_server("54:40.000001", 51234, DENY, dialled="10.244.2.10:8080"),
        _zt_client("55:00.000001", 47104, UNAUTHORIZED),  # (alone)
    ]) + "\n")
    denials = run("query", "--sql", "select direction from denials", inputs=(log,))
    assert sorted(r["direction"] for r in denials) == ["inbound"] * 4 + ["outbound"] * 5


def test_the_stream_alerts_once_on_a_refusal_both_nodes_ztunnels_logged(tmp_path):
    """The stream's alert reads the denials view (alerts.py: DENIALS_SQL), so one refused connection is
    one request denied, named by the inbound line's policy (it was 2 requests, the alert raised at
    the 401, which names none)."""
    from test_stream import stream_cli

    lines = [_zt_client("53:40.000001", 47100, UNAUTHORIZED), _zt_server("53:39.400001", 51234, DENY),
             _zt_client("53:45.000001", 47101, UNAUTHORIZED), _zt_server("53:45.300001", 51234, DENY)]
    r = stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--alerts-out", "-", "--window", "1",
                   input=("\n".join(lines) + "\n").encode())
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(a["kind"], a["count"]) for a in alerts] == [("authz_denial", 1), ("authz_denial", 1)]
    # (named as report anomalies' authz_denial names it: the workload its ztunnel lines name at 10.244.1.12)
    assert all("from default/curl-5b7d8c9f6-h7k2p denied by AuthorizationPolicy (ztunnel) default/deny-curl" in a["message"]
               and (a["source"], a["source_ips"]) == ("default/curl-5b7d8c9f6-h7k2p", ["10.244.1.12"]) for a in alerts)


def test_the_stream_raises_no_new_destination_for_a_request_a_policy_refused(tmp_path):
    """A new host's requests RBAC denied are authz_denial's alert alone, as new_destination.sql leaves
    them to authz_denial's finding (one event, one finding); the stream also said 'first … egress
    attempt to a destination not seen before, never reached'. A later allowed request to it is new."""
    from test_stream import stream_cli

    denied = ('[2025-03-08T15:00:20.303Z] "POST /post HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[istio-egress]-'
              'policy[deny-post]-rule[0]] - "-" 287 19 0 - "-" "okhttp/4.12.0" "06680fc5-dec8-49b5-a301-8b6c40659b3c" '
              '"new.example.com" "-" inbound-vip|80|http|new.example.com - 240.240.0.2:80 10.244.1.41:37218 - default')
    allowed = ('[2025-03-08T15:10:20.303Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 250 80 79 "-" "okhttp/4.12.0" '
               '"16680fc5-dec8-49b5-a301-8b6c40659b3c" "new.example.com" "3.2.1.4:80" inbound-vip|80|http|new.example.com '
               '10.244.0.24:41160 240.240.0.2:80 10.244.1.41:37219 - default')
    r = stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--alerts-out", "-", input=(f"{denied}\n{allowed}\n").encode())
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(a["kind"], a["destination"]) for a in alerts] == [("authz_denial", "new.example.com"),
                                                               ("new_destination", "new.example.com")], alerts
    assert "never reached" not in alerts[1]["message"]


def test_each_inbound_refusal_absorbs_one_401_the_nearest(tmp_path):
    """Three 401s within 2 s of one inbound refusal are three refused connections: the nearest 401 (0.1 s)
    pairs with it, the other two stay denials (all three were dropped, one denial left). Two inbound
    lines near two 401s pair one to one, each with its nearest."""
    log = tmp_path / "ztunnel-many-401s.log"
    log.write_text("\n".join([
        _zt_client("53:40.000001", 47100, UNAUTHORIZED),
        _zt_client("53:40.500001", 47101, UNAUTHORIZED),
        _zt_server("53:40.600001", 51234, DENY),
        _zt_client("53:41.000001", 47102, UNAUTHORIZED),
        _zt_client("54:00.000001", 47103, UNAUTHORIZED),
        _zt_client("54:00.900001", 47104, UNAUTHORIZED),
        _zt_server("54:00.200001", 51234, DENY),
        _zt_server("54:01.000001", 51234, DENY),
    ]) + "\n")
    denials = run("query", "--sql", "select direction, start_time, denied_at from denials order by start_time",
                  inputs=(log,))
    assert [(r["direction"], r["start_time"][14:23], r["denied_at"][14:23]) for r in denials] == [
        ("outbound", "53:40.000", "53:40.000"), ("inbound", "53:40.600", "53:40.500"),
        ("outbound", "53:41.000", "53:41.000"),
        ("inbound", "54:00.200", "54:00.000"), ("inbound", "54:01.000", "54:00.900")]
    [f] = [f for f in run("report", "anomalies", inputs=(log,))["findings"] if f["kind"] == "authz_denial"]
    assert f["evidence"]["denials"] == 5


def test_a_pair_across_the_windows_edge_counts_once(tmp_path):
    """A pair is judged over the whole data and counted at its first line's time (denials.sql's
    denied_at): a 401 inside the window whose inbound line is past the window's end counted nowhere (the
    401 dropped for it, the inbound line outside); a pair across the window's start counts in the
    baseline alone, not in both."""
    log = tmp_path / "ztunnel-edge.log"
    log.write_text("\n".join([
        _zt_client("53:59.500001", 47100, UNAUTHORIZED),
        _zt_server("54:00.500001", 51234, DENY),  # (past --until 10:54:00)
        _zt_server("52:59.500001", 51235, DENY),
        _zt_client("53:00.500001", 47101, UNAUTHORIZED),  # (after --since 10:53:00)
    ]) + "\n")
    window = ("--since", "2025-01-30T10:53:00Z", "--until", "2025-01-30T10:54:00Z")
    [q] = run("query", "authz_denial", "-p", "since", window[1], "-p", "until", window[3], inputs=(log,))
    assert (q["evidence"]["denials"], q["evidence"]["first_seen"], q["severity"]) == (
        1, "2025-01-30T10:53:59.500Z", "low")  # (low: the baseline's pair, the same client and destination)
    [f] = [f for f in run("report", "anomalies", *window, inputs=(log,))["findings"] if f["kind"] == "authz_denial"]
    assert f["evidence"]["denials"] == 1


def test_a_request_a_policy_refused_is_authz_denials_finding_alone(tmp_path):
    """A sidecar's RBAC 403 to a raw IP through PassthroughCluster (ALLOW_ANY) and an ext_authz 403 to
    another: one event, one finding, authz_denial's; they were direct_ip_egress and unregistered_egress
    findings too. The allowed request beside them stays both."""
    tail = ' - "-" 0 19 0 - "-" "curl/8.11.1" "{id}" "{ip}" "-" PassthroughCluster - {ip}:80 10.244.0.24:{port} - allow_any'
    log = tmp_path / "raw-ip.log"
    log.write_text("\n".join([
        '[2025-01-30T10:53:28.000Z] "POST /upload HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[istio-egress]-'
        'policy[deny-raw-ip]-rule[0]]' + tail.format(id="r-1", ip="203.0.113.7", port=60207),
        '[2025-01-30T10:53:29.000Z] "POST /upload HTTP/1.1" 403 UAEX ext_authz_denied' + tail.format(
            id="r-2", ip="203.0.113.8", port=60208),
        '[2025-01-30T10:53:30.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 512 3 2 "-" "curl/8.11.1" "r-3" '
        '"203.0.113.9" "203.0.113.9:80" PassthroughCluster 10.244.0.24:41000 203.0.113.9:80 10.244.0.24:60209 - allow_any',
    ]) + "\n")
    got = sorted((f["kind"], f["destination"]) for f in run("report", "anomalies", inputs=(log,))["findings"])
    assert [k for k in got if k[0] in ("authz_denial", "direct_ip_egress", "unregistered_egress")] == [
        ("authz_denial", "203.0.113.7"), ("authz_denial", "203.0.113.8"),
        ("direct_ip_egress", "203.0.113.9"), ("unregistered_egress", "203.0.113.9")], got


# ---- the pairing, against the greedy matching it stands for -------------------------------------------


def _nearest_first(lines: list[tuple]) -> dict:
    """The 401s' inbound refusals by the greedy matching denials.sql stands for: of every 401 and inbound
    refusal of one (client IP, address dialled) within 2 s, the nearest pair first, then the nearest of
    the rest; at the same gap a 401 before its refusal first, then the pair nearest by position (key,
    time, the 401 first, line). ``lines``: (key, µs, refusal, line_number); {401's line: refusal's}."""
    pos = {x[3]: i for i, x in enumerate(sorted(lines, key=lambda x: (x[0], x[1], x[2], x[3])))}
    edges = sorted((abs(r[1] - e[1]), pos[e[3]] > pos[r[3]], -min(pos[e[3]], pos[r[3]]), max(pos[e[3]], pos[r[3]]),
                    e[3], r[3])
                   for e in lines if not e[2] for r in lines
                   if r[2] and r[0] == e[0] and abs(r[1] - e[1]) <= 2_000_000)
    taken, pairs = set(), {}
    for *_, e, r in edges:
        if e not in taken and r not in taken:
            taken |= {e, r}
            pairs[e] = r
    return pairs


def _hammering(rng, key: int) -> list[tuple]:
    """A client's connections to one destination a policy refuses: bursts of retries (1 ms to 0.5 s
    apart), the two nodes' clocks apart by up to 1.5 s, 20 ms of jitter, either line missing, times to
    the millisecond (so gaps tie); (key, µs, refusal)."""
    skew = rng.choice([0, rng.uniform(-1.5e6, 1.5e6)])
    out, t = [], rng.uniform(2e6, 7e6)
    for _ in range(rng.randint(1, 4)):
        period = rng.choice([1e3, 1e4, 1e5, 5e5])
        for _ in range(rng.randint(1, 12)):
            t += period * rng.uniform(0.5, 1.5)
            if rng.random() < 0.85:
                out.append((key, int(t) // 1000 * 1000, False))
            if rng.random() < 0.85:
                out.append((key, int(t + skew + rng.uniform(-2e4, 2e4)) // 1000 * 1000, True))
        t += rng.uniform(0, 4e6)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_the_pairing_is_the_nearest_first_matching(seed):
    """denials.sql pairs in rounds, each of the 401s and refusals that are each other's nearest open line
    of the other kind (each line's two neighbours, window functions over its key's lines in time order);
    on seeded random hammering clients (150 keys a seed) it keeps the 401s and gives the denied_at of the
    greedy nearest-first matching over every candidate pair. Its candidate pairs were every 401 and
    refusal within 2 s (a range join): 800 a 401 for a client retrying 200 times a second, 35 s and
    940 MB for 40,000 lines; and at the same gap each line took the earlier one, which gave other pairs
    where gaps tie (these times are to the millisecond)."""
    import random

    import pyarrow as pa

    from logpipe.db import connect
    from logpipe.parse import default_parser

    rng = random.Random(seed)
    raw = [x for key in range(150) for x in _hammering(rng, key)]
    lines = [(k, us, refusal, n) for n, (k, us, refusal) in enumerate(raw, 1)]
    text = []
    for k, us, refusal, _ in lines:
        t = f"{us // 60_000_000:02d}:{us // 1_000_000 % 60:02d}.{us % 1_000_000:06d}"
        client, dialled = f"10.244.1.{12 + k % 2}", f"10.244.2.9:{8000 + k}"  # (a key: client IP, address dialled)
        text.append(_zt_server(t, 51234, DENY, client=client, dialled=dialled) if refusal else
                    _zt_client(t, 47100, UNAUTHORIZED).replace("10.244.1.12:", f"{client}:").replace(
                        "dst.hbone_addr=10.244.2.9:8080", f"dst.hbone_addr={dialled}"))
    records = default_parser().parse_batch(text, "<stdin>", 1).records
    sql = "SELECT line_number, epoch_us(denied_at) - epoch_us(TIMESTAMPTZ '2025-01-30 10:00:00Z') FROM denials"
    con = connect(tables={"records": pa.Table.from_batches([records])}, uses=[sql])  # (its views alone: ~0.3 s less)
    got = sorted(con.sql(sql).fetchall())
    con.close()
    pairs = _nearest_first(lines)
    at = {n: us for _, us, _, n in lines}
    partner = {r: e for e, r in pairs.items()}
    want = sorted((n, min(us, at.get(partner.get(n), us))) for _, us, refusal, n in lines
                  if refusal or n not in pairs)
    assert len(pairs) > 1000 and got == want


def test_a_client_hammering_a_denied_destination_pairs_in_bounded_memory():
    """2,000 connections in 2 s, each 401 0.5 ms before its inbound refusal: every 401 pairs, in 64 MB
    and no spill. Every 401 and refusal within 2 s was a candidate pair (4 million here), which did
    not fit in 256 MB; and at the same gap each line took the earlier one, so such an evenly spaced
    chain paired one pair a round (2,000 rounds, past the 64 the rounds stop at). Two threads: DuckDB's
    memory grows with them."""
    import pyarrow as pa

    from logpipe.db import connect
    from logpipe.parse import default_parser

    lines = []
    for i in range(2000):
        lines.append(_zt_client(f"53:{40 + i // 1000}.{i % 1000:03d}000", 40000 + i, UNAUTHORIZED))
        lines.append(_zt_server(f"53:{40 + i // 1000}.{i % 1000:03d}500", 50000 + i, DENY))
    records = default_parser().parse_batch(lines, "<stdin>", 1).records
    sql = "SELECT direction, count(*), count(*) FILTER (WHERE denied_at < start_time) FROM denials GROUP BY ALL"
    con = connect(tables={"records": pa.Table.from_batches([records])}, threads=2, uses=[sql])
    con.execute("SET memory_limit = '64MB'")
    con.execute("SET max_temp_directory_size = '0B'")
    assert con.sql(sql).fetchall() == [("inbound", 2000, 2000)]
    con.close()
