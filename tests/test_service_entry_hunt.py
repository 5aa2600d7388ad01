"""A ServiceEntry hunt: the YAML logpipe writes for realistic passthrough egress (`query service_entries`,
registry_only's service_entry, the unregistered_egress finding), parsed with a YAML parser and checked field
by field against Istio's ServiceEntry reference and its validation (istio/istio pkg/config/validation:
hosts, addresses, ports, resolution, endpoints), so that what an operator pastes into kubectl apply is
taken as it reads. Sidecar lines in Istio's default text format (1.9+), all through PassthroughCluster."""
from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from conftest import ingest_clean, logpipe_json, run_logpipe


def _http(t, method, proto, authority, addr, src, port):
    return (f'[2025-03-08T10:00:{t:02d}.000Z] "{method} /x {proto}" 200 - via_upstream - "-" 10 20 5 4 "-" '
            f'"curl/8.5.0" "r-{t}" "{authority}" "{addr}:{port}" PassthroughCluster 10.244.1.9:40000 '
            f'{addr}:{port} {src}:500{t % 10} - allow_any')


def _tcp(t, addr, port, src, sni="-"):
    return (f'[2025-03-08T10:00:{t:02d}.000Z] "- - -" 0 - - - "-" 517 4000 30 - "-" "-" "-" "-" "{addr}:{port}" '
            f'PassthroughCluster 10.244.1.9:40000 {addr}:{port} {src}:510{t % 10} {sni} -')


LONG = ".".join(["a" * 60] * 4) + ".example"
LINES = [
    _tcp(1, "104.18.1.1", 443, "10.244.1.10", "api.stripe.com"),        # HTTPS, TLS passthrough: SNI only
    _http(2, "GET", "HTTP/1.1", "example.com", "93.184.215.14", "10.244.1.11", 80),     # plain HTTP on 80
    _http(3, "GET", "HTTP/1.1", "example.com:8080", "93.184.215.14", "10.244.1.11", 8080),  # and on 8080
    _tcp(4, "93.184.215.14", 443, "10.244.1.11", "example.com"),        # the same host over TLS too
    _tcp(5, "203.0.113.50", 5432, "10.244.1.12"),                       # a raw IPv4 destination
    _tcp(6, "[2001:db8::10]", 5432, "10.244.1.12"),                     # a raw IPv6 one, on two ports
    _tcp(7, "[2001:db8::10]", 6379, "10.244.1.12"),
    _http(8, "GET", "HTTP/1.1", "API.GitHub.com", "140.82.1.1", "10.244.1.13", 80),  # uppercase authority
    _http(9, "GET", "HTTP/1.1", "api.github.com", "140.82.1.1", "10.244.1.13", 80),
    _tcp(10, "140.82.1.2", 443, "10.244.1.13", "raw.githubusercontent.com."),  # a trailing dot
    _http(11, "GET", "HTTP/1.1", "bücher.example", "198.51.100.3", "10.244.1.14", 80),  # not ASCII
    _http(12, "POST", "HTTP/2", "grpc.example.com:443", "198.51.100.4", "10.244.1.15", 443),  # gRPC
    _tcp(13, "198.51.100.5", 443, "10.244.1.16", "*.wild.example.com"),  # a wildcard-looking SNI
    _http(14, "GET", "HTTP/1.1", "yes", "198.51.100.6", "10.244.1.17", 80),   # a bare name YAML 1.1 misreads
    _http(15, "GET", "HTTP/1.1", "host.123", "198.51.100.7", "10.244.1.17", 80),  # all-numeric last label
    _http(16, "GET", "HTTP/1.1", "a..b.example", "198.51.100.8", "10.244.1.17", 80),  # an empty label
    _http(17, "GET", "HTTP/1.1", "a.-b.example", "198.51.100.9", "10.244.1.17", 80),  # a label's leading dash
    # a host of 251 characters on two ports: its name, 247 and "-80-8080", must still fit 253
    _http(18, "GET", "HTTP/1.1", LONG, "198.51.100.10", "10.244.1.18", 80),
    _http(19, "GET", "HTTP/1.1", f"{LONG}:8080", "198.51.100.10", "10.244.1.18", 8080),
]
# destinations Istio would refuse as a host (or that are no DNS name): no ServiceEntry
NO_SERVICE_ENTRY = {"raw.githubusercontent.com.", "bücher.example", "*.wild.example.com", "host.123",
                    "a..b.example", "a.-b.example"}

# Istio's rules (istio/istio pkg/config/validation, pkg/config/labels; istio.io ServiceEntry reference)
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
PROTOCOLS = {"HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"}


def _istio_host_ok(host: str) -> bool:
    if not 0 < len(host) <= 255 or "*" in host:
        return False
    labels = host.split(".")
    if len(labels) > 1 and labels[-1].isdigit():
        return False  # "top level domain cannot be all-numeric"
    return all(len(lab) <= 63 and _LABEL.fullmatch(lab) for lab in labels)


def check_service_entry(doc) -> list[str]:
    """What Istio (or Kubernetes) would refuse or misread in one ServiceEntry document: [] when none."""
    bad = []
    if doc.get("apiVersion") != "networking.istio.io/v1" or doc.get("kind") != "ServiceEntry":
        bad.append(f"apiVersion/kind {doc.get('apiVersion')!r} {doc.get('kind')!r}")
    name = doc.get("metadata", {}).get("name")
    if not (isinstance(name, str) and len(name) <= 253 and _K8S_NAME.fullmatch(name)):
        bad.append(f"metadata.name {name!r}")
    spec = doc.get("spec", {})
    hosts = spec.get("hosts")
    if not (isinstance(hosts, list) and hosts and all(isinstance(h, str) and _istio_host_ok(h) for h in hosts)):
        bad.append(f"hosts {hosts!r}")
    if spec.get("location") != "MESH_EXTERNAL":
        bad.append(f"location {spec.get('location')!r}")
    ports = spec.get("ports") or []
    if not ports:
        bad.append("no ports")
    for p in ports:
        if not (isinstance(p.get("number"), int) and 1 <= p["number"] <= 65535):
            bad.append(f"port number {p.get('number')!r}")
        if not (isinstance(p.get("name"), str) and len(p["name"]) <= 63 and _PORT_NAME.fullmatch(p["name"])):
            bad.append(f"port name {p.get('name')!r}")
        if p.get("protocol") not in PROTOCOLS:
            bad.append(f"port protocol {p.get('protocol')!r}")
    if any(p.get("protocol") == "TCP" for p in ports) and not spec.get("addresses"):
        # (a TCP port is told by destination address alone: istio.io IST0134, istio/istio#29992)
        bad.append("a TCP port without addresses: it would match every destination on the port")
    if len({p.get("name") for p in ports}) != len(ports) or len({p.get("number") for p in ports}) != len(ports):
        bad.append(f"ports not unique {ports!r}")
    if len(spec.get("addresses") or []) > 1:
        # (one model.Service per address, and a sidecar keeps one per host: the others get no listener;
        # istio/api service_entry.proto, addresses; istio/istio#34577)
        bad.append("several addresses: Istio uses one of a host")
    for a in spec.get("addresses") or []:
        try:
            ipaddress.ip_network(a)
        except (TypeError, ValueError):
            bad.append(f"address {a!r}")
    resolution = spec.get("resolution")
    if resolution == "STATIC":
        eps = spec.get("endpoints") or []
        if not eps:
            bad.append("STATIC without endpoints")
        for e in eps:
            try:
                ipaddress.ip_address(e.get("address"))
            except (TypeError, ValueError):
                bad.append(f"endpoint {e!r}")
    elif resolution == "DNS":
        if spec.get("endpoints"):
            bad.append("DNS with endpoints (the host is the endpoint here)")
    elif resolution == "NONE":
        if spec.get("endpoints"):
            bad.append("NONE with endpoints")
    else:
        bad.append(f"resolution {resolution!r}")
    return bad


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return ingest_clean(tmp_path_factory.mktemp("se_hunt"), {"sidecar.log": LINES})




@pytest.fixture(scope="module")
def documents(data):
    got = run_logpipe("query", "service_entries", "--data", data)
    assert got.returncode == 0, got.stderr
    return [d for d in yaml.safe_load_all(got.stdout) if d is not None]


def test_every_service_entry_is_one_istio_takes(documents):
    assert documents
    assert {d["metadata"]["name"]: check_service_entry(d) for d in documents} == {
        d["metadata"]["name"]: [] for d in documents}


def test_a_host_yaml_would_misread_reads_as_its_name(documents):
    """`- yes` was the boolean true (YAML 1.1, as kubectl reads it), which no host list takes."""
    hosts = [h for d in documents for h in d["spec"]["hosts"]]
    assert "yes" in hosts and all(isinstance(h, str) for h in hosts), hosts


def test_a_name_istio_refuses_as_a_host_gets_no_service_entry(data):
    """host.123 (an all-numeric last label), a..b.example and a.-b.example (an empty label, a label
    starting with a dash) were written, for Istio's validation to refuse; a trailing dot, a wildcard
    and a name not in ASCII get none either. registry_only still lists each."""
    rows = logpipe_json("query", "registry_only", "--data", data)
    assert {r["destination"] for r in rows if r["service_entry"] is None} == NO_SERVICE_ENTRY
    assert {r["destination"] for r in rows} >= NO_SERVICE_ENTRY


def test_a_destination_on_several_ports_is_one_document_with_each_port(documents, data):
    """A host (or IP) reached on several ports was a document per port, all of one host: Istio merges
    such ServiceEntries differently from release to release (istio/istio#50478, #51466 blackholed,
    #54988, #55776), so each destination is one document, a port (and its protocol) for each."""
    hosts = [h for d in documents for h in d["spec"]["hosts"]]
    assert len(hosts) == len(set(hosts)), sorted(hosts)
    by_host = {d["spec"]["hosts"][0]: d for d in documents}
    assert [(p["number"], p["name"], p["protocol"]) for p in by_host["example.com"]["spec"]["ports"]] == [
        (80, "http-80", "HTTP"), (443, "tls-443", "TLS"), (8080, "http-8080", "HTTP")]
    assert by_host["example.com"]["metadata"]["name"] == "example-com-80-443-8080"
    ip6 = next(d for d in documents if d["spec"].get("addresses") == ["2001:db8::10"])
    assert [p["number"] for p in ip6["spec"]["ports"]] == [5432, 6379]
    assert len(by_host[LONG]["metadata"]["name"]) <= 253
    # registry_only keeps a row per port, each with its destination's one document
    rows = [r for r in logpipe_json("query", "registry_only", "--data", data) if r["destination"] == "example.com"]
    assert sorted(r["port"] for r in rows) == [80, 443, 8080]
    assert len({r["service_entry"] for r in rows}) == 1
    assert yaml.safe_load(rows[0]["service_entry"]) == by_host["example.com"]


def test_the_finding_s_service_entry_is_its_destination_s_and_istio_takes_it(data, documents):
    """unregistered_egress gives one finding per destination and port, its ServiceEntry the destination's
    one document, every port of it (tests/test_service_entry_tcp.py: it was that port's alone)."""
    got = logpipe_json("report", "anomalies", "--data", data)["findings"]
    docs = {(f["destination"], f["evidence"]["port"]): yaml.safe_load(f["evidence"]["service_entry"])
            for f in got if f["kind"] == "unregistered_egress" and f["evidence"]["service_entry"]}
    by_host = {d["spec"]["hosts"][0]: d for d in documents}
    assert docs["example.com", 8080] == docs["example.com", 80] == by_host["example.com"]
    assert {k: check_service_entry(d) for k, d in docs.items()} == {k: [] for k in docs}
