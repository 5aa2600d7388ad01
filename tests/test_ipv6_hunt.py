"""An IPv6 hunt: realistic IPv6 lines of a sidecar (Istio's default text format, 1.9+), Istio's JSON
encoding, Envoy's default format and ztunnel, each judged right by the traffic view (the address's
kind: ULA, link-local with a zone, loopback and an IPv4-mapped private address are internal; a mapped
public address, NAT64 of a public IPv4 and 2001:db8:: stand-ins for public ones are public), and an
authority or SNI that is an IPv6 literal is direct_ip_egress's and gets a STATIC ServiceEntry, in each
of RFC 4291 2.2's text forms (`64:ff9b::8.8.4.4`, the NAT64 form RFC 5952 5 recommends, included)."""
from __future__ import annotations

import json

import pytest

from conftest import ingest_clean, logpipe_json, run_logpipe

_S = ('[2025-03-12T04:00:{s:02d}.000Z] "{req}" {code} - {details} - "-" 0 120 30 29 "{xff}" "curl/8.5.0" '
      '"{rid}" "{authority}" "{up}" PassthroughCluster [fd00:10:244::1b]:400{s:02d} {dialled} '
      '[fd00:10:244::1b]:500{s:02d} {sni} {route}')


def _sidecar(s, up, authority="-", sni="-", xff="-", tcp=False, client="[fd00:10:244::1b]"):
    line = _S.format(s=s, req="- - -" if tcp else "GET /v HTTP/1.1", code=0 if tcp else 200,
                     details="-" if tcp else "via_upstream", xff=xff, rid="-" if tcp else f"r{s}",
                     authority=authority, up=up, dialled=up, sni=sni, route="-" if tcp else "allow_any")
    return line.replace("[fd00:10:244::1b]", client)


SIDECAR = [
    _sidecar(1, "[2001:db8::5]:8443", authority="[2001:db8::1]:8443", xff="2001:db8:1::7, ::ffff:203.0.113.9"),
    _sidecar(2, "[2001:db8::2]:80", authority="2001:db8::2"),
    _sidecar(3, "[2001:db8::3]:443", sni="2001:db8::3", tcp=True),
    _sidecar(4, "[::ffff:10.0.0.5]:5432", tcp=True, client="[::ffff:10.244.1.27]"),
    _sidecar(5, "[::ffff:8.8.8.8]:53", tcp=True, client="[::ffff:10.244.1.27]"),
    _sidecar(6, "[fe80::1%eth0]:80", tcp=True),
    _sidecar(7, "[fd12:3456:789a::9]:8080", tcp=True),
    _sidecar(8, "[64:ff9b::808:808]:443", tcp=True),
    _sidecar(9, "[::1]:15000", tcp=True),
    # the NAT64 address of 8.8.4.4 as a client wrote it in its Host header (RFC 6052 2.4's form)
    _sidecar(12, "[64:ff9b::808:404]:443", authority="[64:ff9b::8.8.4.4]:443"),
    _sidecar(13, "[2001:db8::d]:443", authority="[2001:DB8::D]:443"),
]
JSON_LINE = json.dumps({
    "start_time": "2025-03-12T05:00:02.000Z", "route_name": None, "method": None, "path": None, "protocol": None,
    "response_code": 0, "response_flags": "-", "response_code_details": None, "connection_termination_details": None,
    "bytes_received": 10, "bytes_sent": 20, "duration": 20, "upstream_service_time": None, "x_forwarded_for": None,
    "user_agent": None, "request_id": None, "authority": None, "upstream_host": "[2001:db8::20]:853",
    "upstream_cluster": "PassthroughCluster", "upstream_local_address": "[fd00:10:244::1c]:59493",
    "downstream_local_address": "[2001:db8::20]:853", "downstream_remote_address": "[fd00:10:244::1c]:58552",
    "requested_server_name": "2001:db8::22", "upstream_transport_failure_reason": None})
ENVOY_DEFAULT = ('[2025-03-12T05:00:03.000Z] "GET /e1 HTTP/1.1" 200 - 0 10 5 4 "2001:db8:1::7" "curl" "e1" '
                 '"[2001:db8::23]:8080" "[2001:db8::23]:8080"')
ZTUNNEL = ('2025-03-12T05:00:05.000000Z\tinfo\taccess\tconnection complete\tsrc.addr=[fd00:10:244::5]:41234 '
           'src.workload="sleep-7656cf8794-r7zb9" src.namespace="default" '
           'src.identity="spiffe://cluster.local/ns/default/sa/sleep" dst.addr=[{dst}]:443 direction="outbound" '
           'bytes_sent=517 bytes_recv=3390 duration="289ms"')


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    lines = SIDECAR + [JSON_LINE, ENVOY_DEFAULT, ZTUNNEL.format(dst="2001:db8::24"), ZTUNNEL.format(dst="::ffff:8.8.4.4")]
    return ingest_clean(tmp_path_factory.mktemp("ipv6"), {"ipv6.log": lines})




# (destination, destination_ip, destination_ip_kind, egress_kind) by the line's request or the address it dialled
EXPECTED = {
    "[2001:db8::5]:8443": ("2001:db8::1", "2001:db8::5", "public", "passthrough"),
    "[2001:db8::2]:80": ("2001:db8::2", "2001:db8::2", "public", "passthrough"),
    "[2001:db8::3]:443": ("2001:db8::3", "2001:db8::3", "public", "passthrough"),
    "[::ffff:10.0.0.5]:5432": ("10.0.0.5", "10.0.0.5", "internal", None),
    "[::ffff:8.8.8.8]:53": ("8.8.8.8", "8.8.8.8", "public", "passthrough"),
    "[fe80::1%eth0]:80": ("fe80::1", "fe80::1", "internal", None),
    "[fd12:3456:789a::9]:8080": ("fd12:3456:789a::9", "fd12:3456:789a::9", "internal", None),
    "[64:ff9b::808:808]:443": ("64:ff9b::808:808", "64:ff9b::808:808", "public", "passthrough"),
    "[::1]:15000": ("::1", "::1", "internal", None),
    "[64:ff9b::808:404]:443": ("64:ff9b::8.8.4.4", "64:ff9b::808:404", "public", "passthrough"),
    "[2001:db8::d]:443": ("2001:db8::d", "2001:db8::d", "public", "passthrough"),
    "[2001:db8::20]:853": ("2001:db8::22", "2001:db8::20", "public", "passthrough"),
    "[2001:db8::23]:8080": ("2001:db8::23", "2001:db8::23", "public", "public_ip"),
    "[2001:db8::24]:443": ("2001:db8::24", "2001:db8::24", "public", "public_ip"),
    "[::ffff:8.8.4.4]:443": ("8.8.4.4", "8.8.4.4", "public", "public_ip"),
}


def test_each_address_is_judged_by_its_kind(data):
    rows = logpipe_json("query", "--data", data, "--sql",
                 "select upstream_host, destination, destination_ip, destination_ip_kind, egress_kind from traffic")
    got = {r["upstream_host"]: (r["destination"], r["destination_ip"], r["destination_ip_kind"], r["egress_kind"])
           for r in rows}
    assert got == EXPECTED


def test_an_ipv4_mapped_client_is_named_by_its_ipv4_address(data):
    rows = logpipe_json("query", "--data", data, "--sql", "select distinct source_ip from traffic where source_ip like '10.%'")
    assert rows == [{"source_ip": "10.244.1.27"}]


def test_every_raw_ipv6_authority_and_sni_is_direct_ip_egress(data):
    """`[64:ff9b::8.8.4.4]:443` was none: ip_value read no IPv6 address that ends in an IPv4 one."""
    rows = logpipe_json("query", "direct_ip_egress", "--data", data, "-p", "since", "2025-03-12")
    assert sorted(r["destination"] for r in rows) == [
        "2001:db8::1", "2001:db8::2", "2001:db8::22", "2001:db8::23", "2001:db8::3", "2001:db8::d",
        "64:ff9b::8.8.4.4"]


@pytest.mark.parametrize("text, kind", [
    ("64:ff9b::8.8.4.4", "public"), ("::ffff:10.0.0.5", "internal"), ("fd00::10.0.0.5", "internal"),
    ("[fe80::1%eth0]", "internal"), ("::1", "internal"), ("fe80::1.2.3.256", None), ("2001:db8::1.2.3", None),
    # IPv4-mapped and NAT64 (64:ff9b::/96) addresses are judged as the IPv4 address they carry, by value:
    # these were public (ip_norm reads only the `::ffff:` spelling, and NAT64 was judged as IPv6)
    ("0:0:0:0:0:ffff:10.0.0.5", "internal"), ("::ffff:a00:5", "internal"), ("::FFFF:0A00:0005", "internal"),
    ("64:ff9b::a00:5", "internal"), ("64:ff9b::10.0.0.5", "internal"), ("64:ff9b::f0f0:1", "service_vip"),
    ("64:ff9b::808:808", "public"), ("::ffff:808:808", "public"),
])
def test_ip_kind_reads_each_text_form(data, text, kind):
    rows = logpipe_json("query", "--data", data, "--sql", f"select ip_kind('{text}') AS kind")
    assert rows == [{"kind": kind}]


def test_a_nat64_literal_gets_a_static_service_entry(data):
    """It was a DNS ServiceEntry of a host named 64:ff9b::8.8.4.4, or none (not an address)."""
    got = run_logpipe("query", "service_entries", "--data", data)
    assert got.returncode == 0, got.stderr
    doc = next(d for d in got.stdout.split("---") if "64:ff9b::8.8.4.4" in d)
    assert '  addresses:\n  - "64:ff9b::8.8.4.4"' in doc
    assert "  resolution: STATIC" in doc
    assert '  endpoints:\n  - address: "64:ff9b::8.8.4.4"' in doc
