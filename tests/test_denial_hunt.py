"""A denial hunt: realistic refusals of a waypoint, a sidecar, an egress gateway and ztunnel (Istio's
default text format, 1.9+, and ztunnel's), each judged once and right by `query denied`, the anomaly
report (one finding per refusal: authz_denial's for a policy's, with its scope, blocked_attempt's for
REGISTRY_ONLY's and a CONNECT the proxy refused itself) and the inventory. The internal lines come
first (test_window_end.py logs them after the last egress request)."""
from __future__ import annotations


import pytest

from conftest import ingest_clean, logpipe_json, run_logpipe

ENVOY_LINES = [
    # a waypoint's HTTP RBAC 403 (an ALLOW policy on the egress waypoint that this client fails)
    '[2025-03-08T10:00:01.000Z] "GET /ip HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[istio-egress]-policy[httpbin-allow]-rule[0]] - "-" 0 19 0 - "-" "curl/8.11.1" "w-1" "httpbin.org" "-" inbound-vip|80|http|httpbin.org - 240.240.0.2:80 10.244.0.24:54451 - default',
    # a waypoint's ext_authz refusals (CUSTOM policy): the authorizer said no, and it failed (closed)
    '[2025-03-08T10:00:02.000Z] "POST /services/T0/B0/x HTTP/1.1" 403 UAEX ext_authz_denied - "-" 329 0 7 - "-" "python-requests/2.32.3" "w-2" "hooks.slack.com" "-" inbound-vip|80|http|hooks.slack.com - 240.240.0.7:80 10.244.1.51:46131 - default',
    '[2025-03-08T10:00:03.000Z] "POST /v1/chat HTTP/1.1" 403 UAEX ext_authz_error - "-" 120 0 2 - "-" "python-requests/2.32.3" "w-3" "api.example.com" "-" inbound-vip|80|http|api.example.com - 240.240.0.8:80 10.244.1.52:46200 - default',
    # a waypoint's TLS passthrough (inbound-vip|443|tcp|) an L4 policy denied: after tcp_proxy connected,
    # on the ClientHello; and before any upstream host, no ALLOW policy matching
    '[2025-03-08T10:00:04.000Z] "- - -" 0 - - rbac_access_denied_matched_policy[ns[istio-egress]-policy[s3-l4]-rule[0]] "-" 517 0 2 - "-" "-" "-" "-" "198.51.100.31:443" inbound-vip|443|tcp|s3.amazonaws.com 10.244.0.18:54790 240.240.0.6:443 10.244.1.35:42370 s3.amazonaws.com -',
    '[2025-03-08T10:00:05.000Z] "- - -" 0 - - rbac_access_denied_matched_policy[none] "-" 0 0 0 - "-" "-" "-" "-" "-" inbound-vip|443|tcp|storage.example.net - 240.240.0.9:443 10.244.1.36:42372 storage.example.net -',
    # a sidecar under REGISTRY_ONLY: plain HTTP (route block_all's 502, no flag) and TCP (BlackHoleCluster)
    '[2025-03-08T10:00:06.000Z] "GET / HTTP/1.1" 502 - direct_response - "-" 0 0 0 - "-" "curl/8.5.0" "s-1" "blocked.example.com" "-" - - 93.184.215.14:80 10.244.1.20:40000 - block_all',
    '[2025-03-08T10:00:07.000Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 198.51.100.77:443 10.244.1.17:55448 - -',
    # a sidecar under ALLOW_ANY to raw IPs: TCP, an HTTP 403 the destination answered (via_upstream), and
    # an RBAC 403 (an egress proxy's policy)
    '[2025-03-08T10:00:08.000Z] "- - -" 0 - - - "-" 1200 5400 300 - "-" "-" "-" "-" "203.0.113.50:5432" PassthroughCluster 10.244.1.21:51234 203.0.113.50:5432 10.244.1.21:51230 - -',
    '[2025-03-08T10:00:09.000Z] "GET /admin HTTP/1.1" 403 - via_upstream - "-" 0 120 12 11 "-" "curl/8.5.0" "s-2" "203.0.113.9" "203.0.113.9:80" PassthroughCluster 10.244.1.22:51300 203.0.113.9:80 10.244.1.22:51298 - allow_any',
    '[2025-03-08T10:00:10.000Z] "GET / HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.5.0" "e-1" "203.0.113.60" "-" PassthroughCluster - 203.0.113.60:80 10.244.1.24:50000 - allow_any',
    # an egress gateway: SNI passthrough an L4 policy denied, and CONNECTs it refused (a policy's, after
    # routing: the route's cluster is logged; no route; the route does not enable CONNECT)
    '[2025-03-08T10:00:11.000Z] "- - -" 0 - - rbac_access_denied_matched_policy[ns[istio-system]-policy[egress-allow]-rule[0]] "-" 517 0 1 - "-" "-" "-" "-" "-" outbound|443||api.github.com - 10.244.0.40:443 10.244.1.25:50010 api.github.com -',
    '[2025-03-08T10:00:12.000Z] "CONNECT - HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[istio-system]-policy[egress-allow]-rule[1]] - "-" 0 19 0 - "-" "curl/8.5.0" "e-2" "paste.example.org:443" "-" outbound|443||paste.example.org - 10.244.0.40:8080 10.244.1.28:50030 - connect',
    '[2025-03-08T10:00:13.000Z] "CONNECT - HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl/8.5.0" "e-3" "unknown.example.org:443" "-" - - 10.244.0.40:8080 10.244.1.29:50040 - -',
    '[2025-03-08T10:00:14.000Z] "CONNECT - HTTP/1.1" 403 - upgrade_failed - "-" 0 0 0 - "-" "curl/8.5.0" "e-4" "ssh.example.org:22" "-" - - 10.244.0.40:8080 10.244.1.29:50042 - default',
    # internal: a sidecar's inbound HTTP and TCP RBAC, a waypoint's for a ServiceEntry of mesh workloads
    # (HBONE to its endpoints)
    '[2025-03-08T09:59:50.000Z] "GET /headers HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[foo]-policy[deny-sleep]-rule[0]] - "-" 0 19 0 - "-" "curl/8.5.0" "i-1" "httpbin.foo:8000" "-" inbound|80|| - 10.244.2.13:80 10.244.1.23:41000 outbound_.8000_._.httpbin.foo.svc.cluster.local default',
    '[2025-03-08T09:59:52.000Z] "- - -" 0 - - rbac_access_denied_matched_policy[ns[db]-policy[pg]-rule[0]] "-" 0 0 0 - "-" "-" "-" "-" "-" inbound|5432|| - 10.244.2.40:5432 10.244.1.26:50020 - -',
    '[2025-03-08T09:59:53.000Z] "GET /get HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.5.0" "i-3" "mirror.internal.example" "-" inbound-vip|80|http|mirror.internal.example - 240.240.0.11:80 10.244.1.27:36712 - default',
    '[2025-03-08T09:59:54.000Z] "GET /packages HTTP/1.1" 200 - via_upstream - "-" 0 48213 12 11 "-" "pip/24.0" "i-4" "mirror.internal.example" "envoy://connect_originate/10.244.0.31:8080" inbound-vip|80|http|mirror.internal.example envoy://internal_client_address/ 240.240.0.11:80 10.244.1.35:36714 - default',
]

_Z = ('{t}\t{level}\taccess\tconnection complete\tsrc.addr=10.244.1.12:{port} src.workload="curl-5b7d8c9f6-h7k2p" '
      'src.namespace="default" src.identity="spiffe://cluster.local/ns/default/sa/curl" dst.addr={dst}:15008 '
      'dst.hbone_addr={dst}:{dport} dst.service="{svc}" dst.workload="{wl}" dst.namespace="{ns}" '
      'direction="{direction}" bytes_sent={sent} bytes_recv={recv} duration="1ms" error="{error}"')
ZTUNNEL_LINES = [
    # one connection ztunnel's policy refused, as both nodes log it: the destination's inbound line, and
    # the client's outbound 401 (one denial); a connection a changed policy closed; a 401 alone (only the
    # client's node's log) to an in-mesh egress gateway
    _Z.format(t="2025-03-08T09:59:51.000000Z", level="error", port=47010, dst="10.244.2.9", dport=8080,
              svc="httpbin.default.svc.cluster.local", wl="httpbin-868cdd659c-nl9j4", ns="default",
              direction="inbound", sent=0, recv=0,
              error="connection closed due to policy rejection: explicitly denied by: default/deny-curl"),
    _Z.format(t="2025-03-08T09:59:51.001000Z", level="error", port=47010, dst="10.244.2.9", dport=8080,
              svc="httpbin.default.svc.cluster.local", wl="httpbin-868cdd659c-nl9j4", ns="default",
              direction="outbound", sent=0, recv=0, error="http status: 401 Unauthorized"),
    _Z.format(t="2025-03-08T09:59:55.000000Z", level="info", port=47020, dst="10.244.2.9", dport=8080,
              svc="httpbin.default.svc.cluster.local", wl="httpbin-868cdd659c-nl9j4", ns="default",
              direction="inbound", sent=120, recv=80, error="connection closed due to policy change"),
    _Z.format(t="2025-03-08T09:59:56.000000Z", level="error", port=47030, dst="10.244.5.5", dport=8443,
              svc="istio-egressgateway.istio-system.svc.cluster.local", wl="istio-egressgateway-6d8f9c7b5-abcde",
              ns="istio-system", direction="outbound", sent=0, recv=0, error="http status: 401 Unauthorized"),
]
CURL = "default/curl-5b7d8c9f6-h7k2p"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return ingest_clean(tmp_path_factory.mktemp("hunt"), {"envoy.log": ENVOY_LINES, "ztunnel.log": ZTUNNEL_LINES})




@pytest.fixture(scope="module")
def findings(data) -> dict[tuple[str, str], list[tuple[str, dict]]]:
    """The anomaly report's findings by source and destination: [(kind, evidence)]."""
    out: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for f in logpipe_json("report", "anomalies", "--data", data)["findings"]:
        out.setdefault((f["source"], f["destination"]), []).append((f["kind"], f["evidence"]))
    return out


def test_query_denied_lists_each_egress_refusal_once_by_what_refused_it(data):
    """Not the 403 the destination answered (via_upstream), nor the internal denials (denied lists
    egress), nor the allowed passthrough; the CONNECT an egress gateway's policy refused is listed (it
    was no egress row), by the policy's mechanism; the others the gateway refused by their reason."""
    got = sorted((r["source"], r["destination"], r["destination_port"], r["denied_by"], r["attempts"])
                 for r in logpipe_json("query", "denied", "--data", data))
    assert got == [
        ("10.244.0.24", "httpbin.org", 80, "rbac", 1),
        ("10.244.1.17", "198.51.100.77", 443, "blocked (BlackHoleCluster)", 1),
        ("10.244.1.20", "blocked.example.com", 80, "blocked (block_all)", 1),
        ("10.244.1.24", "203.0.113.60", 80, "rbac", 1),
        ("10.244.1.25", "api.github.com", 443, "rbac", 1),
        ("10.244.1.28", "paste.example.org", 443, "rbac", 1),
        ("10.244.1.29", "ssh.example.org", 22, "blocked (CONNECT not enabled)", 1),
        ("10.244.1.29", "unknown.example.org", 443, "blocked (no route)", 1),
        ("10.244.1.35", "s3.amazonaws.com", 443, "rbac", 1),
        ("10.244.1.36", "storage.example.net", 443, "rbac", 1),
        ("10.244.1.51", "hooks.slack.com", 80, "ext_authz", 1),
        ("10.244.1.52", "api.example.com", 80, "ext_authz", 1),
    ], got


# each refusal's one finding: (source, destination) -> (kind, scope or blocked_by, count)
ONE_FINDING = {
    ("10.244.0.24", "httpbin.org"): ("authz_denial", "egress", 1),
    ("10.244.1.51", "hooks.slack.com"): ("authz_denial", "egress", 1),
    ("10.244.1.52", "api.example.com"): ("authz_denial", "egress", 1),
    ("10.244.1.35", "s3.amazonaws.com"): ("authz_denial", "egress", 1),
    ("10.244.1.36", "storage.example.net"): ("authz_denial", "egress", 1),
    ("10.244.1.24", "203.0.113.60"): ("authz_denial", "egress", 1),
    ("10.244.1.25", "api.github.com"): ("authz_denial", "egress", 1),
    ("10.244.1.28", "paste.example.org"): ("authz_denial", "egress", 1),
    ("10.244.1.20", "blocked.example.com"): ("blocked_attempt", "block_all", 1),
    ("10.244.1.17", "198.51.100.77"): ("blocked_attempt", "BlackHoleCluster", 1),
    ("10.244.1.29", "unknown.example.org"): ("blocked_attempt", "no route", 1),
    ("10.244.1.29", "ssh.example.org"): ("blocked_attempt", "CONNECT not enabled", 1),
    ("10.244.1.23", "httpbin.foo"): ("authz_denial", "internal", 1),
    ("10.244.1.26", "10.244.2.40"): ("authz_denial", "internal", 1),
    ("10.244.1.27", "mirror.internal.example"): ("authz_denial", "internal", 1),
    # the pair is one denial, the policy change another
    (CURL, "httpbin.default.svc.cluster.local"): ("authz_denial", "internal", 2),
    (CURL, "istio-egressgateway.istio-system.svc.cluster.local"): ("authz_denial", "internal", 1),
}


@pytest.mark.parametrize("key", list(ONE_FINDING), ids=[d for _, d in ONE_FINDING])
def test_each_refusal_is_one_finding_of_its_kind(findings, key):
    """A policy's refusal is authz_denial's alone (no new_destination, new_pair, unregistered_egress,
    direct_ip_egress or blocked_attempt beside it), with its scope; a blocked one blocked_attempt's
    alone, naming what blocked it."""
    kind, what, count = ONE_FINDING[key]
    got = [(k, e.get("scope") or e.get("blocked_by"), e.get("denials") or e.get("attempts"))
           for k, e in findings.get(key, [])]
    assert got == [(kind, what, count)], got


def test_the_allowed_passthrough_and_the_destination_s_own_403_are_no_denial(findings):
    """The TCP passthrough and the 403 via_upstream are what ALLOW_ANY let through: their findings are
    the unregistered egress's, never a denial's."""
    for key in (("10.244.1.21", "203.0.113.50"), ("10.244.1.22", "203.0.113.9")):
        kinds = {k for k, _ in findings[key]}
        assert "unregistered_egress" in kinds and not kinds & {"authz_denial", "blocked_attempt"}, (key, kinds)


def test_the_inventory_names_a_refused_connect_blocked(data):
    """The CONNECTs the egress gateway refused are blocked destinations, the policy's too (it was
    registered, through the route's cluster, as if the tunnel had gone out)."""
    inv = {d["destination"]: d for d in logpipe_json("report", "inventory", "--data", data)["destinations"]}
    got = {h: (inv[h]["egress_kind"], inv[h]["transport"])
           for h in ("paste.example.org", "unknown.example.org", "ssh.example.org")}
    assert got == {h: ("blocked", "blocked") for h in got}, got


def test_a_policy_refusal_before_any_upstream_host_is_not_connected_in_the_inventory(data):
    """A TCP connection network RBAC refused before tcp_proxy had an upstream host (the waypoint's
    storage.example.net, the egress gateway's api.github.com: no upstream host logged) never connected,
    as an HTTP RBAC 403 never did: `not-connected`, not `tls` (one rule, traffic.sql's
    upstream_connected). The waypoint's s3.amazonaws.com logged its upstream host: tcp_proxy had
    connected (it connects before RBAC's verdict, envoyproxy/envoy#9023), and it stays `tls`."""
    inv = {d["destination"]: d for d in logpipe_json("report", "inventory", "--data", data)["destinations"]}
    got = {h: inv[h]["transport"] for h in ("storage.example.net", "api.github.com", "s3.amazonaws.com",
                                             "httpbin.org", "203.0.113.60")}
    assert got == {"storage.example.net": "not-connected", "api.github.com": "not-connected",
                   "s3.amazonaws.com": "tls", "httpbin.org": "not-connected", "203.0.113.60": "not-connected"}, got


def test_a_baseline_only_refused_by_policy_never_reached_its_destination(tmp_path):
    """A destination the baseline only tried, refused by the waypoint's L4 policy before any upstream
    host, was never reached: reached in the window (over 24 h later) it is a new_destination, as one
    the baseline's HTTP RBAC 403 refused is. The TCP refusal counted as reached, and said nothing."""
    tcp, http = ENVOY_LINES[4], ENVOY_LINES[0]  # (storage.example.net's L4 denial; httpbin.org's 403)
    assert "rbac_access_denied" in tcp and '"-" inbound-vip|443|tcp|storage.example.net' in tcp, tcp
    ok_tcp = ('[2025-03-09T11:00:05.000Z] "- - -" 0 - - - "-" 517 4200 40 - "-" "-" "-" "-" "198.51.100.40:443" '
              'inbound-vip|443|tcp|storage.example.net 10.244.0.18:54800 240.240.0.9:443 10.244.1.36:42380 '
              'storage.example.net -')
    ok_http = ('[2025-03-09T11:00:01.000Z] "GET /ip HTTP/1.1" 200 - via_upstream - "-" 0 31 5 4 "-" "curl/8.11.1" '
               '"w-9" "httpbin.org" "34.1.2.3:80" inbound-vip|80|http|httpbin.org 10.244.0.18:40000 240.240.0.2:80 '
               '10.244.0.24:54460 - default')
    (tmp_path / "envoy.log").write_text("\n".join([http, tcp, ok_http, ok_tcp]) + "\n")
    got = run_logpipe("ingest", tmp_path / "envoy.log", "--data", tmp_path / "data")
    assert got.returncode == 0 and "rejected 0" in got.stderr, got.stderr
    kinds: dict[str, set] = {}
    for f in logpipe_json("report", "anomalies", "--data", tmp_path / "data")["findings"]:
        kinds.setdefault(f["destination"], set()).add(f["kind"])
    assert {h: "new_destination" in kinds.get(h, set()) for h in ("storage.example.net", "httpbin.org")} == {
        "storage.example.net": True, "httpbin.org": True}, kinds
