"""One upload, one finding: an upload to a destination, or by a client to a destination, that the
baseline never reached is new_destination's or new_pair's finding (high from upload_high, 1 MB), not a
volume_outlier beside it; volume_outlier judges the pairs the baseline reached, and rates one high
when its day's upload is high_factor times or more the pair's baseline day. On
tests/test_anomaly_quality.py's generated traffic (its quiet_days)."""
from __future__ import annotations

import datetime as dt

import pytest
from test_anomaly_quality import START, _report, quiet_days
from test_report import found

LAST = START + dt.timedelta(days=7)  # (the window: quiet_days(8)'s last day, a Monday)
DATA: dict = {}


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> tuple[dict, dict]:
    """(the report, the pods) of 8 quiet days with uploads planted into the last: one dataset for every
    test here (generating and reporting it is ~2.5 s of CPU, as test_anomaly_quality.py's quiet_week).
    ci-runner uploads 2 MB to api.github.com each weekday of the baseline (its test reports): 1.4 MB
    a day over the baseline's 7 days."""
    tr = quiet_days(8, blip_day=None)
    pods = {w: tr.pods[w][0] for w in ("frontend", "reports", "payments", "ci-runner")}
    for day in range(5):
        tr.request(START + dt.timedelta(days=day, hours=12), pods["ci-runner"], "api.github.com", method="PUT",
                   up=2_000_000, down=300, ms=900)
    for k in range(20):  # a host nobody called before: 50 MB
        tr.request(LAST + dt.timedelta(hours=3, seconds=30 * k), pods["frontend"], "files.example", method="PUT",
                   up=2_500_000, down=300, ms=900, vip="240.240.0.31", upstream="203.0.113.81")
    for k in range(20):  # a known host reports never called: 50 MB
        tr.request(LAST + dt.timedelta(hours=4, seconds=30 * k), pods["reports"], "api.stripe.com", method="POST",
                   up=2_500_000, down=300, ms=900)
    for k in range(40):  # payments, ~1.2 MB a day to api.stripe.com: 80 MB in 13 minutes
        tr.request(LAST + dt.timedelta(hours=5, seconds=20 * k), pods["payments"], "api.stripe.com", method="POST",
                   up=2_000_000, down=300, ms=900)
    for k in range(20):  # ci-runner, 1.4 MB a day: 40 MB (28 times it)
        tr.request(LAST + dt.timedelta(hours=12, seconds=30 * k), pods["ci-runner"], "api.github.com", method="PUT",
                   up=2_000_000, down=300, ms=900)
    tmp = tmp_path_factory.mktemp("uploads")
    DATA["uploads"] = tmp / "data"  # (for a report with other params)
    return _report(tmp, tr), {w: f"shop/{p.name}" for w, p in pods.items()}


def test_each_upload_is_one_finding(uploads):
    """The 50 MB to a new destination and the 50 MB of a new pair were a high new_destination and a
    high new_pair each, and a medium volume_outlier each too (against a baseline of 0 MB a day, and
    api.stripe.com's upload per workload): one upload, two findings."""
    doc, pods = uploads
    assert sorted((f["kind"], f["source"], f["destination"]) for f in doc["findings"]) == [
        ("new_destination", pods["frontend"], "files.example"),
        ("new_pair", pods["reports"], "api.stripe.com"),
        ("volume_outlier", pods["ci-runner"], "api.github.com"),
        ("volume_outlier", pods["payments"], "api.stripe.com")]
    assert [(f["severity"], f["evidence"]["bytes_up"]) for f in found(doc, "new_destination") + found(doc, "new_pair")] == [
        ("high", 50_000_000), ("high", 50_000_000)]


def test_a_large_multiple_of_the_pairs_day_is_high(uploads):
    """payments uploads ~1.2 MB a day to api.stripe.com; 80 MB in 13 minutes (67 times its day)
    was a medium volume_outlier, as any upload under high_bytes, 100 MB, was. high_factor, 50, times
    its baseline day makes it high; ci-runner's 40 MB, 28 times its day (a monthly job's run is some
    30), stays medium."""
    doc, pods = uploads
    got = {f["source"]: (f["severity"], round(f["evidence"]["daily_bytes"] / f["evidence"]["baseline_daily_bytes"]))
           for f in found(doc, "volume_outlier")}
    assert got == {pods["payments"]: ("high", 67), pods["ci-runner"]: ("medium", 28)}


def test_min_requests_does_not_drop_a_large_upload_of_a_newcomer(uploads):
    """volume_outlier leaves a new destination's or a new pair's upload to new_destination and new_pair:
    a min_requests above their 20 requests dropped both 50 MB uploads, which then had no finding at all.
    An upload of upload_high or more is a finding whatever min_requests says; fewer requests of no such
    upload are still dropped."""
    from test_report import anomalies

    doc = anomalies(DATA["uploads"], params={"min_requests": 50})
    _, pods = uploads
    got = sorted((f["kind"], f["source"], f["destination"]) for f in doc["findings"]
                 if f["kind"] in ("new_destination", "new_pair"))
    assert got == [("new_destination", pods["frontend"], "files.example"),
                   ("new_pair", pods["reports"], "api.stripe.com")]
    doc = anomalies(DATA["uploads"], params={"min_requests": 50, "upload_high": 60_000_000})
    assert not [f for f in doc["findings"] if f["kind"] in ("new_destination", "new_pair")]


@pytest.fixture(scope="module")
def unsent(tmp_path_factory) -> tuple[dict, dict]:
    """(the report, the pods) of 8 quiet days with uploads that never left: a second dataset, as
    refused and unconnected requests of the pairs above would add findings (authz_denial, error_spike)
    to uploads' exact list; ~0.4 s of CPU (the file 4.1 -> 4.5 s: quiet_days' traffic is generated once).
    Window: payments POSTs 80 MB to api.stripe.com that an RBAC policy refused (403); ci-runner PUTs
    40 MB to api.github.com that the proxy never connected upstream for (503 UF); reports POSTs 20 MB
    to partner-api.example that it sent on. Baseline: reports (3 GETs of no body on Mondays and
    Thursdays) POSTed 50 MB there on its Tuesday, all 503 UF."""
    tr = quiet_days(8, blip_day=None)
    pods = {w: tr.pods[w][0] for w in ("payments", "ci-runner", "reports")}
    for k in range(20):
        tr.request(START + dt.timedelta(days=1, hours=10, seconds=30 * k), pods["reports"], "partner-api.example",
                   method="POST", code=503, flags="UF", up=2_500_000, down=91, ms=30)
    for k in range(40):
        tr.request(LAST + dt.timedelta(hours=5, seconds=20 * k), pods["payments"], "api.stripe.com", method="POST",
                   code=403, details="rbac_access_denied_matched_policy[ns[shop]-policy[stripe-ro]-rule[0]]",
                   up=2_000_000, down=19, ms=1)
    for k in range(20):
        tr.request(LAST + dt.timedelta(hours=12, seconds=30 * k), pods["ci-runner"], "api.github.com", method="PUT",
                   code=503, flags="UF", up=2_000_000, down=91, ms=30)
    for k in range(8):
        tr.request(LAST + dt.timedelta(hours=13, seconds=30 * k), pods["reports"], "partner-api.example",
                   method="POST", up=2_500_000, down=300, ms=900)
    return _report(tmp_path_factory.mktemp("unsent"), tr), {w: f"shop/{p.name}" for w, p in pods.items()}


def test_an_upload_is_what_left(unsent):
    """volume_outlier counts the bytes of requests the proxy sent on and no policy refused, as new_pair
    and new_destination do: payments' 80 MB refused by RBAC was a high volume_outlier beside its
    authz_denial (one event, two findings), ci-runner's 40 MB of 503 UF, that never left the mesh, a
    high one. Only reports' 20 MB, sent on, is one (its 8 POSTs and its Monday's 3 GETs); payments'
    refusal is authz_denial's alone."""
    doc, pods = unsent
    assert [(f["source"], f["destination"], f["evidence"]["bytes_up"], f["evidence"]["requests"])
            for f in found(doc, "volume_outlier")] == [(pods["reports"], "partner-api.example", 20_000_000, 11)]
    assert [(f["source"], f["destination"]) for f in found(doc, "authz_denial")] == [
        (pods["payments"], "api.stripe.com")]


def test_the_baseline_upload_is_what_left(unsent):
    """The pair's baseline daily upload counts what left, as its window's does: reports' 50 MB of 503
    UF in the baseline made its day 7.1 MB, and its 20 MB sent on in the window (2.8 times that) was no
    finding; against the 0 bytes it sent, it is high (a pair of no upload in the baseline is high from
    min_bytes)."""
    doc, pods = unsent
    got = [(f["severity"], f["evidence"]["baseline_daily_bytes"]) for f in found(doc, "volume_outlier")
           if f["source"] == pods["reports"]]
    assert got == [("high", 0)]
