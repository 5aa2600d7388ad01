"""ServiceEntries of destinations reached over TCP: what logpipe writes for each shape (an IP over plain
TCP, a host with SNI over TLS, a host over plain TCP, a host over HTTP), parsed with a YAML parser and
checked field by field. A TCP port's bytes name no host, so Istio tells its connections by destination
address alone: a TCP ServiceEntry without `addresses` matches every destination on its port, whatever
the host (istio.io IST0134 ServiceEntryAddressesRequired; istio/istio#29992, #59599); and Istio uses
one address of a host (istio/api service_entry.proto, addresses), so a host over TCP at several IPs, or
with other ports too (an address would narrow a TLS port to it), gets a document per IP. And the unregistered_egress finding's YAML is the one `query service_entries` gives
for its destination, every port of it, not one of its own per port."""
from __future__ import annotations

import hashlib

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
    _connect(11, "mq.example.com:5671", "198.51.100.40:5671", "10.244.1.23"),  # a host over plain TCP
    _tcp(12, "198.51.100.40", 443, "10.244.1.23", "mq.example.com"),      # and TLS, at the same address
    _connect(13, "redis.example.com:6380", "198.51.100.50:6380", "10.244.1.24"),  # plain TCP alone, one IP
]


def _split(host, ip, ports):
    """A document of host's TCP ports at one of its IPs, under a made-up host (resolution NONE: to ip)."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": f"{host.replace('.', '-')}-{ip.replace('.', '-')}-{'-'.join(map(str, ports))}"},
            "spec": {"hosts": [f"ip-{ip.replace('.', '-')}.{host}.external"], "addresses": [ip],
                     "location": "MESH_EXTERNAL",
                     "ports": [{"number": n, "name": f"tcp-{n}", "protocol": "TCP"} for n in ports],
                     "resolution": "NONE"}}


# (a split host's own document: no auto-allocated address for Istio's DNS proxy to answer it with)
NO_AUTO_IP = {"networking.istio.io/enable-autoallocate-ip": "false"}


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
    # its HTTP port under its name, no addresses; its TCP port once per address it was reached at, the
    # HTTP port's too, sorted (Istio uses one address of a host): under a host of its own each
    "db.example.com": [{
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "db-example-com-8080", "labels": NO_AUTO_IP},
        "spec": {"hosts": ["db.example.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 8080, "name": "http-8080", "protocol": "HTTP"}],
                 "resolution": "DNS"}},
        *(_split("db.example.com", ip, [5432]) for ip in ["198.51.100.20", "198.51.100.21", "198.51.100.22"])],
    # Host header and SNI: no addresses
    "example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "example-com-80-443"},
        "spec": {"hosts": ["example.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 80, "name": "http-80", "protocol": "HTTP"},
                           {"number": 443, "name": "tls-443", "protocol": "TLS"}],
                 "resolution": "DNS"}},
    # at two addresses: its TLS port under its name, matched by SNI (no addresses), its TCP port per IP
    "pg.example.com": [{
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "pg-example-com-443", "labels": NO_AUTO_IP},
        "spec": {"hosts": ["pg.example.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
                 "resolution": "DNS"}},
        *(_split("pg.example.com", ip, [5432]) for ip in ["198.51.100.30", "198.51.100.31"])],
    # at one address, split alike: an address would narrow its TLS port to that IP (Istio sets no SNI
    # match for a service with an IP address)
    "mq.example.com": [{
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "mq-example-com-443", "labels": NO_AUTO_IP},
        "spec": {"hosts": ["mq.example.com"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
                 "resolution": "DNS"}},
        _split("mq.example.com", "198.51.100.40", [5671])],
    # TCP ports alone at one address: one document of its own name, with that address
    "redis.example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "redis-example-com-6380"},
        "spec": {"hosts": ["redis.example.com"], "addresses": ["198.51.100.50"], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 6380, "name": "tcp-6380", "protocol": "TCP"}], "resolution": "DNS"}},
    # a placeholder Istio refuses (not an IP), as a port not logged is 0
    "cache.example.com": {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "cache-example-com-6379"},
        "spec": {"hosts": ["cache.example.com"], "addresses": [""], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 6379, "name": "tcp-6379", "protocol": "TCP"}], "resolution": "DNS"}},
}
# (each destination's documents, a list: several for a host over TCP at several IPs)
DOCUMENTS = {k: v if isinstance(v, list) else [v] for k, v in DOCUMENTS.items()}


def _load(text):
    return list(yaml.safe_load_all(text))


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
        (d for v in DOCUMENTS.values() for d in v), key=lambda d: d["metadata"]["name"])
    assert {k: _load(v) for k, v in texts.items()} == DOCUMENTS


def test_a_host_over_tcp_without_addresses_would_take_its_port(texts):
    """db.example.com:5432 was written with no addresses: applied, every connection of the mesh to any
    host on 5432 would have gone to db.example.com. Istio takes every document but the placeholder's."""
    assert {k: [check_service_entry(d) for d in _load(v)] for k, v in texts.items()} == {
        **{k: [[]] * len(DOCUMENTS[k]) for k in texts}, "cache.example.com": [["address ''"]]}
    assert ('  addresses:  # the IP redis.example.com was reached at: Istio tells a TCP port\'s connections by '
            'address alone, and takes one address of a host: for another IP it resolves to, add a document of '
            'host ip-<that IP, dashed>.redis.example.com.external, that address and resolution NONE, its TCP ports\n'
            ) in texts["redis.example.com"]
    assert ('  - ""  # no upstream address in the logs: set the IP cache.example.com resolves to (one: Istio '
            'takes one address of a host)\n') in texts["cache.example.com"]


def test_a_host_over_tcp_with_no_address_logged_is_not_said_to_have_been_reached_at_one(texts):
    """cache.example.com's CONNECT logged no upstream address: its addresses comment said "the IP
    cache.example.com was reached at" above the placeholder "". It now says none is in the logs."""
    assert ('  addresses:  # an IP cache.example.com resolves to (none in the logs): Istio tells a TCP port\'s '
            'connections by address alone') in texts["cache.example.com"]
    assert "was reached at" not in texts["cache.example.com"]


def test_a_host_over_tcp_at_several_ips_has_a_document_per_ip(texts):
    """db.example.com over TCP at three IPs was one document listing the three as addresses, under a
    comment to add any other it resolves to. Istio makes a service of each address of a host
    (pilot/pkg/serviceregistry/serviceentry/conversion.go, convertServices) and a sidecar keeps the first
    of a host, dropping the others "as it has the same ports" (pilot/pkg/model/sidecar.go,
    appendSidecarServices): one address got a listener, connections to the others left through
    PassthroughCluster (BlackHoleCluster under REGISTRY_ONLY). istio/api's service_entry.proto says so
    (addresses: "multiple addresses will not be used by a single host"; istio/istio#34577). Now each IP
    has a document of one address under a host of its own, resolution NONE (to the IP dialled); the host
    keeps its name for its other ports, none TCP and no addresses, matched by Host header and SNI."""
    for host, ips in {"db.example.com": ["198.51.100.20", "198.51.100.21", "198.51.100.22"],
                      "pg.example.com": ["198.51.100.30", "198.51.100.31"]}.items():
        own, *split = _load(texts[host])
        assert own["spec"]["hosts"] == [host] and "addresses" not in own["spec"]
        assert {p["protocol"] for p in own["spec"]["ports"]} <= {"HTTP", "TLS"}
        assert [d["spec"]["addresses"] for d in split] == [[ip] for ip in ips]
        assert len({d["spec"]["hosts"][0] for d in split} | {host}) == len(ips) + 1  # no two merge
        assert {(d["spec"]["resolution"], p["protocol"]) for d in split for p in d["spec"]["ports"]} == {("NONE", "TCP")}
        assert texts[host].count("\n---\n") == len(ips)
        for ip in ips:
            assert (f"# {host} at {ip}, its TCP ports under a host of its own: Istio takes one address of a "
                    f"host, so each IP {host} was reached at has a document; for another IP it resolves to, "
                    f"add one like this\n") in texts[host]
    # TCP ports alone at one address (or none logged), one document, as before
    assert [len(_load(texts[k])) for k in ("redis.example.com", "cache.example.com", "203.0.113.50")] == [1, 1, 1]


def test_the_finding_s_service_entry_is_its_destination_s_every_port(data, texts):
    """unregistered_egress gave each (destination, port) a document of that one port: two documents for
    db.example.com, one per port, where service_entries gives one with both (Istio merges ServiceEntries
    of one host badly: istio/istio#51466, #55776). Each finding now prints service_entries' documents."""
    got = logpipe_json("report", "anomalies", "--data", data)["findings"]
    found = {(f["destination"], f["evidence"]["port"]): f["evidence"]["service_entry"]
             for f in got if f["kind"] == "unregistered_egress"}
    assert {("db.example.com", 5432), ("db.example.com", 8080)} <= set(found)
    assert {k: _load(v) for k, v in found.items()} == {k: DOCUMENTS[k[0]] for k in found}
    assert {k: v for k, v in found.items()} == {k: texts[k[0]] for k in found}


def test_a_host_over_tcp_and_tls_at_one_ip_is_split_too(texts):
    """mq.example.com on 5671 (plain TCP) and 443 (TLS) at one IP was one document with that address,
    under a comment that its TLS port was matched at that address too, not by SNI: Istio binds the TLS
    port of a service with an IP address to that IP and sets no SNI match (istio/istio
    pilot/pkg/networking/core/listener.go, tls.go), so TLS to another IP of the host left through
    PassthroughCluster. A host with TCP and other ports is now split as one at several IPs: its TLS port
    under its name without addresses (SNI), its TCP port under ip-<IP>.mq.example.com.external; so no
    document says a TLS port is narrowed."""
    own, tcp = _load(texts["mq.example.com"])
    assert own["spec"]["hosts"] == ["mq.example.com"] and "addresses" not in own["spec"]
    assert tcp["spec"]["hosts"] == ["ip-198-51-100-40.mq.example.com.external"]
    assert tcp["spec"]["addresses"] == ["198.51.100.40"] and tcp["spec"]["resolution"] == "NONE"
    assert [k for k, v in texts.items() if "not by SNI" in v] == []


def test_a_host_over_tcp_and_tls_with_no_address_logged_keeps_its_tcp_port():
    """Split with no IP logged, a host's TCP port still gets a document: one under ip-.<host>.external with
    the placeholder address "" (both refused by Istio, with a comment to set the IP), its TLS port under
    its name without addresses. The macro alone, no dataset."""
    from logpipe.db import connect

    sql = ("SELECT service_entry_yaml_ports('q.example.com', [{'port': 443, 'protocol': 'TLS'}, "
           "{'port': 5671, 'protocol': 'TCP'}], false, ?)")
    for addresses in ([], None):
        text = connect(tables={}, uses=[sql]).execute(sql, [addresses]).fetchone()[0]
        own, tcp = _load(text)
        assert own == {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                       "metadata": {"name": "q-example-com-443", "labels": NO_AUTO_IP},
                       "spec": {"hosts": ["q.example.com"], "location": "MESH_EXTERNAL",
                                "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
                                "resolution": "DNS"}}
        assert tcp == {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                       "metadata": {"name": "q-example-com-5671"},
                       "spec": {"hosts": ["ip-.q.example.com.external"], "addresses": [""],
                                "location": "MESH_EXTERNAL",
                                "ports": [{"number": 5671, "name": "tcp-5671", "protocol": "TCP"}],
                                "resolution": "NONE"}}
        assert check_service_entry(tcp) == ["hosts ['ip-.q.example.com.external']", "address ''"]
        assert ('  - ""  # no upstream address in the logs: set the IP q.example.com resolves to\n') in text


def test_a_long_host_s_made_up_hosts_stay_under_255_characters():
    """A made-up host is ip-<IP>.<host>.external; where a host is too long for it (Istio refuses a host
    over 255 characters: pkg/config/validation, checkDNS1123Preconditions), the host's hash stands in
    for it: ip-<IP>.<8 hex digits>.external, still one per (host, IP). The macro alone, no dataset."""
    from logpipe.db import connect

    long = ".".join(["a" * 60] * 4) + ".example"  # 251 characters
    sql = "SELECT service_entry_yaml_ports(?, [{'port': 5432, 'protocol': 'TCP'}], false, ['198.51.100.2', '198.51.100.1'])"
    got = _load(connect(tables={}, uses=[sql]).execute(sql, [long]).fetchone()[0])
    assert [d["spec"]["hosts"] for d in got] == [[f"ip-198-51-100-{n}.{hashlib.md5(long.encode()).hexdigest()[:8]}.external"]
                                                 for n in (1, 2)]
    assert [check_service_entry(d) for d in got] == [[], []]


def test_a_split_host_s_own_document_gets_no_auto_allocated_address(texts):
    """Istio's DNS proxy (a sidecar's with ISTIO_META_DNS_CAPTURE, ambient's ztunnel) answers a host with
    its service's address (istio/istio pkg/dns/server/name_table.go, BuildNameTable), and a ServiceEntry
    without addresses gets one allocated, 240.240.x.x (PILOT_ENABLE_IP_AUTOALLOCATE, on by default from
    1.25). db.example.com's own document, its HTTP port alone, got one: its app dialled 240.240.x.x:5432,
    where no TCP port listened (they are under ip-<IP>.db.example.com.external), so its TCP connections
    were lost. It is now labelled networking.istio.io/enable-autoallocate-ip: "false", the allocation's
    opt-out (pilot/pkg/networking/serviceentry/ip_autoallocation.go): the DNS proxy has no entry for it
    and forwards the query, the app dials the real IP. The documents with addresses, and resolution NONE
    (never allocated), are not labelled; the comment tells the older ISTIO_META_DNS_AUTO_ALLOCATE, which
    ignores the label, what to write instead."""
    for host in ("db.example.com", "pg.example.com", "mq.example.com"):
        own, *split = _load(texts[host])
        assert own["metadata"]["labels"] == NO_AUTO_IP and own["spec"]["resolution"] == "DNS"
        assert [d["metadata"].get("labels") for d in split] == [None] * len(split)
        assert (f"# labelled for no auto-allocated address, which Istio's DNS proxy would answer {host} with "
                "(240.240.x.x) and where its TCP ports do not listen; ISTIO_META_DNS_AUTO_ALLOCATE ignores the "
                "label (it allocates while PILOT_ENABLE_IP_AUTOALLOCATE is off, before 1.25 by default): with "
                "it, write the host as one document instead, all its ports, one IP below as its address\n"
                "apiVersion: networking.istio.io/v1\n") in texts[host]
        assert ('  name: "' + own["metadata"]["name"] + '"\n  labels:\n'
                '    networking.istio.io/enable-autoallocate-ip: "false"\nspec:\n') in texts[host]
    # (no split, no label: addresses, or HTTP and TLS alone, which the DNS proxy may answer with a VIP)
    assert sorted(k for k, v in texts.items() if "enable-autoallocate-ip" in v) == [
        "db.example.com", "mq.example.com", "pg.example.com"]
