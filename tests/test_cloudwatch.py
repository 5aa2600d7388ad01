"""CloudWatch Logs' events, as ``aws logs filter-log-events`` (and ``get-log-events``) prints them and as
an export task writes them to S3: each event's message is a line, its stream (named after the node's
container log file by EKS's Fluent Bit) its pod and container, its time ``received_at``
(``documents.CloudWatchLines``)."""
from __future__ import annotations

import datetime as dt
import gzip
import json

from conftest import SAMPLES, parse_file, read_lines, run_logpipe

UTC = dt.timezone.utc
LINE = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
JSON_LINE = read_lines(SAMPLES / "istio-json-1.24.log")[0]
POD = "waypoint-7d9f8b6c4-x2k8p"
FILE = f"{POD}_istio-egress_istio-proxy-{'3f9a' * 16}.log"
STREAM = f"ip-10-0-1-23.ec2.internal-application.var.log.containers.{FILE}"  # (EKS's Fluent Bit's)
MS = 1738234404326  # 2025-01-30T10:53:24.326Z
WHEN = dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
AGENT = "2025-01-30T10:53:14.918572Z\tinfo\txdsproxy\tconnected to upstream XDS server"


def event(message: str, k: int = 0, stream: str | None = STREAM) -> dict:
    return {**({"logStreamName": stream} if stream else {}), "timestamp": MS + k, "message": message,
            "ingestionTime": MS + 900, **({"eventId": f"3812{k}"} if stream else {})}


def response(*events: dict) -> str:
    """``aws logs filter-log-events``' output: its JSON, indented 4 spaces, its pages as one."""
    return json.dumps({"events": list(events), "searchedLogStreams": [{"logStreamName": STREAM, "searchedCompletely": True}],
                       "nextToken": "Bxkq6kVGFtq2y_MoigeqscPOdhXVbhiVtLoAmXb5jCrI7fXRs"}, indent=4) + "\n"


def test_filter_log_events_output_reads_as_its_events(tmp_path):
    """Each event one line, numbered by event in order: its message read as the line alone is (its newline
    not part of it; a Fluent Bit record as the record of a line, its names and time first), the stream's
    file name its pod and container, its time ``received_at``; the response's own keys are no lines; two
    responses one after another; ``get-log-events``' (no stream's name: no pod); the manifest says
    cloudwatch-json (it was one reject a line of the JSON: 'not an access line')."""
    record = json.dumps({"time": "2025-01-30T10:53:25.5Z", "stream": "stdout", "_p": "F", "log": JSON_LINE,
                         "kubernetes": {"pod_name": "gw-1", "container_name": "istio-proxy"}})
    other = f"ip-10-0-1-23.ec2.internal-application.var.log.containers.gw-2_ns_istio-proxy-{'ab' * 32}.log"
    got = json.dumps({"events": [event(LINE, 2, stream=None)], "nextForwardToken": "f/3", "nextBackwardToken": "b/3"},
                     indent=4)
    path = tmp_path / "events.json"
    path.write_text(response(event(LINE + "\n"), event(record, 1), event(AGENT, 1, other)) + response(event(LINE, 5, other))
                    + got + "\n")
    records, rejects = parse_file(path)
    assert [(r["line_number"], r["log_format"], r["pod"], r["container"], r["received_at"]) for r in records] == [
        (1, "istio_1_9", POD, "istio-proxy", WHEN),
        (2, "istio_json", "gw-1", "istio-proxy", dt.datetime(2025, 1, 30, 10, 53, 25, 500000, tzinfo=UTC)),
        (4, "istio_1_9", "gw-2", "istio-proxy", WHEN + dt.timedelta(milliseconds=5)),
        (5, "istio_1_9", None, None, WHEN + dt.timedelta(milliseconds=2))]
    assert [(r["line_number"], r["class"], json.loads(r["raw"])["message"]) for r in rejects] == [(3, "noise", AGENT)]
    run = run_logpipe("ingest", path, "--data", tmp_path / "d")
    assert run.returncode == 0 and "lines read 5, parsed 4, rejected 1" in run.stderr, run.stderr
    (entry,) = json.loads((tmp_path / "d" / "_manifest.json").read_text())["inputs"]
    assert entry["compression"] == "cloudwatch-json"


def test_output_cut_short_loses_no_line(tmp_path):
    """A response cut short (the command stopped): its whole events read, the rest given as it is, rejects;
    and a compact response (an SDK's ``json.dumps``) as the indented one."""
    text = response(event(LINE), event(LINE, 1))
    path = tmp_path / "cut.json"
    cut = text[:text.index('"message"', text.index('"message"') + 1)]
    path.write_text(cut)
    records, rejects = parse_file(path)
    assert [r["line_number"] for r in records] == [1]
    assert [r["raw"] for r in rejects] == [x for x in cut[cut.rindex("{"):].split("\n") if x.strip()]
    path.write_text(json.dumps(json.loads(text), separators=(",", ":")))
    records, rejects = parse_file(path)
    assert [(r["line_number"], r["pod"]) for r in records] == [(1, POD), (2, POD)] and rejects == []


def test_an_export_to_s3_reads_as_its_lines_with_the_stream_s_names(tmp_path):
    """An export task's objects (``<prefix>/<task>/<stream>/000000.gz``, each line ``<time> <message>``):
    the time is ``received_at`` (read as ``kubectl logs --timestamps``' prefix), the stream's directory
    names the pod and container of lines that name none."""
    where = tmp_path / "exportedlogs" / "9c1e2f4a" / STREAM
    where.mkdir(parents=True)
    record = json.dumps({"log": JSON_LINE + "\n", "stream": "stdout", "kubernetes": {"pod_name": "gw-1", "container_name": "istio-proxy"}})
    (where / "000000.gz").write_bytes(gzip.compress(
        f"2025-01-30T10:53:24.326Z {LINE}\n2025-01-30T10:53:24.327Z {record}\n2025-01-30T10:53:24.328Z {AGENT}\n".encode()))
    records, rejects = parse_file(where / "000000.gz")
    assert [(r["line_number"], r["pod"], r["container"], r["received_at"]) for r in records] == [
        (1, POD, "istio-proxy", WHEN), (2, "gw-1", "istio-proxy", WHEN + dt.timedelta(milliseconds=1))]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(3, "noise")]
