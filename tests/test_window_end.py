"""The anomalies' default window (no --until) ends a second past the data's last record of any kind, not
the last egress request: authz_denial reports internal denials too (a sidecar's inbound RBAC 403,
ztunnel's inbound policy rejection), and those logged after the last egress request fell past the
window's end, so the default `report anomalies` gave them no finding. Its start (24 h before the last
egress request) and the baseline stay as they were (reports.resolve_window, report_bounds.sql)."""
from __future__ import annotations


import pytest

from conftest import ingest_clean, logpipe_json, run_logpipe
from test_denial_hunt import ENVOY_LINES, ZTUNNEL_LINES

# the hunt's last egress request (10:00:14) and its internal denials, logged before it there, an hour
# after it here: a sidecar's inbound HTTP and TCP RBAC, ztunnel's inbound refusal (with the client's
# 401 for it) and its client's lone 401 to an in-mesh egress gateway
LAST_EGRESS = "2025-03-08T10:00:14.000Z"
LATE = [line.replace("[2025-03-08T09:59:5", "[2025-03-08T10:59:5") for line in ENVOY_LINES
        if line.startswith("[2025-03-08T09:59:5") and "inbound|" in line]
LATE_Z = [line.replace("2025-03-08T09:59:5", "2025-03-08T10:59:5") for line in ZTUNNEL_LINES
          if "policy rejection" in line or "401" in line]
EARLY = [line for line in ENVOY_LINES if line.startswith("[2025-03-08T10:00:")]
# (a baseline: the passthrough two days before)
BASELINE = [line.replace("[2025-03-08T10:00:08", "[2025-03-06T10:00:08") for line in EARLY if "203.0.113.50:5432" in line]
CURL = "default/curl-5b7d8c9f6-h7k2p"
INTERNAL = {("10.244.1.23", "httpbin.foo"), ("10.244.1.26", "10.244.2.40"),
            (CURL, "httpbin.default.svc.cluster.local"), (CURL, "istio-egressgateway.istio-system.svc.cluster.local")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    assert len(LATE) == 2 and len(LATE_Z) == 3 and len(BASELINE) == 1  # (the hunt's lines, as this test reads them)
    return ingest_clean(tmp_path_factory.mktemp("late"), {"envoy.log": BASELINE + EARLY + LATE, "ztunnel.log": LATE_Z})




def _internal(findings) -> set:
    return {(f["source"], f["destination"]) for f in findings
            if f["kind"] == "authz_denial" and f["evidence"]["scope"] == "internal"}


def test_internal_denials_after_the_last_egress_request_are_in_the_default_window(data):
    """Each is authz_denial's finding; the window runs from 24 h before the last egress request to the
    last record (the client's lone 401 at 10:59:56), the baseline from the first egress request up to its start."""
    doc = logpipe_json("report", "anomalies", "--data", data)
    assert _internal(doc["findings"]) == INTERNAL, doc["findings"]
    assert doc["window"]["start"] == "2025-03-07T10:00:14.000Z" and doc["window"]["end"] == "2025-03-08T10:59:56.000Z", doc["window"]
    assert (doc["baseline"]["start"], doc["baseline"]["end"]) == ("2025-03-06T10:00:08.000Z", "2025-03-07T10:00:14.000Z")
    text = run_logpipe("report", "anomalies", "--data", data, "-o", "text").stdout
    assert "window   2025-03-07 10:00 UTC to 2025-03-08 10:59 UTC: 14 egress requests" in text, text


def test_a_since_without_until_ends_there_too(data):
    doc = logpipe_json("report", "anomalies", "--data", data, "--since", "2025-03-08T10:00:00Z")
    assert _internal(doc["findings"]) == INTERNAL and doc["window"]["end"] == "2025-03-08T10:59:56.000Z", doc["window"]


def test_a_section_run_alone_takes_the_same_window(data):
    """`logpipe query authz_denial`, its window left empty (report_bounds.sql), ends past the last
    record as the report's does."""
    got = logpipe_json("query", "authz_denial", "--data", data)
    assert _internal(got) == INTERNAL, got


def test_a_since_after_the_last_egress_request_but_before_later_denials_is_their_window(data):
    """--since after the last egress request (10:00:14) but before the internal denials logged after it
    (10:59:5x) was refused ("after the last egress request"), though the default window reaches them: it
    is a window of those denials, authz_denial's findings; past the last record it is refused, naming it."""
    doc = logpipe_json("report", "anomalies", "--data", data, "--since", "2025-03-08T10:30:00Z")
    assert _internal(doc["findings"]) == INTERNAL and doc["window"]["start"] == "2025-03-08T10:30:00.000Z", doc["window"]
    got = run_logpipe("report", "anomalies", "--data", data, "--since", "2025-03-08T11:00:00Z")
    assert got.returncode == 2 and ("--since 2025-03-08T11:00Z is after the last record (2025-03-08T10:59Z); "
                                    "choose an earlier time") in got.stderr, got.stderr
