"""Ambient egress that bypasses a waypoint is only visible in ztunnel's log: it must reach the
egress view and the inventory; ztunnel's hop to a waypoint (port 15008) must not be counted twice."""
import json

from conftest import run_logpipe

BYPASS = ('2024-04-12T10:17:44.080629Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:41160 '
          'src.workload=sleep-7656cf8794-r7zb9 src.namespace=default '
          'src.identity="spiffe://cluster.local/ns/default/sa/sleep" dst.addr=203.0.113.7:443 dst.service=api.partner.example '
          'dst.service=api.partner.example direction="outbound" bytes_sent=67 bytes_recv=490 duration="2ms"')
VIA_WAYPOINT = ('2024-04-12T10:17:45.080629Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:41162 '
                'src.workload=sleep-7656cf8794-r7zb9 src.namespace=default dst.addr=10.244.0.18:15008 '
                'dst.hbone_addr=240.240.0.2:80 dst.service=httpbin.org direction="outbound" bytes_sent=67 '
                'bytes_recv=490 duration="3ms"')


def logpipe(*args, cwd):
    return run_logpipe(*args, cwd=cwd)


def test_ztunnel_bypass_egress_is_in_the_egress_view_and_inventory(tmp_path):
    (tmp_path / "zt.log").write_text(BYPASS + "\n" + VIA_WAYPOINT + "\n")
    r = logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("query", "--data", "ds", "-o", "csv", "--sql",
                "select log_format, egress_kind, destination, destination_port, source_ip from egress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == ["ztunnel,registered,api.partner.example,443,10.244.0.24"]
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "api.partner.example" in r.stdout and "httpbin.org" not in r.stdout


# A connection ztunnel could not make to a public address: its line (level error) carries `error`,
# and no flag or response code says it failed (istio/ztunnel src/proxy/metrics.rs access_log!).
TIMED_OUT = ('2024-04-12T10:17:46.080629Z\terror\taccess\tconnection complete\tsrc.addr=10.244.0.24:41170 '
             'src.workload="sleep-7656cf8794-r7zb9" src.namespace="default" dst.addr=203.0.113.7:443 dst.service=api.partner.example '
             'direction="outbound" bytes_sent=0 bytes_recv=0 duration="10001ms" error="io error: deadline has elapsed"')


def test_a_ztunnel_connection_that_failed_counts_in_the_error_share(tmp_path):
    (tmp_path / "zt.log").write_text(BYPASS + "\n" + TIMED_OUT + "\n")
    r = logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [dest] = json.loads(r.stdout)["destinations"]
    assert (dest["destination"], dest["requests"], dest["error_share"]) == ("api.partner.example", 2, 0.5)
    r = logpipe("query", "top_destinations", "--data", "ds", "-o", "csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].endswith(",0.5"), r.stdout


# The same call in the egress waypoint's log: it names the client by IP alone.
WAYPOINT = ('[2024-04-12T10:17:45.070Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 3 2 "-" "curl/8.11.1" '
            '"6f2ed0e3-3f07-4cfc-9d0e-d9560f48b1e9" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org '
            '10.244.0.18:39682 240.240.0.2:80 10.244.0.24:41162 - default')
# Later, the IP is another pod's (pods come and go; ztunnel logs who held it then).
LATER = ('2024-04-12T12:00:00.000000Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:50000 '
         'src.workload="batch-5d8f7c6b9-x1y2z" src.namespace="jobs" dst.addr=10.244.0.18:15008 '
         'dst.hbone_addr=240.240.0.2:80 dst.service="httpbin.org" direction="outbound" bytes_sent=67 '
         'bytes_recv=490 duration="3ms"')
WAYPOINT_LATER = WAYPOINT.replace("10:17:45.070Z", "11:59:59.990Z").replace(":41162", ":50000")


def test_reports_name_a_waypoint_s_client_by_the_workload_ztunnel_logged_for_its_ip(tmp_path):
    """… and so do the named queries: `logpipe query destinations` (and sources) is the inventory's
    section, row for row (they gave IPs where the report gave workloads); SQL of one's own reads
    source_ip as logged (a WHERE on an IP keeps working)."""
    (tmp_path / "zt.log").write_text("\n".join([VIA_WAYPOINT, LATER, BYPASS]) + "\n")
    (tmp_path / "waypoint.log").write_text(WAYPOINT + "\n" + WAYPOINT_LATER + "\n")
    r = logpipe("ingest", "zt.log", "waypoint.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    sources = {s["source"]: s["destinations"] for s in report["sources"]}
    assert sources == {"default/sleep-7656cf8794-r7zb9": ["api.partner.example", "httpbin.org"],
                       "jobs/batch-5d8f7c6b9-x1y2z": ["httpbin.org"]}
    for section in ("destinations", "sources"):
        r = logpipe("query", section, "--data", "ds", "-o", "json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == report[section], section
    r = logpipe("query", "--data", "ds", "-o", "csv", "--sql", "select distinct source_ip from egress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["source_ip", "10.244.0.24"]
    r = logpipe("report", "anomalies", "--data", "ds", "-o", "json", "--since", "2024-04-12T00:00:00Z", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    found = {(f["kind"], f["source"], f["destination"]) for f in json.loads(r.stdout)["findings"]}
    assert ("plaintext_egress", "default/sleep-7656cf8794-r7zb9,jobs/batch-5d8f7c6b9-x1y2z", "httpbin.org") in found, found


def test_pods_name_a_source_before_ztunnel_does(tmp_path):
    (tmp_path / "zt.log").write_text(VIA_WAYPOINT + "\n")
    (tmp_path / "waypoint.log").write_text(WAYPOINT + "\n")
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "List", "items": [{
        "metadata": {"name": "sleep-7656cf8794-r7zb9", "namespace": "default", "labels": {"pod-template-hash": "7656cf8794"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "sleep-7656cf8794", "controller": True}]},
        "spec": {}, "status": {"podIP": "10.244.0.24", "startTime": "2024-04-12T00:00:00Z"}}]}))
    r = logpipe("ingest", "zt.log", "waypoint.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", "--pods", "pods.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [s["source"] for s in json.loads(r.stdout)["sources"]] == ["default/sleep"]


def ztunnel_lines(start: str, n: int, error: str | None) -> str:
    """``n`` connections a second apart from ``start`` (an ISO time, seconds), ztunnel's alone to
    203.0.113.7:443 (api.partner.example): complete (info), or failed with ``error`` (level error)."""
    import datetime as dt

    t0 = dt.datetime.fromisoformat(start)
    out = []
    for i in range(n):
        t = (t0 + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.080629Z")
        level, tail = ("error", f'bytes_sent=0 bytes_recv=0 duration="10001ms" error="{error}"') if error else (
            "info", 'bytes_sent=67 bytes_recv=490 duration="2ms"')
        out.append(f'{t}\t{level}\taccess\tconnection complete\tsrc.addr=10.244.0.24:{41200 + i} '
                   'src.workload="sleep-7656cf8794-r7zb9" src.namespace="default" dst.addr=203.0.113.7:443 '
                   f'dst.service="api.partner.example" direction="outbound" {tail}\n')
    return "".join(out)


def test_a_ztunnel_only_destination_whose_connections_fail_is_an_error_spike(tmp_path):
    """A public address reached through ztunnel alone that answered in the baseline and timed out
    every time today: error_spike names it (its failures had no flag or code, only ztunnel's error);
    a policy's refusals are authz_denial's, not failures (the spike's 12 of 24)."""
    (tmp_path / "zt.log").write_text(
        ztunnel_lines("2024-04-10T10:00:00", 20, None)
        + ztunnel_lines("2024-04-12T10:00:00", 12, "io error: deadline has elapsed")
        + ztunnel_lines("2024-04-12T10:30:00", 12,
                        "connection closed due to policy rejection: explicitly denied by: default/deny-partner"))
    r = logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "anomalies", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    findings = json.loads(r.stdout)["findings"]
    (spike,) = [f for f in findings if f["kind"] == "error_spike"]
    assert (spike["destination"], spike["source"]) == ("api.partner.example", "default/sleep-7656cf8794-r7zb9")
    ev = spike["evidence"]
    assert (ev["requests"], ev["failures"], ev["baseline_share"], ev["response_flags"], ev["errors"]) == (
        24, 12, 0.0, [], ["io error: deadline has elapsed"])
    assert spike["advice"].endswith(' ztunnel logged "io error: deadline has elapsed" (evidence.errors).')
    assert [f["evidence"]["denials"] for f in findings if f["kind"] == "authz_denial"] == [12]


def test_a_stream_of_ztunnel_s_failed_connections_raises_a_failure_burst(tmp_path):
    """The stream's failure_burst counts what error_spike counts: five connections ztunnel could not
    make (refused) within the window are a burst, named by ztunnel's error; five it refused by
    policy are denials, not failures."""
    lines = (ztunnel_lines("2024-04-12T10:00:00", 5, "io error: Connection refused (os error 111)")
             + ztunnel_lines("2024-04-12T11:00:00", 5, "connection closed due to policy rejection: "
                                                       "allow policies exist, but none allowed"))
    from test_stream import stream_cli

    r = stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--alerts-out", "-", input=lines.encode())
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(x) for x in r.stdout.splitlines()]
    (burst,) = [a for a in alerts if a["kind"] == "failure_burst"]
    assert (burst["destination"], burst["count"], burst["evidence"]["line_number"]) == ("api.partner.example", 5, 5)
    # (its client named by the workload ztunnel's lines name, as the reports name it)
    assert burst["message"] == ('5 failures within 4s; last from default/sleep-7656cf8794-r7zb9, TCP error "io error: '
                                'Connection refused (os error 111)"')
    assert [a["kind"] for a in alerts].count("authz_denial") == 1


# ztunnel's hop to an egress waypoint (istio/ztunnel src/proxy/outbound.rs: dst.addr the waypoint on
# HBONE's 15008, dst.hbone_addr the ServiceEntry VIP the client dialled, dst.service its host,
# dst.workload the waypoint's pod), ended with `error` and no byte moved.
def hop(t: str, port: int, error: str, *, service: str = "s3.amazonaws.com", hbone: str = "240.240.0.6:443",
        sent: int = 0, recv: int = 0) -> str:
    return (f'2024-04-12T{t}Z\terror\taccess\tconnection complete\tsrc.addr=10.244.1.35:{port} '
            'src.workload="ci-runner-6b8d9f7c4-m4j2w" src.namespace="ci" '
            'src.identity="spiffe://cluster.local/ns/ci/sa/ci-runner" dst.addr=10.244.0.18:15008 '
            f'dst.hbone_addr={hbone} dst.service="{service}" dst.workload="waypoint-7d9f8b6c4-x2k8p" '
            'dst.namespace="istio-egress" dst.identity="spiffe://cluster.local/ns/istio-egress/sa/waypoint" '
            f'direction="outbound" bytes_sent={sent} bytes_recv={recv} duration="3ms" error="{error}"')


REFUSED = "io error: Connection refused (os error 111)"
# ztunnel could not get its certificate (its CA did not answer), which the tunnel's connection needs first
IDENTITY = "identity error: signing gRPC error (The service is currently unavailable): transport error"
# the same call through the waypoint, complete: ztunnel's hop (in the mesh) and the waypoint's line
S3_VIA_WAYPOINT = ('2024-04-12T10:17:49.905234Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.35:38124 '
                   'src.workload=ci-runner-6b8d9f7c4-m4j2w src.namespace=ci dst.addr=10.244.0.18:15008 '
                   'dst.hbone_addr=240.240.0.6:443 dst.service=s3.amazonaws.com dst.workload=waypoint-7d9f8b6c4-x2k8p '
                   'direction=outbound bytes_sent=2310 bytes_recv=18830 duration="1209ms"')
S3_WAYPOINT = ('[2024-04-12T10:17:48.696Z] "- - -" 0 - - - "-" 2310 18830 1208 - "-" "-" "-" "-" "198.51.100.31:443" '
               'inbound-vip|443|tcp|s3.amazonaws.com 10.244.0.18:54788 240.240.0.6:443 10.244.1.35:38124 s3.amazonaws.com -')


def _beside_the_waypoint(tmp_path, columns: str) -> list[str]:
    """tmp_path's zt.log ingested with the S3 waypoint's line: egress's ``columns`` as csv rows, by time."""
    (tmp_path / "waypoint.log").write_text(S3_WAYPOINT + "\n")
    r = logpipe("ingest", "zt.log", "waypoint.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("query", "--data", "ds", "-o", "csv", "--sql", f"select {columns} from egress order by start_time",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[1:]


def test_a_failed_hop_to_an_egress_waypoint_is_egress_to_its_host(tmp_path):
    """The waypoint logs nothing for a connection ztunnel could not bring to it: ztunnel's line is the
    attempt's one egress row (waypoint, to dst.service), counted as failed (also when ztunnel had no
    certificate for the tunnel, or its pool refused the connection); a hop the waypoint
    answered ("http status: …"), one that moved bytes, one to a mesh service and one straight to a
    workload (the dialled address is the hop's) stay in the mesh."""
    (tmp_path / "zt.log").write_text("\n".join([
        S3_VIA_WAYPOINT,
        hop("10:18:00.000001", 40001, REFUSED),
        hop("10:18:01.000001", 40002, "connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008: "
                                      "deadline has elapsed"),
        hop("10:18:02.000001", 40003, "io error: deadline has elapsed"),
        hop("10:18:03.000001", 40004, "http status: 503 Service Unavailable"),
        hop("10:18:04.000001", 40005, "io error: Connection reset by peer (os error 104)", sent=517, recv=0),
        hop("10:18:05.000001", 40006, REFUSED, service="httpbin.default.svc.cluster.local", hbone="240.240.0.9:80"),
        hop("10:18:06.000001", 40007, REFUSED, service="legacy.partner.example", hbone="10.244.0.18:8080"),
        hop("10:18:07.000001", 40008, IDENTITY),
        hop("10:18:08.000001", 40009, "pool draining"),
    ]) + "\n")
    assert _beside_the_waypoint(tmp_path, "log_format, egress_kind, destination, destination_port, error") == [
        "istio_1_9,waypoint,s3.amazonaws.com,443,",
        f"ztunnel,waypoint,s3.amazonaws.com,443,{REFUSED}",
        'ztunnel,waypoint,s3.amazonaws.com,443,"connection timed out, maybe a NetworkPolicy is blocking HBONE port '
        '15008: deadline has elapsed"',
        "ztunnel,waypoint,s3.amazonaws.com,443,io error: deadline has elapsed",
        f"ztunnel,waypoint,s3.amazonaws.com,443,{IDENTITY}",
        "ztunnel,waypoint,s3.amazonaws.com,443,pool draining"]
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [dest] = json.loads(r.stdout)["destinations"]
    assert (dest["destination"], dest["egress_kind"], dest["requests"], dest["error_share"]) == (
        "s3.amazonaws.com", "waypoint", 6, 0.8333)  # (error_share: 4 decimals)


def test_failed_hops_to_an_egress_waypoint_are_an_error_spike_and_a_failure_burst(tmp_path):
    """S3 answered through the waypoint in the baseline; today the waypoint refuses ztunnel's
    connections: error_spike and the stream's failure_burst name s3.amazonaws.com by ztunnel's error."""
    import datetime as dt

    base = dt.datetime(2024, 4, 10, 10, 0, 0)
    waypoint = [S3_WAYPOINT.replace("2024-04-12T10:17:48.696Z", (base + dt.timedelta(seconds=i)).strftime(
        "%Y-%m-%dT%H:%M:%S.696Z")) for i in range(20)]
    hops = [hop(f"10:00:{i:02d}.000001", 41000 + i, REFUSED) for i in range(12)]
    (tmp_path / "waypoint.log").write_text("\n".join(waypoint) + "\n")
    (tmp_path / "zt.log").write_text("\n".join(hops) + "\n")
    r = logpipe("ingest", "waypoint.log", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "anomalies", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (spike,) = [f for f in json.loads(r.stdout)["findings"] if f["kind"] == "error_spike"]
    assert (spike["destination"], spike["source"]) == ("s3.amazonaws.com", "ci/ci-runner-6b8d9f7c4-m4j2w")
    ev = spike["evidence"]
    assert (ev["requests"], ev["failures"], ev["baseline_share"], ev["errors"]) == (12, 12, 0.0, [REFUSED])

    from test_stream import stream_cli

    r = stream_cli(tmp_path / "live", "--alerts", "ndjson", "--alerts-out", "-",
                   input=("\n".join(hops[:5]) + "\n").encode())
    assert r.returncode == 0, r.stderr
    (burst,) = [a for a in map(json.loads, r.stdout.splitlines()) if a["kind"] == "failure_burst"]
    assert (burst["destination"], burst["count"]) == ("s3.amazonaws.com", 5)


def test_ztunnel_s_failed_connections_claim_no_protocol_or_transport(tmp_path):
    """A connection ztunnel logged as failed that moved no byte carried nothing: of a host reached only
    so, the inventory knows neither protocol nor transport (null); beside the waypoint's TLS line, the
    failed hops (more of them) do not outvote it; a public address ztunnel reached once and failed to
    reach once reads TCP, as its connection that moved bytes does."""
    (tmp_path / "zt.log").write_text("\n".join([
        hop("10:18:00.000001", 40001, REFUSED),
        hop("10:18:01.000001", 40002, REFUSED),
        hop("10:18:02.000001", 40003, REFUSED, service="only-failed.partner.example", hbone="240.240.0.7:443"),
        TIMED_OUT,
        BYPASS.replace("dst.addr=203.0.113.7:443 dst.service=api.partner.example dst.service=api.partner.example",
                       "dst.addr=203.0.113.8:443 dst.service=ok.partner.example"),
        TIMED_OUT.replace("203.0.113.7", "203.0.113.8").replace("api.partner", "ok.partner"),
    ]) + "\n")
    (tmp_path / "waypoint.log").write_text(S3_WAYPOINT + "\n")
    r = logpipe("ingest", "zt.log", "waypoint.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = {d["destination"]: (d["requests"], d["protocol"], d["transport"]) for d in json.loads(r.stdout)["destinations"]}
    assert got == {"s3.amazonaws.com": (3, "TLS", "tls"),
                   "only-failed.partner.example": (1, None, None),
                   "api.partner.example": (1, None, None),
                   "ok.partner.example": (2, "TCP", "tcp")}


def test_a_ztunnel_connection_that_never_came_up_reached_nothing(tmp_path):
    """ztunnel logs no response flag: its error says a connection never came up (refused, timed
    out), so upstream_connected is false for it, as for a UF. A baseline in which the waypoint's host
    and a raw address were only tried so never reached them: reached today, both are new
    destinations (they were not: the failed tries counted as reached)."""
    (tmp_path / "zt.log").write_text("\n".join(
        [hop(f"10:00:{i:02d}.000001", 41000 + i, REFUSED).replace("2024-04-12", "2024-04-10") for i in range(3)]
        + [TIMED_OUT.replace("2024-04-12", "2024-04-10"), BYPASS]) + "\n")
    columns = "cast(start_time as date) d, log_format, egress_kind, destination, upstream_connected"
    assert _beside_the_waypoint(tmp_path, columns) == ["2024-04-10,ztunnel,waypoint,s3.amazonaws.com,false"] * 3 + [
        "2024-04-10,ztunnel,registered,api.partner.example,false",
        "2024-04-12,ztunnel,registered,api.partner.example,true",
        "2024-04-12,istio_1_9,waypoint,s3.amazonaws.com,true"]
    r = logpipe("report", "anomalies", "--data", "ds", "-o", "json", "--since", "2024-04-12T00:00:00Z", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    new = {f["destination"]: f["severity"] for f in json.loads(r.stdout)["findings"] if f["kind"] == "new_destination"}
    assert new == {"s3.amazonaws.com": "low", "api.partner.example": "low"}, new


# istiod gives ztunnel a ServiceEntry's endpoints as workloads named after the ServiceEntry (istio/istio
# pilot/pkg/serviceregistry/kube/controller/ambient/workloads.go, serviceEntryWorkloadBuilder: Name
# se.Name, also for a DNS ServiceEntry's implicit endpoint), and ztunnel logs the endpoint's workload
# as dst.workload (src/proxy/metrics.rs): its plain TCP connection to the external host, no waypoint.
SE_ENDPOINT = ('2024-04-12T10:17:50.080629Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:41180 '
               'src.workload="sleep-7656cf8794-r7zb9" src.namespace="default" dst.addr=203.0.113.7:443 '
               'dst.service="api.partner.example" dst.workload="partner-api" dst.namespace="default" '
               'direction="outbound" bytes_sent=67 bytes_recv=490 duration="2ms"')


def test_a_connection_to_a_service_entry_s_endpoint_is_egress(tmp_path):
    """ztunnel straight to a ServiceEntry's endpoint logs it as dst.workload (the ServiceEntry's name):
    that workload is outside the mesh, so the row is egress as the same line without it is (it was
    none: any dst.workload read as a mesh workload); registered, as a sidecar's outbound|…|HOST is,
    whatever its address: an on-prem host on 10.x is egress too (it was none, not public). A pod's
    workload stays in the mesh, reached by its address (no dst.service) or as a service of the mesh,
    public IPv6 address or not."""
    pod = SE_ENDPOINT.replace("dst.addr=203.0.113.7:443", "dst.addr=[2600:1f18::7]:8080").replace(
        'dst.workload="partner-api"', 'dst.workload="reviews-v1-5fd6d4f8f8-knbht"')
    (tmp_path / "zt.log").write_text("\n".join([
        SE_ENDPOINT,
        SE_ENDPOINT.replace("203.0.113.7:443", "10.50.0.10:5432").replace("api.partner.example", "db.onprem.corp")
        .replace("partner-api", "onprem-db"),
        pod.replace('dst.service="api.partner.example" ', ""),
        pod.replace('dst.service="api.partner.example"', 'dst.service="reviews.default.svc.cluster.local"'),
    ]) + "\n")
    r = logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("query", "--data", "ds", "-o", "csv", "--sql",
                "select egress_kind, destination, destination_ip, destination_port from egress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == ["registered,api.partner.example,203.0.113.7,443",
                                         "registered,db.onprem.corp,10.50.0.10,5432"]


def test_connections_the_destination_s_ztunnel_refused_are_denials_not_failures(tmp_path):
    """The client's ztunnel logs "http status: 401 Unauthorized" for a connection the destination's
    ztunnel refused by policy (istio/ztunnel src/proxy/inbound.rs: its one 401): an authz_denial, as
    the destination's own "policy rejection" line is, not an error_spike (it was one: any other error
    is a failure), and nothing of it left (upstream_connected false; it was true)."""
    (tmp_path / "zt.log").write_text(
        ztunnel_lines("2024-04-10T10:00:00", 20, None)
        + ztunnel_lines("2024-04-12T10:00:00", 12, "http status: 401 Unauthorized"))
    r = logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("query", "--data", "ds", "-o", "csv", "--sql",
                "select error, upstream_connected, count(*) n from egress group by all order by n desc", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == [",true,20", "http status: 401 Unauthorized,false,12"]
    r = logpipe("report", "anomalies", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    findings = json.loads(r.stdout)["findings"]
    assert [f["kind"] for f in findings if f["kind"] == "error_spike"] == []
    [denial] = [f for f in findings if f["kind"] == "authz_denial"]
    assert (denial["destination"], denial["evidence"]["denials"], denial["evidence"]["mechanism"],
            denial["evidence"]["scope"]) == ("api.partner.example", 12, "ztunnel policy", "egress")
