"""HTTP CONNECT tunnels through an egress proxy (Envoy's upgrade_configs CONNECT, an Istio egress
gateway, gardener's VPN seed server: tests/test_formats_wild.py's first format): a line
`"CONNECT - HTTP/1.1" 200 …` whose authority is host:port, bytes the tunnel's, duration its life. Its
destination is the authority's host and port; what it carried is the client's own stream, TLS to a
port of tls_ports, else TCP (queries/views/connect_tunnel.sql, connection_protocol.sql), never
plaintext or TLS origination (the proxy read no HTTP inside); a CONNECT the proxy refused (403, 404,
407, no upstream host) is blocked egress, as BlackHoleCluster's is, and a blocked attempt unless an
authorization policy refused it (then authz_denial's finding alone, as any policy's refusal)."""
from __future__ import annotations

import json

from conftest import run_logpipe

# Envoy's default format with literal rx, tx and ms (gardener's VPN seed server's CONNECT proxy)
ENVOY = ('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
         '%RESPONSE_FLAGS% %BYTES_RECEIVED% rx %BYTES_SENT% tx %DURATION%ms "%DOWNSTREAM_REMOTE_ADDRESS%" '
         '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"')
ENVOY_LINES = [
    # a tunnel to a TLS port that carried bytes, one to SSH's port, one to an IPv6 upstream
    '[2024-05-02T10:00:01.123Z] "CONNECT - HTTP/1.1" 200 - 18231 rx 90211 tx 60012ms "10.250.0.5:41234" "-" "api.example.com:443" "93.184.216.34:443"',
    '[2024-05-02T10:00:02.000Z] "CONNECT - HTTP/1.1" 200 - 3100 rx 4200 tx 900000ms "10.250.0.5:41240" "-" "git.example.com:22" "203.0.113.22:22"',
    '[2024-05-02T10:00:03.210Z] "CONNECT - HTTP/1.1" 200 - 512 rx 2048 tx 1200ms "[fd00:10::5]:40000" "-" "[2001:db8::7]:8443" "[2001:db8::7]:8443"',
    # the connect failed: the 91 bytes are Envoy's own 503 reply, not the tunnel's
    '[2024-05-02T10:00:04.004Z] "CONNECT - HTTP/1.1" 503 UF,URX 0 rx 91 tx 5001ms "10.250.0.6:50312" "-" "down.example.net:443" "198.51.100.9:443"',
    # refused: a 403 (CONNECT not allowed there) and a 407 (proxy authentication required), no upstream
    '[2024-05-02T10:00:05.000Z] "CONNECT - HTTP/1.1" 403 - 0 rx 0 tx 0ms "10.250.0.8:1000" "-" "evil.example.org:443" "-"',
    '[2024-05-02T10:00:06.000Z] "CONNECT - HTTP/1.1" 407 - 0 rx 0 tx 0ms "10.250.0.8:1001" "-" "evil.example.org:443" "-"',
    # refused, to a Service and to an internal address: in-cluster, no egress (as BlackHoleCluster's)
    '[2024-05-02T10:00:07.000Z] "CONNECT - HTTP/1.1" 403 - 0 rx 0 tx 0ms "10.250.0.8:1002" "-" "kube-apiserver.kube-system.svc.cluster.local:443" "-"',
    '[2024-05-02T10:00:08.000Z] "CONNECT - HTTP/1.1" 403 - 0 rx 0 tx 0ms "10.250.0.8:1003" "-" "10.96.0.1:443" "-"',
]

# Istio's default text format (1.23), at an egress gateway that terminates CONNECT: the cluster is the
# ServiceEntry's, the downstream local address the gateway's own listener (what the client dialled)
ISTIO = ('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
         '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
         '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
         '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
         '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% '
         '%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%')
ISTIO_LINES = [
    '[2025-03-08T10:00:00.000Z] "CONNECT - HTTP/1.1" 200 - via_upstream - "-" 5120 40960 30000 - "-" "curl/8.5.0" "c-1" '
    '"api.example.com:443" "93.184.216.34:443" outbound|443||api.example.com 10.244.0.30:51000 10.244.0.30:8080 '
    '10.244.1.5:40000 - connect',
    '[2025-03-08T10:01:00.000Z] "CONNECT - HTTP/1.1" 200 - via_upstream - "-" 800 1200 45000 - "-" "psql" "c-2" '
    '"db.example.com:5432" "198.51.100.40:5432" outbound|5432||db.example.com 10.244.0.30:51002 10.244.0.30:8080 '
    '10.244.1.5:40002 - connect',
    # Envoy's own 403 to a CONNECT its route does not allow (upgrade_failed): no cluster, no upstream
    '[2025-03-08T10:02:00.000Z] "CONNECT - HTTP/1.1" 403 - upgrade_failed - "-" 0 0 0 - "-" "curl/8.5.0" "c-3" '
    '"evil.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.6:40004 - -',
    # an AuthorizationPolicy's 403: authz_denial's, not a blocked attempt as well
    '[2025-03-08T10:01:30.000Z] "CONNECT - HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" '
    '"curl/8.5.0" "c-4" "denied.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.7:40006 - -',
]


def _ingest(tmp_path, fmt: str, lines: list[str]):
    log, data = tmp_path / "a.log", tmp_path / "data"
    log.write_text("\n".join(lines) + "\n")
    got = run_logpipe("ingest", "--format-string", fmt, log, "--data", data)
    assert got.returncode == 0, got.stderr
    return data


def _egress(data) -> list[dict]:
    got = run_logpipe("query", "--data", data, "-o", "json", "--sql",
                      "select destination, destination_port, destination_ip, egress_kind, upstream_connected "
                      "from egress order by start_time")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def _row(destination: str, port: int, ip: str | None, kind: str, connected: bool) -> dict:
    """An egress row as _egress gives it."""
    return {"destination": destination, "destination_port": port, "destination_ip": ip, "egress_kind": kind,
            "upstream_connected": connected}


def _report(data, name: str) -> dict:
    got = run_logpipe("report", name, "--data", data, "-o", "json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def _inventory(data) -> dict[str, dict]:
    return {d["destination"]: d for d in _report(data, "inventory")["destinations"]}


def test_a_tunnel_is_its_authority_s_host_and_port_and_a_refused_one_is_a_blocked_attempt(tmp_path):
    """Envoy's default format: the refused CONNECTs (403, 407, no upstream host) were no egress row at
    all, so no inventory row and no blocked_attempt; now they are 'blocked' to evil.example.org:443,
    not connected, and the refused ones to a Service or an internal address stay in-cluster."""
    data = _ingest(tmp_path, ENVOY, ENVOY_LINES)
    assert _egress(data) == [
        _row("api.example.com", 443, "93.184.216.34", "public_ip", True),
        _row("git.example.com", 22, "203.0.113.22", "public_ip", True),
        _row("2001:db8::7", 8443, "2001:db8::7", "public_ip", True),
        _row("down.example.net", 443, "198.51.100.9", "public_ip", False),
        _row("evil.example.org", 443, None, "blocked", False),
        _row("evil.example.org", 443, None, "blocked", False),
    ]


def test_a_tunnel_carries_tls_to_a_tls_port_else_tcp_and_is_no_plaintext(tmp_path):
    """The inventory read a CONNECT as HTTP/1.1 that the proxy sent on: tls-origination to 443, and
    plaintext (with a plaintext_egress finding) to 22; the client speaks TLS inside the tunnel and the
    proxy sends its bytes on as TCP. The protocol is TLS to a port of tls_ports, else TCP, and
    -p tls_ports decides it. The 503 UF's 91 bytes are Envoy's reply: it still did not connect."""
    data = _ingest(tmp_path, ENVOY, ENVOY_LINES)
    inv = _inventory(data)
    got = {d: (r["port"], r["protocol"], r["egress_kind"], r["transport"]) for d, r in inv.items()}
    assert got == {"api.example.com": (443, "TLS", "public_ip", "tls"),
                   "git.example.com": (22, "TCP", "public_ip", "tcp"),
                   "2001:db8::7": (8443, "TLS", "public_ip", "tls"),
                   "down.example.net": (443, "TLS", "public_ip", "not-connected"),
                   "evil.example.org": (443, "TLS", "blocked", "blocked")}, got
    assert inv["evil.example.org"]["requests"] == 2
    got = run_logpipe("query", "destinations", "--data", data, "-o", "json", "-p", "tls_ports", "22")
    rows = {r["destination"]: (r["protocol"], r["transport"]) for r in json.loads(got.stdout)}
    assert rows["git.example.com"] == ("TLS", "tls") and rows["api.example.com"] == ("TCP", "tcp")
    doc = _report(data, "anomalies")
    kinds = {(f["kind"], f["destination"]) for f in doc["findings"]}
    assert not any(k == "plaintext_egress" for k, _ in kinds), kinds
    assert ("blocked_attempt", "evil.example.org") in kinds, kinds


def test_istio_s_format_at_an_egress_gateway(tmp_path):
    """Istio's format: a CONNECT through the ServiceEntry's cluster was tls-origination (443) and
    plaintext (5432, a plaintext_egress finding), and Envoy's own 403 (upgrade_failed) no egress; the
    destination's IP was the gateway's own listener when nothing connected. An AuthorizationPolicy's
    403 is blocked egress too (it was no egress row), and authz_denial's finding alone."""
    data = _ingest(tmp_path, ISTIO, ISTIO_LINES)
    assert _egress(data) == [
        _row("api.example.com", 443, "93.184.216.34", "registered", True),
        _row("db.example.com", 5432, "198.51.100.40", "registered", True),
        _row("denied.example.org", 443, None, "blocked", False),
        _row("evil.example.org", 443, None, "blocked", False),
    ]
    inv = _inventory(data)
    got = {d: (r["port"], r["protocol"], r["transport"]) for d, r in inv.items()}
    assert got == {"api.example.com": (443, "TLS", "tls"), "db.example.com": (5432, "TCP", "tcp"),
                   "denied.example.org": (443, "TLS", "blocked"), "evil.example.org": (443, "TLS", "blocked")}, got
    doc = _report(data, "anomalies")
    kinds = {(f["kind"], f["destination"]) for f in doc["findings"]}
    assert not any(k == "plaintext_egress" for k, _ in kinds), kinds
    assert ("blocked_attempt", "evil.example.org") in kinds, kinds
    assert ("authz_denial", "denied.example.org") in kinds and ("blocked_attempt", "denied.example.org") not in kinds, kinds


def test_a_destination_the_baseline_tunnelled_to_with_tls_is_a_downgrade_when_it_leaves_in_clear(tmp_path):
    """plaintext_egress's baseline judged a CONNECT to 443 without its method and authority: `tcp`, so
    a later GET in clear text to the same host was no downgrade (low, its body 0 bytes), where the
    inventory calls the tunnel `tls`."""
    tunnels = [ISTIO_LINES[0].replace("2025-03-08T10:00", f"2025-03-0{d}T10:00") for d in range(1, 7)]
    clear = ('[2025-03-08T11:00:00.000Z] "GET /v1/keys HTTP/1.1" 200 - via_upstream - "-" 0 512 40 38 "-" "curl/8.5.0" '
             '"p-1" "api.example.com" "93.184.216.34:80" outbound|80||api.example.com 10.244.0.30:51010 '
             '10.244.0.30:8080 10.244.1.5:40010 - default')
    data = _ingest(tmp_path, ISTIO, tunnels + [clear])
    found = [f for f in _report(data, "anomalies")["findings"] if f["kind"] == "plaintext_egress"]
    assert [(f["destination"], f["severity"]) for f in found] == [("api.example.com", "high")], found


# Istio's format at an egress gateway: each way the proxy refuses a CONNECT itself, no upstream host
REFUSED_LINES = [
    # an AuthorizationPolicy (RBAC): Envoy resolved the route, so the cluster is logged too
    '[2025-03-08T10:00:00.000Z] "CONNECT - HTTP/1.1" 403 - rbac_access_denied_matched_policy[ns[egress]-policy[deny-ext]-rule[0]] '
    '- "-" 0 19 0 - "-" "curl/8.5.0" "r-1" "denied.example.org:443" "-" outbound|443||denied.example.org - '
    '10.244.0.30:8080 10.244.1.7:40006 - connect',
    # an external authorizer's refusal (CUSTOM policy): UAEX, ext_authz_denied
    '[2025-03-08T10:00:10.000Z] "CONNECT - HTTP/1.1" 403 UAEX ext_authz_denied - "-" 0 0 3 - "-" "curl/8.5.0" "r-2" '
    '"vault.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.7:40008 - connect',
    # no route matched the CONNECT: the router's 404 NR, route_not_found
    '[2025-03-08T10:00:20.000Z] "CONNECT - HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl/8.5.0" "r-3" '
    '"noroute.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.8:40010 - -',
    # the route matched but does not enable CONNECT: the connection manager's 403 upgrade_failed
    '[2025-03-08T10:00:30.000Z] "CONNECT - HTTP/1.1" 403 - upgrade_failed - "-" 0 0 0 - "-" "curl/8.5.0" "r-4" '
    '"noupgrade.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.8:40012 - default',
    # proxy authentication required
    '[2025-03-08T10:00:40.000Z] "CONNECT - HTTP/1.1" 407 - - - "-" 0 0 0 - "-" "curl/8.5.0" "r-5" '
    '"auth.example.org:443" "-" - - 10.244.0.30:8080 10.244.1.8:40014 - -',
]


def test_a_connect_refused_by_policy_is_blocked_egress_judged_once_and_each_refusal_names_its_reason(tmp_path):
    """A CONNECT an authorization policy refused was no egress (traffic.sql left policy refusals out of
    connect_blocked): authz_denial counted it with scope internal and `query denied` did not list it.
    It is blocked egress now, authz_denial's finding alone (no blocked_attempt beside it), listed by
    `query denied` as the mechanism's. The router's 404 NR to a CONNECT was no egress at all, and
    blocked_by said `no route` for every refused CONNECT (or the route's name): each says its reason."""
    data = _ingest(tmp_path, ISTIO, REFUSED_LINES)
    hosts = ["denied.example.org", "vault.example.org", "noroute.example.org", "noupgrade.example.org",
             "auth.example.org"]
    assert _egress(data) == [_row(h, 443, None, "blocked", False) for h in hosts]
    got = run_logpipe("query", "--data", data, "-o", "json", "--sql",
                      "select destination, blocked_by(upstream_cluster, route_name, method, response_code, "
                      "response_code_details, response_flags) as by from egress order by start_time")
    assert got.returncode == 0, got.stderr
    assert [(r["destination"], r["by"]) for r in json.loads(got.stdout)] == [
        ("denied.example.org", "authorization policy"), ("vault.example.org", "authorization policy"),
        ("noroute.example.org", "no route"), ("noupgrade.example.org", "CONNECT not enabled"),
        ("auth.example.org", "proxy authentication")]
    got = run_logpipe("query", "denied", "--data", data, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert sorted((r["destination"], r["denied_by"]) for r in json.loads(got.stdout)) == [
        ("auth.example.org", "blocked (proxy authentication)"), ("denied.example.org", "rbac"),
        ("noroute.example.org", "blocked (no route)"), ("noupgrade.example.org", "blocked (CONNECT not enabled)"),
        ("vault.example.org", "ext_authz")]
    findings = _report(data, "anomalies")["findings"]
    got = sorted((f["kind"], f["destination"], f["evidence"].get("scope") or f["evidence"].get("blocked_by"))
                 for f in findings if f["kind"] in ("authz_denial", "blocked_attempt"))
    assert got == [("authz_denial", "denied.example.org", "egress"), ("authz_denial", "vault.example.org", "egress"),
                   ("blocked_attempt", "auth.example.org", "proxy authentication"),
                   ("blocked_attempt", "noroute.example.org", "no route"),
                   ("blocked_attempt", "noupgrade.example.org", "CONNECT not enabled")], got


def test_the_streams_alerts_judge_a_refused_connect_as_the_reports_do(tmp_path):
    """The stream's alerts of the refused CONNECTs: a policy's refusal is authz_denial's alert alone (it was
    a blocked_attempt too), and a blocked_attempt names its refusal's reason as blocked_by.sql does for
    the reports (it said "blocked by outbound|443||…" or the route's name: alerts.ROWS_SQL passed two of
    blocked_by's arguments)."""
    from test_stream import stream_cli

    r = stream_cli(tmp_path / "ds", "--format-string", ISTIO, "--alerts", "ndjson", "--alerts-out", "-",
                   input=("\n".join(REFUSED_LINES) + "\n").encode())
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(x) for x in r.stdout.splitlines()]
    got = sorted((a["kind"], a["destination"]) for a in alerts if a["kind"] in ("authz_denial", "blocked_attempt"))
    assert got == [("authz_denial", "denied.example.org"), ("authz_denial", "vault.example.org"),
                   ("blocked_attempt", "auth.example.org"), ("blocked_attempt", "noroute.example.org"),
                   ("blocked_attempt", "noupgrade.example.org")], got
    said = {a["destination"]: a["message"] for a in alerts if a["kind"] == "blocked_attempt"}
    assert "blocked by proxy authentication" in said["auth.example.org"], said
    assert "blocked by no route" in said["noroute.example.org"], said
    assert "blocked by CONNECT not enabled" in said["noupgrade.example.org"], said
