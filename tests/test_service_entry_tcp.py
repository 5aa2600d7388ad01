"""ServiceEntries of destinations reached over TCP: what logpipe writes for each shape (an IP over plain
TCP, a host with SNI over TLS, a host over plain TCP, a host over HTTP), parsed with a YAML parser and
checked field by field. A TCP port's bytes name no host, so Istio tells its connections by destination
address alone: a TCP ServiceEntry without `addresses` matches every destination on its port, whatever
the host (istio.io IST0134 ServiceEntryAddressesRequired; istio/istio#29992, #59599). And the
unregistered_egress finding's document is the one `query service_entries` gives for its destination,
every port of it, not one of its own per port."""
from __future__ import annotations

import pytest
import yaml

from conftest import ingest_clean, logpipe_json, run_logpipe
from test_service_entry_hunt import _http, _tcp, check_service_entry


def _connect(t, authority, addr, src):
    """A CONNECT tunnel to authority through PassthroughCluster, to upstream addr (host:port; "-": not logged)."""
    return (f'[2025-03-08T10:00:{t:02d}.000Z] "CONNECT - HTTP/1.1" 200 - via_upstream - "-" 100 200 5 4 "-" '
            f'"curl/8.5.0" "c-{t}" "{authority}" "{addr}" PassthroughCluster 10.244.1.9:40000 '
            f'{addr} {src}:520{t % 10} - allow_any')


LINES = [
    _tcp(1, "203.0.113.50", 5432, "10.244.1.12"),                         # an IP over plain TCP
    _tcp(2, "104.18.1.1", 443, "10.244.1.10", "api.stripe.com"),          # a host with SNI over TLS
    _connect(3, "db.example.com:5432", "198.51.100.21:5432", "10.244.1.20"),  # a host over plain TCP,
    _connect(4, "db.example.com:5432", "198.51.100.20:5432", "10.244.1.20"),  # at two addresses
    _http(5, "GET", "HTTP/1.1", "db.example.com:8080", "198.51.100.22", "10.244.1.20", 8080),  # and HTTP
    _http(6, "GET", "HTTP/1.1", "example.com", "93.184.215.14", "10.244.1.11", 80),  # a host over HTTP
    _tcp(7, "93.184.215.14", 443, "10.244.1.11", "example.com"),          # and TLS: no TCP port
    _connect(8, "cache.example.com:6379", "-", "10.244.1.21"),           # over TCP, no address logged
    _connect(9, "pg.example.com:5432", "198.51.100.30:5432", "10.244.1.22"),  # a host over plain TCP
    _tcp(10, "198.51.100.31", 443, "10.244.1.22", "pg.example.com"),      # and TLS, at another address
]

DOCUMENTS = {
    "203.0.113.50": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "203-0-113-50-5432"},
        "spec": {"hosts": ["ip-203-0-113-50.external"], "addresses": ["203.0.113.50"],
                 "location": "MESH_EXTERNAL",
                 "ports": [{"number": 5432, "name": "tcp-5432", "protocol": "TCP"}],
                 "resolution": "STATIC", "endpoints": [{"address": "203.0.113.50"}]}},
    # SNI is what Istio matches a TLS port on (ServiceEntry reference, hosts): no addresses
    "api.stripe.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "api-stripe-com-443"},
        "spec": {"hosts": ["api.stripe.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}], "resolution": "DNS"}},
    # every address it was reached at, its HTTP port's too, sorted; plain IPs (a CIDR needs NONE or STATIC)
    "db.example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "db-example-com-5432-8080"},
        "spec": {"hosts": ["db.example.com"],
                 "addresses": ["198.51.100.20", "198.51.100.21", "198.51.100.22"],
                 "location": "MESH_EXTERNAL",
                 "ports": [{"number": 5432, "name": "tcp-5432", "protocol": "TCP"},
                           {"number": 8080, "name": "http-8080", "protocol": "HTTP"}],
                 "resolution": "DNS"}},
    # Host header and SNI: no addresses
    "example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "example-com-80-443"},
        "spec": {"hosts": ["example.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 80, "name": "http-80", "protocol": "HTTP"},
                           {"number": 443, "name": "tls-443", "protocol": "TLS"}],
                 "resolution": "DNS"}},
    # one document, its TLS port too matched at the addresses (Istio sets no SNI match for a service
    # with an IP address): the TLS port's address is among them, as an HTTP port's is above
    "pg.example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "pg-example-com-443-5432"},
        "spec": {"hosts": ["pg.example.com"], "addresses": ["198.51.100.30", "198.51.100.31"],
                 "location": "MESH_EXTERNAL",
                 "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"},
                           {"number": 5432, "name": "tcp-5432", "protocol": "TCP"}],
                 "resolution": "DNS"}},
    # a placeholder Istio refuses (not an IP), as a port not logged is 0
    "cache.example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "cache-example-com-6379"},
        "spec": {"hosts": ["cache.example.com"], "addresses": [""], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 6379, "name": "tcp-6379", "protocol": "TCP"}], "resolution": "DNS"}},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return ingest_clean(tmp_path_factory.mktemp("se_tcp"), {"sidecar.log": LINES})


@pytest.fixture(scope="module")
def texts(data):
    """service_entries' documents, as text, by destination (registry_only's rows say whose each is)."""
    return {r["destination"]: r["service_entry"] for r in logpipe_json("query", "registry_only", "--data", data)}


def test_each_shape_s_service_entry_field_by_field(data, texts):
    got = run_logpipe("query", "service_entries", "--data", data)
    assert got.returncode == 0, got.stderr
    documents = [d for d in yaml.safe_load_all(got.stdout) if d is not None]
    assert sorted(documents, key=lambda d: d["metadata"]["name"]) == sorted(
        DOCUMENTS.values(), key=lambda d: d["metadata"]["name"])
    assert {k: yaml.safe_load(v) for k, v in texts.items()} == DOCUMENTS


def test_a_host_over_tcp_without_addresses_would_take_its_port(texts):
    """db.example.com:5432 was written with no addresses: applied, every connection of the mesh to any
    host on 5432 would have gone to db.example.com. Istio takes every document but the placeholder's."""
    assert {k: check_service_entry(yaml.safe_load(v)) for k, v in texts.items()} == {
        **{k: [] for k in texts}, "cache.example.com": ["address ''"]}
    assert ('  addresses:  # the IPs db.example.com was reached at: Istio tells a TCP port\'s connections by '
            'address alone; add any other it resolves to\n  - "198.51.100.20"\n') in texts["db.example.com"]
    assert '  - ""  # no upstream address in the logs: set the IPs cache.example.com resolves to\n' in (
        texts["cache.example.com"])


def test_the_finding_s_service_entry_is_its_destination_s_every_port(data, texts):
    """unregistered_egress gave each (destination, port) a document of that one port: two documents for
    db.example.com, one per port, where service_entries gives one with both (Istio merges ServiceEntries
    of one host badly: istio/istio#51466, #55776). Each finding now prints service_entries' document."""
    got = logpipe_json("report", "anomalies", "--data", data)["findings"]
    found = {(f["destination"], f["evidence"]["port"]): f["evidence"]["service_entry"]
             for f in got if f["kind"] == "unregistered_egress"}
    assert {("db.example.com", 5432), ("db.example.com", 8080)} <= set(found)
    assert {k: yaml.safe_load(v) for k, v in found.items()} == {k: DOCUMENTS[k[0]] for k in found}
    assert {k: v for k, v in found.items()} == {k: texts[k[0]] for k in found}


def test_a_host_over_tcp_and_tls_says_its_tls_port_is_matched_at_its_addresses(texts):
    """pg.example.com on 5432 (plain TCP) and 443 (TLS): one document with addresses. Istio binds the TLS
    port of a service with an IP address to that IP and sets no SNI match (istio/istio
    pilot/pkg/networking/core/listener.go, tls.go), so TLS to another IP of the host is not this entry's.
    Its document said only that the TCP port is told by address; it now says the TLS port is matched
    there too. Not split in two documents of the host: Istio merges them into the first one's address
    (pilot/pkg/model/sidecar.go, appendSidecarServices). Hosts with no TLS port carry no such line."""
    note = ("  # (the TLS port is matched at these addresses too, not by SNI: TLS to another IP of pg.example.com "
            "leaves through PassthroughCluster, or is blocked under REGISTRY_ONLY)\n")
    assert ("  addresses:  # the IPs pg.example.com was reached at: Istio tells a TCP port's connections by "
            "address alone; add any other it resolves to\n" + note + '  - "198.51.100.30"\n') in texts["pg.example.com"]
    assert [k for k, v in texts.items() if "not by SNI" in v] == ["pg.example.com"]
