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
    assert r.stdout.splitlines()[1:] == ["ztunnel,public_ip,api.partner.example,443,10.244.0.24"]
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
    (tmp_path / "zt.log").write_text("\n".join([VIA_WAYPOINT, LATER, BYPASS]) + "\n")
    (tmp_path / "waypoint.log").write_text(WAYPOINT + "\n" + WAYPOINT_LATER + "\n")
    r = logpipe("ingest", "zt.log", "waypoint.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = logpipe("report", "inventory", "--data", "ds", "-o", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sources = {s["source"]: s["destinations"] for s in json.loads(r.stdout)["sources"]}
    assert sources == {"default/sleep-7656cf8794-r7zb9": ["api.partner.example", "httpbin.org"],
                       "jobs/batch-5d8f7c6b9-x1y2z": ["httpbin.org"]}
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
    assert burst["message"] == ('5 failures within 4s; last from 10.244.0.24, TCP error "io error: Connection refused '
                                '(os error 111)"')
    assert [a["kind"] for a in alerts].count("authz_denial") == 1
