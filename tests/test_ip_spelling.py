"""One destination however its IP address is spelled: a client's Host header or SNI may write an
address in any of RFC 4291's text forms (`[2001:0db8::0001]`, `2001:db8:0:0:0:0:0:1`, `::ffff:198.51.100.7`,
NAT64's `64:ff9b::198.51.100.8`), where Envoy writes the upstream host in RFC 5952's (inet_ntop). Each
spelling was a destination of its own: in the inventory, a new_destination and a direct_ip_egress
finding of its own (high, though the baseline reached the address), a ServiceEntry of its own. Realistic
sidecar lines (Istio's default text format, as test_ipv6_hunt's), ingested once for the module: a
baseline day that reached each address, then a window day that spells it otherwise."""
from __future__ import annotations

import ipaddress

import pytest

from conftest import ingest_clean, logpipe_json, run_logpipe

_S = ('[{day}T04:00:{s:02d}.000Z] "{req}" {code} - {details} - "-" 0 120 30 29 "-" "curl/8.5.0" '
      '"{rid}" "{authority}" "{up}" PassthroughCluster [fd00:10:244::1b]:400{s:02d} {up} '
      '[fd00:10:244::1b]:500{s:02d} {sni} {route}')
BASELINE, WINDOW = "2025-03-10", "2025-03-12"


def _sidecar(day, s, up, authority="-", sni="-", tcp=False):
    return _S.format(day=day, s=s, req="- - -" if tcp else "GET /v HTTP/1.1", code=0 if tcp else 200,
                     details="-" if tcp else "via_upstream", rid="-" if tcp else f"r{day[-2:]}{s}",
                     authority=authority, up=up, sni=sni, route="-" if tcp else "allow_any")


LINES = [
    # the baseline reached each address, spelled as Envoy writes it
    _sidecar(BASELINE, 1, "[2001:db8::1]:443", authority="[2001:db8::1]:443"),
    _sidecar(BASELINE, 2, "198.51.100.7:80", authority="198.51.100.7"),
    _sidecar(BASELINE, 3, "[64:ff9b::c633:6408]:443", authority="[64:ff9b::c633:6408]:443"),
    _sidecar(BASELINE, 4, "198.51.100.9:443", authority="api.example.com"),
    # the window: the same addresses, spelled otherwise by the client
    _sidecar(WINDOW, 1, "[2001:db8::1]:443", authority="[2001:DB8:0:0:0:0:0:1]:443"),
    _sidecar(WINDOW, 2, "[2001:db8::1]:443", authority="[2001:0db8::0001]:443"),
    _sidecar(WINDOW, 3, "[2001:db8::1]:443", sni="2001:db8:0::1", tcp=True),
    _sidecar(WINDOW, 4, "198.51.100.7:80", authority="[::ffff:198.51.100.7]"),
    _sidecar(WINDOW, 5, "198.51.100.7:80", authority="[::FFFF:C633:6407]:80"),
    _sidecar(WINDOW, 6, "[64:ff9b::c633:6408]:443", authority="[64:ff9b::198.51.100.8]:443"),
    _sidecar(WINDOW, 7, "198.51.100.9:443", authority="api.example.com"),
]
ADDRESSES = {"2001:db8::1", "198.51.100.7", "64:ff9b::c633:6408"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return ingest_clean(tmp_path_factory.mktemp("spelling"), {"spelling.log": LINES})


def test_each_spelling_is_the_address_envoy_writes(data):
    """The destination of every row is the upstream host's address (they dial it), or the name."""
    rows = logpipe_json("query", "--data", data, "--sql",
                        "select destination, destination_ip from traffic order by start_time")
    assert [r["destination"] for r in rows] == [
        r["destination_ip"] if r["destination_ip"] != "198.51.100.9" else "api.example.com" for r in rows]
    assert {r["destination"] for r in rows} == ADDRESSES | {"api.example.com"}


def test_the_inventory_lists_an_address_once(data):
    got = logpipe_json("report", "inventory", "--data", data)
    assert sorted((r["destination"], r["requests"]) for r in got["destinations"]) == [
        ("198.51.100.7", 3), ("2001:db8::1", 4), ("64:ff9b::c633:6408", 2), ("api.example.com", 2)]


def test_an_address_the_baseline_reached_is_no_new_destination(data):
    """Its direct_ip_egress finding is low (the baseline reached it), one per address; no new_destination."""
    got = logpipe_json("report", "anomalies", "--data", data)
    findings = [(f["kind"], f["destination"], f["severity"]) for f in got["findings"]
                if f["kind"] in ("new_destination", "direct_ip_egress")]
    assert sorted(findings) == sorted(("direct_ip_egress", a, "low") for a in ADDRESSES)


def test_service_entries_register_an_address_once(data):
    got = run_logpipe("query", "service_entries", "--data", data)
    assert got.returncode == 0, got.stderr
    addresses = [line.split('"')[1] for line in got.stdout.splitlines() if line.startswith('  - address: "')]
    assert sorted(addresses) == sorted(ADDRESSES)


SPELLINGS = ["2001:DB8::1", "2001:db8:0:0:0:0:0:1", "[2001:0db8::0001]", "fe80::1%eth0", "::", "::1", "1::",
             "2001:db8:0:1:1:1:1:1", "2001:0:0:1:0:0:0:1", "2001:db8:0:0:1:0:0:1", "0:0:0:0:0:ffff:10.0.0.5",
             "::ffff:a00:5", "64:ff9b::8.8.4.4", "8.8.8.8", "api.example.com", "1.2.3", "2001:db8::1::2", "1:2:3"]


def test_ip_text_is_rfc_5952s_spelling(data):
    """RFC 5952 4 (as Python's ipaddress writes it): lowercase, no leading zeros, `::` for the longest
    run of two or more zero groups, the first of equal ones; an IPv4-mapped address as IPv4; NULL for
    no address. Every spelling in one query."""
    import logpipe

    sql = "select v, ip_text(v) from unnest($1::VARCHAR[]) t(v)"
    got = dict(logpipe.connect(data, uses=[sql]).execute(sql, [SPELLINGS]).fetchall())
    want = {}
    for text in SPELLINGS:
        try:
            address = ipaddress.ip_address(text.strip("[]").split("%")[0])
        except ValueError:
            want[text] = None
            continue
        want[text] = str(getattr(address, "ipv4_mapped", None) or address)
    assert got == want
