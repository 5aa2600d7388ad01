"""report anomalies --baseline DIR: DuckDB reads both datasets' Parquet files (the baseline's rows
before this dataset's first record, then this one's), no row of either passes through Python; the
report is the one the rows read into Arrow gave (the expected values below are that code's)."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_report import PAY, ROOT, SCENARIO, UPLOADER, _record_batches, anomalies, pod, report_db, write_dataset

from logpipe import reports
from logpipe.cli import cli
from logpipe.errors import DatasetError, UsageError

LOGS = ROOT / "sample_logs"

# The scenario's incident day against its baseline week (--baseline): what the rows read into Arrow
# and registered with DuckDB gave, finding by finding.
WANT_FINDINGS = [
    ("error_spike", "critical", "10.244.1.21,10.244.1.22", "api.stripe.com"),
    ("authz_denial", "high", "10.244.1.51", "hooks.slack.com"),
    ("authz_denial", "high", "10.244.1.41", "httpbin.org"),
    ("direct_ip_egress", "high", "10.244.2.11", "203.0.113.9"),
    ("latency_outlier", "high", "10.244.2.11", "api.github.com"),
    ("new_destination", "high", "10.244.1.31", "exfil.example"),
    ("tls_failure", "high", "10.244.2.21", "legacy-partner.example"),
    ("volume_outlier", "high", "10.244.1.61", "storage.example"),
    ("blocked_attempt", "medium", "10.244.3.15", "198.51.100.77"),
    ("blocked_attempt", "medium", "10.244.3.15", "crypto-miner.example"),
    ("new_destination", "medium", "10.244.2.21", "203.0.113.50"),
    ("new_destination", "medium", "10.244.2.11", "203.0.113.9"),
    ("new_destination", "medium", "10.244.2.21", "pastebin.com"),
    ("plaintext_egress", "medium", "10.244.1.51", "http-only.example"),
    ("plaintext_egress", "medium", "10.244.2.21", "pastebin.com"),
    ("unregistered_egress", "medium", "10.244.2.21", "203.0.113.50"),
    ("unregistered_egress", "medium", "10.244.2.11", "203.0.113.9"),
    ("unregistered_egress", "medium", "10.244.2.21", "pastebin.com"),
    ("latency_outlier", "low", "10.244.1.61", "storage.example"),
    ("new_destination", "low", "10.244.1.51", "http-only.example"),
    ("new_pair", "low", "10.244.1.41", "api.stripe.com"),
    ("plaintext_egress", "low", "10.244.2.11", "203.0.113.9"),
]
WANT_HEADER = {
    "window": {"start": "2025-03-08T00:02:11.224Z", "end": "2025-03-08T23:58:42.799Z", "requests": 687},
    "baseline": {"start": "2025-03-01T00:14:24.252Z", "end": "2025-03-07T23:32:35.603Z", "source": "baseline dataset",
                 "requests": 2475, "days": 7, "note": None},
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(incident day, baseline week, both: a baseline that overlaps the window) as datasets."""
    tmp = tmp_path_factory.mktemp("pair")
    return (write_dataset([SCENARIO / "incident-day.log"], tmp / "incident"),
            write_dataset([SCENARIO / "baseline-week.log"], tmp / "week"),
            write_dataset([SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"], tmp / "all"))


def _summary(doc):
    return {k: doc[k] for k in ("window", "baseline")}, [
        (f["kind"], f["severity"], f["source"], f["destination"]) for f in doc["findings"]]


def test_baseline_dataset_report_is_the_one_the_arrow_rows_gave(pair):
    incident, week, both = pair
    assert _summary(anomalies(incident, baseline_dir=week)) == (WANT_HEADER, WANT_FINDINGS)
    # A baseline that holds the window's day too: only its rows before the window's first record count.
    assert _summary(anomalies(incident, baseline_dir=both)) == (WANT_HEADER, WANT_FINDINGS)


@pytest.fixture(scope="module")
def by_data(pair):
    """`logpipe report anomalies --data INCIDENT --baseline WEEK -o json`'s output, run once for the two
    tests of it (a report is ~1 s of CPU)."""
    incident, week, _ = pair
    r = CliRunner().invoke(cli, ["report", "anomalies", "--baseline", str(week), "-o", "json", "--data", str(incident)])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_baseline_dataset_report_from_the_cli(by_data):
    doc = json.loads(by_data)
    assert _summary(doc) == (WANT_HEADER, WANT_FINDINGS)
    assert doc["findings"][0]["evidence"]["baseline_requests"] == 588  # (the critical error_spike's)


def test_input_logs_against_a_baseline_dataset(pair, by_data):
    """--input logs and --baseline: the report of their dataset, to the byte."""
    _, week, _ = pair
    by_input = CliRunner().invoke(cli, ["report", "anomalies", "--baseline", str(week), "-o", "json",
                                        "--input", str(SCENARIO / "incident-day.log")])
    assert by_input.exit_code == 0, by_input.output
    assert by_input.stdout == by_data


def test_pods_name_a_baseline_reports_sources(pair, tmp_path):
    """--pods with --baseline: the workloads of the pods that held the IPs then (as the Arrow rows gave)."""
    incident, week, _ = pair
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps({"kind": "List", "items": [
        pod("uploader-5d8f7c9b4-aaaaa", UPLOADER, "2025-02-01T00:00:00Z"),
        pod("batch-x", UPLOADER, "2025-03-05T12:00:00Z", owner=("Job", "batch"), hash_=None, ns="jobs"),
        pod("pay-1", PAY, "2025-02-01T00:00:00Z", owner=("ReplicaSet", "pay-77"), hash_="77", ns="payments")]}))
    doc = anomalies(incident, baseline_dir=week, pods_path=pods)
    renamed = {("error_spike", "api.stripe.com"): "10.244.1.22,payments/pay",
               ("volume_outlier", "storage.example"): "jobs/batch", ("latency_outlier", "storage.example"): "jobs/batch"}
    assert _summary(doc) == (WANT_HEADER, [(k, sev, renamed.get((k, d), s), d) for k, sev, s, d in WANT_FINDINGS])


def test_the_window_floor_and_the_rows_of_each(pair):
    incident, week, both = pair
    with report_db(incident, baseline_dir=both) as (con, floor):
        assert floor.isoformat() == "2025-03-08T00:02:11.224000+00:00"
        # the week's 3051 rows (the incident day's, also in `both`, are past the floor) and the day's 764
        assert con.execute("SELECT count(*), count(*) FILTER (start_time < $1) FROM access_log",
                           [floor]).fetchall() == [(3051 + 764, 3051)]


def test_a_baseline_of_another_format_adds_its_extra_columns(pair, tmp_path):
    """A baseline of a format of one's own: its extra column is in access_log, null in the window's
    rows; the columns are the baseline's, then the window's others, then `date` (as the rows
    concatenated in Arrow had them)."""
    incident, _, _ = pair
    log = tmp_path / "c.log"
    log.write_text("[2025-03-05T10:00:00.000Z] GET /a 200 outbound|443||api.stripe.com 10.244.1.5:3333 abc123\n"
                   "[2025-03-09T10:00:00.000Z] GET /b 200 outbound|443||api.stripe.com 10.244.1.5:3333 def456\n")
    fmt = ("[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS% "
           "%REQ(X-B3-TRACEID)%")
    r = CliRunner().invoke(cli, ["ingest", str(log), "--data", str(tmp_path / "d"), "--format-string", fmt])
    assert r.exit_code == 0, r.output
    with report_db(incident, baseline_dir=tmp_path / "d", report="anomalies") as (con, _):
        columns = con.execute("SELECT column_name, column_type FROM (DESCRIBE access_log)").fetchall()
        assert len(columns) == 53 and columns[-2:] == [("x_b3_traceid", "VARCHAR"), ("date", "VARCHAR")]
        assert con.execute("SELECT count(*), count(x_b3_traceid), list(x_b3_traceid) FILTER (x_b3_traceid IS NOT NULL), "
                           "list(DISTINCT date ORDER BY date) FROM access_log").fetchall() == [
            (765, 1, ["abc123"], ["2025-03-05", "2025-03-08"])]


def test_the_rows_stay_in_duckdb(tmp_path):
    """~200k rows of two datasets: opening the report holds none of them in Arrow in this process
    (they were all read into Arrow tables, concatenated and registered with DuckDB: 2M rows each
    took 3.8 GB peak RSS), its `access_log` reads both datasets' Parquet files."""
    week, day = (pa.Table.from_batches(_record_batches(p, p.stat().st_mtime_ns))
                 for p in (SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"))
    for name, table, times in (("base", week, 40), ("main", day, 100)):
        days = pc.strftime(table["start_time"], format="%Y-%m-%d")
        for d in sorted(set(days.to_pylist())):
            (tmp_path / name / f"date={d}").mkdir(parents=True)
            pq.write_table(pa.concat_tables([table.filter(pc.equal(days, d))] * times),
                           tmp_path / name / f"date={d}" / "part-0.parquet")
    del week, day, table, days
    before = pa.total_allocated_bytes()
    with report_db(tmp_path / "main", baseline_dir=tmp_path / "base", report="anomalies") as (con, _):
        held = pa.total_allocated_bytes() - before
        assert con.execute("SELECT count(*) FROM access_log").fetchall() == [(3051 * 40 + 764 * 100,)]
        plan = "".join(r[1] for r in con.execute("EXPLAIN SELECT count(bytes_sent) FROM access_log").fetchall())
    assert held < 1_000_000, f"{held:,} bytes of Arrow held"  # (2.5 kB measured; the Arrow rows: 70.7 MB)
    assert plan.count("READ_PARQUET") + plan.count("PARQUET_SCAN") >= 2, plan


@pytest.mark.parametrize("baseline,message", [
    ("nowhere", "--baseline {tmp}/nowhere is not a logpipe dataset (no dataset at {tmp}/nowhere); give a dataset made "
                "by `logpipe ingest LOGS --data DIR`, e.g. of last week's logs"),
    ("incident", "the baseline dataset {incident} has no rows before {week} starts; give an older dataset to "
                 "--baseline, or use --baseline-days N"),
])
def test_baseline_errors(pair, tmp_path, baseline, message):
    incident, week, _ = pair
    given = incident if baseline == "incident" else tmp_path / baseline
    with pytest.raises(DatasetError) as e:
        reports.open_report_db(week, baseline_dir=given, report="anomalies")
    assert str(e.value) == message.format(tmp=tmp_path, incident=incident, week=week)


def test_input_logs_before_no_baseline_row_are_named_so(pair, tmp_path):
    """--input logs that start before the baseline dataset's first record: the error names them (it
    named ./logpipe-data, the dataset --data would have given)."""
    incident, _, _ = pair
    r = CliRunner().invoke(cli, ["report", "anomalies", "--input", str(SCENARIO / "baseline-week.log"),
                                 "--baseline", str(incident)], standalone_mode=False)
    assert isinstance(r.exception, DatasetError)
    assert str(r.exception) == (f"the baseline dataset {incident} has no rows before the --input logs start; give an "
                                "older dataset to --baseline, or use --baseline-days N")


@pytest.fixture(scope="module")
def no_egress(tmp_path_factory):
    """(a dataset of calls to the mesh's services alone, 2024-11-18; a baseline of egress and inbound
    records, 2024-09-03 and 2024-10-07; a baseline of inbound records alone, 2024-09-03) as datasets."""
    tmp = tmp_path_factory.mktemp("no-egress")
    mesh = tmp / "mesh.log"
    mesh.write_text("".join(line for line in (LOGS / "sidecar-outbound-1.22.log").open(encoding="utf-8")
                            if " outbound|" in line and "svc.cluster.local" in line), encoding="utf-8")
    return (write_dataset([mesh], tmp / "mesh"),
            write_dataset([LOGS / "istio-1.5.log", LOGS / "sidecar-inbound-1.22.log"], tmp / "egress"),
            write_dataset([LOGS / "sidecar-inbound-1.22.log"], tmp / "inbound"))


def test_a_window_of_no_egress_is_this_datasets_time_beside_a_baseline_of_egress(no_egress):
    """This dataset holds no egress, the baseline some: the window is this dataset's first to last
    record (it ended at the last egress of both, the baseline's: 2024-11-18 14:02 to 2024-10-07 11:03)."""
    mesh, egress, _ = no_egress
    doc = anomalies(mesh, baseline_dir=egress)
    assert {k: doc[k] for k in ("window", "baseline")} == {
        "window": {"start": "2024-11-18T14:02:13.764Z", "end": "2024-11-18T14:05:27.205Z", "requests": 0},
        "baseline": {"start": "2024-10-07T11:02:27.849Z", "end": "2024-10-07T11:03:12.263Z",
                     "source": "baseline dataset", "requests": 8, "days": 1,
                     "note": "the baseline covers 1 day (UTC dates of egress), under 7: traffic of some days of the week "
                             "only (weekday clients, weekly jobs) looks new; give a baseline of 7 days or more (--since, "
                             "--baseline-days, --baseline DIR)"}}
    r = CliRunner().invoke(cli, ["report", "anomalies", "--data", str(mesh), "--baseline", str(egress), "-o", "text"])
    assert r.exit_code == 0, r.output
    assert "window   2024-11-18 14:02 UTC to 2024-11-18 14:05 UTC: 0 egress requests" in r.stdout


def test_a_note_of_no_egress_counts_this_datasets_records(no_egress):
    """Neither dataset holds egress: the note tells of this dataset's 6 records (it counted the
    baseline's 20 inbound ones too: 26)."""
    mesh, _, inbound = no_egress
    r = CliRunner().invoke(cli, ["report", "anomalies", "--data", str(mesh), "--baseline", str(inbound), "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["window"] == {"start": "2024-11-18T14:02:13.764Z", "end": "2024-11-18T14:05:27.205Z",
                                              "requests": 0}
    assert r.stderr.startswith("logpipe: note: none of the dataset's 6 records is egress (6 to services of the mesh: "
                               "reviews.default.svc.cluster.local, ratings.default.svc.cluster.local), so there is "
                               "no egress to report;"), r.stderr


def test_until_before_this_datasets_first_record_is_an_error(no_egress):
    """With --baseline the window starts at this dataset's first record: an --until before it left a
    window that ended before it started (the bound checked was the baseline's first record)."""
    mesh, egress, _ = no_egress
    r = CliRunner().invoke(cli, ["report", "anomalies", "--data", str(mesh), "--baseline", str(egress),
                                 "--until", "2024-11-01T00:00:00Z"], standalone_mode=False)
    assert isinstance(r.exception, UsageError)
    assert str(r.exception) == ("--until 2024-11-01T00:00Z is before this dataset's first record (2024-11-18T14:02Z), "
                                "where the window starts with --baseline; choose a later time")


def test_an_empty_dataset_against_a_baseline_is_an_empty_report(pair, tmp_path):
    """A dataset of no record (an empty log ingested) beside a baseline dataset: the window holds
    nothing, so the report is empty, as the empty dataset's alone is (the baseline's rows were all
    read as the data, and its last 24 hours judged as the window: 12 findings of last week's)."""
    _, week, _ = pair
    (tmp_path / "empty.log").write_text("")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "empty.log"), "--data", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    args = ["report", "anomalies", "--data", str(tmp_path / "empty"), "-o", "json"]
    alone, beside = CliRunner().invoke(cli, args), CliRunner().invoke(cli, [*args, "--baseline", str(week)])
    assert alone.exit_code == beside.exit_code == 0, beside.output
    doc = json.loads(beside.stdout)
    assert doc["findings"] == [] and doc["window"]["requests"] == 0, doc["window"]
    assert beside.stdout == alone.stdout and "the dataset holds no records" in beside.stderr


def test_since_before_this_datasets_first_record_starts_the_window_there(pair):
    """--since before this dataset's first record (a nightly `--since yesterday` on a log that starts
    after midnight): the window is still this dataset's rows, from that record on, and the baseline
    all of the baseline dataset's rows before it: the report without --since. (The window started at
    --since: the week's last day was read as the window's, 1,044 egress requests with the day's, and
    judged against the six days before it, 22 findings.)"""
    incident, week, _ = pair
    args = ["report", "anomalies", "--data", str(incident), "--baseline", str(week), "-o", "json"]
    r = CliRunner().invoke(cli, [*args, "--since", "2025-03-07T00:00:00Z"])
    assert r.exit_code == 0, r.output
    assert _summary(json.loads(r.stdout)) == (WANT_HEADER, WANT_FINDINGS)
    # (with --until too, the window is this dataset's first record to --until)
    r = CliRunner().invoke(cli, [*args, "--since", "2025-03-07T00:00:00Z", "--until", "2025-03-08T12:00:00Z"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["window"]["start"] == WANT_HEADER["window"]["start"]
    # an --until before that record, with a --since, is the error it is without one
    r = CliRunner().invoke(cli, [*args, "--since", "2025-03-06T00:00:00Z", "--until", "2025-03-07T12:00:00Z"],
                           standalone_mode=False)
    assert isinstance(r.exception, UsageError), r.output
    assert str(r.exception).startswith("--until 2025-03-07T12:00Z is before this dataset's first record (2025-03-08T00:02Z)")
