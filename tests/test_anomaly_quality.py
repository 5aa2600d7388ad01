"""Do the anomaly findings hold up on realistic traffic? A seeded generator of days of egress
through an ambient mesh's egress waypoint (Istio 1.23 waypoint lines, as sample_logs/waypoint-egress-1.23.log,
with the client nodes' ztunnel lines that name the pods), with daily and weekly cycles, deploys that
rotate pods and their IPs, a nightly CronJob, a monthly batch job, low-volume destinations, a
provider's 5xx blip with retries and a planned release; and incidents planted into it. The tests
check what a platform team would read each morning: how many findings a day of no incident gives,
and whether each incident is found, with its severity."""
from __future__ import annotations

import datetime as dt
import functools
import json
import random
from dataclasses import dataclass, field

import pytest
from test_report import anomalies, found, report_db, write_dataset

UTC = dt.timezone.utc
START = dt.datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
WAYPOINT = "10.244.0.18"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # (Kubernetes' generated-name alphabet: no vowels, no 0, 1, 3)
# A pod-template hash's characters: a 32-bit hash's decimal digits, each mapped into _ALPHABET by its
# code mod 27 (SafeEncodeString): 0-9 are 4-9, b, c, d, f
_HASH = "".join(_ALPHABET[ord(d) % 27] for d in "0123456789")

# host -> (VIP of its ServiceEntry, endpoint IP): registered, through the waypoint
HOSTS = {
    "api.stripe.com": ("240.240.0.5", "192.0.2.45"),
    "httpbin.org": ("240.240.0.2", "192.0.2.10"),
    "hooks.slack.com": ("240.240.0.7", "198.51.100.40"),
    "api.github.com": ("240.240.0.3", "198.51.100.20"),
    "storage.example": ("240.240.0.14", "203.0.113.60"),
    "partner-api.example": ("240.240.0.9", "203.0.113.40"),
    "api.sendgrid.com": ("240.240.0.11", "198.51.100.60"),
}


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _zts(t: dt.datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Pod:
    namespace: str
    name: str
    ip: str


@dataclass
class Traffic:
    """The lines of a run of days, generated in time order per call and sorted at the end."""
    seed: int = 1
    lines: list = field(default_factory=list)
    ids: int = 0

    def __post_init__(self):
        self.rnd = random.Random(self.seed)
        self.next_ip = 10

    def new_ip(self) -> str:
        self.next_ip += 1
        return f"10.244.{1 + self.next_ip // 250}.{self.next_ip % 250 + 2}"

    def pod(self, namespace: str, workload: str, kind: str = "Deployment") -> Pod:
        r = self.rnd
        rand = lambda n: "".join(r.choice(_ALPHABET) for _ in range(n))  # noqa: E731
        # (the hash drawn as the random part is, then mapped onto _HASH: the same draws, the same days)
        hashed = lambda n: "".join(_HASH[_ALPHABET.index(c) % 10] for c in rand(n))  # noqa: E731
        suffix = {"Deployment": f"{hashed(r.choice((9, 10)))}-{rand(5)}",
                  "CronJob": f"{29_000_000 + r.randrange(1_000_000)}-{rand(5)}"}[kind]
        return Pod(namespace, f"{workload}-{suffix}", self.new_ip())

    def request(self, t: dt.datetime, pod: Pod, host: str, *, method: str = "GET", path: str = "/x", code: int = 200,
                flags: str = "-", up: int = 0, down: int = 500, ms: int = 120, vip: str | None = None,
                upstream: str | None = None, cluster: str | None = None, proto: str = "HTTP/1.1",
                authority: str | None = None, ztunnel: bool = True, upstream_port: int = 443,
                details: str | None = None) -> None:
        """One egress request of ``pod`` to ``host`` through the waypoint (its ServiceEntry's VIP), with
        the client node's ztunnel line of its connection to the waypoint (which names the pod)."""
        self.ids += 1
        rid = f"{self.seed:08x}-{self.ids >> 16:04x}-4000-8000-{self.ids:012x}"
        se_vip, endpoint = HOSTS.get(host, (vip, upstream))
        vip = vip or se_vip
        cluster = cluster or f"inbound-vip|80|http|{host}"
        details = details or ("via_upstream" if flags == "-" else "upstream_reset_before_response_started{connection_failure}")
        port = self.rnd.randrange(32768, 60999)
        self.lines.append((t, f'[{_ts(t)}] "{method} {path} {proto}" {code} {flags} {details} - "-" {up} {down} {ms} '
                              f'{max(ms - 2, 0) if flags == "-" else "-"} "-" "Go-http-client/1.1" "{rid}" '
                              f'"{authority or host}" "{endpoint}:{upstream_port}" {cluster} {WAYPOINT}:{port} {vip}:80 '
                              f'{pod.ip}:{port + 1} - default\n'))
        if ztunnel:
            z = t + dt.timedelta(milliseconds=ms + 5)
            self.lines.append((z, f'{_zts(z)}\tinfo\taccess\tconnection complete\tsrc.addr={pod.ip}:{port + 1} '
                                  f'src.workload="{pod.name}" src.namespace="{pod.namespace}" '
                                  f'src.identity="spiffe://cluster.local/ns/{pod.namespace}/sa/default" '
                                  f'dst.addr={WAYPOINT}:15008 dst.hbone_addr={vip}:80 dst.service={host} '
                                  f'direction="outbound" bytes_sent={up + 200} bytes_recv={down + 200} '
                                  f'duration="{ms}ms"\n'))

    def direct(self, t: dt.datetime, pod: Pod, address: str, *, up: int = 300, down: int = 2000, ms: int = 80) -> None:
        """A connection ztunnel carried straight out to ``address`` (ip:port): no ServiceEntry, no waypoint."""
        self.lines.append((t, f'{_zts(t)}\tinfo\taccess\tconnection complete\tsrc.addr={pod.ip}:{self.rnd.randrange(32768, 60999)} '
                              f'src.workload="{pod.name}" src.namespace="{pod.namespace}" '
                              f'src.identity="spiffe://cluster.local/ns/{pod.namespace}/sa/default" dst.addr={address} '
                              f'direction="outbound" bytes_sent={up} bytes_recv={down} duration="{ms}ms"\n'))

    def blocked(self, t: dt.datetime, pod: Pod, address: str) -> None:
        """A connection of ``pod``'s sidecar that REGISTRY_ONLY refused (BlackHoleCluster) to ``address``
        (ip:port), as sample_logs/sidecar-outbound-1.22.log logs one: no ztunnel line (a sidecar's pod is
        no ambient one), so it is named by --pods."""
        self.lines.append((t, f'[{_ts(t)}] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - '
                              f'{address} {pod.ip}:{self.rnd.randrange(32768, 60999)} - -\n'))

    def text(self) -> str:
        return "".join(line for _, line in sorted(self.lines, key=lambda x: x[0]))

    def copy(self) -> Traffic:
        """A Traffic that goes on from here as this one would (its lines, ids, addresses and random
        state), this one left as it is."""
        tr = Traffic(self.seed, list(self.lines), self.ids)
        tr.rnd.setstate(self.rnd.getstate())
        tr.next_ip = self.next_ip
        tr.pods = {w: list(pods) for w, pods in self.pods.items()}
        tr.origin = self
        return tr

    def logs(self, tmp_path) -> list:
        """The log files of these lines in ``tmp_path``: of a copy, its origin's lines (a file written
        once, the first copy's, and so parsed once: test_report._record_batches) and the lines added to
        them (``egress.log``); else all of them (``egress.log``)."""
        origin = getattr(self, "origin", None)
        log = tmp_path / "egress.log"
        if origin is None or self.lines[:len(origin.lines)] != origin.lines:
            log.write_text(self.text())
            return [log]
        # (written again if its test's tmp_path is gone: tmp_path_retention_policy "none" or "failed")
        if getattr(origin, "log", None) is None or not origin.log.exists():
            origin.log = tmp_path / "quiet.log"
            origin.log.write_text(origin.text())
        added = Traffic(self.seed, self.lines[len(origin.lines):])
        if not added.lines:
            return [origin.log]
        log.write_text(added.text())
        return [origin.log, log]


def _rate(t: dt.datetime, peak: float) -> float:
    """Requests an hour at hour ``t``: business hours (08-18 UTC) on weekdays at ``peak``, evenings a
    quarter, nights and weekends a twentieth (a few)."""
    weekend = t.weekday() >= 5
    if 8 <= t.hour < 18:
        share = 0.1 if weekend else 1.0
    elif 6 <= t.hour < 22:
        share = 0.05 if weekend else 0.25
    else:
        share = 0.03
    return peak * share


def quiet_days(days: int, **options) -> Traffic:
    """_quiet_days' traffic of ``days`` days, generated once per set of arguments (~0.25 s of CPU for
    8 days; seven tests plant their incidents into the same 8 days), each caller given its own copy
    to add to."""
    return _quiet_days(days, **options).copy()


@functools.lru_cache(maxsize=None)
def _quiet_days(days: int, *, seed: int = 1, start: dt.datetime = START, blip_day: int | None = 2,
                release_day: int | None = None, ztunnel: bool = True, backup_growth: float = 0.0) -> Traffic:
    """``days`` days of ordinary egress from ``start``: no incident.

    payments (2 pods) -> api.stripe.com, POST, peaks of 120 an hour; retries a 5xx twice;
    frontend (2 pods) -> httpbin.org, GET, peaks of 60 an hour;
    notifications (1 pod) -> hooks.slack.com, POST, peaks of 20 an hour (and api.sendgrid.com from
      ``release_day`` on, a planned release);
    ci-runner (1 pod) -> api.github.com, weekdays only, peaks of 30 an hour;
    reports (1 pod) -> partner-api.example, 3 calls at 09:00 on Mondays and Thursdays only;
    backup (a CronJob: a new pod, a new IP, every night) -> storage.example, 01:00, 20 PUTs of ~2.5 MB
      (each night ``backup_growth`` more than the night before: 0.05, 5% a day);
    billing (a CronJob, monthly: the 1st at 03:00) -> storage.example, 40 PUTs of ~5 MB.
    Every day at 14:00 payments and frontend are deployed: new pods (names and IPs).
    ``blip_day``: api.stripe.com answers 503 UF for 4 minutes at 15:00 that day."""
    tr = Traffic(seed)
    r = tr.rnd
    pods = {w: [tr.pod("shop", w) for _ in range(n)] for w, n in
            (("payments", 2), ("frontend", 2), ("notifications", 1), ("ci-runner", 1), ("reports", 1))}
    for day in range(days):
        d0 = start + dt.timedelta(days=day)
        for hour in range(24):
            h0 = d0 + dt.timedelta(hours=hour)
            if hour == 14:  # the daily deploy: new pods, new IPs
                for w in ("payments", "frontend"):
                    pods[w] = [tr.pod("shop", w) for _ in pods[w]]
            flows = [("payments", "api.stripe.com", 120, "POST", (300, 2000)),
                     ("frontend", "httpbin.org", 60, "GET", (0, 0)),
                     ("notifications", "hooks.slack.com", 20, "POST", (200, 900))]
            if release_day is not None and day >= release_day:
                flows.append(("notifications", "api.sendgrid.com", 10, "POST", (500, 3000)))
            if h0.weekday() < 5:
                flows.append(("ci-runner", "api.github.com", 30, "GET", (0, 0)))
            for w, host, peak, method, (lo, hi) in flows:
                n = max(1, int(r.gauss(_rate(h0, peak), 1 + _rate(h0, peak) ** 0.5 / 2)))
                for _ in range(n):
                    t = h0 + dt.timedelta(seconds=r.uniform(0, 3599))
                    pod = r.choice(pods[w])
                    blip = (host == "api.stripe.com" and day == blip_day and hour == 15
                            and t.minute < 4)
                    ms = max(20, int(r.lognormvariate(5, 0.4)))
                    if blip:
                        for k in range(3):  # the call and the client's two retries, all failing
                            tr.request(t + dt.timedelta(milliseconds=300 * k), pod, host, method=method, code=503,
                                       flags="UF", up=r.randint(lo, hi), down=91, ms=30, ztunnel=ztunnel)
                        continue
                    tr.request(t, pod, host, method=method, up=r.randint(lo, hi), down=r.randint(200, 4000), ms=ms,
                               ztunnel=ztunnel)
            if hour == 9 and h0.weekday() in (0, 3):
                for k in range(3):
                    tr.request(h0 + dt.timedelta(minutes=k), pods["reports"][0], "partner-api.example",
                               ms=r.randint(200, 900), ztunnel=ztunnel)
            if hour == 1:
                backup = tr.pod("ops", "backup", "CronJob")
                grown = (1 + backup_growth) ** day
                for k in range(20):
                    tr.request(h0 + dt.timedelta(seconds=30 * k), backup, "storage.example", method="PUT",
                               up=int(r.randint(2_300_000, 2_700_000) * grown), down=300, ms=r.randint(2000, 4000), ztunnel=ztunnel)
            if hour == 3 and h0.day == 1:
                billing = tr.pod("billing", "billing", "CronJob")
                for k in range(40):
                    tr.request(h0 + dt.timedelta(seconds=30 * k), billing, "storage.example", method="PUT",
                               up=r.randint(4_500_000, 5_500_000), down=300, ms=r.randint(3000, 6000), ztunnel=ztunnel)
    tr.pods = pods  # (the last day's)
    return tr


def _report(tmp_path, tr: Traffic, **options) -> dict:
    return anomalies(write_dataset(tr.logs(tmp_path), tmp_path / "data"), **options)


def _summary(doc) -> list[tuple]:
    return [(f["severity"], f["kind"], f["source"], f["destination"]) for f in doc["findings"]]


@pytest.fixture(scope="module")
def quiet_week(tmp_path_factory) -> dict:
    """Eight quiet days' report (the last day the window, the week before it the baseline): two deploys
    of new pods a day, a nightly CronJob's new pod, a provider blip on the Wednesday."""
    return _report(tmp_path_factory.mktemp("quiet"), quiet_days(8))


def test_a_quiet_day_gives_no_finding(quiet_week):
    """A day of ordinary traffic gives no finding. ztunnel names a client by its pod: each deploy's
    new pods (shop/payments-65cf9b7d84-lr29z) and each night's backup run (ops/backup-29078747-qk5qf)
    were new pairs of the destinations their workload calls every day: 5 low new_pair findings,
    every day, with nothing new."""
    assert quiet_week["window"]["requests"] > 2000 and quiet_week["baseline"]["requests"] > 10000
    assert _summary(quiet_week) == []


def test_a_nightly_cronjobs_upload_is_no_volume_outlier(tmp_path):
    """A CronJob's run is a new pod each night: its pair had no baseline of its own, and the
    destination's upload per source was spread over every night's pod, so on the 15th day the same
    50 MB as every night was ten times '3.6 MB a day' (a medium volume_outlier). Its baseline is its
    workload's, ops/backup's."""
    doc = _report(tmp_path, quiet_days(15, start=dt.datetime(2025, 3, 2, tzinfo=UTC), blip_day=None))
    assert _summary(doc) == []


def test_a_new_workload_calling_a_known_destination_is_still_a_new_pair(tmp_path):
    """A workload's pods are one client for new_pair, not the whole namespace: a pod of a workload that
    never called the destination is a new pair, named by its pod."""
    tr = quiet_days(8, blip_day=None)
    reports_pod = tr.pods["reports"][0]
    tr.request(START + dt.timedelta(days=7, hours=10), reports_pod, "api.stripe.com", method="POST", up=500)
    doc = _report(tmp_path, tr)
    assert _summary(doc) == [("low", "new_pair", f"shop/{reports_pod.name}", "api.stripe.com")]


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> dict:
    """The quiet week with incidents planted into its last day (the window)."""
    tr = quiet_days(8, blip_day=None)
    last = START + dt.timedelta(days=7)
    frontend, payments, notifications = tr.pods["frontend"][0], tr.pods["payments"][0], tr.pods["notifications"][0]
    # a new destination at 3 a.m., by raw IP, 20 kB up
    tr.direct(last + dt.timedelta(hours=3, minutes=2), frontend, "198.51.100.201:443", up=20_000)
    # a compromised pod calling a raw IP once an hour
    for h in range(24):
        tr.direct(last + dt.timedelta(hours=h, minutes=13), notifications, "192.0.2.99:8080", up=200)
    # a TLS downgrade: api.stripe.com's endpoint on port 80, GETs (no body: the API key is a header)
    for k in range(5):
        tr.request(last + dt.timedelta(hours=11, minutes=k), payments, "api.stripe.com", upstream_port=80)
    # a burst of denials
    for k in range(30):
        tr.request(last + dt.timedelta(hours=16, seconds=10 * k), frontend, "hooks.slack.com", method="POST", code=403,
                   details="rbac_access_denied_matched_policy[ns[shop]-policy[deny-slack]-rule[0]]", down=19, ms=1)
    # a provider's slow minutes: 8 requests of 15 s (too few to move the day's p99)
    for k in range(8):
        tr.request(last + dt.timedelta(hours=15, seconds=20 * k), tr.pods["payments"][k % 2], "api.stripe.com",
                   method="POST", code=504, flags="UT", ms=15000, up=500)
    return _report(tmp_path_factory.mktemp("incidents"), tr)


@pytest.mark.parametrize("severity, kind, destination", [
    ("high", "authz_denial", "hooks.slack.com"),
    ("medium", "new_destination", "198.51.100.201"),
    ("medium", "new_destination", "192.0.2.99"),
])
def test_planted_incident_is_found_with_its_severity(incidents, severity, kind, destination):
    assert [f["severity"] for f in found(incidents, kind, destination=destination)] == [severity]


def test_a_tls_downgrade_is_high(incidents):
    """api.stripe.com left with TLS (originated at the waypoint) all week; on the last day 5 GETs left
    in clear text, their bodies empty (the API key is a header). It was low, as a destination that
    was always plaintext and sent no body is."""
    (f,) = found(incidents, "plaintext_egress", destination="api.stripe.com")
    assert (f["severity"], f["evidence"]["requests"], f["evidence"]["bytes_up"]) == ("high", 5, 0)
    assert "which the baseline reached with TLS alone" in f["advice"] and "rotate any credential" in f["advice"]


def test_a_destinations_slow_requests_are_one_finding(incidents):
    """8 requests of 15 s to api.stripe.com (381 ms its baseline p99) were 8 single_request findings."""
    (f,) = found(incidents, "latency_outlier", destination="api.stripe.com")
    ev = f["evidence"]
    assert (f["severity"], ev["what"], ev["window_requests"], ev["duration_ms"], ev["start_time"]) == (
        "low", "single_request", 8, 15000, "2025-03-10T15:00:00.000Z")
    assert len(ev["sample_request_ids"]) == 3 and "source_ips" not in f  # (two pods: source names both)
    assert len(f["source"].split(",")) == 2
    assert f["advice"].startswith("8 requests to api.stripe.com took 15000 to 15000 ms against a normal p99 of ")


def test_incidents_make_no_other_finding(incidents):
    """Nothing else: no noise beside the incidents. The denied calls are authz_denial's alone: the pod
    never called hooks.slack.com before, and they were a low new_pair of it too, one event two findings."""
    assert sorted((f["kind"], f["destination"]) for f in incidents["findings"]) == sorted([
        ("authz_denial", "hooks.slack.com"), ("new_destination", "198.51.100.201"),
        ("new_destination", "192.0.2.99"), ("plaintext_egress", "api.stripe.com"),
        ("latency_outlier", "api.stripe.com")])


def test_client_workload_strips_the_names_kubernetes_generates():
    import duckdb

    from logpipe.resources import resource_dir

    con = duckdb.connect()
    con.execute((resource_dir("queries") / "views" / "client_workload.sql").read_text())
    names = {"shop/payments-5f7c9d8b6-q8r2t": "shop/payments",  # a Deployment's pod
             "ops/backup-29078747-qk5qf": "ops/backup",  # a CronJob's run's pod
             "ops/backup-29078747": "ops/backup",  # --pods' owner of it: the Job
             "monitoring/node-exporter-x7k2p": "monitoring/node-exporter",  # a DaemonSet's pod
             "shop/app-grpcws-x7k2p": "shop/app-grpcws",  # a DaemonSet app-grpcws's pod: no hash, no `shop/app`
             "db/postgres-0": "db/postgres-0",  # a StatefulSet's: stable
             "shop/frontend": "shop/frontend", "shop/redis-cache": "shop/redis-cache",
             "10.244.1.21": "10.244.1.21", "fd00::21": "fd00::21",
             "A client (its address is not in the logs)": "A client (its address is not in the logs)"}
    assert {n: con.execute("SELECT client_workload(?)", [n]).fetchone()[0] for n in names} == names


def test_calls_refused_by_policy_are_only_an_authz_denial(tmp_path):
    """A request an authorization policy refused never connected: it is authz_denial's finding alone.
    reports' calls to api.stripe.com that the waypoint's RBAC denied were a low new_pair too, and calls
    to a host nobody called before that ext_authz denied (UAEX) a low new_destination too."""
    tr = quiet_days(8, blip_day=None)
    last = START + dt.timedelta(days=7)
    reports_pod, frontend = tr.pods["reports"][0], tr.pods["frontend"][0]
    for k in range(5):
        tr.request(last + dt.timedelta(hours=10, minutes=k), reports_pod, "api.stripe.com", method="POST", code=403,
                   details="rbac_access_denied_matched_policy[ns[shop]-policy[stripe-payments-only]-rule[0]]",
                   up=500, down=19, ms=1)
        tr.request(last + dt.timedelta(hours=11, minutes=k), frontend, "tracker.example", code=403, flags="UAEX",
                   details="ext_authz_denied", vip="240.240.0.30", upstream="203.0.113.80", down=0, ms=3)
    doc = _report(tmp_path, tr)
    assert sorted(_summary(doc)) == [("medium", "authz_denial", f"shop/{frontend.name}", "tracker.example"),
                                     ("medium", "authz_denial", f"shop/{reports_pod.name}", "api.stripe.com")]


def test_a_denial_the_workload_had_before_a_deploy_is_low(tmp_path):
    """authz_denial's "the baseline shows it" is by workload, as new_pair's: frontend's calls to
    hooks.slack.com, denied every day of the week, were medium again on the last day, its pods new."""
    tr = quiet_days(8, blip_day=None)
    denied = "rbac_access_denied_matched_policy[ns[shop]-policy[deny-slack]-rule[0]]"
    for day in range(8):
        pod = tr.pods["frontend"][0] if day == 7 else tr.pod("shop", "frontend")  # (that day's pod)
        for k in range(3):
            tr.request(START + dt.timedelta(days=day, hours=16, minutes=k), pod, "hooks.slack.com", method="POST",
                       code=403, details=denied, down=19, ms=1)
    doc = _report(tmp_path, tr)
    assert _summary(doc) == [("low", "authz_denial", f"shop/{tr.pods['frontend'][0].name}", "hooks.slack.com")]


def _cronjob_blocked_nightly(tmp_path):
    """8 quiet days and a CronJob ops/telemetry whose every nightly run (a pod of the night's Job) tries
    an address REGISTRY_ONLY blocks: (the traffic, the --pods file naming each run's Job, the last Job)."""
    tr = quiet_days(8, blip_day=None)
    items = []
    for day in range(8):
        pod = tr.pod("ops", "telemetry", "CronJob")
        t = START + dt.timedelta(days=day, hours=2)
        tr.blocked(t + dt.timedelta(seconds=5), pod, "198.51.100.77:443")
        items.append({"kind": "Pod", "metadata": {"name": pod.name, "namespace": "ops", "ownerReferences": [
                          {"kind": "Job", "name": pod.name.rsplit("-", 1)[0], "controller": True}]},
                      "spec": {"serviceAccountName": "default"},
                      "status": {"podIP": pod.ip, "startTime": _ts(t).replace(".000", "")}})
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"kind": "List", "items": items}))
    return tr, pods, items[-1]["metadata"]["ownerReferences"][0]["name"]


@pytest.fixture(scope="module")
def cronjob_runs(tmp_path_factory) -> tuple[dict, str]:
    """_cronjob_blocked_nightly's anomalies report with its --pods, `logpipe report anomalies` in each
    format (the format's output), and the last night's Job: one report of one dataset for the two
    tests below (a report in three formats is ~2.5 s of CPU)."""
    from conftest import run_logpipe

    tmp = tmp_path_factory.mktemp("cronjob")
    tr, pods, job = _cronjob_blocked_nightly(tmp)
    data = write_dataset(tr.logs(tmp), tmp / "data")
    out = {}
    for fmt in ("json", "text", "html"):
        r = run_logpipe("report", "anomalies", "--data", data, "--pods", pods, "-o", fmt)
        assert r.returncode == 0, r.stderr
        out[fmt] = r.stdout
    return out, job


def test_a_blocked_call_of_a_cronjobs_every_run_is_low(cronjob_runs):
    """blocked_attempt's "the baseline shows it" is by workload: a CronJob with a sidecar whose every
    nightly run tries an address REGISTRY_ONLY blocks (--pods names each run by its Job,
    ops/telemetry-29xxxxxx) was a medium blocked_attempt every night."""
    out, _ = cronjob_runs
    assert _summary(json.loads(out["json"])) == [("low", "blocked_attempt", "ops/telemetry", "198.51.100.77")]


def test_a_cronjobs_run_is_named_by_its_cronjob(cronjob_runs):
    """--pods names a CronJob's run's pod by its owner, the night's Job (`ops/telemetry-29xxxxxx`); the
    judgement took it as its CronJob's (reports._POD_ROWS), and the findings name it so too, in the
    JSON, the text and the HTML: they named the last night's Job."""
    out, job = cronjob_runs
    assert [f["source"] for f in json.loads(out["json"])["findings"]] == ["ops/telemetry"]
    assert "blocked_attempt     ops/telemetry -> 198.51.100.77" in out["text"]
    assert "ops/telemetry" in out["html"] and all(job not in out[fmt] for fmt in out)


def test_a_new_pairs_large_upload_is_high(tmp_path):
    """A workload that never called storage.example uploading 200 MB to it (a bucket's host that the
    nightly backup uses: a shared host can hold anyone's bucket) was a low new_pair, as any new pair
    is; a new destination of 1 MB up (upload_high) is high, and so is a new pair now."""
    tr = quiet_days(8, blip_day=None)
    reports_pod = tr.pods["reports"][0]
    for k in range(40):
        tr.request(START + dt.timedelta(days=7, hours=4, seconds=30 * k), reports_pod, "storage.example", method="PUT",
                   up=5_000_000, down=300, ms=3000)
    doc = _report(tmp_path, tr)
    assert _summary(doc) == [("high", "new_pair", f"shop/{reports_pod.name}", "storage.example")]  # (no volume_outlier)
    (f,) = found(doc, "new_pair")
    assert f["evidence"]["bytes_up"] == 200_000_000
    assert f["advice"].endswith(" It sent 200.0 MB there: find out what was sent (the request ids lead to the "
                                "application logs).")


def test_a_pods_owner_name_is_not_cut_as_a_generated_one(tmp_path):
    """client_workload cuts the parts Kubernetes generates from a pod's name (ztunnel's); it cut an
    owner's name --pods gives too: a Deployment `shop/proxy-https` ends in five characters of the
    generated-name alphabet and was judged as `shop/proxy`, so its first call of a host `shop/proxy` calls
    was no new pair. An owner's name is judged as it is (source_owner)."""
    from test_report import pod

    from conftest import SAMPLES, run_logpipe

    data = tmp_path / "d"
    assert run_logpipe("ingest", SAMPLES / "scenario", "--data", data).returncode == 0
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"kind": "List", "items": [
        pod("proxy-6c7d8f9b5-aaaaa", "10.244.1.21", "2025-02-01T00:00:00Z", owner=("ReplicaSet", "proxy-6c7d8f9b5"), hash_="6c7d8f9b5"),
        pod("proxy-6c7d8f9b5-bbbbb", "10.244.1.22", "2025-02-01T00:00:00Z", owner=("ReplicaSet", "proxy-6c7d8f9b5"), hash_="6c7d8f9b5"),
        pod("proxy-https-5d8f7c9b4-ccccc", "10.244.1.41", "2025-02-01T00:00:00Z", owner=("ReplicaSet", "proxy-https-5d8f7c9b4"),
            hash_="5d8f7c9b4")]}))
    r = run_logpipe("report", "anomalies", "--data", data, "--pods", pods, "-o", "json")
    assert r.returncode == 0, r.stderr
    pairs = [(f["source"], f["destination"]) for f in json.loads(r.stdout)["findings"] if f["kind"] == "new_pair"]
    assert ("shop/proxy-https", "api.stripe.com") in pairs, pairs
    got = run_logpipe("query", "--data", data, "--pods", pods, "-o", "json", "--sql",
                      "select distinct source_workload, source_owner from egress where source_ip = '10.244.1.41'")
    assert json.loads(got.stdout) == [{"source_workload": "shop/proxy-https", "source_owner": "shop/proxy-https"}]


def test_a_steady_daily_upload_that_began_recently_is_a_volume_outlier(tmp_path):
    """reports, which uploads nothing, started uploading 5 MB a night to storage.example (a bucket's
    host the backup uses) on the ninth day: a high new_pair that day, and nothing after, as its pair's
    baseline was its own upload. On the last day it has sent 20 MB since it began, against the 0 MB a
    day it uploads elsewhere: a volume_outlier, medium. (It began after the baseline's first week: the
    fifth day of a week's baseline is no beginning, test_a_weekly_jobs_second_run_is_no_slow_upload.)"""
    tr = quiet_days(12, blip_day=None)
    reports_pod = tr.pods["reports"][0]
    for day in range(8, 12):
        for k in range(10):
            tr.request(START + dt.timedelta(days=day, hours=2, seconds=30 * k), reports_pod, "storage.example",
                       method="PUT", up=500_000, down=300, ms=900)
    doc = _report(tmp_path, tr)
    assert _summary(doc) == [("medium", "volume_outlier", f"shop/{reports_pod.name}", "storage.example")]
    (f,) = found(doc, "volume_outlier")
    ev = f["evidence"]
    assert (ev["bytes_up"], ev["bytes_up_since_first_seen"], ev["client_other_daily_bytes"], ev["pair_first_seen"]) == (
        5_000_000, 20_000_000, 0, "2025-03-11T02:00:00.000Z")
    assert f["advice"].startswith(f"shop/{reports_pod.name} uploaded 5.0 MB to storage.example in the window, 20.0 MB "
                                  "since it first called it (2025-03-11 02:00 UTC), against 0.0 MB a day to its other "
                                  "destinations: a steady upload that began recently is how slow exfiltration looks. Confirm this "
                                  "transfer is expected"), f["advice"]  # (one sentence each: it read "looks: confirm")


def test_a_volume_outliers_rate_is_stated(tmp_path):
    """volume_outlier judges a pair by its window upload a day (over its first to last request in the
    window, a day at least) against its baseline's a day; the finding said the window's total alone,
    which over a window of 3 days is no day's. A payments pod uploads 60 MB to api.stripe.com in an hour of
    a 3-day window (--since): its rate, daily_bytes, is its upload over its requests' days (its first the
    burst's, its last the window's last day's: 1.8 days)."""
    tr = quiet_days(8, blip_day=None)
    for k in range(60):
        tr.request(START + dt.timedelta(days=6, hours=4, seconds=30 * k), tr.pods["payments"][0], "api.stripe.com",
                   method="POST", up=1_000_000, down=300, ms=900)
    doc = _report(tmp_path, tr, since=START + dt.timedelta(days=5))
    (f,) = found(doc, "volume_outlier")
    ev = f["evidence"]
    seen = [dt.datetime.fromisoformat(ev[k].replace("Z", "+00:00")) for k in ("first_seen", "last_seen")]
    days = (seen[1] - seen[0]).total_seconds() / 86400
    assert 1.5 < days < 3 and ev["bytes_up"] > 60_000_000 and abs(ev["daily_bytes"] - ev["bytes_up"] / days) < 2
    assert f["advice"].startswith(f"{f['source']} uploaded {ev['bytes_up'] / 1e6:.1f} MB to api.stripe.com "
                                  f"({ev['daily_bytes'] / 1e6:.1f} MB a day over its first to last request in the "
                                  f"window, a day at least, against {ev['baseline_daily_bytes'] / 1e6:.1f} MB a day "
                                  "in the baseline): confirm")


def test_a_short_baseline_is_said(tmp_path, quiet_week):
    """A weekend's baseline (2 days) has not seen weekday traffic: Monday's ci-runner calls are new.
    The report says the baseline is short, in a line of the text and in the JSON; a week's is not."""
    from conftest import run_logpipe

    doc = _report(tmp_path, quiet_days(3, start=dt.datetime(2025, 3, 1, tzinfo=UTC), blip_day=None))
    assert ("new_destination", "api.github.com") in [(f["kind"], f["destination"]) for f in doc["findings"]]
    note = ("the baseline covers 2 days (UTC dates of egress), under 7: traffic of some days of the week only "
            "(weekday clients, weekly jobs) looks new; give a baseline of 7 days or more (--since, --baseline-days, "
            "--baseline DIR)")
    assert (doc["baseline"]["days"], doc["baseline"]["note"]) == (2, note)
    r = run_logpipe("report", "anomalies", "--data", tmp_path / "data", "-o", "text")
    assert r.returncode == 0 and r.stdout.splitlines()[4] == f"note     {note}", r.stdout[:600]
    page = run_logpipe("report", "anomalies", "--data", tmp_path / "data", "-o", "html")
    assert page.returncode == 0 and f"<strong>Note:</strong> {note}." in page.stdout
    assert (quiet_week["baseline"]["days"], quiet_week["baseline"]["note"]) == (7, None)


def test_a_weekly_jobs_second_run_is_no_slow_upload(tmp_path):
    """A weekly CronJob's run is in the baseline once a week: in a baseline of 9 days that began on a
    Monday, ops/export's Wednesday upload of 25 MB to partner-api.example was first seen on its third
    day, so its next Wednesday's run was 'a steady upload that began recently' (50 MB since, against
    0 MB a day elsewhere): a medium volume_outlier of a job that runs every week. A pair began recently
    when the baseline shows a week without it (the days of the week all seen) before it appeared."""
    tr = quiet_days(10, blip_day=None)
    for day in (2, 9):
        export = tr.pod("ops", "export", "CronJob")
        for k in range(10):
            tr.request(START + dt.timedelta(days=day, hours=5, seconds=30 * k), export, "partner-api.example",
                       method="PUT", up=2_500_000, down=300, ms=2000)
    doc = _report(tmp_path, tr)
    assert doc["baseline"]["days"] == 9 and doc["window"]["requests"] > 2000
    assert _summary(doc) == []


def test_three_weeks_each_of_the_last_five_days(tmp_path):
    """21 days: the daily deploys, the nightly backup growing 5% a night (50 MB the first, 133 MB the
    last), weekday-only ci-runner, twice-weekly reports, a provider's blip on day 10 with retries, and
    a new integration (notifications -> api.sendgrid.com) from day 15 on; incidents planted into the last
    five days, each reported as one day (--since, --until) against the days before it. Each day gives its
    incidents' findings and nothing else: notifications' 3 MB a night to storage.example from day 17 (a
    high new_pair its first night, nothing while its total is under min_bytes, a medium volume_outlier
    from the fourth night, 12 MB), a raw IP's first call on day 18, an 80 MB burst of a payments pod and
    hooks.slack.com failing on day 19, a TLS downgrade on day 20."""
    tr = quiet_days(21, blip_day=9, release_day=14, backup_growth=0.05)
    day = lambda d, **kw: START + dt.timedelta(days=d, **kw)  # noqa: E731
    notifications, payments = tr.pods["notifications"][0], tr.pods["payments"][0]
    for d in range(16, 21):
        for k in range(6):
            tr.request(day(d, hours=2, minutes=30, seconds=20 * k), notifications, "storage.example", method="PUT",
                       up=500_000, down=300, ms=900)
    tr.direct(day(17, hours=3, minutes=2), tr.pods["frontend"][0], "203.0.113.99:443", up=20_000)
    for k in range(40):
        tr.request(day(18, hours=4, seconds=20 * k), payments, "api.stripe.com", method="POST", up=2_000_000, down=300,
                   ms=900)
    for k in range(30):
        tr.request(day(18, hours=10, seconds=60 * k), notifications, "hooks.slack.com", method="POST", code=503,
                   flags="UF", up=500, down=91, ms=30)
    for k in range(5):
        tr.request(day(19, hours=11, minutes=k), payments, "api.stripe.com", upstream_port=80)
    log = tmp_path / "egress.log"
    log.write_text(tr.text())
    got = {}
    with report_db(write_dataset([log], tmp_path / "data")) as db:
        for d in range(16, 21):
            doc = anomalies(db, since=day(d), until=day(d + 1))
            assert doc["baseline"]["note"] is None
            got[d] = [(f["severity"], f["kind"], f["destination"]) for f in doc["findings"]]
    assert got == {16: [("high", "new_pair", "storage.example")],
                   17: [("medium", "new_destination", "203.0.113.99")],
                   18: [("high", "error_spike", "hooks.slack.com"), ("high", "volume_outlier", "api.stripe.com")],
                   19: [("high", "plaintext_egress", "api.stripe.com"), ("medium", "volume_outlier", "storage.example")],
                   20: [("medium", "volume_outlier", "storage.example")]}


def test_a_new_workloads_steady_uploads_are_no_slow_upload(tmp_path):
    """A workload deployed on the ninth day (sync: a new Deployment) uploads 4 MB a night to each of its
    two destinations from its first night: its pairs began recently because it did, and each was judged
    against the other's upload spread over the baseline's 11 days, not its own 3 (16 MB since against
    1.1 MB a day elsewhere): a medium volume_outlier on each, of a workload doing on its fourth night
    what it did on its first. A pair begins recently when its client was seen in the baseline before
    it, as the pair's own begins after the baseline's first week (a new workload is new_pair's)."""
    tr = quiet_days(12, blip_day=None)
    sync = tr.pod("shop", "sync")
    for day in range(8, 12):
        for host in ("storage.example", "partner-api.example"):
            for k in range(8):
                tr.request(START + dt.timedelta(days=day, hours=4, seconds=30 * k), sync, host,
                           method="PUT", up=500_000, down=300, ms=900)
    doc = _report(tmp_path, tr)
    assert _summary(doc) == []
