"""Log collectors' JSON records of a line, as their agents write them to files and object stores
(an archive of waypoint logs shipped by Fluent Bit, Fluentd, Vector or Filebeat): the line each
holds is read as the line alone is, in any layout, Istio's JSON encoding or ztunnel's; the
collector's Kubernetes metadata names the pod and container, its time is ``received_at``; a
reject keeps the record as written (``envelopes.Envelopes.envelope``)."""
from __future__ import annotations

import datetime as dt
import functools
import json

import pytest
from conftest import SAMPLES, parse_text, read_lines

from logpipe.parse import Parser

UTC = dt.timezone.utc
STAMP = "2025-01-30T10:53:24.326000321Z"
POD, CONTAINER = "waypoint-7d9f8b6c4-x2k8p", "istio-proxy"


def fluent_bit(line: str) -> dict:
    return {"time": STAMP, "stream": "stdout", "_p": "F", "log": line,
            "kubernetes": {"pod_name": POD, "namespace_name": "istio-egress", "container_name": CONTAINER,
                           "labels": {"app": "waypoint"}}}


def fluentd(line: str) -> dict:
    return {"log": line + "\n", "stream": "stdout", "docker": {"container_id": "3f9a"}, "time": STAMP,
            "kubernetes": {"container_name": CONTAINER, "namespace_name": "istio-egress", "pod_name": POD}}


def vector(line: str) -> dict:
    return {"file": "/var/log/pods/x/istio-proxy/0.log", "message": line, "source_type": "kubernetes_logs",
            "stream": "stdout", "timestamp": STAMP,
            "kubernetes": {"container_name": CONTAINER, "pod_name": POD, "pod_namespace": "istio-egress"}}


def filebeat(line: str) -> dict:
    return {"@timestamp": STAMP, "message": line, "input": {"type": "container"},
            "kubernetes": {"pod": {"name": POD}, "container": {"name": CONTAINER}, "namespace": "istio-egress"}}


def logcli(line: str) -> dict:
    """``logcli query -o jsonl``: the stream's labels, the line, its time in the local zone."""
    return {"labels": {"container": CONTAINER, "job": "istio-egress/waypoint", "namespace": "istio-egress", "pod": POD},
            "line": line, "timestamp": "2025-01-30T11:53:24.326000321+01:00"}


def stern(line: str) -> dict:
    """``stern -o json --timestamps``: the time is the message's start, as kubectl's --timestamps."""
    return {"message": f"{STAMP} {line}", "nodeName": "node-1", "namespace": "istio-egress", "podName": POD,
            "containerName": CONTAINER}


def cloud_logging(line: str) -> dict:
    """A Google Cloud Logging LogEntry of a GKE container's line, as a sink writes it to Cloud Storage."""
    return {"insertId": "8wz2fsf6x1ad3tq1", "textPayload": line, "logName": "projects/p/logs/stdout",
            "receiveTimestamp": "2025-01-30T10:53:26.101838451Z", "severity": "INFO", "timestamp": STAMP,
            "labels": {"k8s-pod/app": "waypoint", "compute.googleapis.com/resource_name": "gke-node-1"},
            "resource": {"type": "k8s_container", "labels": {
                "cluster_name": "prod", "container_name": CONTAINER, "location": "europe-west1",
                "namespace_name": "istio-egress", "pod_name": POD, "project_id": "p"}}}


def azure_monitor(line: str) -> dict:
    """A ContainerLogV2 row (AKS's Container insights), as ``az monitor log-analytics query`` or a
    data export gives it: the time in 100 ns ticks."""
    return {"TenantId": "0c3f6a8e", "TimeGenerated": "2025-01-30T10:53:24.3260003Z", "Computer": "aks-system-1",
            "ContainerId": "5b2e0c", "ContainerName": CONTAINER, "PodName": POD, "PodNamespace": "istio-egress",
            "LogMessage": line, "LogSource": "stdout", "LogLevel": "INFO", "Type": "ContainerLogV2"}


POD_LOG_FILE = f"/var/log/pods/istio-egress_{POD}_6c7b2f0e-1d2c-4b7a-9f3e-0a1b2c3d4e5f/{CONTAINER}/0.log"


def splunk(line: str) -> dict:
    """A Splunk search's export (``output_mode=json``) of an event the Splunk OpenTelemetry Collector
    read from the node's file: ``_raw``, ``_time`` with its offset, the file as ``source``."""
    return {"preview": False, "offset": 0, "result": {
        "_bkt": "k8s~12~7C1B", "_cd": "12:884213", "_indextime": "1738234405", "_raw": line,
        "_serial": "0", "_si": ["idx-1", "k8s"], "_sourcetype": "kube:container:istio-proxy",
        "_time": "2025-01-30T10:53:24.326+00:00", "host": "node-b", "index": "k8s", "linecount": "1",
        "source": POD_LOG_FILE, "sourcetype": "kube:container:istio-proxy", "splunk_server": "idx-1"}}


def otlp(line: str) -> dict:
    """An OpenTelemetry log record of the line (Istio's envoyOtelAls provider: the line as its body,
    with its newline) in the OTLP/JSON request the collector's file exporter writes, as
    ``logpipe/otlp.py`` reads it out: its resource's attributes the collector's k8sattributes
    processor's, the time it observed the record in nanoseconds."""
    from logpipe.otlp import records

    kv = lambda k, v: {"key": k, "value": {"stringValue": v}}  # noqa: E731
    request = {"resourceLogs": [{
        "resource": {"attributes": [kv("k8s.namespace.name", "istio-egress"), kv("k8s.pod.name", POD),
                                    kv("k8s.container.name", CONTAINER)]},
        "scopeLogs": [{"scope": {}, "logRecords": [{
            "timeUnixNano": "1738234404325000000", "observedTimeUnixNano": "1738234404326000321",
            "body": {"stringValue": line + "\n"}, "attributes": [{"key": "log_name", "value": {"stringValue": "otel"}}],
            "traceId": "", "spanId": ""}]}]}]}
    (record,) = records(request)
    return record


COLLECTORS = {"fluent-bit": fluent_bit, "fluentd": fluentd, "vector": vector, "filebeat": filebeat,
              "logcli": logcli, "stern": stern, "cloud-logging": cloud_logging, "azure-monitor": azure_monitor,
              "splunk": splunk, "otlp": otlp}


@functools.lru_cache(maxsize=None)
def _bare(sample: str) -> tuple[tuple[dict, ...], tuple[dict, ...], int]:
    """A sample's records, rejects and blank lines, parsed as it is: once for every collector."""
    records, rejects, batch = parse_text(read_lines(SAMPLES / sample))
    return tuple(records), tuple(rejects), batch.blank


@pytest.mark.parametrize("collector", COLLECTORS)
@pytest.mark.parametrize("sample", ["waypoint-egress-1.23.log", "tcp-and-ipv6.log", "istio-json-1.24.log",
                                    "ztunnel.log", "ztunnel-json.log", "noise-mixed.log", "malformed.log"])
def test_a_sample_in_a_collector_s_records_reads_as_without_them(sample, collector):
    """Every layout, JSON, ztunnel, noise and malformed line in a collector's record: the same
    records (plus the pod, container and time the record names) and the same rejects (their raw
    the record as written), the blank lines blank."""
    lines, (bare, bare_rejects, bare_blank) = read_lines(SAMPLES / sample), _bare(sample)
    bare = [dict(r) for r in bare]  # (popped below: the cached ones stay whole)
    wrapped = [json.dumps(COLLECTORS[collector](x), separators=(",", ":")) for x in lines]
    records, rejects, batch = parse_text(wrapped)
    assert batch.blank == bare_blank
    for r in records:
        assert (r.pop("pod"), r.pop("container")) == (POD, CONTAINER)
        assert r.pop("received_at") == dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    for r in bare:
        r.pop("pod"), r.pop("container"), r.pop("received_at")
    assert records == bare
    assert [(r["line_number"], r["class"], r["reason"], r["column"]) for r in rejects] == \
        [(r["line_number"], r["class"], r["reason"], r["column"]) for r in bare_rejects]
    assert all(r["raw"] == wrapped[r["line_number"] - 1] for r in rejects)


def test_the_sample_archive_of_collectors_records():
    """sample_logs/collector-records.log: Fluent Bit, Fluentd, Vector and Filebeat records of a
    waypoint's, a sidecar's, ztunnel's and a gateway's lines (access lines, Istio JSON as text,
    ztunnel, an agent line, an empty line), what ``logcli query -o jsonl`` and ``stern -o json
    --timestamps`` print, Cloud Logging entries of a text line and of a JSON line, AKS's
    ContainerLogV2 rows of both, and Splunk events (named by their file; by their fields)."""
    records, rejects, batch = parse_text(read_lines(SAMPLES / "collector-records.log"))
    got = [(r["line_number"], r["log_format"], r["pod"]) for r in records]
    assert got == [(2, "istio_1_9", POD), (3, "istio_1_9", POD), (4, "istio_json", POD),
                   (6, "istio_1_9", "sleep-5b7d8c9f6-h7k2p"), (7, "istio_1_9", "sleep-5b7d8c9f6-h7k2p"),
                   (8, "ztunnel", "ztunnel-4xk9q"),
                   (9, "ztunnel", "ztunnel-4xk9q"), (10, "istio_1_9", "egress-gateway-6f7d9c-q2w3e"),
                   (11, "istio_json", "egress-gateway-6f7d9c-q2w3e"), (12, "istio_1_9", "waypoint-7d9f8b6c4-m4n5q"),
                   (13, "istio_1_9", "sleep-5b7d8c9f6-h7k2p"), (14, "istio_1_9", POD),
                   (15, "istio_json", "egress-gateway-6f7d9c-q2w3e"), (16, "istio_1_9", "sleep-6c8f9d7b5-r4t6y"),
                   (17, "istio_json", "aks-istio-egressgateway-external-7f9c8d6b4-z8x7w"), (18, "istio_1_9", POD),
                   (19, "istio_json", "egress-gateway-6f7d9c-q2w3e")]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(1, "noise")]
    assert batch.blank == 1 and all(r["received_at"] is not None for r in records)


@pytest.mark.parametrize("by", ["polars", "python"])
def test_what_logcli_and_stern_print_without_labels_or_times(by, monkeypatch):
    """``logcli query -o jsonl --no-labels`` (a line and its time, nothing else), ``stern -o json``
    without --timestamps (no time), ``logcli -o jsonl`` of OTLP labels, Splunk events named by their
    file or by their fields: each is the line it holds,
    with what it names; read alike by polars (a batch, every one of them) and by json.loads
    (``envelope``)."""
    from logpipe.envelopes import Envelopes

    if by == "python":
        monkeypatch.setattr(Envelopes, "envelopes", lambda self, df: (None, df))
    else:  # (polars reads every one of them: none is left to json.loads)
        monkeypatch.setattr(Envelopes, "envelope", lambda self, obj: pytest.fail(f"polars left {obj}"))
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    objs = [{"line": line, "timestamp": "2025-01-30T10:53:24.326000321Z"},
            {"message": line, "nodeName": "n", "namespace": "istio-egress", "podName": POD, "containerName": CONTAINER},
            {"labels": {"k8s_container_name": CONTAINER, "k8s_pod_name": POD, "service_name": "waypoint"}, "line": line,
             "timestamp": "2025-01-30T10:53:24.326000321Z"},
            {"labels": {}, "line": line, "timestamp": "2025-01-30T10:53:24.326000321Z"},
            {"preview": False, "result": {"_raw": line, "_time": "2025-01-30T11:53:24.326+01:00", "source": POD_LOG_FILE}},
            {"result": {"_raw": line, "k8s.pod.name": POD, "k8s.container.name": CONTAINER, "source": "/var/log/x.log"}}]
    records, rejects, _ = parse_text([json.dumps(o, separators=(",", ":")) for o in objs])
    assert rejects == []
    stamp = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    assert [(r["pod"], r["container"], r["received_at"]) for r in records] == [
        (None, None, stamp), (POD, CONTAINER, None), (POD, CONTAINER, stamp), (None, None, stamp),
        (POD, CONTAINER, stamp), (POD, CONTAINER, None)]
    assert all(r["authority"] == records[0]["authority"] for r in records)


@pytest.mark.parametrize("collector,key", [(cloud_logging, "textPayload"), (azure_monitor, "LogMessage")],
                         ids=["cloud-logging", "azure-monitor"])
def test_an_entry_of_a_json_line_read_into_an_object_reads_as_the_line(collector, key):
    """GKE's agent reads a JSON line (Istio's JSON encoding) into the entry's ``jsonPayload``, AKS's
    into ``LogMessage``: the record is the line's, with the entry's pod, container and time."""
    json_line = read_lines(SAMPLES / "istio-json-1.24.log")[0]
    entry = {k: v for k, v in collector("").items() if k != key}
    into = "jsonPayload" if key == "textPayload" else key
    records, rejects, _ = parse_text([json.dumps({**entry, into: json.loads(json_line)}, separators=(",", ":"))])
    assert rejects == [] and (records[0].pop("pod"), records[0].pop("container")) == (POD, CONTAINER)
    assert records[0].pop("received_at") == dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    alone = parse_text([json_line])[0][0]
    alone.pop("pod"), alone.pop("container"), alone.pop("received_at")
    assert records[0] == alone


@pytest.mark.parametrize("bad", [[700], [3, 1500], list(range(0, 2000, 97))], ids=["one", "two", "many"])
def test_a_record_polars_cannot_decode_leaves_only_its_neighbours_to_json_loads(bad, monkeypatch):
    """A record cut short (or a key of another shape) fails polars' decode of its whole batch: only
    the part around it, ~64 lines, goes to ``envelope`` (json.loads), the rest stays polars'; with
    bad records everywhere the batch goes to ``envelope``. The records and rejects are the same."""
    from logpipe.envelopes import Envelopes

    lines = read_lines(SAMPLES / "waypoint-egress-1.23.log")
    records = [json.dumps(fluent_bit(lines[i % len(lines)]), separators=(",", ":")) for i in range(2000)]
    for i in bad:
        records[i] = records[i][:90] if i % 2 else json.dumps({"log": {"not": "a text"}, "stream": "stdout"})
    asked = []
    real = Envelopes.envelope
    monkeypatch.setattr(Envelopes, "envelope", lambda self, obj: asked.append(1) or real(self, obj))
    got, by_json_loads = parse_text(records), len(asked)
    monkeypatch.setattr(Envelopes, "envelopes", lambda self, df: (None, df))
    want = parse_text(records)
    assert got[0] == want[0] and got[1] == want[1] and len(got[0]) == 2000 - len(bad)
    assert by_json_loads <= (2000 if len(bad) > 8 else 70 * len(bad))


def test_a_record_s_time_that_is_no_rfc3339_time_is_left_out():
    """Fluent Bit's epoch ``date`` or a time in another form: no received_at, and no reject."""
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    for obj in ({"date": 1738234404.326, "log": line}, {**vector(line), "timestamp": "30/Jan/2025:10:53:24 +0000"}):
        records, rejects, _ = parse_text([json.dumps(obj)])
        assert rejects == [] and records[0]["received_at"] is None


def test_objects_that_are_no_record_of_a_line_stay_what_they_were():
    """An access record with a collector's keys merged in (Fluent Bit's Merge_Log, without the
    log it was read from) is read as the access record, with the pod, container and time they name;
    an application's JSON log line (``message`` but no collector's key) is noise; a JSON format of
    the operator's own whose keys look like a collector's is read as that format."""
    json_line = read_lines(SAMPLES / "istio-json-1.24.log")[0]
    merged = {**json.loads(json_line), "kubernetes": {"pod_name": POD, "container_name": CONTAINER},
              "stream": "stdout", "time": STAMP}
    records, rejects, _ = parse_text([json.dumps(merged)])
    assert rejects == [] and records[0]["log_format"] == "istio_json"
    assert (records[0]["pod"], records[0]["container"]) == (POD, CONTAINER)
    assert records[0]["received_at"] == dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    records[0].pop("pod"), records[0].pop("container"), records[0].pop("received_at")
    alone = parse_text([json_line])[0][0]
    alone.pop("pod"), alone.pop("container"), alone.pop("received_at")
    assert records[0] == alone
    _, rejects, _ = parse_text(['{"level":"info","time":"2025-01-30T10:53:24Z","message":"started"}'])
    assert rejects[0]["class"] == "noise"
    custom = Parser(custom='json:{"@timestamp":"%START_TIME%","message":"%REQ(:PATH)%","code":"%RESPONSE_CODE%"}')
    batch = custom.parse_batch(['{"@timestamp":"2025-01-30T10:53:24.085Z","message":"/get","code":200}'])
    assert batch.rejected == 0 and batch.records.column("path").to_pylist() == ["/get"]


def test_records_read_by_polars_as_json_loads_reads_them(monkeypatch):
    """``Envelopes.envelopes`` (polars' json_decode of a batch) claims only records ``envelope``
    (json.loads, a line at a time) does, with the same line, pod, container and time: objects of
    collectors' keys in every combination, of other types too (numbers, empty names, a nested
    object where a text was), each alone; and all in one batch parse to the same rows."""
    import random

    from logpipe.envelopes import Envelopes

    rng = random.Random(7)
    inner = read_lines(SAMPLES / "waypoint-egress-1.23.log")[:3] + read_lines(SAMPLES / "istio-json-1.24.log")[:1] + \
        ["", "started", "x\n"]
    k8s = [None, {"pod_name": POD, "container_name": CONTAINER}, {"pod_name": "", "pod": {"name": "p2"}},
           {"pod": {"name": POD}, "container": {"name": CONTAINER}}, {"pod_name": 5}, {}]
    labels = [None, {"pod": POD, "container": CONTAINER, "namespace": "egress"}, {"k8s_pod_name": "p3"}, {},
              {"container": "", "k8s_container_name": CONTAINER}, {"pod": 7}]
    times = [None, STAMP, "2025-01-30T10:53:24Z", "30/Jan/2025", 17, ""]
    lines = []
    for _ in range(250):
        obj = {}
        for key, values in (("log", [None, *inner, 5]), ("message", [None, *inner]), ("kubernetes", k8s),
                            ("stream", [None, "stdout", "stderr", "other"]), ("_p", [None, "F", "X"]),
                            ("source_type", [None, "kubernetes_logs"]), ("date", [None, 1738234404.3]),
                            ("time", times), ("timestamp", times), ("@timestamp", times),
                            ("line", [None, *inner, 5]), ("labels", labels), ("podName", [None, POD, "", 3]),
                            ("containerName", [None, CONTAINER]), ("textPayload", [None, *inner]),
                            ("jsonPayload", [None, json.loads(inner[3]), {"a": 1}]),
                            ("resource", [None, {"type": "k8s_container", "labels": {"pod_name": POD}}, {"labels": {}},
                                          {"labels": {"pod_name": 3, "container_name": CONTAINER}},
                                          {"k8s.pod.name": POD, "k8s.container.name": CONTAINER}]),
                            # (rarer: a LogMessage polars cannot decode as a text leaves its record to json.loads)
                            ("LogMessage", [None] * 8 + [*inner, json.loads(inner[3]), 4]),
                            ("PodName", [None] * 4 + [POD, "", 2]), ("ContainerName", [None] * 4 + [CONTAINER, 6]),
                            ("TimeGenerated", [None] * 8 + times),
                            ("result", [None] * 6 + [
                                {"_raw": rng.choice(inner), "_time": rng.choice(times), "source": POD_LOG_FILE},
                                {"_raw": rng.choice(inner), "k8s.pod.name": POD, "k8s.container.name": CONTAINER,
                                 "source": "/var/log/other.log"},
                                {"_raw": rng.choice(inner), "pod": POD, "source": 3}, {"_raw": 4}, {}]),
                            # (an OpenTelemetry record, as logpipe/otlp.py gives it: its resource above)
                            ("body", [None] * 6 + [{"stringValue": rng.choice(inner)}, {"stringValue": 5},
                                                   {"kvlistValue": {"values": []}}, "x"]),
                            ("attributes", [None] * 6 + [{"k8s.pod.name": POD, "k8s.container.name": CONTAINER},
                                                         {"k8s.container.name": 3}, {}]),
                            # (the node's file the line was read from: Vector's file, Filebeat's log.file.path)
                            ("file", [None] * 4 + [POD_LOG_FILE, "/var/log/other.log", 3, {"path": POD_LOG_FILE}])):
            value = rng.choice(values)
            if value is not None or rng.random() < 0.1:
                obj[key] = value
        lines.append(json.dumps(obj, separators=(",", ":")))
    # each record alone: what polars claims, json.loads claims alike (what it leaves, json.loads reads)
    import polars as pl

    envelopes, claimed = Parser().envelopes, 0
    for n, line in enumerate(lines, 1):
        df = pl.DataFrame([(n, line, line, None, None, None)], orient="row", schema={
            "line_number": pl.Int64, "raw": pl.String, "body": pl.String, "pod": pl.String, "container": pl.String,
            "received_at": pl.String})
        held, _ = envelopes.envelopes(df)
        if held is not None:
            claimed += 1
            assert held.row(0)[2:] == envelopes.envelope(json.loads(line)), line
    assert claimed > 15, claimed
    # all in one batch, end to end: the same records, rejects and blank lines
    polars_read = parse_text(lines)
    monkeypatch.setattr(Envelopes, "envelopes", lambda self, df: (None, df))
    python_read = parse_text(lines)
    assert polars_read[0] == python_read[0] and polars_read[1] == python_read[1]
    assert polars_read[2].blank == python_read[2].blank and len(python_read[0]) > 20


def test_a_small_batch_without_a_docker_entry_is_not_cut_for_docker_s_fields(monkeypatch):
    """A stream's micro-batch (below SPLIT_MIN_ROWS: polars' search of the lines, not cut.c's) of JSON
    lines none of which starts as docker's json-file entry is not cut for docker's keys:
    ``runtimes.unwrap_docker`` returns them as they are when no line starts as one, as it did when cut.c's
    search of a large batch found none (None). A batch with entries is cut, and reads them."""
    from logpipe import runtimes

    istio = read_lines(SAMPLES / "istio-json-1.24.log")[:3]
    cut = []
    real = runtimes._docker_fields
    monkeypatch.setattr(runtimes, "_docker_fields", lambda *a: cut.append(1) or real(*a))
    records, rejects, _ = parse_text(istio)
    assert [r["log_format"] for r in records] == ["istio_json"] * 3 and not rejects and cut == []
    entries = [x for x in read_lines(SAMPLES / "docker-json-file.log") if x.startswith('{"log":')]
    records, rejects, _ = parse_text(entries)
    assert cut == [1] and {r["log_format"] for r in records} == {"istio_1_9", "istio_json"}  # (the lines they hold)
    assert all(r["received_at"] is not None for r in records) and {r["class"] for r in rejects} == {"noise"}


@pytest.mark.parametrize("compact", [True, False])
def test_a_record_that_names_no_pod_names_the_node_file_it_was_read_from(compact):
    """A record with no Kubernetes metadata that names the node's container log file its line was
    read from (Vector's ``file``: its file source's, or kubernetes_logs' for a pod gone before Vector
    read its metadata; Filebeat's ``log.file.path`` without add_kubernetes_metadata) has the pod and
    container that file is named after, as a Splunk event's ``source`` does (they were null); its
    own metadata wins where it has it. Compact (polars' pass) and with spaces (json.loads)."""
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    pods = "/var/log/pods/istio-egress_wp-1_6c7b2f0e-1d2c-4b7a-9f3e-0a1b2c3d4e5f/istio-proxy/0.log"
    containers = "/var/log/containers/wp-2_istio-egress_istio-proxy-" + "3f9a" * 16 + ".log"
    records = [{"file": pods, "host": "node-1", "message": line, "source_type": "file", "timestamp": STAMP},
               {**vector(line), "file": pods, "kubernetes": {"pod_name": POD, "container_name": CONTAINER}},
               {"@timestamp": STAMP, "message": line, "input": {"type": "container"}, "stream": "stdout",
                "log": {"offset": 2048, "file": {"path": containers}}},
               {**filebeat(line), "log": {"offset": 2048, "file": {"path": containers}}}]
    got, rejects, _ = parse_text([json.dumps(r, separators=(",", ":") if compact else None) for r in records])
    assert rejects == []
    when = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    assert [(r["pod"], r["container"], r["received_at"]) for r in got] == [
        ("wp-1", CONTAINER, when), (POD, CONTAINER, when), ("wp-2", CONTAINER, when), (POD, CONTAINER, when)]


def test_elasticsearch_hits_read_as_the_document_they_hold():
    """An Elasticsearch index's hits as elasticdump writes them, one a line (``{"_index":…,"_id":…,
    "_source":{…}}``): the document under ``_source`` is read as it would be alone: a collector's record
    of a line (Filebeat's, Fluent Bit's), or an access record stored as an object (Istio's JSON keys
    beside Fluent Bit's kubernetes metadata: Merge_Log) with the pod, container and time it names (each
    was a malformed reject, "JSON object is not an access-log record (keys: _index, …)"). A reject keeps
    the hit as written; a document of none of these stays a reject."""
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    access = json.loads(read_lines(SAMPLES / "istio-json-1.24.log")[0])
    agent = "2025-01-30T10:53:14.918572Z\tinfo\txdsproxy\tconnected to upstream XDS server"
    hit = lambda doc: json.dumps({"_index": "filebeat-8.15.0-2025.01.30", "_id": "kx3QtpQBz", "_score": 1,  # noqa: E731
                                  "_source": doc}, separators=(",", ":"))
    merged = {**access, "time": STAMP, "stream": "stdout", "kubernetes": fluent_bit("")["kubernetes"]}
    lines = [hit(filebeat(line)), hit(fluent_bit(line)), hit(merged), hit(fluent_bit(agent)), hit({"user": "x"})]
    records, rejects, _ = parse_text(lines)
    when = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    assert [(r["line_number"], r["log_format"], r["pod"], r["container"], r["received_at"]) for r in records] == [
        (1, "istio_1_9", POD, CONTAINER, when), (2, "istio_1_9", POD, CONTAINER, when),
        (3, "istio_json", POD, CONTAINER, when)]
    assert [(r["line_number"], r["class"], r["raw"]) for r in rejects] == [(4, "noise", lines[3]), (5, "malformed", lines[4])]
    bare, _, _ = parse_text([line, line, json.dumps(access)])
    drop = ("pod", "container", "received_at", "line_number")
    assert [{k: v for k, v in r.items() if k not in drop} for r in records] == \
        [{k: v for k, v in r.items() if k not in drop} for r in bare]


FLUENT_TAG = f"kube.var.log.containers.{POD}_istio-egress_{CONTAINER}-{'3f9a' * 16}.log"


def fluent_bit_file(record: dict) -> str:
    """A line of Fluent Bit's ``file`` output in its default format (out_file: plugins/out_file/file.c,
    ``"%s: [%f, %s]"``): the tag, the event's time in seconds since the epoch, the record as JSON."""
    return f"{FLUENT_TAG}: [1738234404.326000, {json.dumps(record, separators=(',', ':'))}]"


def fluentd_file(record: dict) -> str:
    """A line of Fluentd's ``file`` output in its default format (the out_file formatter): the event's
    time (ISO 8601, in the local zone), the tag, the record as JSON, tab-separated."""
    return f"2025-01-30T11:53:24+01:00\t{FLUENT_TAG}\t{json.dumps(record, separators=(',', ':'))}"


def fluentd_stdout(record: dict) -> str:
    """A line of Fluentd's ``stdout`` output (out_stdout, its stdout formatter): the event's time
    (``%Y-%m-%d %H:%M:%S.%N %z``, the local zone), the tag and ": ", the record as JSON."""
    return f"2025-01-30 11:53:24.326000321 +0100 {FLUENT_TAG}: {json.dumps(record, separators=(',', ':'))}"


@pytest.mark.parametrize("output", [fluent_bit_file, fluentd_file, fluentd_stdout],
                         ids=["fluent-bit", "fluentd", "fluentd-stdout"])
@pytest.mark.parametrize("sample", ["waypoint-egress-1.23.log", "istio-json-1.24.log", "ztunnel.log",
                                    "noise-mixed.log", "malformed.log"])
def test_fluent_bit_s_and_fluentd_s_file_outputs_read_as_the_records_they_hold(sample, output):
    """Each line of Fluent Bit's or Fluentd's ``file`` output (the default out_file format) is the
    record it holds, read as that record alone is (the same rows, the same rejects, their raw the
    line as written; a record of an agent's line is noise, an empty line blank); each was a noise
    reject ("not an access line")."""
    lines = read_lines(SAMPLES / sample)
    make = fluent_bit if output is fluent_bit_file else fluentd
    bare = parse_text([json.dumps(make(x), separators=(",", ":")) for x in lines])
    written = [output(make(x)) for x in lines]
    records, rejects, batch = parse_text(written)
    assert records == bare[0] and batch.blank == bare[2].blank and len(records) + len(rejects) + batch.blank == len(lines)
    assert [(r["line_number"], r["class"], r["reason"], r["column"]) for r in rejects] == \
        [(r["line_number"], r["class"], r["reason"], r["column"]) for r in bare[1]]
    assert all(r["raw"] == written[r["line_number"] - 1] for r in rejects)


def test_the_file_outputs_times_are_received_at_where_a_record_s_would_be():
    """The record's own time first; where it has none (Fluentd's parsers take the time key out of the
    record by default), Fluentd's event time (ISO 8601, local: read in UTC) is received_at, as a
    record's text ``time`` is; Fluent Bit's (seconds since the epoch) is not, as a record's epoch
    ``date`` is not. A Fluent Bit event in a batch of other lines too (another prefix's, none) loses
    its ``]`` as well; a line of neither output's shape (no record after the prefix) stays noise."""
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    timeless = {k: v for k, v in fluentd(line).items() if k != "time"}
    lines = [fluentd_file(fluentd(line)), fluentd_file(timeless), fluent_bit_file(timeless),
             fluent_bit_file(fluent_bit(line)), f"{STAMP} stdout F {line}", line,
             f"{FLUENT_TAG}: [1738234404.326000, \"{line}\"]", f"2025-01-30T11:53:24+01:00\t{FLUENT_TAG}\t{line}"]
    records, rejects, _ = parse_text(lines)
    when = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    assert [(r["line_number"], r["pod"], r["received_at"]) for r in records] == [
        (1, POD, when), (2, POD, when.replace(microsecond=0)), (3, POD, None), (4, POD, when), (5, None, when),
        (6, None, None)]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(7, "noise"), (8, "noise")]
    alone = parse_text([line])[0][0]
    drop = ("pod", "container", "received_at", "line_number")
    assert all({k: v for k, v in r.items() if k not in drop} == {k: v for k, v in alone.items() if k not in drop}
               for r in records)


def test_fluentd_s_stdout_time_is_no_received_at_and_fluent_bit_s_stdout_is_not_read():
    """Fluentd's stdout output: its time (no ISO 8601 time) is not received_at, the record's is; v0.12's
    time without a fraction reads alike; only a record after the tag. Fluent Bit's stdout output in its
    default format prints the record's texts unescaped (msgpack-c's msgpack_object_print), its line's own
    quotes in them: noise that says so and names json_lines (it was malformed: "[0]" starts as an access
    line does), v2.1's [[TIME, METADATA], RECORD] and older versions' [TIME, RECORD] alike; its
    json_lines format's lines are records."""
    from logpipe.exact import NOISE_RULES

    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
    timeless = {k: v for k, v in fluentd(line).items() if k != "time"}
    printed = ", ".join(f'"{k}"=>"{v}"' for k, v in fluent_bit(line).items() if isinstance(v, str))
    lines = [fluentd_stdout(fluentd(line)), fluentd_stdout(timeless),
             f"2015-05-02 12:12:17 +0900 {FLUENT_TAG}: {json.dumps(timeless)}", f"2015-05-02 12:12:17 +0900 {FLUENT_TAG}: {line}",
             f"[0] {FLUENT_TAG}: [[1738234404.326000321, {{}}], {{{printed}}}]",
             json.dumps({"date": 1738234404.326, **fluent_bit(line)}),
             f"[1] {FLUENT_TAG}: [1738234404.326000321, {{{printed}}}]", "[12] cpu.0: [1475898721, {\"cpu_p\"=>0.500000}]"]
    records, rejects, _ = parse_text(lines)
    when = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    assert [(r["line_number"], r["pod"], r["received_at"]) for r in records] == [
        (1, POD, when), (2, POD, None), (3, POD, None), (6, POD, when)]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(4, "noise"), (5, "noise"), (7, "noise"), (8, "noise")]
    assert {r["reason"] for r in rejects if r["line_number"] >= 5} == {NOISE_RULES["fluent_bit_msgpack"]}


def test_docker_s_fluentd_driver_names_a_dockershim_container_s_pod_and_container():
    """docker's fluentd log driver's record names no pod, only docker's name of its container: under
    dockershim, ``/k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt>``, read as the pod and container
    (they were null); another name (a container docker ran itself) names neither; a record's own
    kubernetes metadata comes first."""
    line = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]

    def driver(name: str, **more) -> str:
        return json.dumps({"container_id": "3f9a" * 16, "container_name": name, "source": "stdout", "log": line,
                           **more})

    shim = f"/k8s_{CONTAINER}_{POD}_istio-egress_0c1d2e3f-1111-2222-3333-444455556666_1"
    records, rejects, _ = parse_text([driver(shim), driver("/istio-proxy"), driver("/k8s_POD_x"),
                                      driver(shim, kubernetes={"pod_name": "wp-2", "container_name": "c"})])
    assert rejects == []
    assert [(r["pod"], r["container"]) for r in records] == [(POD, CONTAINER), (None, None), (None, None), ("wp-2", "c")]
