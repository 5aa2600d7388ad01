"""ztunnel (ambient L4) access logs: text style (tabs or spaces, quoted or bare values, older and
newer field sets) and LOG_FORMAT=json, into the one record (logpipe/ztunnel.py, grammars/ztunnel.lark)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import SAMPLES

ZTUNNEL_SAMPLES = sorted(SAMPLES.glob("ztunnel*.log"))
UTC = dt.timezone.utc


def parse(parser, lines):
    batch = parser.parse_batch(lines, "zt.log")
    return batch.records.to_pylist(), batch.rejects.to_pylist()


def is_access_event(line: str) -> bool:
    """What the sample's author meant as an access row: ztunnel's `access` target completing or
    failing a connection (metrics.rs); "connection opened" is debug noise."""
    if line.startswith("{"):
        obj = json.loads(line)
        return obj.get("scope") == "access" and obj.get("message") in ("connection complete", "connection failed")
    return any(f"{sep}connection {what}" in line for sep in ("\t", "access: ") for what in ("complete", "failed")) \
        and ("\taccess\t" in line or " access: " in line)


@pytest.mark.parametrize("path", ZTUNNEL_SAMPLES, ids=lambda p: p.name)
def test_ztunnel_samples_parse_to_rows(parser, path):
    lines = path.read_text().splitlines()
    records, rejects = parse(parser, lines)
    assert [r for r in rejects if r["class"] == "malformed"] == []
    assert len(records) == sum(map(is_access_event, lines)) > 0
    assert len(records) + len(rejects) == len([x for x in lines if x.strip()])
    for r in records:
        assert r["log_format"] in ("ztunnel", "ztunnel_json")
        assert r["response_code"] == 0 and r["method"] is None  # L4: no HTTP response
        assert r["downstream_remote_address_ip"] and r["upstream_host_port"]
        assert r["direction"] in ("inbound", "outbound")
        assert r["start_time"].tzinfo is not None


HEAD_TAB = "2024-04-12T10:17:40.927495Z\tinfo\taccess\tconnection complete\t"
HEAD_TRACING = "2024-04-12T10:17:40.927495Z  INFO access: connection complete "
NEW_FIELDS = ('src.addr=10.244.0.24:41160 src.workload="sleep-7656cf8794-r7zb9" src.namespace="default" '
              'src.identity="spiffe://cluster.local/ns/default/sa/sleep" dst.addr=10.244.0.18:15008 '
              'dst.hbone_addr=240.240.0.2:80 dst.service="httpbin.org" dst.workload="waypoint-7d9f8b6c4-x2k8p" '
              'dst.namespace="istio-egress" dst.identity="spiffe://cluster.local/ns/istio-egress/sa/waypoint" '
              'direction="outbound" bytes_sent=67 bytes_recv=490 duration="2ms"')
# older builds: strings bare, dst.hbone_addr quoted, no identities
OLD_FIELDS = ('src.addr=10.244.0.24:41160 src.workload=sleep-7656cf8794-r7zb9 src.namespace=default '
              'dst.addr=10.244.0.18:15008 dst.hbone_addr="240.240.0.2:80" dst.service=httpbin.org '
              'dst.workload=waypoint-7d9f8b6c4-x2k8p dst.namespace=istio-egress direction=outbound '
              'bytes_sent=67 bytes_recv=490 duration="2ms"')
EXPECTED = {
    "start_time": dt.datetime(2024, 4, 12, 10, 17, 40, 927495, tzinfo=UTC),
    "downstream_remote_address": "10.244.0.24:41160", "downstream_remote_address_port": 41160,
    "upstream_host": "10.244.0.18:15008", "upstream_host_port": 15008,
    "downstream_local_address": "240.240.0.2:80", "downstream_local_address_ip": "240.240.0.2",
    "src_workload": "sleep-7656cf8794-r7zb9", "src_namespace": "default",
    "dst_workload": "waypoint-7d9f8b6c4-x2k8p", "dst_namespace": "istio-egress", "dst_service": "httpbin.org",
    # (ztunnel's bytes_sent is the reporting side's workload's: on an outbound line the client's upload,
    # the record's bytes_received; src/proxy/metrics.rs, src/copy.rs)
    "direction": "outbound", "bytes_received": 67, "bytes_sent": 490, "duration": 2,
    "response_code": 0, "response_flags": [], "error": None,
}


@pytest.mark.parametrize("line, identities", [
    (HEAD_TAB + NEW_FIELDS, True),
    (HEAD_TRACING + NEW_FIELDS, True),
    (HEAD_TAB + OLD_FIELDS, False),
    (HEAD_TRACING.replace("  ", "    ") + OLD_FIELDS.replace(" ", "  "), False),  # docs: runs of spaces
    (HEAD_TAB + NEW_FIELDS.replace(" ", "\t") + " ", True),  # tabs between pairs, trailing space
], ids=["tab-new", "tracing-new", "tab-old", "spaces-old", "tabs-everywhere"])
def test_ztunnel_text_line(parser, line, identities):
    (record,), rejects = parse(parser, [line])
    assert rejects == []
    assert {k: record[k] for k in EXPECTED} == EXPECTED
    assert record["log_format"] == "ztunnel"
    want = "spiffe://cluster.local/ns/default/sa/sleep" if identities else None
    assert record["src_identity"] == want


def test_ztunnel_json_line(parser):
    obj = {"level": "info", "time": "2024-04-12T10:17:40.927495Z", "scope": "access", "message": "connection complete"}
    obj.update(kv.split("=", 1) for kv in NEW_FIELDS.split(" "))
    obj = {k: v.strip('"') for k, v in obj.items()}
    obj.update(bytes_sent=67, bytes_recv=490)
    (record,), rejects = parse(parser, [json.dumps(obj)])
    assert rejects == []
    assert {k: record[k] for k in EXPECTED} == EXPECTED
    assert record["log_format"] == "ztunnel_json"


def test_ztunnel_error_and_failed_lines(parser):
    error = ("2024-04-12T10:17:52.566085Z\terror\taccess\tconnection complete\tsrc.addr=10.244.1.12:47010 "
             "dst.addr=10.244.2.9:15008 dst.hbone_addr=10.244.2.9:8080 direction=\"inbound\" bytes_sent=0 "
             "bytes_recv=0 duration=\"0ms\" error=\"connection closed due to policy rejection: allow policies "
             "exist, but none allowed\"")
    failed = ("2024-04-12T10:17:56.498715Z\twarn\taccess\tconnection failed\tsrc.addr=10.244.1.12:47022 "
              "dst.addr=10.244.2.9:15008 direction=\"inbound\" error=\"explicitly denied by: \\\"ns/deny\\\"\"")
    (a, b), rejects = parse(parser, [error, failed])
    assert rejects == []
    assert a["error"].startswith("connection closed due to policy rejection") and a["duration"] == 0
    assert b["error"] == 'explicitly denied by: "ns/deny"'  # Debug escapes undone
    assert b["downstream_local_address"] == "10.244.2.9:15008" and b["bytes_sent"] is None


def test_ztunnel_pairs_are_read_left_to_right(parser):
    """A quoted value that holds `key=value` text is one value, as the grammar reads it: a key that
    only appears inside another's value is absent, and a key given twice keeps its first value."""
    line = ("2024-04-12T10:17:56.498715Z\twarn\taccess\tconnection failed\tsrc.addr=10.244.1.12:47022 "
            "dst.addr=10.244.2.9:15008 direction=\"inbound\" error=\"dial dst.hbone_addr=1.2.3.4:80 "
            "bytes_sent=99 failed\" direction=\"outbound\" duration=5ms")
    (row,), rejects = parse(parser, [line])
    assert rejects == []
    assert row["error"] == "dial dst.hbone_addr=1.2.3.4:80 bytes_sent=99 failed"
    assert row["downstream_local_address"] == "10.244.2.9:15008" and row["bytes_sent"] is None
    assert row["direction"] == "inbound" and row["duration"] == 5


@pytest.mark.parametrize("line, cls", [
    ("2024-04-12T10:17:52.261192Z\tdebug\taccess\tconnection opened\tsrc.addr=10.244.0.24:50436 dst.addr=10.244.2.9:15008",
     "noise"),
    ("2024-04-12T10:17:40.117327Z\tinfo\tztunnel::proxy\tproxy listening\taddress=[::]:15008", "noise"),
    (HEAD_TAB + 'src.addr=10.244.0.24:41160 src.workload="unterminated', "malformed"),
])
def test_ztunnel_non_rows(parser, line, cls):
    records, (reject,) = parse(parser, [line])
    assert records == [] and reject["class"] == cls
    if cls == "malformed":
        assert "ztunnel access line" in reject["reason"] and reject["column"] > 1


@pytest.mark.parametrize("line", [
    "2024-04-12T10:17:52.261192Z\tdebug\taccess\tconnection opened\tsrc.addr=10.244.0.24:50436 dst.addr=10.244.2.9:15008",
    "2024-04-11T15:38:42.182974Z  DEBUG access: connection opened src.addr=10.244.0.24:46238 dst.addr=10.244.0.42:15008",
    json.dumps({"level": "debug", "time": "2024-06-20T14:02:15.000001Z", "scope": "access", "message": "connection opened",
                "src.addr": "10.244.0.24:41160", "dst.addr": "10.244.0.18:15008", "direction": "outbound"}),
], ids=["tab", "tracing", "json"])
def test_a_connection_opened_line_is_noise_that_says_why(parser, line):
    """ztunnel's debug `connection opened` precedes the connection's `connection complete` (its row):
    the reason says so, not that it is istio-agent's or a Go program's line."""
    records, (reject,) = parse(parser, [line])
    assert records == [] and reject["class"] == "noise"
    assert reject["reason"].startswith("ztunnel's connection opened line (debug level)"), reject["reason"]


def test_ztunnel_bytes_follow_the_reporting_side(parser):
    """ztunnel logs the bytes its own side's workload sent as bytes_sent: the client's upload on an
    outbound line, the server's response on an inbound one. The record's are Envoy's (bytes_received
    from the client, bytes_sent to it), so an outbound line's two swap; the waypoint's line of the
    same connection (sample_logs) then agrees with it."""
    out = HEAD_TAB + NEW_FIELDS
    inbound = out.replace('direction="outbound"', 'direction="inbound"')
    assert 'direction="inbound"' in inbound
    records, rejects = parse(parser, [out, inbound])
    assert rejects == []
    assert [(r["direction"], r["bytes_received"], r["bytes_sent"]) for r in records] == [
        ("outbound", 67, 490), ("inbound", 490, 67)]
    import json as _json

    obj = {"level": "info", "time": "2024-04-12T10:17:40.927495Z", "scope": "access", "message": "connection complete",
           "src.addr": "10.0.0.1:1", "dst.addr": "10.0.0.2:15008", "direction": "inbound", "bytes_sent": 239,
           "bytes_recv": 76}
    (record,), _ = parse(parser, [_json.dumps(obj)])
    assert (record["bytes_received"], record["bytes_sent"]) == (76, 239)


def test_a_quoted_value_reads_rust_s_debug_escapes():
    """ztunnel quotes a text value as Rust's Debug does: \\n, \\t, \\u{1b} are the characters, \\" and
    \\\\ the quote and backslash (an error message may hold any of them)."""
    from logpipe.parse import Parser

    line = ('2024-08-21T15:33:39.862675Z\terror\taccess\tconnection complete\tsrc.addr=10.0.0.1:1 '
            'dst.addr=10.0.0.2:2 direction="inbound" bytes_sent=5 bytes_recv=6 duration="7ms" '
            'error="line1\\nline2\\ttab \\u{1b}[0m \\"q\\" back\\\\n \\u{110000}"')
    (row,) = Parser().parse_batch([line], "z").records.to_pylist()
    assert row["error"] == 'line1\nline2\ttab \x1b[0m "q" back\\n \\u{110000}'


# ztunnel's own (non-access) lines, as its IstioFormat writes them (istio/ztunnel src/telemetry.rs: the
# target without "ztunnel::", its spans as ":name{fields}", a tab after the message even with no fields)
ZTUNNEL_OWN = [
    "2025-03-08T10:00:00.123456Z\tinfo\txds::client:xds{id=1}\treceived response\ttype_url=\"type.googleapis.com/istio.workload.Address\" size=118 removes=0",
    "2025-03-08T10:00:00.123457Z\tinfo\txds:xds{id=1}\thandling RBAC update allow-agents-to-mcp\t",
    "2025-03-08T10:00:00.123458Z\tinfo\tproxy::inbound\tlistener established\taddress=[::]:15008 component=\"inbound\" transparent=true",
    "2025-03-08T10:00:00.123459Z\tinfo\tinpod::statemanager\tpod received, starting proxy\tuid=\"ec7115b2\" name=\"accounts-db-0\"",
    "2025-03-08T10:00:00.123460Z\tinfo\tdns::server\tstarting local DNS server\taddress=localhost:15053 component=\"dns\"",
    "2024-04-12T10:17:53.889846Z\twarn\tztunnel::proxy\tfailed to fetch workload\tpod_ip=10.244.3.77 error=\"not found\"",
    "2025-03-08T10:00:00.123461Z\tinfo\tztunnel\tset file descriptor limits from 1048576 to 1048576\t",
    "2025-03-08T10:00:00.123462Z\tinfo\thyper_util\tlistener established\taddress=[::]:15021 component=\"readiness\"",
    "2025-03-08T10:00:00.123463Z\tinfo\treadiness\tTask 'proxy' complete (1.339208ms), still awaiting 2 tasks\t",
    "2025-03-08T10:00:00.123464Z\tinfo\tztunnel\trunning with config: proxy: true",
]
# ztunnel's start-up config dump, after its `running with config:` line (serde_yaml's block style)
ZTUNNEL_CONFIG = ["dnsProxy: true", "poolUnusedReleaseTimeout:", "  secs: 300", "adminAddr: !Localhost", "- true",
                  "- 15000", "statsAddr: !SocketAddr '[::]:15020'", "network: ''", "  CLUSTER_ID: Kubernetes",
                  "  ENABLE_HBONE: 'true'", "  - istio-system.svc.cluster.local", "  - socket_addr: 10.96.0.10:53",
                  "    protocol: udp", "avoid_local_udp_ports: []", "caAddress: https://istiod.istio-system.svc:15012"]
# istio-agent's (Go: Istio's logger writes no tab after a message without fields) stay its own
ISTIO_AGENT = ["2025-02-03T08:08:14.918572Z\tinfo\tFLAG: --concurrency=\"2\"",
               "2025-02-03T08:08:15.059336Z\tinfo\tcache\tgenerated new workload certificate\tlatency=112.631044ms ttl=23h59m59.08s",
               "2025-02-03T08:08:15.099336Z\tinfo\tdns\tStarting local udp DNS server on 127.0.0.1:15053",
               "2025-02-03T08:08:14.999890Z\tinfo\txdsproxy\tInitializing with upstream address \"istiod.istio-system.svc:15012\""]


@pytest.mark.parametrize("line", ZTUNNEL_OWN)
def test_ztunnel_s_own_log_line_is_named_ztunnel_s(parser, line):
    """A ztunnel line of another target than `access` (its xDS client, proxies, DNS, in-pod manager) is
    noise named ztunnel's: it read as istio-agent's or another Go program's, though ztunnel is Rust."""
    records, (reject,) = parse(parser, [line])
    assert records == [] and reject["class"] == "noise"
    assert reject["reason"].startswith("ztunnel's own log line (time, level, its Rust target"), reject["reason"]


@pytest.mark.parametrize("line", ISTIO_AGENT)
def test_istio_agent_s_log_line_is_still_istio_agent_s(parser, line):
    records, (reject,) = parse(parser, [line])
    assert records == [] and reject["class"] == "noise"
    assert reject["reason"].startswith("istio-agent/Envoy log line"), reject["reason"]


def test_ztunnel_s_config_dump_is_yaml_noise(parser):
    """ztunnel logs its config at start-up as ~130 lines of YAML: each is noise that says it is YAML of
    a config dump, not that Envoy's and Istio's layouts start with '['."""
    records, rejects = parse(parser, [ZTUNNEL_OWN[-1], *ZTUNNEL_CONFIG])
    assert records == [] and len(rejects) == 1 + len(ZTUNNEL_CONFIG)
    assert {r["class"] for r in rejects} == {"noise"}
    assert [r["reason"].split(" (")[0] for r in rejects[1:]] == ["YAML line"] * len(ZTUNNEL_CONFIG), rejects


@pytest.mark.parametrize("line", ["Error: unable to connect", "error: failed: connection refused", "panic: oops",
                                  "[2025-02-03T08:08:16.727Z] \"GET /ip HTTP/1.1\" 200 - via_upstream - \"-\" 0 285"])
def test_a_line_of_words_or_an_access_line_is_no_yaml(parser, line):
    """A capitalised word and a colon, a value with ": " in it (plain YAML holds none), a Go panic, or
    an access line cut short are not said to be YAML."""
    _, rejects = parse(parser, [line])
    assert all("YAML" not in r["reason"] for r in rejects), rejects
