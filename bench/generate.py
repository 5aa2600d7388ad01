"""Deterministic generator of synthetic Istio access logs for `make bench`.

    python bench/generate.py --lines 1000000 --seed 1 --out bench/data/waypoint-1m.log

Writes about 330 bytes per line, mostly the Istio 1.23+ default TEXT format (FORMATS.md a.1:
20 tokens after the request line, signature bbbbQbbbbQQQQQbbbbbb), with this mix (per mille of a
1024-slot table; the 24 spare slots also go to waypoint egress HTTP):

    waypoint egress HTTP (inbound-vip|80|http|<host>)      335
    waypoint egress TLS passthrough (inbound-vip|443|tls)    80
    sidecar outbound, mesh service (outbound|9080|v1|...)   150
    sidecar outbound HTTP, TLS origination (outbound|80||)   80
    sidecar outbound TLS passthrough (outbound|443||)        50
    sidecar inbound (inbound|8080||)                        140
    PassthroughCluster HTTP / TCP                          30 / 20
    BlackHoleCluster UH / 502 block_all                    10 / 10
    RBAC 403 / ext_authz UAEX 403                          15 / 5
    503 UF,URX (TLS error) / 503 UH + 504 UT / 0 DC      10 / 5 / 5
    IPv6 (waypoint and sidecar)                              30
    cluster with trailing ';' (%UPSTREAM_CLUSTER% on 1.23)   10
    Istio 1.8 layout (18 tokens) / 1.2 layout (18 tokens)  5 / 5
    istio-agent / Envoy noise lines                           5

Everything random comes from one `random.Random(seed)`, so the same seed gives the same bytes.
Lines are assembled with f-strings from template pools built once, so generation runs well over
300k lines/s on one core. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator

START_EPOCH_MS = 1_740_787_200_000  # 2025-03-01T00:00:00Z
POOL = 256  # templates per kind (index with getrandbits(8))

CURLS = ["curl/8.11.1", "curl/8.5.0", "curl/7.88.1"]
UAS_EXT = ["python-requests/2.32.3", "Go-http-client/1.1", "okhttp/4.12.0", "Stripe/v1 PythonBindings/7.10.0",
           "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/s3#1.58.2",
           "GitHub-Actions-Runner/2.321.0", "Slackbot 1.0 (+https://api.slack.com/robots)", "pip/24.0",
           "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "Apache-HttpClient/4.5.14 (Java/17.0.12)"]
UAS_BROWSER = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
]
# (host, VIP, service port, upstream IPs, upstream port, paths, user agents)
EXTERNAL = [
    ("httpbin.org", "240.240.0.2", 80, ["192.0.2.10", "192.0.2.11"], 80,
     ["/get?show_env=1&trace=batch-8812", "/headers", "/ip", "/uuid", "/status/200",
      "/anything/orders/8812?source=batch-export&page=3", "/delay/1", "/response-headers?Cache-Control=no-cache"],
     CURLS + ["python-requests/2.32.3", "Go-http-client/1.1",
              "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"]),
    ("api.stripe.com", "240.240.0.5", 80, ["192.0.2.45", "192.0.2.46"], 443,
     ["/v1/charges?limit=25&starting_after=ch_3PqkL2Eh1Z0kQ8r2", "/v1/payment_intents",
      "/v1/customers/cus_Q8r2tZ3n5m/payment_methods?type=card", "/v1/balance_transactions?limit=100"],
     ["Stripe/v1 PythonBindings/7.10.0"]),
    ("api.github.com", "240.240.0.3", 80, ["198.51.100.20", "198.51.100.21"], 443,
     ["/repos/istio/istio/releases/latest", "/repos/envoyproxy/envoy/pulls?state=open&per_page=100&page=2",
      "/repos/acme/shop/actions/runs?branch=main&status=completed", "/rate_limit"],
     ["GitHub-Actions-Runner/2.321.0", "Go-http-client/1.1"]),
    ("s3.amazonaws.com", "240.240.0.6", 80, ["198.51.100.31", "198.51.100.32"], 443,
     ["/backups/2025-03-01/db.tar.gz", "/artifacts/build-8812.zip", "/logs/app/part-0001.gz"],
     [UAS_EXT[4]]),
    ("hooks.slack.com", "240.240.0.7", 80, ["198.51.100.40"], 443,
     ["/services/T000/B000/XXXX"], ["Slackbot 1.0 (+https://api.slack.com/robots)", "python-requests/2.32.3"]),
    ("oauth2.googleapis.com", "240.240.0.8", 80, ["192.0.2.70", "192.0.2.71"], 443,
     ["/token", "/tokeninfo"], ["google-api-go-client/0.5", "Go-http-client/1.1"]),
    ("registry.npmjs.org", "240.240.0.12", 80, ["192.0.2.90"], 443,
     ["/express", "/react/-/react-18.3.1.tgz", "/@types%2fnode"], ["npm/10.8.2 node/v20.17.0 linux x64 workspaces/false"]),
    ("pypi.org", "240.240.0.13", 80, ["192.0.2.95"], 443,
     ["/simple/requests/", "/simple/urllib3/", "/pypi/numpy/json"], ["pip/24.0"]),
    ("storage.example", "240.240.0.14", 80, ["203.0.113.60", "203.0.113.61"], 443,
     ["/uploads/reports/2025-03.csv", "/uploads/images/8812.png"], ["python-requests/2.32.3"]),
    ("api.partner.example", "240.240.0.15", 80, ["203.0.113.70"], 443,
     ["/v2/orders", "/v2/invoices?status=open"], ["Apache-HttpClient/4.5.14 (Java/17.0.12)"]),
]
TLS_HOSTS = [("api.github.com", "240.240.0.3", ["198.51.100.20", "198.51.100.21"]),
             ("s3.amazonaws.com", "240.240.0.6", ["198.51.100.31", "198.51.100.32"]),
             ("api.stripe.com", "240.240.0.5", ["192.0.2.45", "192.0.2.46"]),
             ("login.microsoftonline.com", "240.240.0.16", ["192.0.2.120"]),
             ("sts.amazonaws.com", "240.240.0.17", ["198.51.100.35"]),
             ("api.datadoghq.com", "240.240.0.18", ["198.51.100.50", "198.51.100.51"])]
MESH = [("reviews", "v1", 9080, "10.96.41.201", ["/reviews/0?productId=8812&page=2", "/reviews/1"], "Apache-CXF/3.1.18"),
        ("reviews", "v2", 9080, "10.96.41.201", ["/reviews/0"], "Apache-CXF/3.1.18"),
        ("ratings", "", 9080, "10.96.18.77", ["/ratings/0", "/ratings/1"], "Apache-CXF/3.1.18"),
        ("details", "", 9080, "10.96.22.5", ["/details/0"], "python-requests/2.32.3"),
        ("cart", "", 8080, "10.96.50.12", ["/api/v2/cart/5f7c9d8b?include=items,promotions", "/api/cart/items"], "okhttp/4.12.0"),
        ("inventory", "", 8080, "10.96.51.3", ["/api/v1/stock?sku=SKU-8812-BLU-42&warehouse=eu-west-1", "/api/v1/reservations"], "Go-http-client/1.1")]
PROTOS = ["HTTP/1.1"] * 4 + ["HTTP/2"]
# x-forwarded-for as apps behind the ingress gateway propagate it (note the ", " form)
XFFS = ["-"] * 3 + ["203.0.113.201,10.244.0.9", "198.51.100.14, 10.244.0.7", "192.0.2.33,198.51.100.2,10.244.0.5",
                    "2001:db8:1::7, 10.244.0.9"]
WAYPOINTS = ["10.244.0.18", "10.244.1.9", "10.244.2.14"]
SOURCES = [f"10.244.{i % 4}.{20 + (i * 7) % 200}" for i in range(48)]
SOURCES6 = [f"fd00:10:244::{20 + i:x}" for i in range(16)]


def _sizes(rng: random.Random, method: str, lo: int, hi: int, dmin: int, dmax: int, k: int = 16) -> list[str]:
    out = []
    for _ in range(k):
        brx = 0 if method in ("GET", "DELETE") else rng.randint(20, 4000)
        dur = int(rng.lognormvariate(0, 0.6) * (dmin + dmax) / 2)
        dur = max(dmin, min(dmax * 4, dur))
        ust = max(0, dur - rng.randint(0, 3))
        out.append(f"{brx} {rng.randint(lo, hi)} {dur} {ust}")
    return out


def _tcp_sizes(rng: random.Random, k: int = 16) -> list[str]:
    return [f"{rng.randint(300, 5000)} {rng.randint(1000, 90000)} {rng.randint(40, 4000)} -" for _ in range(k)]


def _zero_sizes(dur: str = "0") -> list[str]:
    return [f"0 0 {dur} -"] * 16


def _ip(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


# A template is (P1, sizes, P2, has_rid, P3, P4, P5); a line is
#   [ts] P1 <sizes> P2 <rid> P3 <port> P4 <port> P5
# P3 ends with the upstream-local (or downstream-remote) IP and ':' so a fresh port follows.
def _build(rng: random.Random) -> dict[str, list[tuple]]:
    ch = rng.choice
    K: dict[str, list[tuple]] = {}

    def pool(fn):
        return [fn() for _ in range(POOL)]

    def wp_http(v6=False, semi=False, layout="1.23"):
        host, vip, sport, ups, uport, paths, uas = ch(EXTERNAL)
        method = "POST" if host in ("api.stripe.com", "hooks.slack.com", "storage.example") and rng.random() < .6 else "GET"
        wp = ch(WAYPOINTS)
        src = ch(SOURCES)
        up = f"{ch(ups)}:{uport}"
        dl = f"{vip}:{sport}"
        if v6:
            wp, src = "fd00:10:244::12", ch(SOURCES6)
            up = f"[2001:db8::{rng.randint(16, 250):x}]:{uport}"
            dl = f"[2001:2::f0f0:{vip.rsplit('.', 1)[1]}]:{sport}"
        cluster = f"inbound-vip|{sport}|http|{host}" + (";" if semi else "")
        code = ch([200] * 12 + [201, 204, 304, 404, 429])
        proto = ch(PROTOS)
        req = f'"{method} {ch(paths)} {proto}"'
        return (f"{req} {code} - via_upstream - \"-\" ", _sizes(rng, method, 30, 9000, 60, 500),
                f' "{ch(XFFS)}" "{ch(uas)}" "', True, f'" "{host}" "{up}" {cluster} {_ip(wp)}:',
                f" {dl} {_ip(src)}:", " - default")

    def wp_tls(semi=False):
        host, vip, ups = ch(TLS_HOSTS)
        cluster = f"inbound-vip|443|tcp|{host}" + (";" if semi else "")
        return ('"- - -" 0 - - - "-" ', _tcp_sizes(rng), ' "-" "-" "', False,
                f'" "-" "{ch(ups)}:443" {cluster} {ch(WAYPOINTS)}:', f" {vip}:443 {ch(SOURCES)}:",
                f" {host} -")

    def sc_mesh():
        svc, subset, port, cip, paths, ua = ch(MESH)
        src = ch(SOURCES)
        pod = f"10.244.{rng.randint(0, 3)}.{rng.randint(2, 250)}"
        code = ch([200] * 20 + [404, 500])
        cl = f"outbound|{port}|{subset}|{svc}.default.svc.cluster.local"
        method = "POST" if "items" in paths[-1] and rng.random() < .5 else "GET"
        return (f'"{method} {ch(paths)} HTTP/1.1" {code} - via_upstream - "-" ', _sizes(rng, method, 20, 2000, 1, 40),
                f' "{ch(XFFS)}" "{ua}" "', True, f'" "{svc}:{port}" "{pod}:{port}" {cl} {src}:', f" {cip}:{port} {src}:",
                f" - {'default' if not subset else svc + '-' + subset}")

    def sc_ext(semi=False):
        host, vip, sport, ups, uport, paths, uas = ch(EXTERNAL)
        src = ch(SOURCES)
        method = "POST" if host in ("api.stripe.com", "hooks.slack.com") and rng.random() < .6 else "GET"
        cl = f"outbound|{sport}||{host}" + (";" if semi else "")
        return (f'"{method} {ch(paths)} HTTP/1.1" 200 - via_upstream - "-" ', _sizes(rng, method, 30, 9000, 60, 500),
                f' "{ch(XFFS)}" "{ch(uas)}" "', True, f'" "{host}" "{ch(ups)}:{uport}" {cl} {src}:', f" {vip}:{sport} {src}:",
                " - default")

    def sc_tls(v6=False):
        host, vip, ups = ch(TLS_HOSTS)
        src, dl, up = ch(SOURCES), f"{vip}:443", f"{ch(ups)}:443"
        if v6:
            src = ch(SOURCES6)
            dl = f"[2001:2::f0f0:{vip.rsplit('.', 1)[1]}]:443"
            up = f"[2001:db8::{rng.randint(16, 250):x}]:443"
        return ('"- - -" 0 - - - "-" ', _tcp_sizes(rng), ' "-" "-" "', False,
                f'" "-" "{up}" outbound|443||{host} {_ip(src)}:', f" {dl} {_ip(src)}:", f" {host} -")

    def sc_in():
        me = ch(SOURCES)
        gw = f"10.244.0.{rng.randint(5, 9)}"
        xff = ch(["192.0.2.33", "198.51.100.14", "203.0.113.201,192.0.2.250", "203.0.113.5"])
        path = ch(["/", "/products/42", "/cart", "/search?q=blue+shoes", "/static/app.3f9c2b.js", "/api/cart/items"])
        method = "POST" if path == "/api/cart/items" else "GET"
        return (f'"{method} {path} HTTP/1.1" 200 - via_upstream - "-" ', _sizes(rng, method, 200, 180000, 1, 60),
                f' "{xff}" "{ch(UAS_BROWSER)}" "', True,
                f'" "shop.example" "{me}:8080" inbound|8080|| 127.0.0.6:', f" {me}:8080 {gw}:",
                " outbound_.8080_._.frontend.shop.svc.cluster.local default")

    def pass_http():
        ip = f"198.51.100.{rng.randint(60, 90)}"
        src = ch(SOURCES)
        host = ch(["checkip.amazonaws.com", "example-saas.example", "ifconfig.me", "pastebin.com", "cdn.example"])
        return ('"GET / HTTP/1.1" 200 - via_upstream - "-" ', _sizes(rng, "GET", 30, 3000, 50, 400),
                f' "-" "{ch(CURLS + UAS_EXT)}" "', True, f'" "{host}" "{ip}:80" PassthroughCluster {src}:',
                f" {ip}:80 {src}:", " - allow_any")

    def pass_tcp():
        ip = ch(["203.0.113.50:5432", "198.51.100.60:443", "192.0.2.200:22", "203.0.113.51:6379"])
        src = ch(SOURCES)
        sni = "unknown-saas.example" if ip.endswith(":443") else "-"
        return ('"- - -" 0 - - - "-" ', _tcp_sizes(rng), ' "-" "-" "', False,
                f'" "-" "{ip}" PassthroughCluster {src}:', f" {ip} {src}:", f" {sni} -")

    def blackhole():
        ip = ch(["198.51.100.77:443", "203.0.113.50:5432", "192.0.2.200:22", "198.51.100.79:443"])
        return ('"- - -" 0 UH - - "-" ', _zero_sizes(), ' "-" "-" "', False,
                f'" "-" "-" BlackHoleCluster - {ip} {ch(SOURCES)}:', "", " - -")

    def block_all():
        host = ch(["crypto-miner.example", "pastebin.com", "tracker.example"])
        return ('"GET / HTTP/1.1" 502 - direct_response - "-" ', _zero_sizes(), f' "-" "{ch(CURLS)}" "', True,
                f'" "{host}" "-" - - 198.51.100.{rng.randint(78, 99)}:80 {ch(SOURCES)}:', "", " - block_all")

    def rbac():
        me = ch(SOURCES)
        pol = ch(["rbac_access_denied_matched_policy[none]",
                  "rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]",
                  "rbac_access_denied_matched_policy[ns[istio-egress]-policy[deny-httpbin-post]-rule[0]]"])
        return (f'"GET /admin/users HTTP/1.1" 403 - {pol} - "-" ', _zero_sizes(), f' "192.0.2.33" "{ch(CURLS)}" "', True,
                f'" "shop.example" "-" inbound|8080|| - {me}:8080 10.244.0.{rng.randint(5, 9)}:', "",
                " outbound_.8080_._.frontend.shop.svc.cluster.local default")

    def uaex():
        me = ch(SOURCES)
        return ('"POST /checkout HTTP/1.1" 403 UAEX ext_authz_denied - "-" ', ["341 76 3 -"] * 16,
                f' "203.0.113.5" "{ch(UAS_BROWSER)}" "', True,
                f'" "shop.example" "-" inbound|8080|| - {me}:8080 10.244.0.{rng.randint(5, 9)}:', "",
                " outbound_.8080_._.frontend.shop.svc.cluster.local default")

    reason = "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED"
    det = ("upstream_reset_before_response_started{connection_failure,TLS_error:_268436501:SSL_routines:"
           "OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED}")

    def uf_urx():
        src = ch(SOURCES)
        return (f'"GET /v2/invoices?status=open HTTP/1.1" 503 UF,URX {det} - "{reason}" ', [f"0 201 {d} -" for d in range(60, 76)],
                ' "-" "Apache-HttpClient/4.5.14 (Java/17.0.12)" "', True,
                f'" "api.partner.example" "203.0.113.70:443" outbound|80||api.partner.example - 240.240.0.15:80 {src}:',
                "", " - default")

    def uh_ut():
        src = ch(SOURCES)
        if rng.random() < .5:
            return ('"GET /reviews/0 HTTP/1.1" 503 UH no_healthy_upstream - "-" ', _zero_sizes(), ' "-" "Apache-CXF/3.1.18" "',
                    True, f'" "reviews:9080" "-" outbound|9080|v2|reviews.default.svc.cluster.local - 10.96.41.201:9080 {src}:',
                    "", " - reviews-v2")
        return ('"GET /ratings/0 HTTP/1.1" 504 UT response_timeout - "-" ', ["0 24 15001 -", "0 24 15002 -"] * 8,
                ' "-" "Apache-CXF/3.1.18" "', True,
                f'" "ratings:9080" "10.244.2.21:9080" outbound|9080||ratings.default.svc.cluster.local {src}:',
                f" 10.96.18.77:9080 {src}:", " - default")

    def dc():
        src = ch(SOURCES)
        return ('"GET /stream/100 HTTP/1.1" 0 DC downstream_remote_disconnect - "-" ', [f"0 0 {d} -" for d in range(900, 4100, 200)],
                f' "-" "{ch(CURLS)}" "', True,
                f'" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org {ch(WAYPOINTS)}:',
                f" 240.240.0.2:80 {src}:", " - default")

    def old18():
        host, vip, sport, ups, uport, paths, uas = ch(EXTERNAL)
        src = ch(SOURCES)
        return (f'"GET {ch(paths)} HTTP/1.1" 200 - "-" ', _sizes(rng, "GET", 30, 9000, 60, 500), f' "-" "{ch(uas)}" "',
                True, f'" "{host}" "{ch(ups)}:{uport}" outbound|{sport}||{host} {src}:', f" {vip}:{sport} {src}:",
                " - default")

    def old12():
        svc, subset, port, cip, paths, ua = ch(MESH)
        src = ch(SOURCES)
        return (f'"GET {ch(paths)} HTTP/1.1" 200 - "-" "-" ', _sizes(rng, "GET", 20, 2000, 1, 40), f' "-" "{ua}" "', True,
                f'" "{svc}:{port}" "10.244.2.{rng.randint(2, 250)}:{port}" outbound|{port}|{subset}|{svc}.default.svc.cluster.local {src}:',
                f" {cip}:{port} {src}:", " -")

    K["wp_http"] = pool(wp_http)
    K["wp_tls"] = pool(wp_tls)
    K["sc_mesh"] = pool(sc_mesh)
    K["sc_ext"] = pool(sc_ext)
    K["sc_tls"] = pool(sc_tls)
    K["sc_in"] = pool(sc_in)
    K["pass_http"] = pool(pass_http)
    K["pass_tcp"] = pool(pass_tcp)
    K["blackhole"] = pool(blackhole)
    K["block_all"] = pool(block_all)
    K["rbac"] = pool(rbac)
    K["uaex"] = pool(uaex)
    K["uf_urx"] = pool(uf_urx)
    K["uh_ut"] = pool(uh_ut)
    K["dc"] = pool(dc)
    K["ipv6"] = pool(lambda: wp_http(v6=True) if rng.random() < .6 else sc_tls(v6=True))
    K["semi"] = pool(lambda: ch([wp_http(semi=True), wp_tls(semi=True), sc_ext(semi=True)]))
    K["old18"] = pool(old18)
    K["old12"] = pool(old12)
    return K


MIX = [("wp_http", 335), ("wp_tls", 80), ("sc_mesh", 150), ("sc_ext", 80), ("sc_tls", 50), ("sc_in", 140),
       ("pass_http", 30), ("pass_tcp", 20), ("blackhole", 10), ("block_all", 10), ("rbac", 15), ("uaex", 5),
       ("uf_urx", 10), ("uh_ut", 5), ("dc", 5), ("ipv6", 30), ("semi", 10), ("old18", 5), ("old12", 5),
       ("noise", 5)]
assert sum(w for _, w in MIX) == 1000

NOISE = [
    "info\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012\tid=7",
    'info\tFLAG: --concurrency="2"',
    "info\tads\tADS: new connection for node:waypoint-7d9f8b6c4-x2k8p.istio-egress-12",
    "info\tcache\tgenerated new workload certificate\tlatency=98.112184ms ttl=23h59m59.01823744s",
    "warn\tenvoy config\texternal/envoy/source/extensions/config_subscription/grpc/grpc_stream.h:193\t"
    "StreamAggregatedResources gRPC config stream to xds-grpc closed since 1823s ago: 14, connection error: "
    "desc = \"transport: Error while dialing: dial tcp 10.96.0.15:15012: connect: connection refused\"\tthread=25",
    "info\tads\tSDS: PUSH request for node:sleep-5b7d8c9f6-h7k2p.default resources:1 size:4.0kB resource:default",
]


def generate_lines(n: int, seed: int = 1) -> Iterator[str]:
    """Yield `n` synthetic access/noise lines (no trailing newline), deterministic for `seed`."""
    rng = random.Random(seed)
    K = _build(rng)
    table: list[list[tuple] | None] = []
    for kind, w in MIX:
        table += [None if kind == "noise" else K[kind]] * w
    table += [K["wp_http"]] * (1024 - len(table))  # index with getrandbits(10): cheaper than randrange
    # request ids: two 16-bit pools of UUIDv4 halves (2**32 combinations)
    rid_a = [f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-" for _ in range(65536)]
    rid_b = [f"{8 + rng.getrandbits(2):x}{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}" for _ in range(65536)]
    getrandbits = rng.getrandbits
    steps = [max(1, int(rng.expovariate(1 / 86))) for _ in range(1024)]  # ~1M lines/day
    ports = [str(rng.randint(32768, 60999)) for _ in range(4096)]
    t_ms = START_EPOCH_MS
    last_sec = -1
    prefix = ""
    for _ in range(n):
        t_ms += steps[getrandbits(10)]
        sec, ms = divmod(t_ms, 1000)
        if sec != last_sec:
            last_sec = sec
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        pool = table[getrandbits(10)]
        if pool is None:
            yield f"{prefix}.{ms:03d}{getrandbits(10) % 1000:03d}Z\t{NOISE[getrandbits(8) % len(NOISE)]}"
            continue
        p1, sizes, p2, has_rid, p3, p4, p5 = pool[getrandbits(8)]
        rid = rid_a[getrandbits(16)] + rid_b[getrandbits(16)] if has_rid else "-"
        if p4:
            yield (f"[{prefix}.{ms:03d}Z] {p1}{sizes[getrandbits(4)]}{p2}{rid}{p3}{ports[getrandbits(12)]}"
                   f"{p4}{ports[getrandbits(12)]}{p5}")
        else:
            yield f"[{prefix}.{ms:03d}Z] {p1}{sizes[getrandbits(4)]}{p2}{rid}{p3}{ports[getrandbits(12)]}{p5}"


def write_lines(path: str, n: int, seed: int) -> int:
    """Write atomically (``logpipe.render.atomic_file``: a hidden temporary file, then a rename).
    Returns the bytes written."""
    from logpipe.render import atomic_file

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    size = 0
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as f:
        buf: list[str] = []
        for line in generate_lines(n, seed):
            buf.append(line)
            if len(buf) >= 20000:
                size += f.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            size += f.write("\n".join(buf) + "\n")
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate deterministic synthetic Istio access logs for benchmarks.")
    ap.add_argument("--lines", type=int, default=1_000_000, help="number of lines (default 1000000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--out", required=True, help="output path (written atomically)")
    args = ap.parse_args(argv)
    if args.lines < 0:
        ap.error("--lines must be >= 0")
    t0 = time.perf_counter()
    size = write_lines(args.out, args.lines, args.seed)
    dt = time.perf_counter() - t0
    print(f"wrote {args.lines} lines, {size} bytes ({size / max(args.lines, 1):.0f} B/line) to {args.out} "
          f"in {dt:.2f}s ({args.lines / dt if dt else 0:,.0f} lines/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
