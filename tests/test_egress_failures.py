"""Egress that failed before it left: a request or connection for which the proxy made no upstream
connection (a response flag UF, UH, DF, …: queries/views/upstream_not_connected.sql) is listed in the
inventory with transport `not-connected`, not as plaintext or TLS that left, and is no plaintext_egress;
a DNS failure of AllowAnyDynamicDNSCluster (503 DF) gets DNS advice, not a ServiceEntry's leads."""
from __future__ import annotations

import datetime as dt

from test_report import DAY, anomalies, found, report_db, write_dataset

import logpipe
from logpipe import reports

# An ambient egress waypoint's HTTP line (istio 1.9+ text format): a 200 with an upstream connection, or
# a failure whose flags say none was made (the upstream host is the endpoint it tried, "-" for UH/DF).
WAYPOINT = ('[{t}] "GET /x HTTP/1.1" {code} {flags} {details} - "{reason}" {rx} {tx} 12 - "-" "curl/8" "{rid}" '
            '"{host}" "{up}" inbound-vip|80|http|{host} {upl} 240.240.0.9:80 10.244.1.21:56180 - default\n')
# A sidecar's TCP line through PassthroughCluster (ALLOW_ANY) with the client's SNI.
PASSTHROUGH = ('[{t}] "- - -" 0 {flags} - - "{reason}" {rx} {tx} 40 - "-" "-" "-" "-" "{up}" PassthroughCluster '
               '{upl} {up} 10.244.2.21:58550 {sni} -\n')
# Istio's AllowAnyDynamicDNSCluster (dynamic forward proxy under ALLOW_ANY): 503 DF when the name does not resolve.
DYNAMIC_DNS = ('[{t}] "GET /x HTTP/1.1" {code} {flags} {details} - "-" 0 {tx} 4 - "-" "curl/8" "{rid}" "{host}" "{up}" '
               'AllowAnyDynamicDNSCluster {upl} 93.184.216.34:80 10.244.1.5:3998 - allow_any_dynamic_dns\n')
AT, BEFORE = DAY + dt.timedelta(hours=10), DAY - dt.timedelta(days=2)
REFUSED = dict(code=503, flags="UF,URX", details="upstream_reset_before_response_started{connection_failure}",
               reason="delayed connect error: 111", tx=91, upl="-")


def _t(at: dt.datetime, i: int) -> str:
    return (at + dt.timedelta(minutes=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def waypoint(host: str, at: dt.datetime, n: int, port: int = 80, rx: int = 0, **failure) -> list[str]:
    """n requests to host a minute apart from at: 200s sent on to upstream port port, or ``failure``."""
    fields = dict(code=200, flags="-", details="via_upstream", reason="-", tx=120, upl="10.244.0.18:38818",
                  up=f"203.0.113.40:{port}") | failure
    return [WAYPOINT.format(t=_t(at, i), rx=rx, rid=f"{host}-{at:%d%H}-{i}", host=host, **fields) for i in range(n)]


def passthrough(sni: str, at: dt.datetime, n: int, rx: int, tx: int, **failure) -> list[str]:
    fields = dict(flags="-", reason="-", upl="10.244.2.21:60757") | failure
    return [PASSTHROUGH.format(t=_t(at, i), rx=rx, tx=tx, up="203.0.113.60:443", sni=sni, **fields) for i in range(n)]


def dynamic_dns(host: str, at: dt.datetime, n: int, resolved: bool) -> list[str]:
    fields = (dict(code=200, flags="-", details="via_upstream", tx=10, up="192.0.2.9:80", upl="10.244.1.5:4000") if resolved
              else dict(code=503, flags="DF", details="dns_resolution_failure", tx=0, up="-", upl="-"))
    return [DYNAMIC_DNS.format(t=_t(at, i), rid=f"{host}-{i}", host=host, **fields) for i in range(n)]


def dataset(tmp_path, lines: list[str]):
    log = tmp_path / "egress.log"
    log.write_text("".join(lines))
    return write_dataset([log], tmp_path / "data")


def inventory(db) -> dict[str, dict]:
    con, _ = db
    doc = reports.public(reports.run_report(con, "inventory", window=reports.Window(None, None, None, None)))
    return {d["destination"]: d for d in doc["destinations"]}


def test_a_request_that_never_connected_is_listed_not_connected_and_is_no_plaintext_egress(tmp_path):
    """A 503 UF (the waypoint's connect to the endpoint was refused) sent no byte upstream: it read
    `plaintext` (its endpoint's port 80) and was plaintext_egress. It is still in the inventory (the
    attempt is a fact: requests, flagged), its transport not-connected; a UH 503 (no endpoint, no
    upstream host logged) too (it read empty). The same destination's requests that connected are
    plaintext as before, and plaintext_egress counts those alone (it counted 7: the 5 refused too)."""
    lines = (waypoint("known.example", BEFORE, 3)
             + waypoint("down.example", AT, 12, **REFUSED)
             + waypoint("nohost.example", AT, 3, code=503, flags="UH", details="no_healthy_upstream", tx=19, up="-", upl="-")
             + waypoint("mixed.example", AT, 5, **REFUSED) + waypoint("mixed.example", AT + dt.timedelta(hours=1), 2, rx=300))
    with report_db(dataset(tmp_path, lines)) as db:
        inv = inventory(db)
        got = {d: (inv[d]["transport"], inv[d]["requests"], inv[d]["flagged"]) for d in ("down.example", "nohost.example", "mixed.example")}
        assert got == {"down.example": ("not-connected", 12, 12), "nohost.example": ("not-connected", 3, 3),
                       "mixed.example": ("plaintext", 7, 5)}
        doc = anomalies(db)
    plain = {f["destination"]: f for f in found(doc, "plaintext_egress")}
    assert set(plain) == {"mixed.example"}
    assert (plain["mixed.example"]["evidence"]["requests"], plain["mixed.example"]["evidence"]["bytes_up"]) == (2, 600)


def test_a_destination_that_connected_once_reads_how_it_connected(tmp_path):
    """not-connected only when none of a destination's requests connected: 6 UH 503s and 2 requests the
    waypoint sent on over TLS (upstream port 443) read tls-origination, not the failures' most common value."""
    lines = (waypoint("flaky.example", AT, 6, code=503, flags="UH", details="no_healthy_upstream", tx=19, up="-", upl="-")
             + waypoint("flaky.example", AT + dt.timedelta(hours=1), 2, port=443))
    with report_db(dataset(tmp_path, lines)) as db:
        assert inventory(db)["flaky.example"]["transport"] == "tls-origination"


def test_plaintext_egress_s_baseline_is_of_requests_that_left(tmp_path):
    """A baseline of refused requests only (503 UF) sent nothing in clear text, so the window's first
    plaintext upload to the destination is medium (it was low: the refusals read as plaintext before)."""
    lines = waypoint("late.example", BEFORE, 4, **REFUSED) + waypoint("late.example", AT, 3, rx=500)
    (f,) = found(anomalies(dataset(tmp_path, lines)), "plaintext_egress")
    assert (f["destination"], f["severity"], f["evidence"]["requests"]) == ("late.example", "medium", 3)


def test_a_connection_that_moved_bytes_did_connect(tmp_path):
    """A TCP connection through PassthroughCluster with UF and no byte either way never connected:
    not-connected (it read tls, from its client's SNI). One with UF that moved bytes connected on a later
    attempt (tcp_proxy sets UF on each failed connect attempt and retries): its tls stays."""
    refused = dict(flags="UF,URX", reason="delayed connect error: 111", upl="-")
    lines = (passthrough("refused.example", AT, 3, 0, 0, **refused)
             + passthrough("retried.example", AT, 2, 517, 4300, flags="UF"))
    with report_db(dataset(tmp_path, lines)) as db:
        inv = inventory(db)
    assert {d: (r["transport"], r["sni"]) for d, r in inv.items()} == {
        "refused.example": ("not-connected", "refused.example"), "retried.example": ("tls", "retried.example")}


def test_the_egress_view_says_whether_each_row_connected(tmp_path):
    """egress.upstream_connected, from the flags once per row (upstream_not_connected.sql): a 503 UF
    did not connect (false), a 200 did (true); a TCP connection with UF that moved bytes connected on a
    later attempt (true: it was null, as its l7 protocol is, and so neither); one that moved none did
    not. The same in a report's connection, whose traffic is a table of the columns its queries name
    (reports._materialize_traffic). (The column is new: there is no old code for it to fail on.)"""
    lines = (waypoint("down.example", AT, 1, **REFUSED) + waypoint("up.example", AT, 1)
             + passthrough("retried.example", AT, 1, 517, 4300, flags="UF")
             + passthrough("refused.example", AT, 1, 0, 0, flags="UF,URX", reason="delayed connect error: 111", upl="-"))
    want = {"down.example": False, "up.example": True, "retried.example": True, "refused.example": False}
    data = dataset(tmp_path, lines)
    sql = "SELECT destination, upstream_connected FROM egress"
    with logpipe.connect(data) as con:
        assert dict(con.execute(sql).fetchall()) == want
    with report_db(data) as (con, _):
        assert dict(con.execute(sql).fetchall()) == want


def test_a_dynamic_dns_failure_is_not_connected(tmp_path):
    """AllowAnyDynamicDNSCluster answers 503 DF when the name does not resolve: nothing connected (the
    inventory's transport read empty, as for a request never forwarded), and it is no plaintext_egress;
    a name that resolves keeps its plaintext."""
    lines = (dynamic_dns("known.example", BEFORE, 3, True) + dynamic_dns("nx.example.org", AT, 12, False)
             + dynamic_dns("ok.example", AT, 2, True))
    with report_db(dataset(tmp_path, lines)) as db:
        inv = inventory(db)
        assert (inv["nx.example.org"]["transport"], inv["ok.example"]["transport"]) == ("not-connected", "plaintext")
        assert [f["destination"] for f in found(anomalies(db), "plaintext_egress")] == ["ok.example"]


def test_a_spike_of_dns_failures_gets_the_dns_advice_alone(tmp_path):
    """error_spike's advice of a bucket whose every failure is DF (the name did not resolve) is the DNS
    advice, not the provider's status, the connect flags and recent ServiceEntry changes to check with
    the DNS advice after them: neither the provider nor a ServiceEntry is the lead."""
    lines = dynamic_dns("known.example", BEFORE, 3, True) + dynamic_dns("nx.example.org", AT, 12, False)
    (spike,) = found(anomalies(dataset(tmp_path, lines)), "error_spike", destination="nx.example.org")
    assert spike["advice"] == (
        "Failures to nx.example.org rose to 100% from a baseline of 0.0%. DNS resolution of nx.example.org failed "
        "(response flag DF): check the name for a typo or a retired host, and that the proxy's resolver answers "
        "for it; a ServiceEntry would not make it resolve.")


def test_a_spike_of_dns_and_connect_failures_keeps_both_leads(tmp_path):
    """A bucket with a refused connect (UF) among its DNS failures keeps the general advice, and the
    DNS advice after it."""
    lines = (dynamic_dns("half.example", BEFORE, 3, True) + dynamic_dns("half.example", AT, 10, False)
             + [x.replace("503 DF dns_resolution_failure", "503 UF upstream_reset_before_response_started{connection_failure}")
                for x in dynamic_dns("half.example", AT + dt.timedelta(minutes=20), 2, False)])
    (spike,) = found(anomalies(dataset(tmp_path, lines)), "error_spike", destination="half.example")
    assert "check the provider's status" in spike["advice"]
    assert "DNS resolution of half.example failed (response flag DF)" in spike["advice"]


def test_a_request_the_proxy_answered_itself_did_not_connect(tmp_path):
    """REGISTRY_ONLY answers plain HTTP to an unregistered host with its route block_all's 502
    direct_response, no flag (Istio 1.3 on; response_code_details from 1.9): nothing was sent on, as
    for its TCP twin, BlackHoleCluster's UH, so upstream_connected is false (it was true: no flag said
    so). A redirect or a VirtualService directResponse (details direct_response) is the proxy's too."""
    blocked = ('[{t}] "GET /x HTTP/1.1" 502 - {details} - "-" 0 0 0 - "-" "curl/8" "{rid}" "{host}" "-" - - '
               '203.0.113.63:80 10.244.1.6:41005 - {route}\n')
    lines = [blocked.format(t=_t(AT, 0), details="direct_response", rid="b1", host="blocked.example", route="block_all"),
             blocked.format(t=_t(AT, 1), details="-", rid="b2", host="blocked-1-8.example", route="block_all"),
             blocked.format(t=_t(AT, 2), details="direct_response", rid="b3", host="moved.example",
                            route="redirect-moved").replace(' 502 ', ' 301 ')
             .replace(' - - 203.0.113.63:80', ' outbound|80||moved.example - 203.0.113.63:80')]
    data = dataset(tmp_path, lines)
    with logpipe.connect(data) as con:
        got = dict(con.execute("SELECT destination, upstream_connected FROM egress").fetchall())
    assert got == {"blocked.example": False, "blocked-1-8.example": False, "moved.example": False}, got


def test_a_retried_request_is_judged_by_its_last_attempt(tmp_path):
    """Envoy logs an HTTP request it retried once, with its last attempt's upstream fields and flags
    (each attempt gives the stream a new upstream info; the router sets UF and URX when it gives up):
    503 UF,URX is not connected, though %UPSTREAM_HOST% names the endpoint the last attempt tried and
    an earlier attempt (not logged) may have been answered; 503 URX alone (retries on 5xx ran out, the
    last attempt answered, via_upstream) connected."""
    gave_up = REFUSED | dict(up="203.0.113.40:80")  # (the host the last attempt tried; no local address)
    answered = dict(code=503, flags="URX", details="via_upstream", reason="-", tx=19)
    lines = waypoint("gave-up.example", AT, 1, **gave_up) + waypoint("answered.example", AT, 1, **answered)
    with logpipe.connect(dataset(tmp_path, lines)) as con:
        got = con.execute("SELECT destination, upstream_host, upstream_connected FROM egress ORDER BY 1").fetchall()
    assert got == [("answered.example", "203.0.113.40:80", True), ("gave-up.example", "203.0.113.40:80", False)]
