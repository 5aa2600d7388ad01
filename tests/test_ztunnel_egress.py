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

