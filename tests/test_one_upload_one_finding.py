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
