"""How an HTTP request left the proxy (upstream_transport.sql: the inventory's transport, and
plaintext_egress): a plain-HTTP request a sidecar sent through PassthroughCluster to port 8443 left
as the app wrote it, in clear text. It read tls-origination because the port is one of tls_ports,
though with no ServiceEntry there is no DestinationRule to originate TLS. A ServiceEntry's cluster
(outbound|8443||HOST) to the same port stays tls-origination."""
from __future__ import annotations


import pytest

from conftest import ingest_clean, logpipe_json
from test_ipv6_hunt import _sidecar

REGISTERED = ('[2025-03-12T04:00:20.000Z] "GET /v HTTP/1.1" 200 - via_upstream - "-" 0 120 30 29 "-" "curl/8.5.0" '
              '"r20" "api.example.com:8443" "203.0.113.20:8443" outbound|8443||api.example.com 10.244.1.27:40020 '
              '203.0.113.20:8443 10.244.1.27:50020 - default')


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    lines = [_sidecar(1, "198.51.100.7:8443", authority="198.51.100.7:8443", client="10.244.1.27"),
             _sidecar(2, "198.51.100.8:80", authority="198.51.100.8", client="10.244.1.27"),
             REGISTERED]
    return ingest_clean(tmp_path_factory.mktemp("transport"), {"t.log": lines})




def test_plain_http_through_passthrough_to_a_tls_port_is_plaintext(data):
    rows = logpipe_json("query", "destinations", "--data", data)
    assert {r["destination"]: (r["egress_kind"], r["transport"]) for r in rows} == {
        "198.51.100.7": ("passthrough", "plaintext"),
        "198.51.100.8": ("passthrough", "plaintext"),
        "api.example.com": ("registered", "tls-origination"),
    }


def test_plaintext_egress_finds_it(data):
    rows = logpipe_json("query", "plaintext_egress", "--data", data, "-p", "since", "2025-03-12")
    assert sorted(r["destination"] for r in rows) == ["198.51.100.7", "198.51.100.8"]
