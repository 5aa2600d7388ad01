"""Which addresses are public: IANA's special-purpose ranges (RFC 6890's registries) at their edges,
judged by the traffic view on a sidecar's passthrough lines. A range that is never an internet
destination (this network 0.0.0.0/8, unspecified ::, benchmarking 198.18.0.0/15, multicast, reserved
240.0.0.0/4 and the limited broadcast, discard-only 100::/64, site-local fec0::/10) is internal, so a
passthrough to it is not egress; a 6to4 address (2002::/16) is judged as the IPv4 address it carries;
the documentation ranges stay public, by convention: they are the sample logs' and tests' stand-ins
for public servers (settings.py, DEFAULT_INTERNAL_CIDRS, says range by range why)."""
from __future__ import annotations

import pytest

from conftest import ingest_clean, logpipe_json

_LINE = ('[2025-03-12T04:00:00.000Z] "- - -" 0 - - - "-" 0 120 30 29 "-" "-" "-" "-" "{up}" '
         'PassthroughCluster 10.244.1.5:40000 {up} 10.244.1.5:40000 - -')

# address -> its kind; ("one outside" of a range is the address next to its first or last one)
EDGES = {
    # 0.0.0.0/8, "this network": Linux connects a socket dialled to 0.0.0.0 to the host itself
    "0.0.0.0": "internal", "0.255.255.255": "internal", "1.0.0.0": "public",
    # 198.18.0.0/15, benchmarking (RFC 2544)
    "198.17.255.255": "public", "198.18.0.0": "internal", "198.19.255.255": "internal", "198.20.0.0": "public",
    # 224.0.0.0/4 multicast, then 240.0.0.0/4 reserved up to the limited broadcast 255.255.255.255
    "223.255.255.255": "public", "224.0.0.0": "internal", "239.255.255.255": "internal",
    "240.0.0.0": "internal", "255.255.255.255": "internal",
    # Istio's auto-allocated VIPs inside 240.0.0.0/4 stay service VIPs (a VIP wins over an internal range)
    "240.239.255.255": "internal", "240.240.0.0": "service_vip", "240.240.255.255": "service_vip",
    "240.241.0.0": "internal",
    # documentation ranges: public by convention (the project's stand-ins for public servers)
    "192.0.1.255": "public", "192.0.2.0": "public", "192.0.2.255": "public", "198.51.100.0": "public",
    "198.51.100.255": "public", "203.0.113.0": "public", "203.0.113.255": "public",
    # 192.0.0.0/24 IETF protocol assignments (PCP and TURN anycast in it are globally reachable), and
    # the deprecated 6to4 relay anycast 192.88.99.0/24: left public
    "192.0.0.0": "public", "192.0.0.10": "public", "192.0.0.255": "public", "192.88.99.1": "public",
    # ::/128 unspecified (::1 is loopback, internal)
    "::": "internal", "::2": "public",
    # 100::/64 discard-only (RFC 6666)
    "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "public", "100::": "internal",
    "100::ffff:ffff:ffff:ffff": "internal", "100:0:0:1::": "public",
    # fec0::/10 deprecated site-local, next to fe80::/10 link-local, then ff00::/8 multicast to the end
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "public", "fe80::": "internal", "fec0::": "internal",
    "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "internal", "ff00::": "internal", "ff02::1": "internal",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "internal",
    # 2002::/16 6to4: judged as the IPv4 address in bits 16-47 (2002:V4ADDR::/48, RFC 3056 2)
    "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "public", "2002::": "internal",
    "2002:a00:5::1": "internal", "2002:c000:221::1": "public", "2002:808:808::1": "public",
    "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "internal", "2003::": "public",
    # 2001::/23 IETF protocol assignments (Teredo 2001::/32, anycast, AMT, ORCHIDv2: internet hosts) and
    # the documentation ranges 2001:db8::/32 and 3fff::/20: public
    "2001::": "public", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff": "public", "2001:db8::": "public",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": "public", "3fff::": "public",
    # an IPv4-mapped or NAT64 multicast address is judged as the IPv4 address
    "::ffff:224.0.0.1": "internal", "64:ff9b::e000:1": "internal",
}


def _dialled(ip: str) -> str:
    return f"[{ip}]:80" if ":" in ip else f"{ip}:80"


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """address -> (destination_ip_kind, egress_kind) of one passthrough line to each address: one
    ingest and one query for the module."""
    data = ingest_clean(tmp_path_factory.mktemp("ranges"),
                       {"ranges.log": [_LINE.format(up=_dialled(ip)) for ip in EDGES]})
    rows = logpipe_json("query", "--data", data, "--sql",
                        "select upstream_host, destination_ip_kind, egress_kind from traffic")
    return {r["upstream_host"]: (r["destination_ip_kind"], r["egress_kind"]) for r in rows}


@pytest.mark.parametrize("ip, kind", EDGES.items())
def test_each_range_edge_is_judged(judged, ip, kind):
    """A passthrough to a public address (or a service VIP) is egress; to an internal one it is not."""
    assert judged[_dialled(ip)] == (kind, None if kind == "internal" else "passthrough")
