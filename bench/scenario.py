"""Write the anomaly-detection scenario: a quiet baseline week and an incident day.

    python bench/scenario.py            # writes sample_logs/scenario/baseline-week.log, incident-day.log

Both files are Istio 1.23 default TEXT lines (FORMATS.md a.1, 20 tokens after the request line,
cluster printed with %UPSTREAM_CLUSTER_RAW%, so no trailing ';'), sorted by START_TIME.
Deterministic (one random.Random(SEED)); standard library only.

The mesh
--------
Ambient namespace `shop`, egress through the waypoint `waypoint-7d9f8b6c4-x2k8p` (10.244.0.18,
namespace istio-egress). Waypoint lines: cluster `inbound-vip|<SE port>|http|<host>`,
downstream_local_address = the ServiceEntry VIP (240.240.0.x), downstream_remote_address = the
source pod. Every waypoint ServiceEntry below uses TLS origination (SE port 80 -> endpoint 443).

    source (downstream_remote ip)       destination (steady, baseline and incident day)
    frontend      10.244.1.41           httpbin.org        VIP 240.240.0.2:80  -> 192.0.2.10/11:443
    payments      10.244.1.21, .22      api.stripe.com     VIP 240.240.0.5:80  -> 192.0.2.45/46:443
    notifications 10.244.1.51           hooks.slack.com    VIP 240.240.0.7:80  -> 198.51.100.40:443
    uploader      10.244.1.61           storage.example    VIP 240.240.0.14:80 -> 203.0.113.60/61:443
    reports       10.244.1.31           httpbin.org

Sidecar namespace `legacy` (outboundTrafficPolicy ALLOW_ANY). Sidecar lines: downstream_remote
= the pod itself.

    ci-runner     10.244.2.11           api.github.com (outbound|80||api.github.com, VIP
                                        240.240.0.3:80 -> 198.51.100.20/21:443, TLS origination),
                                        s3.amazonaws.com (outbound|443||, TLS passthrough, TCP lines)
    report-cron   10.244.2.21           legacy-partner.example (outbound|80||, VIP 240.240.0.9:80
                                        -> 203.0.113.40:443, TLS origination), s3.amazonaws.com
    productpage   10.244.2.31           reviews / details .legacy.svc.cluster.local (mesh, not egress)

Sidecar namespace `restricted` (Sidecar resource with REGISTRY_ONLY):

    worker        10.244.3.15           s3.amazonaws.com (outbound|443||, TLS passthrough)

Baseline (baseline-week.log, 2025-03-01 .. 2025-03-07, ~3000 lines): the flows above at steady
daily volumes with a day/night curve; latencies log-normal per destination; errors are only
ordinary upstream answers (404 from httpbin, 402 card_declined from Stripe, 429 from GitHub,
about 1-2 %, flags "-", details via_upstream). No UF/URX/UH/UT/DC, no PassthroughCluster, no
BlackHoleCluster, no RBAC/ext_authz denials, no plaintext egress.

Planted anomalies (incident-day.log, 2025-03-08, ~800 lines; the same steady traffic plus):

 1. NEW EXTERNAL DESTINATION: reports (10.244.1.31) -> exfil.example via the waypoint
    (inbound-vip|80|http|exfil.example, VIP 240.240.0.20:80 -> 198.51.100.23:443, TLS
    origination, so not plaintext), 80 x POST /collect, 02:00-03:59, bytes_received 40-200 kB
    each, all 200. exfil.example never appears in the baseline.
 2. NEW SOURCE->DESTINATION PAIR between known hosts: frontend (10.244.1.41) -> api.stripe.com
    (both seen in the baseline, never together), 20 x GET /v1/customers?limit=100, 10:00-10:59, 200.
 3. UNREGISTERED EGRESS (PassthroughCluster, route allow_any): report-cron (10.244.2.21) ->
    pastebin.com, HTTP, authority "pastebin.com", upstream 198.51.100.88:80, 15 x POST
    /api/api_post.php, 11:00-11:59. Side effect: it is also plaintext (port 80).
    TCP passthrough: report-cron -> 203.0.113.50:5432, 6 lines `"- - -" 0`, route "-",
    12:00-12:59, bytes_sent 40-90 kB each.
 4. BLOCKED ATTEMPTS from worker (10.244.3.15, REGISTRY_ONLY): 12 x BlackHoleCluster
    `0 UH`, 0 bytes, upstream_host "-", downstream_local 198.51.100.77:443, 05:00-05:59; and
    12 x `502 - direct_response`, cluster "-", route block_all, authority crypto-miner.example,
    downstream_local 198.51.100.78:80, 05:00-05:59.
 5. DENIALS at the waypoint: 30 x RBAC `403 -`
    `rbac_access_denied_matched_policy[ns[istio-egress]-policy[deny-httpbin-post]-rule[0]]`,
    frontend -> httpbin.org POST /post, 15:00-15:59, upstream_host "-"; and 20 x ext_authz
    `403 UAEX ext_authz_denied`, notifications -> hooks.slack.com, 16:00-16:59.
 6. 5xx SPIKE: payments -> api.stripe.com, 90 x `503 UF,URX`
    upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111},
    transport failure "delayed connect error: 111", 14:00-14:59 (baseline: no 5xx for Stripe).
 7. LATENCY JUMP: every api.github.com request of the day (ci-runner) has duration and
    upstream_service_time x10 (p99 ~10x the baseline p99; request volume unchanged).
 8. LARGE UPLOAD: uploader (10.244.1.61) -> storage.example, one PUT /uploads/db-dump.tar
    with bytes_received 524288000 (500 MiB), duration 95312 ms, at 03:17 (baseline uploads
    are 10 kB - 2 MB).
 9. PLAINTEXT EGRESS: notifications (10.244.1.51) -> http-only.example via the waypoint,
    ServiceEntry port 80 and endpoint port 80 (inbound-vip|80|http|http-only.example, VIP
    240.240.0.21:80 -> 198.51.100.30:80), 40 x POST /webhook, 08:00-19:59. DIRECT-IP egress:
    ci-runner (10.244.2.11) -> PassthroughCluster, authority "203.0.113.9", upstream
    203.0.113.9:80, 8 x GET /install.sh, 09:00-09:59 (also plaintext).
10. TLS FAILURE: report-cron -> legacy-partner.example from 06:00 on: every request fails
    `503 UF,URX` with transport failure "TLS error: 268436501:SSL routines:
    OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED" (before 06:00 they still succeed).

Not an anomaly: httpbin.org (and every other waypoint ServiceEntry above) uses TLS origination
(VIP port 80, upstream endpoint port 443) in both files and must NOT count as plaintext.

PLANTED (below) repeats these facts as data; `check()` recomputes the new destinations and the
new source->destination pairs from the generated records and fails if they differ from it.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import random
import uuid

SEED = 20250308
HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_logs", "scenario")
WP = "10.244.0.18"

FRONTEND, PAY_A, PAY_B, NOTIF, UPLOADER, REPORTS = (
    "10.244.1.41", "10.244.1.21", "10.244.1.22", "10.244.1.51", "10.244.1.61", "10.244.1.31")
CI, CRON, PRODUCTPAGE, WORKER = "10.244.2.11", "10.244.2.21", "10.244.2.31", "10.244.3.15"

CERT_EXPIRED = "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED"
CERT_DETAILS = ("upstream_reset_before_response_started{connection_failure,TLS_error:_268436501:"
                "SSL_routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED}")
REFUSED = "delayed connect error: 111"
REFUSED_DETAILS = "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}"

PLANTED = {
    "date": "2025-03-08",
    "new_destination": {"host": "exfil.example", "source": REPORTS, "lines": 80, "window": ("02:00", "03:59")},
    "new_pair": {"source": FRONTEND, "destination": "api.stripe.com", "lines": 20, "window": ("10:00", "10:59")},
    "passthrough_http": {"authority": "pastebin.com", "source": CRON, "upstream_host": "198.51.100.88:80",
                         "lines": 15, "window": ("11:00", "11:59")},
    "passthrough_tcp": {"destination": "203.0.113.50:5432", "source": CRON, "lines": 6,
                        "window": ("12:00", "12:59")},
    "blackhole": {"destination": "198.51.100.77:443", "source": WORKER, "lines": 12, "window": ("05:00", "05:59")},
    "block_all": {"authority": "crypto-miner.example", "source": WORKER, "lines": 12,
                  "window": ("05:00", "05:59")},
    "rbac_denied": {"policy": "ns[istio-egress]-policy[deny-httpbin-post]-rule[0]", "source": FRONTEND,
                    "destination": "httpbin.org", "lines": 30, "window": ("15:00", "15:59")},
    "ext_authz_denied": {"source": NOTIF, "destination": "hooks.slack.com", "lines": 20,
                         "window": ("16:00", "16:59")},
    "error_spike": {"destination": "api.stripe.com", "flags": "UF,URX", "code": 503, "lines": 90,
                    "window": ("14:00", "14:59")},
    "latency_jump": {"destination": "api.github.com", "factor": 10},
    "large_upload": {"source": UPLOADER, "destination": "storage.example", "bytes_received": 524288000,
                     "at": "03:17"},
    "plaintext": {"host": "http-only.example", "source": NOTIF, "vip": "240.240.0.21:80",
                  "upstream_host": "198.51.100.30:80", "lines": 40},
    "direct_ip": {"authority": "203.0.113.9", "source": CI, "upstream_host": "203.0.113.9:80", "lines": 8},
    "tls_failure": {"destination": "legacy-partner.example", "source": CRON, "from": "06:00",
                    "reason": CERT_EXPIRED},
    "tls_origination_not_plaintext": ["httpbin.org", "api.stripe.com", "hooks.slack.com", "storage.example",
                                      "api.github.com", "legacy-partner.example", "exfil.example"],
    # Destinations (see destination_of) on 2025-03-08 that the baseline week never had.
    "new_destinations": sorted(["exfil.example", "pastebin.com", "203.0.113.50:5432", "198.51.100.77:443",
                                "crypto-miner.example", "http-only.example", "203.0.113.9"]),
    # (source ip, destination) pairs on 2025-03-08 that the baseline week never had.
    "new_pairs": sorted([(REPORTS, "exfil.example"), (FRONTEND, "api.stripe.com"), (CRON, "pastebin.com"),
                         (CRON, "203.0.113.50:5432"), (WORKER, "198.51.100.77:443"),
                         (WORKER, "crypto-miner.example"), (NOTIF, "http-only.example"), (CI, "203.0.113.9")]),
}

# hour-of-day weights: quiet nights, busy office hours
DIURNAL = [2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 10, 9, 8, 6, 5, 4, 3, 3, 2]


class Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng

    # -- small helpers ---------------------------------------------------------------
    def rid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def port(self) -> int:
        return self.rng.randint(32768, 60999)

    def at(self, day: dt.date, hour: int | None = None, minute_span: tuple[int, int] = (0, 59)) -> dt.datetime:
        r = self.rng
        if hour is None:
            hour = r.choices(range(24), weights=DIURNAL)[0]
        return dt.datetime(day.year, day.month, day.day, hour, r.randint(*minute_span), r.randint(0, 59),
                           r.randint(0, 999) * 1000)

    def lognorm(self, median: float, sigma: float) -> int:
        return max(1, int(median * math.exp(self.rng.gauss(0, sigma))))

    # -- record builders (dicts with the 1.23 field names) ---------------------------
    def http(self, t, method, path, code, *, src, auth, cluster, dlocal, uhost, dur, brx=0, btx=0, ua="-",
             flags="-", details="via_upstream", ufr="-", ust=None, sidecar=False, route="default", ulocal=None):
        if ulocal is None:
            ulocal = "-" if uhost == "-" else f"{src if sidecar else WP}:{self.port()}"
        if ust is None:
            ust = "-" if uhost == "-" or code in (0, 503) else str(max(0, dur - self.rng.randint(0, 3)))
        return dict(t=t, method=method, path=path, proto="HTTP/1.1", code=code, flags=flags, details=details,
                    term="-", ufr=ufr, brx=brx, btx=btx, dur=dur, ust=ust, xff="-", ua=ua, rid=self.rid(),
                    auth=auth, uhost=uhost, cluster=cluster, ulocal=ulocal, dlocal=dlocal,
                    dremote=f"{src}:{self.port()}", sni="-", route=route, src=src)

    def tcp(self, t, *, src, cluster, dlocal, uhost, dur, brx, btx, sni="-", flags="-"):
        return dict(t=t, method="-", path="-", proto="-", code=0, flags=flags, details="-", term="-", ufr="-",
                    brx=brx, btx=btx, dur=dur, ust="-", xff="-", ua="-", rid="-", auth="-", uhost=uhost,
                    cluster=cluster, ulocal="-" if uhost == "-" else f"{src}:{self.port()}", dlocal=dlocal,
                    dremote=f"{src}:{self.port()}", sni=sni, route="-", src=src)

    # -- the steady flows --------------------------------------------------------------
    def normal_day(self, day: dt.date, incident: bool) -> list[dict]:
        r = self.rng
        out: list[dict] = []

        def n(mean):  # daily volume with a little day-to-day noise
            return max(1, int(r.gauss(mean * 1.05, mean * 0.08)))

        for _ in range(n(58)):  # frontend -> httpbin.org (TLS origination)
            code = 404 if r.random() < 0.02 else 200
            dur = self.lognorm(180, 0.35)
            out.append(self.http(self.at(day), "GET", r.choice(["/get", "/headers", "/uuid", "/status/200"]),
                                 code, src=FRONTEND, auth="httpbin.org", cluster="inbound-vip|80|http|httpbin.org",
                                 dlocal="240.240.0.2:80", uhost=f"192.0.2.{r.choice([10, 11])}:443", dur=dur,
                                 btx=0 if code == 404 else r.randint(40, 400), ua="okhttp/4.12.0"))
        for _ in range(n(14)):  # reports -> httpbin.org
            dur = self.lognorm(200, 0.35)
            out.append(self.http(self.at(day), "GET", "/anything?report=daily", 200, src=REPORTS,
                                 auth="httpbin.org", cluster="inbound-vip|80|http|httpbin.org",
                                 dlocal="240.240.0.2:80", uhost=f"192.0.2.{r.choice([10, 11])}:443", dur=dur,
                                 btx=r.randint(380, 460), ua="python-requests/2.32.3"))
        for _ in range(n(78)):  # payments -> api.stripe.com
            code = 402 if r.random() < 0.015 else 200
            method, path = r.choice([("POST", "/v1/charges"), ("POST", "/v1/payment_intents"),
                                     ("GET", "/v1/balance")])
            out.append(self.http(self.at(day), method, path, code, src=r.choice([PAY_A, PAY_B]),
                                 auth="api.stripe.com", cluster="inbound-vip|80|http|api.stripe.com",
                                 dlocal="240.240.0.5:80", uhost=f"192.0.2.{r.choice([45, 46])}:443",
                                 dur=self.lognorm(350, 0.3), brx=r.randint(200, 600) if method == "POST" else 0,
                                 btx=r.randint(300, 2500), ua="Stripe/v1 PythonBindings/7.10.0"))
        for _ in range(n(24)):  # notifications -> hooks.slack.com
            out.append(self.http(self.at(day), "POST", "/services/T024BE7LD/B07H3J9K2/xoxb", 200, src=NOTIF,
                                 auth="hooks.slack.com", cluster="inbound-vip|80|http|hooks.slack.com",
                                 dlocal="240.240.0.7:80", uhost="198.51.100.40:443", dur=self.lognorm(210, 0.3),
                                 brx=r.randint(150, 900), btx=2, ua="python-requests/2.32.3"))
        for _ in range(n(19)):  # uploader -> storage.example (10 kB - 2 MB)
            size = int(math.exp(r.uniform(math.log(10_000), math.log(2_000_000))))
            out.append(self.http(self.at(day), "PUT", f"/uploads/reports/{r.randint(1000, 9999)}.csv", 201,
                                 src=UPLOADER, auth="storage.example", cluster="inbound-vip|80|http|storage.example",
                                 dlocal="240.240.0.14:80", uhost=f"203.0.113.{r.choice([60, 61])}:443",
                                 dur=int(150 + size / 20_000 + r.randint(0, 80)), brx=size, btx=0,
                                 ua="python-requests/2.32.3"))
        for _ in range(n(58)):  # ci-runner -> api.github.com (sidecar, TLS origination)
            code = 429 if r.random() < 0.01 else 200
            dur = self.lognorm(250, 0.5) * (10 if incident else 1)
            out.append(self.http(self.at(day), "GET", r.choice(["/repos/acme/shop/actions/runs",
                                                                "/repos/istio/istio/releases/latest", "/rate_limit"]),
                                 code, src=CI, auth="api.github.com", cluster="outbound|80||api.github.com",
                                 dlocal="240.240.0.3:80", uhost=f"198.51.100.{r.choice([20, 21])}:443", dur=dur,
                                 btx=r.randint(500, 9000), ua="Go-http-client/1.1", sidecar=True))
        for src, mean in ((CI, 19), (CRON, 10), (WORKER, 29)):  # TLS passthrough to S3
            for _ in range(n(mean)):
                out.append(self.tcp(self.at(day), src=src, cluster="outbound|443||s3.amazonaws.com",
                                    dlocal="240.240.0.6:443", uhost=f"198.51.100.{r.choice([31, 32])}:443",
                                    dur=self.lognorm(900, 0.5), brx=r.randint(800, 30000),
                                    btx=r.randint(2000, 60000), sni="s3.amazonaws.com"))
        broken_from = dt.time(6, 0)
        for _ in range(n(29)):  # report-cron -> legacy-partner.example (TLS origination)
            t = self.at(day)
            if incident and t.time() >= broken_from:
                body = ("upstream connect error or disconnect/reset before headers. reset reason: connection "
                        "failure, transport failure reason: " + CERT_EXPIRED)
                out.append(self.http(t, "GET", "/api/v2/invoices?status=open", 503, src=CRON,
                                     auth="legacy-partner.example", cluster="outbound|80||legacy-partner.example",
                                     dlocal="240.240.0.9:80", uhost="203.0.113.40:443", dur=r.randint(55, 95),
                                     btx=len(body), ua="Apache-HttpClient/4.5.14 (Java/17.0.12)", flags="UF,URX",
                                     details=CERT_DETAILS, ufr=CERT_EXPIRED, sidecar=True, ulocal="-"))
            else:
                out.append(self.http(t, "GET", "/api/v2/invoices?status=open", 200, src=CRON,
                                     auth="legacy-partner.example", cluster="outbound|80||legacy-partner.example",
                                     dlocal="240.240.0.9:80", uhost="203.0.113.40:443",
                                     dur=self.lognorm(420, 0.3), btx=r.randint(2000, 8000),
                                     ua="Apache-HttpClient/4.5.14 (Java/17.0.12)", sidecar=True))
        for _ in range(n(78)):  # productpage -> reviews/details (mesh-internal)
            svc, cip = r.choice([("reviews", "10.96.41.201"), ("details", "10.96.22.5")])
            out.append(self.http(self.at(day), "GET", f"/{svc}/{r.randint(0, 9)}", 200, src=PRODUCTPAGE,
                                 auth=f"{svc}:9080", cluster=f"outbound|9080||{svc}.legacy.svc.cluster.local",
                                 dlocal=f"{cip}:9080", uhost=f"10.244.2.{r.randint(40, 49)}:9080",
                                 dur=self.lognorm(12, 0.4), btx=r.randint(170, 400), ua="python-requests/2.32.3",
                                 sidecar=True))
        return out

    # -- the planted anomalies (see the module docstring, numbered the same) --------------
    def planted(self, day: dt.date) -> list[dict]:
        r = self.rng
        out: list[dict] = []
        h = lambda hours: self.at(day, r.choice(hours))  # noqa: E731
        for _ in range(80):  # 1 new destination
            out.append(self.http(h([2, 3]), "POST", "/collect", 200, src=REPORTS, auth="exfil.example",
                                 cluster="inbound-vip|80|http|exfil.example", dlocal="240.240.0.20:80",
                                 uhost="198.51.100.23:443", dur=self.lognorm(600, 0.3),
                                 brx=r.randint(40_000, 200_000), btx=2, ua="python-requests/2.32.3"))
        for _ in range(20):  # 2 new pair
            out.append(self.http(h([10]), "GET", "/v1/customers?limit=100", 200, src=FRONTEND,
                                 auth="api.stripe.com", cluster="inbound-vip|80|http|api.stripe.com",
                                 dlocal="240.240.0.5:80", uhost=f"192.0.2.{r.choice([45, 46])}:443",
                                 dur=self.lognorm(380, 0.3), btx=r.randint(40_000, 90_000), ua="okhttp/4.12.0"))
        for _ in range(15):  # 3 passthrough HTTP
            out.append(self.http(h([11]), "POST", "/api/api_post.php", 200, src=CRON, auth="pastebin.com",
                                 cluster="PassthroughCluster", dlocal="198.51.100.88:80", uhost="198.51.100.88:80",
                                 dur=self.lognorm(250, 0.3), brx=r.randint(2_000, 30_000), btx=38,
                                 ua="curl/8.5.0", sidecar=True, route="allow_any"))
        for _ in range(6):  # 3 passthrough TCP
            out.append(self.tcp(h([12]), src=CRON, cluster="PassthroughCluster", dlocal="203.0.113.50:5432",
                                uhost="203.0.113.50:5432", dur=r.randint(20_000, 120_000), brx=r.randint(900, 3000),
                                btx=r.randint(40_000, 90_000)))
        for _ in range(12):  # 4 blocked: BlackHoleCluster
            out.append(self.tcp(h([5]), src=WORKER, cluster="BlackHoleCluster", dlocal="198.51.100.77:443",
                                uhost="-", dur=0, brx=0, btx=0, flags="UH"))
        for _ in range(12):  # 4 blocked: REGISTRY_ONLY plain HTTP
            out.append(self.http(h([5]), "GET", "/xmrig/config.json", 502, src=WORKER, auth="crypto-miner.example",
                                 cluster="-", dlocal="198.51.100.78:80", uhost="-", dur=0, details="direct_response",
                                 ua="curl/8.5.0", sidecar=True, route="block_all"))
        for _ in range(30):  # 5 RBAC
            out.append(self.http(h([15]), "POST", "/post", 403, src=FRONTEND, auth="httpbin.org",
                                 cluster="inbound-vip|80|http|httpbin.org", dlocal="240.240.0.2:80", uhost="-",
                                 dur=0, brx=r.randint(100, 900), btx=19, ua="okhttp/4.12.0",
                                 details="rbac_access_denied_matched_policy[ns[istio-egress]-policy[deny-httpbin-post]-rule[0]]"))
        for _ in range(20):  # 5 ext_authz
            out.append(self.http(h([16]), "POST", "/services/T024BE7LD/B07H3J9K2/xoxb", 403, src=NOTIF,
                                 auth="hooks.slack.com", cluster="inbound-vip|80|http|hooks.slack.com",
                                 dlocal="240.240.0.7:80", uhost="-", dur=r.randint(2, 9), brx=r.randint(150, 900),
                                 btx=0, ua="python-requests/2.32.3", flags="UAEX", details="ext_authz_denied"))
        body = ("upstream connect error or disconnect/reset before headers. retried and the latest reset reason: "
                "connection failure, transport failure reason: " + REFUSED)
        for _ in range(90):  # 6 error spike
            method, path = r.choice([("POST", "/v1/charges"), ("POST", "/v1/payment_intents")])
            out.append(self.http(h([14]), method, path, 503, src=r.choice([PAY_A, PAY_B]), auth="api.stripe.com",
                                 cluster="inbound-vip|80|http|api.stripe.com", dlocal="240.240.0.5:80",
                                 uhost=f"192.0.2.{r.choice([45, 46])}:443", dur=r.randint(30, 160),
                                 brx=r.randint(200, 600), btx=len(body), ua="Stripe/v1 PythonBindings/7.10.0",
                                 flags="UF,URX", details=REFUSED_DETAILS, ufr=REFUSED, ulocal="-"))
        # 7 latency jump: applied inside normal_day(incident=True)
        t = dt.datetime(day.year, day.month, day.day, 3, 17, 4, 211000)  # 8 large upload
        out.append(self.http(t, "PUT", "/uploads/db-dump.tar", 201, src=UPLOADER, auth="storage.example",
                             cluster="inbound-vip|80|http|storage.example", dlocal="240.240.0.14:80",
                             uhost="203.0.113.60:443", dur=95312, ust="95309", brx=524288000, btx=0,
                             ua="python-requests/2.32.3"))
        for _ in range(40):  # 9 plaintext
            out.append(self.http(h(list(range(8, 20))), "POST", "/webhook", 200, src=NOTIF,
                                 auth="http-only.example", cluster="inbound-vip|80|http|http-only.example",
                                 dlocal="240.240.0.21:80", uhost="198.51.100.30:80", dur=self.lognorm(140, 0.3),
                                 brx=r.randint(300, 1500), btx=2, ua="python-requests/2.32.3"))
        for _ in range(8):  # 9 direct IP
            out.append(self.http(h([9]), "GET", "/install.sh", 200, src=CI, auth="203.0.113.9",
                                 cluster="PassthroughCluster", dlocal="203.0.113.9:80", uhost="203.0.113.9:80",
                                 dur=self.lognorm(300, 0.3), btx=18211, ua="curl/8.5.0", sidecar=True,
                                 route="allow_any"))
        # 10 TLS failure: applied inside normal_day(incident=True)
        return out


def format_line(d: dict) -> str:
    """Istio 1.23 default TEXT format (FORMATS.md a.1)."""
    t = d["t"]
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return (f'[{ts}] "{d["method"]} {d["path"]} {d["proto"]}" {d["code"]} {d["flags"]} {d["details"]} {d["term"]} '
            f'"{d["ufr"]}" {d["brx"]} {d["btx"]} {d["dur"]} {d["ust"]} "{d["xff"]}" "{d["ua"]}" "{d["rid"]}" '
            f'"{d["auth"]}" "{d["uhost"]}" {d["cluster"]} {d["ulocal"]} {d["dlocal"]} {d["dremote"]} '
            f'{d["sni"]} {d["route"]}')


def destination_of(d: dict) -> str:
    """The egress destination a record talks to (the key used by PLANTED's new_* lists)."""
    c = d["cluster"]
    if c.count("|") == 3:                  # outbound|P|S|host, inbound-vip|P|proto|host
        return c.rsplit("|", 1)[1]
    if d["auth"] != "-":                   # PassthroughCluster HTTP, block_all: the Host header
        return d["auth"]
    return d["dlocal"]                     # TCP passthrough / BlackHoleCluster: only the IP:port


def check(baseline: list[dict], incident: list[dict]) -> None:
    base_dest = {destination_of(d) for d in baseline}
    inc_dest = {destination_of(d) for d in incident}
    base_pairs = {(d["src"], destination_of(d)) for d in baseline}
    inc_pairs = {(d["src"], destination_of(d)) for d in incident}
    new_dest = sorted(inc_dest - base_dest)
    new_pairs = sorted(inc_pairs - base_pairs)
    assert new_dest == PLANTED["new_destinations"], new_dest
    assert new_pairs == PLANTED["new_pairs"], new_pairs
    for d in baseline:  # "no anomalies" in the baseline
        assert d["flags"] == "-" and d["code"] < 500, format_line(d)
        assert d["cluster"] not in ("PassthroughCluster", "BlackHoleCluster", "-"), format_line(d)
        assert not d["uhost"].endswith(":80") or d["cluster"].endswith("svc.cluster.local"), format_line(d)


def write(path: str, records: list[dict]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for d in records:
            f.write(format_line(d) + "\n")
    os.replace(tmp, path)
    print(f"{os.path.relpath(path)}: {len(records)} lines, {os.path.getsize(path)} bytes")


def main() -> None:
    g = Gen(random.Random(SEED))
    baseline: list[dict] = []
    for i in range(7):
        baseline += g.normal_day(dt.date(2025, 3, 1) + dt.timedelta(days=i), incident=False)
    day = dt.date(2025, 3, 8)
    incident = g.normal_day(day, incident=True) + g.planted(day)
    baseline.sort(key=lambda d: d["t"])
    incident.sort(key=lambda d: d["t"])
    check(baseline, incident)
    write(os.path.join(HERE, "baseline-week.log"), baseline)
    write(os.path.join(HERE, "incident-day.log"), incident)


if __name__ == "__main__":
    main()
