"""logpipe stream's alerts name a client as the reports do (client_named.sql): its workload where
`--pods FILE` or ztunnel's lines (the dataset's, and those the stream has read) name it, else its IP;
blocked_attempt and authz_denial are per destination and client, as the report's findings, and their
ndjson has the client (`source`) and its IPs (`source_ips`) as a report's finding does. They named
the IP alone, and a workload's pods were an alert each, while the report named `shop/…` once."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa

from conftest import SAMPLES, run_logpipe
from logpipe.alerts import AlertRules
from logpipe.parse import default_parser
from logpipe.pods import pods_from_json
from test_stream import incident_line, stream_cli
from test_ztunnel_egress import VIA_WAYPOINT, WAYPOINT

SLEEP = "default/sleep-7656cf8794-r7zb9"  # (the workload ztunnel's VIA_WAYPOINT names at 10.244.0.24)
# A sidecar's BlackHoleCluster connection (REGISTRY_ONLY) from 10.244.1.12, and ztunnel's line of a
# connection from that IP, which names its pod.
BLOCKED = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
               if "BlackHoleCluster" in x and "198.51.100.77" in x)
ZTUNNEL_12 = VIA_WAYPOINT.replace("10.244.0.24:41162", "10.244.1.12:40000").replace(
    "10:17:45.080629Z", "14:00:00.000000Z").replace("2024-04-12", "2024-11-18").replace(
    "sleep-7656cf8794-r7zb9", "miner-6c9d8f7b5-abcde").replace("src.namespace=default", "src.namespace=shop")
MINER = "shop/miner-6c9d8f7b5-abcde"


def pod(name: str, ip: str, owner: str, ns: str = "shop", start: str = "2024-01-01T00:00:00Z") -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"pod-template-hash": "h1"},
                                        "ownerReferences": [{"kind": "ReplicaSet", "name": f"{owner}-h1", "controller": True}]},
            "spec": {}, "status": {"podIP": ip, "startTime": start}}


def pods_file(tmp_path: Path, *pods: dict) -> Path:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": list(pods)}))
    return path


def ndjson(run) -> list[dict]:
    assert run.returncode == 0, run.stderr.decode()
    return [json.loads(x) for x in run.stdout.decode().splitlines()]


def check(rules: AlertRules, *batches: list[str]) -> list:
    got, n = [], 1
    for lines in batches:
        got += rules.check(default_parser().parse_batch(lines, "<stdin>", n).records)
        n += len(lines)
    return got


def test_the_datasets_ztunnel_lines_name_a_stream_alerts_client(tmp_path):
    """The dataset holds ztunnel's line of the call; the stream reads the waypoint's, which names the
    client by IP alone: its alert names the workload, as `report` does (it said `from 10.244.0.24`)."""
    (tmp_path / "zt.log").write_text(VIA_WAYPOINT + "\n")
    assert run_logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path).returncode == 0
    [alert] = ndjson(stream_cli(tmp_path / "ds", "--alerts", "ndjson", input=(WAYPOINT + "\n").encode()))
    assert alert["kind"] == "new_destination" and alert["message"].endswith(f"from {SLEEP}, GET /get 200")
    assert alert["evidence"]["source_ip"] == "10.244.0.24"  # (the IP as logged, as the egress view's)
    # without it: the IP, as before
    [alert] = ndjson(stream_cli(tmp_path / "new", "--alerts", "ndjson", input=(WAYPOINT + "\n").encode()))
    assert alert["message"].endswith("from 10.244.0.24, GET /get 200")


def test_the_streams_own_ztunnel_lines_name_its_clients_in_that_check_and_later():
    """ztunnel's line read in one check names the client of a later check's rows, whose statements were
    made before anything named a client, and of the rows of its own check, before or after it."""
    rules = AlertRules(window_seconds=300)
    try:
        got = check(rules, [BLOCKED], [ZTUNNEL_12], [BLOCKED.replace("14:04:56", "14:20:56")])
        assert [(a.kind, a.source, a.source_ips) for a in got] == [
            ("blocked_attempt", "10.244.1.12", ["10.244.1.12"]), ("blocked_attempt", MINER, ["10.244.1.12"])]
        assert got[1].message.endswith(f"from {MINER}, TCP UH")
    finally:
        rules.close()
    rules = AlertRules(window_seconds=300)
    try:
        [alert] = check(rules, [BLOCKED, ZTUNNEL_12])
        assert (alert.source, alert.message.endswith(f"from {MINER}, TCP UH")) == (MINER, True)
    finally:
        rules.close()


def test_pods_name_the_clients_and_a_workloads_pods_are_one_alert(tmp_path):
    """`stream --pods FILE`: blocked attempts of two pods of one Deployment within the window are one
    alert, named `shop/miner` (it was one per IP, by IP), the next one counting both pods' with their
    IPs in `source_ips`, as report anomalies' blocked_attempt finding gives them; a denial likewise."""
    other = BLOCKED.replace("10.244.1.12:51022", "10.244.1.13:51022")
    lines = [BLOCKED, other.replace("14:04:56", "14:05:30"), BLOCKED.replace("14:04:56", "14:12:00")]
    denials = [incident_line("deny-httpbin-post", f"15:00:{20 + k:02d}") for k in range(2)]
    denials[1] = denials[1].replace("10.244.1.41:37218", "10.244.1.42:37218")
    pods = pods_file(tmp_path, pod("miner-h1-a", "10.244.1.12", "miner"), pod("miner-h1-b", "10.244.1.13", "miner"),
                     pod("shop-h1-a", "10.244.1.41", "checkout"), pod("shop-h1-b", "10.244.1.42", "checkout"))
    got = ndjson(stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--pods", str(pods),
                            input="".join(x + "\n" for x in lines + denials).encode()))
    blocked = [a for a in got if a["kind"] == "blocked_attempt"]
    assert [(a["source"], a["source_ips"], a["count"]) for a in blocked] == [
        ("shop/miner", ["10.244.1.12"], 1), ("shop/miner", ["10.244.1.12", "10.244.1.13"], 2)]
    assert blocked[0]["message"].endswith("from shop/miner, TCP UH")
    [denied] = [a for a in got if a["kind"] == "authz_denial"]
    assert (denied["source"], denied["source_ips"]) == ("shop/checkout", ["10.244.1.41"])
    assert "from shop/checkout denied by" in denied["message"]
    assert not [a for a in got if a["kind"] not in ("blocked_attempt", "authz_denial") and "source" in a]
    # without --pods: by IP, an alert each
    got = ndjson(stream_cli(tmp_path / "ds2", "--alerts", "ndjson", input="".join(x + "\n" for x in lines).encode()))
    assert [(a["source"], a["source_ips"], a["count"]) for a in got] == [
        ("10.244.1.12", ["10.244.1.12"], 1), ("10.244.1.13", ["10.244.1.13"], 1), ("10.244.1.12", ["10.244.1.12"], 1)]


def test_the_evidence_names_the_input_as_input_not_source(tmp_path):
    """A blocked_attempt's ndjson had two `source`s: the client at the top and the input (`<stdin>`, a
    --source name) in its evidence. The evidence names the input `input`, in every kind of alert; the
    text's `(NAME:N)` still names it."""
    denial = incident_line("deny-httpbin-post", "15:00:20")
    run = stream_cli(tmp_path / "ds", "--alerts", "ndjson", "--source", "pod-a.log",
                     input="".join(x + "\n" for x in (BLOCKED, denial, incident_line('"pastebin.com"'))).encode())
    got = ndjson(run)
    assert {a["kind"] for a in got} == {"blocked_attempt", "authz_denial", "new_destination", "unregistered_egress"}
    assert all(a["evidence"]["input"] == "pod-a.log" and "source" not in a["evidence"] for a in got), got
    [blocked] = [a for a in got if a["kind"] == "blocked_attempt"]
    assert (blocked["source"], blocked["evidence"]["line_number"]) == ("10.244.1.12", 1)
    text = stream_cli(tmp_path / "ds2", "--source", "pod-a.log", input=(BLOCKED + "\n").encode())
    assert "(pod-a.log:1)" in text.stderr.decode(), text.stderr.decode()


def test_the_sightings_kept_are_bounded_the_latest_kept(monkeypatch):
    """ztunnel's sightings (IP -> pod) grew with every pod a stream saw (pod churn: a CronJob's), each
    check with a ztunnel line aggregating them all again. Past SEEN_ROWS those last seen longest ago go
    (to 3/4 of it): a client they named is named by its IP again, the latest ones still name theirs."""
    from logpipe import alerts

    monkeypatch.setattr(alerts, "SEEN_ROWS", 4)
    sightings = [ZTUNNEL_12.replace("10.244.1.12:", f"10.244.1.{100 + k}:").replace("14:00:00.", f"14:00:0{k}.")
                 .replace("abcde", f"pod{k}") for k in range(1, 7)]
    rules = AlertRules(window_seconds=300)
    try:
        check(rules, sightings[:3], sightings[3:])
        assert sorted(rules.seen.column("ip").to_pylist()) == ["10.244.1.104", "10.244.1.105", "10.244.1.106"]
        got = check(rules, [BLOCKED.replace("10.244.1.12:", f"10.244.1.{ip}:") for ip in (101, 106)])
        assert [a.source for a in got] == ["10.244.1.101", "shop/miner-6c9d8f7b5-pod6"]
    finally:
        rules.close()
    # and those the dataset's lines give at the start
    seen = pa.Table.from_pylist([{"ip": f"10.0.0.{k}", "workload": f"a/p{k}", "first_seen": dt.datetime(2025, 1, 1, k, tzinfo=dt.timezone.utc),
                                  "last_seen": dt.datetime(2025, 1, 1, k, tzinfo=dt.timezone.utc)} for k in range(6)])
    assert AlertRules(seen=seen).seen.column("workload").to_pylist() == ["a/p5", "a/p4", "a/p3"]


def test_pods_name_a_client_before_ztunnel_does():
    """As in the reports (reports.attach_sources): a pod that held the IP names it, ztunnel's line only
    where no pod did."""
    pods = pods_from_json({"kind": "List", "items": [pod("miner-h1-a", "10.244.1.12", "miner")]})
    rules = AlertRules(window_seconds=300, pods=pods)
    try:
        [alert] = check(rules, [ZTUNNEL_12, BLOCKED])
        assert alert.source == "shop/miner"
    finally:
        rules.close()


def test_a_pods_file_that_is_no_pod_list_or_is_given_with_quiet_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("[]")
    run = run_logpipe("stream", "--data", "ds", "--pods", "bad.json", input="", cwd=tmp_path)
    assert run.returncode == 1 and run.stderr.strip().splitlines() == [
        "logpipe: error: the pods file is not a Kubernetes pod list; give the output of `kubectl get pods -A -o json`"]
    assert not (tmp_path / "ds").exists()  # (refused before the dataset is made)
    run = run_logpipe("stream", "--data", "ds", "--pods", "bad.json", "-q", input="", cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [
        "logpipe: error: --quiet turns the alerts off, so --pods would name no alert's client; give one of them"]


def test_a_client_named_after_its_first_alert_is_not_alerted_again_in_the_window():
    """ztunnel's line of a connection comes when it closes, after the sidecar's or waypoint's lines of
    its requests: a new pod's first blocked attempt is alerted by its IP. Its next attempt 60 s later,
    once ztunnel's line named it, is the same client's within the window: counted by the next alert,
    not a second alert (it was one, keyed by the name instead of the IP); past the window, one alert
    that counts both."""
    rules = AlertRules(window_seconds=300)
    try:
        got = check(rules, [BLOCKED], [ZTUNNEL_12], [BLOCKED.replace("14:04:56", "14:05:56")],
                    [BLOCKED.replace("14:04:56", "14:20:56")])
        assert [(a.kind, a.source, a.count) for a in got] == [
            ("blocked_attempt", "10.244.1.12", 1), ("blocked_attempt", MINER, 2)]
        assert "2 attempts blocked by BlackHoleCluster since its last alert (2024-11-18T14:04:56.898Z)" in got[1].message
    finally:
        rules.close()


def test_a_stream_reads_only_the_datasets_latest_sightings_at_its_start(tmp_path, monkeypatch):
    """At its start a stream read every sighting of the dataset's ztunnel lines, and cut them to SEEN_ROWS
    after (memory unbounded once, on a big dataset): it reads the latest SEEN_ROWS + 1 alone (DuckDB's
    top-N) and keeps of them what it kept of all, those last seen latest."""
    from logpipe import alerts

    monkeypatch.setattr(alerts, "SEEN_ROWS", 4)
    sightings = [ZTUNNEL_12.replace("10.244.1.12:", f"10.244.1.{100 + k}:").replace("14:00:00.", f"14:00:0{k}.")
                 .replace("abcde", f"pod{k}") for k in (3, 1, 6, 2, 5, 4)]
    (tmp_path / "zt.log").write_text("".join(x + "\n" for x in sightings))
    assert run_logpipe("ingest", "zt.log", "--data", "ds", cwd=tmp_path).returncode == 0
    from logpipe import queries

    read, real = [], queries.run_query

    def counted(con, sql, params=None, given=None):
        got = real(con, sql, params, given)
        read.append(got.num_rows)
        return got

    monkeypatch.setattr(queries, "run_query", counted)
    _, _, seen = alerts.seen_in_dataset(tmp_path / "ds")
    assert seen.column("ip").to_pylist() == ["10.244.1.106", "10.244.1.105", "10.244.1.104"]
    assert read[-1] == 5  # (the sightings read: SEEN_ROWS + 1 of the 6)
