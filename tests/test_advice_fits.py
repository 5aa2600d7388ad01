"""The anomalies' advice fits how a destination left the mesh (egress_kind): new_destination told every
newcomer to "register it with a ServiceEntry if legitimate", a waypoint's or a sidecar's registered one
too (a ServiceEntry admits those already); direct_ip_egress told a registered one to block raw-IP egress
(REGISTRY_ONLY, which does not block a registered host); latency_outlier suggested a DestinationRule for
a passthrough host, to which none applies without a ServiceEntry. A destination for whose every request
the proxy made no upstream connection (UF, UH, …: upstream_not_connected.sql) keeps its findings and
their severity (the attempt is the news), but their advice says nothing left, and its upload, never sent
on, does not make new_destination high."""
from __future__ import annotations

import datetime as dt

from test_egress_failures import AT, BEFORE, REFUSED, dataset, passthrough, waypoint
from test_report import anomalies, found

# An HTTP line of Istio's default text format (1.9+) with its cluster, route and authority given: a
# sidecar's registered egress (outbound|80||HOST), or PassthroughCluster (ALLOW_ANY).
HTTP = ('[{t}] "GET /x HTTP/1.1" 200 - via_upstream - "-" 0 120 {ms} - "-" "curl/8" "{rid}" "{auth}" '
        '"203.0.113.40:80" {cluster} 10.244.0.18:38818 203.0.113.40:80 10.244.1.21:56180 - {route}\n')


def http(auth: str, cluster: str, at: dt.datetime, n: int, ms: int = 100, route: str = "default") -> list[str]:
    t = lambda i: (at + dt.timedelta(minutes=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
    return [HTTP.format(t=t(i), ms=ms, rid=f"{auth}-{cluster[:4]}-{at:%d%H}-{i}", auth=auth, cluster=cluster, route=route)
            for i in range(n)]


def _advice(doc: dict, kind: str) -> dict[str, tuple[str, str]]:
    return {f["destination"]: (f["severity"], f["advice"]) for f in found(doc, kind)}


def test_new_destination_advice_fits_its_egress_kind(tmp_path):
    """passthrough: register it or block it; raw IP: find the hard-coded address; waypoint or sidecar
    registered: confirm and review what admits it (no "register it"); both: what the ServiceEntry leaves out.
    A raw-IP newcomer that no cluster names (public_ip) is medium, as a passthrough one."""
    lines = (waypoint("known.example", BEFORE, 2)
             + passthrough("open.example", AT, 2, rx=10, tx=10)
             + passthrough("-", AT, 2, rx=10, tx=10)  # no SNI: the upstream address is the destination
             + waypoint("wp.example", AT, 2)
             + http("se.example", "outbound|80||se.example", AT, 2)
             + http("both.example", "outbound|80||both.example", AT, 2)
             + http("both.example", "PassthroughCluster", AT, 1, route="allow_any")
             + http("203.0.113.44", "-", AT, 2, route="-"))  # no cluster, a public address: public_ip
    with_kinds = _advice(anomalies(dataset(tmp_path, lines)), "new_destination")
    assert set(with_kinds) == {"open.example", "203.0.113.60", "wp.example", "se.example", "both.example", "203.0.113.44"}
    assert with_kinds["open.example"][0] == "medium"
    assert "it is not registered" in with_kinds["open.example"][1]
    assert "register it with a ServiceEntry if legitimate" in with_kinds["open.example"][1]
    assert "a raw IP address that no ServiceEntry registers" in with_kinds["203.0.113.60"][1]
    assert "hard-coded address" in with_kinds["203.0.113.60"][1]
    # (a raw-IP newcomer ranks as a passthrough one, as the query's description says: public_ip was low)
    assert with_kinds["203.0.113.44"][0] == "medium"
    assert "a raw IP address that no ServiceEntry registers" in with_kinds["203.0.113.44"][1]
    for host, waypointed in (("wp.example", True), ("se.example", False)):
        severity, advice = with_kinds[host]
        assert severity == "low"
        assert "it is registered (a ServiceEntry admits it" in advice and "register it with" not in advice
        assert ("through an egress waypoint" in advice) is waypointed
        assert "AuthorizationPolicy" in advice
    severity, advice = with_kinds["both.example"]
    assert severity == "medium"
    assert "some requests went through a ServiceEntry and some through none" in advice


def test_a_newcomer_that_never_connected_keeps_its_findings_and_says_nothing_left(tmp_path):
    """Refused connects (503 UF,URX) to a new waypoint host with a 5 MB body: still new_destination
    (low, a registered kind), not high (the body never left: it was high), its advice says so; a
    passthrough TLS connection refused before a byte moved (UF, 0 bytes) stays unregistered_egress and
    new_destination at medium, with its ServiceEntry, and both say it never connected."""
    lines = (waypoint("known.example", BEFORE, 2)
             + waypoint("refused.example", AT, 3, rx=5_000_000, **REFUSED)
             + passthrough("closed.example", AT, 2, rx=0, tx=0, flags="UF", reason="delayed connect error: 111"))
    doc = anomalies(dataset(tmp_path, lines))
    new = _advice(doc, "new_destination")
    severity, advice = new["refused.example"]
    assert severity == "low"
    assert "tried but never reached" in advice and "nothing left" in advice and "UF,URX" in advice
    assert "It received" not in advice
    assert "it is registered" in advice
    severity, advice = new["closed.example"]
    assert severity == "medium" and "tried but never reached" in advice and "it is not registered" in advice
    (unregistered,) = found(doc, "unregistered_egress", destination="closed.example")
    assert unregistered["severity"] == "medium"
    assert unregistered["evidence"]["service_entry"]
    assert unregistered["advice"].startswith(
        "Unregistered egress to closed.example:443 that never connected (the proxy made no upstream connection "
        "for any request: response flags UF; nothing left, but a workload tried it). If it is legitimate, register it")


def test_a_newcomer_that_connected_keeps_the_plain_advice(tmp_path):
    """The same destinations reached: no word of never connecting, and a 5 MB upload that left is high."""
    lines = (waypoint("known.example", BEFORE, 2) + waypoint("up.example", AT, 3, rx=5_000_000)
             + passthrough("open.example", AT, 2, rx=10, tx=10))
    doc = anomalies(dataset(tmp_path, lines))
    new = _advice(doc, "new_destination")
    assert new["up.example"][0] == "high" and "It received 15.0 MB" in new["up.example"][1]
    assert not any("never reached" in advice or "nothing left" in advice for _, advice in new.values())
    (unregistered,) = found(doc, "unregistered_egress")
    assert unregistered["advice"].startswith(
        "Unregistered egress to open.example:443. If it is legitimate, register it (kubectl apply -f the "
        "service_entry in the evidence), then consider outboundTrafficPolicy REGISTRY_ONLY")


def test_direct_ip_egress_to_a_registered_host_is_not_told_to_block_raw_ip_egress(tmp_path):
    """Clients calling a ServiceEntry's host by its IP (authority 203.0.113.40): use the name it registers;
    through PassthroughCluster: register a name and block raw-IP egress, as before."""
    lines = (waypoint("known.example", BEFORE, 2)
             + http("203.0.113.40", "outbound|80||se.example", AT, 2)
             + http("203.0.113.41", "PassthroughCluster", AT, 2, route="allow_any"))
    got = _advice(anomalies(dataset(tmp_path, lines)), "direct_ip_egress")
    assert "use the DNS name its ServiceEntry registers" in got["se.example"][1]
    assert "REGISTRY_ONLY" not in got["se.example"][1]
    (passed,) = [advice for dest, (_, advice) in got.items() if dest != "se.example"]
    assert passed.endswith("use a DNS name registered with a ServiceEntry, and block raw-IP egress (REGISTRY_ONLY).")


def test_latency_outlier_asks_a_passthrough_host_for_a_service_entry_before_a_destination_rule(tmp_path):
    """A p99 jump: the DestinationRule it suggests applies only to a registered host."""
    day = dt.timedelta(days=1)
    lines = (http("slow.example", "PassthroughCluster", AT - 2 * day, 25, route="allow_any")
             + http("slow.example", "PassthroughCluster", AT, 25, ms=2000, route="allow_any")
             + http("slowse.example", "outbound|80||slowse.example", AT - 2 * day, 25)
             + http("slowse.example", "outbound|80||slowse.example", AT, 25, ms=2000))
    got = _advice(anomalies(dataset(tmp_path, lines)), "latency_outlier")
    assert got["slow.example"][1].endswith(
        "outlier detection in the DestinationRule (it is not registered: a DestinationRule applies only to a host "
        "a ServiceEntry registers, so register it first).")
    assert got["slowse.example"][1].endswith("outlier detection in the DestinationRule.")


def test_a_destination_the_baseline_never_connected_to_is_new_when_reached(tmp_path):
    """A baseline that only tried tried.example (503 UF,URX: no upstream connection for any request)
    never reached it, as one blocked from it did not: 200s to it in the window are new_destination
    (it counted as known: no finding). A source that reached a known destination in the baseline only
    through refused connects calls it for the first time (new_pair); a raw IP the baseline only tried
    so is no known one (direct_ip_egress not low). Tried again without connecting, each is no news:
    no finding, and direct_ip_egress low, as before."""
    other = lambda lines: [line.replace("10.244.1.21:56180", "10.244.1.22:56180") for line in lines]  # noqa: E731
    uf = lambda lines: [line.replace(" 200 - via_upstream ", " 503 UF upstream_reset_before_response_started"  # noqa: E731
                                     "{connection_failure} ") for line in lines]
    lines = (waypoint("known.example", BEFORE, 2) + other(waypoint("known.example", BEFORE, 2, **REFUSED))
             + waypoint("tried.example", BEFORE, 3, **REFUSED) + waypoint("still.example", BEFORE, 3, **REFUSED)
             + http("203.0.113.41", "outbound|80||se.example", BEFORE, 2)
             + uf(http("203.0.113.42", "outbound|80||se2.example", BEFORE, 2))
             + uf(http("203.0.113.43", "outbound|80||se3.example", BEFORE, 2))
             + waypoint("tried.example", AT, 2) + other(waypoint("known.example", AT, 2))
             + waypoint("still.example", AT, 2, **REFUSED)
             + http("203.0.113.41", "outbound|80||se.example", AT, 1)
             + http("203.0.113.42", "outbound|80||se2.example", AT, 1)
             + uf(http("203.0.113.43", "outbound|80||se3.example", AT, 1)))
    doc = anomalies(dataset(tmp_path, lines))
    assert set(_advice(doc, "new_destination")) == {"tried.example", "se2.example"}
    assert [(f["source"], f["destination"]) for f in found(doc, "new_pair")] == [("10.244.1.22", "known.example")]
    assert {d: severity for d, (severity, _) in _advice(doc, "direct_ip_egress").items()} == {
        "se.example": "low", "se2.example": "medium", "se3.example": "low"}


def test_a_pair_the_baseline_never_connected_is_no_news_tried_again(tmp_path):
    """A source whose baseline requests to a known destination all failed to connect, failing again
    in the window: no new_pair (it is no first call)."""
    other = lambda lines: [line.replace("10.244.1.21:56180", "10.244.1.22:56180") for line in lines]  # noqa: E731
    lines = (waypoint("known.example", BEFORE, 2) + other(waypoint("known.example", BEFORE, 2, **REFUSED))
             + other(waypoint("known.example", AT, 2, **REFUSED)))
    assert found(anomalies(dataset(tmp_path, lines)), "new_pair") == []


def test_a_destination_the_baseline_reached_over_a_retried_connect_is_known(tmp_path):
    """A TCP connection with UF that moved bytes connected on a later attempt (test_egress_failures): a
    baseline of such connections reached the destination, so the window's connections to it are no
    new_destination (they were: its reached was null, neither connected nor not)."""
    lines = (waypoint("known.example", BEFORE, 2)
             + passthrough("retried.example", BEFORE, 2, 517, 4300, flags="UF")
             + passthrough("retried.example", AT, 2, 517, 4300) + passthrough("fresh.example", AT, 1, 517, 4300))
    assert set(_advice(anomalies(dataset(tmp_path, lines)), "new_destination")) == {"fresh.example"}
